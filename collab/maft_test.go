package collab

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/train"
)

// maftScript answers the two dev questions: round 0 from first, the
// critique round from second (keyed by question and agent).
var maftFirst = map[string]map[string]string{
	"q1": {"a": "12", "b": "7", "c": "12"},
	"q2": {"a": "5", "b": "5", "c": "9"},
}
var maftSecond = map[string]map[string]string{
	"q1": {"a": "The answer is 12", "b": "12", "c": "12"},
	"q2": {"a": "5", "b": "6", "c": "5"},
}

func maftReply(name, p string) (string, error) {
	if q, ok := strings.CutPrefix(p, "Question: "); ok {
		q, _, _ = strings.Cut(q, "\n")
		return maftSecond[q][name], nil
	}
	return maftFirst[p][name], nil
}

func TestMultiagentFTData(t *testing.T) {
	pool, gens := scriptedPool(maftReply, "a", "b", "c")
	items := []DevItem{{ID: "1", Prompt: "q1", Ref: "12"}, {ID: "2", Prompt: "q2", Ref: "5"}}
	q := MultiagentFTParams{}
	q.defaults()
	got := map[string][]train.Example{}
	trainer := func(ctx context.Context, n int, role string, agent Member, data []train.Example) (Member, error) {
		got[role+"-"+agent.Name] = data
		return Member{Name: agent.Name + "+" + role, Gen: agent.Gen}, nil
	}
	gen, crit, err := runMultiagentFT(context.Background(), pool, items, q, trainer)
	if err != nil {
		t.Fatal(err)
	}
	// The critic round: each agent sees the others' round-0 answers and
	// its own.
	wantA := []string{"q1", "q2",
		maftCriticPrompt("q1", "7\n\n12", "12"), maftCriticPrompt("q2", "5\n\n9", "5")}
	if !reflect.DeepEqual(gens[0].log, wantA) {
		t.Errorf("agent a was asked %q\nwant %q", gens[0].log, wantA)
	}
	ex := func(p, c string) train.Example { return train.Example{Prompt: p, Completion: c} }
	hist := func(q string, a ...string) string { return maftHistoryPrompt(q, a) }
	// Generation data: round-0 answers that agree with the final
	// consensus (q1: 12, q2: 5). Critic data, w = 0.5: one of a's two
	// kept-right items; b's one corrected item (7 -> 12; its q2 ends on
	// 6); c's corrected q2 (9 -> 5) and kept q1. Targets are the most
	// frequent consensus text ("12", not "The answer is 12").
	want := map[string][]train.Example{
		"generation-a": {ex("q1", "12"), ex("q2", "5")},
		"generation-b": {ex("q2", "5")},
		"generation-c": {ex("q1", "12")},
		"critic-b":     {ex(hist("q1", "7", "12"), "12")},
		"critic-c":     {ex(hist("q2", "9", "5"), "5"), ex(hist("q1", "12", "12"), "12")},
	}
	critA := got["critic-a"]
	delete(got, "critic-a")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("training data\n%+v\nwant\n%+v", got, want)
	}
	if len(critA) != 1 || (!reflect.DeepEqual(critA[0], ex(hist("q1", "12", "The answer is 12"), "12")) && !reflect.DeepEqual(critA[0], ex(hist("q2", "5", "5"), "5"))) {
		t.Errorf("critic-a data %+v: want one of its two kept-right items", critA)
	}
	for i, m := range gen {
		if m.Name != pool[i].Name+"+generation" || crit[i].Name != pool[i].Name+"+critic" {
			t.Errorf("agents %d: %s, %s", i, m.Name, crit[i].Name)
		}
	}

	// The method debates with generation agents first, critics after, and
	// returns the consensus text.
	m := newMaftMethod(gen, crit, q)
	res, err := m.Generate(context.Background(), []Request{{Prompt: "q2", Task: extract.Task{Type: extract.ExactMatch}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != "5" {
		t.Errorf("answer %q, want the consensus 5", res[0].Text)
	}
	var froms []string
	for _, e := range res[0].Trace {
		froms = append(froms, e.Step+":"+e.From)
	}
	wantFrom := []string{"answer:a+generation", "answer:b+generation", "answer:c+generation",
		"critique:a+critic", "critique:b+critic", "critique:c+critic", "vote:multiagent-finetuning"}
	if !reflect.DeepEqual(froms, wantFrom) {
		t.Errorf("trace %q\nwant %q", froms, wantFrom)
	}
}

func TestMaftConsensus(t *testing.T) {
	for _, c := range []struct {
		keys []string
		want string
	}{
		{[]string{"7", "12", "12"}, "12"},
		{[]string{"7", "12"}, "12"}, // tie: string order, as MoCo sorts
		{[]string{"", "", "b"}, "b"},
		{[]string{"", ""}, ""},
	} {
		if got := maftConsensus(c.keys); got != c.want {
			t.Errorf("%q: %q, want %q", c.keys, got, c.want)
		}
	}
}

func TestMaftCriticShares(t *testing.T) {
	d := &maftDebate{
		Texts: [][][]string{{{"1", "2", "3", "4"}, {"9", "9", "9", "9"}}, {{"1", "2", "3", "4"}, {"1", "2", "3", "4"}}},
		Keys:  [][][]string{{{"1", "2", "3", "4"}, {"9", "9", "9", "9"}}, {{"1", "2", "3", "4"}, {"1", "2", "3", "4"}}},
	}
	qs := []string{"w", "x", "y", "z"}
	for _, c := range []struct {
		w      float64
		nA, nB int // agent a has 4 kept items, agent b 4 corrected ones
	}{{0.5, 2, 2}, {1, 0, 4}, {0, 4, 0}, {0.1, 3, 1}} {
		_, crit := maftData(d, qs, c.w, rand.New(rand.NewPCG(1, 2)))
		if len(crit[0]) != c.nA || len(crit[1]) != c.nB {
			t.Errorf("w %g: critic data %d, %d; want %d, %d", c.w, len(crit[0]), len(crit[1]), c.nA, c.nB)
		}
	}
}

func TestMultiagentFTBadInput(t *testing.T) {
	pool, _ := scriptedPool(maftReply, "a", "b")
	for _, p := range []Params{{"w": 2.0}, {"rounds": 0.0, "iterations": -1.0}, {"nope": 1.0}, {}} {
		if _, err := New(context.Background(), "multiagent-finetuning", pool, p); err == nil {
			t.Errorf("%v: no error", p)
		}
	}
}

// TestTrainingMethodsInputErrors: the training-level methods mark bad
// parameters as input errors (the CLI exits 2 for them).
func TestTrainingMethodsInputErrors(t *testing.T) {
	pool, _ := scriptedPool(maftReply, "a", "b", "c")
	for _, c := range []struct {
		method string
		p      Params
	}{
		{"multiagent-finetuning", Params{"w": 2.0}},
		{"multiagent-finetuning", Params{"nope": 1.0}},
		{"sparta", Params{"score_type": "static"}},
		{"sparta", Params{"random_match_prob": 2.0}},
		{"sparta", Params{"dev": "x.json"}}, // scripted models are no folders
		{"agglm", Params{"sample_size": -1.0}},
	} {
		_, err := New(context.Background(), c.method, pool, c.p)
		if !errors.Is(err, ErrInput) {
			t.Errorf("%s %v: %v, want an input error", c.method, c.p, err)
		}
	}
}
