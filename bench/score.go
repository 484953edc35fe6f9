package bench

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// ExtractAnswer pulls the final answer out of a generation: the content of
// the last \boxed{...} (nested braces allowed), else what follows the last
// "answer is", else the last non-empty line.
func ExtractAnswer(text string) string {
	if b, ok := lastBoxed(text); ok {
		return strings.TrimSpace(b)
	}
	low := strings.ToLower(text)
	if i := strings.LastIndex(low, "answer is"); i >= 0 {
		rest := text[i+len("answer is"):]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		rest = strings.TrimLeft(rest, " :")
		return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "."))
	}
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return ""
}

// lastBoxed returns the content of the last \boxed{...} with balanced braces.
func lastBoxed(text string) (string, bool) {
	i := strings.LastIndex(text, `\boxed{`)
	for i >= 0 {
		start := i + len(`\boxed{`)
		depth := 1
		for j := start; j < len(text); j++ {
			switch text[j] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					return text[start:j], true
				}
			}
		}
		// Unbalanced: try an earlier one.
		i = strings.LastIndex(text[:i], `\boxed{`)
	}
	return "", false
}

// Normalize lowercases, trims, drops surrounding $ and a final period, and
// collapses white space, so that formatting does not decide a match.
func Normalize(s string) string {
	s = strings.TrimSpace(strings.ToLower(s))
	s = strings.Trim(s, "$")
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	for _, w := range []string{`\text{`, `\mathrm{`} {
		if strings.HasPrefix(s, w) && strings.HasSuffix(s, "}") {
			s = s[len(w) : len(s)-1]
		}
	}
	return strings.Join(strings.Fields(s), " ")
}

// number parses s as a number after removing thousands separators, a
// currency sign and a percent sign.
func number(s string) (float64, bool) {
	s = strings.NewReplacer(",", "", "$", "", "%", "", `\%`, "", " ", "").Replace(Normalize(s))
	if s == "" {
		return 0, false
	}
	if n, d, ok := strings.Cut(s, "/"); ok { // a simple fraction
		a, err1 := strconv.ParseFloat(n, 64)
		b, err2 := strconv.ParseFloat(d, 64)
		if err1 == nil && err2 == nil && b != 0 {
			return a / b, true
		}
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsNaN(f)
}

// ExactMatch compares an extracted answer with a reference: as numbers when
// both parse as numbers, else as normalized strings.
func ExactMatch(pred, ref string) bool {
	if a, ok := number(pred); ok {
		if b, ok := number(ref); ok {
			return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
		}
	}
	return Normalize(pred) == Normalize(ref)
}

var (
	// "answer is (B)", "Answer: B", "answer: (b)".
	reAnswerLetter = regexp.MustCompile(`(?i)answer(?:\s+is)?\s*[:：]?\s*\(?([A-Za-z])\)?(?:[.)\s,:]|$)`)
	// A letter standing alone: "(B)", "B.", "B)", "B" at the start.
	reLeadLetter = regexp.MustCompile(`^\s*\(?([A-Za-z])(?:[.):\s]|$)`)
	reParenAny   = regexp.MustCompile(`\(([A-Za-z])\)`)
)

// ExtractChoice returns the label of the option a generation picks, or ""
// when it picks none: there is no fallback to any letter, so an
// unparseable answer scores as wrong rather than as "A".
func ExtractChoice(text string, choices []Choice) string {
	valid := map[string]bool{}
	for _, c := range choices {
		valid[strings.ToUpper(c.Label)] = true
	}
	ok := func(l string) (string, bool) {
		l = strings.ToUpper(l)
		return l, valid[l]
	}
	if b, found := lastBoxed(text); found {
		b = strings.Trim(strings.TrimSpace(b), "()")
		if l, good := ok(b); good {
			return l
		}
	}
	if m := reAnswerLetter.FindAllStringSubmatch(text, -1); m != nil {
		if l, good := ok(m[len(m)-1][1]); good {
			return l
		}
	}
	if m := reLeadLetter.FindStringSubmatch(text); m != nil {
		// A lone leading word must be a single letter, not the first letter of "A dog".
		if l, good := ok(m[1]); good && (len(strings.TrimSpace(text)) == 1 || !isWordStart(text, m[0])) {
			return l
		}
	}
	if m := reParenAny.FindAllStringSubmatch(text, -1); len(m) == 1 {
		if l, good := ok(m[0][1]); good {
			return l
		}
	}
	// The text of exactly one option.
	norm := Normalize(text)
	found := ""
	for _, c := range choices {
		t := Normalize(c.Text)
		if t != "" && strings.Contains(norm, t) {
			if found != "" {
				return ""
			}
			found = strings.ToUpper(c.Label)
		}
	}
	return found
}

// isWordStart reports whether the match (a letter and what follows) is the
// start of a longer word like "A dog" or "I think": a letter followed by a
// space and more lowercase text is an article or pronoun, not a label.
func isWordStart(text, match string) bool {
	rest := strings.TrimPrefix(strings.TrimLeft(text, " \t\n("), strings.TrimLeft(match, " \t\n("))
	if !strings.HasSuffix(match, " ") {
		return false
	}
	r := []rune(strings.TrimSpace(rest))
	return len(r) > 0 && unicode.IsLower(r[0])
}
