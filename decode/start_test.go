package decode_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestStartID: an empty prompt starts from the tokenizer's BOS, else from
// the model's bos_token_id (config.json, else generation_config.json), as
// Hugging Face's generate() does; with neither it is refused.
func TestStartID(t *testing.T) {
	withBOS, err := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if err != nil {
		t.Fatal(err)
	}
	noBOS, err := tokenizer.New(stories260k.Tokenizer, []byte(testutil.NoBOSTokenizerConfig))
	if err != nil {
		t.Fatal(err)
	}
	if withBOS.BOS() != 1 || noBOS.BOS() != -1 {
		t.Fatalf("tokenizer BOS ids %d and %d, want 1 (<s>) and -1", withBOS.BOS(), noBOS.BOS())
	}
	// bos_token_id only in generation_config.json.
	genDir := t.TempDir()
	for name, b := range map[string][]byte{
		"config.json":            testutil.Stories260KConfigWithout(t, "bos_token_id"),
		"generation_config.json": []byte(`{"bos_token_id": 7, "eos_token_id": 2}`),
	} {
		if err := os.WriteFile(filepath.Join(genDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	genCfg, err := engine.LoadConfig(genDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tok  *tokenizer.Tokenizer
		cfg  *engine.Config
		want int // -1: refused
	}{
		{"tokenizer's BOS first", withBOS, &engine.Config{BOS: 5}, 1},
		{"tokenizer's BOS, no config", withBOS, nil, 1},
		{"config's bos_token_id", noBOS, &engine.Config{BOS: 5}, 5},
		{"generation_config's bos_token_id", noBOS, genCfg, 7},
		{"config without one", noBOS, &engine.Config{BOS: -1}, -1},
		{"no config", noBOS, nil, -1},
	} {
		got, err := decode.StartID(tc.tok, tc.cfg)
		switch {
		case tc.want < 0 && (err == nil || !strings.Contains(err.Error(), "no BOS token to start from")):
			t.Errorf("%s: StartID = %d, %v; want the no BOS token refusal", tc.name, got, err)
		case tc.want >= 0 && (err != nil || got != tc.want):
			t.Errorf("%s: StartID = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

// TestEmptyPromptConfigBOS: the generators NewMethod and GenerateBatch
// build start an empty prompt from config.json's bos_token_id when the
// tokenizer has no BOS; greedy, they continue it as the engine's own
// argmax loop from that id does.
func TestEmptyPromptConfigBOS(t *testing.T) {
	const bos, n = 1, 12 // stories260K's config.json: bos_token_id 1
	dir := testutil.Stories260K(t, map[string][]byte{"tokenizer_config.json": []byte(testutil.NoBOSTokenizerConfig)})
	m, tok := testmodel.LoadNoBOS(t, dir, bos)
	// The reference: argmax of the engine's logits, fed back, from bos.
	want, _ := testmodel.GreedyFrom(t, m, tok, m.Config.EOS, bos, n)

	c, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{Method: "single", MaxTokens: len(want)})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := c.Encode(""); err != nil || !slices.Equal(ids, []int{bos}) {
		t.Fatalf("Encode(\"\") = %v, %v; want [%d]", ids, err, bos)
	}
	var got []int
	if _, err := c.GenerateContext(context.Background(), "", nil, func(tk decode.Token) bool {
		got = append(got, tk.ID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("NewMethod from an empty prompt generated %v, want %v", got, want)
	}

	reqs := []decode.BatchRequest{{MaxTokens: len(want)}}
	res, err := decode.GenerateBatch(context.Background(), m, tok, []string{""}, false, reqs, decode.BatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res[0].Tokens, want) {
		t.Errorf("GenerateBatch from an empty prompt generated %v, want %v", res[0].Tokens, want)
	}
}
