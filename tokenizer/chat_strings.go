package tokenizer

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Python's str methods as chat templates call them (gonja's differ in
// defaults and count bytes where Python counts characters).

// chatStrArg reads an optional string argument that may also be None.
func chatStrArg(va *exec.VarArgs, pos int, name string) (string, bool, error) {
	v, ok := chatArg(va, pos, name)
	if !ok || v.IsNil() || chatIsNone(v) {
		return "", false, nil
	}
	if !v.IsString() {
		return "", false, fmt.Errorf("%s must be a string or None", name)
	}
	return v.String(), true, nil
}

var chatStrMethods = map[string]exec.Method[string]{
	"strip":  chatStripMethod("strip", true, true),
	"lstrip": chatStripMethod("lstrip", true, false),
	"rstrip": chatStripMethod("rstrip", false, true),
	"split":  chatSplitMethod(false),
	"rsplit": chatSplitMethod(true),
	"startswith": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		return chatAffix(s, va, "startswith", strings.HasPrefix)
	},
	"endswith": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		return chatAffix(s, va, "endswith", strings.HasSuffix)
	},
	"replace": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, "replace()", 3, "count"); err != nil {
			return nil, err
		}
		if len(va.Args) < 2 || !va.Args[0].IsString() || !va.Args[1].IsString() {
			return nil, errors.New("replace() takes two strings")
		}
		n := -1
		if v, ok := chatArg(va, 2, "count"); ok {
			n = v.Integer()
		}
		if n < 0 {
			n = -1
		}
		return strings.Replace(s, va.Args[0].String(), va.Args[1].String(), n), nil
	},
	"upper":      chatNoArgs("upper", chatUpper),
	"lower":      chatNoArgs("lower", chatLower),
	"title":      chatNoArgs("title", chatTitle),
	"capitalize": chatNoArgs("capitalize", chatCapitalize),
	"ljust":      chatJustMethod("ljust"),
	"rjust":      chatJustMethod("rjust"),
	"center":     chatJustMethod("center"),
	"count": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) < 1 || len(va.Args) > 3 || len(va.KwArgs) > 0 || !va.Args[0].IsString() {
			return nil, errors.New("count() takes a string and optional start and end")
		}
		runes := []rune(s)
		lo, hi := chatRuneRange(len(runes), va.Args[1:])
		if lo > hi {
			return 0, nil
		}
		return strings.Count(string(runes[lo:hi]), va.Args[0].String()), nil
	},
	"find":   chatFindMethod("find", false, false),
	"rfind":  chatFindMethod("rfind", true, false),
	"index":  chatFindMethod("index", false, true),
	"rindex": chatFindMethod("rindex", true, true),
	"splitlines": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, "splitlines()", 1, "keepends"); err != nil {
			return nil, err
		}
		keep := false
		if v, ok := chatArg(va, 0, "keepends"); ok {
			keep = chatTruth(v)
		}
		return chatSplitLines(s, keep), nil
	},
	"partition": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		return chatPartition(s, va, false)
	},
	"rpartition": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		return chatPartition(s, va, true)
	},
	"removeprefix": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) != 1 || !va.Args[0].IsString() {
			return nil, errors.New("removeprefix() takes one string")
		}
		return strings.TrimPrefix(s, va.Args[0].String()), nil
	},
	"removesuffix": func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) != 1 || !va.Args[0].IsString() {
			return nil, errors.New("removesuffix() takes one string")
		}
		return strings.TrimSuffix(s, va.Args[0].String()), nil
	},
}

// chatJustMethod is ljust/rjust/center(width[, fillchar]), counting characters.
func chatJustMethod(name string) exec.Method[string] {
	return func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) < 1 || len(va.Args) > 2 || len(va.KwArgs) > 0 || !va.Args[0].IsInteger() {
			return nil, fmt.Errorf("%s() takes an integer width and an optional fill character", name)
		}
		fill := " "
		if len(va.Args) == 2 {
			if fill = va.Args[1].String(); utf8.RuneCountInString(fill) != 1 {
				return nil, fmt.Errorf("%s(): the fill character must be exactly one character long", name)
			}
		}
		width, n := va.Args[0].Integer(), utf8.RuneCountInString(s)
		if width <= n {
			return s, nil
		}
		pad := width - n
		left := 0
		switch name {
		case "rjust":
			left = pad
		case "center":
			left = pad/2 + (pad & width & 1) // CPython's rounding
		}
		return strings.Repeat(fill, left) + s + strings.Repeat(fill, pad-left), nil
	}
}

