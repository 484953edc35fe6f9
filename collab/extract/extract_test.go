package extract

import "testing"

// The expected values are what MoCo's Python functions return for these
// inputs (worked by hand from eval.py).
func TestAnswerText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`so \boxed{12} and then \boxed{ 42 }`, "42"},
		{"\\boxed 7 apples\nmore", "7 apples"},
		{"Final Answer: 1081\nbye", "1081"},
		{"Reasoning...\nThe answer is 594.", "594"},
		{"answer = 12.", "12"},
		{" 1081", "1081"},
		{"  ", ""},
	} {
		if got := AnswerText(tc.in); got != tc.want {
			t.Errorf("AnswerText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestChoiceLabel(t *testing.T) {
	ch := []Choice{{"A", "Paris"}, {"B", "London"}, {"C", "Rome"}}
	for _, tc := range []struct{ in, want string }{
		{"B", "B"},
		{"c) because", "C"},
		{"I think it is London", "B"},
		{"so the answer is c", "C"},
		{"(a)", "A"},
		{"none of these", ""},
		{"b. Paris is wrong", "B"},
	} {
		if got := ChoiceLabel(tc.in, ch); got != tc.want {
			t.Errorf("ChoiceLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKeyAndCorrect(t *testing.T) {
	em := Task{Type: ExactMatch}
	mc := Task{Type: MultipleChoice, Choices: []Choice{{"A", "yes"}, {"B", "no"}}}
	for _, tc := range []struct {
		task     Task
		a, b     string
		same     bool
		ref      string
		aIsRight bool
	}{
		{em, "The answer is The Beatles.", `\boxed{beatles}`, true, "Beatles", true},
		{em, " 1081", "1081\n", true, "1081", true},
		{em, "1081", "1018", false, "1018", false},
		{mc, "A", "the answer is a", true, "A", true},
		{mc, "B.", "yes", false, "A", false},
		{Task{}, "Hello, World", "hello world", true, "hello  world!", true},
	} {
		if got := Key(tc.task, tc.a) == Key(tc.task, tc.b); got != tc.same {
			t.Errorf("%v: Key(%q)=%q, Key(%q)=%q", tc.task.Type, tc.a, Key(tc.task, tc.a), tc.b, Key(tc.task, tc.b))
		}
		if got := Correct(tc.task, tc.a, tc.ref); got != tc.aIsRight {
			t.Errorf("Correct(%q, %q) = %v", tc.a, tc.ref, got)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("The answer is \\boxed{x}", "A")
	f.Add("Final Answer: <b>\n", "B")
	f.Fuzz(func(t *testing.T, text, label string) {
		ch := []Choice{{"A", label}, {"B", "other"}}
		if l := ChoiceLabel(text, ch); l != "" && l != "A" && l != "B" {
			t.Fatalf("label %q not among the choices", l)
		}
		_ = Key(Task{Type: ExactMatch}, text)
		if n := Normalize(text); Normalize(n) != n {
			t.Fatalf("Normalize not idempotent on %q", text)
		}
	})
}
