package collab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// batchSampler is a fake model whose i-th request of a batch gets texts[i]
// (SLM-MUX sends one model's samples as one batch, in sample order); it
// records the requests it was sent.
type batchSampler struct {
	name  string
	texts []string
	mu    sync.Mutex
	reqs  []Request
}

func (s *batchSampler) Name() string { return s.name }
func (s *batchSampler) Generate(_ context.Context, reqs []Request) ([]Response, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, reqs...)
	s.mu.Unlock()
	out := make([]Response, len(reqs))
	for i := range reqs {
		out[i] = Response{Text: s.texts[i%len(s.texts)], CompletionTokens: 1, FLOPs: 1, Finish: fmt.Sprint("stop", i)}
	}
	return out, nil
}

func samplerPool(samples map[string][]string, names ...string) ([]Member, []*batchSampler) {
	var pool []Member
	var gens []*batchSampler
	for _, n := range names {
		g := &batchSampler{name: n, texts: samples[n]}
		gens = append(gens, g)
		pool = append(pool, Member{Name: n, Gen: g})
	}
	return pool, gens
}

// slmRun builds slm-mux over pool and answers one request.
func slmRun(t *testing.T, pool []Member, p Params, req Request) Response {
	t.Helper()
	m, err := New(context.Background(), "slm-mux", pool, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{req})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// selectNote is the note of the trace's final "select" event.
func selectNote(t *testing.T, r Response) string {
	t.Helper()
	last := r.Trace[len(r.Trace)-1]
	if last.Step != "select" || last.From != "slm-mux" || last.Text != r.Text {
		t.Fatalf("last event %+v is not the selection of %q", last, r.Text)
	}
	return last.Note
}

func TestSLMMuxConsistency(t *testing.T) {
	for _, tc := range []struct {
		keys   []string
		answer string
		sample int
		votes  int
		of     int
		conf   float64
	}{
		{[]string{"12", "12", "7", "12", ""}, "12", 0, 3, 4, 0.75},
		{[]string{"8", "7", "7", "7", "7"}, "7", 1, 4, 5, 0.8},
		{[]string{"", "", ""}, "", 0, 0, 0, 0},
		{[]string{"", "", "9", "", ""}, "9", 2, 1, 1, 1},      // MoCo's rule: empties do not count
		{[]string{"a", "b", "b", "a"}, "a", 0, 2, 4, 0.5},     // equal top counts: the answer given first
		{[]string{"", "x", "y", "y", "x"}, "x", 1, 2, 4, 0.5}, // also when the first is not sample 0
		{[]string{"5"}, "5", 0, 1, 1, 1},
	} {
		c := slmConsistency(tc.keys)
		if c.Answer != tc.answer || c.Sample != tc.sample || c.Votes != tc.votes || c.Answered != tc.of || c.Confidence() != tc.conf {
			t.Errorf("%q: got %+v (confidence %v), want %q at sample %d, %d of %d, %v", tc.keys, c, c.Confidence(), tc.answer, tc.sample, tc.votes, tc.of, tc.conf)
		}
	}
	// Equal fractions with different denominators are equal, and the
	// order is exact.
	half, twoQuarters, third := slmConfidence{Votes: 1, Answered: 2}, slmConfidence{Votes: 2, Answered: 4}, slmConfidence{Votes: 1, Answered: 3}
	none := slmConfidence{}
	if half.less(twoQuarters) || twoQuarters.less(half) || !third.less(half) || half.less(third) || !none.less(third) || third.less(none) || none.less(none) {
		t.Error("confidence order is wrong")
	}
}

// TestSLMMux: hand-computed confidences decide the winner, and its
// earliest sample with its majority answer is the text.
func TestSLMMux(t *testing.T) {
	samples := map[string][]string{
		// 12, 12, 7, 12, none: 3 of 4 answers, 0.75
		"a": {"The answer is 12.", "\\boxed{12}", "7", "12", ""},
		// 8, 7, 7, 7, 7: 4 of 5, 0.8; its first 7 is sample 2
		"b": {"8", "so the answer is 7", "7.", "\\boxed{7}", "7"},
		// nothing: 0
		"c": {"", " ", "...", "", ""},
	}
	pool, gens := samplerPool(samples, "a", "b", "c")
	r := slmRun(t, pool, nil, Request{Prompt: "Q?", MaxTokens: 9, Stop: []string{"\n"}, Seed: 100})
	if r.Text != "so the answer is 7" {
		t.Errorf("text %q, want b's second sample", r.Text)
	}
	if r.Finish != "stop1" {
		t.Errorf("finish %q, want the chosen sample's", r.Finish)
	}
	note := selectNote(t, r)
	if want := `confidences a 0.750, b 0.800, c 0.000; b wins with "7"`; note != want {
		t.Errorf("select note %q, want %q", note, want)
	}
	var conf []string
	samplesSeen := 0
	for _, e := range r.Trace {
		switch e.Step {
		case "confidence":
			conf = append(conf, e.Note)
		case "sample":
			samplesSeen++
		}
	}
	want := []string{
		`a: "12" in 3 of 4 answers (5 samples), confidence 0.750`,
		`b: "7" in 4 of 5 answers (5 samples), confidence 0.800`,
		`c: no answer in 5 samples, confidence 0`,
	}
	if !slices.Equal(conf, want) || samplesSeen != 15 {
		t.Errorf("trace: %d samples, confidences %q, want 15 and %q", samplesSeen, conf, want)
	}
	if r.FLOPs != 15 || r.CompletionTokens != 15 {
		t.Errorf("cost: %v FLOPs, %d tokens, want every sample's", r.FLOPs, r.CompletionTokens)
	}
	// Each model got its 5 samples as the request, with distinct seeds (the
	// first the request's own); the greedy request sampled at MoCo's 0.7
	// and top-p 0.9.
	for _, g := range gens {
		seeds := map[uint64]bool{}
		for _, q := range g.reqs {
			seeds[q.Seed] = true
			if q.Prompt != "Q?" || q.MaxTokens != 9 || !slices.Equal(q.Stop, []string{"\n"}) || q.Temperature != 0.7 || q.TopP != 0.9 {
				t.Errorf("%s was sent %+v", g.name, q)
			}
		}
		if len(g.reqs) != 5 || len(seeds) != 5 || g.reqs[0].Seed != 100 {
			t.Errorf("%s: %d requests, %d seeds, first seed %d", g.name, len(g.reqs), len(seeds), g.reqs[0].Seed)
		}
	}
	// A sampling request keeps its settings; samples_per_model sets k.
	pool, gens = samplerPool(samples, "a", "b", "c")
	r = slmRun(t, pool, Params{"samples_per_model": 3}, Request{Prompt: "Q?", Temperature: 1.2, TopP: 0.5})
	for _, g := range gens {
		if len(g.reqs) != 3 || g.reqs[2].Temperature != 1.2 || g.reqs[2].TopP != 0.5 {
			t.Errorf("k=3: %s was sent %+v", g.name, g.reqs)
		}
	}
	// First 3 samples: a 12, 12, 7 (2/3); b 8, 7, 7 (2/3); a tie, which
	// the default dev-based rule without dev scores gives to a.
	if note := selectNote(t, r); r.Text != "The answer is 12." || !strings.Contains(note, "a wins (tie between a, b, no dev scores: the earliest in the pool)") {
		t.Errorf("k=3: %q, %q", r.Text, note)
	}
}

// TestSLMMuxTies: a and b tie at 0.5 (2 of 4 and 1 of 2), c trails at 0.4.
func TestSLMMuxTies(t *testing.T) {
	samples := map[string][]string{
		"a": {"1", "1", "2", "3", ""},  // 2/4
		"b": {"", "4", "", "5", ""},    // 1/2, its answers tied: 4 came first
		"c": {"6", "6", "7", "8", "9"}, // 2/5
	}
	pool, _ := samplerPool(samples, "a", "b", "c")
	for _, tc := range []struct {
		params Params
		want   string
		why    string
	}{
		{Params{"tie": "model-order"}, "1", "a wins (tie between a, b, the earliest in the pool)"},
		{Params{"dev_scores": []float64{0.1, 0.9, 0.95}}, "4", "b wins (tie between a, b, best on dev at 0.900)"},
		{Params{"tie": "dev-based", "dev_scores": []float64{0.5, 0.5, 0.9}}, "1", "a wins (tie between a, b, best on dev at 0.500)"},
		{Params{"tie": "model-order", "dev_scores": []float64{0.1, 0.9, 0.95}}, "1", "a wins (tie between a, b, the earliest"},
		{nil, "1", "a wins (tie between a, b, no dev scores"},
	} {
		r := slmRun(t, pool, tc.params, Request{Prompt: "Q?"})
		if note := selectNote(t, r); r.Text != tc.want || !strings.Contains(note, "confidences a 0.500, b 0.500, c 0.400; "+tc.why) {
			t.Errorf("%v: %q, note %q, want %q and %q", tc.params, r.Text, note, tc.want, tc.why)
		}
	}
	// Random: reproducible for a seed and request seed, drawn among the
	// tied only, and both tied models come up over seeds.
	got := map[string]int{}
	for seed := range 40 {
		p := Params{"tie": "random", "seed": seed}
		r := slmRun(t, pool, p, Request{Prompt: "Q?", Seed: 7})
		if again := slmRun(t, pool, p, Request{Prompt: "Q?", Seed: 7}); again.Text != r.Text {
			t.Fatalf("seed %d: %q then %q", seed, r.Text, again.Text)
		}
		if !strings.Contains(selectNote(t, r), "drawn at random") {
			t.Errorf("seed %d: note %q", seed, selectNote(t, r))
		}
		got[r.Text]++
	}
	if len(got) != 2 || got["1"] == 0 || got["4"] == 0 {
		t.Errorf("random ties over 40 seeds chose %v, want both a (1) and b (4) and nothing else", got)
	}
	// One seed and request seed still draw differently across questions.
	byQuestion := map[string]int{}
	for i := range 20 {
		byQuestion[slmRun(t, pool, Params{"tie": "random"}, Request{Prompt: fmt.Sprintf("Q%d?", i)}).Text]++
	}
	if len(byQuestion) != 2 {
		t.Errorf("random ties over 20 questions with one seed chose %v, want both a and b", byQuestion)
	}
	// The default seed is MoCo's 42: the same draws, over request seeds.
	var def, s42 []string
	for seed := range uint64(12) {
		def = append(def, slmRun(t, pool, Params{"tie": "random"}, Request{Prompt: "Q?", Seed: seed}).Text)
		s42 = append(s42, slmRun(t, pool, Params{"tie": "random", "seed": 42}, Request{Prompt: "Q?", Seed: seed}).Text)
	}
	if !slices.Equal(def, s42) {
		t.Errorf("default seed drew %q, seed 42 %q", def, s42)
	}
}

// TestSLMMuxEdges: no model answers; one model; a model answering once.
func TestSLMMuxEdges(t *testing.T) {
	// Nobody answers: all tie at 0, the tie rule picks, its first sample
	// is the text.
	pool, _ := samplerPool(map[string][]string{"a": {"", "?"}, "b": {"  ", ""}}, "a", "b")
	r := slmRun(t, pool, Params{"tie": "dev-based", "dev_scores": []float64{0.2, 0.3}, "samples_per_model": 2}, Request{Prompt: "Q?"})
	if note := selectNote(t, r); r.Text != "  " || note != "confidences a 0.000, b 0.000; b wins (tie between a, b, best on dev at 0.300)" {
		t.Errorf("no answers: %q, %q", r.Text, note)
	}
	// One model: self-consistency.
	pool, gens := samplerPool(map[string][]string{"solo": {"3", "4", "4"}}, "solo")
	r = slmRun(t, pool, Params{"samples_per_model": 3}, Request{Prompt: "Q?"})
	if note := selectNote(t, r); r.Text != "4" || note != `confidences solo 0.667; solo wins with "4"` || len(gens[0].reqs) != 3 || len(r.Trace) != 5 {
		t.Errorf("one model: %q, %q, %d requests, %d events", r.Text, note, len(gens[0].reqs), len(r.Trace))
	}
	// MoCo's rule: one answer in five samples is confidence 1, above 4 of 5.
	pool, _ = samplerPool(map[string][]string{"a": {"7", "7", "7", "7", "2"}, "b": {"", "", "9", "", ""}}, "a", "b")
	if r = slmRun(t, pool, nil, Request{Prompt: "Q?"}); r.Text != "9" {
		t.Errorf("a lone answer: %q, want b's 9 (confidence 1 > 0.8)", r.Text)
	}
}

func TestSLMMuxParams(t *testing.T) {
	pool, _ := samplerPool(map[string][]string{"a": {"1"}, "b": {"2"}}, "a", "b")
	for _, tc := range []struct {
		params Params
		err    string
	}{
		{Params{"samples_per_model": 0}, "samples_per_model must be at least 1"},
		{Params{"tie": "first"}, "tie must be dev-based, model-order or random"},
		{Params{"tie": "dev"}, "tie must be"},
		{Params{"dev_scores": []float64{1}}, "1 dev scores for 2 models"},
		{Params{"samples": 3}, `unknown field "samples"`},
		{Params{"samples_per_model": 2, "tie": "random", "seed": 0, "task_type": "multiple_choice", "dev_scores": []float64{1, 2}}, ""},
	} {
		_, err := New(context.Background(), "slm-mux", pool, tc.params)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.params, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInput) {
			t.Errorf("%v: error %v, want an input error with %q", tc.params, err, tc.err)
		}
	}
	// A failing model fails the request with its name.
	pool, _ = scriptedPool(func(name, p string) (string, error) {
		if name == "B" {
			return "", errors.New("out of memory")
		}
		return "1", nil
	}, "A", "B")
	m, _ := New(context.Background(), "slm-mux", pool, nil)
	if _, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}}); err == nil || !strings.Contains(err.Error(), "model B failed: out of memory") {
		t.Errorf("failing model: %v", err)
	}
}

