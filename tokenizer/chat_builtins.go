package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// This file holds the gonja environment chat templates need beyond stock
// gonja: transformers' tojson, Jinja-exact filters and tests, dict methods
// that keep key order, {% generation %}, and bounded macro recursion.
// More filters are in chat_filters.go, Python's string methods in
// chat_strings.go, strftime in chat_strftime.go.

// chatArg returns the argument at position pos or keyword name.
func chatArg(va *exec.VarArgs, pos int, name string) (*exec.Value, bool) {
	if pos < len(va.Args) {
		return va.Args[pos], true
	}
	if v, ok := va.KwArgs[name]; ok {
		return v, true
	}
	return nil, false
}

// chatCheckArgs rejects more positional arguments than max or unknown keywords.
func chatCheckArgs(va *exec.VarArgs, what string, max int, names ...string) error {
	if len(va.Args) > max {
		return fmt.Errorf("%s takes at most %d positional arguments (%d given)", what, max, len(va.Args))
	}
	for k := range va.KwArgs {
		known := false
		for _, n := range names {
			known = known || n == k
		}
		if !known {
			return fmt.Errorf("%s got an unexpected keyword argument %q", what, k)
		}
	}
	return nil
}

func chatFilters() *exec.FilterSet {
	fs := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
	set := func(name string, fn exec.FilterFunction) {
		if fs.Exists(name) {
			_ = fs.Replace(name, fn)
		} else {
			_ = fs.Register(name, fn)
		}
	}
	set("tojson", chatFilterToJSON)
	set("trim", chatFilterTrim)
	set("items", chatFilterItems)
	set("reverse", chatFilterReverse)
	set("dictsort", chatFilterDictSort)
	set("round", chatFilterRound)
	set("title", chatStrFilter("title", chatJinjaTitle))
	set("capitalize", chatStrFilter("capitalize", chatCapitalize))
	set("upper", chatStrFilter("upper", chatUpper))
	set("lower", chatStrFilter("lower", chatLower))
	set("length", chatFilterLength)
	set("count", chatFilterLength)
	set("list", chatFilterList)
	set("first", chatFilterFirst)
	set("last", chatFilterLast)
	set("join", chatFilterJoin)
	set("string", chatFilterString)
	set("pprint", chatFilterPprint)
	set("int", chatFilterInt)
	set("float", chatFilterFloat)
	set("abs", chatFilterAbs)
	set("unique", chatFilterUnique)
	set("min", chatMinMax("min", false))
	set("max", chatMinMax("max", true))
	set("sort", chatFilterSort)
	set("format", chatFilterFormat)
	set("center", chatFilterCenter)
	set("wordcount", chatFilterWordcount)
	set("truncate", chatFilterTruncate)
	set("safe", chatFilterSafe)
	set("escape", chatFilterEscape)
	set("e", chatFilterEscape)
	set("forceescape", chatFilterForceEscape)
	for _, name := range chatFilterNames {
		if fn, ok := fs.Get(name); ok {
			_ = fs.Replace(name, chatGuardFilter(name, fn))
		}
	}
	return fs
}

// chatFilterNames are gonja's filters (with the replacements above), all
// wrapped with the render budget.
var chatFilterNames = []string{"abs", "attr", "batch", "capitalize", "center", "default", "d", "dictsort", "e", "escape",
	"filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "items", "last",
	"length", "count", "list", "lower", "map", "max", "min", "pprint", "random", "rejectattr", "reject", "replace",
	"reverse", "round", "safe", "selectattr", "select", "slice", "sort", "string", "striptags", "sum", "title",
	"tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr"}