// chatRuneRange reads optional start and end arguments as Python slices
// them: negative from the end, clamped, None for the default.
func chatRuneRange(n int, args []*exec.Value) (lo, hi int) {
	bound := func(v *exec.Value, def int) int {
		if v.IsNil() || chatIsNone(v) {
			return def
		}
		i := v.Integer()
		if i < 0 {
			i += n
		}
		return min(max(i, 0), n)
	}
	lo, hi = 0, n
	if len(args) > 0 {
		lo = bound(args[0], 0)
	}
	if len(args) > 1 {
		hi = bound(args[1], n)
	}
	return lo, hi
}

// chatFindMethod is find/rfind/index/rindex(sub[, start[, end]]), counting
// characters as Python does; index and rindex fail where find gives -1.
func chatFindMethod(name string, last, mustFind bool) exec.Method[string] {
	return func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) < 1 || len(va.Args) > 3 || len(va.KwArgs) > 0 || !va.Args[0].IsString() {
			return nil, fmt.Errorf("%s() takes a string and optional start and end", name)
		}
		runes := []rune(s)
		lo, hi := chatRuneRange(len(runes), va.Args[1:])
		at := -1
		if lo <= hi {
			sub, hay := va.Args[0].String(), string(runes[lo:hi])
			var b int
			if last {
				b = strings.LastIndex(hay, sub)
			} else {
				b = strings.Index(hay, sub)
			}
			if b >= 0 {
				at = lo + utf8.RuneCountInString(hay[:b])
			}
		}
		if at < 0 && mustFind {
			return nil, errors.New("substring not found")
		}
		return at, nil
	}
}

func chatNoArgs(name string, fn func(string) string) exec.Method[string] {
	return func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, name+"()", 0); err != nil {
			return nil, err
		}
		return fn(s), nil
	}
}

func chatStripMethod(name string, left, right bool) exec.Method[string] {
	return func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, name+"()", 1, "chars"); err != nil {
			return nil, err
		}
		chars, ok, err := chatStrArg(va, 0, "chars")
		if err != nil {
			return nil, err
		}
		return chatStrip(s, chars, ok, left, right), nil
	}
}

// chatIsSpace is Python's str.isspace for one character.
func chatIsSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85:
		return true
	}
	return r > 0x7f && unicode.IsSpace(r)
}

// chatStrip is Python's strip/lstrip/rstrip: with chars, the set of those
// characters; without, whitespace.
func chatStrip(s, chars string, haveChars, left, right bool) string {
	cut := chatIsSpace
	if haveChars {
		cut = func(r rune) bool { return strings.ContainsRune(chars, r) }
	}
	if left {
		s = strings.TrimLeftFunc(s, cut)
	}
	if right {
		s = strings.TrimRightFunc(s, cut)
	}
	return s
}

func chatSplitMethod(fromRight bool) exec.Method[string] {
	name := "split()"
	if fromRight {
		name = "rsplit()"
	}
	return func(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, name, 2, "sep", "maxsplit"); err != nil {
			return nil, err
		}
		sep, haveSep, err := chatStrArg(va, 0, "sep")
		if err != nil {
			return nil, err
		}
		maxsplit := -1
		if v, ok := chatArg(va, 1, "maxsplit"); ok {
			maxsplit = v.Integer()
		}
		if haveSep && sep == "" {
			return nil, errors.New("empty separator")
		}
		var parts []string
		if haveSep {
			parts = chatSplitSep(s, sep, maxsplit, fromRight)
		} else {
			parts = chatSplitSpace(s, maxsplit, fromRight)
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	}
}

