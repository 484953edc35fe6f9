package bench

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// fakeLL gives each continuation a fixed log-likelihood and records the
// prompts it was asked about.
type fakeLL struct {
	ll      map[string]float64
	prompts []string
}

func (f *fakeLL) LogLikelihood(_ context.Context, prompt, cont string) (float64, int, error) {
	f.prompts = append(f.prompts, prompt)
	return f.ll[cont], len(strings.Fields(cont)), nil
}

// TestChoiceLoglik: hand-made items where reading the letter from the
// generation and taking the most likely option disagree.
func TestChoiceLoglik(t *testing.T) {
	it := mustItem(t, `{"id": "1", "question": "Which is a fruit?", "choices": {"A": "car", "B": "stone", "C": "apple"}, "answer": "C"}`)
	f := &fakeLL{ll: map[string]float64{" car": -3, " stone": -2.5, " apple": -1}}
	label, lls, n, err := ChoiceByLikelihood(context.Background(), f, it)
	if err != nil || label != "C" || n != 3 || len(lls) != 3 || lls[1] != -2.5 {
		t.Fatalf("loglik choice %q %v %d %v", label, lls, n, err)
	}
	if f.prompts[0] != "Question: Which is a fruit?\nAnswer:" {
		t.Errorf("prompt %q", f.prompts[0])
	}
	// The same item answered "The answer is B." by generation is wrong, and right
	// by likelihood; a generation with no letter is wrong, never a default.
	sc, err := NewScorer(MultipleChoiceTask, ScorerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := sc.Score(context.Background(), it, "The answer is B."); g.Score != 0 || g.Extracted != "B" {
		t.Errorf("letter extraction %+v", g)
	}
	// Ties go to the earlier option; the reference is not consulted.
	f = &fakeLL{ll: map[string]float64{" car": -1, " stone": -1, " apple": -4}}
	if label, _, _, _ := ChoiceByLikelihood(context.Background(), f, it); label != "A" {
		t.Errorf("tie -> %s, want A", label)
	}
	ds := &Dataset{Name: "t", TaskType: MultipleChoiceTask, Test: []Item{it, mustItem(t, `{"id": "2", "question": "Which is blue?", "choices": ["grass", "sky"], "answer": "B"}`)}}
	f = &fakeLL{ll: map[string]float64{" car": -3, " stone": -2.5, " apple": -1, " grass": -0.5, " sky": -2}}
	r, err := EvaluateChoiceLoglik(context.Background(), ds, "test", Options{}, f)
	if err != nil || r.N != 2 || r.Correct != 1 || math.Abs(r.Accuracy-0.5) > 1e-12 || r.Items[1].Pred != "A" || r.Items[0].Generation != "apple" {
		t.Fatalf("evaluate: %+v %v", r, err)
	}
	if _, err := EvaluateChoiceLoglik(context.Background(), &Dataset{Name: "e", TaskType: ExactMatchTask, Test: []Item{it}}, "test", Options{}, f); err == nil {
		t.Error("exact_match accepted in log-likelihood mode")
	}
}

// TestLoglikMethods: a logit-level method scores text through its combined
// distribution (decode.NLLFrom), a second implementation of the model's
// own LogLikelihood: fusion of a model with itself must agree with the
// model alone, and a generate-only method is refused by the sweep's check.
func TestLoglikMethods(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-add")
	l, err := collab.LoadLocal(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pool := []collab.Member{l.Member(), l.Member()}
	for _, mode := range []string{"logit-mean", "prob-mean"} {
		m, err := collab.New(context.Background(), "fusion", pool, collab.Params{"mode": mode})
		if err != nil {
			t.Fatal(err)
		}
		sc, ok := m.(collab.Scorer)
		if !ok {
			t.Fatal("fusion gives no likelihood")
		}
		for _, cont := range []string{" 42", " 1081", " abc"} {
			want, wn, err1 := l.LogLikelihood(context.Background(), "Q: 12+30=\nA:", cont)
			got, gn, err2 := sc.LogLikelihood(context.Background(), "Q: 12+30=\nA:", cont)
			if err1 != nil || err2 != nil || wn != gn || math.Abs(got-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Errorf("%s %q: fusion %v (%d) vs model %v (%d) %v %v", mode, cont, got, gn, want, wn, err1, err2)
			}
		}
	}
	mv, err := collab.New(context.Background(), "majority-vote", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mv.(collab.Scorer); ok {
		t.Error("majority vote claims a likelihood")
	}
}
