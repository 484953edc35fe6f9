package decode

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Speculative is speculative decoding: a cheap draft model proposes K
// tokens, the target scores them all in one batched forward and keeps the
// longest acceptable prefix plus one token of its own. Acceptance is
// rejection sampling (accept draft token d with probability
// min(1, p(d)/q(d)), else draw from the normalized max(0, p-q)), so the
// output follows the target's distribution exactly; under greedy decoding
// it is exactly the target's greedy output. Both distributions are the
// Sampler's (after the repeat penalty, temperature and filtering).
//
// Speculative runs one prompt at a time, never in a LockstepBatcher:
// rejected drafts rewind the caches, and the draft runs ahead of the
// target.
type Speculative struct {
	Target, Draft Session
	Sampler       *Sampler
	// K is the number of draft tokens per round (default 4).
	K         int
	Vocab     int
	EOS       []int
	MaxTokens int
	Trace     func(TraceStep)

	// Proposed and Accepted count draft tokens over the last Run.
	Proposed, Accepted int

	hist   []int
	drafts []int
	seen   []int // the history and the drafts a distribution follows
	q      [][]float64
	resid  []float64
	tprobs []float64
	logp   []float64 // target log-probabilities of the verified tokens
	one    [1]int
}

// DefaultDraftTokens is the default K of speculative decoding.
const DefaultDraftTokens = 4

// Run generates from prompt like Lockstep.Run.
func (sp *Speculative) Run(prompt []int, emit func(tok int) bool) ([]int, error) {
	return sp.RunContext(context.Background(), prompt, idsOnly(emit))
}

// RunContext generates from prompt like Lockstep.RunContext; a token's
// LogProb is under the target's distribution.
func (sp *Speculative) RunContext(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error) {
	if sp.Target == nil || sp.Draft == nil {
		return nil, errors.New("speculative: needs a target and a draft model")
	}
	if len(prompt) == 0 {
		return nil, errors.New("decode: empty prompt (add a BOS token)")
	}
	if sp.Sampler == nil {
		sp.Sampler, _ = NewSampler(SamplerConfig{})
	}
	k := sp.K
	if k <= 0 {
		k = DefaultDraftTokens
	}
	sp.Target.Reset()
	sp.Draft.Reset()
	sp.Proposed, sp.Accepted = 0, 0
	sp.hist = append(sp.hist[:0], prompt...)
	start := len(prompt)
	for {
		if err := ctx.Err(); err != nil {
			return sp.hist[start:], err
		}
		gen := len(sp.hist) - start
		kr := k
		if sp.MaxTokens > 0 {
			kr = min(k, sp.MaxTokens-gen-1)
		}
		if err := sp.draft(max(kr, 0)); err != nil {
			return sp.hist[start:], err
		}
		out, err := sp.verify(start)
		if err != nil {
			return sp.hist[start:], err
		}
		for i, tok := range out {
			if slices.Contains(sp.EOS, tok) {
				return sp.hist[start:], nil
			}
			sp.hist = append(sp.hist, tok)
			src := "draft"
			if i == len(out)-1 {
				src = "target"
			}
			if emit != nil && !emit(Token{ID: tok, Source: src, logProb: sp.logp[i]}) {
				return sp.hist[start:], nil
			}
			if sp.MaxTokens > 0 && len(sp.hist)-start >= sp.MaxTokens {
				return sp.hist[start:], nil
			}
		}
	}
}

func (sp *Speculative) vocab(lg []float32) []float32 {
	if sp.Vocab > 0 && len(lg) > sp.Vocab {
		return lg[:sp.Vocab]
	}
	return lg
}

