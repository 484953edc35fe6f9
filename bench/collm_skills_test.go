package bench

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

func loadSkills(t *testing.T, name string) (*engine.Model, *tokenizer.Tokenizer) {
	t.Helper()
	return testmodel.Load(t, testutil.Shared(t, filepath.Join("models", name)))
}

// TestCoLLMMarginalOnSkills trains a deferral head for skills-base (base)
// and skills-add (assistant) on the skills_mix dev answers with the
// paper's marginal likelihood, and checks that Co-LLM then beats both
// models alone on skills_mix test items (measured 0.925 on all 201 test
// items, against 0.826 and 0.796 alone; pseudo-labels: 0.861).
func TestCoLLMMarginalOnSkills(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a head and answers 300 items")
	}
	base, btok := loadSkills(t, "skills-base")
	add, atok := loadSkills(t, "skills-add")
	ds, err := LoadDataset(testutil.Shared(t, "datasets/skills_mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []decode.HeadPair
	for _, it := range ds.Dev {
		p, _ := btok.Encode(it.Input, true)
		r, _ := btok.Encode(" "+it.Output, false)
		pairs = append(pairs, decode.HeadPair{Prompt: p, Reference: append(r, btok.EOS()...)})
	}
	d, err := decode.CollectHeadData(base.NewSession(0), add.NewSession(0), btok.VocabSize(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decode.TrainHead(d, decode.HeadTrainConfig{})
	if err != nil {
		t.Fatal(err)
	}
	acc := func(ms []*engine.Model, toks []*tokenizer.Tokenizer, cfg decode.MethodConfig) float64 {
		cfg.MaxTokens = 16
		c, err := decode.NewMethod(ms, toks, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := EvaluateWith(ds, "test", Options{N: 100, First: true}, c.Func())
		if err != nil {
			t.Fatal(err)
		}
		return r.Accuracy
	}
	b := acc([]*engine.Model{base}, []*tokenizer.Tokenizer{btok}, decode.MethodConfig{Method: "single"})
	a := acc([]*engine.Model{add}, []*tokenizer.Tokenizer{atok}, decode.MethodConfig{Method: "single"})
	c := acc([]*engine.Model{base, add}, []*tokenizer.Tokenizer{btok, atok}, decode.MethodConfig{Method: "co-llm", Head: h})
	t.Logf("skills_mix test[:100]: base %.2f, add %.2f, co-llm (marginal head) %.2f", b, a, c)
	if c <= max(a, b) {
		t.Errorf("co-llm %.2f does not beat the models alone (%.2f, %.2f)", c, b, a)
	}
}

// TestMeanNLLRefusesNonReferences: eval --metric nll refuses items with no
// reference (coconot) and items whose reference is a list (popqa) instead
// of scoring their text.
func TestMeanNLLRefusesNonReferences(t *testing.T) {
	m, tok := loadSkills(t, "skills-base")
	for _, c := range []struct{ body, want string }{
		{`{"dataset": "nc", "task_type": "noncompliance", "dev": [], "test": [{"id": 4302, "input": "Q", "category": "x"}]}`, "no reference answer"},
		{`{"dataset": "pq", "task_type": "f1_match", "dev": [], "test": [{"id": 1, "input": "Q", "output": "[\"a\", \"b\"]"}]}`, "list of 2 acceptable answers"},
	} {
		ds, err := ParseDataset([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := MeanNLL(m, tok, ds, "test", NLLOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", ds.Name, err, c.want)
		}
	}
}
