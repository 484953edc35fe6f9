package collab

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mocolab/moco/collab/extract"
)

// scripted is a deterministic fake model: it answers each prompt with
// reply(name, prompt) and logs what it was asked.
type scripted struct {
	name  string
	reply func(name, prompt string) (string, error)
	mu    sync.Mutex
	log   []string
}

func (s *scripted) Name() string { return s.name }
func (s *scripted) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		p := r.Prompt
		if len(r.Messages) > 0 {
			p = r.Messages[len(r.Messages)-1].Content
		}
		s.mu.Lock()
		s.log = append(s.log, p)
		s.mu.Unlock()
		t, err := s.reply(s.name, p)
		if err != nil {
			return nil, err
		}
		out[i] = Response{Text: t, PromptTokens: 1, CompletionTokens: 2, ForwardTokens: 3, FLOPs: 10}
	}
	return out, nil
}

func scriptedPool(reply func(name, prompt string) (string, error), names ...string) ([]Member, []*scripted) {
	var pool []Member
	var gens []*scripted
	for _, n := range names {
		g := &scripted{name: n, reply: reply}
		gens = append(gens, g)
		pool = append(pool, Member{Name: n, Gen: g})
	}
	return pool, gens
}

// tag answers "NAME(kind)" where kind says which prompt it got.
func tag(name, p string) (string, error) {
	kind := "q"
	switch {
	case strings.Contains(p, "improve your own"):
		kind = "refine"
	case strings.Contains(p, "combine them into one final"):
		kind = "sum"
	case strings.Contains(p, "Give constructive feedback"):
		kind = "fb"
	case strings.Contains(p, "Use the feedback"):
		kind = "revise"
	case strings.Contains(p, "write down knowledge"):
		kind = "card"
	case strings.Contains(p, "using the knowledge above"):
		kind = "kans"
	case strings.HasPrefix(p, "Task: "):
		kind = "upd"
	}
	return name + "(" + kind + ")", nil
}

