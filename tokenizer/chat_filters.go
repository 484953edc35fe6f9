package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Jinja's filters where gonja's differ from them on the values chat
// templates pass: Python's str() of items, equality, ordering and types
// (a number, a boolean or None where a sequence is wanted is an error, as
// the content of a tool-call message is None: {{ message.content|length }}
// fails in Jinja).

// chatIterableFilters need an iterable input: a number, a boolean, None or
// a namespace is a TypeError. An undefined input iterates as empty.
var chatIterableFilters = map[string]bool{
	"list": true, "first": true, "last": true, "join": true, "unique": true, "batch": true, "slice": true,
	"map": true, "select": true, "reject": true, "selectattr": true, "rejectattr": true, "groupby": true,
	"sum": true, "min": true, "max": true, "sort": true, "reverse": true, "length": true, "count": true,
	"dictsort": true, "items": true,
}

// chatCheckIterable is the TypeError Python raises for a filter of
// chatIterableFilters on a value that is no collection.
func chatCheckIterable(name string, in *exec.Value) error {
	if !chatIterableFilters[name] || chatIsUndefined(in) || in.IsString() || in.IsList() || in.IsDict() && !chatIsNamespace(in) {
		return nil
	}
	switch name {
	case "map", "select", "reject", "selectattr", "rejectattr":
		if !chatTruth(in) {
			return nil // Jinja maps and selects nothing from a false value
		}
	case "length", "count":
		return fmt.Errorf("TypeError: object of type '%s' has no len()", chatTypeName(in))
	case "items", "dictsort":
		return fmt.Errorf("TypeError: %s: '%s' is not a mapping", name, chatTypeName(in))
	case "last", "reverse":
		return fmt.Errorf("TypeError: '%s' object is not reversible", chatTypeName(in))
	}
	return fmt.Errorf("TypeError: '%s' object is not iterable", chatTypeName(in))
}

// chatIter lists what iterating v gives in Python: a string's characters,
// a dict's keys, a list's items; nothing for undefined.
func chatIter(v *exec.Value) []*exec.Value {
	var out []*exec.Value
	switch {
	case chatIsUndefined(v):
	case v.IsString():
		for _, r := range v.String() {
			out = append(out, exec.AsValue(string(r)))
		}
	case v.IsDict():
		for _, p := range chatDictPairs(v) {
			out = append(out, p.Key)
		}
	case v.IsList():
		for i := 0; i < v.Len(); i++ {
			out = append(out, v.Index(i))
		}
	}
	return out
}

func chatValues(vs []*exec.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v.Interface()
	}
	return out
}

// chatAttrPath is Jinja's make_attrgetter: the dotted attribute path of
// v ("function.name", "tool_calls.0"), integers indexing; a missing part
// gives undefined.
func chatAttrPath(v *exec.Value, path string) *exec.Value {
	for _, part := range strings.Split(path, ".") {
		if chatIsUndefined(v) || chatIsNone(v) {
			return exec.AsValue(nil)
		}
		if i, err := strconv.Atoi(part); err == nil && v.IsList() {
			if i < 0 {
				i += v.Len()
			}
			if i < 0 || i >= v.Len() {
				return exec.AsValue(nil)
			}
			v = v.Index(i)
			continue
		}
		if !v.IsDict() {
			return exec.AsValue(nil)
		}
		found := false
		for _, p := range chatDictPairs(v) {
			if p.Key.IsString() && p.Key.String() == part {
				v, found = p.Value, true
				break
			}
		}
		if !found {
			return exec.AsValue(nil)
		}
	}
	return v
}

// chatSortKey is the key Jinja's sort, min, max and unique compare: the
// attribute if one is given, strings lower-cased unless case_sensitive.
func chatSortKey(v *exec.Value, attribute string, caseSensitive bool) *exec.Value {
	if attribute != "" {
		v = chatAttrPath(v, attribute)
	}
	if !caseSensitive && v.IsString() {
		return exec.AsValue(chatLower(v.String()))
	}
	return v
}

