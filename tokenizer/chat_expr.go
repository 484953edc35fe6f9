package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads the expressions of a tag with Jinja's own grammar
// (jinja2/parser.py) and writes them back for gonja, whose grammar differs:
//
//   - a test binds like a filter, to the operand just before "is" (Jinja:
//     1 + 2 is odd is 1 + (2 is odd), a == b is defined is
//     a == (b is defined)); gonja applies it to the whole comparison. A test
//     whose operand is not a whole expression is put in parentheses.
//   - comparisons chain as in Python (a < b < c is a < b and b < c; in and
//     not in take part); gonja nests them left to right. A chain of two or
//     more becomes "(a < b) and (b < c)".
//   - the right operand of in and not in is a sum with its filters
//     ('a' in ['a']|list); gonja takes only a primary and applies the
//     filter to the result. A right operand that is not a primary is put in
//     parentheses.
//   - "not not x" is Not(Not(x)); gonja takes one not. The inner one is put
//     in parentheses.
//   - a conditional expression (x if c else y) may stand anywhere; gonja
//     parses it only at the top of {{ ... }} (and of set, with an else).
//     Elsewhere it becomes ((c) and [x] or [y])[0], which gonja evaluates
//     lazily as Jinja does: x only if c holds, y only if not (y is
//     undefined without else). The one at the top of {{ ... }} stays.
//   - string literals are written in a form gonja reads back exactly:
//     gonja's lexer ends 'a\\' at the second quote, keeps only \' and \"
//     of Python's escapes and fails on others ('\d'); adjacent literals
//     ('a' 'b') are one string.
//
// A tag whose expression does not parse is left as it is, for gonja to
// accept or report.

// chatJTok is a token of a tag's body: kind 'n' name, 's' string, 'i'
// integer, 'f' float, 'o' operator or bracket.
type chatJTok struct {
	kind       byte
	text       string
	start, end int
}

// chatJOps are Jinja's operators, longest first.
var chatJOps = []string{"**", "//", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"}

// chatJLex splits a tag's body into tokens; ok is false for what Jinja's
// lexer would refuse (an unclosed string, a character outside its syntax).
func chatJLex(s string) (toks []chatJTok, ok bool) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isAlpha := func(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for i := 0; i < len(s); {
		c := s[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '\'' || c == '"':
			i++
			for i < len(s) && s[i] != c {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return nil, false
			}
			i++
			toks = append(toks, chatJTok{'s', s[start:i], start, i})
		case isAlpha(c):
			for i < len(s) && (isAlpha(s[i]) || isDigit(s[i])) {
				i++
			}
			toks = append(toks, chatJTok{'n', s[start:i], start, i})
		case isDigit(c):
			kind := byte('i')
			afterDot := len(toks) > 0 && toks[len(toks)-1].text == "." && toks[len(toks)-1].end == start
			switch {
			case afterDot:
				for i < len(s) && isDigit(s[i]) {
					i++
				}
			case c == '0' && i+1 < len(s) && strings.IndexByte("bBoOxX", s[i+1]) >= 0:
				i += 2
				for i < len(s) && (isDigit(s[i]) || isAlpha(s[i])) {
					i++
				}
			default:
				digits := func() {
					for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
						i++
					}
				}
				digits()
				if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
					kind = 'f'
					i++
					digits()
				}
				if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
					j := i + 1
					if j < len(s) && (s[j] == '+' || s[j] == '-') {
						j++
					}
					if j < len(s) && isDigit(s[j]) {
						kind = 'f'
						i = j
						digits()
					}
				}
			}
			toks = append(toks, chatJTok{kind, s[start:i], start, i})
		default:
			op := ""
			for _, o := range chatJOps {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, false
			}
			i += len(op)
			toks = append(toks, chatJTok{'o', op, start, i})
		}
	}
	return toks, true
}

