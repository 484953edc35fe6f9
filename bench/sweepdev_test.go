package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// devSpy is a registered method that learns from dev: it records what the
// sweep gave it and answers with its first model.
type devSpy struct {
	collab.Method
}

var (
	spyMu     sync.Mutex
	spyParams []collab.Params
	spyPools  [][]string
)

func init() {
	collab.Register(collab.Spec{Name: "test-dev-spy", Level: collab.LevelAPI, MinModels: 2, Dev: true, DevScores: true,
		New: func(ctx context.Context, pool []collab.Member, p collab.Params) (collab.Method, error) {
			spyMu.Lock()
			spyParams = append(spyParams, p)
			var names []string
			for _, m := range pool {
				names = append(names, m.Name)
			}
			spyPools = append(spyPools, names)
			spyMu.Unlock()
			m, err := collab.New(ctx, "single", pool[:1], nil)
			return devSpy{m}, err
		}})
}

// TestSweepDevSplit: a method that learns from dev is built once per
// dataset, from a file holding only that dataset's dev split (with the
// prompts the sweep sends), with the sweep's token limit and each model's
// dev accuracy; contrastive's pool is ranked best first on dev; a dataset
// evaluated on its dev split refuses such methods before any model loads.
func TestSweepDevSplit(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	dir := t.TempDir()
	// Hand-made: dev items are additions (add solves them, rev does not),
	// test items carry a marker that must never reach a dev file.
	write := func(name string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(`{"dataset": "`+name+`", "task_type": "exact_match",
			"dev": [{"id": "d1", "input": "Q: 368+226=\nA:", "output": "594"}, {"id": "d2", "input": "Q: 509+572=\nA:", "output": "1081"}],
			"test": [{"id": "TESTONLY-1", "input": "Q: 7+8= TESTONLY\nA:", "output": "15"}]}`), 0o644)
		return p
	}
	d1, d2 := write("one"), write("two")
	cfgText := "models: [{name: rev, path: " + rev + "}, {name: add, path: " + add + "}]\n" +
		"methods: [test-dev-spy, contrastive]\n" +
		"datasets: [{path: " + d1 + ", prompt: raw}, {path: " + d2 + ", prompt: raw, max_tokens: 7}]\n" +
		"generation: {max_tokens: 6}\ntiming: false\n"
	cfgPath := filepath.Join(dir, "s.yaml")
	os.WriteFile(cfgPath, []byte(cfgText), 0o644)
	c, dss, err := LoadSweepConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	spyMu.Lock()
	spyParams, spyPools = nil, nil
	spyMu.Unlock()
	var notices []string
	out := filepath.Join(dir, "r.jsonl")
	if _, err := RunSweep(context.Background(), c, dss, SweepOptions{Out: out, Workers: 1, Notice: func(s string) { notices = append(notices, s) }}); err != nil {
		t.Fatal(err)
	}
	// Each model's dev accuracy, measured here by the reference harness
	// (bench.Greedy and ExactMatch) with the dataset's token limit.
	var want [2]float64
	for k, dir := range []string{rev, add} {
		l, err := collab.LoadLocal(dir, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		g := Greedy(l.Model, l.Tok, 6)
		for _, q := range [][2]string{{"Q: 368+226=\nA:", "594"}, {"Q: 509+572=\nA:", "1081"}} {
			if out, _ := g(q[0]); ExactMatch(ExtractAnswer(out), q[1]) {
				want[k] += 0.5
			}
		}
		l.Close()
	}
	if want[1] == 0 {
		t.Fatal("skills-add solves neither dev sum: the check below would be weak")
	}
	if len(spyParams) != 2 {
		t.Fatalf("the dev method was built %d times, want once per dataset (2)", len(spyParams))
	}
	for i, p := range spyParams {
		f, _ := p["dev"].(string)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("build %d: dev file %q: %v", i, f, err)
		}
		var raw map[string]json.RawMessage
		json.Unmarshal(b, &raw)
		if _, ok := raw["test"]; ok || strings.Contains(string(b), "TESTONLY") || !strings.Contains(string(b), "d2") {
			t.Errorf("build %d: the dev file holds more than the dev split: %s", i, b)
		}
		items, err := collab.LoadDevSet(f, "dev", 0)
		if err != nil || len(items) != 2 || items[0].Prompt != "Q: 368+226=\nA:" || items[0].Ref != "594" {
			t.Errorf("build %d: dev items %+v %v", i, items, err)
		}
		wantTok := []int{6, 7}[i]
		if n, _ := p["dev_max_tokens"].(int); n != wantTok {
			t.Errorf("build %d: dev_max_tokens %v, want %d", i, p["dev_max_tokens"], wantTok)
		}
		sc, _ := p["dev_scores"].([]float64)
		if len(sc) != 2 || sc[0] != want[0] || sc[1] != want[1] {
			t.Errorf("build %d: dev_scores %v, want %v (pool rev, add)", i, sc, want)
		}
	}
	lines, _ := ReadResults(out)
	for _, l := range lines {
		if !strings.Contains(l.Prompt, "TESTONLY") {
			t.Errorf("line %s/%s is not a test item", l.Method, l.ID)
		}
	}
	// The dev split itself cannot be evaluated by a dev-learning method.
	os.WriteFile(cfgPath, []byte(strings.Replace(cfgText, "prompt: raw}, {path", "prompt: raw, split: dev}, {path", 1)), 0o644)
	c, dss, err = LoadSweepConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunSweep(context.Background(), c, dss, SweepOptions{Out: filepath.Join(dir, "r2.jsonl"), Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "learns from the dev split") {
		t.Errorf("dev split evaluated by a dev-learning method: %v", err)
	}
}

// TestDevNeedsMajorityVote: majority vote asks for the pool's dev scores
// only when they break its ties (tie: dev); with the default first-model
// rule a sweep does not make every model answer the dev split.
func TestDevNeedsMajorityVote(t *testing.T) {
	for _, tc := range []struct {
		params collab.Params
		want   bool
	}{
		{collab.Params{}, false},
		{collab.Params{"tie": "first"}, false},
		{collab.Params{"tie": "dev"}, true},
		{collab.Params{"tie": "dev", "dev_scores": []float64{1, 2}}, false}, // given
	} {
		if got := devNeeds(methodRun{name: "majority-vote", params: tc.params}).scores; got != tc.want {
			t.Errorf("%v: dev scores needed %v, want %v", tc.params, got, tc.want)
		}
	}
	if !devNeeds(methodRun{name: "debate", params: collab.Params{}}).scores {
		t.Error("debate picks its summarizer by dev score and should still ask for them")
	}
}

// TestDevNeedsSLMMux: slm-mux breaks confidence ties by dev score by
// default, so a sweep gives it the pool's dev scores unless another tie
// rule needs none or the config gives them.
func TestDevNeedsSLMMux(t *testing.T) {
	for _, tc := range []struct {
		params collab.Params
		want   bool
	}{
		{collab.Params{}, true},
		{collab.Params{"tie": "dev-based"}, true},
		{collab.Params{"tie": "model-order"}, false},
		{collab.Params{"tie": "random", "seed": 1}, false},
		{collab.Params{"dev_scores": []float64{1, 2}}, false}, // given
	} {
		if got := devNeeds(methodRun{name: "slm-mux", params: tc.params}).scores; got != tc.want {
			t.Errorf("%v: dev scores needed %v, want %v", tc.params, got, tc.want)
		}
	}
}
