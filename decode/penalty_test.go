package decode

import (
	"slices"
	"testing"
)

// TestRepeatPenalty checks the repetition penalty against values derived by
// hand from the rule llama.cpp (llama_sampler_penalties_apply) and Hugging
// Face (RepetitionPenaltyLogitsProcessor) share: a seen token's score is
// divided by the penalty when positive, multiplied when not, once however
// often it occurs.
func TestRepeatPenalty(t *testing.T) {
	scores := []float32{2, -1, 0.5, 3, 0, -4}
	for _, tc := range []struct {
		name    string
		penalty float64
		lastN   int
		history []int
		want    []float32
	}{
		{"whole history", 2, 0, []int{0, 1, 1, 4}, []float32{1, -2, 0.5, 3, 0, -4}},
		{"last two", 2, 2, []int{0, 1, 1, 4}, []float32{2, -2, 0.5, 3, 0, -4}},
		{"window longer than history", 1.25, 64, []int{3, 5}, []float32{2, -1, 0.5, 2.4, 0, -5}},
		{"off at 1", 1, 0, []int{0, 1}, scores},
		{"off at 0", 0, 0, []int{0, 1}, scores},
		{"ids outside the vocabulary ignored", 2, 0, []int{-1, 6, 100, 2}, []float32{2, -1, 0.25, 3, 0, -4}},
		{"no history", 2, 0, nil, scores},
	} {
		s, err := NewSampler(SamplerConfig{RepeatPenalty: tc.penalty, RepeatLastN: tc.lastN})
		if err != nil {
			t.Fatal(err)
		}
		in := slices.Clone(scores)
		got := s.Penalize(in, tc.history)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if !slices.Equal(in, scores) {
			t.Errorf("%s: Penalize changed its input to %v", tc.name, in)
		}
		// A second call must not see the first call's marks.
		if got := s.Penalize(in, []int{5}); tc.penalty > 1 && got[0] != 2 {
			t.Errorf("%s: a second call penalized token 0: %v", tc.name, got)
		}
	}
}

// TestRepeatPenaltyGreedy: the penalty changes a greedy choice exactly when
// the penalized score falls below the runner-up.
func TestRepeatPenaltyGreedy(t *testing.T) {
	scores := []float32{3, 2}
	for _, tc := range []struct {
		penalty float64
		want    int
	}{{1, 0}, {1.2, 0}, {1.6, 1}, {2, 1}} { // 3/1.2 = 2.5 > 2; 3/1.6 = 1.875 < 2
		s, _ := NewSampler(SamplerConfig{RepeatPenalty: tc.penalty})
		if got := s.SampleAfter(scores, []int{0}); got != tc.want {
			t.Errorf("penalty %v: chose %d, want %d", tc.penalty, got, tc.want)
		}
	}
	if _, err := NewSampler(SamplerConfig{RepeatPenalty: -1}); err == nil {
		t.Error("a negative repeat penalty was accepted")
	}
}
