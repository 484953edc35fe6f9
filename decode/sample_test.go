package decode

import (
	"cmp"
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

// TestSamplerTopKTies: top-k keeps every token tied with the k-th, as
// Hugging Face's TopKLogitsWarper removes only the scores below the k-th,
// and top-p after it reads all of them renormalized.
func TestSamplerTopKTies(t *testing.T) {
	tied := logitsOf(0.3, 0.2, 0.2, 0.2, 0.1)
	tests := []struct {
		name   string
		logits []float32
		cfg    SamplerConfig
		want   []float64 // hand-computed
	}{
		// the 2nd is 0.2, as are the 3rd and 4th: 0.9 kept
		{"tie at the k-th", tied, SamplerConfig{TopK: 2}, []float64{0.3 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0}},
		{"tie ending at the k-th", tied, SamplerConfig{TopK: 4}, []float64{0.3 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0}},
		{"tie at the k-th, ids apart", logitsOf(0.1, 0.2, 0.3, 0.2, 0.2), SamplerConfig{TopK: 2},
			[]float64{0, 0.2 / 0.9, 0.3 / 0.9, 0.2 / 0.9, 0.2 / 0.9}},
		{"tie at the top, k 1", logitsOf(0.1, 0.3, 0.2, 0.3, 0.1), SamplerConfig{TopK: 1}, []float64{0, 0.5, 0, 0.5, 0}},
		// the tie is above the 3rd (0.2): exactly three kept
		{"tie above the k-th", logitsOf(0.3, 0.3, 0.2, 0.1, 0.1), SamplerConfig{TopK: 3}, []float64{0.3 / 0.8, 0.3 / 0.8, 0.2 / 0.8, 0, 0}},
		{"all tied", logitsOf(0.2, 0.2, 0.2, 0.2, 0.2), SamplerConfig{TopK: 2}, []float64{0.2, 0.2, 0.2, 0.2, 0.2}},
		// top-p reads 0.3, 0.2, 0.2, 0.2 of 0.9: cumulative 0.3, 0.5, 0.7,
		// 0.9 against top-p times 0.9; the cut keeps the lower ids of a tie
		{"tie, then top-p 0.3", tied, SamplerConfig{TopK: 2, TopP: 0.3}, []float64{1, 0, 0, 0, 0}},
		{"tie, then top-p 0.6", tied, SamplerConfig{TopK: 2, TopP: 0.6}, []float64{0.3 / 0.7, 0.2 / 0.7, 0.2 / 0.7, 0, 0}},
		{"tie, then top-p 0.9", tied, SamplerConfig{TopK: 2, TopP: 0.9}, []float64{0.3 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Temperature = 1
			s, err := NewSampler(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Probs(tc.logits)
			for i := range tc.want {
				if math.Abs(got[i]-tc.want[i]) > 1e-6 {
					t.Fatalf("probs = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// hfWarp transcribes, line by line, the warpers Hugging Face's generate
// chains when sampling (transformers/generation/logits_process.py, with
// min_tokens_to_keep 1): TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, MinPLogitsWarper, then the softmax. A topK of 0 and a
// topP outside (0, 1) leave their warper out, as moco's settings do.
func hfWarp(logits []float32, temperature float64, topK int, topP, minP float64) []float64 {
	inf := math.Inf(-1)
	softmax := func(x []float64) []float64 {
		m := slices.Max(x)
		out := make([]float64, len(x))
		var sum float64
		for i, v := range x {
			out[i] = math.Exp(v - m)
			sum += out[i]
		}
		for i := range out {
			out[i] /= sum
		}
		return out
	}
	// scores_processed = scores / self.temperature
	scores := make([]float64, len(logits))
	for i, l := range logits {
		scores[i] = float64(l) / temperature
	}
	if topK > 0 {
		// top_k = min(self.top_k, scores.size(-1))
		k := min(topK, len(scores))
		// indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
		top := slices.Clone(scores)
		slices.SortFunc(top, func(a, b float64) int { return cmp.Compare(b, a) })
		kth := top[k-1]
		for i, v := range scores {
			if v < kth {
				scores[i] = inf
			}
		}
	}
	if topP > 0 && topP < 1 {
		// sorted_logits, sorted_indices = torch.sort(scores, descending=False)
		// torch.sort does not promise an order among ties (stable=False):
		// take the higher id first, so that the cut keeps the lower ids,
		// the order moco documents.
		idx := make([]int, len(scores))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int {
			if c := cmp.Compare(scores[a], scores[b]); c != 0 {
				return c
			}
			return cmp.Compare(b, a)
		})
		sorted := make([]float64, len(idx))
		for j, i := range idx {
			sorted[j] = scores[i]
		}
		// cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
		cum := softmax(sorted)
		for j := 1; j < len(cum); j++ {
			cum[j] += cum[j-1]
		}
		// sorted_indices_to_remove = cumulative_probs <= (1 - self.top_p)
		// sorted_indices_to_remove[..., -self.min_tokens_to_keep :] = 0
		for j := 0; j < len(cum)-1; j++ {
			if cum[j] <= 1-topP {
				scores[idx[j]] = inf
			}
		}
	}
	if minP > 0 {
		// probs = torch.softmax(scores, dim=-1)
		probs := softmax(scores)
		// top_probs = probs.amax(dim=-1, keepdim=True)
		top := slices.Max(probs)
		// tokens_to_remove = probs < scaled_min_p, but for the top one
		best := slices.Index(probs, top)
		for i, q := range probs {
			if q < minP*top && i != best {
				scores[i] = inf
			}
		}
	}
	return softmax(scores)
}

// TestSamplerMatchesTransformers holds the sampler against hfWarp on
// random scores drawn from a few values, so that ties are everywhere:
// the same tokens kept, with the same probabilities. The top-p and min-p
// values are not simple fractions, so that rounding cannot decide a cut.
func TestSamplerMatchesTransformers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(200)
		values := make([]float32, 1+rng.IntN(6))
		for i := range values {
			values[i] = float32(3 * rng.NormFloat64())
		}
		if trial%4 == 0 {
			values = append(values, float32(math.Inf(-1))) // masked tokens
		}
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = values[rng.IntN(len(values))]
		}
		logits[rng.IntN(n)] = values[0] // one finite score at least
		cfg := SamplerConfig{
			Temperature: []float64{1, 0.7, 1.6}[rng.IntN(3)],
			TopK:        []int{0, 1, 2, 3, 5, 17, n - 1, n, n + 3}[rng.IntN(9)],
			TopP:        []float64{0, 1, 1 / math.Pi, math.Ln2, 0.9137}[rng.IntN(5)],
			MinP:        []float64{0, 0.0613, 0.2718}[rng.IntN(3)],
		}
		s, err := NewSampler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Probs(logits)
		want := hfWarp(logits, cfg.Temperature, cfg.TopK, cfg.TopP, cfg.MinP)
		for i := range want {
			if (got[i] == 0) != (want[i] == 0) || math.Abs(got[i]-want[i]) > 1e-12 {
				t.Fatalf("%+v, logits %v:\n got %v\nwant %v", cfg, logits, got, want)
			}
		}
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
			for keep < len(p) && p[idx[keep]] == p[idx[k-1]] {
				keep++ // ties with the k-th stay
			}
		}
		if topP > 0 && topP < 1 {
			mass := 1.0 // top-p reads what top-k kept, renormalized
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
			if trial%3 == 0 && rng.IntN(2) == 0 {
				p[i] = 0 // ties at zero, as an underflowing softmax gives
			}
			sum += p[i]
		}
		if sum == 0 {
			p[0], sum = 1, 1
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
