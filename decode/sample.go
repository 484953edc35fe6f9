package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SamplerConfig chooses how a token is drawn from next-token scores.
//
// The scores are turned into a distribution in the order Hugging Face's
// generate uses: divide by Temperature, softmax, keep the TopK most likely
// tokens, keep the smallest set whose probability (among those top-k kept)
// reaches TopP, drop tokens whose probability is below MinP times the most
// likely one, renormalize.
// Top-k keeps every token tied with the k-th, so more than TopK may
// survive: Hugging Face's TopKLogitsWarper and vLLM drop only the tokens
// below the k-th (llama.cpp keeps exactly TopK). Where top-p's cut falls
// inside a tie, the lower ids stay (the torch.sort Hugging Face and vLLM
// use promises no order among ties).
// A Temperature of 0 means greedy decoding (the argmax, lowest id on ties);
// a TopK of 0, a TopP of 0 or 1 and a MinP of 0 disable those filters.
type SamplerConfig struct {
	Temperature float64
	TopK        int
	TopP        float64
	MinP        float64
	Seed        uint64
	// RepeatPenalty is the repetition penalty of Keskar et al. (CTRL) as
	// llama.cpp and Hugging Face apply it: before sampling, the score of
	// every token present among the last RepeatLastN tokens of the history
	// (the prompt included) is divided by the penalty when positive and
	// multiplied by it otherwise, once however often the token occurs. 0
	// and 1 are off; it acts in SampleAfter, also when greedy.
	RepeatPenalty float64
	// RepeatLastN is the window of the penalty (<= 0: the whole history,
	// Hugging Face's rule; llama.cpp's default is 64).
	RepeatLastN int
}

// DefaultSampler holds the defaults of moco generate's flags: llama2.c's
// (temperature 1.0 there, 0.8 here for steadier text, and nucleus
// sampling at 0.9), seed 0. The command draws a random seed instead when
// it samples without -s.
var DefaultSampler = SamplerConfig{Temperature: 0.8, TopP: 0.9}

// Validate reports the first out-of-range setting.
func (c SamplerConfig) Validate() error {
	switch {
	case c.Temperature < 0 || math.IsNaN(c.Temperature) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("temperature must be a finite number >= 0, got %v", c.Temperature)
	case c.TopK < 0:
		return fmt.Errorf("top-k must be >= 0, got %d", c.TopK)
	case !(c.TopP >= 0 && c.TopP <= 1):
		return fmt.Errorf("top-p must be in [0, 1], got %v", c.TopP)
	case !(c.MinP >= 0 && c.MinP <= 1):
		return fmt.Errorf("min-p must be in [0, 1], got %v", c.MinP)
	case !(c.RepeatPenalty >= 0) || math.IsInf(c.RepeatPenalty, 0):
		return fmt.Errorf("repeat penalty must be a finite number > 0 (0: off), got %v", c.RepeatPenalty)
	}
	return nil
}

// A Sampler draws tokens from score vectors with a seeded PCG generator, so
// a run with the same seed and inputs draws the same tokens. It keeps its
// buffers between calls: a Sampler is not safe for concurrent use.
type Sampler struct {
	cfg   SamplerConfig
	rng   *rand.Rand
	probs []float64 // distribution over the vocabulary
	idx   []int     // candidate ids, sorted by probability when filtering
	pen   []float32 // scores after the repetition penalty
	seen  []bool    // tokens of the penalty's window
}

// NewSampler returns a sampler for cfg; it fails only on invalid settings.
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d6f636f))}, nil
}

// Config returns the sampler's settings.
func (s *Sampler) Config() SamplerConfig { return s.cfg }

// Greedy reports whether the sampler always takes the argmax.
func (s *Sampler) Greedy() bool { return s.cfg.Temperature == 0 }

// Float64 returns a uniform number in [0, 1) from the sampler's generator
// (used by rejection sampling, so that one seed drives a whole run).
func (s *Sampler) Float64() float64 { return s.rng.Float64() }

// Sample draws one token id from scores (logits or log-probabilities).
func (s *Sampler) Sample(scores []float32) int {
	if s.Greedy() {
		return Argmax(scores)
	}
	return s.Draw(s.Probs(scores))
}

// SampleAfter is Sample after applying the repetition penalty (see
// SamplerConfig.RepeatPenalty) for the tokens of history, the sequence so
// far (prompt and generated tokens). scores is not modified.
func (s *Sampler) SampleAfter(scores []float32, history []int) int {
	return s.Sample(s.Penalize(scores, history))
}

// Penalize returns scores with the repetition penalty applied for the
// tokens of history: scores itself when the penalty is off, else the
// sampler's own buffer, overwritten by the next call.
func (s *Sampler) Penalize(scores []float32, history []int) []float32 {
	p := s.cfg.RepeatPenalty
	if p == 0 || p == 1 || len(history) == 0 {
		return scores
	}
	if n := s.cfg.RepeatLastN; n > 0 && len(history) > n {
		history = history[len(history)-n:]
	}
	if cap(s.pen) < len(scores) {
		s.pen = make([]float32, len(scores))
		s.seen = make([]bool, len(scores))
	}
	out, seen := s.pen[:len(scores)], s.seen[:len(scores)]
	copy(out, scores)
	pf := float32(p)
	for _, id := range history {
		if id < 0 || id >= len(out) || seen[id] {
			continue
		}
		seen[id] = true
		if out[id] <= 0 {
			out[id] *= pf
		} else {
			out[id] /= pf
		}
	}
	for _, id := range history {
		if id >= 0 && id < len(seen) {
			seen[id] = false
		}
	}
	return out
}