// draft proposes up to k tokens with the draft model, keeping each proposal
// distribution q_i. It stops early after an EOS.
func (sp *Speculative) draft(k int) error {
	sp.drafts = sp.drafts[:0]
	if k == 0 {
		return nil
	}
	lg, err := sp.Draft.Forward(sp.hist[sp.Draft.Pos():])
	if err != nil {
		return fmt.Errorf("draft: %w", err)
	}
	for i := range k {
		lg = sp.vocab(lg)
		if len(sp.q) <= i {
			sp.q = append(sp.q, nil)
		}
		sp.q[i] = append(sp.q[i][:0], sp.probs(lg, i)...)
		d := sp.Sampler.Draw(sp.q[i])
		sp.drafts = append(sp.drafts, d)
		if i == k-1 || slices.Contains(sp.EOS, d) {
			break
		}
		sp.one[0] = d
		if lg, err = sp.Draft.Forward(sp.one[:]); err != nil {
			return fmt.Errorf("draft: %w", err)
		}
	}
	sp.Proposed += len(sp.drafts)
	return nil
}

// verify runs the target over the pending history and the drafts in one
// batch, accepts a prefix of the drafts, appends one target token, and
// rewinds both caches to the accepted history.
func (sp *Speculative) verify(start int) (out []int, err error) {
	old := len(sp.hist)
	tpos := sp.Target.Pos()
	feed := append(slices.Clip(sp.hist[tpos:]), sp.drafts...)
	rows, err := sp.Target.ForwardAll(feed)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	stride := len(rows) / len(feed)
	row := func(i int) []float32 { // logits predicting the token after draft i-1
		off := (old - tpos - 1 + i) * stride
		return sp.vocab(rows[off : off+stride])
	}
	out = make([]int, 0, len(sp.drafts)+1)
	sp.logp = sp.logp[:0]
	var tok int
	rejected := false
	for i, d := range sp.drafts {
		p := sp.probs(row(i), i)
		q := sp.q[i]
		if u := sp.Sampler.Float64(); q[d] > 0 && u*q[d] < p[d] {
			out = append(out, d)
			sp.logp = append(sp.logp, LogSoftmaxAt(row(i), d))
			sp.trace(old+i-start, d, "draft", row(i))
			continue
		}
		// Rejected: draw from the normalized residual max(0, p-q).
		if len(sp.resid) != len(p) {
			sp.resid = make([]float64, len(p))
		}
		var sum float64
		for j := range p {
			r := max(p[j]-q[j], 0)
			sp.resid[j] = r
			sum += r
		}
		if sum > 0 {
			for j := range sp.resid {
				sp.resid[j] /= sum
			}
			tok = sp.Sampler.Draw(sp.resid)
		} else {
			tok = sp.Sampler.Draw(p)
		}
		rejected = true
		break
	}
	nAcc := len(out)
	sp.Accepted += nAcc
	if !rejected {
		tok = sp.Sampler.Draw(sp.probs(row(nAcc), nAcc))
	}
	out = append(out, tok)
	sp.logp = append(sp.logp, LogSoftmaxAt(row(nAcc), tok))
	sp.trace(old+nAcc-start, tok, "target", row(nAcc))
	if err := sp.Target.Truncate(old + nAcc); err != nil {
		return nil, err
	}
	if sp.Draft.Pos() > old+nAcc {
		if err := sp.Draft.Truncate(old + nAcc); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// probs is the Sampler's distribution for logits lg that follow the
// history and the first i drafts, which the repeat penalty reads: without
// it the output would not follow the target's distribution.
func (sp *Speculative) probs(lg []float32, i int) []float64 {
	sp.seen = append(append(sp.seen[:0], sp.hist...), sp.drafts[:i]...)
	return sp.Sampler.Probs(sp.Sampler.Penalize(lg, sp.seen))
}

// trace reports a token: "draft" when the target accepted the draft's
// proposal, "target" for the target's own token; Top lists the target's
// distribution at that position.
func (sp *Speculative) trace(pos, tok int, src string, logits []float32) {
	if sp.Trace == nil {
		return
	}
	if len(sp.tprobs) != len(logits) {
		sp.tprobs = make([]float64, len(logits))
	}
	SoftmaxInto(sp.tprobs, logits, 1)
	sp.Trace(TraceStep{Step: pos, Token: tok, Source: src, Top: topK(sp.tprobs, 5)})
}