// chatTests are Jinja's tests (jinja2/tests.py) on Python's values: a
// boolean is a number but no integer, a string and a dict are sequences,
// odd, even and divisibleby take Python's modulo, the comparisons Python's
// ordering (an undefined value fails them, as Jinja's Undefined does),
// "true" and "false" hold only for the booleans (gonja's "false" held for
// anything falsy, even undefined) and None is its own value (chatNone).
func chatTests() *exec.TestSet {
	ts := exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests)
	set := func(fn func(in *exec.Value, args []*exec.Value) (bool, error), names ...string) {
		for _, name := range names {
			f := func(_ *exec.Context, in *exec.Value, va *exec.VarArgs) (bool, error) {
				if in != nil && in.IsError() {
					return false, in // gonja tests the failed value; Python never gets there
				}
				if len(va.KwArgs) > 0 {
					return false, fmt.Errorf("the test %s takes no keyword arguments", name)
				}
				return fn(in, va.Args)
			}
			if ts.Exists(name) {
				_ = ts.Replace(name, f)
			} else {
				_ = ts.Register(name, f)
			}
		}
	}
	arity := func(n int, fn func(in *exec.Value, args []*exec.Value) (bool, error)) func(*exec.Value, []*exec.Value) (bool, error) {
		return func(in *exec.Value, args []*exec.Value) (bool, error) {
			if len(args) != n {
				return false, fmt.Errorf("TypeError: the test takes %d argument(s), %d given", n, len(args))
			}
			return fn(in, args)
		}
	}
	is := func(fn func(in *exec.Value) bool) func(*exec.Value, []*exec.Value) (bool, error) {
		return arity(0, func(in *exec.Value, _ []*exec.Value) (bool, error) { return fn(in), nil })
	}
	mod := func(in, n *exec.Value, want int) (bool, error) {
		m, err := chatArith(in, n, "%")
		if err != nil {
			return false, err
		}
		return chatEqual(m, exec.AsValue(want)), nil
	}
	set(is(func(in *exec.Value) bool { return !chatIsUndefined(in) }), "defined")
	set(is(chatIsUndefined), "undefined")
	set(is(chatIsNone), "none")
	set(is(func(in *exec.Value) bool { return in.IsBool() }), "boolean")
	set(is(func(in *exec.Value) bool { return in.IsBool() && in.Bool() }), "true")
	set(is(func(in *exec.Value) bool { return in.IsBool() && !in.Bool() }), "false")
	set(is(func(in *exec.Value) bool { return in.IsInteger() && !chatIsNone(in) }), "integer")
	set(is(func(in *exec.Value) bool { return in.IsFloat() }), "float")
	set(is(func(in *exec.Value) bool { _, _, ok := chatPyNumber(in); return ok }), "number")
	set(is(func(in *exec.Value) bool { return in.IsString() }), "string")
	set(is(func(in *exec.Value) bool { return in.IsDict() && !chatIsNamespace(in) }), "mapping")
	set(is(func(in *exec.Value) bool {
		return chatIsUndefined(in) || in.IsString() || in.IsList() || in.IsDict() && !chatIsNamespace(in)
	}), "sequence", "iterable")
	set(is(func(in *exec.Value) bool { return chatCased(chatPyStr(in), unicode.IsLower, unicode.IsUpper) }), "lower")
	set(is(func(in *exec.Value) bool { return chatCased(chatPyStr(in), unicode.IsUpper, unicode.IsLower) }), "upper")
	set(arity(0, func(in *exec.Value, _ []*exec.Value) (bool, error) { return mod(in, exec.AsValue(2), 1) }), "odd")
	set(arity(0, func(in *exec.Value, _ []*exec.Value) (bool, error) { return mod(in, exec.AsValue(2), 0) }), "even")
	set(arity(1, func(in *exec.Value, a []*exec.Value) (bool, error) { return mod(in, a[0], 0) }), "divisibleby")
	set(arity(1, func(in *exec.Value, a []*exec.Value) (bool, error) { return chatSameAs(in, a[0]), nil }), "sameas")
	// "x in y" (parsed as the test "in") fails as Python's in does.
	set(arity(1, func(in *exec.Value, a []*exec.Value) (bool, error) { return chatContains(a[0], in) }), "in")
	for names, want := range map[[3]string]bool{{"eq", "equalto", "=="}: true, {"ne", "!=", ""}: false} {
		set(arity(1, func(in *exec.Value, a []*exec.Value) (bool, error) { return chatEqual(in, a[0]) == want, nil }), chatNonEmpty(names[:])...)
	}
	for op, names := range map[string][]string{"<": {"lt", "lessthan", "<"}, "<=": {"le", "<="}, ">": {"gt", "greaterthan", ">"}, ">=": {"ge", ">="}} {
		set(arity(1, func(in *exec.Value, a []*exec.Value) (bool, error) { return chatCompare(in, a[0], op) }), names...)
	}
	set(is(func(in *exec.Value) bool { return in.IsString() && chatEnvironment().Filters.Exists(in.String()) }), "filter")
	set(is(func(in *exec.Value) bool { return in.IsString() && chatEnvironment().Tests.Exists(in.String()) }), "test")
	return ts
}

func chatNonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// chatCased is Python's str.islower (is, other = IsLower, IsUpper) or
// isupper: a cased character, and none of the other case.
func chatCased(s string, is, other func(rune) bool) bool {
	found := false
	for _, r := range s {
		if other(r) || unicode.IsTitle(r) {
			return false
		}
		found = found || is(r)
	}
	return found
}

// chatSameAs is Python's "is" for the values templates compare so: None,
// booleans, numbers and strings by value and type, lists and dicts by
// identity.
func chatSameAs(a, b *exec.Value) bool {
	switch {
	case chatIsUndefined(a) || chatIsUndefined(b):
		return chatIsUndefined(a) && chatIsUndefined(b)
	case chatIsNone(a) || chatIsNone(b):
		return chatIsNone(a) && chatIsNone(b)
	case a.IsBool() || b.IsBool():
		return a.IsBool() && b.IsBool() && a.Bool() == b.Bool()
	case a.IsInteger() && b.IsInteger():
		return a.Integer() == b.Integer()
	case a.IsFloat() && b.IsFloat():
		return a.Float() == b.Float()
	case a.IsString() && b.IsString():
		return a.String() == b.String()
	case (a.IsList() || a.IsDict()) && (b.IsList() || b.IsDict()):
		return chatSameContainer(a.Val, b.Val)
	}
	return false
}

// chatControlStructures adds transformers' {% generation %} block, which
// renders its body unchanged (transformers uses it to mark assistant tokens).
func chatControlStructures() *exec.ControlStructureSet {
	// include, import, from, extends and block read other templates: a chat
	// template has none (transformers gives it no loader), and including
	// itself would recurse until the stack overflows.
	cs := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{})
	for _, name := range []string{"autoescape", "filter", "for", "if", "macro", "raw", "set", "with", "do", "break", "continue", "trans", "call"} {
		if p, ok := builtins.ControlStructures.Get(name); ok {
			_ = cs.Register(name, p)
		}
	}
	if orig, ok := builtins.ControlStructures.Get("macro"); ok {
		_ = cs.Replace("macro", func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
			n, err := orig(p, args)
			if err != nil {
				return nil, err
			}
			m, ok := n.(*controlStructures.MacroControlStructure)
			if !ok {
				return n, nil
			}
			return &chatMacro{MacroControlStructure: m}, nil
		})
	}
	_ = cs.Register("generation", func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		g := &chatGeneration{location: p.Current()}
		if !args.End() {
			return nil, args.Error("generation takes no arguments", args.Current())
		}
		wrapper, endargs, err := p.WrapUntil("endgeneration")
		if err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("endgeneration takes no arguments", endargs.Current())
		}
		g.body = wrapper
		return g, nil
	})
	return cs
}

// chatMaxMacroDepth bounds macro recursion. Unbounded, a template such as
// {% macro f(x) %}{{ f(x) }}{% endmacro %} would exhaust the goroutine stack,
// which Go cannot recover from; Python stops it with a RecursionError.
const chatMaxMacroDepth = 200

// chatMacro defines a macro as gonja does, then wraps the function it binds
// with a recursion limit.
type chatMacro struct {
	*controlStructures.MacroControlStructure
}

func (m *chatMacro) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	if err := m.MacroControlStructure.Execute(r, tag); err != nil {
		return err
	}
	v, ok := r.Environment.Context.Get(m.Name)
	fn, isMacro := v.(exec.Macro)
	if !ok || !isMacro {
		return nil
	}
	depth, name := 0, m.Name
	bv, _ := r.Environment.Context.Get(chatBudgetKey)
	b, _ := bv.(*chatBudget)
	r.Environment.Context.Set(name, exec.Macro(func(va *exec.VarArgs) *exec.Value {
		if b == nil {
			return exec.AsValue(errors.New("chat template: the render budget is missing"))
		}
		if depth >= chatMaxMacroDepth {
			// Recorded in the budget so that the render reports this one
			// line, not gonja's wrapping of it at every level.
			return exec.AsValue(b.fail("macro %s: recursion deeper than %d calls", name, chatMaxMacroDepth))
		}
		depth++
		defer func() { depth-- }()
		return fn(va)
	}))
	return nil
}

