package bench

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// ExtractAnswer pulls the final answer out of a generation, in MoCo's order
// of preference: the content of the last \boxed{...} or \box{...} (nested
// braces allowed, unlike MoCo's regular expression, so \boxed{\frac{1}{2}}
// is read whole), an inline "\boxed 42" or "\box 42", what follows (to the
// end of its line) "final answer:", "the answer is:", "answer:",
// "solution:", "the solution is:", then the looser "the answer is" or "the
// answer -", "final answer", "answer is", else the last non-empty line.
func ExtractAnswer(text string) string {
	if b, ok := lastBoxed(text); ok {
		return strings.TrimSpace(b)
	}
	if m := reInlineBox.FindStringSubmatch(text); m != nil && strings.TrimSpace(m[1]) != "" {
		return strings.TrimSpace(m[1])
	}
	for _, re := range reAnswerPhrases {
		if ms := re.FindAllStringSubmatchIndex(text, -1); ms != nil {
			m := ms[len(ms)-1]
			end := m[1]
			if text[end-1] == '-' {
				end-- // the dash may be a minus sign: trimSeparators decides
			}
			rest := text[end:]
			if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
				rest = rest[:j]
			}
			rest = trimSeparators(rest)
			rest = strings.TrimSpace(strings.TrimRight(rest, ". "))
			if rest != "" {
				return rest
			}
		}
	}
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return ""
}

var (
	// \box or \boxed (MoCo's prompt asks for \box), not "\boxe".
	reInlineBox = regexp.MustCompile(`(?i)\\box(?:ed)?[ \t]+([^\n\r{][^\n\r]*)`)
	// Answer phrases, most specific first; the last occurrence of the first
	// phrase found wins.
	reAnswerPhrases = []*regexp.Regexp{
		// The forms with a separator, MoCo's first six patterns.
		regexp.MustCompile(`(?i)\bfinal answer(?:\s+is)?\s*[:=]`),
		regexp.MustCompile(`(?i)\bthe answer\s+is\s*[:=]`),
		regexp.MustCompile(`(?i)\banswer\s*(?:is\b)?\s*[:=]`),
		regexp.MustCompile(`(?i)\bsolution\s*:`),
		regexp.MustCompile(`(?i)\bthe solution\s+is\s*:`),
		// MoCo's looser last three, which here still need "is" or a dash.
		regexp.MustCompile(`(?i)\bthe answer\s*(?:is\b|-)`),
		regexp.MustCompile(`(?i)\bfinal answer(?:\s+is\b)?`),
		regexp.MustCompile(`(?i)\banswer\s+is\b`),
	}
)

// trimSeparators drops the spaces, colons, equals signs and dashes between
// an answer phrase and the answer. A dash is a separator only when a space
// or the end follows it: "the answer is -5" keeps its minus sign (MoCo's
// pattern, which strips it, scores a correct negative answer wrong).
func trimSeparators(s string) string {
	for {
		s = strings.TrimLeft(s, " \t")
		switch {
		case strings.HasPrefix(s, ":"), strings.HasPrefix(s, "="),
			s == "-", strings.HasPrefix(s, "- "), strings.HasPrefix(s, "-\t"):
			s = s[1:]
		default:
			return strings.TrimSpace(s)
		}
	}
}

// lastBoxed returns the content of the last \boxed{...} or \box{...} with
// balanced braces.
func lastBoxed(text string) (string, bool) {
	starts := reBoxOpen.FindAllStringIndex(text, -1)
	for k := len(starts) - 1; k >= 0; k-- {
		start := starts[k][1]
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
	}
	return "", false
}

var reBoxOpen = regexp.MustCompile(`\\(?:boxed|box|fbox)\s*\{`)

// Normalize lowercases, trims, drops surrounding $ and a final period, and
// collapses white space, so that formatting does not decide a match.
func Normalize(s string) string {
	s = strings.TrimSpace(strings.ToLower(s))
	s = strings.Trim(s, "$")
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	for _, w := range []string{`\text{`, `\mathrm{`, `\textbf{`, `\mathbf{`} {
		if strings.HasPrefix(s, w) && strings.HasSuffix(s, "}") {
			s = s[len(w) : len(s)-1]
		}
	}
	return strings.Join(strings.Fields(s), " ")
}