// chatFilterArgs reads a filter's arguments by position or keyword.
func chatFilterArgs(va *exec.VarArgs, name string, names ...string) ([]*exec.Value, error) {
	if err := chatCheckArgs(va, name, len(names), names...); err != nil {
		return nil, err
	}
	out := make([]*exec.Value, len(names))
	for i, n := range names {
		if v, ok := chatArg(va, i, n); ok {
			out[i] = v
		}
	}
	return out, nil
}

func chatFilterLength(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if chatIsUndefined(in) {
		return exec.AsValue(0)
	}
	return exec.AsValue(in.Len())
}

func chatFilterList(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsValue(chatValues(chatIter(in)))
}

func chatFilterFirst(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	items := chatIter(in)
	if len(items) == 0 {
		return exec.AsValue(nil)
	}
	return items[0]
}

func chatFilterLast(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	items := chatIter(in)
	if len(items) == 0 {
		return exec.AsValue(nil)
	}
	return items[len(items)-1]
}

// chatFilterJoin is Jinja's join(d=”, attribute=None): str() of each item.
func chatFilterJoin(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "join", "d", "attribute")
	if err != nil {
		return exec.AsValue(err)
	}
	sep := ""
	if args[0] != nil {
		sep = chatPyStr(args[0])
	}
	var parts []string
	for _, item := range chatIter(in) {
		if args[1] != nil {
			item = chatAttrPath(item, chatPyStr(args[1]))
		}
		parts = append(parts, chatPyStr(item))
	}
	return exec.AsValue(strings.Join(parts, sep))
}

func chatFilterString(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if err := chatCheckArgs(va, "string", 0); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(chatPyStr(in))
}

// chatFilterPprint is Jinja's pprint for the short values templates print:
// Python's repr.
func chatFilterPprint(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsValue(chatPyRepr(in))
}

// chatFilterInt is Jinja's int(default=0, base=10): int() of the value, of
// a string as a float if not as an int ("42.23"|int is 42), else default;
// an undefined value is an error.
func chatFilterInt(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "int", "default", "base")
	if err != nil {
		return exec.AsValue(err)
	}
	def := exec.AsValue(0)
	if args[0] != nil {
		def = args[0]
	}
	if chatIsUndefined(in) {
		return exec.AsValue(chatUndefinedError("int() of"))
	}
	if f, isInt, ok := chatPyNumber(in); ok {
		if isInt {
			return exec.AsValue(chatInt(in))
		}
		if f != f || f > 9.2e18 || f < -9.2e18 {
			return def
		}
		return exec.AsValue(int(f))
	}
	if !in.IsString() {
		return def
	}
	base := 10
	if args[1] != nil {
		base = args[1].Integer()
	}
	str := strings.TrimSpace(in.String())
	if n, ok := chatParsePyInt(str, base); ok {
		return exec.AsValue(n)
	}
	if f, ok := chatParsePyFloat(str); ok && f == f && f < 9.2e18 && f > -9.2e18 {
		return exec.AsValue(int(f))
	}
	return def
}

// chatParsePyInt is Python's int(s, base) (64-bit).
func chatParsePyInt(s string, base int) (int, bool) {
	sign := ""
	if s != "" && (s[0] == '+' || s[0] == '-') {
		sign, s = s[:1], s[1:]
	}
	prefixed := len(s) > 2 && s[0] == '0' && strings.IndexByte("xXoObB", s[1]) >= 0
	if prefixed {
		pb := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		if base != 0 && base != pb {
			return 0, false
		}
		base, s = pb, strings.TrimPrefix(s[2:], "_")
	} else if base == 0 {
		if len(strings.TrimLeft(s, "0_")) > 0 && s[0] == '0' {
			return 0, false // 010 is no int literal
		}
		base = 10
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") || base < 2 || base > 36 {
		return 0, false
	}
	n, err := strconv.ParseInt(sign+strings.ReplaceAll(s, "_", ""), base, 64)
	return int(n), err == nil
}

