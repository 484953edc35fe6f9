package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestGroupAdvantages checks group normalisation on a hand-derived table
// (groups of 4; std Bessel-corrected, as torch.std; eps 1e-4 as TRL).
func TestGroupAdvantages(t *testing.T) {
	rewards := []float64{
		1, 0, 0, 1, // mean 0.5, std √(4·0.25/3) = √(1/3) = 0.5773502691896258
		1, 0, 0, 0, // mean 0.25, std √((0.5625+3·0.0625)/3) = 0.5
		1, 1, 1, 1, // no spread: every advantage 0
		0.5, 0, 0, 0, // mean 0.125, std √((0.140625+3·0.015625)/3) = 0.25
	}
	s1 := 0.5773502691896258 + 1e-4
	want := []float64{
		0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1,
		0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001,
		0, 0, 0, 0,
		0.375 / 0.2501, -0.125 / 0.2501, -0.125 / 0.2501, -0.125 / 0.2501,
	}
	got := GroupAdvantages(rewards, 4, true)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("scaled advantage %d: got %.15g, want %.15g", i, got[i], want[i])
		}
	}
	// Unscaled (Dr. GRPO): r − group mean.
	wantRaw := []float64{0.5, -0.5, -0.5, 0.5, 0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0, 0.375, -0.125, -0.125, -0.125}
	for i, a := range GroupAdvantages(rewards, 4, false) {
		if math.Abs(a-wantRaw[i]) > 1e-15 {
			t.Errorf("raw advantage %d: got %g, want %g", i, a, wantRaw[i])
		}
	}
}

// TestTokenLoss checks the clipped surrogate and the k3 term against
// values worked out by hand (ε 0.2, β 0.04).
func TestTokenLoss(t *testing.T) {
	o := GRPOObjective{Epsilon: 0.2, Beta: 0.04}
	ln2, ln15 := math.Log(2), math.Log(1.5)
	k3 := 2 - ln2 - 1 // ref/π = 2: 2 − ln 2 − 1
	for _, c := range []struct {
		name                 string
		logp, old, ref, adv  float64
		loss, dlogp          float64
		clipped              bool
		beta0loss, beta0grad float64
	}{
		// ρ = 1, on the reference: −Â and −Â.
		{"on-policy", -1, -1, -1, 0.5, -0.5, -0.5, false, -0.5, -0.5},
		// ρ = 1.5, Â = 1: min(1.5, 1.2) = 1.2, clipped, no gradient.
		{"high clipped", -1 + ln15, -1, -1 + ln15, 1, -1.2, 0, true, -1.2, 0},
		// ρ = 1.5, Â = −1: min(−1.5, −1.2) = −1.5, unclipped, ∂ = −ρÂ = 1.5.
		{"high unclipped", -1 + ln15, -1, -1 + ln15, -1, 1.5, 1.5, false, 1.5, 1.5},
		// ρ = 0.5, Â = −1: min(−0.5, −0.8) = −0.8, clipped.
		{"low clipped", -1 - ln2, -1, -1 - ln2, -1, 0.8, 0, true, 0.8, 0},
		// ρ = 0.5, Â = 1: min(0.5, 0.8) = 0.5, unclipped, ∂ = −0.5.
		{"low unclipped", -1 - ln2, -1, -1 - ln2, 1, -0.5, -0.5, false, -0.5, -0.5},
		// KL: π_ref/π_θ = 2, k3 = 2 − ln 2 − 1, ∂k3/∂logp = 1 − 2 = −1.
		{"kl", -2, -2, -2 + ln2, 0.5, -0.5 + 0.04*k3, -0.5 - 0.04, false, -0.5, -0.5},
	} {
		loss, d, clipped := o.TokenLoss(c.logp, c.old, c.ref, c.adv)
		if math.Abs(loss-c.loss) > 1e-12 || math.Abs(d-c.dlogp) > 1e-12 || clipped != c.clipped {
			t.Errorf("%s: got loss %.15g ∂ %.15g clipped %v, want %.15g %.15g %v", c.name, loss, d, clipped, c.loss, c.dlogp, c.clipped)
		}
		o0 := o
		o0.Beta = 0
		loss, d, _ = o0.TokenLoss(c.logp, c.old, 123, c.adv) // β 0: ref unused
		if math.Abs(loss-c.beta0loss) > 1e-12 || math.Abs(d-c.beta0grad) > 1e-12 {
			t.Errorf("%s, β 0: got %g %g, want %g %g", c.name, loss, d, c.beta0loss, c.beta0grad)
		}
	}
	// An asymmetric clip range (DAPO's ε_high).
	o.EpsilonHigh, o.Beta = 0.28, 0
	if loss, _, clipped := o.TokenLoss(math.Log(1.5), 0, 0, 1); math.Abs(loss+1.28) > 1e-12 || !clipped {
		t.Errorf("ε_high 0.28: loss %g clipped %v, want −1.28 true", loss, clipped)
	}
}