// Kinds of chatJNode.
const (
	chatJOther = iota // written as in the source, its kids rewritten
	chatJCond         // kids: value, condition[, alternative]
	chatJNot          // kids: operand
	chatJCmp          // kids: operands; ops between them
	chatJTest         // kids: operand, arguments
)

// chatJNode is an expression: its span in the tag's body and the
// subexpressions that the rewriting may change.
type chatJNode struct {
	kind       int
	start, end int
	kids       []*chatJNode
	slots      []bool   // per kid: where gonja parses a whole expression
	ops        []string // chatJCmp: the operators
	primary    bool     // a literal, name, bracket or postfix chain
	tuple      bool     // a tuple (parseTuple)
	str        *string  // a string literal's value
	parens     bool     // (x) or a tuple in parentheses
	parenBase  bool     // .name after (x), which gonja cannot call: see copy
}

// chatMaxExprDepth bounds the nesting the parser follows (a deeper
// expression is left to gonja).
const chatMaxExprDepth = 200

type chatJParser struct {
	toks  []chatJTok
	pos   int
	depth int
	bad   bool
}

func (p *chatJParser) cur() *chatJTok {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *chatJParser) isName(v string) bool {
	t := p.cur()
	return t != nil && t.kind == 'n' && t.text == v
}

func (p *chatJParser) isOp(v string) bool {
	t := p.cur()
	return t != nil && t.kind == 'o' && t.text == v
}

// lastEnd is the end of the last token read.
func (p *chatJParser) lastEnd() int {
	if p.pos == 0 {
		return 0
	}
	return p.toks[p.pos-1].end
}

// fail marks the expression unparsable and returns a placeholder.
func (p *chatJParser) fail() *chatJNode {
	p.bad = true
	p.pos = len(p.toks)
	return &chatJNode{}
}

func (p *chatJParser) expect(op string) {
	if !p.isOp(op) {
		p.fail()
		return
	}
	p.pos++
}

func (p *chatJParser) node(kind int, start int, kids []*chatJNode, slot bool) *chatJNode {
	slots := make([]bool, len(kids))
	for i := range slots {
		slots[i] = slot
	}
	return &chatJNode{kind: kind, start: start, end: p.lastEnd(), kids: kids, slots: slots}
}

// enter guards the recursion; leave must follow.
func (p *chatJParser) enter() bool {
	p.depth++
	if p.depth > chatMaxExprDepth {
		p.fail()
		return false
	}
	return !p.bad
}

func (p *chatJParser) leave() { p.depth-- }

func (p *chatJParser) start() int {
	if t := p.cur(); t != nil {
		return t.start
	}
	return p.lastEnd()
}

// parseTuple is Jinja's parse_tuple: expressions separated by commas.
func (p *chatJParser) parseTuple(withCond bool, explicit bool) *chatJNode {
	start := p.start()
	var items []*chatJNode
	isTuple := false
	for {
		if len(items) > 0 {
			p.expect(",")
		}
		if p.bad || p.tupleEnd() {
			break
		}
		items = append(items, p.parseExpr(withCond))
		if !p.isOp(",") {
			break
		}
		isTuple = true
	}
	if p.bad {
		return p.fail()
	}
	if !isTuple {
		if len(items) == 1 {
			return items[0]
		}
		if !explicit {
			return p.fail()
		}
	}
	n := p.node(chatJOther, start, items, true)
	n.primary, n.tuple = true, true
	if len(items) == 0 {
		n.end = n.start // ()
	}
	return n
}

func (p *chatJParser) tupleEnd() bool {
	t := p.cur()
	return t == nil || t.kind == 'o' && t.text == ")" || t.kind == 'n' && (t.text == "if" || t.text == "recursive")
}

func (p *chatJParser) parseExpr(withCond bool) *chatJNode {
	if !p.enter() {
		return p.fail()
	}
	defer p.leave()
	if !withCond {
		return p.parseOr()
	}
	start := p.start()
	e := p.parseOr()
	for !p.bad && p.isName("if") {
		p.pos++
		c := p.parseOr()
		kids := []*chatJNode{e, c}
		if p.isName("else") {
			p.pos++
			kids = append(kids, p.parseExpr(true))
		}
		e = p.node(chatJCond, start, kids, true)
	}
	return e
}

