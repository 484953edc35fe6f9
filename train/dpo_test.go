package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

func TestReadDPOErrors(t *testing.T) {
	ok := `{"prompt":"Q: 1+2=\nA:","chosen":" 3","rejected":" 4"}`
	for _, c := range []struct{ in, want string }{
		{ok + "\n{oops\n", "line 2"},
		{`{"prompt":"a","chosen":"b"}`, `line 1: missing field "rejected"`},
		{`{"chosen":"b","rejected":"c"}`, `line 1: missing field "prompt"`},
		{ok + "\n\n" + `{"prompt":"a","chosen":[{"role":"assistant","content":"b"}],"rejected":"c"}`, "line 3: field \"chosen\" is a list"},
		{`{"prompt":"a","chosen":"","rejected":"c"}`, "line 1: chosen and rejected must be non-empty"},
		{`{"prompt":"a","chosen":1,"rejected":"c"}`, "line 1"},
		{"\n\n", "no pairs"},
	} {
		if _, err := ReadDPO(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	ps, err := ReadDPO(strings.NewReader("\n" + ok + "\n"))
	if err != nil || len(ps) != 1 || ps[0] != (Pair{"Q: 1+2=\nA:", " 3", " 4"}) {
		t.Fatalf("%v %v", ps, err)
	}
}

func FuzzReadDPO(f *testing.F) {
	f.Add(`{"prompt":"a","chosen":"b","rejected":"c"}`)
	f.Add(`{"prompt":"a","chosen":["b"],"rejected":"c"}`)
	f.Add("{\n")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ReadDPO(strings.NewReader(s))
		if err == nil && len(ps) == 0 {
			t.Fatal("no error and no pairs")
		}
		for _, p := range ps {
			if p.Chosen == "" || p.Rejected == "" {
				t.Fatalf("empty completion accepted: %+v", p)
			}
		}
	})
}

// TestDPOLossByHand checks the loss and its derivative on values worked
// out by hand: with β = 0.1, a policy 1 nat above the reference on the
// chosen completion (−1 vs −2) and 2 nats below on the rejected one (−3
// vs −1) has z = 0.1·(1 − (−2)) = 0.3, loss ln(1 + e^−0.3) = 0.5543552444685271
// and dloss/dz = −1/(1 + e^0.3) = −0.425557483188341.
func TestDPOLossByHand(t *testing.T) {
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.16g, want %.16g", what, got, want)
		}
	}
	loss, dz := DPOLoss(-1, -3, -2, -1, 0.1)
	near("loss", loss, 0.5543552444685271, 1e-15)
	near("dz", dz, -0.425557483188341, 1e-15)
	// Policy equal to the reference: z = 0, loss ln 2, dz −1/2.
	loss, dz = DPOLoss(-7, -2, -7, -2, 0.1)
	near("loss at z=0", loss, math.Ln2, 1e-15)
	near("dz at z=0", dz, -0.5, 1e-15)
	// Far in either direction: no overflow, loss ≈ max(−z, 0).
	loss, dz = DPOLoss(0, 0, 10000, 0, 0.1) // z = −1000
	near("loss at z=-1000", loss, 1000, 1e-9)
	near("dz at z=-1000", dz, -1, 1e-15)
	loss, dz = DPOLoss(10000, 0, 0, 0, 0.1) // z = 1000
	near("loss at z=1000", loss, 0, 1e-15)
	near("dz at z=1000", dz, 0, 1e-15)
}

// TestSeqLogProbByHand: logits (0, ln 2, ln 5) are the distribution
// (1/8, 2/8, 5/8); uniform logits over 3 give 1/3.
func TestSeqLogProbByHand(t *testing.T) {
	logits := []float64{0, math.Log(2), math.Log(5), 9, 9, 9, 4, 4, 4}
	targets := []int{2, -100, 0}
	d := make([]float64, len(logits))
	lp, n := SeqLogProb(d, logits, targets, 3, 2)
	if want := math.Log(5.0/8) + math.Log(1.0/3); n != 2 || math.Abs(lp-want) > 1e-15 {
		t.Fatalf("log-prob %.16g over %d, want %.16g over 2", lp, n, want)
	}
	// coef 2 times (onehot − softmax); the unscored row gets nothing.
	want := []float64{-2.0 / 8, -4.0 / 8, 6.0 / 8, 0, 0, 0, 4.0 / 3, -2.0 / 3, -2.0 / 3}
	for i := range want {
		if math.Abs(d[i]-want[i]) > 1e-15 {
			t.Errorf("dlogits[%d] = %.16g, want %.16g", i, d[i], want[i])
		}
	}
}

