package tokenizer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// chatRewrite adapts a chat template's source to gonja where gonja's reading
// of Jinja differs, so that gonja renders what Jinja would:
//
//   - gonja parses a conditional expression (x if c else y) only at the top
//     of {{ ... }} and {% set ... %}, while Jinja accepts it anywhere, and
//     real templates nest it in parentheses and call arguments (Gemma 3:
//     {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}).
//     Each nested conditional becomes a set tag just before the tag using it,
//     where gonja evaluates it lazily:
//     {%+ set moco_cond_0 = first_user_prefix if loop.first else "" %}{{ ... + ( moco_cond_0 ) }}.
//     The inserted tag takes over the original's left whitespace control ("+"
//     in front of {{, which lstrip_blocks does not touch) and is followed by
//     "{", never by the newline trim_blocks would eat, so output is unchanged.
//     In an elif condition, the elif becomes else + set + if, and the block's
//     endif gets a twin.
//   - lstrip_blocks strips spaces before a block or comment tag only when
//     they start the line; gonja also strips them after another tag on the
//     same line ("{{ x }} {% endfor %}"), so such tags get "+".
//   - none becomes a name bound to a value distinct from undefined (see
//     chatRenameNone).
//   - a line break between "{%" and the statement name becomes a space.
//   - the right operand of in and not in is put in parentheses when it has
//     a filter or an operator (see chatGroupIn).
//
// It also reports what would make gonja loop forever (an unclosed tag, a
// U+FFFD outside strings) as syntax errors. A template needing none of this is
// returned unchanged.
func chatRewrite(src string) (string, error) {
	h := &chatHoister{}
	var out strings.Builder
	changed := false
	for i := 0; i < len(src); {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			out.WriteString(src[i:])
			break
		}
		j += i
		out.WriteString(src[i:j])
		switch src[j+1] {
		case '#':
			end := strings.Index(src[j+2:], "#}")
			if end < 0 {
				return "", fmt.Errorf("syntax error: the comment at line %d is not closed", chatLine(src, j))
			}
			end += j + 2 + 2
			tag := src[j:end]
			if chatKeepIndent(src, j) {
				tag, changed = "{#+"+tag[2:], true
			}
			out.WriteString(tag)
			i = end
		case '{', '%':
			closer := "}}"
			if src[j+1] == '%' {
				closer = "%}"
			}
			end := chatTagEnd(src, j+2, closer)
			if end < 0 {
				return "", fmt.Errorf("syntax error: the tag at line %d is not closed with %q", chatLine(src, j), closer)
			}
			tag := src[j:end]
			if chatHasBadRune(tag) {
				return "", fmt.Errorf("syntax error: invalid UTF-8 or U+FFFD outside a string in the tag at line %d", chatLine(src, j))
			}
			if src[j+1] == '%' {
				if chatKeepIndent(src, j) {
					tag, changed = "{%+"+tag[2:], true
				}
				if t := chatTidyBlockStart(tag); t != tag {
					tag, changed = t, true
				}
			}
			if src[j+1] == '%' && chatRawStart.MatchString(tag) {
				loc := chatRawEnd.FindStringIndex(src[end:])
				if loc == nil {
					return "", fmt.Errorf("syntax error: the raw block at line %d has no endraw", chatLine(src, j))
				}
				out.WriteString(tag + src[end:end+loc[1]])
				i = end + loc[1]
				continue
			}
			rewritten, err := h.tag(tag)
			if err != nil {
				return "", err
			}
			changed = changed || rewritten != tag
			out.WriteString(rewritten)
			i = end
		default:
			out.WriteByte('{')
			i = j + 1
		}
	}
	return chatRewritten(src, out.String(), changed), nil
}

// chatKeepIndent reports whether the block or comment tag at j must be marked
// "+" to keep the spaces before it. lstrip_blocks strips spaces and tabs
// before a tag only when they start the line; gonja strips them after another
// tag on the same line too, as in "{{ x }} {% endfor %}".
func chatKeepIndent(src string, j int) bool {
	if j+2 < len(src) && (src[j+2] == '-' || src[j+2] == '+') {
		return false
	}
	k := j
	for k > 0 && (src[k-1] == ' ' || src[k-1] == '\t') {
		k--
	}
	return k < j && k > 0 && src[k-1] != '\n'
}

// chatTidyBlockStart replaces a line break between "{%" and the statement
// name, which gonja's lexer rejects, with a space.
func chatTidyBlockStart(tag string) string {
	head, rest := tag[:2], tag[2:]
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		head, rest = tag[:3], tag[3:]
	}
	trimmed := strings.TrimLeft(rest, " \t\r\n")
	if !strings.ContainsAny(rest[:len(rest)-len(trimmed)], "\r\n") {
		return tag
	}
	return head + " " + trimmed
}

func chatRewritten(src, out string, changed bool) string {
	if !changed {
		return src
	}
	return out
}

var (
	chatRawStart = regexp.MustCompile(`^\{%[-+]?\s*raw\s*[-+]?%\}$`)
	chatRawEnd   = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)
)