func TestMajorityVote(t *testing.T) {
	answers := map[string]string{"a": "The answer is 12.", "b": "\\boxed{7}", "c": "12", "d": "so the answer is 7"}
	reply := func(name, p string) (string, error) { return answers[name], nil }
	ctx := context.Background()
	for _, tc := range []struct {
		names  []string
		params Params
		want   string
		note   string
	}{
		{[]string{"a", "b", "c"}, nil, "The answer is 12.", `"12" wins with 2 of 3 votes`},
		{[]string{"b", "a"}, nil, "\\boxed{7}", `tie at 1 votes between ["7" "12"]; "7" wins as the earliest model's answer`},
		{[]string{"a", "b", "c", "d"}, Params{"tie": "dev", "dev_scores": []float64{0.1, 0.2, 0.3, 0.9}}, "\\boxed{7}", `"7" wins as the answer of the best model on dev`},
		{[]string{"a", "b", "c", "d"}, nil, "The answer is 12.", `"12" wins as the earliest`},
	} {
		pool, gens := scriptedPool(reply, tc.names...)
		m, err := New(ctx, "majority-vote", pool, tc.params)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(ctx, []Request{{Prompt: "Q?"}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Text != tc.want {
			t.Errorf("%v: got %q, want %q", tc.names, res[0].Text, tc.want)
		}
		tr := res[0].Trace
		if last := tr[len(tr)-1]; last.Step != "vote" || !strings.Contains(last.Note, tc.note) {
			t.Errorf("%v: vote event %+v, want note %q", tc.names, last, tc.note)
		}
		for _, g := range gens {
			if !reflect.DeepEqual(g.log, []string{"Q?"}) {
				t.Errorf("%s was asked %q", g.name, g.log)
			}
		}
		if res[0].FLOPs != 10*float64(len(tc.names)) {
			t.Errorf("FLOPs %v", res[0].FLOPs)
		}
	}
	// Multiple choice through Request.Task.
	mc := map[string]string{"a": "B", "b": "the answer is (a)", "c": "I pick London"}
	pool, _ := scriptedPool(func(n, p string) (string, error) { return mc[n], nil }, "a", "b", "c")
	m, _ := New(ctx, "majority-vote", pool, nil)
	res, err := m.Generate(ctx, []Request{{Prompt: "Capital of the UK?", Task: extract.Task{Type: extract.MultipleChoice,
		Choices: []extract.Choice{{Label: "A", Text: "Paris"}, {Label: "B", Text: "London"}}}}})
	if err != nil || res[0].Text != "B" {
		t.Fatalf("multiple choice: %v %v", res, err)
	}
}

func TestVoteEmptyAnswers(t *testing.T) {
	if i, why := Vote([]string{"", "x", ""}, "first", nil); i != 1 || !strings.Contains(why, "1 of 3") {
		t.Errorf("empty keys voted: %d %s", i, why)
	}
	if i, _ := Vote([]string{"", ""}, "first", nil); i != 0 {
		t.Errorf("all empty: %d", i)
	}
}

func TestDebateProtocol(t *testing.T) {
	pool, gens := scriptedPool(tag, "A", "B", "C")
	m, err := New(context.Background(), "debate", pool, Params{"rounds": 2, "summarizer": "B"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != "B(sum)" {
		t.Errorf("final %q", res[0].Text)
	}
	wantA := []string{"Q?", refinePrompt("Q?", "A(q)", []string{"B(q)", "C(q)"})}
	if !reflect.DeepEqual(gens[0].log, wantA) {
		t.Errorf("A was asked\n%q\nwant\n%q", gens[0].log, wantA)
	}
	wantB := []string{"Q?", refinePrompt("Q?", "B(q)", []string{"A(q)", "C(q)"}),
		summaryPrompt("Q?", []string{"A(refine)", "B(refine)", "C(refine)"})}
	if !reflect.DeepEqual(gens[1].log, wantB) {
		t.Errorf("B was asked\n%q\nwant\n%q", gens[1].log, wantB)
	}
	var steps []string
	for _, e := range res[0].Trace {
		steps = append(steps, fmt.Sprintf("%d %s %s", e.Round, e.Step, e.From))
	}
	want := []string{"1 answer A", "1 answer B", "1 answer C", "2 refine A", "2 refine B", "2 refine C", "3 summarize B"}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("trace %q", steps)
	}
	// The summariser by dev scores.
	m, _ = New(context.Background(), "debate", pool, Params{"rounds": 1, "dev_scores": []float64{0.1, 0.5, 0.9}})
	res, _ = m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if res[0].Text != "C(sum)" {
		t.Errorf("dev-picked summariser: %q", res[0].Text)
	}
}

func TestFeedbackProtocol(t *testing.T) {
	pool, gens := scriptedPool(tag, "A", "B", "C")
	m, err := New(context.Background(), "feedback", pool, Params{"rounds": 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	// Round 2: A critiques B's and C's answers (in that order), then
	// revises with B's and C's feedback on its own.
	wantA := []string{"Q?", feedbackPrompt("Q?", "B(q)"), feedbackPrompt("Q?", "C(q)"),
		reviseWithFeedbackPrompt("Q?", "A(q)", []string{"B(fb)", "C(fb)"}),
		summaryPrompt("Q?", []string{"A(revise)", "B(revise)", "C(revise)"})}
	if !reflect.DeepEqual(gens[0].log, wantA) {
		t.Errorf("A was asked\n%q\nwant\n%q", gens[0].log, wantA)
	}
	if res[0].Text != "A(sum)" {
		t.Errorf("final %q", res[0].Text)
	}
	var to []string
	for _, e := range res[0].Trace {
		if e.Step == "feedback" {
			to = append(to, e.From+">"+e.To)
		}
	}
	if want := []string{"B>A", "C>A", "A>B", "C>B", "A>C", "B>C"}; !reflect.DeepEqual(to, want) {
		t.Errorf("feedback pairs %v, want %v", to, want)
	}
	// Fewer reviewers than others: a seeded draw, the same each time.
	r1, r2 := Reviewers(5, 2, 7, 2), Reviewers(5, 2, 7, 2)
	for i, r := range r1 {
		if len(r) != 2 || slicesContains(r, i) || !reflect.DeepEqual(r, r2[i]) {
			t.Errorf("reviewers of %d: %v / %v", i, r, r2[i])
		}
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestKnowledgeCardProtocol(t *testing.T) {
	pool, gens := scriptedPool(tag, "A", "B", "C")
	m, _ := New(context.Background(), "knowledge-card", pool, Params{"answerer": 2, "exclude_self": true})
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{knowledgePrompt("Q?"), answerWithKnowledgePrompt("Q?", []string{"A(card)", "B(card)"})}
	if !reflect.DeepEqual(gens[2].log, want) || res[0].Text != "C(kans)" {
		t.Errorf("C was asked %q and answered %q", gens[2].log, res[0].Text)
	}
}

func TestStructureProtocol(t *testing.T) {
	// Chain A - B - C: A sees B, B sees A and C, C sees B.
	pool, gens := scriptedPool(tag, "A", "B", "C")
	m, err := New(context.Background(), "structure", pool, Params{"structure_type": "chain", "num_rounds": 2, "final": "C"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Q?", structurePrompt("Q?", "B(q)", []string{"A(q)", "C(q)"})}; !reflect.DeepEqual(gens[1].log, want) {
		t.Errorf("B was asked %q", gens[1].log)
	}
	if want := []string{"Q?", structurePrompt("Q?", "C(q)", []string{"B(q)"})}; !reflect.DeepEqual(gens[2].log, want) {
		t.Errorf("C was asked %q", gens[2].log)
	}
	if res[0].Text != "C(upd)" {
		t.Errorf("final %q", res[0].Text)
	}
	// A source with no in-edges keeps its answer: 0 -> 1 only.
	m, _ = New(context.Background(), "structure", pool[:2], Params{"structure_type": "other", "structure_matrix": [][]int{{0, 1}, {0, 0}}, "num_rounds": 3})
	res, _ = m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if res[0].Text != "A(q)" {
		t.Errorf("source model's answer %q", res[0].Text)
	}
	// MoCo's star over 5: hub 0, ring 1-2-3-4-1.
	star, _ := Topology("star", 5, nil)
	want := [][]int{{0, 1, 1, 1, 1}, {1, 0, 1, 0, 1}, {1, 1, 0, 1, 0}, {1, 0, 1, 0, 1}, {1, 1, 0, 1, 0}}
	if !reflect.DeepEqual(star, want) {
		t.Errorf("star %v", star)
	}
	tree, _ := Topology("tree", 4, nil)
	if want := [][]int{{0, 1, 1, 0}, {1, 0, 0, 1}, {1, 0, 0, 0}, {0, 1, 0, 0}}; !reflect.DeepEqual(tree, want) {
		t.Errorf("tree %v", tree)
	}
}

// TestTextMethodFailures: a model that errors or times out fails the
// request with its name; bad parameters fail at construction.
func TestTextMethodFailures(t *testing.T) {
	boom := func(name, p string) (string, error) {
		if name == "B" {
			return "", errors.New("CUDA out of memory")
		}
		return "x", nil
	}
	slow := &slowGen{}
	for _, method := range []string{"majority-vote", "debate", "feedback", "knowledge-card", "structure"} {
		pool, _ := scriptedPool(boom, "A", "B", "C")
		m, err := New(context.Background(), method, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
		if err == nil || !strings.Contains(err.Error(), "model B failed: CUDA out of memory") {
			t.Errorf("%s: error %v", method, err)
		}
		pool[1] = Member{Name: "slow", Gen: slow}
		m, _ = New(context.Background(), method, pool, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err = m.Generate(ctx, []Request{{Prompt: "Q?"}})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "model slow failed") {
			t.Errorf("%s with a hung model: %v", method, err)
		}
	}
	pool, _ := scriptedPool(tag, "A", "B")
	for _, tc := range []struct {
		method string
		params Params
		err    string
	}{
		{"majority-vote", Params{"tie": "random"}, "tie must be first or dev"},
		{"majority-vote", Params{"tie": "dev"}, "0 dev scores for 2 models"},
		{"debate", Params{"rounds": 0}, "rounds must be at least 1"},
		{"debate", Params{"summarizer": "Z"}, `no model "Z" in the pool`},
		{"debate", Params{"summarizer": 5}, "not a model index"},
		{"structure", Params{"structure_type": "mesh"}, "unknown structure_type"},
		{"structure", Params{"structure_type": "other", "structure_matrix": [][]int{{0, 2}, {0, 0}}}, "entries are 0 or 1"},
		{"feedback", Params{"rounds_": 2}, `unknown field "rounds_"`},
		{"majority-vote", nil, ""},
	} {
		_, err := New(context.Background(), tc.method, pool, tc.params)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.method, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %v: error %v, want %q", tc.method, tc.params, err, tc.err)
		}
	}
	if _, err := New(context.Background(), "debate", pool[:1], nil); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one-model debate: %v", err)
	}
}

// slowGen never answers until its context ends.
type slowGen struct{}

func (slowGen) Name() string { return "slow" }
func (slowGen) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestMethodFailuresReported extends TestTextMethodFailures to the other
// methods that run on any generator: a model that errors, or hangs until
// the deadline, fails the request with an error naming it; no method
// drops it and answers with the rest.
func TestMethodFailuresReported(t *testing.T) {
	failB := func(name, p string) (string, error) {
		if name == "B" {
			return "", errors.New("CUDA out of memory")
		}
		if strings.Contains(p, "Conclusion #") || strings.Contains(p, "blackboard") {
			return "Conclusion #1", nil
		}
		return "2", nil
	}
	for _, c := range []struct {
		method string
		params Params
	}{
		{"bbmas", Params{"max_iterations": 2, "max_num_agents_to_act": 3}},
		{"llm-blender", nil},
		{"heterogeneous-swarms", nil},
		{"heterogeneous-swarms", Params{"graph": [][]int{{0, 0, 0}, {1, 0, 1}, {0, 0, 0}}}},
		{"prompt-routing", Params{"model_descriptions": []string{"a", "b", "c"}, "router": "B"}},
	} {
		pool, _ := scriptedPool(failB, "A", "B", "C")
		m, err := New(context.Background(), c.method, pool, c.params)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		_, err = m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
		if err == nil || !strings.Contains(err.Error(), "B") || !strings.Contains(err.Error(), "CUDA out of memory") {
			t.Errorf("%s: error %v", c.method, err)
		}
		pool[1] = Member{Name: "slow", Gen: slowGen{}}
		if c.method == "prompt-routing" {
			c.params["router"] = "slow"
		}
		m, err = New(context.Background(), c.method, pool, c.params)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err = m.Generate(ctx, []Request{{Prompt: "Q?"}})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "slow") {
			t.Errorf("%s with a hung model: %v", c.method, err)
		}
	}
	// A route to a failing model is reported as that model's failure.
	pool, _ := scriptedPool(func(name, p string) (string, error) {
		if name == "A" {
			return "model 2", nil
		}
		return "", errors.New("503 from upstream")
	}, "A", "B")
	m, err := New(context.Background(), "prompt-routing", pool, Params{"model_descriptions": []string{"a", "b"}, "router": "A"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}}); err == nil || !strings.Contains(err.Error(), "model B failed: 503 from upstream") {
		t.Errorf("prompt-routing to a failing model: %v", err)
	}
}

// TestMoCoRoundName: debate and feedback take MoCo's hyperparameter name
// "round" for their rounds (its example configs use it), not both names.
func TestMoCoRoundName(t *testing.T) {
	for _, method := range []string{"debate", "feedback"} {
		pool, gens := scriptedPool(tag, "A", "B")
		m, err := New(context.Background(), method, pool, Params{"round": 1, "summarizer": "A"})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if _, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}}); err != nil {
			t.Fatal(err)
		}
		// One round: B answers once and is never asked to refine.
		if len(gens[1].log) != 1 {
			t.Errorf("%s with round 1: B was asked %d times: %q", method, len(gens[1].log), gens[1].log)
		}
		if _, err := New(context.Background(), method, pool, Params{"round": 1, "rounds": 2}); err == nil || !strings.Contains(err.Error(), "not both") {
			t.Errorf("%s with round and rounds: %v", method, err)
		}
	}
}