// chatParsePyFloat is Python's float() of a string.
func chatParsePyFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity", "nan":
	default:
		if strings.ContainsAny(s, "xXpP") {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

// chatFilterFloat is Jinja's float(default=0.0).
func chatFilterFloat(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "float", "default")
	if err != nil {
		return exec.AsValue(err)
	}
	def := exec.AsValue(0.0)
	if args[0] != nil {
		def = args[0]
	}
	if chatIsUndefined(in) {
		return exec.AsValue(chatUndefinedError("float() of"))
	}
	if f, _, ok := chatPyNumber(in); ok {
		return exec.AsValue(f)
	}
	if in.IsString() {
		if f, ok := chatParsePyFloat(in.String()); ok {
			return exec.AsValue(f)
		}
	}
	return def
}

// chatFilterAbs is Python's abs().
func chatFilterAbs(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	f, isInt, ok := chatPyNumber(in)
	switch {
	case !ok:
		return exec.AsValue(fmt.Errorf("TypeError: bad operand type for abs(): '%s'", chatTypeName(in)))
	case isInt:
		return exec.AsValue(max(chatInt(in), -chatInt(in)))
	}
	return exec.AsValue(max(f, -f))
}

// chatHashKey is a value as a Python set or dict sees it: equal numbers
// (1, 1.0, True) are one key; ok is false for lists and dicts, which are
// unhashable.
func chatHashKey(v *exec.Value) (any, bool) {
	switch {
	case chatIsUndefined(v):
		return "undefined", true
	case chatIsNone(v):
		return chatNone, true
	case v.IsString():
		return "s" + v.String(), true
	}
	if f, isInt, ok := chatPyNumber(v); ok {
		if isInt {
			return float64(chatInt(v)), true
		}
		return f, true
	}
	if chatIsTuple(v) {
		parts := make([]string, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			k, ok := chatHashKey(v.Index(i))
			if !ok {
				return nil, false
			}
			parts = append(parts, fmt.Sprintf("%T:%v", k, k))
		}
		return "t" + strings.Join(parts, "\x00"), true
	}
	return nil, false
}

// chatFilterUnique is Jinja's unique(case_sensitive=False, attribute=None):
// the first of the items equal as Python compares them.
func chatFilterUnique(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "unique", "case_sensitive", "attribute")
	if err != nil {
		return exec.AsValue(err)
	}
	caseSensitive := args[0] != nil && chatTruth(args[0])
	attribute := ""
	if args[1] != nil {
		attribute = chatPyStr(args[1])
	}
	seen := map[any]bool{}
	var out []any
	for _, item := range chatIter(in) {
		k, ok := chatHashKey(chatSortKey(item, attribute, caseSensitive))
		if !ok {
			return exec.AsValue(fmt.Errorf("TypeError: unhashable type: '%s'", chatTypeName(item)))
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, item.Interface())
		}
	}
	return exec.AsValue(out)
}

// chatMinMax is Jinja's min and max(case_sensitive=False, attribute=None):
// the item, not its attribute; undefined for an empty sequence.
func chatMinMax(name string, wantMax bool) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
		args, err := chatFilterArgs(va, name, "case_sensitive", "attribute")
		if err != nil {
			return exec.AsValue(err)
		}
		caseSensitive := args[0] != nil && chatTruth(args[0])
		attribute := ""
		if args[1] != nil {
			attribute = chatPyStr(args[1])
		}
		var best, bestKey *exec.Value
		for _, item := range chatIter(in) {
			k := chatSortKey(item, attribute, caseSensitive)
			if best == nil {
				best, bestKey = item, k
				continue
			}
			c, ok := chatOrder(k, bestKey)
			if !ok {
				return exec.AsValue(fmt.Errorf("TypeError: '<' not supported between instances of '%s' and '%s'", chatTypeName(k), chatTypeName(bestKey)))
			}
			if wantMax && c > 0 || !wantMax && c < 0 {
				best, bestKey = item, k
			}
		}
		if best == nil {
			return exec.AsValue(nil)
		}
		return best
	}
}