// TestSLMMuxSkills runs SLM-MUX on the skills pool with an addition
// question: skills-add, trained on addition, agrees with itself across its
// samples where the reversal expert and the generalist scatter, so it must
// win although it is last in the pool and ties would go to model order.
// The winner is checked against confidences recomputed here from the
// sampled texts, for a few request seeds and a greedy request (which
// SLM-MUX samples at MoCo's settings: were its samples identical, every
// model would tie at 1 and skills-rev would win on order).
func TestSLMMuxSkills(t *testing.T) {
	var dirs []string
	for _, n := range []string{"skills-rev", "skills-base", "skills-add"} {
		dirs = append(dirs, testutil.Shared(t, "models/"+n))
	}
	pool, closeAll, err := LoadPool(dirs, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	for _, temp := range []float64{0.7, 0} {
		for seed := range uint64(3) {
			req := Request{Prompt: "Q: 289+623=\nA:", MaxTokens: 8, Stop: []string{"\n"}, Temperature: temp, TopP: 0.9, Seed: seed}
			r := slmRun(t, pool, Params{"tie": "model-order"}, req)
			answers := map[string][]string{}
			for _, e := range r.Trace {
				if e.Step == "sample" {
					answers[e.From] = append(answers[e.From], strings.TrimSpace(e.Text))
				}
			}
			conf := map[string]float64{}
			for name, as := range answers {
				n, answered := map[string]int{}, 0
				for _, a := range as {
					if a != "" {
						n[a]++
						answered++
					}
				}
				for _, c := range n {
					conf[name] = max(conf[name], float64(c)/float64(answered))
				}
			}
			add, rev, base := conf[pool[2].Name], conf[pool[0].Name], conf[pool[1].Name]
			note := selectNote(t, r)
			if len(answers) != 3 || len(answers[pool[2].Name]) != 5 || add <= rev || add <= base ||
				strings.TrimSpace(r.Text) != "912" || !strings.Contains(note, "skills-add wins") {
				t.Errorf("temperature %v, seed %d: %q; samples %q; confidences add %v, rev %v, base %v; note %q",
					temp, seed, r.Text, answers, add, rev, base, note)
			}
			if rev == 1 {
				t.Errorf("temperature %v, seed %d: skills-rev's samples all agree (%q): are they sampled with distinct seeds?", temp, seed, answers[pool[0].Name])
			}
		}
	}
}
