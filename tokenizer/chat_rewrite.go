package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// chatRewrite adapts a chat template's source to gonja where gonja's reading
// of Jinja differs, so that gonja renders what Jinja would:
//
//   - expressions are read with Jinja's grammar and written back with the
//     parentheses gonja needs (chatRegroup, chat_expr.go): tests bind to
//     their operand, comparisons chain, the right operand of in is a sum,
//     and a conditional expression nested anywhere is evaluated lazily.
//   - lstrip_blocks strips spaces before a block or comment tag only when
//     they start the line; gonja also strips them after another tag on the
//     same line ("{{ x }} {% endfor %}"), so such tags get "+".
//   - none becomes a name bound to a value distinct from undefined (see
//     chatRenameNone).
//   - a line break between "{%" and the statement name becomes a space.
//
// It also reports what would make gonja loop forever (an unclosed tag, a
// U+FFFD outside strings) as syntax errors. A template needing none of this is
// returned unchanged.
func chatRewrite(src string) (string, error) {
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
				out.WriteString(chatRawBlock(tag, src[end:end+loc[0]], src[end+loc[0]:end+loc[1]]))
				changed = true
				i = end + loc[1]
				continue
			}
			rewritten := chatTag(tag)
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

// chatRawBlock writes {% raw %}content{% endraw %} as Jinja renders it, as
// an if block printing the content: gonja removes the line break after
// {% raw %}, which trim_blocks leaves in Jinja, and ignores the whitespace
// control of the tags. The if tags keep the effects of the raw tags on the
// text around them (lstrip_blocks, trim_blocks, "-").
func chatRawBlock(open, content, close string) string {
	mod := func(tag string, left bool) byte {
		i := 2
		if !left {
			i = len(tag) - 3
		}
		if c := tag[i]; c == '-' || c == '+' {
			return c
		}
		return 0
	}
	content = strings.ReplaceAll(strings.ReplaceAll(content, "\r\n", "\n"), "\r", "\n")
	if mod(open, false) == '-' {
		content = strings.TrimLeft(content, " \t\n\v\f")
	}
	switch mod(close, true) {
	case '-':
		content = strings.TrimRight(content, " \t\n\v\f")
	case 0:
		// lstrip_blocks: spaces before {% endraw %} at the start of a line.
		if k := strings.LastIndexByte(content, '\n'); k >= 0 && strings.Trim(content[k+1:], " \t") == "" {
			content = content[:k+1]
		}
	}
	head := "{%"
	if m := mod(open, true); m != 0 {
		head += string(m)
	}
	tail := " endif %}"
	if mod(close, false) == '-' {
		tail = " endif -%}"
	}
	return head + " if true %}{{ " + chatGonjaString(content) + " }}{%" + tail
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

// chatTag rewrites one {{ ... }} or {% ... %} tag.
func chatTag(tag string) string {
	open, body, close := tag[:2], tag[2:len(tag)-2], tag[len(tag)-2:]
	mod, end := "", ""
	if len(body) > 0 && (body[0] == '-' || body[0] == '+') {
		mod, body = body[:1], body[1:]
	}
	if n := len(body); n > 0 && (body[n-1] == '-' || body[n-1] == '+') {
		body, end = body[:n-1], body[n-1:]
	}
	kw := ""
	if open == "{%" {
		kw = chatFirstWord(body)
	}
	body, renamed := chatRenameNone(body)
	regrouped := chatRegroup(body, open, kw)
	if !renamed && regrouped == body {
		return tag
	}
	return open + mod + regrouped + end + close
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
