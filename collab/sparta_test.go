package collab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/train"
)

func TestSpartaScore(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{`{"score": 7}`, 7, true},
		{` {"score": 10} `, 10, true},
		{`I think {"score": 11} ... "score": 4`, 4, true}, // 11 is out of range: next match
		{"Score: 3", 3, true},
		{"score = 6 overall", 6, true},
		{"maybe 8/10", 8, true},
		{`{"score": 0}`, 0, false},
		{"no idea", 0, false},
		{"", 0, false},
	} {
		got, ok := spartaScore(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %d %v, want %d %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestSpartaJudgePrompt compares with MoCo's f-string, transcribed.
func TestSpartaJudgePrompt(t *testing.T) {
	want := `
Please judge the following response based on the question and the response to be evaluated.
Question: Q: 1+1=
Response to be evaluated:  2

Operation: Output ONLY a JSON object with one score in this exact format. Score must be in the range of 1 to 10.
Your output should be like this:
{"score": score}
`
	if got := spartaJudgePrompt("Q: 1+1=", " 2"); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestSpartaMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	instr := make([]string, 10)
	for i := range instr {
		instr[i] = fmt.Sprint("q", i)
	}
	// No random matches, one nearest opponent: 0 and 1 (100, 100.5) are
	// each other's nearest, 2 (130) is nearest to 1, 3 (90) to 0.
	cs := spartaMatch(rng, 4, instr, []float64{100, 100.5, 130, 90}, 0, 1)
	if len(cs) != 10 {
		t.Fatalf("%d contests for 10 instructions", len(cs))
	}
	nearest := []int{1, 0, 1, 0}
	for i, c := range cs {
		if c.Instruction != instr[i] || c.Models[1] != nearest[c.Models[0]] {
			t.Errorf("contest %d: %+v", i, c)
		}
	}
	// Each full loop gives every model one instruction as first contestant.
	for l := range 2 {
		seen := map[int]bool{}
		for _, c := range cs[4*l : 4*l+4] {
			seen[c.Models[0]] = true
		}
		if len(seen) != 4 {
			t.Errorf("loop %d: first contestants %v", l, cs[4*l:4*l+4])
		}
	}
	// Random matches: never oneself.
	for _, c := range spartaMatch(rng, 3, instr, []float64{100, 100, 100}, 1, 3) {
		if c.Models[0] == c.Models[1] {
			t.Fatalf("self match %+v", c)
		}
	}
}

// TestSpartaRating checks one update against values worked out from MoCo's
// formula: judges 2 (rating 100, scores 9 and 2) and 3 (100, unparsable:
// 5 and 5) give weighted scores 7 and 3.5, difference 3.5; after one
// update K = 10·0.9^(1/10) = 9.895192582062144; equal ratings give
// |Φ_fwd − Φ_bwd| = 0, so ε = 0.01 counts; the delta is
// K·3.5·tanh(0.5)·0.01/20 = 0.00800229196649.
func TestSpartaRating(t *testing.T) {
	q := SpartaParams{}
	q.defaults()
	ratings := []spartaRating{{100, 0.5}, {100, 0.5}, {100, 0.5}, {100, 0.5}}
	sys := newSpartaSystem(q.Rating, ratings, make([][]float64, 4))
	c := spartaContest{Instruction: "q", Models: [2]int{0, 1}, Responses: [2]string{"good", "bad"},
		Judges: map[int][2]float64{2: {9, 2}, 3: {5, 5}}}
	sys.update(&c)
	if math.Abs(sys.k-9.895192582062144) > 1e-12 ||
		math.Abs(sys.ratings[0].Score-100.00800229196649) > 1e-12 || math.Abs(sys.ratings[1].Score-99.99199770803351) > 1e-12 {
		t.Fatalf("K %.15g, ratings %+v", sys.k, sys.ratings)
	}
	if sys.ratings[2] != ratings[2] || sys.ratings[0].Deviation != 0.5 {
		t.Errorf("judge's rating or a one-delta deviation changed: %+v", sys.ratings)
	}
	p, ok := sys.preference(&c)
	if !ok || p != (train.Pair{Prompt: "q", Chosen: "good", Rejected: "bad"}) {
		t.Errorf("preference %+v %v", p, ok)
	}
	// A second update: two deltas, deviation = their population std.
	sys.update(&c)
	d1, d2 := sys.history[0][0], sys.history[0][1]
	if want := math.Abs(d1-d2) / 2; math.Abs(sys.ratings[0].Deviation-max(want, 0.1)) > 1e-15 {
		t.Errorf("deviation %v, want max(std, 0.1) = %v", sys.ratings[0].Deviation, max(want, 0.1))
	}
	// A tie gives no pair.
	tie := spartaContest{Models: [2]int{0, 1}, Responses: [2]string{"x", "y"}, Judges: map[int][2]float64{2: {4, 4}}}
	if _, ok := sys.preference(&tie); ok {
		t.Error("a tie gave a pair")
	}
}

// TestSpartaProtocol runs two iterations over scripted models: model "ace"
// answers right, the others wrong; judges score right answers 9 and
// wrong ones 2, except "mute", whose judgements never parse (5 and 5).
// Trained models ("+t1") answer right but for the last item, mute's
// excepted; of the second iteration's, "cat+t1+t2" answers everything
// right. Every pair must prefer a right answer, contests between two
// wrong answers must give none, ace's reputation must rise, every model
// must be trained on the same pairs each iteration, and the trained model
// with the best dev accuracy, cat+t1+t2, must answer.
func TestSpartaProtocol(t *testing.T) {
	var items []DevItem
	for i := range 12 {
		items = append(items, DevItem{ID: fmt.Sprint(i), Prompt: fmt.Sprintf("Q: %d+1=\nA:", i), Ref: fmt.Sprint(i + 1), Task: extract.Task{Type: extract.ExactMatch}})
	}
	answer := func(prompt string) string {
		var a int
		fmt.Sscanf(prompt, "Q: %d+1=", &a)
		return fmt.Sprint(" ", a+1)
	}
	reply := func(name, prompt string) (string, error) {
		if strings.Contains(prompt, "Please judge") {
			if strings.HasPrefix(name, "mute") {
				return "hmm", nil
			}
			q := prompt[strings.Index(prompt, "Question: ")+len("Question: "):]
			resp := prompt[strings.Index(prompt, "evaluated: ")+len("evaluated: "):]
			resp = resp[:strings.Index(resp, "\n\nOperation")]
			if resp == answer(q) {
				return `{"score": 9}`, nil
			}
			return `{"score": 2}`, nil
		}
		var item int
		fmt.Sscanf(prompt, "Q: %d+1=", &item)
		switch {
		case strings.HasPrefix(name, "mute"):
		case name == "ace", name == "cat+t1+t2":
			return answer(prompt), nil
		case strings.Contains(name, "+t1") && item != 11:
			return answer(prompt), nil
		}
		return " wrong-" + name, nil
	}
	pool, _ := scriptedPool(reply, "ace", "bob", "cat", "mute")
	q := SpartaParams{Iterations: 2}
	q.defaults()
	var trained [][]train.Pair
	trainer := func(ctx context.Context, m int, mb Member, pairs []train.Pair) (Member, error) {
		for _, p := range pairs {
			if p.Chosen != answer(p.Prompt) || p.Rejected == p.Chosen || !strings.HasPrefix(p.Rejected, " wrong-") {
				t.Errorf("pair %+v", p)
			}
		}
		trained = append(trained, pairs)
		g := &scripted{name: fmt.Sprintf("%s+t%d", mb.Name, 1+(len(trained)-1)/4), reply: reply}
		return Member{Name: g.name, Gen: g}, nil
	}
	// One iteration directly: ace's contests, and only those, give pairs.
	rng := rand.New(rand.NewPCG(7, 7))
	ratings := []spartaRating{{100, 0.5}, {100, 0.5}, {100, 0.5}, {100, 0.5}}
	instr := make([]string, len(items))
	for i, it := range items {
		instr[i] = it.Prompt
	}
	pairs, r, _, err := spartaIteration(context.Background(), rng, pool, instr, q, ratings, make([][]float64, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) == 0 || len(pairs) == len(instr) {
		t.Fatalf("%d pairs from %d contests: want ace's contests only", len(pairs), len(instr))
	}
	for m := 1; m < 4; m++ {
		if r[0].Score <= r[m].Score {
			t.Errorf("ace's rating %v not above %s's %v", r[0].Score, pool[m].Name, r[m].Score)
		}
	}

	best, note, err := runSparta(context.Background(), pool, items, q, trainer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "iteration 2: ") || !strings.HasSuffix(note, "best on dev: cat+t1+t2 (1.000)") {
		t.Errorf("summary %q", note)
	}
	if len(trained) != 8 {
		t.Fatalf("%d trainings, want 4 models × 2 iterations", len(trained))
	}
	for i := range trained {
		if fmt.Sprint(trained[i]) != fmt.Sprint(trained[i/4*4]) {
			t.Errorf("training %d got other pairs than its iteration's first", i)
		}
	}
	if best.Name != "cat+t1+t2" {
		t.Errorf("best %q, want cat+t1+t2", best.Name)
	}
}

func TestSpartaRegistered(t *testing.T) {
	s, ok := Lookup("sparta")
	if !ok || s.Level != LevelTraining || s.MinModels != 3 {
		t.Fatalf("spec %+v %v", s, ok)
	}
	pool, _ := scriptedPool(func(string, string) (string, error) { return "", nil }, "a", "b", "c")
	if _, err := New(context.Background(), "sparta", pool, Params{"dev": "x.json"}); err == nil || !strings.Contains(err.Error(), "not a local model folder") {
		t.Errorf("remote pool: %v", err)
	}
	for _, p := range []Params{{"score_type": "dynamic"}, {"initial_k": "x"}, {"num_iterations": -1}, {"nonsense": 1}} {
		if _, err := New(context.Background(), "sparta", pool, p); err == nil || strings.Contains(err.Error(), "local model folder") {
			t.Errorf("%v: %v, want a parameter error", p, err)
		}
	}
}

// TestSpartaLoRATrainer runs the real DPO step on skills-base for one
// step and checks the trained member answers from memory with no folder.
func TestSpartaLoRATrainer(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	q := SpartaParams{LR: 1e-2, LoRAR: 2, BatchSize: 2}
	q.defaults()
	lt := &loraTrainer{q: q}
	pairs := []train.Pair{{Prompt: "Q: 101+202=\nA:", Chosen: " 303", Rejected: " 313"}, {Prompt: "Q: 5+5=\nA:", Chosen: " 10", Rejected: " 11"}}
	mb, err := lt.train(context.Background(), 0, Member{Name: "skills-base", Dir: dir}, pairs)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Dir != "" || mb.Name != "skills-base+sparta" || lt.models[0].LoRA != nil {
		t.Fatalf("member %+v, adapters left: %v", mb, lt.models[0].LoRA != nil)
	}
	out, err := mb.Gen.Generate(context.Background(), []Request{{Prompt: "Q: 101+202=\nA:", MaxTokens: 6}})
	if err != nil || len(out) != 1 || out[0].Text == "" {
		t.Fatalf("%v %v", out, err)
	}
	mb.Local.(*Local).Close()
}