type chatGeneration struct {
	location *tokens.Token
	body     *nodes.Wrapper
}

func (g *chatGeneration) Position() *tokens.Token { return g.location }
func (g *chatGeneration) String() string {
	return fmt.Sprintf("GenerationControlStructure(Line=%d Col=%d)", g.location.Line, g.location.Col)
}
func (g *chatGeneration) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	return r.Inherit().ExecuteWrapper(g.body)
}

// chatFilterDictSort is Jinja's dictsort(case_sensitive=False, by="key",
// reverse=False): the (key, value) pairs sorted, strings compared
// case-insensitively unless asked.
func chatFilterDictSort(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := chatCheckArgs(va, "dictsort", 3, "case_sensitive", "by", "reverse"); err != nil {
		return exec.AsValue(err)
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("dictsort: %s is not a mapping", in.String()))
	}
	caseSensitive, byValue, reverse := false, false, false
	if v, ok := chatArg(va, 0, "case_sensitive"); ok {
		caseSensitive = v.IsTrue()
	}
	if v, ok := chatArg(va, 1, "by"); ok {
		switch v.String() {
		case "key":
		case "value":
			byValue = true
		default:
			return exec.AsValue(errors.New(`dictsort: by must be "key" or "value"`))
		}
	}
	if v, ok := chatArg(va, 2, "reverse"); ok {
		reverse = v.IsTrue()
	}
	pairs := append([]*exec.Pair(nil), chatDictPairs(in)...)
	key := func(p *exec.Pair) *exec.Value {
		v := p.Key
		if byValue {
			v = p.Value
		}
		if v.IsString() && !caseSensitive {
			return exec.AsValue(strings.ToLower(v.String()))
		}
		return v
	}
	less := func(a, b *exec.Value) bool {
		if a.IsNumber() && b.IsNumber() {
			return a.Float() < b.Float()
		}
		return a.String() < b.String()
	}
	sort.SliceStable(pairs, func(i, j int) bool {
		if reverse {
			return less(key(pairs[j]), key(pairs[i]))
		}
		return less(key(pairs[i]), key(pairs[j]))
	})
	out := make([]any, len(pairs))
	for i, p := range pairs {
		out[i] = chatTuple{p.Key, p.Value}
	}
	return exec.AsValue(out)
}

// chatFilterReverse is Jinja's reverse: a string reversed by characters, any
// other sequence as a list in reverse order.
func chatFilterReverse(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := chatCheckArgs(va, "reverse", 0); err != nil {
		return exec.AsValue(err)
	}
	if chatIsUndefined(in) {
		return exec.AsValue([]any{})
	}
	if in.IsString() {
		r := []rune(in.String())
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return exec.AsValue(string(r))
	}
	var items []any
	switch {
	case in.IsList():
		for i := 0; i < in.Len(); i++ {
			items = append(items, in.Index(i).Interface())
		}
	case in.IsDict():
		for _, p := range chatDictPairs(in) {
			items = append(items, p.Key.Interface())
		}
	default:
		return exec.AsValue(fmt.Errorf("reverse: %s is not reversible", in.String()))
	}
	out := make([]any, len(items))
	for i, v := range items {
		out[len(items)-1-i] = v
	}
	return exec.AsValue(out)
}

