package decode

import (
	"fmt"
	"math"

	"github.com/mocolab/moco/kernels"
)

// FusionMode selects how Fusion averages the models.
type FusionMode int

const (
	// LogitMean is the weighted mean of logits: a normalized geometric mean
	// of the distributions (MoCo's logit fusion).
	LogitMean FusionMode = iota
	// ProbMean is the weighted mean of probabilities: a mixture.
	ProbMean
)

// ParseFusionMode reads "logit-mean" or "prob-mean".
func ParseFusionMode(s string) (FusionMode, error) {
	switch s {
	case "logit-mean", "":
		return LogitMean, nil
	case "prob-mean":
		return ProbMean, nil
	}
	return 0, fmt.Errorf("unknown fusion mode %q (want logit-mean or prob-mean)", s)
}

func (m FusionMode) String() string {
	if m == ProbMean {
		return "prob-mean"
	}
	return "logit-mean"
}

// Fusion averages all models' next-token distributions (MoCo method #20).
type Fusion struct {
	Mode FusionMode
	// Weights, one per model, need not sum to 1; nil means uniform.
	Weights []float64

	w []float64
	p []float32
}

// Combine implements Combiner.
func (f *Fusion) Combine(dst []float32, s *Step) error {
	if len(f.w) != len(s.Logits) {
		w, err := normWeights(f.Weights, len(s.Logits))
		if err != nil {
			return err
		}
		f.w = w
	}
	s.Source = "fusion"
	if f.Mode == LogitMean {
		clear(dst)
		for i, lg := range s.Logits {
			kernels.Axpy(float32(f.w[i]), lg, dst)
		}
		return nil
	}
	// Vectorized float32 softmax: the mixture needs no more precision than
	// the logits carry, and it keeps fusion's cost negligible per step.
	if len(f.p) != len(dst) {
		f.p = make([]float32, len(dst))
	}
	clear(dst)
	for i, lg := range s.Logits {
		copy(f.p, lg)
		kernels.Softmax(f.p)
		kernels.Axpy(float32(f.w[i]), f.p, dst)
	}
	for j, q := range dst {
		dst[j] = float32(math.Log(float64(q)))
	}
	return nil
}

// Reset makes the next Combine re-read Weights.
func (f *Fusion) Reset() { f.w = nil }

// Contrastive scores base + Alpha*(sum of experts - sum of anti-experts)
// on logits (MoCo method #21). It has two standard layouts:
//
//   - MoCo's logit contrastive (MoCoContrastive, the default): the models
//     ranked by dev accuracy, base the best, experts the top k (so the best
//     counts twice) and anti-experts the bottom k, with k 1 and Alpha 0.2 as
//     in MoCo's logit_logit_contrastive.
//   - Proxy-tuning (Liu et al. 2024): explicit roles, base + Alpha*(expert -
//     anti-expert) with Alpha 1, e.g. a large base, a small tuned expert and
//     its untuned anti-expert.
//
// MoCo's logit methods sample the combined scores at a temperature
// without top-p (a Sampler with TopP 1 matches). Indexes refer to the
// lockstep's models and may repeat. Contrastive is
// read-only while it runs: one value may be shared by several loops.
type Contrastive struct {
	Base          int
	Experts, Anti []int
	Alpha         float64
}

// MoCo's defaults for contrastive decoding.
const (
	DefaultContrastiveK     = 1
	DefaultContrastiveAlpha = 0.2
)

// MoCoContrastive returns MoCo's contrastive rule for n models listed best
// first: top1 + alpha*(sum of the top k - sum of the bottom k). It needs
// 1 <= k and 2k <= n; models between the top and bottom k are unused.
func MoCoContrastive(n, k int, alpha float64) (*Contrastive, error) {
	if k < 1 || 2*k > n {
		return nil, fmt.Errorf("contrastive: k = %d needs at least %d models (top k and bottom k), got %d", k, 2*max(k, 1), n)
	}
	c := &Contrastive{Base: 0, Alpha: alpha}
	for i := range k {
		c.Experts = append(c.Experts, i)
		c.Anti = append(c.Anti, n-k+i)
	}
	return c, nil
}

// DefaultContrastive returns the layout moco used before it followed MoCo
// (kept for callers that score with it): model 0 is the base; with two
// models the second is the anti-expert; with more, the next k are experts
// and the last k anti-experts, k = (n-1)/2 (three models: proxy-tuning's
// base, expert, anti-expert).
func DefaultContrastive(n int, alpha float64) *Contrastive {
	c := &Contrastive{Alpha: alpha}
	switch {
	case n == 2:
		c.Anti = []int{1}
	case n > 2:
		k := (n - 1) / 2
		for i := 1; i <= k; i++ {
			c.Experts = append(c.Experts, i)
			c.Anti = append(c.Anti, n-k+i-1)
		}
	}
	return c
}

