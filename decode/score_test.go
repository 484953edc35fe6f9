package decode

import (
	"math"
	"slices"
	"testing"
)

func TestNLL(t *testing.T) {
	a := markov([][]float64{{0.5, 0.25, 0.25}, {0.25, 0.5, 0.25}, {0.25, 0.25, 0.5}})
	b := fixed(0.25, 0.25, 0.5)
	ids := []int{0, 1, 2}
	// Model a alone: -log p(1|0) - log p(2|1) = -log .25 - log .25.
	sum, n, err := NLL([]Session{a}, nil, 3, ids)
	if err != nil || n != 2 || math.Abs(sum-2*math.Log(4)) > 1e-6 {
		t.Fatalf("NLL = %v over %d, %v; want %v", sum, n, err, 2*math.Log(4))
	}
	// Prob-mean: p(1|0) = (.25+.25)/2, p(2|1) = (.25+.5)/2.
	sum, _, err = NLL([]Session{a, b}, &Fusion{Mode: ProbMean}, 3, ids)
	want := -math.Log(0.25) - math.Log(0.375)
	if err != nil || math.Abs(sum-want) > 1e-6 {
		t.Fatalf("prob-mean NLL = %v, want %v", sum, want)
	}
	// Long inputs cross chunk boundaries and give the same per-token value.
	long := make([]int, 600)
	for i := range long {
		long[i] = i % 3
	}
	sum, n, _ = NLL([]Session{a}, nil, 3, long)
	if n != 599 || math.Abs(sum/599-math.Log(4)) > 1e-6 {
		t.Fatalf("long text: mean %v over %d", sum/float64(n), n)
	}
	if _, _, err := NLL([]Session{a}, nil, 3, []int{0}); err == nil {
		t.Error("single token accepted")
	}
	if _, _, err := NLL([]Session{a}, nil, 3, []int{0, 7}); err == nil {
		t.Error("out-of-vocabulary id accepted")
	}
	// Only the last prediction: a gives p(2|1) = .25, b gives .5.
	if sum, n, err := NLLFrom([]Session{a}, nil, 3, ids, 2); err != nil || n != 1 || math.Abs(sum-math.Log(4)) > 1e-6 {
		t.Fatalf("NLLFrom = %v over %d, %v", sum, n, err)
	}
	if _, _, err := NLLFrom([]Session{a}, nil, 3, ids, 3); err == nil {
		t.Error("empty scoring range accepted")
	}
	order, mean, err := RankByNLL([]Session{b, a}, 3, [][]int{ids}, nil)
	// b: -log .25 - log .5; a: 2 log 4 (worse).
	if err != nil || !slices.Equal(order, []int{0, 1}) || math.Abs(mean[0]-(math.Log(4)+math.Log(2))/2) > 1e-6 {
		t.Fatalf("RankByNLL = %v %v %v", order, mean, err)
	}
	// Scoring only the answer: on [0 0 2] from position 2, a gives
	// p(2|0) = .25 and b gives .5, although a predicts the first 0 better.
	order, mean, err = RankByNLL([]Session{a, b}, 3, [][]int{{0, 0, 2}}, []int{2})
	if err != nil || !slices.Equal(order, []int{1, 0}) || math.Abs(mean[1]-math.Log(2)) > 1e-6 {
		t.Fatalf("RankByNLL from = %v %v %v", order, mean, err)
	}
}

func TestStopWriter(t *testing.T) {
	tests := []struct {
		chunks []string
		stops  []string
		want   string
		stop   bool
	}{
		{[]string{"Hello", " wor", "ld"}, nil, "Hello world", false},
		{[]string{"Hello", " wor", "ld"}, []string{"world"}, "Hello ", true},
		{[]string{"ab", "cX", "Yd"}, []string{"XY"}, "abc", true},
		{[]string{"ab", "cX", "Zd"}, []string{"XY"}, "abcXZd", false},
		{[]string{"one\n\nt", "wo"}, []string{"\n\n", "wo"}, "one", true},
		{[]string{"é", "è"}, []string{"èx"}, "éè", false},
	}
	for _, tc := range tests {
		var w stringsWriter
		s := &stopWriter{stops: tc.stops, w: &w}
		stopped := false
		for _, c := range tc.chunks {
			if s.add(c) {
				stopped = true
				break
			}
			// What was written so far is never past a possible stop.
		}
		if !stopped {
			s.flush()
		}
		if s.out.String() != tc.want || string(w) != tc.want || stopped != tc.stop {
			t.Errorf("%q with stops %q: got %q (written %q, stop %v), want %q", tc.chunks, tc.stops, s.out.String(), string(w), stopped, tc.want)
		}
	}
}

type stringsWriter []byte

func (w *stringsWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
