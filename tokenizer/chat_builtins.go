package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// This file holds what chat templates need beyond stock gonja: transformers'
// tojson, Python-exact string methods, and dict methods that keep key order.

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
	return fs
}

// chatTests corrects "true" and "false", which in Jinja hold only for the
// booleans themselves (gonja's "false" holds for anything falsy, even undefined).
func chatTests() *exec.TestSet {
	ts := exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests)
	_ = ts.Replace("true", func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		return in.IsBool() && in.Bool(), nil
	})
	_ = ts.Replace("false", func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		return in.IsBool() && !in.Bool(), nil
	})
	// None is its own value (chatNone), neither undefined nor a number.
	_ = ts.Replace("none", func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		return chatIsNone(in), nil
	})
	for _, name := range []string{"number", "integer", "even", "odd", "divisibleby"} {
		orig, ok := builtins.Tests.Get(name)
		fn, isCtx := orig.(func(*exec.Context, *exec.Value, *exec.VarArgs) (bool, error))
		if !ok || !isCtx {
			continue
		}
		_ = ts.Replace(name, func(ctx *exec.Context, in *exec.Value, va *exec.VarArgs) (bool, error) {
			if chatIsNone(in) {
				return false, nil
			}
			return fn(ctx, in, va)
		})
	}
	return ts
}

// chatControlStructures adds transformers' {% generation %} block, which
// renders its body unchanged (transformers uses it to mark assistant tokens).
func chatControlStructures() *exec.ControlStructureSet {
	cs := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{}).Update(builtins.ControlStructures)
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
	r.Environment.Context.Set(name, exec.Macro(func(va *exec.VarArgs) *exec.Value {
		if depth >= chatMaxMacroDepth {
			return exec.AsValue(fmt.Errorf("macro %s: recursion deeper than %d calls", name, chatMaxMacroDepth))
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
		out[i] = []any{p.Key, p.Value}
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
	if !in.IsNumber() || chatIsNone(in) {
		return exec.AsValue(fmt.Errorf("round: %s is not a number", in.String()))
	}
	precision, method := 0, "common"
	if v, ok := chatArg(va, 0, "precision"); ok {
		precision = v.Integer()
	}
	if v, ok := chatArg(va, 1, "method"); ok {
		method = v.String()
	}
	x := in.Float()
	switch method {
	case "common":
		if in.IsInteger() && precision >= 0 {
			return in // Python's round keeps an int an int
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
		out[i] = []any{p.Key, p.Value}
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

// chatMethods returns gonja's methods with Python-exact replacements for the
// ones chat templates call.
func chatMethods() exec.Methods {
	str := map[string]exec.Method[string]{}
	for _, name := range []string{
		"capwords", "casefold", "encode", "expandtabs", "format", "format_map",
		"isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower",
		"isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "partition",
		"rpartition", "splitlines", "swapcase", "zfill",
	} {
		if m, ok := builtins.Methods.Str.Get(name); ok {
			str[name] = m
		}
	}
	for name, m := range chatStrMethods {
		str[name] = m
	}
	dict := map[string]exec.Method[map[string]any]{}
	for _, name := range []string{"pop", "setdefault", "update", "copy", "clear"} {
		if m, ok := builtins.Methods.Dict.Get(name); ok {
			dict[name] = m
		}
	}
	for name, m := range chatDictMethods {
		dict[name] = m
	}
	return exec.Methods{
		Bool:  builtins.Methods.Bool,
		Int:   builtins.Methods.Int,
		Float: builtins.Methods.Float,
		Str:   exec.NewMethodSet(str),
		Dict:  exec.NewMethodSet(dict),
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

// chatStrArg reads an optional string argument that may also be None.
func chatStrArg(va *exec.VarArgs, pos int, name string) (string, bool, error) {
	v, ok := chatArg(va, pos, name)
	if !ok || v.IsNil() {
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
				return append(out, strings.TrimRightFunc(s, chatIsSpace))
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
			rev = append(rev, strings.TrimLeftFunc(s, chatIsSpace))
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

var (
	chatWeekdays = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	chatMonths   = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

// chatStrftime formats t with Python's (C locale) strftime directives,
// including glibc's "-" flag that drops zero padding (%-d).
func chatStrftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		pad := true
		if format[i] == '-' && i+1 < len(format) {
			pad = false
			i++
		}
		num := func(v, width int) {
			s := strconv.Itoa(v)
			if pad {
				for len(s) < width {
					s = "0" + s
				}
			}
			b.WriteString(s)
		}
		hour12 := t.Hour() % 12
		if hour12 == 0 {
			hour12 = 12
		}
		switch format[i] {
		case 'a':
			b.WriteString(chatWeekdays[t.Weekday()][:3])
		case 'A':
			b.WriteString(chatWeekdays[t.Weekday()])
		case 'b', 'h':
			b.WriteString(chatMonths[t.Month()-1][:3])
		case 'B':
			b.WriteString(chatMonths[t.Month()-1])
		case 'd':
			num(t.Day(), 2)
		case 'e':
			s := strconv.Itoa(t.Day())
			if pad && len(s) < 2 {
				s = " " + s
			}
			b.WriteString(s)
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			num(hour12, 2)
		case 'j':
			num(t.YearDay(), 3)
		case 'm':
			num(int(t.Month()), 2)
		case 'M':
			num(t.Minute(), 2)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'S':
			num(t.Second(), 2)
		case 'f':
			num(t.Nanosecond()/1000, 6)
		case 'y':
			num(t.Year()%100, 2)
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b.WriteString(strconv.Itoa(wd))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 'c':
			fmt.Fprintf(&b, "%s %s %2d %s %d", chatWeekdays[t.Weekday()][:3], chatMonths[t.Month()-1][:3], t.Day(), t.Format("15:04:05"), t.Year())
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			if !pad {
				b.WriteByte('-')
			}
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
