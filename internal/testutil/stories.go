package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mocolab/moco/internal/stories260k"
)

// NoBOSTokenizerConfig is a tokenizer_config.json for stories260K with no
// BOS token, as Qwen2 and Qwen3 ship theirs (bos_token null).
const NoBOSTokenizerConfig = `{"add_bos_token": false, "bos_token": null, "eos_token": "</s>"}`

// Stories260K writes the embedded stories260K model folder to a new
// temporary folder, with files (by name) in place of its own or beside
// them, and returns the folder's path.
func Stories260K(t testing.TB, files map[string][]byte) string {
	t.Helper()
	all := map[string][]byte{
		"config.json":           stories260k.Config,
		"model.safetensors":     stories260k.Weights,
		"tokenizer.json":        stories260k.Tokenizer,
		"tokenizer_config.json": stories260k.TokenizerConfig,
	}
	for name, b := range files {
		all[name] = b
	}
	dir := t.TempDir()
	for name, b := range all {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Stories260KConfigWithout returns stories260K's config.json without the
// given keys.
func Stories260KConfigWithout(t testing.TB, keys ...string) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(stories260k.Config, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		delete(c, k)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NoBOSStories260K writes stories260K with a tokenizer that has no BOS
// token; keepConfigBOS keeps config.json's bos_token_id (1), as Qwen's
// configs have one.
func NoBOSStories260K(t testing.TB, keepConfigBOS bool) string {
	t.Helper()
	files := map[string][]byte{"tokenizer_config.json": []byte(NoBOSTokenizerConfig)}
	if !keepConfigBOS {
		files["config.json"] = Stories260KConfigWithout(t, "bos_token_id")
	}
	return Stories260K(t, files)
}

// Forwarder is a model's session as the engine gives it: Forward feeds
// tokens and returns the logits after the last.
type Forwarder interface {
	Forward(tokens []int) ([]float32, error)
}

// Greedy feeds ids to s and takes the argmax of the logits (the lowest id
// on ties) up to n times, stopping before an id of eos: a model's greedy
// continuation from its forward pass alone, none of decode's loops, for
// tests to hold those loops to.
func Greedy(t testing.TB, s Forwarder, eos, ids []int, n int) []int {
	t.Helper()
	var gen []int
	for len(gen) < n {
		logits, err := s.Forward(ids)
		if err != nil {
			t.Fatal(err)
		}
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		if slices.Contains(eos, best) {
			break
		}
		gen = append(gen, best)
		ids = []int{best}
	}
	return gen
}
