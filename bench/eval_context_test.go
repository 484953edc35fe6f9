package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
)

// TestEvaluateContext: a cancelled run returns the items scored so far,
// their accuracy and the context's error; progress sees every item.
func TestEvaluateContext(t *testing.T) {
	ds := &Dataset{Name: "t", TaskType: ExactMatchTask}
	for i, out := range []string{"1", "2", "3", "4", "5", "6"} {
		ds.Test = append(ds.Test, Item{ID: string(rune('a' + i)), Input: "Q" + out, Output: out})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	gen := func(p string) (string, error) {
		calls++
		if calls == 3 {
			cancel() // the third item finishes, the fourth never starts
		}
		if calls == 2 {
			return "wrong", nil
		}
		return p[1:], nil
	}
	var progress [][3]int
	o := Options{First: true, Progress: func(d, n, c int) { progress = append(progress, [3]int{d, n, c}) }}
	r, err := EvaluateContext(ctx, ds, "test", o, gen)
	if !errors.Is(err, context.Canceled) || r == nil {
		t.Fatalf("got %v, %v; want a partial result and context.Canceled", r, err)
	}
	if r.N != 3 || r.Total != 6 || r.Correct != 2 || r.Accuracy != 2.0/3 || len(r.Items) != 3 || calls != 3 {
		t.Errorf("partial result %+v after %d calls", r, calls)
	}
	want := [][3]int{{1, 6, 1}, {2, 6, 1}, {3, 6, 2}}
	if len(progress) != 3 || progress[0] != want[0] || progress[1] != want[1] || progress[2] != want[2] {
		t.Errorf("progress %v, want %v", progress, want)
	}
	r, err = EvaluateContext(context.Background(), ds, "test", Options{First: true}, func(p string) (string, error) { return p[1:], nil })
	if err != nil || r.N != 6 || r.Accuracy != 1 || r.Total != 6 {
		t.Errorf("full run: %+v %v", r, err)
	}
}

// TestGreedyContext: a cancelled context stops greedy generation before
// its first token.
func TestGreedyContext(t *testing.T) {
	m, tok, err := embedded.Load(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g, err := GreedyContext(context.Background(), m, tok, 5)("Once upon a time"); err != nil || g == "" {
		t.Fatalf("live context: %q, %v", g, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GreedyContext(ctx, m, tok, 5)("Once upon a time"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestEvaluateWithScorer: with a Scorer, a task type the built-in scoring
// does not cover (f1_match) is evaluated: prompts are the scorer's (MoCo's
// \box instruction here), each generation gets the scorer's F1 against the
// best of its gold answers, and Score is their mean. Hand-derived: "black
// cat sat" against "cat sat" has precision 2/3 and recall 1, F1 0.8;
// "Paris" against ["paris", "Lutetia"] is 1; "blue" against ["red"] 0.
func TestEvaluateWithScorer(t *testing.T) {
	ds, err := ParseDataset([]byte(`{"dataset": "toy", "task_type": "f1_match", "dev": [], "test": [
		{"id": "a", "input": "Who sat?", "output": "cat sat"},
		{"id": "b", "input": "Capital?", "output": "[\"paris\", \"Lutetia\"]"},
		{"id": "c", "input": "Colour?", "output": "[\"red\"]"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EvaluateContext(context.Background(), ds, "test", Options{}, func(string) (string, error) { return "", nil }); err == nil {
		t.Error("f1_match without a Scorer was accepted")
	}
	sc, err := NewScorer(ds.TaskType, ScorerOptions{Dataset: ds.Name})
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{"Who sat?": "black cat sat", "Capital?": "Paris", "Colour?": "blue"}
	var prompts []string
	gen := func(p string) (string, error) {
		prompts = append(prompts, p)
		q, _, _ := strings.Cut(p, MoCoBoxInstruction)
		return `\box{` + answers[q] + `}`, nil
	}
	want := map[string]float64{"a": 0.8, "b": 1, "c": 0}
	for name, run := range map[string]func() (*Result, error){
		"sequential": func() (*Result, error) {
			return EvaluateContext(context.Background(), ds, "test", Options{First: true, Scorer: sc}, gen)
		},
		"batch": func() (*Result, error) {
			return EvaluateBatch(context.Background(), ds, "test", Options{First: true, Scorer: sc}, Sequential(gen))
		},
	} {
		prompts = nil
		r, err := run()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Metric != "f1" || math.Abs(r.Score-0.6) > 1e-12 || r.N != 3 || r.Correct != 1 {
			t.Errorf("%s: metric %q score %v, n %d, correct %d; want f1 0.6, 3 items, 1 exactly right", name, r.Metric, r.Score, r.N, r.Correct)
		}
		for _, it := range r.Items {
			if math.Abs(it.Score-want[it.ID]) > 1e-12 {
				t.Errorf("%s: item %s scored %v, want %v", name, it.ID, it.Score, want[it.ID])
			}
		}
		if len(prompts) != 3 || !strings.HasSuffix(prompts[0], MoCoBoxInstruction) {
			t.Errorf("%s: prompts %q, want MoCo's box instruction", name, prompts)
		}
	}
}
