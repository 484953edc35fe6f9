package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/merge"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// TestSkillsHarness validates the harness (prompts, greedy decoding,
// extraction, exact match) against the accuracies the training framework
// measured on the first 100 test items (skills_accuracy.json), for full
// fine-tunes and for LoRA adapters merged into their base.
func TestSkillsHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 1,200 answers")
	}
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	b, err := os.ReadFile(filepath.Join(models, "skills_accuracy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ Models map[string]map[string]float64 }
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(models, "skills-base")
	tok, err := tokenizer.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	baseSrc, err := safetensors.OpenDir(base)
	if err != nil {
		t.Fatal(err)
	}
	defer baseSrc.Close()
	for _, name := range []string{"skills-add", "skills-rev", "skills-sort", "skills-lora-add", "skills-lora-sort"} {
		dir := filepath.Join(models, name)
		var src safetensors.Source
		if a, err := merge.LoadAdapter(dir); err == nil {
			if src, err = merge.ApplyLoRA(baseSrc, []*merge.Adapter{a}, []float64{1}); err != nil {
				t.Fatal(err)
			}
		} else if src, err = safetensors.OpenDir(dir); err != nil {
			t.Fatal(err)
		}
		m, err := engine.New(cfg, src, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, skill := range []string{"add", "rev", "sort"} {
			ds, err := LoadDataset(filepath.Join(data, "skills_"+skill+".json"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := EvaluateWith(ds, "test", Options{N: 100, First: true}, Greedy(m, tok, 16))
			if err != nil {
				t.Fatal(err)
			}
			if w := want.Models[name][skill]; math.Abs(r.Accuracy-w) > 0.03 {
				t.Errorf("%s on %s: accuracy %.2f, training framework %.2f", name, skill, r.Accuracy, w)
			}
		}
		m.Close()
	}
}