// chatTagEnd returns the index just past the closer of a tag whose content
// starts at i, skipping string literals and nested brackets, or -1.
func chatTagEnd(src string, i int, closer string) int {
	depth := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			i = chatStringEnd(src, i)
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			if depth == 0 && strings.HasPrefix(src[i:], closer) {
				return i + len(closer)
			}
			if depth > 0 {
				depth--
			}
		case depth == 0 && strings.HasPrefix(src[i:], closer):
			return i + len(closer)
		}
		i++
	}
	return -1
}

// chatLine is the 1-based line of byte offset i.
func chatLine(src string, i int) int { return strings.Count(src[:i], "\n") + 1 }

// chatHasBadRune reports a U+FFFD or invalid UTF-8 outside string literals:
// gonja's lexer takes it for its end-of-input mark and can loop forever.
func chatHasBadRune(tag string) bool {
	for i := 0; i < len(tag); {
		c := tag[i]
		if c == '\'' || c == '"' {
			i = chatStringEnd(tag, i)
			continue
		}
		r, w := utf8.DecodeRuneInString(tag[i:])
		if r == utf8.RuneError {
			return true
		}
		i += w
	}
	return false
}

// chatStringEnd returns the index just past the string literal at i.
func chatStringEnd(src string, i int) int {
	q := src[i]
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case q:
			return i + 1
		}
	}
	return len(src)
}

type chatHoister struct {
	n   int   // conditionals hoisted so far, for unique names
	ifs []int // per open if block, the endif tags to add (see tag)
}

// tag rewrites one {{ ... }} or {% ... %} tag.
func (h *chatHoister) tag(tag string) (string, error) {
	open, body, close := tag[:2], tag[2:len(tag)-2], tag[len(tag)-2:]
	mod := ""
	if len(body) > 0 && (body[0] == '-' || body[0] == '+') {
		mod, body = body[:1], body[1:]
	}
	kw := ""
	if open == "{%" {
		kw = chatFirstWord(body)
	}
	body, renamed := chatRenameNone(body)
	body, grouped := chatGroupIn(body, kw)
	renamed = renamed || grouped
	hoisted, body, err := h.expr(body)
	if err != nil {
		return "", err
	}

	// An elif whose condition needs hoisting becomes else + set + if, and
	// its if block then needs one more endif.
	var b strings.Builder
	switch kw {
	case "if":
		h.ifs = append(h.ifs, 0)
	case "endif":
		if n := len(h.ifs); n > 0 {
			for range h.ifs[n-1] {
				b.WriteString("{%" + mod + " endif %}")
			}
			h.ifs = h.ifs[:n-1]
		}
	case "elif":
		if len(hoisted) > 0 {
			if len(h.ifs) == 0 {
				return "", errors.New("syntax error: elif outside an if block")
			}
			h.ifs[len(h.ifs)-1]++
			b.WriteString("{%" + mod + " else %}")
			mod = ""
			body = strings.Replace(body, "elif", "if", 1)
		}
	}
	if len(hoisted) == 0 {
		if b.Len() == 0 && !renamed {
			return tag, nil
		}
		b.WriteString(open + mod + body + close)
		return b.String(), nil
	}
	switch kw {
	case "else", "macro", "call", "filter", "endfor", "endif":
		return "", fmt.Errorf("syntax error: a conditional expression nested in parentheses or arguments is not supported in a %q tag", kw)
	}
	// The inserted set tags inherit the original tag's left whitespace
	// control. In front of {{ they must not be left-stripped (lstrip_blocks
	// applies to block tags only), hence "+"; in front of a block tag they are
	// stripped exactly as that tag would have been.
	setMod := mod
	if setMod == "" && open == "{{" {
		setMod = "+"
	}
	for _, s := range hoisted {
		b.WriteString("{%" + setMod + " " + s + " %}")
	}
	b.WriteString(open + mod + body + close)
	return b.String(), nil
}

func chatFirstWord(s string) string {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	return s[:i]
}