// tinyRollouts builds a float64 tiny model with random adapters and a
// batch of rollouts whose old log-probabilities are offset from the
// current ones (so that some tokens are clipped and some are not) and
// whose reference log-probabilities are arbitrary.
func tinyRollouts(t *testing.T) (*Model[float64], []Rollout, map[string][]float64) {
	t.Helper()
	c := tinyConfig(t, false)
	r := rand.New(rand.NewPCG(7, 8))
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
	lo := &LoRA[float64]{R: rank, Alpha: 4, Scale: 2, A: map[string][]float64{}, B: map[string][]float64{}}
	check := map[string][]float64{}
	for _, mod := range []string{"down_proj", "q_proj", "v_proj"} {
		lo.Modules = append(lo.Modules, mod)
		for l := range c.NumLayers {
			base := LayerName(l, modulePath[mod])
			in, out := m.dims(modulePath[mod])
			lo.A[base], lo.B[base] = scaled(randn(r, rank*in), 0.5), scaled(randn(r, out*rank), 0.5)
			check[peftName(base, "A")], check[peftName(base, "B")] = lo.A[base], lo.B[base]
		}
	}
	m.LoRA, m.Frozen = lo, true
	rs := []Rollout{
		{Tokens: []int{1, 4, 4, 0, 6}, Prompt: 2, Advantage: 1.2},
		{Tokens: []int{1, 4, 2}, Prompt: 2, Advantage: -0.7},
		{Tokens: []int{3, 5, 2, 2, 1, 0, 4}, Prompt: 3, Advantage: 0.4},
		{Tokens: []int{3, 5, 6, 6}, Prompt: 3, Advantage: -1.1},
	}
	offsets := []float64{0, 0.5, -0.5, 0.05, -0.9, 0.3}
	k := 0
	for i := range rs {
		cur := m.CompletionLogps(&rs[i], 0.7)
		for j := range cur {
			rs[i].OldLogp = append(rs[i].OldLogp, cur[j]+offsets[k%len(offsets)])
			rs[i].RefLogp = append(rs[i].RefLogp, cur[j]+0.3*r.NormFloat64())
			k++
		}
	}
	return m, rs, check
}