// chatFilterToJSON is transformers' tojson: json.dumps(x, ensure_ascii=False,
// indent=indent, separators=separators, sort_keys=sort_keys), with no HTML
// escaping (unlike Jinja's own tojson).
func chatFilterToJSON(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := chatCheckArgs(va, "tojson", 4, "ensure_ascii", "indent", "separators", "sort_keys"); err != nil {
		return exec.AsValue(err)
	}
	o := &chatJSONOptions{itemSep: ", ", keySep: ": "}
	if v, ok := chatArg(va, 0, "ensure_ascii"); ok {
		o.ensureASCII = v.IsTrue()
	}
	if v, ok := chatArg(va, 1, "indent"); ok && !v.IsNil() {
		o.hasIndent, o.itemSep = true, ","
		switch {
		case v.IsString():
			o.indent = v.String()
		case v.IsInteger():
			o.indent = strings.Repeat(" ", max(v.Integer(), 0))
		default:
			return exec.AsValue(fmt.Errorf("tojson: indent must be an int or a string, not %s", v.String()))
		}
	}
	if v, ok := chatArg(va, 2, "separators"); ok && !v.IsNil() {
		if !v.IsList() || v.Len() != 2 {
			return exec.AsValue(errors.New("tojson: separators must be a pair of strings"))
		}
		o.itemSep, o.keySep = v.Index(0).String(), v.Index(1).String()
	}
	if v, ok := chatArg(va, 3, "sort_keys"); ok {
		o.sortKeys = v.IsTrue()
	}
	s, err := chatToJSON(in, o)
	if err != nil {
		return exec.AsValue(err)
	}
	return exec.AsSafeValue(s)
}

// chatFilterRound is Jinja's round(precision=0, method="common"): "common"
// is Python's round, exact and half-to-even (round(2.5) is 2.0); "ceil" and
// "floor" scale by 10**precision. The result is a float, but for "common" on
// an int.
func chatFilterRound(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := chatCheckArgs(va, "round", 2, "precision", "method"); err != nil {
		return exec.AsValue(err)
	}
	if _, _, ok := chatPyNumber(in); !ok {
		return exec.AsValue(fmt.Errorf("round: %s is not a number", chatPyRepr(in)))
	}
	precision, method := 0, "common"
	if v, ok := chatArg(va, 0, "precision"); ok {
		precision = v.Integer()
	}
	if v, ok := chatArg(va, 1, "method"); ok {
		method = v.String()
	}
	x, _, _ := chatPyNumber(in)
	switch method {
	case "common":
		if _, isInt, _ := chatPyNumber(in); isInt {
			// Python's round keeps an int an int, ties to even.
			n := chatInt(in)
			if precision >= 0 {
				return exec.AsValue(n)
			}
			if precision < -18 {
				return exec.AsValue(0)
			}
			scale := 1
			for range -precision {
				scale *= 10
			}
			q, r := n/scale, n%scale
			if r < 0 {
				q, r = q-1, r+scale
			}
			if 2*r > scale || 2*r == scale && q%2 != 0 {
				q++
			}
			return exec.AsValue(q * scale)
		}
		if precision >= 0 {
			// FormatFloat rounds the exact binary value, ties to even, as Python does.
			r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', precision, 64), 64)
			return exec.AsValue(r)
		}
		scale := math.Pow(10, float64(-precision))
		return exec.AsValue(math.RoundToEven(x/scale) * scale)
	case "ceil":
		scale := math.Pow(10, float64(precision))
		return exec.AsValue(math.Ceil(x*scale) / scale)
	case "floor":
		scale := math.Pow(10, float64(precision))
		return exec.AsValue(math.Floor(x*scale) / scale)
	}
	return exec.AsValue(errors.New(`round: method must be "common", "ceil" or "floor"`))
}

// chatStrFilter makes a filter of a string function applied to str(value).
func chatStrFilter(name string, fn func(string) string) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		if err := chatCheckArgs(va, name, 0); err != nil {
			return exec.AsValue(err)
		}
		if chatIsMarkup(in) && chatMarkupFilters[name] {
			return exec.AsValue(chatMarkup(fn(chatStr(in))))
		}
		return exec.AsValue(fn(chatStr(in)))
	}
}

// chatJinjaTitle is Jinja's title filter, which differs from str.title: words
// start after runs of whitespace, '-', '(', '{', '[' or '<', and each word is
// its first character upper-cased and the rest lower-cased ("it's" stays "It's").
func chatJinjaTitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		switch {
		case chatIsSpace(r) || strings.ContainsRune("-({[<", r):
			b.WriteRune(r)
			start = true
		case start:
			b.WriteString(chatUpper(string(r)))
			start = false
		default:
			b.WriteString(chatLower(string(r)))
		}
	}
	return b.String()
}

