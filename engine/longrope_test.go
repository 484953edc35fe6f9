package engine

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestLongRopeMatchesLlamaCpp runs the shared Phi-3 fixture's weights under
// a longrope config (testdata/phi3-longrope) against llama.cpp's logits with
// the short factors, and, with the long factors put in the short ones'
// place, against llama.cpp's with the long factors (llama.cpp picks them by
// the context size, moco by position: the test's 48 positions are all
// within the original context).
func TestLongRopeMatchesLlamaCpp(t *testing.T) {
	fixture := filepath.Join(testutil.Shared(t, "fixtures/arch"), "phi3")
	var tokens []int
	readJSON(t, filepath.Join(fixture, "tokens.json"), &tokens)
	var cfg map[string]any
	readJSON(t, "testdata/phi3-longrope/config.json", &cfg)
	for _, tc := range []struct{ factors, logits string }{
		{"short_factor", "logits_short.f32"},
		{"long_factor", "logits_long.f32"},
	} {
		t.Run(tc.factors, func(t *testing.T) {
			rs := cfg["rope_scaling"].(map[string]any)
			rs["short_factor"] = rs[tc.factors]
			dir := t.TempDir()
			data, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(fixture, "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
				t.Fatal(err)
			}
			m := loadModel(t, dir, Options{})
			if s := m.Config.RopeScaling; s == nil || s.Type != "longrope" || math.Abs(s.AttentionFactor-1.1902380714238083) > 1e-12 {
				t.Fatalf("rope scaling %+v, want longrope with attention factor sqrt(1 + ln 32 / ln 4096)", s)
			}
			got, err := m.NewSession(0).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, got, readF32(t, filepath.Join("testdata/phi3-longrope", tc.logits)), m.Config.VocabSize, 1e-3, true)
		})
	}
}