// NormalizeSQuAD is the SQuAD (and MoCo) answer normalization: lowercase,
// drop ASCII punctuation and the articles a, an, the, collapse white space.
func NormalizeSQuAD(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < 128 && unicode.IsPunct(r) || r < 128 && unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, s)
	var out []string
	for _, w := range strings.Fields(s) {
		if w != "a" && w != "an" && w != "the" {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}

// NormalizeLaTeX rewrites the spellings of one math answer into one form:
// no $, \left/\right, spacing commands, \text{} wrappers, degrees or
// "\%"; \dfrac and \tfrac as \frac; no spaces.
func NormalizeLaTeX(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Trim(s, "$")
	s = reTextWrap.ReplaceAllString(s, "$1")
	s = strings.NewReplacer(`\left`, "", `\right`, "", `\!`, "", `\,`, "", `\;`, "", `\:`, "", `\ `, "",
		`\dfrac`, `\frac`, `\tfrac`, `\frac`, `^\circ`, "", `^{\circ}`, "", `\%`, "", "%", "", `\$`, "",
		`\displaystyle`, "").Replace(s)
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
}

var reTextWrap = regexp.MustCompile(`\\(?:text|mathrm|textbf|mathbf|operatorname)\{([^{}]*)\}`)

var (
	reThousands = regexp.MustCompile(`^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$`)
	reFrac      = regexp.MustCompile(`^([-+]?)\\frac\{?([-+]?[0-9.]+)\}?\{?([-+]?[0-9.]+)\}?$`)
	reNumber    = regexp.MustCompile(`[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?`)
)

// number parses s as a number: thousands separators (1,000), a currency
// sign, a percent sign (50% is 50), decimals, a/b and \frac{a}{b}.
func number(s string) (float64, bool) {
	s = NormalizeLaTeX(s)
	s = strings.TrimPrefix(s, "$")
	if s == "" {
		return 0, false
	}
	if strings.Contains(s, ",") {
		if !reThousands.MatchString(s) {
			return 0, false
		}
		s = strings.ReplaceAll(s, ",", "")
	}
	if m := reFrac.FindStringSubmatch(s); m != nil {
		s = m[1] + m[2] + "/" + m[3]
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
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// mathLike reports whether s looks like math rather than words, so that
// dropping its spaces is safe ("18x^3 + 8x^2", not "oox hlr").
func mathLike(s string) bool {
	return strings.ContainsAny(s, `\^_{}=+*/0123456789`)
}

// lastNumber returns the last number written in s.
func lastNumber(s string) (float64, bool) {
	all := reNumber.FindAllString(s, -1)
	if len(all) == 0 {
		return 0, false
	}
	return number(all[len(all)-1])
}

// ExactMatch compares an extracted answer with a reference. Two numbers
// match when their values are equal (1,000 = 1000 = 1000.0; \frac{1}{2} =
// 1/2 = 0.5; 50% = 50), and only then. Otherwise they match
// when their SQuAD normalizations are equal (MoCo's rule), or when their
// normalized strings or LaTeX forms are equal. A numeric reference also
// matches the last number of a wordy answer ("She has 112 apples").
func ExactMatch(pred, ref string) bool {
	if strings.TrimSpace(pred) == "" {
		return strings.TrimSpace(ref) == ""
	}
	if a, ok := number(pred); ok {
		if b, ok := number(ref); ok { // two numbers: only their values count (1.2 is not 12)
			return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
		}
	}
	if Normalize(pred) == Normalize(ref) || strings.Trim(Normalize(pred), "()") == strings.Trim(Normalize(ref), "()") {
		return true
	}
	// SQuAD's normalization drops punctuation, which would make 1.2 equal
	// 12: answers with digits on both sides skip it.
	digits := strings.ContainsAny(pred, "0123456789") && strings.ContainsAny(ref, "0123456789")
	if np, nr := NormalizeSQuAD(pred), NormalizeSQuAD(ref); !digits && np != "" && np == nr {
		return true
	}
	if mathLike(pred) || mathLike(ref) {
		if lp, lr := NormalizeLaTeX(pred), NormalizeLaTeX(ref); lp != "" && lp == lr {
			return true
		}
	}
	b, ok := number(ref)
	if !ok {
		return false
	}
	a, ok := number(pred)
	if !ok {
		if a, ok = lastNumber(pred); !ok {
			return false
		}
	}
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}

// Labels are letters, or digits as in some ARC items (a digit is only
// taken where the item's options are labelled by digits).
var (
	// "answer is (B)", "Answer: B", "answer: (b)".
	reAnswerLetter = regexp.MustCompile(`(?i)answer(?:\s+is)?\s*[:：]?\s*\(?([A-Za-z0-9])\)?(?:[.)\s,:]|$)`)
	// A letter standing alone: "(B)", "B.", "B)", "B" at the start.
	reLeadLetter = regexp.MustCompile(`^\s*\(?([A-Za-z0-9])(?:[.):\s]|$)`)
	reParenAny   = regexp.MustCompile(`\(([A-Za-z0-9])\)`)
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
// start of a sentence like "A dog" or "I think": "A" or "I" followed by a
// space and more lowercase text is an article or pronoun, not a label.
// Other letters are not English words, so "C is correct" picks C (MoCo's
// rule too).
func isWordStart(text, match string) bool {
	rest := strings.TrimPrefix(strings.TrimLeft(text, " \t\n("), strings.TrimLeft(match, " \t\n("))
	if !strings.HasSuffix(match, " ") {
		return false
	}
	l := strings.TrimLeftFunc(match, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
	if l = strings.ToUpper(l[:1]); l != "A" && l != "I" {
		return false
	}
	r := []rune(strings.TrimSpace(rest))
	return len(r) > 0 && unicode.IsLower(r[0])
}