// chatFilterTrim is Jinja's trim: str.strip(chars).
func chatFilterTrim(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := chatCheckArgs(va, "trim", 1, "chars"); err != nil {
		return exec.AsValue(err)
	}
	s := chatStr(in)
	if v, ok := chatArg(va, 0, "chars"); ok && !v.IsNil() {
		return exec.AsValue(chatStrip(s, v.String(), true, true, true))
	}
	return exec.AsValue(chatStrip(s, "", false, true, true))
}

// chatFilterItems is Jinja's items filter: the (key, value) pairs in order.
func chatFilterItems(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if in.IsNil() {
		return exec.AsValue([]any{})
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("items: %s is not a mapping", in.String()))
	}
	return exec.AsValue(chatItems(in))
}

func chatItems(v *exec.Value) []any {
	pairs := chatDictPairs(v)
	out := make([]any, len(pairs))
	for i, p := range pairs {
		out[i] = chatTuple{p.Key, p.Value}
	}
	return out
}

// chatStr renders a value as Jinja's str() would for the cases templates use.
// gonja gives undefined and None the same nil value; undefined, the more
// common one in chat templates, renders as "".
func chatStr(v *exec.Value) string {
	if v.IsNil() {
		return ""
	}
	return v.String()
}

// chatStrMethodSet returns gonja's string methods with Python-exact
// replacements for the ones chat templates call.
func chatStrMethodSet() map[string]exec.Method[string] {
	str := map[string]exec.Method[string]{}
	for _, name := range []string{
		"capwords", "casefold", "encode", "expandtabs", "format", "format_map",
		"isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower",
		"isnumeric", "isprintable", "isspace", "istitle", "isupper", "join",
		"swapcase", "zfill",
	} {
		if m, ok := builtins.Methods.Str.Get(name); ok {
			str[name] = m
		}
	}
	for name, m := range chatStrMethods {
		str[name] = m
	}
	str["join"] = chatStrJoin
	return str
}

// chatDictMethodSet returns gonja's dict methods with key-order-keeping
// replacements.
func chatDictMethodSet() map[string]exec.Method[map[string]any] {
	dict := map[string]exec.Method[map[string]any]{}
	for _, name := range []string{"pop", "setdefault", "update", "copy", "clear"} {
		if m, ok := builtins.Methods.Dict.Get(name); ok {
			dict[name] = m
		}
	}
	for name, m := range chatDictMethods {
		dict[name] = m
	}
	return dict
}

// chatMethods returns the methods chat templates see (each render wraps
// them with its budget: chatMethodsFor).
func chatMethods() exec.Methods {
	return exec.Methods{
		Bool:  builtins.Methods.Bool,
		Int:   builtins.Methods.Int,
		Float: builtins.Methods.Float,
		Str:   exec.NewMethodSet(chatStrMethodSet()),
		Dict:  exec.NewMethodSet(chatDictMethodSet()),
		List:  builtins.Methods.List,
	}
}

var chatDictMethods = map[string]exec.Method[map[string]any]{
	"items": func(_ map[string]any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, "items()", 0); err != nil {
			return nil, err
		}
		return chatItems(self), nil
	},
	"keys": func(_ map[string]any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, "keys()", 0); err != nil {
			return nil, err
		}
		var out []any
		for _, p := range chatDictPairs(self) {
			out = append(out, p.Key)
		}
		return out, nil
	},
	"values": func(_ map[string]any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if err := chatCheckArgs(va, "values()", 0); err != nil {
			return nil, err
		}
		var out []any
		for _, p := range chatDictPairs(self) {
			out = append(out, p.Value)
		}
		return out, nil
	},
	"get": func(_ map[string]any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) < 1 || len(va.Args) > 2 || len(va.KwArgs) > 0 {
			return nil, errors.New("get() takes 1 or 2 positional arguments")
		}
		// Plain values, not *exec.Value: gonja wraps what methods return.
		for _, p := range chatDictPairs(self) {
			if p.Key.EqualValueTo(va.Args[0]) {
				return p.Value.Interface(), nil
			}
		}
		if len(va.Args) == 2 {
			return va.Args[1].Interface(), nil
		}
		return chatNone, nil
	},
}