// chatRenameNone replaces the literal none (or None) with the name
// chatNoneName. gonja's none is the same nil as an undefined value, while
// Jinja tells them apart ("x is none" is false for an undefined x); the name
// is bound to chatNone, a value only None has. Test names (is none, is not
// none) and attribute names (.none) stay.
func chatRenameNone(s string) (string, bool) {
	toks := chatLexExpr(s)
	var b strings.Builder
	last := 0
	for i, t := range toks {
		if t.text != "none" && t.text != "None" {
			continue
		}
		if i > 0 && (toks[i-1].text == "is" || toks[i-1].text == "." ||
			toks[i-1].text == "not" && i > 1 && toks[i-2].text == "is") {
			continue
		}
		b.WriteString(s[last:t.start])
		b.WriteString(chatNoneName)
		last = t.end
	}
	if last == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// chatGroupIn puts the right operand of "in" and "not in" in parentheses
// when it holds a filter, an operator or a test at its own level. gonja
// parses "x in y" as the test "in" whose argument is y alone, so a filter
// after y applied to the result of the test ('a' in ['a']|list was the
// list of the boolean, []) and math after it failed to parse ('a' in
// 'a' + 'b'). In Jinja filters and tests bind tighter than any operator,
// and the operand of in is a sum: everything up to the next comparison,
// in, not, and, or, if, else, comma, colon or closing bracket. The loop
// variable's "in" of a for tag and the test form "is in" stay.
func chatGroupIn(s, kw string) (string, bool) {
	end := len(s)
	if end > 0 && (s[end-1] == '-' || s[end-1] == '+') {
		end-- // the right whitespace control of the tag
	}
	toks := chatLexExpr(s[:end])
	name := func(i int) string {
		if i < 0 || i >= len(toks) || i > 0 && toks[i-1].text == "." {
			return ""
		}
		return toks[i].text
	}
	type span struct{ start, end int }
	var groups []span
	forIn := kw == "for"
	for i := range toks {
		if name(i) != "in" || name(i-1) == "is" || name(i-1) == "not" && name(i-2) == "is" {
			continue
		}
		if forIn && toks[i].depth == 0 {
			forIn = false // for x in items: the iterable
			continue
		}
		d := toks[i].depth
		last, complex := i, false
		for j := i + 1; j < len(toks); j++ {
			t := toks[j]
			if t.depth < d || t.depth == d && (t.text == "," || t.text == ":" || t.text == ")" || t.text == "]" || t.text == "}") {
				break
			}
			if t.depth == d {
				stop := false
				switch name(j) {
				case "=", "!", "<", ">", "and", "or", "if", "else", "in", "recursive":
					stop = true
				case "not":
					stop = name(j-1) != "is"
				case "|", "+", "-", "~", "*", "/", "%", "is":
					complex = j > i+1 || name(j) != "-" && name(j) != "+"
				}
				if stop {
					break
				}
			}
			last = j
		}
		if complex && last > i {
			groups = append(groups, span{toks[i+1].start, toks[last].end})
		}
	}
	if len(groups) == 0 {
		return s, false
	}
	// Operands do not overlap: each ends before the next in.
	var b strings.Builder
	prev := 0
	for _, g := range groups {
		b.WriteString(s[prev:g.start] + "(" + s[g.start:g.end] + ")")
		prev = g.end
	}
	b.WriteString(s[prev:])
	return b.String(), true
}

// chatExprTok is a token of a tag's content: its byte span, its bracket
// depth before it, and its text when it is a name or punctuation.
type chatExprTok struct {
	start, end, depth int
	text              string
}

func chatLexExpr(s string) []chatExprTok {
	var toks []chatExprTok
	depth := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := chatStringEnd(s, i)
			toks = append(toks, chatExprTok{i, j, depth, ""})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, chatExprTok{i, j, depth, s[i:j]})
			i = j
		case c == '(' || c == '[' || c == '{':
			toks = append(toks, chatExprTok{i, i + 1, depth, s[i : i+1]})
			depth++
			i++
		case c == ')' || c == ']' || c == '}':
			toks = append(toks, chatExprTok{i, i + 1, depth, s[i : i+1]})
			if depth > 0 {
				depth--
			}
			i++
		default:
			toks = append(toks, chatExprTok{i, i + 1, depth, s[i : i+1]})
			i++
		}
	}
	return toks
}

// expr hoists the outermost nested conditional of s, repeatedly, and returns
// the set statements to run first (inner ones before the ones using them).
func (h *chatHoister) expr(s string) (hoisted []string, rest string, err error) {
	for guard := 0; guard < 1000; guard++ {
		toks := chatLexExpr(s)
		at := -1
		for i, t := range toks {
			if t.text == "if" && t.depth >= 1 && (at < 0 || t.depth < toks[at].depth) {
				at = i
			}
		}
		if at < 0 {
			return hoisted, s, nil
		}
		d := toks[at].depth
		// The element holding the conditional: between the enclosing bracket
		// or a ',' or ':' at depth d, and the next such token.
		first := at
		for first > 0 {
			p := toks[first-1]
			if p.depth == d-1 || p.depth == d && (p.text == "," || p.text == ":") {
				break
			}
			first--
		}
		last := at
		hasElse := false
		for last+1 < len(toks) {
			n := toks[last+1]
			if n.depth == d && (n.text == "," || n.text == ":" || n.text == ")" || n.text == "]" || n.text == "}") {
				break
			}
			if n.depth == d && n.text == "else" {
				hasElse = true
			}
			last++
		}
		if first == at || last == at {
			return nil, "", errors.New("syntax error: incomplete conditional expression")
		}
		elem := strings.TrimSpace(s[toks[first].start:toks[last].end])
		if !hasElse {
			elem += " else moco_undefined" // Jinja yields undefined when there is no else
		}
		name := fmt.Sprintf("moco_cond_%d", h.n)
		h.n++
		inner, set, err := h.expr("set " + name + " = " + elem)
		if err != nil {
			return nil, "", err
		}
		hoisted = append(hoisted, inner...)
		hoisted = append(hoisted, set)
		s = s[:toks[first].start] + " " + name + " " + s[toks[last].end:]
	}
	return nil, "", errors.New("syntax error: conditional expressions nested too deeply")
}
