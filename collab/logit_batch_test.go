package collab

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// TestLogitMethodsBatchedEqualSequential: fusion, contrastive (MoCo's
// rule and proxy-tuning's form) and nudging answer their requests
// together in one lockstep batch; each answer must equal what the
// one-request-at-a-time path (runLocal: decode.NewMethod's Lockstep over
// sessions, a separate implementation) gives it: greedy and seeded
// sampling, prompts of different lengths, stop strings, chat messages,
// and requests arriving from concurrent callers as well as in one call.
func TestLogitMethodsBatchedEqualSequential(t *testing.T) {
	pool, closeAll, err := LoadPool([]string{testutil.Shared(t, "models/stories260K"), testutil.Shared(t, "models/llama2xs")}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	ls, _ := Locals("test", pool)
	ctx := context.Background()
	prompts := []string{"Once upon a time", "Tom", "The little bird flew over the big tree and sang a song to the", "Sue had a"}
	var reqs []Request
	for i := range 10 {
		r := Request{Prompt: prompts[i%len(prompts)], MaxTokens: 6 + 4*i}
		if i%2 == 1 {
			r.Temperature, r.TopP, r.Seed = 0.9, 0.95, uint64(100+i)
		}
		if i%3 == 0 {
			r.Stop = []string{".", "\n"}
		}
		if i == 7 {
			r.Prompt, r.Messages = "", []Message{{Role: "user", Content: "A cat"}}
		}
		reqs = append(reqs, r)
	}
	for _, tc := range []struct {
		method string
		params Params
	}{
		{"fusion", nil},
		{"fusion", Params{"mode": "prob-mean", "weights": []float64{0.3, 0.7}}},
		{"contrastive", Params{"alpha": 0.5}},
		{"contrastive", Params{"experts": []int{1}, "anti": []int{0}, "alpha": 1}},
		{"nudging", Params{"gamma": 0.5}},
	} {
		m, err := New(ctx, tc.method, pool, tc.params)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		lm := m.(*logitMethod)
		got, err := m.Generate(ctx, reqs[:5])
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		got = append(got, make([]Response, 5)...)
		var wg sync.WaitGroup
		errs := make([]error, len(reqs))
		for i := 5; i < len(reqs); i++ {
			wg.Go(func() {
				var out []Response
				if out, errs[i] = m.Generate(ctx, reqs[i:i+1]); errs[i] == nil {
					got[i] = out[0]
				}
			})
		}
		wg.Wait()
		for i, r := range reqs {
			if errs[i] != nil {
				t.Fatalf("%s request %d: %v", tc.method, i, errs[i])
			}
			want, err := runLocal(ctx, ls, lm.cfg, r)
			if err != nil {
				t.Fatal(err)
			}
			g := got[i]
			if g.Text != want.Text || g.PromptTokens != want.PromptTokens || g.CompletionTokens != want.CompletionTokens ||
				g.ForwardTokens != want.ForwardTokens || g.FLOPs != want.FLOPs {
				t.Errorf("%s %v request %d: batched %q (%d+%d tokens, %d forward), alone %q (%d+%d, %d)", tc.method, tc.params, i,
					g.Text, g.PromptTokens, g.CompletionTokens, g.ForwardTokens, want.Text, want.PromptTokens, want.CompletionTokens, want.ForwardTokens)
			}
			if r.Stop != nil && strings.Contains(g.Text, ".") {
				t.Errorf("%s request %d: the stop string is in %q", tc.method, i, g.Text)
			}
		}
	}
}