// TestGRPOGradients checks the GRPO loss's gradient with respect to the
// adapters against central finite differences on a tiny model with fixed
// sampled completions, for every loss type, with KL and clipping active.
func TestGRPOGradients(t *testing.T) {
	for _, lt := range []string{"grpo", "bnpo", "dr_grpo"} {
		t.Run(lt, func(t *testing.T) {
			m, rs, check := tinyRollouts(t)
			o := GRPOObjective{Epsilon: 0.2, EpsilonHigh: 0.28, Beta: 0.04, Temperature: 0.7, LossType: lt, MaxCompletion: 6}
			grads := map[string][]float64{}
			st, err := m.GRPOLoss(rs, o, grads)
			if err != nil {
				t.Fatal(err)
			}
			if st.ClipRatio == 0 || st.ClipRatio == 1 || st.KL <= 0 {
				t.Fatalf("clip ratio %g, KL %g: want some tokens clipped and some not, and a positive KL", st.ClipRatio, st.KL)
			}
			if len(grads) != len(check) {
				t.Fatalf("%d gradients, want the %d adapter tensors only", len(grads), len(check))
			}
			loss := func() float64 {
				st, err := m.GRPOLoss(rs, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				return st.Loss
			}
			checkGrads(t, loss, check, grads)
		})
	}
	// Full weights (base unfrozen), on-policy ratios from explicit old
	// log-probabilities, β 0.
	t.Run("full", func(t *testing.T) {
		if testutil.RaceEnabled && testing.Short() {
			t.Skip("every base weight of the tiny model: slow under the race detector")
		}
		m, rs, _ := tinyRollouts(t)
		m.LoRA, m.Frozen = nil, false
		for i := range rs {
			rs[i].OldLogp, rs[i].RefLogp = m.CompletionLogps(&rs[i], 1), nil
		}
		o := GRPOObjective{Epsilon: 0.2}
		grads := map[string][]float64{}
		if _, err := m.GRPOLoss(rs, o, grads); err != nil {
			t.Fatal(err)
		}
		checkGrads(t, func() float64 { st, _ := m.GRPOLoss(rs, o, nil); return st.Loss }, m.Params, grads)
	})
}

// TestGRPOOnPolicy checks that nil OldLogp means the current policy,
// detached: the same gradient as explicit current log-probabilities, the
// policy gradient −Σ c_i·Â_i·∇log π.
func TestGRPOOnPolicy(t *testing.T) {
	m, rs, _ := tinyRollouts(t)
	o := GRPOObjective{Epsilon: 0.2, Beta: 0.04}
	for i := range rs {
		rs[i].OldLogp = nil
	}
	g1 := map[string][]float64{}
	st1, err := m.GRPOLoss(rs, o, g1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		rs[i].OldLogp = m.CompletionLogps(&rs[i], 1)
	}
	g2 := map[string][]float64{}
	st2, _ := m.GRPOLoss(rs, o, g2)
	if math.Abs(st1.Loss-st2.Loss) > 1e-12 || st1.ClipRatio != 0 {
		t.Fatalf("loss %g vs %g, clip ratio %g", st1.Loss, st2.Loss, st1.ClipRatio)
	}
	for name, g := range g1 {
		for i := range g {
			if math.Abs(g[i]-g2[name][i]) > 1e-12 {
				t.Fatalf("%s[%d]: %g vs %g", name, i, g[i], g2[name][i])
			}
		}
	}
}

// TestGRPOReduction checks each loss type's reduction of the per-token
// losses against the formulas written out here.
func TestGRPOReduction(t *testing.T) {
	m, rs, _ := tinyRollouts(t)
	base := GRPOObjective{Epsilon: 0.2, Beta: 0.04, Temperature: 0.7, MaxCompletion: 9}
	var perSeq []float64 // Σ_t ℓ_t of each rollout
	var tokens int
	for i := range rs {
		lp := m.CompletionLogps(&rs[i], 0.7)
		var s float64
		for j := range lp {
			l, _, _ := base.TokenLoss(lp[j], rs[i].OldLogp[j], rs[i].RefLogp[j], rs[i].Advantage)
			s += l
		}
		perSeq = append(perSeq, s)
		tokens += len(lp)
	}
	B := float64(len(rs))
	var grpo, sum float64
	for i, s := range perSeq {
		grpo += s / float64(len(rs[i].Tokens)-rs[i].Prompt) / B
		sum += s
	}
	for lt, want := range map[string]float64{"grpo": grpo, "": grpo, "bnpo": sum / float64(tokens), "dapo": sum / float64(tokens), "dr_grpo": sum / (B * 9)} {
		o := base
		o.LossType = lt
		st, err := m.GRPOLoss(rs, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(st.Loss-want) > 1e-12 {
			t.Errorf("%q: loss %.15g, want %.15g", lt, st.Loss, want)
		}
	}
	if _, err := m.GRPOLoss(rs, GRPOObjective{LossType: "ppo"}, nil); err == nil {
		t.Error("unknown loss type accepted")
	}
}

func TestReadGRPOErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"prompt":"a","answer":"b"}` + "\n{oops\n", "line 2"},
		{`{"prompt":"a"}`, "line 1: want a field answer"},
		{`{"answer":"a"}`, "line 1: want a non-empty string field prompt"},
		{`{"prompt":"","answer":"a"}`, "line 1: want a non-empty"},
		{`{"prompt":"a","answer":[1]}`, "line 1: want a field answer"},
		{"\n\n", "no examples"},
	} {
		if _, err := ReadGRPO(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	ex, err := ReadGRPO(strings.NewReader("\n" + `{"prompt":"Q: 1+2=\nA:","answer":"3"}` + "\n" + `{"prompt":"x","answer":1081}`))
	if err != nil || len(ex) != 2 || ex[0].Answer != "3" || ex[0].Prompt != "Q: 1+2=\nA:" || ex[1].Answer != "1081" {
		t.Fatalf("%+v %v", ex, err)
	}
}

func FuzzReadGRPO(f *testing.F) {
	f.Add(`{"prompt":"a","answer":"b"}`)
	f.Add(`{"prompt":"a","answer":12.5}`)
	f.Add("{\n")
	f.Fuzz(func(t *testing.T, s string) {
		ex, err := ReadGRPO(strings.NewReader(s))
		if err == nil && len(ex) == 0 {
			t.Fatal("no error and no examples")
		}
		for _, e := range ex {
			if e.Prompt == "" {
				t.Fatal("empty prompt accepted")
			}
		}
	})
}

// randomLoRA gives m PEFT-shaped adapters with random A and B, so that
// the adapted model differs from the base.
func randomLoRA(m *Model[float32], seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	lo := &LoRA[float32]{R: 4, Alpha: 8, Scale: 2, Modules: []string{"q_proj", "v_proj", "down_proj"}, A: map[string][]float32{}, B: map[string][]float32{}}
	for l := range m.Config.NumLayers {
		for _, mod := range lo.Modules {
			path := modulePath[mod]
			in, out := m.dims(path)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for i := range a {
				a[i] = float32(0.1 * r.NormFloat64())
			}
			for i := range b {
				b[i] = float32(0.1 * r.NormFloat64())
			}
			lo.A[LayerName(l, path)], lo.B[LayerName(l, path)] = a, b
		}
	}
	m.LoRA, m.Frozen = lo, true
}

// TestPolicyEngine checks that the engine running the folded policy
// (sampling) computes the logits of the training forward with its
// adapters (the loss): two implementations of the same policy.
func TestPolicyEngine(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	randomLoRA(m, 3)
	em, err := PolicyEngine(m)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	tokens := []int{256, 81, 58, 32, 50, 56, 57, 43, 54, 50, 51, 61, 10, 65, 58, 32, 57}
	want := m.Forward(tokens).Logits
	got, err := em.NewSession(len(tokens)).ForwardAll(tokens)
	if err != nil {
		t.Fatal(err)
	}
	base, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	plain, _ := base.NewSession(len(tokens)).ForwardAll(tokens)
	var worst, moved float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		moved = math.Max(moved, math.Abs(float64(plain[i]-want[i])))
	}
	if worst > 1e-3 || moved < 0.1 {
		t.Fatalf("max |logit difference| %g (want ≤ 1e-3); adapters moved logits by %g (want ≥ 0.1)", worst, moved)
	}
}

// TestSampleGroup checks the sampler's first-token frequencies against
// the softmax of the engine's logits at temperature 0.8 and 1, and that
// completions stop after the end-of-sequence token or at maxNew.
func TestSampleGroup(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	em, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	prompt := []int{256, 81, 58, 32, 50, 56, 57, 43, 54, 50, 51, 61, 10, 65, 58}
	logits, err := em.NewSession(0).Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float64{1, 0.8} {
		p := make([]float64, len(logits))
		var sum float64
		for i, v := range logits {
			p[i] = math.Exp(float64(v) / temp)
			sum += p[i]
		}
		const n = 4000
		comps, err := SampleGroup(context.Background(), em, prompt, n, 1, temp, nil, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		count := make([]float64, len(p))
		for _, c := range comps {
			count[c[0]]++
		}
		for i := range p {
			p[i] /= sum
			// 5 binomial standard deviations, plus slack for tiny p.
			if tol := 5*math.Sqrt(p[i]*(1-p[i])/n) + 1e-3; math.Abs(count[i]/n-p[i]) > tol {
				t.Errorf("T %g token %d: frequency %.4f, probability %.4f", temp, i, count[i]/n, p[i])
			}
		}
	}
	eos := map[int]bool{257: true}
	comps, err := SampleGroup(context.Background(), em, prompt, 8, 6, 1, eos, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comps {
		for j, tk := range c {
			if eos[tk] && j != len(c)-1 {
				t.Fatalf("completion %v goes on after the end-of-sequence token", c)
			}
		}
		if len(c) > 6 || (len(c) < 6 && !eos[c[len(c)-1]]) {
			t.Fatalf("completion %v: longer than 6 tokens, or stopped early without the end token", c)
		}
	}
}

// TestGRPORun runs a few GRPO steps on skills-small with an exact-match
// reward and checks that a seed reproduces the run, that the adapters
// move the policy away from the reference (KL > 0 after the first step),
// that the statistics are sane and that the adapters end in evaluation
// mode.
func TestGRPORun(t *testing.T) {
	if testing.Short() {
		t.Skip("samples and trains on skills-small")
	}
	dir := testutil.Shared(t, "models/skills-small")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var data []GRPOExample
	for a := 100; a < 120; a++ {
		b := (a * 37) % 900
		data = append(data, GRPOExample{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, b), Answer: fmt.Sprint(a + b)})
	}
	reward := func(_, completion, answer string) (float64, error) {
		if strings.TrimSpace(completion) == answer {
			return 1, nil
		}
		return 0, nil
	}
	cfg := DefaultGRPOConfig()
	cfg.Steps, cfg.BatchSize, cfg.NumGenerations, cfg.MaxCompletion, cfg.LR = 3, 8, 4, 6, 1e-2
	cfg.Dropout = 0.1 // the loss's masks come from the seed too
	run := func() []GRPOStep {
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		lo, hist, err := GRPO(context.Background(), m, tok, data, reward, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if lo.Dropout != 0.1 || lo.DropRNG != nil {
			t.Fatalf("adapters: dropout %v, mask stream %v; want 0.1 and none (evaluation mode)", lo.Dropout, lo.DropRNG)
		}
		return hist
	}
	h1, h2 := run(), run()
	for i := range h1 {
		a, b := h1[i], h2[i]
		a.Time, b.Time = 0, 0
		if a != b {
			t.Fatalf("step %d: %+v then %+v with the same seed", i+1, a, b)
		}
		if a.Reward < 0 || a.Reward > 1 || a.CompletionLen < 1 || a.CompletionLen > 6 || a.Tokens == 0 {
			t.Fatalf("step %d: %+v", i+1, a)
		}
	}
	if h1[0].KL != 0 || h1[2].KL <= 0 {
		t.Fatalf("KL %g at step 1 (adapters B = 0: want 0), %g at step 3 (want > 0)", h1[0].KL, h1[2].KL)
	}
}