// chatItem is x[key], which the guard (chatGuard) substitutes for gonja's
// subscript: an integer index into a list or string counts from the end
// when negative (gonja misses x[-len(x)], so messages[-1] of a one-message
// conversation was undefined) and a string is indexed by character, not
// byte, as in Python. Out of range is undefined, as in Jinja. Other
// subscripts (dict keys, attributes) are gonja's. The third argument is the
// expression's source, for errors.
func chatItem(e *exec.Evaluator, va *exec.VarArgs) (*exec.Value, error) {
	if len(va.Args) != 3 {
		return nil, errors.New("moco_item takes three arguments")
	}
	obj, key := va.Args[0], va.Args[1]
	if chatIsNone(obj) {
		return exec.AsValue(nil), nil // None[key] is undefined in Jinja
	}
	if key.IsInteger() && !chatIsNone(key) && (obj.IsList() || obj.IsString()) {
		// Len and Index count a string's characters, not its bytes.
		i, n := key.Integer(), obj.Len()
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return exec.AsValue(nil), nil
		}
		if chatIsMarkup(obj) {
			return exec.AsValue(chatMarkup(obj.Index(i).String())), nil
		}
		return obj.Index(i), nil
	}
	if key.IsString() {
		// What gonja's subscript tries first; m['content'] need not build
		// an evaluator.
		if item, found := obj.GetItem(key.String()); found {
			return item, nil
		}
	}
	name := func(s string) *nodes.Name { return &nodes.Name{Name: &tokens.Token{Type: tokens.Name, Val: s}} }
	sub := &exec.Evaluator{Config: e.Config, Loader: e.Loader, Environment: &exec.Environment{
		Context: exec.NewContext(map[string]any{"o": obj, "k": key}), Filters: e.Environment.Filters,
		Tests: e.Environment.Tests, ControlStructures: e.Environment.ControlStructures, Methods: e.Environment.Methods,
	}}
	res := sub.Eval(&nodes.GetItem{Location: &tokens.Token{Type: tokens.Name, Val: "o"}, Node: name("o"), Arg: name("k")})
	if res.IsError() {
		if obj.IsNil() {
			return nil, fmt.Errorf("%s: %w", va.Args[2].String(), chatUndefinedError("subscript of"))
		}
		// Jinja's getitem gives undefined for any key it cannot look up
		// (basic_type_map[spec.type] with a list for the type, Command R).
		return exec.AsValue(nil), nil
	}
	return res, nil
}

// chatContains is Python's "item in seq": a substring of a string, an element
// of a list, a key of a dict. Anything else on the right is a TypeError (an
// undefined one iterates as empty), where gonja says false: transformers
// refuses, e.g., an assistant message whose content is None in a template
// testing '</think>' in it (Qwen3), instead of rendering it as if the text
// were not there.
func chatContains(seq, item *exec.Value) (bool, error) {
	switch {
	case item.IsError():
		return false, item
	case seq.IsString():
		if !item.IsString() {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", chatTypeName(item))
		}
		return strings.Contains(seq.String(), item.String()), nil
	case chatIsNamespace(seq):
		return false, errors.New("argument of type 'Namespace' is not iterable")
	case seq.IsDict():
		if item.IsList() || item.IsDict() {
			return false, fmt.Errorf("unhashable type: '%s'", chatTypeName(item))
		}
		for _, p := range chatDictPairs(seq) {
			if chatEqual(p.Key, item) {
				return true, nil
			}
		}
		return false, nil
	case seq.IsList():
		for i := 0; i < seq.Len(); i++ {
			if chatEqual(seq.Index(i), item) {
				return true, nil
			}
		}
		return false, nil
	case seq.IsNil():
		return false, nil
	}
	return false, fmt.Errorf("argument of type '%s' is not iterable", chatTypeName(seq))
}