// tinyLoRA puts random adapters (B nonzero, so A's gradient is not
// trivially zero) on every module of a random tiny float64 model and
// returns the model and the adapter tensors under PEFT's names.
func tinyLoRA(t *testing.T, seed uint64, zeroB bool) (*Model[float64], map[string][]float64) {
	t.Helper()
	c := tinyConfig(t, false)
	r := rand.New(rand.NewPCG(seed, 8))
	params := map[string][]float64{}
	sh := shapes(c)
	for _, name := range sortedKeys(sh) {
		params[name] = randn(r, sh[name])
	}
	m, err := NewModel(c, params)
	if err != nil {
		t.Fatal(err)
	}
	const rank = 2
	lo := &LoRA[float64]{R: rank, Alpha: 3, Scale: 1.5, A: map[string][]float64{}, B: map[string][]float64{}}
	adapters := map[string][]float64{}
	for _, mod := range sortedKeys(modulePath) {
		path := modulePath[mod]
		lo.Modules = append(lo.Modules, mod)
		for l := range c.NumLayers {
			base := LayerName(l, path)
			in, out := m.dims(path)
			lo.A[base], lo.B[base] = scaled(randn(r, rank*in), 0.5), scaled(randn(r, out*rank), 0.5)
			if zeroB {
				lo.B[base] = make([]float64, out*rank)
			}
			adapters[peftName(base, "A")], adapters[peftName(base, "B")] = lo.A[base], lo.B[base]
		}
	}
	m.LoRA, m.Frozen = lo, true
	return m, adapters
}

// TestDPOGradients checks the DPO loss's gradient with respect to every
// adapter against central finite differences, the reference being the
// same model with the adapters off (so it does not move with them).
func TestDPOGradients(t *testing.T) {
	m, adapters := tinyLoRA(t, 9, false)
	// Same prompt, completions of different lengths and tokens.
	chosen := Seq{Tokens: []int{1, 4, 2, 5, 6}, Targets: []int{-100, 2, 5, 6, -100}}
	rejected := Seq{Tokens: []int{1, 4, 3, 6}, Targets: []int{-100, 3, 6, -100}}
	for _, c := range []struct{ beta, nll float64 }{{0.1, 0}, {2, 0}, {0.5, 0.3}} {
		beta, nll := c.beta, c.nll
		t.Run(fmt.Sprint("beta=", beta, ",nll=", nll), func(t *testing.T) {
			refC, refR := m.RefLogProb(chosen), m.RefLogProb(rejected)
			grads := map[string][]float64{}
			st := m.DPOPair(chosen, rejected, refC, refR, beta, 1, nll, grads)
			if len(grads) != len(adapters) {
				t.Fatalf("%d gradients, want the %d adapter tensors only", len(grads), len(adapters))
			}
			if st.RewardChosen == 0 || st.RewardRejected == 0 {
				t.Fatalf("random adapters left the policy equal to the reference: %+v", st)
			}
			loss := func() float64 {
				// The reference stays fixed: recomputing it must give the
				// same value whatever the adapters hold.
				if c := m.RefLogProb(chosen); c != refC {
					t.Fatalf("reference log-prob moved with the adapters: %v, was %v", c, refC)
				}
				st := m.DPOPair(chosen, rejected, refC, refR, beta, 1, nll, nil)
				return st.Loss - nll*st.LogpChosen
			}
			checkGrads(t, loss, adapters, grads)
		})
	}
	// With LoRA dropout: the same masks (a stream restarted for every
	// evaluation) in the analytic and the numerical gradient.
	t.Run("dropout", func(t *testing.T) {
		m.LoRA.Dropout = 0.3
		defer func() { m.LoRA.Dropout, m.LoRA.DropRNG = 0, nil }()
		refC, refR := m.RefLogProb(chosen), m.RefLogProb(rejected)
		pair := func(g map[string][]float64) PairStats {
			m.LoRA.DropRNG = rand.NewPCG(5, 5)
			return m.DPOPair(chosen, rejected, refC, refR, 1, 1, 0, g)
		}
		grads := map[string][]float64{}
		with := pair(grads)
		m.LoRA.DropRNG = nil
		without := m.DPOPair(chosen, rejected, refC, refR, 1, 1, 0, nil)
		if with.Loss == without.Loss {
			t.Fatal("dropout changed nothing")
		}
		checkGrads(t, func() float64 { return pair(nil).Loss }, adapters, grads)
	})
}

// TestDPOAtInit: with PEFT's initialisation (B = 0) the policy is the
// reference, so every pair's loss is ln 2 and both rewards are zero
// exactly, while the gradient is not zero; a pair whose completions are
// equal has no gradient at all.
func TestDPOAtInit(t *testing.T) {
	m, _ := tinyLoRA(t, 10, true)
	c := Seq{Tokens: []int{1, 4, 2, 5}, Targets: []int{-100, 2, 5, -100}}
	r := Seq{Tokens: []int{1, 4, 3, 6}, Targets: []int{-100, 3, 6, -100}}
	grads := map[string][]float64{}
	st := m.DPOPair(c, r, m.RefLogProb(c), m.RefLogProb(r), 0.1, 1, 0, grads)
	if st.Loss != math.Ln2 || st.RewardChosen != 0 || st.RewardRejected != 0 {
		t.Fatalf("at init: %+v, want loss ln 2 and zero rewards", st)
	}
	if gradNorm(grads) == 0 {
		t.Fatal("zero gradient at init")
	}
	m2, _ := tinyLoRA(t, 11, false)
	grads = map[string][]float64{}
	ref := m2.RefLogProb(c)
	if st := m2.DPOPair(c, c, ref, ref, 0.1, 1, 0, grads); st.Loss != math.Ln2 || gradNorm(grads) > 1e-12 {
		t.Fatalf("equal completions: loss %v, gradient norm %v; want ln 2 and ≈0", st.Loss, gradNorm(grads))
	}
}

