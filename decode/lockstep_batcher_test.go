package decode_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// TestMethodBatcherEqualsGenerator runs fusion, contrastive and nudging of
// stories260K and llama2xs through one LockstepBatcher, greedy and seeded,
// with prompts of different lengths (one longer than a step, so its
// prefill is chunked while others decode), stop strings and token caps,
// and a batch too small for all of them (prompts join as others leave).
// Each text, its ids and log-probabilities must be what NewMethod's
// sequential loop (Lockstep under a Generator, a separate implementation
// over sessions) gives that prompt alone with the same settings.
func TestMethodBatcherEqualsGenerator(t *testing.T) {
	a, tok := load(t, "stories260K")
	b, tokB := load(t, "llama2xs")
	models := []*engine.Model{a, b}
	toks := []*tokenizer.Tokenizer{tok, tokB}
	prompts := []string{"Once", "The dog", "Lily and Tom went to the park", "A",
		strings.Repeat("The cat sat on the mat and looked at the sun. ", 6), "One day"}
	for _, cfg := range []decode.MethodConfig{
		{Method: "fusion"},
		{Method: "fusion", Mode: "prob-mean", Weights: []float64{0.7, 0.3}},
		{Method: "contrastive", Alpha: 0.3, Experts: []int{0}, Anti: []int{1}},
		{Method: "nudging", Gamma: new(0.4)},
		{Method: "single"},
	} {
		t.Run(cfg.Method+cfg.Mode, func(t *testing.T) {
			if testing.Short() && (cfg.Mode != "" || cfg.Method == "contrastive") {
				t.Skip("-short: fusion and nudging cover the batch; the other combiners only change the scores")
			}
			lb, err := decode.NewMethodBatcher(models, toks, cfg, decode.LockstepBatcherConfig{
				Batch: engine.BatchOptions{MaxSeqs: 4, StepTokens: 16}})
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Close()
			var reqs []decode.BatchRequest
			for i := range 12 {
				ids, err := tok.Encode(prompts[i%len(prompts)], true)
				if err != nil {
					t.Fatal(err)
				}
				r := decode.BatchRequest{Prompt: ids, MaxTokens: 8 + 5*i, Logprobs: true}
				if i%2 == 1 {
					r.Sampler = decode.SamplerConfig{Temperature: 0.8, TopP: 0.9, Seed: uint64(i)}
				}
				if i%3 == 2 {
					r.Stop = []string{".", " and"}
				}
				reqs = append(reqs, r)
			}
			// Half the requests from concurrent callers, half in one call.
			got := make([]decode.BatchResult, len(reqs))
			errs := make([]error, len(reqs))
			streamed := make([]strings.Builder, len(reqs))
			for i := range reqs {
				reqs[i].Stream = func(c decode.Chunk) { streamed[i].WriteString(c.Text) }
			}
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() { got[i], errs[i] = lb.Generate(context.Background(), reqs[i]) })
			}
			res, es := lb.GenerateAll(context.Background(), reqs[6:])
			wg.Wait()
			copy(got[6:], res)
			copy(errs[6:], es)
			if st := lb.Stats(); st.Active != 0 || st.KVUsed != 0 || st.Queued != 0 || st.Completed != 12 || st.StepRows <= st.Steps || st.KVBudget <= 0 {
				t.Errorf("stats after the run: %+v", st)
			}
			for i, r := range reqs {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				c := cfg
				c.Sampler, c.MaxTokens, c.Stop = r.Sampler, r.MaxTokens, r.Stop
				m, err := decode.NewMethod(models, toks, c)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int
				var lps []float64
				text, err := m.GenerateIDsContext(context.Background(), r.Prompt, nil, func(tk decode.Token) bool {
					ids = append(ids, tk.ID)
					lps = append(lps, tk.LogProb())
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				g := got[i]
				if !slices.Equal(g.Tokens, ids) || g.Text != text {
					t.Errorf("request %d: batched %v %q, alone %v %q", i, g.Tokens, g.Text, ids, text)
					continue
				}
				if s := streamed[i].String(); s != text {
					t.Errorf("request %d: streamed %q, text %q", i, s, text)
				}
				for k, lp := range g.Logprobs {
					if math.Abs(lp.Logprob-lps[k]) > 1e-4 {
						t.Errorf("request %d token %d: logprob %v, alone %v", i, k, lp.Logprob, lps[k])
					}
				}
				if len(ids) < r.MaxTokens && g.Finish != decode.FinishStop {
					t.Errorf("request %d: %d of %d tokens, finish %q", i, len(ids), r.MaxTokens, g.Finish)
				}
			}
		})
	}
}

