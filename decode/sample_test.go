package decode

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// logits whose softmax at temperature 1 is exactly p.
func logitsOf(p ...float64) []float32 {
	x := make([]float32, len(p))
	for i, q := range p {
		if q == 0 {
			x[i] = float32(math.Inf(-1))
		} else {
			x[i] = float32(math.Log(q))
		}
	}
	return x
}

func TestSamplerProbs(t *testing.T) {
	base := logitsOf(0.4, 0.3, 0.15, 0.1, 0.05)
	tests := []struct {
		name string
		cfg  SamplerConfig
		want []float64 // hand-computed renormalized distributions
	}{
		{"greedy", SamplerConfig{}, []float64{1, 0, 0, 0, 0}},
		{"plain", SamplerConfig{Temperature: 1}, []float64{0.4, 0.3, 0.15, 0.1, 0.05}},
		{"top-k 2", SamplerConfig{Temperature: 1, TopK: 2}, []float64{0.4 / 0.7, 0.3 / 0.7, 0, 0, 0}},
		// cumulative 0.4, 0.7, 0.85: the first set reaching 0.8 has three tokens
		{"top-p 0.8", SamplerConfig{Temperature: 1, TopP: 0.8}, []float64{0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0}},
		// keep p >= 0.3*0.4 = 0.12
		{"min-p 0.3", SamplerConfig{Temperature: 1, MinP: 0.3}, []float64{0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0}},
		{"top-k then top-p", SamplerConfig{Temperature: 1, TopK: 4, TopP: 0.5}, []float64{0.4 / 0.7, 0.3 / 0.7, 0, 0, 0}},
		// top-p reads the top 3 renormalized (0.47, 0.82 of 0.85), as
		// Hugging Face and llama.cpp do: two tokens reach 0.8, not three
		{"top-k 3 then top-p 0.8", SamplerConfig{Temperature: 1, TopK: 3, TopP: 0.8}, []float64{0.4 / 0.7, 0.3 / 0.7, 0, 0, 0}},
		// temperature 0.5 squares the probabilities before normalizing
		{"temperature 0.5", SamplerConfig{Temperature: 0.5}, func() []float64 {
			s := 0.16 + 0.09 + 0.0225 + 0.01 + 0.0025
			return []float64{0.16 / s, 0.09 / s, 0.0225 / s, 0.01 / s, 0.0025 / s}
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSampler(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Probs(base)
			for i := range tc.want {
				if math.Abs(got[i]-tc.want[i]) > 1e-6 {
					t.Fatalf("probs = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestSamplerFrequencies draws many tokens and checks each frequency
// against the truncated, renormalized distribution within 5 standard errors.
func TestSamplerFrequencies(t *testing.T) {
	base := logitsOf(0.4, 0.3, 0.15, 0.1, 0.05)
	cfg := SamplerConfig{Temperature: 1, TopP: 0.8, Seed: 42}
	want := []float64{0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0}
	s, _ := NewSampler(cfg)
	const n = 20000
	counts := make([]int, len(base))
	for range n {
		counts[s.Sample(base)]++
	}
	for i, p := range want {
		f := float64(counts[i]) / n
		se := math.Sqrt(p * (1 - p) / n)
		if p == 0 && counts[i] != 0 || math.Abs(f-p) > 5*se+1e-12 {
			t.Errorf("token %d: frequency %.4f, want %.4f (±%.4f)", i, f, p, 5*se)
		}
	}
	// Same seed, same draws.
	a, _ := NewSampler(cfg)
	b, _ := NewSampler(cfg)
	for i := range 100 {
		if x, y := a.Sample(base), b.Sample(base); x != y {
			t.Fatalf("draw %d differs with the same seed: %d vs %d", i, x, y)
		}
	}
}

func TestSamplerValidate(t *testing.T) {
	bad := []SamplerConfig{
		{Temperature: -1}, {TopK: -2}, {TopP: 1.5}, {MinP: -0.1}, {Temperature: math.NaN()},
	}
	for _, c := range bad {
		if _, err := NewSampler(c); err == nil {
			t.Errorf("NewSampler(%+v) accepted invalid settings", c)
		}
	}
}

func TestArgmaxTies(t *testing.T) {
	if got := Argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Errorf("Argmax = %d, want 1 (lowest id on ties)", got)
	}
	nan := float32(math.NaN())
	if got := Argmax([]float32{nan, 1, 2}); got != 2 {
		t.Errorf("Argmax with NaN first = %d, want 2", got)
	}
}

// TestFilterMatchesFullSort: the partial selection behind top-k and top-p
// keeps exactly the tokens a stable sort of the whole vocabulary keeps
// (written here the plain way), with many ties, and gives the same
// renormalized distribution bit for bit.
func TestFilterMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := func(p []float64, k int, topP float64) []float64 {
		p = slices.Clone(p)
		if !(k > 0 && k < len(p)) && !(topP > 0 && topP < 1) {
			return p // no filter: left as it is
		}
		idx := make([]int, len(p))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
		keep := len(p)
		if k > 0 && k < keep {
			keep = k
		}
		if topP > 0 && topP < 1 {
			mass := 1.0 // top-p reads the top k renormalized
			if keep < len(p) {
				mass = 0
				for _, i := range idx[:keep] {
					mass += p[i]
				}
			}
			c := 0.0
			for i := 0; i < keep; i++ {
				c += p[idx[i]]
				if c >= topP*mass {
					keep = i + 1
					break
				}
			}
		}
		for _, i := range idx[keep:] {
			p[i] = 0
		}
		sum := 0.0
		for _, q := range p {
			sum += q
		}
		for i := range p {
			p[i] /= sum
		}
		return p
	}
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(300)
		p := make([]float64, n)
		levels := 1 + rng.IntN(8) // few distinct values: many ties
		sum := 0.0
		for i := range p {
			p[i] = float64(1+rng.IntN(levels)) * rng.Float64()
			if trial%2 == 0 {
				p[i] = float64(1 + rng.IntN(levels))
			}
			sum += p[i]
		}
		for i := range p {
			p[i] /= sum
		}
		k := []int{0, 1, 3, 40, n, n + 5}[rng.IntN(6)]
		topP := []float64{0, 1, 0.1, 0.5, 0.9, 0.999}[rng.IntN(6)]
		s, err := NewSampler(SamplerConfig{Temperature: 1, TopK: k, TopP: topP})
		if err != nil {
			t.Fatal(err)
		}
		s.idx = make([]int, n)
		got := slices.Clone(p)
		s.filter(got)
		if want := ref(p, k, topP); !slices.Equal(got, want) {
			t.Fatalf("n %d, top-k %d, top-p %v:\n got %v\nwant %v", n, k, topP, got, want)
		}
	}
}