// Draw samples an index from p, a distribution that sums to 1 up to
// rounding (the last index with nonzero mass absorbs the rounding).
func (s *Sampler) Draw(p []float64) int {
	u := s.rng.Float64()
	last := -1
	var c float64
	for i, q := range p {
		if q <= 0 {
			continue
		}
		c += q
		last = i
		if u < c {
			return i
		}
	}
	return max(last, 0)
}

// Probs returns the distribution the sampler draws from for scores: a
// one-hot vector for greedy decoding, otherwise the tempered, filtered and
// renormalized softmax. The slice is the sampler's own buffer, overwritten by
// the next call.
func (s *Sampler) Probs(scores []float32) []float64 {
	n := len(scores)
	if cap(s.probs) < n {
		s.probs = make([]float64, n)
		s.idx = make([]int, n)
	}
	p := s.probs[:n]
	if s.Greedy() {
		clear(p)
		if n > 0 {
			p[Argmax(scores)] = 1
		}
		return p
	}
	SoftmaxInto(p, scores, s.cfg.Temperature)
	s.filter(p)
	return p
}

// filter applies top-k, top-p and min-p to the distribution p in place.
func (s *Sampler) filter(p []float64) {
	k, topP, minP := s.cfg.TopK, s.cfg.TopP, s.cfg.MinP
	needSort := (k > 0 && k < len(p)) || (topP > 0 && topP < 1)
	if !needSort && minP == 0 {
		return
	}
	if needSort {
		// Partial selection: a heap of the candidates pops the most likely
		// ones until top-k or top-p is reached, in the order a stable sort
		// by falling probability gives (ties: the lower id first), so only
		// the kept tokens are ordered, not the whole vocabulary.
		topK := k > 0 && k < len(p)
		nucleus := topP > 0 && topP < 1
		h := s.idx[:len(p)]
		for i := range h {
			h[i] = i
		}
		n := len(h)
		for i := n/2 - 1; i >= 0; i-- {
			siftDown(h, i, n, p)
		}
		// Popped tokens go to h[n:], the most likely last. Top-k goes on
		// past the k-th while the next one ties with it (a tie at zero
		// adds no mass, so it stops there). Top-p alone stops as soon as
		// it is reached.
		var c, kth float64
		for kept := 0; n > 0; kept++ {
			top := h[0]
			if topK && kept >= k && (p[top] < kth || kth == 0) {
				break
			}
			n--
			h[0], h[n] = h[n], top
			siftDown(h, 0, n, p)
			if topK && kept == k-1 {
				kth = p[top]
			}
			if nucleus && !topK {
				if c += p[top]; c >= topP {
					break
				}
			}
		}
		for _, i := range h[:n] {
			p[i] = 0
		}
		// After top-k, top-p reads what top-k kept, renormalized, as
		// Hugging Face's warpers apply one after the other (llama.cpp
		// likewise, over exactly k): their mass scales the threshold.
		if nucleus && topK {
			var mass float64
			for j := len(h) - 1; j >= n; j-- {
				mass += p[h[j]]
			}
			c = 0
			for j := len(h) - 1; j > n; j-- {
				if c += p[h[j]]; c >= topP*mass {
					for _, i := range h[n:j] {
						p[i] = 0
					}
					break
				}
			}
		}
	}
	if minP > 0 {
		var top float64
		for _, q := range p {
			top = max(top, q)
		}
		for i, q := range p {
			if q < minP*top {
				p[i] = 0
			}
		}
	}
	var sum float64
	for _, q := range p {
		sum += q
	}
	for i := range p {
		p[i] /= sum
	}
}

// siftDown restores the heap order of h[:n] below i: a parent comes before
// its children by falling probability p, the lower id first on ties.
func siftDown(h []int, i, n int, p []float64) {
	before := func(a, b int) bool { return p[a] > p[b] || (p[a] == p[b] && a < b) }
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && before(h[r], h[l]) {
			c = r
		}
		if !before(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// Argmax returns the index of the largest score, the lowest on ties, and 0
// for an empty slice. NaN scores are never chosen over numbers.
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] || (x[best] != x[best] && v == v) {
			best = i
		}
	}
	return best
}

// SoftmaxInto writes softmax(x / temperature) into dst in float64.
// A temperature of 0 is treated as 1.
func SoftmaxInto(dst []float64, x []float32, temperature float64) {
	if temperature == 0 {
		temperature = 1
	}
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	var sum float64
	for i, v := range x {
		e := math.Exp((float64(v) - m) / temperature)
		dst[i] = e
		sum += e
	}
	for i := range dst[:len(x)] {
		dst[i] /= sum
	}
}

// LogSoftmaxAt returns log softmax(x)[id] computed in float64.
func LogSoftmaxAt(x []float32, id int) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - m)
	}
	return float64(x[id]) - m - math.Log(sum)
}

// TopProb returns the largest probability of softmax(x), the confidence
// measure nudging and cascades use.
func TopProb(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - m)
	}
	return 1 / sum
}
