package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Python's semantics for the values of a chat template, where gonja's
// differ: the operators (chatArith, chatCompare), truth (chatTruth), str()
// and repr() (chatPyStr, chatPyRepr), tuples and undefined values. The
// guard (chatGuard) routes gonja's operators, "not", unary signs and
// {{ ... }} here.

// chatTuple is a Python tuple: gonja iterates and indexes it as a list, but
// it prints as (a, b) and never equals a list.
type chatTuple []any

func (t chatTuple) String() string { return chatPyRepr(exec.AsValue(t)) }

func chatIsTuple(v *exec.Value) bool {
	if v == nil {
		return false
	}
	_, ok := v.Interface().(chatTuple)
	return ok
}

// chatEmptyDict is an empty dict. gonja's *exec.Dict is a struct, true in
// any condition; an empty map is false, as {} is in Python ({% if
// tool.parameters.properties %} with "properties": {}).
type chatEmptyDict map[string]any

func (chatEmptyDict) String() string { return "{}" }

// chatUndefinedError is Jinja's UndefinedError: an undefined value used
// other than printed, tested or iterated.
func chatUndefinedError(what string) error {
	return fmt.Errorf("UndefinedError: %s an undefined value", what)
}

// chatIsUndefined reports an undefined value (gonja's nil; None is chatNone).
func chatIsUndefined(v *exec.Value) bool {
	return v == nil || v.IsNil()
}

// chatTruth is Python's bool(v).
func chatTruth(v *exec.Value) bool {
	switch {
	case chatIsUndefined(v), chatIsNone(v):
		return false
	case chatIsNamespace(v):
		return true
	case v.IsBool():
		return v.Bool()
	case v.IsInteger():
		return v.Integer() != 0
	case v.IsFloat():
		return v.Float() != 0
	case v.IsString(), v.IsList(), v.IsDict():
		return v.Len() > 0
	}
	return v.IsTrue()
}

// chatPyStr is Python's str(v); an undefined value prints as nothing.
func chatPyStr(v *exec.Value) string {
	switch {
	case chatIsUndefined(v):
		return ""
	case v.IsString():
		return v.String()
	}
	return chatPyRepr(v)
}

// chatPyRepr is Python's repr(v), which str() of a list or dict uses for its
// items.
func chatPyRepr(v *exec.Value) string {
	var b strings.Builder
	chatWriteRepr(&b, v, 0)
	return b.String()
}

func chatWriteRepr(b *strings.Builder, v *exec.Value, depth int) {
	if depth > chatMaxDepth {
		b.WriteString("...")
		return
	}
	switch {
	case chatIsUndefined(v):
		b.WriteString("Undefined")
	case chatIsNone(v):
		b.WriteString("None")
	case v.IsError():
		b.WriteString(v.Error())
	case chatIsMarkup(v):
		b.WriteString("Markup(")
		chatWriteStrRepr(b, v.String())
		b.WriteByte(')')
	case v.IsString():
		chatWriteStrRepr(b, v.String())
	case v.IsBool():
		if v.Bool() {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case v.IsInteger():
		b.WriteString(strconv.Itoa(v.Integer()))
	case v.IsFloat():
		b.WriteString(chatPyFloat(v.Float()))
	case chatIsNamespace(v):
		b.WriteString("<Namespace {")
		ns := v.Interface().(chatNamespace)
		keys := make([]string, 0, len(ns))
		for k := range ns {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			chatWriteStrRepr(b, k)
			b.WriteString(": ")
			chatWriteRepr(b, exec.ToValue(ns[k]), depth+1)
		}
		b.WriteString("}>")
	case v.IsList():
		tuple := chatIsTuple(v)
		open, close := "[", "]"
		if tuple {
			open, close = "(", ")"
		}
		b.WriteString(open)
		n := v.Len()
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			chatWriteRepr(b, v.Index(i), depth+1)
		}
		if tuple && n == 1 {
			b.WriteByte(',')
		}
		b.WriteString(close)
	case v.IsDict():
		b.WriteByte('{')
		for i, p := range chatDictPairs(v) {
			if i > 0 {
				b.WriteString(", ")
			}
			chatWriteRepr(b, p.Key, depth+1)
			b.WriteString(": ")
			chatWriteRepr(b, p.Value, depth+1)
		}
		b.WriteByte('}')
	default:
		b.WriteString(v.String())
	}
}

// chatWriteStrRepr writes Python's repr of a string: single quotes unless
// the string has one and no double quote, backslash escapes for the quote,
// backslash and characters that are not printable.
func chatWriteStrRepr(b *strings.Builder, s string) {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == ' ' || r > 0x7e && unicode.IsPrint(r) || r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
}