func (p *chatJParser) parseOr() *chatJNode {
	start := p.start()
	e := p.parseAnd()
	for !p.bad && p.isName("or") {
		p.pos++
		e = p.node(chatJOther, start, []*chatJNode{e, p.parseAnd()}, true)
	}
	return e
}

func (p *chatJParser) parseAnd() *chatJNode {
	start := p.start()
	e := p.parseNot()
	for !p.bad && p.isName("and") {
		p.pos++
		e = p.node(chatJOther, start, []*chatJNode{e, p.parseNot()}, true)
	}
	return e
}

func (p *chatJParser) parseNot() *chatJNode {
	if !p.enter() {
		return p.fail()
	}
	defer p.leave()
	if p.isName("not") {
		start := p.start()
		p.pos++
		return p.node(chatJNot, start, []*chatJNode{p.parseNot()}, true)
	}
	return p.parseCompare()
}

func (p *chatJParser) parseCompare() *chatJNode {
	start := p.start()
	e := p.parseMath1()
	kids := []*chatJNode{e}
	var ops []string
	for !p.bad {
		t := p.cur()
		op := ""
		switch {
		case t == nil:
		case t.kind == 'o' && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
			op = t.text
			p.pos++
		case t.kind == 'n' && t.text == "in":
			op = "in"
			p.pos++
		case t.kind == 'n' && t.text == "not" && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == 'n' && p.toks[p.pos+1].text == "in":
			op = "not in"
			p.pos += 2
		}
		if op == "" {
			break
		}
		ops = append(ops, op)
		kids = append(kids, p.parseMath1())
	}
	if len(ops) == 0 {
		return e
	}
	n := p.node(chatJCmp, start, kids, false)
	n.ops = ops
	return n
}

// parseBinary parses left-associative operators over next.
func (p *chatJParser) parseBinary(next func() *chatJNode, ops ...string) *chatJNode {
	start := p.start()
	e := next()
	for !p.bad {
		t := p.cur()
		found := false
		for _, op := range ops {
			found = found || t != nil && t.kind == 'o' && t.text == op
		}
		if !found {
			break
		}
		p.pos++
		e = p.node(chatJOther, start, []*chatJNode{e, next()}, false)
	}
	return e
}

func (p *chatJParser) parseMath1() *chatJNode {
	return p.parseBinary(p.parseConcat, "+", "-")
}

func (p *chatJParser) parseConcat() *chatJNode {
	return p.parseBinary(p.parseMath2, "~")
}

func (p *chatJParser) parseMath2() *chatJNode {
	return p.parseBinary(p.parsePow, "*", "/", "//", "%")
}

func (p *chatJParser) parsePow() *chatJNode {
	return p.parseBinary(func() *chatJNode { return p.parseUnary(true) }, "**")
}

func (p *chatJParser) parseUnary(withFilter bool) *chatJNode {
	if !p.enter() {
		return p.fail()
	}
	defer p.leave()
	start := p.start()
	var n *chatJNode
	if p.isOp("-") || p.isOp("+") {
		p.pos++
		n = p.node(chatJOther, start, []*chatJNode{p.parseUnary(false)}, false)
	} else {
		n = p.parsePrimary()
	}
	n = p.parsePostfix(n)
	if withFilter {
		n = p.parseFilterExpr(n)
	}
	return n
}

