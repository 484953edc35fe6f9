package train

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pairSeq is BOS(1) + prompt + completion, the completion scored.
func pairSeq(prompt, completion []int) Seq {
	tokens := append(append([]int{1}, prompt...), completion...)
	return Seq{Tokens: tokens, Targets: scoreFrom(tokens, func(i int) bool { return i > len(prompt) })}
}

// TestDPOGradAccum checks a step's gradient with 2 micro-batches of 2
// pairs against central finite differences of the loss written out here
// from forward log-probabilities alone: the mean DPO loss over the 4
// pairs plus RPO's term, the mean over the micro-batches of each one's
// token-mean NLL of the chosen completions (TRL's accumulation). Without
// RPO the accumulated gradient is the one big batch's, bit for bit.
func TestDPOGradAccum(t *testing.T) {
	m, adapters := tinyLoRA(t, 12, false)
	items := []*dpoItem{
		{c: pairSeq([]int{4, 2}, []int{5, 6}), r: pairSeq([]int{4, 2}, []int{3})},
		{c: pairSeq([]int{3}, []int{2, 2, 0}), r: pairSeq([]int{3}, []int{6, 5})},
		{c: pairSeq([]int{6, 1, 2}, []int{4}), r: pairSeq([]int{6, 1, 2}, []int{0, 3, 3})},
	}
	batch := []*dpoItem{items[0], items[1], items[2], items[0]} // a pair drawn twice
	const beta, alpha = 0.5, 0.3
	cfg := DPOConfig{Beta: beta, RPOAlpha: alpha, SFTConfig: SFTConfig{BatchSize: 2}}
	grads, st := dpoStep(m, batch, cfg, 0, 2)
	loss := func() float64 {
		var l float64
		for _, it := range batch {
			d, _ := DPOLoss(m.LogProb(it.c), m.LogProb(it.r), m.RefLogProb(it.c), m.RefLogProb(it.r), beta)
			l += d / 4
		}
		for _, micro := range [][]*dpoItem{batch[:2], batch[2:]} {
			var lp float64
			n := 0
			for _, it := range micro {
				lp += m.LogProb(it.c)
				for _, y := range it.c.Targets {
					if y >= 0 {
						n++
					}
				}
			}
			l += alpha * (-lp / float64(n)) / 2
		}
		return l
	}
	if want := loss(); math.Abs(st.Loss-want) > 1e-12 {
		t.Fatalf("step loss %.15g, written out %.15g", st.Loss, want)
	}
	checkGrads(t, loss, adapters, grads)

	cfg.RPOAlpha = 0
	accum, sa := dpoStep(m, batch, cfg, 0, 2)
	cfg.BatchSize = 4
	big, sb := dpoStep(m, batch, cfg, 0, 3)
	if sa.Loss != sb.Loss {
		t.Fatalf("loss %v accumulated, %v in one batch", sa.Loss, sb.Loss)
	}
	for name, g := range big {
		for i := range g {
			if accum[name][i] != g[i] {
				t.Fatalf("%s[%d]: %v accumulated, %v in one batch", name, i, accum[name][i], g[i])
			}
		}
	}
}

func dpoRunConfig() DPOConfig {
	return DPOConfig{Beta: 0.1, RPOAlpha: 0.5, SFTConfig: SFTConfig{Steps: 6, BatchSize: 2, GradAccum: 2, LR: 3e-3, Warmup: 1,
		WeightDecay: 0.01, MaxGradNorm: 1, Seed: 3, Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}, Dropout: 0.1, SaveEvery: 2}}
}

// TestDPOResume checks that a DPO run stopped after step 3 (its context
// cancelled, between checkpoints) and resumed from the checkpoint the
// stop wrote ends with the adapter bytes and the step records of the run
// that never stopped, with dropout, accumulation and RPO on.
func TestDPOResume(t *testing.T) {
	dir, tok := skills(t)
	data := additionPairs(12)
	cfg := dpoRunConfig()
	cfg.CheckpointDir = t.TempDir()
	m := loadModel(t, dir)
	lo, straight, err := DPO(context.Background(), m, tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := adapterBytes(t, lo, m)

	cfg.CheckpointDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	m = loadModel(t, dir)
	if _, _, err = DPO(ctx, m, tok, data, cfg, func(s DPOStep) {
		if s.Step.Step == 3 {
			cancel()
		}
	}); err != context.Canceled {
		t.Fatalf("cancelled run: error %v", err)
	}
	cfg.Resume = latestCheckpointIs(t, cfg.CheckpointDir, "checkpoint-3")
	m = loadModel(t, dir)
	lo, resumed, err := DPO(context.Background(), m, tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := adapterBytes(t, lo, m); !bytes.Equal(got, want) {
		t.Fatal("resumed run's adapter differs from the straight run's")
	}
	if len(resumed) != len(straight) {
		t.Fatalf("history of %d steps, want %d", len(resumed), len(straight))
	}
	for i := range straight {
		a, b := resumed[i], straight[i]
		a.Time, b.Time = 0, 0
		if a != b {
			t.Fatalf("step %d: resumed %+v, straight %+v", i+1, a, b)
		}
	}
	cfg.Beta = 0.2
	if _, _, err := DPO(context.Background(), loadModel(t, dir), tok, data, cfg, nil); err == nil || !strings.Contains(err.Error(), "beta was 0.1, now 0.2") {
		t.Fatalf("resume with another beta: %v", err)
	}
}

// TestDPONaNStops poisons the weights after step 3: step 4's loss is NaN,
// the run stops naming it, no checkpoint follows, and checkpoint-2 holds
// the bytes of an unbroken run's.
func TestDPONaNStops(t *testing.T) {
	dir, tok := skills(t)
	data := additionPairs(8)
	cfg := dpoRunConfig()
	cfg.Steps, cfg.GradAccum, cfg.Dropout = 4, 1, 0
	cfg.CheckpointDir = t.TempDir()
	good := cfg.CheckpointDir
	if _, _, err := DPO(context.Background(), loadModel(t, dir), tok, data, cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.CheckpointDir = t.TempDir()
	m := loadModel(t, dir)
	_, hist, err := DPO(context.Background(), m, tok, data, cfg, func(s DPOStep) {
		if s.Step.Step == 3 {
			for i := range m.Params["model.norm.weight"] {
				m.Params["model.norm.weight"][i] = float32(math.NaN())
			}
		}
	})
	if err == nil || !strings.Contains(err.Error(), "step 4: loss NaN") || !strings.Contains(err.Error(), "last checkpoint: step 2") {
		t.Fatalf("error %v, want step 4's NaN loss named", err)
	}
	if len(hist) != 3 {
		t.Fatalf("history of %d steps, want 3", len(hist))
	}
	sameCheckpoint(t, good, cfg.CheckpointDir, "checkpoint-2")
	if _, err := os.Stat(filepath.Join(cfg.CheckpointDir, "checkpoint-4")); err == nil {
		t.Fatal("a checkpoint was written after the NaN")
	}
}

// sameCheckpoint checks that two runs' checkpoint folders hold the same
// weights, optimizer state and adapter.
func sameCheckpoint(t *testing.T, a, b, name string) {
	t.Helper()
	for _, f := range []string{"params.safetensors", "optimizer.safetensors", "adapter_model.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(a, name, f))
		y, err2 := os.ReadFile(filepath.Join(b, name, f))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s/%s differs from the unbroken run's (%v, %v)", name, f, err1, err2)
		}
	}
}
