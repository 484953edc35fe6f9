package decode

import (
	"math"
	"testing"
)

func TestQuantile(t *testing.T) {
	xs := []float64{4, 1, 3, 2}
	for _, tc := range []struct{ q, want float64 }{{0, 1}, {1, 4}, {0.5, 2.5}, {0.25, 1.75}} {
		if got := Quantile(xs, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestCascade(t *testing.T) {
	// Weak model: after token 0 it is unsure (top-1 0.5), after token 1 sure (0.9).
	// Each answer is one token then EOS (token 3, probability 1 after 2 or 3).
	weak := markov([][]float64{{0, 0, 0.5, 0.5}, {0, 0, 0.9, 0.1}, {0, 0, 0, 1}, {0, 0, 0, 1}})
	strong := markov([][]float64{{0, 0, 1, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {0, 0, 0, 1}})
	c := &Cascade{Sessions: []Session{weak, strong}, EOS: []int{3}, MaxTokens: 5}
	// Confidences on dev prompts [0] and [1]: weak answers 2 then EOS, so
	// (0.5+1)/2 = 0.75 and (0.9+1)/2 = 0.95; the median is 0.85.
	if err := c.Calibrate([][]int{{0}, {1}}, 0.5); err != nil {
		t.Fatal(err)
	}
	if math.Abs(c.Thresholds[0]-0.85) > 1e-9 {
		t.Fatalf("threshold %v, want 0.85", c.Thresholds[0])
	}
	// Quantile 0 is the lowest confidence, not the default.
	if err := c.Calibrate([][]int{{0}, {1}}, 0); err != nil || math.Abs(c.Thresholds[0]-0.75) > 1e-9 {
		t.Fatalf("quantile 0: threshold %v (%v), want 0.75", c.Thresholds, err)
	}
	if err := c.Calibrate([][]int{{0}, {1}}, 0.5); err != nil {
		t.Fatal(err)
	}
	r, err := c.Run([]int{1})
	if err != nil || r.Level != 0 || len(r.Confidence) != 1 {
		t.Fatalf("confident prompt: %+v, %v", r, err)
	}
	r, err = c.Run([]int{0})
	if err != nil || r.Level != 1 || len(r.Confidence) != 2 || math.Abs(r.Confidence[0]-0.75) > 1e-9 || r.Tokens[0] != 2 {
		t.Fatalf("unsure prompt: %+v, %v", r, err)
	}
	if _, err := (&Cascade{Sessions: []Session{weak, strong}}).Run([]int{0}); err == nil {
		t.Error("uncalibrated cascade ran")
	}
}

// TestCascadeConfidence checks MoCo's step confidence (max of the softmax
// over the top 5 scores) on hand-computed values.
func TestCascadeConfidence(t *testing.T) {
	l := []float32{0, 1, 2, 3, 4, 5, 6}
	sum := func(xs ...float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += math.Exp(x)
		}
		return s
	}
	mk := func(c SamplerConfig) *Sampler {
		s, err := NewSampler(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name string
		s    *Sampler
		want float64
	}{
		{"greedy: raw logits, top 5", nil, 1 / sum(0, -1, -2, -3, -4)},
		{"greedy sampler", mk(SamplerConfig{}), 1 / sum(0, -1, -2, -3, -4)},
		{"temperature 0.5", mk(SamplerConfig{Temperature: 0.5}), 1 / sum(0, -2, -4, -6, -8)},
		// softmax at T=1: 0.636, 0.234, ...: top-p 0.8 keeps two tokens.
		{"top-p 0.8", mk(SamplerConfig{Temperature: 1, TopP: 0.8}), 1 / sum(0, -1)},
	}
	for _, c := range cases {
		if got := CascadeConfidence(l, c.s); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := CascadeConfidence([]float32{2, 2}, nil); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("two tokens: %v", got)
	}
}