// TestMethodBatcherRefuses checks the methods and requests a lockstep
// batch cannot run, and cancellation.
func TestMethodBatcherRefuses(t *testing.T) {
	a, tok := load(t, "stories260K")
	b, tokB := load(t, "llama2xs")
	models := []*engine.Model{a, b}
	toks := []*tokenizer.Tokenizer{tok, tokB}
	for _, m := range []string{"speculative", "mentor", "cascade", "co-llm", "nope"} {
		if _, err := decode.NewMethodBatcher(models, toks, decode.MethodConfig{Method: m}, decode.LockstepBatcherConfig{}); err == nil {
			t.Errorf("%s was accepted", m)
		}
	}
	if _, err := decode.NewMethodBatcher(models[:1], toks[:1], decode.MethodConfig{Method: "nudging"}, decode.LockstepBatcherConfig{}); err == nil {
		t.Error("nudging with one model was accepted")
	}
	lb, err := decode.NewMethodBatcher(models, toks, decode.MethodConfig{Method: "fusion"}, decode.LockstepBatcherConfig{MaxQueue: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []decode.BatchRequest{
		{},
		{Prompt: []int{1}, MaxTokens: -1},
		{Prompt: []int{1, 1 << 20}},
		{Prompt: make([]int, lb.Context())},
		{Prompt: []int{1}, Sampler: decode.SamplerConfig{Temperature: -1}},
	} {
		if _, err := lb.Generate(context.Background(), r); err == nil {
			t.Errorf("request %+v was accepted", r)
		}
	}
	three := []decode.BatchRequest{{Prompt: []int{1}}, {Prompt: []int{1}}, {Prompt: []int{1}}}
	if _, errs := lb.GenerateAll(context.Background(), three); !errors.Is(errs[2], decode.ErrQueueFull) {
		t.Errorf("3 requests in a queue of 2: %v", errs[2])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lb.Generate(ctx, decode.BatchRequest{Prompt: []int{1}, MaxTokens: 50}); err != context.Canceled {
		t.Errorf("cancelled request: %v", err)
	}
	// A request cancelled while it runs leaves the batch and frees its KV
	// cache; one running beside it goes on to its end.
	ctx, cancel = context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var other decode.BatchResult
	var otherErr error
	wg.Go(func() {
		other, otherErr = lb.Generate(context.Background(), decode.BatchRequest{Prompt: []int{1, 400}, MaxTokens: 40})
	})
	_, err = lb.Generate(ctx, decode.BatchRequest{Prompt: []int{1}, MaxTokens: 200, Sampler: decode.SamplerConfig{Temperature: 1, Seed: 1},
		Stream: func(decode.Chunk) { cancel() }})
	wg.Wait()
	if err != context.Canceled || otherErr != nil || len(other.Tokens) == 0 {
		t.Errorf("cancelled while running: %v; the other: %v, %d tokens", err, otherErr, len(other.Tokens))
	}
	if st := lb.Stats(); st.KVUsed != 0 || st.Active != 0 {
		t.Errorf("after the run: %+v", st)
	}
	lb.Close()
	if _, err := lb.Generate(context.Background(), decode.BatchRequest{Prompt: []int{1}}); err != decode.ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}