// chatFilterSort is Jinja's sort(reverse=False, case_sensitive=False,
// attribute=None), stable, Python's ordering.
func chatFilterSort(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "sort", "reverse", "case_sensitive", "attribute")
	if err != nil {
		return exec.AsValue(err)
	}
	reverse := args[0] != nil && chatTruth(args[0])
	caseSensitive := args[1] != nil && chatTruth(args[1])
	attribute := ""
	if args[2] != nil {
		attribute = chatPyStr(args[2])
	}
	items := chatIter(in)
	keys := make([]*exec.Value, len(items))
	for i, it := range items {
		keys[i] = chatSortKey(it, attribute, caseSensitive)
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var cmpErr error
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if reverse {
			ka, kb = kb, ka
		}
		c, ok := chatOrder(ka, kb)
		if !ok && cmpErr == nil {
			cmpErr = fmt.Errorf("TypeError: '<' not supported between instances of '%s' and '%s'", chatTypeName(ka), chatTypeName(kb))
		}
		return c < 0
	})
	if cmpErr != nil {
		return exec.AsValue(cmpErr)
	}
	out := make([]any, len(idx))
	for i, j := range idx {
		out[i] = items[j].Interface()
	}
	return exec.AsValue(out)
}

// chatFilterFormat is Jinja's format: value % args, or % kwargs.
func chatFilterFormat(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if len(va.Args) > 0 && len(va.KwArgs) > 0 {
		return exec.AsValue(errors.New("format: can't handle positional and keyword arguments at the same time"))
	}
	var args *exec.Value
	if len(va.KwArgs) > 0 {
		keys := make([]string, 0, len(va.KwArgs))
		for k := range va.KwArgs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := exec.NewDict()
		for _, k := range keys {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: va.KwArgs[k]})
		}
		args = exec.AsValue(d)
	} else {
		args = exec.AsValue(chatTuple(chatValues(va.Args)))
	}
	format := in
	if !in.IsString() {
		format = exec.AsValue(chatPyStr(in))
	}
	out, err := chatPercent(format, args)
	if err != nil {
		return exec.AsValue(err)
	}
	return out
}

// chatFilterCenter is Jinja's center(width=80): str.center of str(value).
func chatFilterCenter(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "center", "width")
	if err != nil {
		return exec.AsValue(err)
	}
	width := exec.AsValue(80)
	if args[0] != nil {
		width = args[0]
	}
	out, err := chatJustMethod("center")(chatPyStr(in), in, &exec.VarArgs{Args: []*exec.Value{width}, KwArgs: map[string]*exec.Value{}})
	if err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(out)
}

// chatFilterWordcount is Jinja's wordcount: the runs of word characters
// (\w) in str(value).
func chatFilterWordcount(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	n, inWord := 0, false
	for _, r := range chatPyStr(in) {
		w := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.IsNumber(r)
		if w && !inWord {
			n++
		}
		inWord = w
	}
	return exec.AsValue(n)
}

// chatListMethods are the list (and tuple) methods Jinja's sandbox allows
// that gonja lacks.
var chatListMethods = map[string]exec.Method[[]any]{
	"index": func(_ []any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) < 1 || len(va.Args) > 3 || len(va.KwArgs) > 0 {
			return nil, errors.New("index() takes 1 to 3 positional arguments")
		}
		n := self.Len()
		lo, hi := chatRuneRange(n, va.Args[1:])
		for i := lo; i < hi; i++ {
			if chatEqual(self.Index(i), va.Args[0]) {
				return i, nil
			}
		}
		return nil, fmt.Errorf("ValueError: %s is not in list", chatPyRepr(va.Args[0]))
	},
	"count": func(_ []any, self *exec.Value, va *exec.VarArgs) (any, error) {
		if len(va.Args) != 1 || len(va.KwArgs) > 0 {
			return nil, errors.New("count() takes exactly one argument")
		}
		c := 0
		for i := 0; i < self.Len(); i++ {
			if chatEqual(self.Index(i), va.Args[0]) {
				c++
			}
		}
		return c, nil
	},
}

