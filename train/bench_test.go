package train

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/tokenizer"
)

// BenchmarkTrainStep measures a LoRA SFT step (r=8 on q_proj, v_proj,
// down_proj: forward, backward, clipping, AdamW) against the forward pass
// alone over the same batch, both timed inside each iteration so that the
// ratio comes from one sitting, with 2 kernel threads. Metrics: training
// tokens/s of the step (step-tok/s), of the forward alone (fwd-tok/s), and
// step-time/forward-time (step/fwd). Models: skills-base (../shared;
// 16 addition examples per step) and a random model of SmolLM2-135M's
// shape (2 sequences of 128 tokens per step):
//
//	go test -run - -bench TrainStep -benchtime 10x ./train/
//	MOCO_BENCH_CPUPROFILE=cpu.out go test -run - -bench TrainStep/smollm2 -benchtime 3x ./train/
func BenchmarkTrainStep(b *testing.B) {
	defer kernels.SetThreads(0)
	b.Run("skills-base", func(b *testing.B) {
		dir := testutil.Shared(b, "models/skills-base")
		m, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := tokenizer.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		var seqs [][2][]int
		for i := range 16 {
			a, c := 100+i*37, (i*611)%900
			tt, tg, err := Tokenize(tok, Example{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, c), Completion: fmt.Sprintf(" %d", a+c)})
			if err != nil {
				b.Fatal(err)
			}
			seqs = append(seqs, [2][]int{tt, tg})
		}
		benchStep(b, m, seqs)
	})
	b.Run("smollm2-135m", func(b *testing.B) {
		raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "bench", "testdata", "smollm2-135m.json"))
		if err != nil {
			b.Skip("bench/testdata/smollm2-135m.json: ", err)
		}
		c, err := engine.ParseConfig(raw)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 1))
		params := map[string][]float32{}
		for name, n := range shapes(c) {
			v := make([]float32, n)
			for i := range v {
				if filepath.Ext(name) == ".weight" && (contains(name, "norm")) {
					v[i] = 1
				} else {
					v[i] = float32(0.02 * r.NormFloat64())
				}
			}
			params[name] = v
		}
		m, err := NewModel(c, params)
		if err != nil {
			b.Fatal(err)
		}
		var seqs [][2][]int
		for range 2 {
			tt, tg := make([]int, 128), make([]int, 128)
			for i := range tt {
				tt[i] = r.IntN(c.VocabSize)
			}
			for i := range tg {
				tg[i] = -100
				if i+1 < len(tt) {
					tg[i] = tt[i+1]
				}
			}
			seqs = append(seqs, [2][]int{tt, tg})
		}
		benchStep(b, m, seqs)
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func benchStep(b *testing.B, m *Model[float32], seqs [][2][]int) {
	kernels.SetThreads(2)
	lo, err := NewLoRA(m, 8, 16, []string{"q_proj", "v_proj", "down_proj"}, 1)
	if err != nil {
		b.Fatal(err)
	}
	m.LoRA, m.Frozen = lo, true
	opt := NewAdamW(0)
	params := lo.Params()
	tokens := 0
	for _, s := range seqs {
		tokens += len(s[0])
	}
	m.Loss(seqs[0][0], seqs[0][1], map[string][]float32{}) // keeps the frozen transposes
	// MOCO_BENCH_CPUPROFILE=FILE profiles the timed loop alone (go test's
	// -cpuprofile also takes in the model's set-up): the share of the
	// kernels package in a step.
	if path := os.Getenv("MOCO_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var fwd, step time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, s := range seqs {
			m.Loss(s[0], s[1], nil)
		}
		t1 := time.Now()
		grads := map[string][]float32{}
		for _, s := range seqs {
			m.Loss(s[0], s[1], grads)
		}
		ClipGradNorm(grads, 1)
		opt.Update(params, grads, 1e-4)
		t2 := time.Now()
		fwd += t1.Sub(t0)
		step += t2.Sub(t1)
	}
	b.ReportMetric(float64(tokens*b.N)/step.Seconds(), "step-tok/s")
	b.ReportMetric(float64(tokens*b.N)/fwd.Seconds(), "fwd-tok/s")
	b.ReportMetric(step.Seconds()/fwd.Seconds(), "step/fwd")
}
