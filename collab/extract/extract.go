package extract

import (
	"regexp"
	"strings"
	"unicode"
)

// Task types with their own extraction; any other type compares the whole
// normalized text.
const (
	ExactMatch     = "exact_match"
	F1Match        = "f1_match"
	MultipleChoice = "multiple_choice"
)

// Choice is one labelled option of a multiple-choice item.
type Choice struct {
	Label string `json:"label"`
	Text  string `json:"text"`
}

// Task says what kind of answer a prompt wants. The zero value is free
// text (compared whole after normalization).
type Task struct {
	Type    string   `json:"type,omitempty"`
	Choices []Choice `json:"choices,omitempty"` // multiple choice, in label order
}

var (
	reBoxed       = regexp.MustCompile(`(?is)\\box(?:ed)?\s*\{(.*?)\}`)
	reInlineBoxed = regexp.MustCompile(`(?i)\\box(?:ed)?\s+([^\n\r]*)`)
	// MoCo's fallbacks, tried in order; the first five need a line end.
	reFallbacks = []*regexp.Regexp{
		regexp.MustCompile(`(?i)Final Answer:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)Final Answer is:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)The answer is:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)Answer:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)Solution:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)The solution is:\s*((?:[^<]|<[^<])*?)\n`),
		regexp.MustCompile(`(?i)\bthe answer\s*(?:is|=)?\s*[:\-]?\s*(.+)`),
		regexp.MustCompile(`(?i)\bfinal answer\s*(?:is|=)?\s*[:\-]?\s*(.+)`),
		regexp.MustCompile(`(?i)\banswer\s*(?:is|=)?\s*[:\-]?\s*(.+)`),
	}
)

// AnswerText is MoCo's extract_answer_text: the last \boxed{...}, else an
// inline "\boxed x", else the first of the "Final Answer:", "Answer:", "the
// answer is" patterns that matches (its first line, without a trailing
// period), else the whole text trimmed.
func AnswerText(text string) string {
	if m := reBoxed.FindAllStringSubmatch(text, -1); m != nil {
		return strings.TrimSpace(m[len(m)-1][1])
	}
	if m := reInlineBoxed.FindStringSubmatch(text); m != nil {
		if c := strings.TrimSpace(m[1]); c != "" {
			return c
		}
	}
	for _, re := range reFallbacks {
		m := re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		c := strings.TrimSpace(m[1])
		if i := strings.IndexAny(c, "\r\n"); i >= 0 {
			c = strings.TrimSpace(c[:i])
		}
		c = strings.TrimRight(c, ". ")
		if c != "" {
			return c
		}
	}
	return strings.TrimSpace(text)
}

// ChoiceLabel is MoCo's parse_model_response_mcq: the option label a
// response picks, or "" when it picks none. In order: the response is a
// label alone or starts with "X)", "X." or "X "; else it contains an
// option's text (the first option that matches); else it contains "x)",
// "(x)", "answer is x" or "x." for some label (the first in label order).
// Labels are the choices' labels, or A, B, ... by position.
func ChoiceLabel(text string, choices []Choice) string {
	low := strings.ToLower(strings.TrimSpace(text))
	label := func(i int) string {
		if l := choices[i].Label; l != "" {
			return strings.ToUpper(l)
		}
		return string(rune('A' + i))
	}
	for i := range choices {
		l := strings.ToLower(label(i))
		if low == l || strings.HasPrefix(low, l+")") || strings.HasPrefix(low, l+".") || strings.HasPrefix(low, l+" ") {
			return label(i)
		}
	}
	for i, c := range choices {
		if strings.Contains(low, strings.ToLower(c.Text)) {
			return label(i)
		}
	}
	for i := range choices {
		l := strings.ToLower(label(i))
		if strings.Contains(low, l+")") || strings.Contains(low, "("+l+")") || strings.Contains(low, "answer is "+l) || strings.Contains(low, l+".") {
			return label(i)
		}
	}
	return ""
}

var reArticles = regexp.MustCompile(`\b(a|an|the)\b`)

// Normalize is SQuAD's normalize_answer as MoCo uses it: lowercase, ASCII
// punctuation removed, the articles a, an and the removed, white space
// collapsed.
func Normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < 128 && unicode.IsPunct(r) || r < 128 && unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, s)
	s = reArticles.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}

// Answer is the answer a generation gives for the task: the option label
// for multiple choice ("" when none), the extracted answer text for exact
// match and F1 tasks, and the trimmed text otherwise.
func Answer(t Task, text string) string {
	switch t.Type {
	case MultipleChoice:
		return ChoiceLabel(text, t.Choices)
	case ExactMatch, F1Match:
		return AnswerText(text)
	}
	return strings.TrimSpace(text)
}

// Key is the form in which two answers are compared for equality: the
// label for multiple choice, Normalize(Answer) otherwise. Generations with
// equal keys give the same answer; "" means no answer.
func Key(t Task, text string) string {
	a := Answer(t, text)
	if t.Type == MultipleChoice {
		return a
	}
	return Normalize(a)
}

// Correct reports whether a generation answers with the reference: the
// label for multiple choice, MoCo's exact match (equal normalized answer
// text) otherwise.
func Correct(t Task, text, ref string) bool {
	k := Key(t, text)
	if t.Type == MultipleChoice {
		return k != "" && k == strings.ToUpper(strings.TrimSpace(ref))
	}
	return k == Normalize(ref)
}
