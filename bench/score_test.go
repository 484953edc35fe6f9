package bench

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestExtractAnswer(t *testing.T) {
	cases := []struct{ in, want string }{
		{`so \boxed{\frac{1}{2}} is it`, `\frac{1}{2}`},
		{`first \boxed{3} then \boxed{4}`, `4`},
		{`bad \boxed{5} and \boxed{6`, `5`},
		{"Thus the answer is 42.\n", "42"},
		{"The Answer is: $1,000", "$1,000"},
		{"The answer is -5.", "-5"}, // a minus sign is part of the answer
		{"Answer: -0.25", "-0.25"},
		{"the answer - 12", "12"}, // a dash between is a separator
		{"The answer -5", "-5"},   // the phrase's own dash is a minus sign here
		{"Final answer: = 7", "7"},
		{"step one\nstep two\n  17  \n\n", "17"},
		{" 1081", "1081"},
		{"so \\box Paris\n", "Paris"}, // MoCo's prompt asks for \box
		{"\\boxed 42", "42"},
		{"Solution: Jiggle Jiggle\nThanks", "Jiggle Jiggle"}, // wikidyk 2056
		{"The solution is: 7\nso", "7"},
		{"So the answer - Paris\nok", "Paris"},
		{"Answer: 3\nSolution: 4", "3"}, // MoCo prefers "Answer:"
		{"Solution: 6\nthe answer is clear", "6"},
		{"Final answer is 5\nAnswer: 6", "6"}, // colon forms first, as MoCo
		{"", ""},
	}
	for _, c := range cases {
		if got := ExtractAnswer(c.in); got != c.want {
			t.Errorf("ExtractAnswer(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExactMatch(t *testing.T) {
	cases := []struct {
		pred, ref string
		want      bool
	}{
		{"1,081", "1081", true},
		{"1081.0", "1081", true},
		{"$12", "12", true},
		{"50%", "50", true},
		{"1/2", "0.5", true},
		{"1081", "1082", false},
		{"OOXHLR", "ooxhlr", true},
		{"ooxhlr.", "ooxhlr", true},
		{"oox hlr", "ooxhlr", false},
		{`\text{Paris}`, "paris", true},
		{"", "0", false},
	}
	for _, c := range cases {
		if got := ExactMatch(c.pred, c.ref); got != c.want {
			t.Errorf("ExactMatch(%q, %q) = %v", c.pred, c.ref, got)
		}
	}
}

func TestExtractChoice(t *testing.T) {
	ch := []Choice{{"A", "the floor"}, {"B", "the pull of gravity"}, {"C", "air friction"}, {"D", "the person"}}
	cases := []struct{ in, want string }{
		{"B", "B"},
		{" (C) because", "C"},
		{"D. the person", "D"},
		{"The answer is (B).", "B"},
		{"Answer: d", "D"},
		{`\boxed{C}`, "C"},
		{"I think it is the pull of gravity", "B"},
		{"A dog would say nothing useful", ""}, // no bias toward A
		{"C is correct.", "C"},                 // only A and I are words
		{"i think so", ""},
		{"no idea", ""},
		{"E", ""},
		{"It is the floor or the person", ""},
	}
	for _, c := range cases {
		if got := ExtractChoice(c.in, ch); got != c.want {
			t.Errorf("ExtractChoice(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Options labelled by digits, as in some ARC items.
	digits := []Choice{{"1", "heat"}, {"2", "light"}, {"3", "sound"}}
	for in, want := range map[string]string{"2": "2", "The answer is 3.": "3", "(1)": "1", "4": ""} {
		if got := ExtractChoice(in, digits); got != want {
			t.Errorf("ExtractChoice(%q) over digit labels = %q, want %q", in, got, want)
		}
	}
	if got := ExtractChoice("The answer is 3.", ch); got != "" {
		t.Errorf("a digit picked %q among letter labels", got)
	}
}

func TestEvaluate(t *testing.T) {
	ds, err := ParseDataset([]byte(`{"dataset": "toy", "task_type": "exact_match",
		"dev": [], "test": [{"id": 1, "input": "Q: 1+1=\nA:", "output": "2"}, {"id": "b", "input": "Q: 2+2=\nA:", "output": "4"}, {"id": "c", "input": "x", "output": "y"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{"Q: 1+1=\nA:": " 2\nQ: 5+5=\nA: 10", "Q: 2+2=\nA:": " 5"}
	r, err := EvaluateWith(ds, "test", Options{N: 2, First: true, Stop: []string{"\n"}}, func(p string) (string, error) { return answers[p], nil })
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 2 || r.Correct != 1 || r.Accuracy != 0.5 || r.Items[0].ID != "1" || r.Items[0].Pred != "2" {
		t.Fatalf("%+v", r)
	}
	if _, err := Evaluate(ds, "train", 0, nil); err == nil {
		t.Error("bad split: no error")
	}
	mc, err := ParseDataset([]byte(`{"name": "mc", "task_type": "multiple_choice", "dev": [{"id": 3, "question": "Q?", "choices": {"B": "yes", "A": "no"}, "answer": "B"}], "test": []}`))
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	r, err = Evaluate(mc, "dev", 0, func(p string) (string, error) { seen = p; return " B", nil })
	if err != nil || r.Correct != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	if seen != "Q?\nA. no\nB. yes\nAnswer:" {
		t.Errorf("prompt %q", seen)
	}
}

func TestSharedDatasets(t *testing.T) {
	dir := testutil.Shared(t, "datasets")
	for _, name := range []string{"skills_add", "skills_mix", "mmlu_redux", "gsm8k", "truthfulqa"} {
		ds, err := LoadDataset(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Test) == 0 || ds.Name == "" {
			t.Errorf("%s: %d test items, name %q", name, len(ds.Test), ds.Name)
		}
		it := ds.Test[0]
		if ds.TaskType == MultipleChoiceTask && (len(it.Choices) < 2 || it.Answer == "") {
			t.Errorf("%s: item %+v", name, it)
		}
		if ds.TaskType == ExactMatchTask && (it.Input == "" || it.Output == "") {
			t.Errorf("%s: item %+v", name, it)
		}
		if strings.HasPrefix(name, "skills") && !strings.HasSuffix(it.Input, "A:") {
			t.Errorf("%s: input %q", name, it.Input)
		}
	}
}

func TestFitPrompt(t *testing.T) {
	cases := []struct {
		ids       []int
		room, bos int
		want      []int
	}{
		{[]int{9, 1, 2}, 5, 9, []int{9, 1, 2}},
		{[]int{9, 1, 2, 3, 4}, 3, 9, []int{9, 3, 4}},
		{[]int{1, 2, 3, 4}, 2, -1, []int{3, 4}},
		{[]int{1, 2, 3}, 1, -1, nil},
	}
	for _, c := range cases {
		got := fitPrompt(c.ids, c.room, c.bos)
		if len(got) != len(c.want) {
			t.Errorf("fitPrompt(%v, %d) = %v, want %v", c.ids, c.room, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("fitPrompt(%v, %d) = %v, want %v", c.ids, c.room, got, c.want)
			}
		}
	}
}