func (p *chatJParser) parsePrimary() *chatJNode {
	t := p.cur()
	if t == nil {
		return p.fail()
	}
	start := t.start
	leaf := func() *chatJNode {
		p.pos++
		return &chatJNode{kind: chatJOther, start: t.start, end: t.end, primary: true}
	}
	switch {
	case t.kind == 'n', t.kind == 'i', t.kind == 'f':
		return leaf()
	case t.kind == 's':
		// Adjacent literals are one string.
		var value strings.Builder
		for c := p.cur(); c != nil && c.kind == 's'; c = p.cur() {
			v, ok := chatPyUnescape(c.text[1 : len(c.text)-1])
			if !ok {
				return p.fail()
			}
			value.WriteString(v)
			p.pos++
		}
		n := p.node(chatJOther, start, nil, true)
		n.primary = true
		v := value.String()
		n.str = &v
		return n
	case t.kind == 'o' && t.text == "(":
		p.pos++
		inner := p.parseTuple(true, true)
		p.expect(")")
		n := p.node(chatJOther, start, []*chatJNode{inner}, true)
		n.primary = true
		n.parens = true
		return n
	case t.kind == 'o' && t.text == "[":
		p.pos++
		var items []*chatJNode
		for !p.bad && !p.isOp("]") {
			if len(items) > 0 {
				p.expect(",")
				if p.isOp("]") {
					break
				}
			}
			items = append(items, p.parseExpr(true))
		}
		p.expect("]")
		n := p.node(chatJOther, start, items, true)
		n.primary = true
		return n
	case t.kind == 'o' && t.text == "{":
		p.pos++
		var items []*chatJNode
		for !p.bad && !p.isOp("}") {
			if len(items) > 0 {
				p.expect(",")
				if p.isOp("}") {
					break
				}
			}
			items = append(items, p.parseExpr(true))
			p.expect(":")
			items = append(items, p.parseExpr(true))
		}
		p.expect("}")
		n := p.node(chatJOther, start, items, true)
		n.primary = true
		return n
	}
	return p.fail()
}

func (p *chatJParser) parsePostfix(n *chatJNode) *chatJNode {
	for !p.bad {
		switch {
		case p.isOp("."):
			p.pos++
			if t := p.cur(); t == nil || t.kind != 'n' && t.kind != 'i' {
				return p.fail()
			}
			p.pos++
			base := n
			n = p.wrap(n, nil)
			n.parenBase = base.parens
		case p.isOp("["):
			p.pos++
			var args []*chatJNode
			for !p.bad && !p.isOp("]") {
				if len(args) > 0 {
					p.expect(",")
				}
				args = append(args, p.parseSubscribed()...)
			}
			p.expect("]")
			n = p.wrap(n, args)
		case p.isOp("("):
			n = p.wrap(n, p.parseCallArgs())
		default:
			return n
		}
	}
	return n
}

// wrap makes a postfix or filter node of base n with arguments args.
func (p *chatJParser) wrap(n *chatJNode, args []*chatJNode) *chatJNode {
	kids := append([]*chatJNode{n}, args...)
	w := p.node(chatJOther, n.start, kids, true)
	w.slots[0] = false
	w.primary = n.primary
	return w
}

// parseSubscribed reads x, or a slice a:b:c (each part optional).
func (p *chatJParser) parseSubscribed() []*chatJNode {
	var parts []*chatJNode
	if !p.isOp(":") {
		parts = append(parts, p.parseExpr(true))
		if !p.isOp(":") {
			return parts
		}
	}
	for range 2 {
		if !p.isOp(":") {
			break
		}
		p.pos++
		if !p.isOp(":") && !p.isOp("]") && !p.isOp(",") {
			parts = append(parts, p.parseExpr(true))
		}
	}
	return parts
}

// parseCallArgs reads (a, b, k=v, *args, **kwargs) and returns the values.
func (p *chatJParser) parseCallArgs() []*chatJNode {
	p.expect("(")
	var args []*chatJNode
	first := true
	for !p.bad && !p.isOp(")") {
		if !first {
			p.expect(",")
			if p.isOp(")") {
				break
			}
		}
		first = false
		switch {
		case p.isOp("*") || p.isOp("**"):
			p.pos++
		case p.cur() != nil && p.cur().kind == 'n' && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == 'o' && p.toks[p.pos+1].text == "=":
			p.pos += 2
		}
		args = append(args, p.parseExpr(true))
	}
	p.expect(")")
	return args
}

