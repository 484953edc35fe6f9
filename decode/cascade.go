package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Cascade asks models in turn, weak to strong (MoCo method #6, MoCo's
// api_cascade in its default "logit" mode): each generates a whole answer,
// which is accepted when its confidence reaches that level's threshold; the
// last model always answers. The confidence is MoCo's: the mean over the
// generated tokens (the EOS step included) of the largest probability of
// the softmax over the 5 highest scores of the distribution the model
// samples from (after temperature and top-k/top-p/min-p; greedy decoding
// uses the raw logits). Calibrate sets each threshold to a quantile of the
// dev confidences (MoCo: 0.5, with torch.quantile's interpolation); MoCo's
// code computes every level's dev confidences with the first model, which
// looks like a slip, so moco uses each level's own model.
//
// A cascade runs one prompt at a time, never in a LockstepBatcher: each
// level generates a whole answer before the next is asked, so the models
// do not advance in step.
type Cascade struct {
	Sessions []Session // weak to strong
	// Thresholds has one entry per level but the last (see Calibrate).
	Thresholds []float64
	Sampler    *Sampler
	Vocab      int
	EOS        []int
	MaxTokens  int
	Trace      func(TraceStep)
}

// CascadeResult is the accepted answer and how it was reached.
type CascadeResult struct {
	Tokens []int
	// LogProbs holds each token's log-probability under the accepted model.
	LogProbs []float64
	// Level is the index of the model whose answer was accepted.
	Level int
	// Confidence lists the confidence of each model that answered.
	Confidence []float64
}

// DefaultQuantile is the default calibration quantile of a cascade.
const DefaultQuantile = 0.5

// Run answers prompt.
func (c *Cascade) Run(prompt []int) (CascadeResult, error) {
	return c.RunContext(context.Background(), prompt)
}

// RunContext answers prompt, stopping when ctx is done.
func (c *Cascade) RunContext(ctx context.Context, prompt []int) (CascadeResult, error) {
	n := len(c.Sessions)
	if n == 0 {
		return CascadeResult{}, ErrNoSessions
	}
	if len(c.Thresholds) < n-1 {
		return CascadeResult{}, fmt.Errorf("cascade: %d thresholds for %d models (want %d; calibrate first)", len(c.Thresholds), n, n-1)
	}
	var res CascadeResult
	for i := range n {
		toks, logp, conf, err := c.answer(ctx, i, prompt)
		if err != nil {
			return res, err
		}
		res.Confidence = append(res.Confidence, conf)
		if i == n-1 || conf >= c.Thresholds[i] {
			res.Tokens, res.LogProbs, res.Level = toks, logp, i
			return res, nil
		}
	}
	return res, nil
}

// answer generates with model i alone and returns the tokens and confidence.
func (c *Cascade) answer(ctx context.Context, i int, prompt []int) ([]int, []float64, float64, error) {
	rec := &confidence{sampler: c.Sampler}
	l := &Lockstep{Sessions: c.Sessions[i : i+1], Combiner: rec, Sampler: c.Sampler, Vocab: c.Vocab, EOS: c.EOS, MaxTokens: c.MaxTokens}
	if c.Trace != nil {
		l.Trace = func(ts TraceStep) {
			ts.Source = fmt.Sprintf("level %d", i)
			c.Trace(ts)
		}
	}
	var logp []float64
	toks, err := l.RunContext(ctx, prompt, func(t Token) bool {
		logp = append(logp, t.LogProb())
		return true
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("cascade level %d: %w", i, err)
	}
	return slices.Clone(toks), logp, rec.mean(), nil
}

// Calibrate sets each level's threshold, but the last's, to the given
// quantile (0..1, used as given: 0 is the lowest confidence; MoCo's is
// DefaultQuantile) of its own model's confidences on the dev prompts.
func (c *Cascade) Calibrate(prompts [][]int, quantile float64) error {
	return c.CalibrateContext(context.Background(), prompts, quantile)
}

// CalibrateContext is Calibrate, stopping when ctx is done.
func (c *Cascade) CalibrateContext(ctx context.Context, prompts [][]int, quantile float64) error {
	if len(prompts) == 0 {
		return errors.New("cascade: no dev prompts to calibrate on")
	}
	if quantile < 0 || quantile > 1 {
		return fmt.Errorf("cascade: quantile %v outside [0, 1]", quantile)
	}
	c.Thresholds = c.Thresholds[:0]
	for i := range len(c.Sessions) - 1 {
		confs := make([]float64, 0, len(prompts))
		for _, p := range prompts {
			_, _, conf, err := c.answer(ctx, i, p)
			if err != nil {
				return err
			}
			confs = append(confs, conf)
		}
		c.Thresholds = append(c.Thresholds, Quantile(confs, quantile))
	}
	return nil
}

// Quantile returns the q-quantile of xs with linear interpolation between
// order statistics (numpy's default), NaN for an empty slice.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (h-float64(lo))*(s[hi]-s[lo])
}

// confidence passes the single model's logits through and records the mean
// of MoCo's per-step confidence (see CascadeConfidence).
type confidence struct {
	sampler *Sampler
	sum     float64
	n       int
}

func (c *confidence) Reset() { c.sum, c.n = 0, 0 }

func (c *confidence) Combine(dst []float32, s *Step) error {
	p := CascadeConfidence(s.Logits[0], c.sampler)
	c.sum += p
	c.n++
	s.Confidence = p
	copy(dst, s.Logits[0])
	return nil
}

// CascadeTopK is the number of highest scores MoCo's cascade confidence
// renormalizes over.
const CascadeTopK = 5

// CascadeConfidence is MoCo's confidence of one step: the largest
// probability of the softmax over the CascadeTopK highest scores, the
// scores being the sampler's (tempered and filtered; tokens the filters
// drop count as -inf) or, for greedy decoding or a nil sampler, the raw
// logits.
func CascadeConfidence(logits []float32, s *Sampler) float64 {
	if len(logits) == 0 {
		return 0
	}
	var top [CascadeTopK]float64
	k := 0
	insert := func(v float64) { // keep the k largest, descending
		if k < CascadeTopK {
			k++
		} else if v <= top[k-1] {
			return
		}
		j := k - 1
		for j > 0 && top[j-1] < v {
			top[j] = top[j-1]
			j--
		}
		top[j] = v
	}
	if s == nil || s.Greedy() {
		for _, l := range logits {
			insert(float64(l))
		}
		var sum float64
		for _, v := range top[:k] {
			sum += math.Exp(v - top[0])
		}
		return 1 / sum
	}
	for _, p := range s.Probs(logits) {
		if p > 0 {
			insert(p)
		}
	}
	var sum float64
	for _, v := range top[:k] {
		sum += v
	}
	if sum == 0 {
		return 0
	}
	return top[0] / sum
}

func (c *confidence) mean() float64 {
	if c.n == 0 {
		return 0
	}
	return c.sum / float64(c.n)
}