func chatSplitSep(s, sep string, maxsplit int, fromRight bool) []string {
	if maxsplit < 0 {
		return strings.Split(s, sep)
	}
	if !fromRight {
		return strings.SplitN(s, sep, maxsplit+1)
	}
	var rev []string
	for range maxsplit {
		i := strings.LastIndex(s, sep)
		if i < 0 {
			break
		}
		rev = append(rev, s[i+len(sep):])
		s = s[:i]
	}
	out := []string{s}
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// chatSplitSpace is str.split() without a separator: runs of whitespace
// separate, and no empty strings result.
func chatSplitSpace(s string, maxsplit int, fromRight bool) []string {
	if !fromRight {
		var out []string
		for {
			s = strings.TrimLeftFunc(s, chatIsSpace)
			if s == "" {
				return out
			}
			if maxsplit >= 0 && len(out) == maxsplit {
				return append(out, s) // the rest keeps its trailing whitespace
			}
			i := strings.IndexFunc(s, chatIsSpace)
			if i < 0 {
				return append(out, s)
			}
			out = append(out, s[:i])
			s = s[i:]
		}
	}
	var rev []string
	for {
		s = strings.TrimRightFunc(s, chatIsSpace)
		if s == "" {
			break
		}
		if maxsplit >= 0 && len(rev) == maxsplit {
			rev = append(rev, s) // the rest keeps its leading whitespace
			break
		}
		i := strings.LastIndexFunc(s, chatIsSpace)
		if i < 0 {
			rev = append(rev, s)
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		rev = append(rev, s[i+size:])
		s = s[:i]
	}
	out := make([]string, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// chatAffix implements startswith/endswith with a string or a tuple of strings
// and optional start/end.
func chatAffix(s string, va *exec.VarArgs, name string, has func(string, string) bool) (any, error) {
	if len(va.Args) < 1 || len(va.Args) > 3 || len(va.KwArgs) > 0 {
		return nil, fmt.Errorf("%s() takes 1 to 3 positional arguments", name)
	}
	runes := []rune(s)
	lo, hi := chatRuneRange(len(runes), va.Args[1:])
	if lo > hi {
		return false, nil
	}
	sub := string(runes[lo:hi])
	arg := va.Args[0]
	if arg.IsString() {
		return has(sub, arg.String()), nil
	}
	if arg.IsList() {
		for i := 0; i < arg.Len(); i++ {
			e := arg.Index(i)
			if !e.IsString() {
				return nil, fmt.Errorf("%s() tuple elements must be strings", name)
			}
			if has(sub, e.String()) {
				return true, nil
			}
		}
		return false, nil
	}
	return nil, fmt.Errorf("%s() argument must be a string or a tuple of strings", name)
}

// chatUpper and chatLower are Python's str.upper and str.lower, with the full
// Unicode mappings ("ß" upper-cases to "SS"). A Caser is not safe for
// concurrent use, hence one per call.
func chatUpper(s string) string { return cases.Upper(language.Und).String(s) }
func chatLower(s string) string { return cases.Lower(language.Und).String(s) }

func chatIsCased(r rune) bool { return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) }

// chatTitle is Python's str.title: a cased character is upper-cased after an
// uncased one and lower-cased after a cased one.
func chatTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		switch {
		case !chatIsCased(r):
			b.WriteRune(r)
			prevCased = false
		case prevCased:
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(unicode.ToTitle(r))
			prevCased = true
		}
	}
	return b.String()
}

// chatCapitalize is Python's str.capitalize: the first character in title
// case, the rest lower-cased.
func chatCapitalize(s string) string {
	for i, r := range s {
		return string(unicode.ToTitle(r)) + chatLower(s[i+len(string(r)):])
	}
	return s
}

// chatSplitLines is str.splitlines: the line boundaries are \n, \r, \r\n,
// \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029.
func chatSplitLines(s string, keepEnds bool) []any {
	out := []any{}
	start := 0
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			end := i + w
			if r == '\r' && end < len(s) && s[end] == '\n' {
				end++
			}
			if keepEnds {
				out = append(out, s[start:end])
			} else {
				out = append(out, s[start:i])
			}
			start, i = end, end
			continue
		}
		i += w
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// chatPartition is str.partition (or rpartition): a 3-tuple.
func chatPartition(s string, va *exec.VarArgs, last bool) (any, error) {
	if len(va.Args) != 1 || len(va.KwArgs) > 0 || !va.Args[0].IsString() {
		return nil, errors.New("TypeError: partition() takes one string")
	}
	sep := va.Args[0].String()
	if sep == "" {
		return nil, errors.New("ValueError: empty separator")
	}
	i := strings.Index(s, sep)
	if last {
		i = strings.LastIndex(s, sep)
	}
	switch {
	case i >= 0:
		return chatTuple{s[:i], sep, s[i+len(sep):]}, nil
	case last:
		return chatTuple{"", "", s}, nil
	}
	return chatTuple{s, "", ""}, nil
}