// chatEqual is Python's ==, which "in", ==, != and the tests eq, equalto and
// ne use: booleans are the numbers 0 and 1 (True == 1, False == 0.0), any
// int equals the float of its value, None equals only None (gonja took
// it for the int 0), undefined only undefined, a tuple never a list, and
// lists and dicts compare their items so. Other values compare as gonja
// compares them.
func chatEqual(a, b *exec.Value) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	case chatIsNone(a) || chatIsNone(b):
		return chatIsNone(a) && chatIsNone(b)
	case a.IsNil() || b.IsNil():
		return a.IsNil() && b.IsNil()
	}
	an, aInt, aNum := chatPyNumber(a)
	bn, bInt, bNum := chatPyNumber(b)
	switch {
	case aNum || bNum:
		if !aNum || !bNum {
			return false
		}
		if aInt && bInt {
			return chatInt(a) == chatInt(b)
		}
		return an == bn
	case a.IsString() || b.IsString():
		return a.IsString() && b.IsString() && a.String() == b.String()
	case a.IsList() && b.IsList():
		if a.Len() != b.Len() || chatIsTuple(a) != chatIsTuple(b) {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !chatEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case a.IsDict() && b.IsDict():
		pa, pb := chatDictPairs(a), chatDictPairs(b)
		if len(pa) != len(pb) {
			return false
		}
		for _, p := range pa {
			found := false
			for _, q := range pb {
				if chatEqual(p.Key, q.Key) {
					found = chatEqual(p.Value, q.Value)
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return a.EqualValueTo(b)
}

// chatPyNumber returns v as Python sees a number: booleans are 0 and 1.
func chatPyNumber(v *exec.Value) (f float64, isInt, ok bool) {
	switch {
	case chatIsNone(v):
		return 0, false, false
	case v.IsBool():
		return float64(chatInt(v)), true, true
	case v.IsInteger():
		return v.Float(), true, true
	case v.IsFloat():
		return v.Float(), false, true
	}
	return 0, false, false
}

// chatInt is an int or bool as an int.
func chatInt(v *exec.Value) int {
	if v.IsBool() {
		if v.Bool() {
			return 1
		}
		return 0
	}
	return v.Integer()
}

// chatEq is a == b (op "==") or a != b (op "!="), which the guard
// (chatGuard) substitutes for gonja's.
func chatEq(va *exec.VarArgs) (*exec.Value, error) {
	if len(va.Args) != 3 {
		return nil, errors.New("moco_eq takes three arguments")
	}
	eq := chatEqual(va.Args[0], va.Args[1])
	if va.Args[2].String() == "!=" {
		eq = !eq
	}
	return exec.AsValue(eq), nil
}

// chatNamespace is what namespace() makes: its attributes in a map, as
// gonja's namespace has them, but of a type of its own, so that "in" and for
// loops refuse it as Jinja refuses its Namespace, which is not iterable
// (gonja took it for a dict of its attributes).
type chatNamespace map[string]any

func chatIsNamespace(v *exec.Value) bool {
	if v == nil {
		return false
	}
	_, ok := v.Interface().(chatNamespace)
	return ok
}

// chatNamespaceFunc is Jinja's namespace(mapping=None, **attrs).
func chatNamespaceFunc(_ *exec.Evaluator, va *exec.VarArgs) (*exec.Value, error) {
	if len(va.Args) > 1 {
		return nil, fmt.Errorf("namespace expected at most 1 positional argument, got %d", len(va.Args))
	}
	ns := chatNamespace{}
	if len(va.Args) == 1 {
		if !va.Args[0].IsDict() || chatIsNamespace(va.Args[0]) {
			return nil, fmt.Errorf("namespace: '%s' object is not a mapping", chatTypeName(va.Args[0]))
		}
		for _, p := range chatDictPairs(va.Args[0]) {
			ns[p.Key.String()] = p.Value
		}
	}
	for k, v := range va.KwArgs {
		ns[k] = v
	}
	return exec.AsValue(ns), nil
}

// chatTypeName is the Python type name of a template value, for errors.
func chatTypeName(v *exec.Value) string {
	switch {
	case v == nil || v.IsNil():
		return "Undefined"
	case chatIsNone(v):
		return "NoneType"
	case chatIsNamespace(v):
		return "Namespace"
	case chatIsMarkup(v):
		return "Markup"
	case v.IsString():
		return "str"
	case v.IsBool():
		return "bool"
	case v.IsInteger():
		return "int"
	case v.IsFloat():
		return "float"
	case v.IsList():
		return "list"
	case v.IsDict():
		return "dict"
	}
	return fmt.Sprintf("%T", v.Interface())
}
