package decode_test

import (
	"context"
	"slices"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
)

// TestLockstepBatchEqualsLockstep runs fusion, contrastive and nudging of
// stories260K and llama2xs over eight prompts at once, greedy and
// sampled: each prompt's ids must be what Lockstep gives it alone.
func TestLockstepBatchEqualsLockstep(t *testing.T) {
	a, tok := load(t, "stories260K")
	b, _ := load(t, "llama2xs")
	models := []*engine.Model{a, b}
	ws := decode.WordStarts(tok)
	for _, tc := range []struct {
		name string
		comb func() decode.Combiner
	}{
		{"fusion", func() decode.Combiner { return &decode.Fusion{} }},
		{"contrastive", func() decode.Combiner { return decode.DefaultContrastive(2, 0.3) }},
		{"nudging", func() decode.Combiner { return &decode.Nudging{Base: 0, Nudger: 1, Gamma: 0.4, WordStart: ws} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []decode.LockstepRequest
			for i := range 8 {
				ids, err := tok.Encode([]string{"Once", "The dog", "Lily and Tom went to the park", "A"}[i%4], true)
				if err != nil {
					t.Fatal(err)
				}
				r := decode.LockstepRequest{Prompt: ids, MaxTokens: 10 + 5*i}
				if i%2 == 1 {
					r.Sampler = decode.SamplerConfig{Temperature: 0.8, TopP: 0.9, Seed: uint64(i)}
				}
				reqs = append(reqs, r)
			}
			lb := &decode.LockstepBatch{Models: models, Vocab: tok.VocabSize(), EOS: tok.EOS(), NewCombiner: tc.comb,
				Batch: engine.BatchOptions{MaxSeqs: 5, StepTokens: 8}}
			got, err := lb.Run(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range reqs {
				smp, _ := decode.NewSampler(r.Sampler)
				ls := &decode.Lockstep{Sessions: sessions(a, b), Combiner: tc.comb(), Sampler: smp, Vocab: tok.VocabSize(), EOS: tok.EOS(), MaxTokens: r.MaxTokens}
				want, err := ls.Run(r.Prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got[i], want) {
					t.Errorf("prompt %d: batched %v, alone %v", i, got[i], want)
				}
			}
		})
	}
	lb := &decode.LockstepBatch{Models: models, NewCombiner: func() decode.Combiner { return &decode.CoLLM{} }}
	if _, err := lb.Run(context.Background(), []decode.LockstepRequest{{Prompt: []int{1}}}); err == nil {
		t.Error("co-llm was accepted without sessions")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lb = &decode.LockstepBatch{Models: models}
	if _, err := lb.Run(ctx, []decode.LockstepRequest{{Prompt: []int{1}, MaxTokens: 5}}); err == nil {
		t.Error("a cancelled run returned no error")
	}
}