func gradNorm[T Float](g map[string][]T) float64 {
	var s float64
	for _, v := range g {
		for _, x := range v {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// additionPairs are preference pairs on skills-base's addition format:
// chosen the sum, rejected the sum off by ten (a typical carry slip).
func additionPairs(n int) []Pair {
	var ps []Pair
	for i := range n {
		a, b := 100+i*7%800, (i*37+11)%900
		ps = append(ps, Pair{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, b), Chosen: fmt.Sprintf(" %d", a+b), Rejected: fmt.Sprintf(" %d", a+b+10)})
	}
	return ps
}

// TestDPOLearns runs a few LoRA DPO steps on skills-base and checks TRL's
// step-1 values (loss ln 2, zero margin: the policy starts as the
// reference), that the loss falls and the margin grows, and that the
// same seed reproduces the run exactly whatever the number of threads
// (LoRA dropout on: each pair's masks are its own).
func TestDPOLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 2×6 DPO steps on skills-base")
	}
	dir := testutil.Shared(t, "models/skills-base")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DPOConfig{Beta: 0.1, SFTConfig: SFTConfig{Steps: 6, BatchSize: 4, LR: 3e-3, MaxGradNorm: 1, Seed: 1, Rank: 4, Alpha: 8, Dropout: 0.1,
		Targets: []string{"q_proj", "v_proj", "down_proj"}}}
	run := func(threads int) []DPOStep {
		cfg.Threads = threads
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, hist, err := DPO(context.Background(), m, tok, additionPairs(16), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return hist
	}
	h1, h2 := run(1), run(3)
	for i := range h1 {
		if h1[i].Loss != h2[i].Loss || h1[i].Margin != h2[i].Margin {
			t.Fatalf("step %d: loss %v with 1 thread, %v with 3", i+1, h1[i].Loss, h2[i].Loss)
		}
	}
	if h1[0].Loss != math.Ln2 || h1[0].Margin != 0 || h1[0].Accuracy != 0 {
		t.Errorf("step 1: loss %v margin %v accuracy %v; want ln 2, 0, 0", h1[0].Loss, h1[0].Margin, h1[0].Accuracy)
	}
	first, last := (h1[0].Loss+h1[1].Loss)/2, (h1[4].Loss+h1[5].Loss)/2
	if last >= first || h1[5].Margin <= 0 {
		t.Fatalf("did not learn: loss %.4f -> %.4f, last margin %.4f", first, last, h1[5].Margin)
	}
	t.Logf("loss %.4f -> %.4f, margin %.4f, accuracy %.2f after %d steps", first, last, h1[5].Margin, h1[5].Accuracy, len(h1))
}

// TestFoldLoRA: the folded model without adapters computes the logits the
// adapted model did.
func TestFoldLoRA(t *testing.T) {
	m, _ := tinyLoRA(t, 12, false)
	tokens := []int{1, 4, 2, 5, 6}
	want := m.Forward(tokens).Logits
	m.FoldLoRA()
	if m.LoRA != nil {
		t.Fatal("adapters left in place")
	}
	got := m.Forward(tokens).Logits
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("logit %d: %v folded, %v adapted", i, got[i], want[i])
		}
	}
}

// TestDPOStops: a cancelled run returns the adapters and the steps done so
// far with the context's error; bad settings are refused before training.
func TestDPOStops(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DPOConfig{Beta: 0.1, SFTConfig: SFTConfig{Steps: 50, BatchSize: 2, LR: 1e-3, MaxGradNorm: 1, Seed: 1, Rank: 2, Alpha: 4,
		Targets: []string{"q_proj"}}}
	ctx, cancel := context.WithCancel(context.Background())
	lo, hist, err := DPO(ctx, m, tok, additionPairs(4), cfg, func(s DPOStep) {
		if s.Step.Step == 2 {
			cancel()
		}
	})
	if err != context.Canceled || lo == nil || len(hist) != 2 {
		t.Fatalf("after cancelling at step 2: adapters %v, %d steps, error %v", lo != nil, len(hist), err)
	}
	for _, bad := range []func(*DPOConfig){
		func(c *DPOConfig) { c.Beta = 0 },
		func(c *DPOConfig) { c.Dropout = 1 },
		func(c *DPOConfig) { c.Full = true },
		func(c *DPOConfig) { c.Resume = "x" },
		func(c *DPOConfig) { c.MaxLength = 5 }, // every pair is longer
	} {
		c := cfg
		bad(&c)
		if _, _, err := DPO(context.Background(), m, tok, additionPairs(2), c, nil); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
