package decode

import (
	"context"
	"fmt"
	"slices"

	"github.com/mocolab/moco/engine"
)

// LockstepBatch is the lockstep loop over many prompts at once (N models x
// B prompts) for ids in, ids out: LockstepBatcher run once over a fixed
// list of prompts. Every model holds one engine.Batch with a sequence per
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

// Run generates for every request and returns the generated ids of each
// (without EOS), in order: the offline form of LockstepBatcher, whose
// loop it runs with the requests queued in order. Cancelling ctx stops
// between steps with ctx's error.
func (l *LockstepBatch) Run(ctx context.Context, reqs []LockstepRequest) ([][]int, error) {
	b, err := NewLockstepBatcher(l.Models, nil, l.NewCombiner,
		LockstepBatcherConfig{Batch: l.Batch, MaxQueue: max(len(reqs), 1), EOS: slices.Clip(l.EOS), Vocab: l.Vocab})
	if err != nil {
		return nil, err
	}
	breqs := make([]BatchRequest, len(reqs))
	for i, r := range reqs {
		breqs[i] = BatchRequest{Prompt: r.Prompt, Sampler: r.Sampler, MaxTokens: r.MaxTokens}
	}
	res, errs := b.GenerateAll(ctx, breqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]int, len(reqs))
	for i, r := range res {
		if errs[i] != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, errs[i])
		}
		out[i] = r.Tokens
	}
	return out, nil
}