func (p *chatJParser) parseFilterExpr(n *chatJNode) *chatJNode {
	for !p.bad {
		switch {
		case p.isOp("|"):
			p.pos++
			p.name()
			var args []*chatJNode
			if p.isOp("(") {
				args = p.parseCallArgs()
			}
			n = p.wrap(n, args)
			n.primary = false
		case p.isName("is"):
			n = p.parseTest(n)
		case p.isOp("("):
			n = p.wrap(n, p.parseCallArgs())
		default:
			return n
		}
	}
	return n
}

// name reads a filter or test name (dotted names included).
func (p *chatJParser) name() {
	for {
		if t := p.cur(); t == nil || t.kind != 'n' {
			p.fail()
			return
		}
		p.pos++
		if !p.isOp(".") {
			return
		}
		p.pos++
	}
}

func (p *chatJParser) parseTest(n *chatJNode) *chatJNode {
	p.pos++ // is
	if p.isName("not") {
		p.pos++
	}
	p.name()
	var args []*chatJNode
	t := p.cur()
	switch {
	case p.bad:
	case p.isOp("("):
		args = p.parseCallArgs()
	case t != nil && (t.kind == 's' || t.kind == 'i' || t.kind == 'f' || t.kind == 'o' && (t.text == "[" || t.text == "{") ||
		t.kind == 'n' && t.text != "else" && t.text != "or" && t.text != "and"):
		if t.kind == 'n' && t.text == "is" {
			return p.fail()
		}
		args = []*chatJNode{p.parsePostfix(p.parsePrimary())}
	}
	kids := append([]*chatJNode{n}, args...)
	out := p.node(chatJTest, n.start, kids, true)
	out.slots[0] = false
	return out
}

// chatJEmitter writes nodes back as gonja source.
type chatJEmitter struct {
	src string
}

// emit writes n; slot tells whether gonja reads a whole expression there.
func (w *chatJEmitter) emit(n *chatJNode, slot bool) string {
	switch n.kind {
	case chatJCond:
		// ((c) and [x] or [y])[0]: x only if c holds, y (undefined without
		// else) only if it does not.
		alt := "moco_undefined"
		if len(n.kids) > 2 {
			alt = w.emit(n.kids[2], true)
		}
		return "((" + w.emit(n.kids[1], true) + ") and [" + w.emit(n.kids[0], true) + "] or [" + alt + "])[0]"
	case chatJNot:
		if n.kids[0].kind == chatJNot {
			return w.src[n.start:n.kids[0].start] + "(" + w.emit(n.kids[0], true) + ")" + w.src[n.kids[0].end:n.end]
		}
	case chatJCmp:
		operand := func(i int) string {
			s := w.emit(n.kids[i], false)
			if i > 0 && (n.ops[i-1] == "in" || n.ops[i-1] == "not in") && !n.kids[i].primary {
				s = "(" + s + ")"
			}
			return s
		}
		if len(n.ops) == 1 {
			return w.src[n.start:n.kids[0].start] + operand(0) + w.src[n.kids[0].end:n.kids[1].start] + operand(1) + w.src[n.kids[1].end:n.end]
		}
		parts := make([]string, len(n.ops))
		for i, op := range n.ops {
			parts[i] = "(" + operand(i) + " " + op + " " + operand(i+1) + ")"
		}
		return "(" + strings.Join(parts, " and ") + ")"
	}
	if n.str != nil {
		return chatGonjaString(*n.str)
	}
	s := w.copy(n)
	if n.kind == chatJTest && !slot {
		s = "(" + s + ")"
	}
	return s
}