// chatTypeError is the TypeError of an operator between unsupported types.
func chatTypeError(op string, l, r *exec.Value) error {
	return fmt.Errorf("TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op, chatTypeName(l), chatTypeName(r))
}

var errChatZeroDivision = errors.New("ZeroDivisionError: division by zero")

// chatArith is Python's l op r for + - * / // % ** and Jinja's ~.
func chatArith(l, r *exec.Value, op string) (*exec.Value, error) {
	if op == "~" {
		return exec.AsValue(chatPyStr(l) + chatPyStr(r)), nil
	}
	if chatIsUndefined(l) || chatIsUndefined(r) {
		return nil, chatUndefinedError("'" + op + "' on")
	}
	lf, lInt, lNum := chatPyNumber(l)
	rf, rInt, rNum := chatPyNumber(r)
	if lNum && rNum {
		if lInt && rInt {
			return chatIntArith(chatInt(l), chatInt(r), op)
		}
		return chatFloatArith(lf, rf, op)
	}
	switch op {
	case "+":
		switch {
		case l.IsString() && r.IsString() && (chatIsMarkup(l) || chatIsMarkup(r)):
			return exec.AsValue(chatEscape(l) + chatEscape(r)), nil
		case l.IsString() && r.IsString():
			return exec.AsValue(l.String() + r.String()), nil
		case l.IsString():
			return nil, fmt.Errorf("TypeError: can only concatenate str (not \"%s\") to str", chatTypeName(r))
		case l.IsList() && r.IsList() && chatIsTuple(l) == chatIsTuple(r):
			out := append(chatItemsOf(l), chatItemsOf(r)...)
			if chatIsTuple(l) {
				return exec.AsValue(chatTuple(out)), nil
			}
			return exec.AsValue(out), nil
		case l.IsList() && !chatIsTuple(l):
			return nil, fmt.Errorf("TypeError: can only concatenate list (not \"%s\") to list", chatTypeName(r))
		}
	case "*":
		seq, n := l, r
		if !rNum || !rInt {
			seq, n = r, l
		}
		if _, isInt, ok := chatPyNumber(n); ok && isInt && (seq.IsString() || seq.IsList()) {
			times := max(chatInt(n), 0)
			if chatIsMarkup(seq) {
				return exec.AsValue(chatMarkup(strings.Repeat(seq.String(), times))), nil
			}
			if seq.IsString() {
				return exec.AsValue(strings.Repeat(seq.String(), times)), nil
			}
			items := chatItemsOf(seq)
			out := make([]any, 0, len(items)*times)
			for range times {
				out = append(out, items...)
			}
			if chatIsTuple(seq) {
				return exec.AsValue(chatTuple(out)), nil
			}
			return exec.AsValue(out), nil
		}
	case "%":
		if l.IsString() {
			return chatPercent(l, r)
		}
	}
	return nil, chatTypeError(op, l, r)
}

// chatItemsOf copies the items of a list or tuple.
func chatItemsOf(v *exec.Value) []any {
	n := v.Len()
	out := make([]any, n)
	for i := range n {
		out[i] = v.Index(i).Interface()
	}
	return out
}

func chatIntArith(a, b int, op string) (*exec.Value, error) {
	switch op {
	case "+":
		return exec.AsValue(a + b), nil
	case "-":
		return exec.AsValue(a - b), nil
	case "*":
		return exec.AsValue(a * b), nil
	case "/":
		if b == 0 {
			return nil, errChatZeroDivision
		}
		return exec.AsValue(float64(a) / float64(b)), nil
	case "//", "%":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: integer division or modulo by zero")
		}
		q, m := a/b, a%b
		if m != 0 && (m < 0) != (b < 0) {
			q, m = q-1, m+b
		}
		if op == "//" {
			return exec.AsValue(q), nil
		}
		return exec.AsValue(m), nil
	case "**":
		if b < 0 {
			return exec.AsValue(math.Pow(float64(a), float64(b))), nil
		}
		switch {
		case a == 1 || b == 0:
			return exec.AsValue(1), nil
		case a == 0:
			return exec.AsValue(0), nil
		case a == -1:
			return exec.AsValue(1 - 2*(b%2)), nil
		}
		out := 1 // |a| >= 2: overflows within 64 steps
		for range b {
			next := out * a
			if next/a != out {
				// Python's ints do not overflow; moco's are 64-bit.
				return exec.AsValue(math.Pow(float64(a), float64(b))), nil
			}
			out = next
		}
		return exec.AsValue(out), nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func chatFloatArith(a, b float64, op string) (*exec.Value, error) {
	switch op {
	case "+":
		return exec.AsValue(a + b), nil
	case "-":
		return exec.AsValue(a - b), nil
	case "*":
		return exec.AsValue(a * b), nil
	case "/":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: float division by zero")
		}
		return exec.AsValue(a / b), nil
	case "//":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: float floor division by zero")
		}
		return exec.AsValue(math.Floor(a / b)), nil
	case "%":
		if b == 0 {
			return nil, errors.New("ZeroDivisionError: float modulo")
		}
		m := math.Mod(a, b)
		if m != 0 && (m < 0) != (b < 0) {
			m += b
		}
		return exec.AsValue(m), nil
	case "**":
		return exec.AsValue(math.Pow(a, b)), nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

// chatCompare is Python's l op r for < <= > >=: numbers with numbers,
// strings with strings, lists (and tuples) item by item; anything else, an
// undefined value included, is an error.
func chatCompare(l, r *exec.Value, op string) (bool, error) {
	if chatIsUndefined(l) || chatIsUndefined(r) {
		return false, chatUndefinedError("'" + op + "' on")
	}
	c, ok := chatOrder(l, r)
	if !ok {
		return false, fmt.Errorf("TypeError: '%s' not supported between instances of '%s' and '%s'", op, chatTypeName(l), chatTypeName(r))
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case ">=":
		return c >= 0, nil
	}
	return false, fmt.Errorf("unknown operator %s", op)
}

// chatOrder orders two values as Python does (-1, 0, 1); ok is false for
// values Python cannot order.
func chatOrder(l, r *exec.Value) (int, bool) {
	lf, lInt, lNum := chatPyNumber(l)
	rf, rInt, rNum := chatPyNumber(r)
	cmp := func(less, greater bool) int {
		switch {
		case less:
			return -1
		case greater:
			return 1
		}
		return 0
	}
	switch {
	case lNum && rNum && lInt && rInt:
		a, b := chatInt(l), chatInt(r)
		return cmp(a < b, a > b), true
	case lNum && rNum:
		return cmp(lf < rf, lf > rf), true
	case l.IsString() && r.IsString():
		return strings.Compare(l.String(), r.String()), true
	case l.IsList() && r.IsList() && chatIsTuple(l) == chatIsTuple(r):
		n, m := l.Len(), r.Len()
		for i := 0; i < n && i < m; i++ {
			a, b := l.Index(i), r.Index(i)
			if !chatEqual(a, b) {
				return chatOrder(a, b)
			}
		}
		return cmp(n < m, n > m), true
	}
	return 0, false
}

// chatUnary is Python's -v and +v.
func chatUnary(v *exec.Value, op string) (*exec.Value, error) {
	if chatIsUndefined(v) {
		return nil, chatUndefinedError("unary " + op + " on")
	}
	f, isInt, ok := chatPyNumber(v)
	switch {
	case !ok:
		return nil, fmt.Errorf("TypeError: bad operand type for unary %s: '%s'", op, chatTypeName(v))
	case isInt && op == "-":
		return exec.AsValue(-chatInt(v)), nil
	case isInt:
		return exec.AsValue(chatInt(v)), nil
	case op == "-":
		return exec.AsValue(-f), nil
	}
	return exec.AsValue(f), nil
}

// chatPyFuncs are the functions the guard calls in place of gonja's
// evaluation (chatGuarder.pyNode).
var chatPyFuncs = map[string]any{
	chatNotName: func(va *exec.VarArgs) (*exec.Value, error) {
		if len(va.Args) != 1 {
			return nil, errors.New("moco_not takes one argument")
		}
		return exec.AsValue(!chatTruth(va.Args[0])), nil
	},
	chatUnaryName: func(va *exec.VarArgs) (*exec.Value, error) {
		if len(va.Args) != 2 {
			return nil, errors.New("moco_unary takes two arguments")
		}
		return chatUnary(va.Args[0], va.Args[1].String())
	},
	chatTupleName: func(va *exec.VarArgs) (*exec.Value, error) {
		out := make(chatTuple, len(va.Args))
		for i, a := range va.Args {
			out[i] = a.Interface()
		}
		return exec.AsValue(out), nil
	},
	chatDictName: func(*exec.VarArgs) (*exec.Value, error) {
		return exec.AsValue(chatEmptyDict{}), nil
	},
	chatStrName: func(va *exec.VarArgs) (*exec.Value, error) {
		if len(va.Args) != 1 {
			return nil, errors.New("moco_str takes one argument")
		}
		return exec.AsValue(chatPyStr(va.Args[0])), nil
	},
}
