package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestAggregatorPrompt(t *testing.T) {
	got := AggregatorPrompt("", "", "Q: 1+1=", []string{" 2", " 3\n"})
	want := "Here is a problem:\n### Problem begin\nQ: 1+1=\n### Problem end\nand here are attempts at solving it:\n" +
		"### Solution 0 begin\n 2### Solution 0 end\n\n### Solution 1 begin\n 3\n### Solution 1 end\n\n" +
		"Any number of these attempts, from none to all, may be right or complete. Review them, take them as a starting point, " +
		"fix their errors, fill in what they leave out and combine their good ideas, and write one final solution to the problem " +
		"that is complete and correct. Give the final answer in the same format as the attempts.\n"
	if got != want {
		t.Errorf("default prompt:\n%q\nwant\n%q", got, want)
	}
	if got := AggregatorPrompt("{solutions}{problem}", "A{i}:{solution}\n", "Q: 1+1=\nA:", []string{" 2", " 3"}); got != "A0: 2\nA1: 3\nQ: 1+1=\nA:" {
		t.Errorf("compact prompt %q", got)
	}
	if got := AggregatorPrompt("{solutions}{problem}", "{problem}{solution}\n", "Q: 1+1=\nA:", []string{" 2", " 3"}); got != "Q: 1+1=\nA: 2\nQ: 1+1=\nA: 3\nQ: 1+1=\nA:" {
		t.Errorf("few-shot prompt %q", got)
	}
}

func TestMajorityFails(t *testing.T) {
	for _, c := range []struct {
		keys    []string
		correct []bool
		hard    bool
	}{
		{[]string{"3", "4", "4"}, []bool{true, false, false}, true},  // majority 4 is wrong
		{[]string{"4", "3", "3"}, []bool{false, true, true}, false},  // majority 3 is right
		{[]string{"3", "4"}, []bool{true, false}, false},             // tie: the first seen, 3
		{[]string{"4", "3"}, []bool{false, true}, true},              // tie: the first seen, 4
		{[]string{"", "", "5"}, []bool{false, false, true}, true},    // empty answers vote (Counter)
		{[]string{"7", "", "7"}, []bool{true, false, true}, false},   // a plain majority
		{[]string{"1", "2", "3"}, []bool{false, false, true}, true},  // all distinct: the first
		{[]string{"9", "9", "9"}, []bool{false, false, false}, true}, // unanimous and wrong
	} {
		if got := MajorityFails(c.keys, c.correct); got != c.hard {
			t.Errorf("%q %v: hard %v, want %v", c.keys, c.correct, got, c.hard)
		}
	}
}

func TestBalanceAggLM(t *testing.T) {
	var items []AggLMItem
	for i := range 8 {
		items = append(items, AggLMItem{Dev: i, Hard: i == 1 || i == 4 || i == 6})
	}
	got := BalanceAggLM(items, 42)
	if len(got) != 6 {
		t.Fatalf("%d items, want 3 hard + 3 easy", len(got))
	}
	seen := map[int]bool{}
	for i, it := range got {
		if it.Hard != (i < 3) || seen[it.Dev] {
			t.Fatalf("items %+v: want the 3 hard first, then 3 distinct easy ones", got)
		}
		seen[it.Dev] = true
	}
	if fewer := BalanceAggLM(items[:3], 1); len(fewer) != 2 { // 1 hard, 2 easy
		t.Errorf("%+v: want 1 hard + 1 easy", fewer)
	}
}

// sampler is a scripted pool model that records each request's sampling
// settings and answers from (name, prompt, seed).
type sampler struct {
	name  string
	reply func(name, prompt string, seed uint64) string
	mu    sync.Mutex
	reqs  []Request
}

func (s *sampler) Name() string { return s.name }
func (s *sampler) Generate(_ context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		out[i] = Response{Text: s.reply(s.name, r.Prompt, r.Seed), PromptTokens: 1, CompletionTokens: 2, ForwardTokens: 3, FLOPs: 10}
	}
	return out, nil
}