// copy writes n's source with its kids rewritten.
func (w *chatJEmitter) copy(n *chatJNode) string {
	var b strings.Builder
	at := n.start
	for i, k := range n.kids {
		b.WriteString(w.src[at:k.start])
		if i == 0 && n.parenBase {
			// gonja calls no method of (x): (x).m() fails. [x][0].m() is
			// the same call.
			b.WriteString("[" + w.emit(k, true) + "][0]")
		} else {
			b.WriteString(w.emit(k, n.slots[i]))
		}
		at = k.end
	}
	b.WriteString(w.src[at:n.end])
	return b.String()
}

// chatRegroup rewrites the expressions of one tag's body (without its
// delimiters and whitespace control) for gonja; open is "{{" or "{%" and
// kw the statement's name. It returns body unchanged when the tag has no
// expression it knows or the expression does not parse.
func chatRegroup(body, open, kw string) string {
	toks, ok := chatJLex(body)
	if !ok || len(toks) == 0 {
		return body
	}
	p := &chatJParser{toks: toks}
	w := &chatJEmitter{src: body}
	var out strings.Builder
	at := 0
	// expr parses an expression from the current token and writes it.
	expr := func(withCond, topCond bool) {
		e := p.parseTuple(withCond, false)
		if p.bad {
			return
		}
		out.WriteString(body[at:e.start])
		if topCond && e.kind == chatJCond {
			// gonja reads this one itself, lazily.
			out.WriteString(w.emit(e.kids[0], true) + " if " + w.emit(e.kids[1], true))
			if len(e.kids) > 2 {
				out.WriteString(" else " + w.emit(e.kids[2], true))
			}
		} else {
			out.WriteString(w.emit(e, true))
		}
		at = e.end
	}
	switch {
	case open == "{{":
		expr(true, true)
	case kw == "if" || kw == "elif":
		p.pos = 1
		expr(false, false)
	case kw == "do":
		p.pos = 1
		expr(true, false)
	case kw == "set":
		for p.pos < len(toks) && !(toks[p.pos].kind == 'o' && toks[p.pos].text == "=") {
			p.pos++
		}
		if p.pos == len(toks) {
			return body // a block set
		}
		p.pos++
		expr(true, false)
	case kw == "for":
		for p.pos < len(toks) && !(toks[p.pos].kind == 'n' && toks[p.pos].text == "in") {
			p.pos++
		}
		if p.pos == len(toks) {
			return body
		}
		p.pos++
		expr(false, false)
		if !p.bad && p.isName("if") {
			p.pos++
			expr(true, false)
		}
		if p.isName("recursive") {
			p.pos++
		}
	default:
		return body
	}
	if p.bad || p.pos != len(toks) {
		return body
	}
	out.WriteString(body[at:])
	return out.String()
}

// chatPyUnescape decodes the inside of a Jinja string literal as Jinja does
// (Python's unicode-escape after normalizing line breaks); ok is false for
// an escape it does not know (\N{...}).
func chatPyUnescape(raw string) (string, bool) {
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\r", "\n")
	if !strings.Contains(raw, "\\") {
		return raw, true
	}
	var b strings.Builder
	hex := func(s string) (rune, bool) {
		v, err := strconv.ParseUint(s, 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 == len(raw) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := raw[i]; e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(raw) && j < i+3 && raw[j] >= '0' && raw[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(raw[i:j], 8, 32)
			b.WriteRune(rune(v))
			i = j - 1
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n >= len(raw) {
				return "", false
			}
			r, ok := hex(raw[i+1 : i+1+n])
			if !ok || r > utf8.MaxRune {
				return "", false
			}
			b.WriteRune(r)
			i += n
		case 'N':
			return "", false
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), true
}

// chatGonjaString writes s as a literal that gonja's lexer and parser read
// back as s: double quotes, and backslash and double quote as \x escapes
// (no backslash may come before the closing quote).
func chatGonjaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			// U+FFFD ends gonja's input; a byte that is no UTF-8 stays that byte.
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			} else {
				b.WriteString(`\ufffd`)
			}
		case r == '\\':
			b.WriteString(`\x5c`)
		case r == '"':
			b.WriteString(`\x22`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
