package decode

import (
	"math"
	"testing"
)

// Three-token Markov chains: the target and a deliberately different draft.
var (
	targetTable = [][]float64{{0.2, 0.5, 0.3}, {0.6, 0.1, 0.3}, {0.3, 0.3, 0.4}}
	draftTable  = [][]float64{{0.6, 0.2, 0.2}, {0.2, 0.2, 0.6}, {0.1, 0.8, 0.1}}
)

func TestSpeculativeGreedyMatchesTarget(t *testing.T) {
	// A 5-token chain where the draft agrees only sometimes.
	tt := [][]float64{{.1, .6, .1, .1, .1}, {.1, .1, .5, .2, .1}, {.5, .1, .1, .2, .1}, {.1, .1, .1, .1, .6}, {.1, .1, .1, .6, .1}}
	dt := [][]float64{{.1, .6, .1, .1, .1}, {.1, .1, .2, .5, .1}, {.5, .1, .1, .2, .1}, {.6, .1, .1, .1, .1}, {.1, .1, .1, .6, .1}}
	// Target alone.
	ref := &Lockstep{Sessions: []Session{markov(tt)}, MaxTokens: 23}
	want, err := ref.Run([]int{0, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]int(nil), want...)
	acc, prop := 0, 0
	for _, k := range []int{1, 2, 4, 7} {
		target, draft := markov(tt), markov(dt)
		sp := &Speculative{Target: target, Draft: draft, K: k, MaxTokens: 23}
		got, err := sp.Run([]int{0, 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("k=%d: %v, want %v", k, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("k=%d: %v, want %v", k, got, want)
			}
		}
		acc += sp.Accepted
		prop += sp.Proposed
		// The target verifies in batches: fewer calls than tokens.
		if k > 1 && target.calls >= len(want) {
			t.Errorf("k=%d: target called %d times for %d tokens", k, target.calls, len(want))
		}
	}
	if acc == 0 || acc == prop {
		t.Errorf("accepted %d of %d drafts: the test should exercise both outcomes", acc, prop)
	}
}

// TestSpeculativeSamplingDistribution draws many 3-token continuations and
// compares the joint frequencies of the first three tokens with the
// target's exact distribution (within 5 standard errors per cell).
func TestSpeculativeSamplingDistribution(t *testing.T) {
	s, _ := NewSampler(SamplerConfig{Temperature: 1, Seed: 7})
	sp := &Speculative{Target: markov(targetTable), Draft: markov(draftTable), Sampler: s, K: 2, MaxTokens: 3}
	const n = 30000
	counts := make([]int, 27)
	for range n {
		got, err := sp.Run([]int{0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[got[0]*9+got[1]*3+got[2]]++
	}
	for c := range 27 {
		a, b, d := c/9, c/3%3, c%3
		p := targetTable[0][a] * targetTable[a][b] * targetTable[b][d]
		f := float64(counts[c]) / n
		if se := math.Sqrt(p * (1 - p) / n); math.Abs(f-p) > 5*se {
			t.Errorf("sequence %d%d%d: frequency %.4f, target probability %.4f", a, b, d, f, p)
		}
	}
}

func TestSpeculativeEOSAndErrors(t *testing.T) {
	// Token 2 is EOS and the target's greedy choice after 1.
	tt := [][]float64{{.1, .8, .1}, {.1, .1, .8}, {.8, .1, .1}}
	sp := &Speculative{Target: markov(tt), Draft: markov(tt), EOS: []int{2}, MaxTokens: 10}
	got, err := sp.Run([]int{0}, nil)
	if err != nil || len(got) != 1 || got[0] != 1 {
		t.Fatalf("got %v, %v; want [1]", got, err)
	}
	if _, err := (&Speculative{Target: markov(tt)}).Run([]int{0}, nil); err == nil {
		t.Error("missing draft accepted")
	}
}
