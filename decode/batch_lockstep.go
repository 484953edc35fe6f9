package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mocolab/moco/engine"
)

// LockstepBatch is the lockstep loop over many prompts at once (N models x
// B prompts): every model holds one engine.Batch with a sequence per
// prompt, so a step reads each model's weights once for all prompts; each
// prompt whose models all have their next-token logits then combines them
// and samples its next token exactly as Lockstep does for one prompt, with
// its own combiner and seeded sampler. Prompts join as the KV budgets
// allow and leave when they finish.
//
// Combiners that read hidden states (CoLLM) need sessions and are refused.
type LockstepBatch struct {
	Models []*engine.Model
	// Vocab is the shared vocabulary size (SharedVocab); logits are
	// truncated to it.
	Vocab int
	// EOS ids end a prompt's generation (the EOS token is not returned).
	EOS []int
	// Batch bounds each model's batch.
	Batch engine.BatchOptions
	// NewCombiner returns one prompt's combiner (stateful combiners such as
	// Nudging need one each); nil means the first model's logits.
	NewCombiner func() Combiner
}

// LockstepRequest is one prompt of a LockstepBatch run.
type LockstepRequest struct {
	Prompt    []int
	Sampler   SamplerConfig
	MaxTokens int // 0: up to the smallest context
}

// lockstepSeq is one prompt in flight.
type lockstepSeq struct {
	i        int
	req      LockstepRequest
	seqs     []*engine.Seq
	ready    []bool
	logits   [][]float32
	combined []float32
	comb     Combiner
	smp      *Sampler
	history  []int
	limit    int
}

// Run generates for every request and returns the generated ids of each
// (without EOS), in order. Cancelling ctx stops between steps with ctx's
// error.
func (l *LockstepBatch) Run(ctx context.Context, reqs []LockstepRequest) ([][]int, error) {
	n := len(l.Models)
	if n == 0 {
		return nil, ErrNoSessions
	}
	ctxLen := math.MaxInt
	for _, m := range l.Models {
		ctxLen = min(ctxLen, m.ContextSize())
	}
	if l.NewCombiner != nil {
		if _, ok := l.NewCombiner().(*CoLLM); ok {
			return nil, errors.New("decode: co-llm reads hidden states and cannot run in a lockstep batch")
		}
	}
	out := make([][]int, len(reqs))
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("prompt %d is empty (add a BOS token)", i)
		}
		if len(r.Prompt) >= ctxLen {
			return nil, fmt.Errorf("prompt %d has %d tokens, which fills the models' context of %d", i, len(r.Prompt), ctxLen)
		}
		if r.MaxTokens < 0 {
			return nil, fmt.Errorf("prompt %d: max tokens must be >= 0, got %d", i, r.MaxTokens)
		}
		if err := r.Sampler.Validate(); err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
	}
	batches := make([]*engine.Batch, n)
	for i, m := range l.Models {
		batches[i] = m.NewBatch(l.Batch)
	}
	owner := make([]map[*engine.Seq]*lockstepSeq, n)
	for i := range owner {
		owner[i] = map[*engine.Seq]*lockstepSeq{}
	}
	leave := func(st *lockstepSeq) {
		for i, s := range st.seqs {
			if s != nil {
				batches[i].Remove(s)
				delete(owner[i], s)
			}
		}
	}
	var active []*lockstepSeq
	defer func() {
		for _, st := range active {
			leave(st)
		}
	}()
	next := 0
	for next < len(reqs) || len(active) > 0 {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		// Admit in order while every model's batch has room.
		for next < len(reqs) {
			r := reqs[next]
			positions := ctxLen
			if r.MaxTokens > 0 {
				positions = min(ctxLen, len(r.Prompt)+r.MaxTokens)
			}
			st := &lockstepSeq{i: next, req: r, seqs: make([]*engine.Seq, n), ready: make([]bool, n), logits: make([][]float32, n),
				history: slices.Clone(r.Prompt), limit: positions - len(r.Prompt)}
			var err error
			for i, b := range batches {
				if st.seqs[i], err = b.Add(r.Prompt, positions); err != nil {
					break
				}
				owner[i][st.seqs[i]] = st
			}
			if err != nil {
				leave(st)
				if (errors.Is(err, engine.ErrKVFull) || errors.Is(err, engine.ErrBatchFull)) && len(active) > 0 {
					break // wait for room
				}
				return out, fmt.Errorf("prompt %d: %w", next, err)
			}
			st.smp, _ = NewSampler(r.Sampler)
			if l.NewCombiner != nil {
				st.comb = l.NewCombiner()
				if rs, ok := st.comb.(Resetter); ok {
					rs.Reset()
				}
			}
			active = append(active, st)
			next++
		}
		for i, b := range batches {
			for _, s := range b.Step() {
				st := owner[i][s]
				st.logits[i] = append(st.logits[i][:0], s.Logits()...) // the next step reuses the batch's buffer
				st.ready[i] = true
			}
		}
		kept := active[:0]
		for _, st := range active {
			done, err := l.advance(st)
			if err != nil {
				return out, fmt.Errorf("prompt %d: %w", st.i, err)
			}
			if done {
				out[st.i] = st.history[len(st.req.Prompt):]
				leave(st)
			} else {
				kept = append(kept, st)
			}
		}
		clear(active[len(kept):])
		active = kept
	}
	return out, nil
}

// advance samples st's next token once every model has its logits, and
// reports whether st is done; otherwise the token is fed to every model.
func (l *LockstepBatch) advance(st *lockstepSeq) (bool, error) {
	for _, r := range st.ready {
		if !r {
			return false, nil
		}
	}
	v := l.Vocab
	if v <= 0 {
		v = len(st.logits[0])
	}
	lg := make([][]float32, len(st.logits))
	for i, x := range st.logits {
		if len(x) < v {
			return false, fmt.Errorf("model %d returned %d logits, fewer than the vocabulary's %d", i, len(x), v)
		}
		lg[i] = x[:v]
	}
	scores := lg[0]
	if st.comb != nil {
		if len(st.combined) != v {
			st.combined = make([]float32, v)
		}
		step := &Step{Index: len(st.history) - len(st.req.Prompt), Tokens: st.history, Logits: lg, Defer: math.NaN(), Confidence: math.NaN()}
		if err := st.comb.Combine(st.combined, step); err != nil {
			return false, err
		}
		scores = st.combined
	}
	tok := st.smp.Sample(scores)
	if slices.Contains(l.EOS, tok) {
		return true, nil
	}
	st.history = append(st.history, tok)
	if len(st.history)-len(st.req.Prompt) >= st.limit {
		return true, nil
	}
	for i, s := range st.seqs {
		st.ready[i] = false
		if err := s.Feed(tok); err != nil {
			return false, err
		}
	}
	return false, nil
}