// TestAggLMProtocol runs AggLM with scripted pool models and skills-small
// as the aggregator: dev answers sampled twice per model, items split by
// whether majority vote fails and balanced, one GRPO epoch, the adapter
// saved and reloaded, and at test time the aggregator reading the pool's
// answers in model order.
func TestAggLMProtocol(t *testing.T) {
	agg := testutil.Shared(t, "models/skills-small")
	var dev []map[string]string
	sums := []int{303, 579, 912, 489, 1205, 946}
	for i, s := range sums {
		dev = append(dev, map[string]string{"id": fmt.Sprint(i), "input": fmt.Sprintf("Q: %d+%d=\nA:", s-100, 100), "output": fmt.Sprint(s)})
	}
	b, _ := json.Marshal(map[string]any{"dataset": "toy", "task_type": "exact_match", "dev": dev, "test": dev[:1]})
	devPath := filepath.Join(t.TempDir(), "toy.json")
	if err := os.WriteFile(devPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Items 0 and 1: two of three models wrong in round 1 (seed 1), so
	// majority vote fails there; everything else has a right majority.
	reply := func(name, prompt string, seed uint64) string {
		for i, s := range sums {
			if strings.HasPrefix(prompt, fmt.Sprintf("Q: %d+", s-100)) {
				if i < 2 && seed == 1 && name != "m0" {
					return fmt.Sprintf(" %d", s+1)
				}
				return fmt.Sprintf(" %d", s)
			}
		}
		return " 0"
	}
	gens := []*sampler{{name: "m0", reply: reply}, {name: "m1", reply: reply}, {name: "m2", reply: reply}}
	pool := make([]Member, len(gens))
	for i, g := range gens {
		pool[i] = Member{Name: g.name, Gen: g}
	}
	out := filepath.Join(t.TempDir(), "agg")
	params := Params{"aggregator": agg, "dev": devPath, "dev_max_tokens": 8, "template": "{solutions}{problem}",
		"solution_format": "A:{solution}\n", "max_completion_length": 6, "out": out, "lora_r": 4}
	m, err := New(context.Background(), "agglm", pool, params)
	if err != nil {
		t.Fatal(err)
	}
	a := m.(*AggLM)
	defer a.Close()
	for _, g := range gens {
		if len(g.reqs) != 12 {
			t.Fatalf("%s: %d dev requests, want 2 rounds x 6 items", g.name, len(g.reqs))
		}
		for i, r := range g.reqs {
			if r.Temperature != 0.7 || r.TopP != 0.9 || r.Seed != uint64(i/6+1) || r.MaxTokens != 8 {
				t.Fatalf("%s request %d: temperature %g top-p %g seed %d max %d; want MoCo's 0.7, 0.9, the round's seed, 8", g.name, i, r.Temperature, r.TopP, r.Seed, r.MaxTokens)
			}
		}
	}
	if len(a.Items) != 4 || !a.Items[0].Hard || !a.Items[1].Hard || a.Items[2].Hard || a.Items[3].Hard {
		t.Fatalf("training items %+v: want the 2 hard ones, then 2 easy", a.Items)
	}
	if a.Items[0].Solutions[1] != " 304" || a.Items[0].Round != 0 {
		t.Fatalf("first hard item %+v", a.Items[0])
	}
	if len(a.Steps) != 4 { // one epoch, one prompt (4 completions) per step
		t.Fatalf("%d GRPO steps, want 4", len(a.Steps))
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	req := Request{Prompt: "Q: 812+100=\nA:", MaxTokens: 6}
	res, err := a.Generate(context.Background(), []Request{req})
	if err != nil {
		t.Fatal(err)
	}
	tr := res[0].Trace
	if len(tr) != 4 || tr[3].Step != "aggregate" || tr[3].From != "agglm-aggregator" {
		t.Fatalf("trace %+v: want three answers then the aggregation", tr)
	}
	if want := "A: 912\nA: 912\nA: 912\nQ: 812+100=\nA:"; tr[3].Input != want {
		t.Fatalf("aggregator prompt %q, want %q", tr[3].Input, want)
	}
	if res[0].Text != tr[3].Text || res[0].PromptTokens < 3 {
		t.Fatalf("response %+v", res[0])
	}
	// Reloading the saved adapter skips training and answers alike.
	for _, g := range gens {
		g.reqs = nil
	}
	params2 := Params{"aggregator": agg, "adapter": out, "template": "{solutions}{problem}", "solution_format": "A:{solution}\n"}
	m2, err := New(context.Background(), "agglm", pool, params2)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.(*AggLM).Close()
	res2, err := m2.Generate(context.Background(), []Request{req})
	if err != nil {
		t.Fatal(err)
	}
	if len(gens[0].reqs) != 1 || res2[0].Text != res[0].Text {
		t.Fatalf("reloaded: %d pool requests (want the test one only), answer %q vs %q", len(gens[0].reqs), res2[0].Text, res[0].Text)
	}
}

func TestAggLMParams(t *testing.T) {
	pool := []Member{{Name: "a", Gen: &sampler{name: "a"}}}
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{"sample_size": 0}, "sample_size"},
		{Params{"template": "{problem} only"}, "{solutions}"},
		{Params{"solution_format": "x"}, "{solution}"},
		{Params{"lora_dropout": 1}, "lora_dropout"},
		{Params{"bogus": 1}, "bogus"},
		{Params{}, "aggregator"},
	} {
		if _, err := New(context.Background(), "agglm", pool, c.p); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInput) {
			t.Errorf("%v: error %v, want %q marked as an input error", c.p, err, c.want)
		}
	}
}