// Combine implements Combiner.
func (c *Contrastive) Combine(dst []float32, s *Step) error {
	n := len(s.Logits)
	bad := c.Base < 0 || c.Base >= n
	for _, g := range [2][]int{c.Experts, c.Anti} {
		for _, i := range g {
			bad = bad || i < 0 || i >= n
		}
	}
	if bad {
		return fmt.Errorf("contrastive: model index out of range (base %d, experts %v, anti %v; %d models)", c.Base, c.Experts, c.Anti, n)
	}
	s.Source = "contrastive"
	copy(dst, s.Logits[c.Base])
	a := float32(c.Alpha)
	for _, i := range c.Experts {
		kernels.Axpy(a, s.Logits[i], dst)
	}
	for _, i := range c.Anti {
		kernels.Axpy(-a, s.Logits[i], dst)
	}
	return nil
}

// Nudging lets a base model generate and hands over to a nudging model
// while the base is unsure (MoCo method #2): the nudger writes the first
// word of every answer (as MoCo's api_nudging and the Nudging paper's
// code do); after it, when the base's top-1 probability (softmax of its
// raw logits) is below Gamma, the nudger chooses the token; a nudging run
// continues while the nudger's most likely next token continues the
// current word (its text has no leading space or word-boundary marker),
// and then until the base is confident again.
//
// MoCo checks the token it sampled from the nudger where Nudging checks
// the nudger's most likely one: a combiner picks the distribution before
// the one token is drawn from it. With greedy decoding (the Nudging
// paper's setting) the two are the same token. MoCo also counts a word
// as ended only by a token with a space in its text, so a newline token
// continues the nudger's word there; WordStarts counts a newline (Ċ) as
// a word start too.
type Nudging struct {
	Base, Nudger int
	// Gamma is used as given (DefaultGamma is MoCo's): at 0 the base
	// never hands over for being unsure.
	Gamma float64
	// WordStart[id] reports whether token id begins a new word (see
	// WordStarts); without it every token counts as a word start.
	WordStart []bool

	nudging bool
	started bool // a token was chosen since Reset
	buf     []float32
}

// DefaultGamma is nudging's default confidence threshold.
const DefaultGamma = 0.4

// Reset implements Resetter: every generation starts with the nudger's
// first word.
func (n *Nudging) Reset() { n.nudging, n.started = false, false }

// Combine implements Combiner.
func (n *Nudging) Combine(dst []float32, s *Step) error {
	if n.Base < 0 || n.Base >= len(s.Logits) || n.Nudger < 0 || n.Nudger >= len(s.Logits) {
		return fmt.Errorf("nudging: model indexes %d, %d out of range (%d models)", n.Base, n.Nudger, len(s.Logits))
	}
	if len(n.buf) != len(dst) {
		n.buf = make([]float32, len(dst))
	}
	conf := topProb32(n.buf, s.Logits[n.Base])
	s.Confidence = conf
	// MoCo starts in nudging mode with no nudger token accepted, which
	// always accepts the first.
	useNudger := conf < n.Gamma || !n.started
	n.started = true
	if n.nudging && !useNudger {
		// Finish the nudger's word before handing back.
		t := Argmax(s.Logits[n.Nudger])
		useNudger = t < len(n.WordStart) && !n.WordStart[t]
	}
	n.nudging = useNudger
	src := n.Base
	s.Source = "base"
	if useNudger {
		src = n.Nudger
		s.Source = "nudger"
	}
	copy(dst, s.Logits[src])
	return nil
}

// normWeights returns weights summing to 1 (uniform when w is nil).
func normWeights(w []float64, n int) ([]float64, error) {
	if w == nil {
		u := make([]float64, n)
		for i := range u {
			u[i] = 1 / float64(n)
		}
		return u, nil
	}
	if len(w) != n {
		return nil, fmt.Errorf("%d weights for %d models", len(w), n)
	}
	var sum float64
	for _, x := range w {
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("weights must be finite and >= 0, got %v", w)
		}
		sum += x
	}
	if sum == 0 {
		return nil, fmt.Errorf("weights sum to 0")
	}
	u := make([]float64, n)
	for i, x := range w {
		u[i] = x / sum
	}
	return u, nil
}

// topProb32 is TopProb with the vectorized float32 softmax, using buf
// (len(x)) as scratch: the per-step confidence check then costs little next
// to a forward pass.
func topProb32(buf, x []float32) float64 {
	copy(buf, x)
	kernels.Softmax(buf)
	var top float32
	for _, p := range buf {
		top = max(top, p)
	}
	return float64(top)
}
