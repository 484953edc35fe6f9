package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// A finder reports the non-overlapping matches of a pattern in s, as byte
// offset pairs, leftmost first.
type finder interface {
	findAll(s string, dst [][2]int) [][2]int
}

// literal matches a fixed string.
type literal string

func (l literal) findAll(s string, dst [][2]int) [][2]int {
	if l == "" {
		return dst
	}
	for i := 0; ; {
		j := strings.Index(s[i:], string(l))
		if j < 0 {
			return dst
		}
		dst = append(dst, [2]int{i + j, i + j + len(l)})
		i += j + len(l)
	}
}

// goRegexp wraps Go's regexp for patterns that mean the same in RE2 and in
// Oniguruma (the reference's engine).
type goRegexp struct{ re *regexp.Regexp }

func (g goRegexp) findAll(s string, dst [][2]int) [][2]int {
	for _, m := range g.re.FindAllStringIndex(s, -1) {
		dst = append(dst, [2]int{m[0], m[1]})
	}
	return dst
}

// backtracking wraps regexp2 for patterns that need lookaround or
// Unicode-aware classes.
type backtracking struct{ re *regexp2.Regexp }

// regexTimeout bounds one match of a backtracking pattern. A pattern from
// tokenizer.json such as (\w+\s?)*$ backtracks exponentially on a short
// input; a pre-tokenizer match of real text takes microseconds.
var regexTimeout = time.Second

// RegexTimeoutError reports a tokenizer.json pattern whose match ran past
// the time limit on the text being encoded.
type RegexTimeoutError struct {
	Pattern string
	Limit   time.Duration
}

func (e *RegexTimeoutError) Error() string {
	return fmt.Sprintf("tokenizer: regex %q ran longer than %v on one match (catastrophic backtracking in tokenizer.json?)", e.Pattern, e.Limit)
}

// catchRegexTimeout turns the panic findAll raises on a timed-out match into
// the error of the public call that ran it; normalizers and pre-tokenizers
// have no error result, so the panic carries the error up to there.
func catchRegexTimeout(err *error) {
	if r := recover(); r != nil {
		e, ok := r.(*RegexTimeoutError)
		if !ok {
			panic(r)
		}
		*err = e
	}
}

func (b backtracking) findAll(s string, dst [][2]int) [][2]int {
	runes := []rune(s)
	// regexp2 reports rune offsets: map them back to bytes.
	offs := make([]int, len(runes)+1)
	o := 0
	for i, r := range runes {
		offs[i] = o
		o += utf8.RuneLen(r)
	}
	offs[len(runes)] = o
	m, err := b.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		dst = append(dst, [2]int{offs[m.Index], offs[m.Index+m.Length]})
		m, err = b.re.FindNextMatch(m)
	}
	if err != nil {
		// regexp2's only match error is its timeout.
		panic(&RegexTimeoutError{Pattern: b.re.String(), Limit: b.re.MatchTimeout})
	}
	return dst
}

// compileRegex picks the fastest exact engine for an Oniguruma pattern
// taken from a tokenizer.json.
func compileRegex(pattern string) (finder, error) {
	if f := knownScanner(pattern); f != nil {
		return f, nil
	}
	// \s, \w, \d and \b are ASCII-only in RE2 but Unicode-aware in the
	// reference, so such patterns go to the backtracking engine.
	if !hasClassEscape(pattern) {
		if re, err := regexp.Compile(pattern); err == nil {
			return goRegexp{re}, nil
		}
	}
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", pattern, err)
	}
	re.MatchTimeout = regexTimeout
	return backtracking{re}, nil
}

func hasClassEscape(p string) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '\\' {
			switch p[i+1] {
			case 's', 'S', 'w', 'W', 'd', 'D', 'b', 'B', 'h', 'H', 'z', 'Z', 'A', 'G', 'k', 'K', 'R', 'X':
				return true
			}
			i++
		}
	}
	return false
}
