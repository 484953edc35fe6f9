package decode

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func combineOnce(t *testing.T, c Combiner, logits ...[]float32) ([]float64, *Step) {
	t.Helper()
	s := &Step{Logits: logits, Defer: math.NaN(), Confidence: math.NaN()}
	dst := make([]float32, len(logits[0]))
	if err := c.Combine(dst, s); err != nil {
		t.Fatal(err)
	}
	return softmax64(dst), s
}

func TestFusion(t *testing.T) {
	a := logitsOf(0.5, 0.25, 0.25)
	b := logitsOf(0.25, 0.25, 0.5)
	// Hand-computed: geometric mean sqrt(p*q) = (.3536, .25, .3536) normalized;
	// weights 3:1 give p^.75 q^.25; the mixture is (p+q)/2.
	g := []float64{math.Sqrt(0.125), 0.25, math.Sqrt(0.125)}
	gs := g[0] + g[1] + g[2]
	w := []float64{math.Pow(0.5, .75) * math.Pow(0.25, .25), 0.25, math.Pow(0.25, .75) * math.Pow(0.5, .25)}
	ws := w[0] + w[1] + w[2]
	tests := []struct {
		name string
		f    *Fusion
		want []float64
	}{
		{"logit-mean", &Fusion{}, []float64{g[0] / gs, g[1] / gs, g[2] / gs}},
		{"logit-mean weighted", &Fusion{Weights: []float64{3, 1}}, []float64{w[0] / ws, w[1] / ws, w[2] / ws}},
		{"prob-mean", &Fusion{Mode: ProbMean}, []float64{0.375, 0.25, 0.375}},
		{"prob-mean weighted", &Fusion{Mode: ProbMean, Weights: []float64{3, 1}}, []float64{0.4375, 0.25, 0.3125}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := combineOnce(t, tc.f, a, b)
			if !near(got, tc.want, 1e-6) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// A model fused with itself is that model.
	for _, m := range []FusionMode{LogitMean, ProbMean} {
		got, _ := combineOnce(t, &Fusion{Mode: m}, a, a)
		if !near(got, []float64{0.5, 0.25, 0.25}, 1e-6) {
			t.Errorf("%v self-fusion = %v", m, got)
		}
	}
	if _, err := normWeights([]float64{1}, 2); err == nil {
		t.Error("weight count mismatch accepted")
	}
	if _, err := normWeights([]float64{-1, 2}, 2); err == nil {
		t.Error("negative weight accepted")
	}
}

func TestContrastive(t *testing.T) {
	base := []float32{1, 2, 0}
	exp := []float32{3, 0, 1}
	anti := []float32{1, 1, 1}
	// base + 0.5*(exp-anti) = (2, 1.5, 0)
	e := []float64{math.Exp(2), math.Exp(1.5), 1}
	s := e[0] + e[1] + e[2]
	got, _ := combineOnce(t, &Contrastive{Base: 0, Experts: []int{1}, Anti: []int{2}, Alpha: 0.5}, base, exp, anti)
	if !near(got, []float64{e[0] / s, e[1] / s, e[2] / s}, 1e-6) {
		t.Errorf("got %v", got)
	}
	if err := (&Contrastive{Base: 3}).Combine(make([]float32, 3), &Step{Logits: [][]float32{base}}); err == nil {
		t.Error("out-of-range base accepted")
	}
}

func TestNudgingStateMachine(t *testing.T) {
	// Tokens 0..3; tokens 0 and 1 start words, 2 and 3 continue them.
	ws := []bool{true, true, false, false}
	sure := logitsOf(0.9, 0.05, 0.03, 0.02)    // base confident, picks 0
	unsure := logitsOf(0.3, 0.3, 0.2, 0.2)     // base top-1 0.3 < 0.4
	nudgeCont := logitsOf(0.1, 0.1, 0.7, 0.1)  // nudger continues the word (2)
	nudgeStart := logitsOf(0.1, 0.7, 0.1, 0.1) // nudger starts a word (1)
	n := &Nudging{Base: 0, Nudger: 1, Gamma: DefaultGamma, WordStart: ws}
	steps := []struct {
		base, nudger []float32
		want         string
	}{
		{sure, nudgeCont, "nudger"},    // the first word is the nudger's, the base sure or not
		{sure, nudgeCont, "nudger"},    // and goes on while the nudger continues it
		{sure, nudgeStart, "base"},     // word done and base sure: hand back
		{unsure, nudgeStart, "nudger"}, // base unsure: nudger takes over
		{sure, nudgeCont, "nudger"},    // base sure again, but the nudger's word is unfinished
		{sure, nudgeStart, "base"},     // word done and base sure: hand back
		{sure, nudgeCont, "base"},      // not nudging: word continuation doesn't matter
		{unsure, nudgeCont, "nudger"},  // unsure again
		{unsure, nudgeStart, "nudger"}, // still unsure: nudger keeps going
	}
	for i, st := range steps {
		got, s := combineOnce(t, n, st.base, st.nudger)
		if s.Source != st.want {
			t.Fatalf("step %d: source %s, want %s", i, s.Source, st.want)
		}
		src := st.base
		if st.want == "nudger" {
			src = st.nudger
		}
		if !near(got, softmax64(src), 1e-6) {
			t.Fatalf("step %d: distribution is not the %s's", i, st.want)
		}
		if math.Abs(s.Confidence-TopProb(st.base)) > 1e-6 {
			t.Fatalf("step %d: confidence %v", i, s.Confidence)
		}
	}
	n.Reset()
	for i, want := range []string{"nudger", "base"} {
		if _, s := combineOnce(t, n, sure, nudgeStart); s.Source != want {
			t.Errorf("after Reset, step %d: source %s, want %s (the nudger's first word)", i, s.Source, want)
		}
	}
}

// TestNudgingFirstWord follows MoCo's api_nudging by hand on a greedy run:
// it starts nudging with no nudger token accepted, so the nudger's first
// token is taken although the base is sure, then the nudger's "b" (no
// space: the word goes on), then the base's " c" once the nudger's next
// token starts a word and the base is sure.
func TestNudgingFirstWord(t *testing.T) {
	// Tokens: 0 BOS, 1 " a", 2 "b", 3 " c", 4 EOS.
	ws := []bool{true, true, false, true, true}
	base := markov([][]float64{{0, 0.05, 0.05, 0.9, 0}, {0, 0.05, 0.05, 0.9, 0}, {0, 0.05, 0.05, 0.9, 0}, {0, 0.05, 0.05, 0, 0.9}})
	nudger := markov([][]float64{{0, 0.9, 0.05, 0.05, 0}, {0, 0.05, 0.9, 0.05, 0}, {0, 0.05, 0.05, 0.9, 0}, {0, 0.05, 0.05, 0, 0.9}})
	var src []string
	l := &Lockstep{Sessions: []Session{base, nudger}, Combiner: &Nudging{Base: 0, Nudger: 1, Gamma: DefaultGamma, WordStart: ws},
		EOS: []int{4}, MaxTokens: 10, Trace: func(ts TraceStep) { src = append(src, ts.Source) }}
	got, err := l.Run([]int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{1, 2, 3}) || !slices.Equal(src, []string{"nudger", "nudger", "base", "base"}) {
		t.Errorf("tokens %v from %v, want [1 2 3] from the nudger, the nudger, the base (then EOS)", got, src)
	}
}

// TestNudgingGammaZero: at gamma 0 the base is never too unsure to write
// (after the first word, which is the nudger's), where the default 0.4
// would hand these steps over.
func TestNudgingGammaZero(t *testing.T) {
	ws := []bool{true, true, false, false}
	unsure := logitsOf(0.3, 0.3, 0.2, 0.2)
	nudgeStart := logitsOf(0.1, 0.7, 0.1, 0.1)
	n := &Nudging{Base: 0, Nudger: 1, Gamma: 0, WordStart: ws}
	n.Reset()
	combineOnce(t, n, unsure, nudgeStart)
	for i := range 3 {
		if _, s := combineOnce(t, n, unsure, nudgeStart); s.Source != "base" {
			t.Fatalf("step %d: source %s, want base", i+1, s.Source)
		}
	}
}

func TestTopK(t *testing.T) {
	got := topK([]float64{0.1, 0.4, 0.2, 0.3}, 3)
	want := []int{1, 3, 2}
	for i, w := range want {
		if got[i].ID != w {
			t.Fatalf("topK = %v, want ids %v", got, want)
		}
	}
}

func TestLockstepSingleGreedy(t *testing.T) {
	// 0 -> 1 -> 2 -> 3 (EOS)
	m := markov([][]float64{{0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0.1, 0.9}, {1, 0, 0, 0}})
	l := &Lockstep{Sessions: []Session{m}, EOS: []int{3}, MaxTokens: 10}
	var traced []TraceStep
	l.Trace = func(ts TraceStep) { traced = append(traced, ts) }
	got, err := l.Run([]int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("generated %v, want [1 2]", got)
	}
	if len(traced) != 3 || traced[2].Token != 3 || math.Abs(traced[2].Top[0].Prob-0.9) > 1e-6 {
		t.Fatalf("trace %+v", traced)
	}
	l.MaxTokens = 1
	if got, _ := l.Run([]int{0}, nil); len(got) != 1 {
		t.Fatalf("MaxTokens 1 generated %v", got)
	}
}

// TestLockstepConsumesEveryToken checks that each model sees the same history
// whoever chose the token.
func TestLockstepConsumesEveryToken(t *testing.T) {
	a := markov([][]float64{{0, 1, 0}, {0, 0, 1}, {1, 0, 0}})
	b := markov([][]float64{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}})
	l := &Lockstep{Sessions: []Session{a, b}, Combiner: &Nudging{Base: 0, Nudger: 1, Gamma: DefaultGamma}, MaxTokens: 5}
	got, err := l.Run([]int{0, 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]int{0, 1}, got[:len(got)-1]...) // the last token is never fed
	for _, m := range []*fakeSession{a, b} {
		if len(m.hist) != len(want) {
			t.Fatalf("history %v, want %v", m.hist, want)
		}
		for i := range want {
			if m.hist[i] != want[i] {
				t.Fatalf("history %v, want %v", m.hist, want)
			}
		}
	}
}

func TestDefaultContrastive(t *testing.T) {
	for _, tc := range []struct {
		n             int
		experts, anti []int
	}{{2, nil, []int{1}}, {3, []int{1}, []int{2}}, {5, []int{1, 2}, []int{3, 4}}, {4, []int{1}, []int{3}}} {
		c := DefaultContrastive(tc.n, 0.2)
		if fmt.Sprint(c.Experts) != fmt.Sprint(tc.experts) || fmt.Sprint(c.Anti) != fmt.Sprint(tc.anti) || c.Base != 0 {
			t.Errorf("n=%d: experts %v anti %v, want %v %v", tc.n, c.Experts, c.Anti, tc.experts, tc.anti)
		}
	}
}

// TestLockstepNoPerStepAllocations checks that a run's allocations do not
// grow with its length: the loop, the combiners and the sampler reuse their
// buffers.
func TestLockstepNoPerStepAllocations(t *testing.T) {
	table := [][]float64{{0.1, 0.6, 0.3}, {0.3, 0.1, 0.6}, {0.6, 0.3, 0.1}}
	for _, comb := range []Combiner{nil, &Fusion{}, &Fusion{Mode: ProbMean}, &Nudging{Base: 0, Nudger: 1, Gamma: DefaultGamma}, &Contrastive{Base: 0, Anti: []int{1}, Alpha: 0.2}} {
		allocs := func(n int) float64 {
			a, b := markov(table), markov(table)
			s, _ := NewSampler(SamplerConfig{Temperature: 1, TopP: 0.9, TopK: 2, Seed: 1})
			l := &Lockstep{Sessions: []Session{a, b}, Combiner: comb, Sampler: s, MaxTokens: n}
			l.Run([]int{0}, nil) // warm the buffers
			a.hist = make([]int, 0, 1024)
			b.hist = make([]int, 0, 1024)
			return testing.AllocsPerRun(5, func() { l.Run([]int{0}, nil) })
		}
		if short, long := allocs(10), allocs(200); long > short {
			t.Errorf("%T: %v allocations for 10 tokens, %v for 200", comb, short, long)
		}
	}
}

// TestLockstepTruncatesPaddedVocab: rows past the tokenizer's vocabulary
// (padded embeddings) are never chosen, even when their logits are largest.
func TestLockstepTruncatesPaddedVocab(t *testing.T) {
	padded := &fakeSession{next: func([]int) []float32 { return []float32{0, 2, 1, 9, 9} }}
	other := &fakeSession{next: func([]int) []float32 { return []float32{1, 0, 3, 9, 9, 9} }}
	l := &Lockstep{Sessions: []Session{padded, other}, Combiner: &Fusion{}, Vocab: 3, MaxTokens: 1}
	got, err := l.Run([]int{0}, nil)
	if err != nil || len(got) != 1 || got[0] != 2 { // means (0.5, 1, 2)
		t.Fatalf("got %v, %v; want [2]", got, err)
	}
	short := &fakeSession{next: func([]int) []float32 { return []float32{0, 1} }}
	if _, err := (&Lockstep{Sessions: []Session{short}, Vocab: 3}).Run([]int{0}, nil); err == nil {
		t.Error("a model with fewer logits than the vocabulary was accepted")
	}
}

// BenchmarkCombine measures each combiner alone on two models' logits, to
// set its cost against a forward pass (see BenchmarkGenerate's ns/token).
func BenchmarkCombine(b *testing.B) {
	for _, v := range []int{512, 32000} {
		l0, l1 := make([]float32, v), make([]float32, v)
		for i := range l0 {
			l0[i], l1[i] = float32(i%17)/3, float32(i%13)/2
		}
		sess := &fakeSession{hidden: func([]int) []float32 { return make([]float32, 64) }}
		for _, c := range []struct {
			name string
			comb Combiner
		}{
			{"logit-mean", &Fusion{}},
			{"prob-mean", &Fusion{Mode: ProbMean}},
			{"contrastive", DefaultContrastive(2, 0.2)},
			{"nudging", &Nudging{Base: 0, Nudger: 1, Gamma: DefaultGamma}},
			{"co-llm", &CoLLM{Base: 0, Assistant: 1, Head: &Head{W: make([]float64, 64)}, Threshold: DefaultThreshold}},
		} {
			b.Run(fmt.Sprintf("%s/V=%d", c.name, v), func(b *testing.B) {
				dst := make([]float32, v)
				st := &Step{Logits: [][]float32{l0, l1}, sessions: []Session{sess, sess}}
				b.ReportAllocs()
				for b.Loop() {
					if err := c.comb.Combine(dst, st); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestMoCoContrastive checks MoCo's rule on hand-computed logits:
// top1 + 0.2*(top1 - bottom1) with k = 1, and k = 2 over five models
// (the middle one unused).
func TestMoCoContrastive(t *testing.T) {
	l := [][]float32{{1, 2, 3}, {0, 1, 0}, {5, 5, 5}, {2, 0, 1}, {1, 1, 4}}
	cases := []struct {
		n, k int
		want []float32
	}{
		// 2 models: 1.2*l0 - 0.2*l1
		{2, 1, []float32{1.2, 2.2, 3.6}},
		// 5 models, k 2: l0 + 0.2*(l0 + l1 - l3 - l4)
		{5, 2, []float32{1 + 0.2*(1+0-2-1), 2 + 0.2*(2+1-0-1), 3 + 0.2*(3+0-1-4)}},
	}
	for _, c := range cases {
		ct, err := MoCoContrastive(c.n, c.k, 0.2)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, 3)
		if err := ct.Combine(dst, &Step{Logits: l[:c.n]}); err != nil {
			t.Fatal(err)
		}
		for i := range dst {
			if math.Abs(float64(dst[i]-c.want[i])) > 1e-5 {
				t.Errorf("n=%d k=%d: %v, want %v", c.n, c.k, dst, c.want)
				break
			}
		}
	}
	for _, bad := range [][2]int{{1, 1}, {3, 2}, {4, 0}} {
		if _, err := MoCoContrastive(bad[0], bad[1], 0.2); err == nil {
			t.Errorf("n=%d k=%d accepted", bad[0], bad[1])
		}
	}
}
