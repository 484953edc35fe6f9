package testmodel

import (
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// Load loads the model and the tokenizer of folder dir; the model is
// closed when the test ends.
func Load(t testing.TB, dir string) (*engine.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// LoadNoBOS is Load of a folder whose tokenizer has no BOS token and whose
// config.json's bos_token_id is bos, which it checks.
func LoadNoBOS(t testing.TB, dir string, bos int) (*engine.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, tok := Load(t, dir)
	if tok.BOS() != -1 || m.Config.BOS != bos {
		t.Fatalf("tokenizer BOS %d, config BOS %d; want -1 and %d", tok.BOS(), m.Config.BOS, bos)
	}
	return m, tok
}

// GreedyFrom returns the reference for a generation from the start id
// bos alone: the engine's argmax loop from it (testutil.Greedy, up to n
// ids, stopping at one of eos) and the text of the whole sequence, as
// Hugging Face decodes it. It fails the test when that is empty.
func GreedyFrom(t testing.TB, m *engine.Model, tok *tokenizer.Tokenizer, eos []int, bos, n int) ([]int, string) {
	t.Helper()
	gen := testutil.Greedy(t, m.NewSession(0), eos, []int{bos}, n)
	text := tok.Decode(append([]int{bos}, gen...), true)
	if len(gen) == 0 || strings.TrimSpace(text) == "" {
		t.Fatalf("the engine generated %v (%q) from BOS", gen, text)
	}
	return gen, text
}
