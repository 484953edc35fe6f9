package collab

import (
	"context"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// TestEmptyPromptConfigBOS: with no BOS in the tokenizer, an empty prompt
// starts from config.json's bos_token_id in every local path (the
// model's batcher, a method's sessions, a lockstep batch): the
// text is the engine's argmax loop from that id, decoded. With no
// bos_token_id either, it is refused.
func TestEmptyPromptConfigBOS(t *testing.T) {
	const bos, n = 1, 12
	dir := testutil.NoBOSStories260K(t, true)
	pool, closeAll, err := LoadPool([]string{dir, dir}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	ls, _ := Locals("test", pool)
	l := ls[0]
	if l.Tok.BOS() != -1 || l.Model.Config.BOS != bos {
		t.Fatalf("tokenizer BOS %d, config BOS %d; want -1 and %d", l.Tok.BOS(), l.Model.Config.BOS, bos)
	}
	gen := testutil.Greedy(t, l.Model.NewSession(0), l.Model.Config.EOS, []int{bos}, n)
	want := l.Tok.Decode(gen, true)
	if len(gen) == 0 || strings.TrimSpace(want) == "" {
		t.Fatalf("the engine generated %v (%q) from BOS", gen, want)
	}

	ctx := context.Background()
	req := []Request{{Prompt: "", MaxTokens: len(gen)}}
	res, err := l.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != want || res[0].PromptTokens != 1 {
		t.Errorf("the model's batcher: %q from %d prompt tokens, want %q from 1", res[0].Text, res[0].PromptTokens, want)
	}
	// A model drafting for itself, greedy, and the fusion of a model with
	// itself are the model.
	for _, method := range []string{"speculative", "fusion"} {
		m, err := New(ctx, method, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err = m.Generate(ctx, req); err != nil || res[0].Text != want {
			t.Errorf("%s: %v, %v; want %q", method, res, err, want)
		}
	}

	none, err := LoadLocal(testutil.NoBOSStories260K(t, false), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	if _, err := none.Generate(ctx, req); err == nil || !strings.Contains(err.Error(), "no BOS token to start from") {
		t.Errorf("no BOS anywhere: %v, want the no BOS token refusal", err)
	}
}
