package collab

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestBlenderLLMJudge(t *testing.T) {
	// The judge prefers the answer of the later model in every pair but
	// one: C over A, C over B, and B over A; so C, B, A.
	pool, gens := scriptedPool(func(name, p string) (string, error) {
		if strings.Contains(p, "Which answer is better") {
			if strings.Contains(p, "Answer A:\nA says") {
				return "b", nil
			}
			return " B is better", nil
		}
		if strings.Contains(p, "merges several candidate answers") {
			return name + " fused", nil
		}
		return name + " says", nil
	}, "A", "B", "C")
	m, err := New(context.Background(), "llm-blender", pool, Params{"top_k": 2, "judge": "A", "fuser": "B"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != "B fused" {
		t.Errorf("final %q", res[0].Text)
	}
	wantJudge := []string{"Q?",
		pairwisePrompt("Q?", "A says", "B says"), pairwisePrompt("Q?", "A says", "C says"), pairwisePrompt("Q?", "B says", "C says")}
	if !reflect.DeepEqual(gens[0].log, wantJudge) {
		t.Errorf("judge asked %q", gens[0].log)
	}
	wantFuse := fusionPrompt("Q?", []string{"C", "B"}, []string{"C says", "B says"})
	if got := gens[1].log[len(gens[1].log)-1]; got != wantFuse {
		t.Errorf("fuser asked\n%s\nwant\n%s", got, wantFuse)
	}
	for _, tc := range []struct{ in, want string }{{"  b.", "B"}, {"Answer: A", "A"}, {"neither", ""}, {"xyz", ""}} {
		if got := parsePreference(tc.in); got != tc.want {
			// "Answer: A": the first A or B is the "A" of "Answer", as MoCo parses it.
			t.Errorf("parsePreference(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := New(context.Background(), "llm-blender", pool, Params{"ranker": "magic"}); err == nil || !strings.Contains(err.Error(), "ranker must be llm or trained") {
		t.Errorf("bad ranker: %v", err)
	}
}

func TestBlenderTrainedRanker(t *testing.T) {
	dev := writeDevSet(t)
	add, rev := &skillGen{name: "adder", skill: "add"}, &skillGen{name: "reverser", skill: "rev"}
	pool := []Member{{Name: "reverser", Gen: rev}, {Name: "adder", Gen: add}}
	m, err := New(context.Background(), "llm-blender", pool, Params{"dev": dev, "top_k": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"3+4", "rev xyz"} {
		res, err := m.Generate(context.Background(), []Request{{Prompt: p}})
		if err != nil || res[0].Text != "right" {
			t.Errorf("%q: %v %v", p, res, err)
		}
	}
}

// maxTokensLog answers like scripted and records each request's MaxTokens.
type maxTokensLog struct {
	scripted
	max []int
}

func (g *maxTokensLog) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	for _, r := range reqs {
		g.max = append(g.max, r.MaxTokens)
	}
	return g.scripted.Generate(ctx, reqs)
}

// MoCo's LLM ranker answers each pair in at most
// ranker_max_response_length (128) tokens; the answers and the fusion
// keep the request's length.
func TestBlenderJudgeVerdictLength(t *testing.T) {
	reply := func(name, p string) (string, error) { return "A", nil }
	judge := &maxTokensLog{scripted: scripted{name: "J", reply: reply}}
	pool := []Member{{Name: "J", Gen: judge}, {Name: "B", Gen: &scripted{name: "B", reply: reply}}}
	m, err := New(context.Background(), "llm-blender", pool, Params{"top_k": 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(context.Background(), []Request{{Prompt: "Q?", MaxTokens: 512}}); err != nil {
		t.Fatal(err)
	}
	// J answers, judges the one pair, then fuses.
	if want := []int{512, 128, 512}; !reflect.DeepEqual(judge.max, want) {
		t.Errorf("max tokens %v, want %v", judge.max, want)
	}
}