// chatStrJoin is str.join(iterable): the items must be strings.
func chatStrJoin(s string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	if len(va.Args) != 1 || len(va.KwArgs) > 0 {
		return nil, errors.New("join() takes exactly one argument")
	}
	it := va.Args[0]
	if chatIsUndefined(it) || !(it.IsString() || it.IsList() || it.IsDict()) || chatIsNamespace(it) {
		return nil, errors.New("TypeError: can only join an iterable")
	}
	var parts []string
	for i, item := range chatIter(it) {
		if !item.IsString() {
			return nil, fmt.Errorf("TypeError: sequence item %d: expected str instance, %s found", i, chatTypeName(item))
		}
		parts = append(parts, item.String())
	}
	return strings.Join(parts, s), nil
}

// chatDictFunc is Python's dict(mapping=(), **kwargs); keywords come in
// sorted order (gonja passes them in a map).
func chatDictFunc(va *exec.VarArgs) (*exec.Value, error) {
	if len(va.Args) > 1 {
		return nil, fmt.Errorf("TypeError: dict expected at most 1 argument, got %d", len(va.Args))
	}
	d := exec.NewDict()
	add := func(k, v *exec.Value) {
		for _, p := range d.Pairs {
			if chatEqual(p.Key, k) {
				p.Value = v
				return
			}
		}
		d.Pairs = append(d.Pairs, &exec.Pair{Key: k, Value: v})
	}
	if len(va.Args) == 1 {
		m := va.Args[0]
		switch {
		case m.IsDict() && !chatIsNamespace(m):
			for _, p := range chatDictPairs(m) {
				add(p.Key, p.Value)
			}
		case m.IsList():
			for _, item := range chatIter(m) {
				if !item.IsList() || item.Len() != 2 {
					return nil, errors.New("ValueError: dictionary update sequence element has the wrong length")
				}
				add(item.Index(0), item.Index(1))
			}
		default:
			return nil, fmt.Errorf("TypeError: '%s' object is not iterable", chatTypeName(m))
		}
	}
	keys := make([]string, 0, len(va.KwArgs))
	for k := range va.KwArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(exec.AsValue(k), va.KwArgs[k])
	}
	if len(d.Pairs) == 0 {
		return exec.AsValue(chatEmptyDict{}), nil
	}
	return exec.AsValue(d), nil
}

// chatFilterTruncate is Jinja's truncate(length=255, killwords=False,
// end='...', leeway=5): a string up to length+leeway characters stays; a
// longer one is cut to length-len(end) characters, then at its last space
// unless killwords, and end is added.
func chatFilterTruncate(_ *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	args, err := chatFilterArgs(va, "truncate", "length", "killwords", "end", "leeway")
	if err != nil {
		return exec.AsValue(err)
	}
	length, killwords, end, leeway := 255, false, "...", 5
	if args[0] != nil {
		length = args[0].Integer()
	}
	if args[1] != nil {
		killwords = chatTruth(args[1])
	}
	if args[2] != nil {
		end = chatPyStr(args[2])
	}
	if args[3] != nil && !chatIsNone(args[3]) {
		leeway = args[3].Integer()
	}
	runes := []rune(chatPyStr(in))
	endLen := len([]rune(end))
	if length < endLen {
		return exec.AsValue(fmt.Errorf("AssertionError: expected length >= %d, got %d", endLen, length))
	}
	if len(runes) <= length+leeway {
		return in
	}
	cut := string(runes[:length-endLen])
	if !killwords {
		if i := strings.LastIndexByte(cut, ' '); i >= 0 {
			cut = cut[:i]
		}
	}
	return exec.AsValue(cut + end)
}
