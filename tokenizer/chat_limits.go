package tokenizer

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// A chat template comes from a downloaded model folder and is a program:
// {{ 'x' * 2000000000 }}, a string doubled in a loop, nested loops over
// range(100000) or endless macro recursion would take the machine's memory
// or never end. Every render therefore runs on a budget (ChatLimits):
//
//   - the rendered text, and any one string or list built on the way, is at
//     most MaxOutput bytes (elements), checked before the string is built;
//   - the strings built in all are at most MaxBuilt bytes;
//   - loop iterations, macro calls, filter and method calls are at most
//     MaxSteps in all, and the render stops after Timeout.
//
// The checks are added to the parsed template (chatGuard): the operators
// become calls of moco_binop (which also gives them Python's semantics,
// chat_py.go), every loop's iterable passes through moco_iter and its body
// starts with moco_tick, and filters and methods are wrapped. Exceeding a
// limit ends the render with a *ChatLimitError. Names starting with moco_
// are reserved.

// ChatLimits bound one render of a chat template. Zero fields take the
// defaults (DefaultChatLimits).
type ChatLimits struct {
	// MaxOutput bounds the rendered text and any one string or list built
	// while rendering, in bytes (elements for lists). It is raised to four
	// times the size of the template's variables when those are larger.
	MaxOutput int
	// MaxBuilt bounds the bytes of all the strings built while rendering.
	MaxBuilt int64
	// MaxSteps bounds loop iterations, macro calls and filter and method
	// calls, together. It is raised to the size of the template's variables
	// in bytes when that is larger.
	MaxSteps int
	// Timeout bounds the time of one render; a second is added per MB of
	// the template's variables.
	Timeout time.Duration
}

// DefaultChatLimits are far above what real chat templates need (a render
// of the longest conversations is a few MB and takes milliseconds).
var DefaultChatLimits = ChatLimits{MaxOutput: 16 << 20, MaxBuilt: 512 << 20, MaxSteps: 1 << 18, Timeout: 10 * time.Second}

// chatMaxRange bounds range(): a for loop materializes its items first.
const chatMaxRange = 100_000

// ChatLimitError reports a render stopped by ChatLimits, or by the macro
// recursion limit.
type ChatLimitError struct {
	Msg string
}

func (e *ChatLimitError) Error() string { return "chat template: " + e.Msg }

// chatBudget is the state of one render's limits.
type chatBudget struct {
	lim      ChatLimits
	deadline time.Time
	built    int64
	steps    int
	err      *ChatLimitError // the first limit hit
}

func newChatBudget(lim ChatLimits, inputSize int) *chatBudget {
	d := DefaultChatLimits
	if lim.MaxOutput <= 0 {
		lim.MaxOutput = d.MaxOutput
	}
	if lim.MaxBuilt <= 0 {
		lim.MaxBuilt = d.MaxBuilt
	}
	if lim.MaxSteps <= 0 {
		lim.MaxSteps = d.MaxSteps
	}
	if lim.Timeout <= 0 {
		lim.Timeout = d.Timeout
	}
	if inputSize > lim.MaxOutput/4 {
		lim.MaxOutput = 4 * inputSize
		lim.MaxBuilt = max(lim.MaxBuilt, 32*int64(inputSize))
	}
	// A long conversation takes a few steps per message: allow a step per
	// byte of input beyond the fixed bound.
	lim.MaxSteps = max(lim.MaxSteps, inputSize)
	lim.Timeout += time.Duration(inputSize>>20) * time.Second
	return &chatBudget{lim: lim, deadline: time.Now().Add(lim.Timeout)}
}

// fail records the first limit hit and returns it.
func (b *chatBudget) fail(format string, args ...any) error {
	if b.err == nil {
		b.err = &ChatLimitError{Msg: fmt.Sprintf(format, args...)}
	}
	return b.err
}

// step counts one loop iteration or call, charging built bytes of literal
// text it writes.
func (b *chatBudget) step(literal int) error {
	if b.err != nil {
		return b.err
	}
	b.steps++
	if b.steps > b.lim.MaxSteps {
		return b.fail("more than %d loop iterations and calls (limit)", b.lim.MaxSteps)
	}
	if b.steps%64 == 0 && time.Now().After(b.deadline) {
		return b.fail("rendering took longer than %v (limit)", b.lim.Timeout)
	}
	return b.build(literal, "the text")
}

// build checks that a string (or list) of n bytes (elements) may be built.
func (b *chatBudget) build(n int, what string) error {
	if b.err != nil {
		return b.err
	}
	if n > b.lim.MaxOutput {
		return b.fail("%s would be %d bytes, over the limit of %d", what, n, b.lim.MaxOutput)
	}
	b.built += int64(n)
	if b.built > b.lim.MaxBuilt {
		return b.fail("built more than %d bytes of text in all (limit)", b.lim.MaxBuilt)
	}
	return nil
}

// chatLimitWriter is the render's output, bounded by MaxOutput.
type chatLimitWriter struct {
	b   *chatBudget
	out strings.Builder
}

func (w *chatLimitWriter) Write(p []byte) (int, error) {
	if n := w.out.Len() + len(p); n > w.b.lim.MaxOutput {
		return 0, w.b.fail("the output would be more than %d bytes (limit)", w.b.lim.MaxOutput)
	}
	return w.out.Write(p)
}

// chatSize estimates the bytes a value takes as text, walking lists and
// dicts; it stops as soon as the size passes limit (and then returns more
// than limit). Nesting deeper than 64 counts as too large.
func chatSize(v *exec.Value, limit int) int {
	return chatSizeDepth(v, limit, 0)
}

func chatSizeDepth(v *exec.Value, limit, depth int) int {
	if v == nil {
		return 0
	}
	if depth > 64 {
		return limit + 1
	}
	switch {
	case v.IsString():
		return len(v.String())
	case v.IsList(), v.IsDict():
		n := 2
		v.Iterate(func(_, _ int, key, value *exec.Value) bool {
			n += 2 + chatSizeDepth(key, limit-n, depth+1)
			if value != nil {
				n += 2 + chatSizeDepth(value, limit-n, depth+1)
			}
			return n <= limit
		}, func() {})
		return n
	}
	return 8
}

// chatReserved rejects templates that name the guard's functions.
func chatReserved(src string) error {
	if i := strings.Index(src, "moco_"); i >= 0 {
		return fmt.Errorf("syntax error: line %d: names starting with moco_ are reserved", chatLine(src, i))
	}
	return nil
}

// Names of the guard's functions in the render's variables.
const (
	chatBinopName   = "moco_binop"
	chatIterName    = "moco_iter"
	chatTickName    = "moco_tick"
	chatBudgetKey   = "moco_budget"
	chatAcyclicName = "moco_acyclic"
	chatItemName    = "moco_item"  // x[i], see chatItem
	chatEqName      = "moco_eq"    // x == y and x != y, see chatEq
	chatNotName     = "moco_not"   // not x, see chatTruth
	chatUnaryName   = "moco_unary" // -x and +x, see chatUnary
	chatTupleName   = "moco_tuple" // (a, b), see chatTuple
	chatDictName    = "moco_dict"  // {}, see chatEmptyDict
	chatStrName     = "moco_str"   // {{ x }}, see chatPyStr
)

// chatGuard adds the budget checks to a parsed template: it visits every
// node, exported fields or not (gonja keeps set's expression unexported).
// On the way it replaces subscripts x[i] with moco_item (chatItem), which
// indexes as Python does, and the nodes gonja evaluates otherwise than
// Python with calls of moco's functions (chatGuarder.pyNode): operators,
// not, unary signs, tuples, {} and the printing of {{ ... }}.
//
// gonja (v2.9.1, the newest release) offers no supported way to bound a
// render: no context, no loop or output limit, no hook on operators. The
// guard therefore rewrites gonja's node tree, reaching unexported fields
// with reflect and unsafe. The exported nodes it edits are checked by the
// compiler; for the unexported fields (set's target and expression) a
// missing or retyped field is an error here, so a gonja upgrade that moves
// them fails every template with a set (and TestChatGuardKnowsGonja,
// which also pins gonja's version) instead of silently rendering
// unguarded.
func chatGuard(root *nodes.Template) error {
	g := &chatGuarder{seen: map[uintptr]bool{}}
	g.walk(reflect.ValueOf(root))
	return g.err
}

type chatGuarder struct {
	seen    map[uintptr]bool
	targets map[*nodes.GetItem]bool // set targets, left as gonja's nodes
	err     error                   // the first node the guard could not instrument
	// what was instrumented (tests)
	binops, loops, ticks, sets, items, eqs int
}

var (
	chatExprType  = reflect.TypeFor[nodes.Expression]()
	chatTokenType = reflect.TypeFor[*tokens.Token]()
	chatValueType = reflect.TypeFor[*exec.Value]()
	chatNodeType  = reflect.TypeFor[nodes.Node]()
)

func (g *chatGuarder) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || v.Type() == chatTokenType || v.Type() == chatValueType || g.seen[v.Pointer()] {
			return
		}
		g.seen[v.Pointer()] = true
		switch n := v.Interface().(type) {
		case *nodes.Wrapper:
			g.tickBody(n)
		case *nodes.Macro:
			if n.Wrapper != nil {
				g.tickBody(n.Wrapper)
			}
		case *controlStructures.SetControlStructure:
			g.guardSet(v.Elem())
		case *nodes.Output:
			// {{ x }} prints str(x), as Python does (chatPyStr).
			if !chatIsTick(n.Expression) {
				n.Expression = chatCall(chatStrName, n.Start, n.Expression)
				if n.Alternative != nil {
					n.Alternative = chatCall(chatStrName, n.Start, n.Alternative)
				}
			}
		case *controlStructures.ForControlStructure:
			if n.ObjectEvaluator != nil {
				n.ObjectEvaluator = chatCall(chatIterName, n.ObjectEvaluator.Position(), n.ObjectEvaluator)
				g.loops++
			}
		}
		g.walk(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		if (v.Type() == chatExprType || v.Type() == chatNodeType) && v.CanSet() {
			if call := g.pyNode(v.Elem().Interface()); call != nil {
				v.Set(reflect.ValueOf(call))
			}
		}
		// gonja indexes strings by byte and misses x[-len(x)]; moco_item
		// indexes as Python does (the node's other fields hold a Node).
		if (v.Type() == chatExprType || v.Type() == chatNodeType) && v.CanSet() {
			if it, ok := v.Elem().Interface().(*nodes.GetItem); ok && !g.targets[it] {
				obj, ok1 := it.Node.(nodes.Expression)
				key, ok2 := it.Arg.(nodes.Expression)
				if ok1 && ok2 {
					v.Set(reflect.ValueOf(chatCall(chatItemName, it.Location, obj, key, &nodes.String{Location: it.Location, Val: it.String()})))
					g.items++
				}
			}
		}
		g.walk(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !f.CanSet() && f.CanAddr() {
				f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
			}
			g.walk(f)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			g.walk(v.Index(i))
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			val := iter.Value()
			if val.Kind() == reflect.Interface && val.Type() == chatExprType && !val.IsNil() {
				// Map values are not addressable: guard a copy and store it.
				cp := reflect.New(chatExprType).Elem()
				cp.Set(val)
				g.walk(cp)
				v.SetMapIndex(iter.Key(), cp)
				continue
			}
			g.walk(val)
		}
	}
}

// guardSet makes {% set ns.attr = value %} and {% set d[key] = value %}
// check that value does not hold ns or d (see chatRefers). The fields are
// unexported in gonja.
func (g *chatGuarder) guardSet(v reflect.Value) {
	field := func(name string) reflect.Value {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Type() != chatExprType {
			if g.err == nil {
				g.err = fmt.Errorf("chat template guard: gonja's %s has no field %s of type nodes.Expression (a gonja version this guard does not know)", v.Type(), name)
			}
			return reflect.Value{}
		}
		return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	}
	target, expr := field("target"), field("expression")
	if !target.IsValid() || !expr.IsValid() || target.IsNil() || expr.IsNil() {
		return
	}
	var obj nodes.Node
	switch t := target.Interface().(type) {
	case *nodes.GetAttribute:
		obj = t.Node
	case *nodes.GetItem:
		obj = t.Node
		if g.targets == nil {
			g.targets = map[*nodes.GetItem]bool{}
		}
		g.targets[t] = true
	}
	name, ok := obj.(*nodes.Name)
	if !ok {
		return
	}
	e := expr.Interface().(nodes.Expression)
	g.sets++
	expr.Set(reflect.ValueOf(chatCall(chatAcyclicName, e.Position(), e, &nodes.Name{Name: name.Name})))
}

// pyNode returns the call of moco's function that replaces a node whose
// evaluation in gonja differs from Python's, or nil: the operators (see
// chatArith, chatCompare, chatEqual), not, the unary signs, tuples and the
// empty dict.
func (g *chatGuarder) pyNode(n any) *nodes.Call {
	switch n := n.(type) {
	case *nodes.BinaryExpression:
		if n.Operator == nil || n.Operator.Token == nil {
			return nil
		}
		op := n.Operator.Token
		fn := ""
		switch op.Type {
		case tokens.Addition, tokens.Subtraction, tokens.Multiply, tokens.Division, tokens.FloorDivision,
			tokens.Modulo, tokens.Power, tokens.Tilde,
			tokens.LowerThan, tokens.LowerThanOrEqual, tokens.GreaterThan, tokens.GreaterThanOrEqual:
			fn = chatBinopName
			g.binops++
		case tokens.Equals, tokens.Ne:
			fn = chatEqName // gonja's == takes None for 0 and True for no number
			g.eqs++
		default:
			return nil
		}
		return chatCall(fn, op, n.Left, n.Right, &nodes.String{Location: op, Val: op.Val})
	case *nodes.Negation:
		return chatCall(chatNotName, n.Operator, n.Term)
	case *nodes.UnaryExpression:
		op := "+"
		if n.Negative {
			op = "-"
		}
		return chatCall(chatUnaryName, n.Operator, n.Term, &nodes.String{Location: n.Operator, Val: op})
	case *nodes.Tuple:
		return chatCall(chatTupleName, n.Location, n.Val...)
	case *nodes.Dict:
		if len(n.Pairs) == 0 {
			return chatCall(chatDictName, n.Token)
		}
	}
	return nil
}

// chatIsTick reports the moco_tick call tickBody puts first in a body.
func chatIsTick(e nodes.Expression) bool {
	if c, ok := e.(*nodes.Call); ok {
		if n, ok := c.Func.(*nodes.Name); ok && n.Name.Val == chatTickName {
			return true
		}
	}
	return false
}

func chatCall(name string, at *tokens.Token, args ...nodes.Expression) *nodes.Call {
	tok := &tokens.Token{Type: tokens.Name, Val: name}
	if at != nil {
		tok.Line, tok.Col, tok.Pos = at.Line, at.Col, at.Pos
	}
	return &nodes.Call{Location: tok, Func: &nodes.Name{Name: tok}, Args: args, Kwargs: map[string]nodes.Expression{}}
}

// tickBody starts a loop, macro or block body with moco_tick(n), n being
// the bytes of literal text the body writes itself.
func (g *chatGuarder) tickBody(w *nodes.Wrapper) {
	if len(w.Nodes) > 0 {
		if o, ok := w.Nodes[0].(*nodes.Output); ok && chatIsTick(o.Expression) {
			return
		}
	}
	literal := 0
	for _, n := range w.Nodes {
		if d, ok := n.(*nodes.Data); ok && d.Data != nil {
			literal += len(d.Data.Val)
		}
	}
	g.ticks++
	at := w.Location
	tick := &nodes.Output{Start: at, End: at, Expression: chatCall(chatTickName, at, &nodes.Integer{Location: at, Val: literal})}
	w.Nodes = append([]nodes.Node{tick}, w.Nodes...)
}

// chatBudgetVars returns the guard's functions bound to b, to add to the
// render's variables.
func chatBudgetVars(b *chatBudget) map[string]any {
	return map[string]any{
		chatBudgetKey: b,
		chatTickName: func(va *exec.VarArgs) (*exec.Value, error) {
			n := 0
			if len(va.Args) == 1 {
				n = va.Args[0].Integer()
			}
			if err := b.step(n); err != nil {
				return nil, err
			}
			return exec.AsValue(""), nil
		},
		chatAcyclicName: func(va *exec.VarArgs) (*exec.Value, error) {
			if len(va.Args) != 2 {
				return nil, errors.New("moco_acyclic takes two arguments")
			}
			if chatRefers(va.Args[0], va.Args[1], 0) {
				return nil, b.fail("set: a namespace, list or dict cannot contain itself")
			}
			return va.Args[0], nil
		},
		chatIterName: func(va *exec.VarArgs) (*exec.Value, error) {
			if len(va.Args) != 1 {
				return nil, errors.New("moco_iter takes one argument")
			}
			v := va.Args[0]
			if chatIsNamespace(v) || !chatIsUndefined(v) && !v.IsString() && !v.IsList() && !v.IsDict() {
				// gonja iterates None, numbers and booleans as empty
				// ({% for item in message.content %} with None content).
				return nil, fmt.Errorf("TypeError: '%s' object is not iterable", chatTypeName(v))
			}
			if v.IsString() || v.IsList() || v.IsDict() {
				if n := v.Len(); n > chatMaxRange {
					return nil, b.fail("a loop over %d items (limit %d)", n, chatMaxRange)
				}
			}
			return v, nil
		},
		chatBinopName: func(va *exec.VarArgs) (*exec.Value, error) {
			if len(va.Args) != 3 {
				return nil, errors.New("moco_binop takes three arguments")
			}
			l, r, op := va.Args[0], va.Args[1], va.Args[2].String()
			switch op {
			case "<", "<=", ">", ">=":
				c, err := chatCompare(l, r, op)
				if err != nil {
					return nil, err
				}
				return exec.AsValue(c), nil
			}
			if err := chatBinopSize(b, l, r, op); err != nil {
				return nil, err
			}
			return chatArith(l, r, op)
		},
		"range": func(va *exec.VarArgs) (*exec.Value, error) {
			start, stop, step := 0, 0, 1
			for _, a := range va.Args {
				if !a.IsInteger() {
					return nil, errors.New("range: arguments must be integers")
				}
			}
			switch len(va.Args) {
			case 1:
				stop = va.Args[0].Integer()
			case 2:
				start, stop = va.Args[0].Integer(), va.Args[1].Integer()
			case 3:
				start, stop, step = va.Args[0].Integer(), va.Args[1].Integer(), va.Args[2].Integer()
			default:
				return nil, errors.New("range: expected [start, ]stop[, step]")
			}
			if step == 0 {
				return nil, errors.New("range: step must not be zero")
			}
			n := 0
			if step > 0 && stop > start {
				n = int((int64(stop) - int64(start) + int64(step) - 1) / int64(step))
			} else if step < 0 && stop < start {
				n = int((int64(start) - int64(stop) - int64(step) - 1) / -int64(step))
			}
			if n > chatMaxRange {
				return nil, b.fail("range of %d numbers (limit %d)", n, chatMaxRange)
			}
			out := make([]int, n)
			for i := range out {
				out[i] = start + i*step
			}
			return exec.AsValue(out), nil
		},
		"lipsum": func(*exec.VarArgs) (*exec.Value, error) {
			return nil, errors.New("lipsum is not available in chat templates")
		},
	}
}

// chatBinopSize checks the size of what l op r builds (chatArith): a
// string or list repeated by *, strings or lists joined by + and the str()
// of both sides joined by ~.
func chatBinopSize(b *chatBudget, l, r *exec.Value, op string) error {
	if err := b.step(0); err != nil {
		return err
	}
	lim := b.lim.MaxOutput
	switch op {
	case "*":
		seq, n := l, r
		if !n.IsInteger() {
			seq, n = r, l
		}
		if !n.IsInteger() || !(seq.IsString() || seq.IsList()) {
			return nil
		}
		times := chatInt(n)
		if times <= 0 {
			return nil
		}
		size := seq.Len()
		if seq.IsString() {
			size = len(seq.String())
		}
		if size > 0 && times > lim/size {
			return b.fail("a string of %d bytes repeated %d times is over the limit of %d bytes", size, times, lim)
		}
		return b.build(size*times, "a repeated string")
	case "+":
		if l.IsList() && r.IsList() {
			return b.build(l.Len()+r.Len(), "a list")
		}
		if !(l.IsString() && r.IsString()) {
			return nil
		}
	case "~":
	default:
		return nil
	}
	n := chatSize(l, lim) + chatSize(r, lim)
	return b.build(n, "a string")
}

// chatGuardFilter wraps a filter with the budget: a step per call, a check
// of the arguments that size the result, and a check of the result.
func chatGuardFilter(name string, fn exec.FilterFunction) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
		v, _ := e.Environment.Context.Get(chatBudgetKey)
		b, ok := v.(*chatBudget)
		if !ok {
			return exec.AsValue(errors.New("chat template: the render budget is missing"))
		}
		if err := b.step(0); err != nil {
			return exec.AsValue(err)
		}
		if in != nil && in.IsError() {
			return in // gonja filters the failed value; default() even hid the error
		}
		if err := chatCheckIterable(name, in); err != nil {
			return exec.AsValue(err)
		}
		if err := chatPrecheck(b, name, in, va); err != nil {
			return exec.AsValue(err)
		}
		out := fn(e, in, va)
		if err := chatPostcheck(b, name, out); err != nil {
			return exec.AsValue(err)
		}
		if chatMarkupFilters[name] && chatIsMarkup(in) && out.IsString() && !chatIsMarkup(out) {
			return exec.AsValue(chatMarkup(out.String()))
		}
		return out
	}
}

// chatGuardMethod wraps a method like chatGuardFilter.
func chatGuardMethod[I any](b *chatBudget, name string, m exec.Method[I]) exec.Method[I] {
	return func(self I, selfValue *exec.Value, va *exec.VarArgs) (any, error) {
		if err := b.step(0); err != nil {
			return nil, err
		}
		if err := chatPrecheck(b, name, selfValue, va); err != nil {
			return nil, err
		}
		if err := chatNoCycle(b, name, selfValue, va); err != nil {
			return nil, err
		}
		out, err := m(self, selfValue, va)
		if err != nil {
			return nil, err
		}
		if err := chatPostcheck(b, name, exec.ToValue(out)); err != nil {
			return nil, err
		}
		return out, nil
	}
}

// chatPrecheck bounds, before the call, the filters and methods whose
// result can be much larger than their input.
func chatPrecheck(b *chatBudget, name string, in *exec.Value, va *exec.VarArgs) error {
	lim := b.lim.MaxOutput
	inLen := func() int { return chatSize(in, lim) }
	for _, a := range va.Args {
		if a.IsInteger() && a.Integer() > lim {
			// widths, counts and batch sizes
			return b.fail("%s(%d): over the limit of %d", name, a.Integer(), lim)
		}
	}
	for _, a := range va.KwArgs {
		if a.IsInteger() && a.Integer() > lim {
			return b.fail("%s(%d): over the limit of %d", name, a.Integer(), lim)
		}
	}
	switch name {
	case "replace":
		if len(va.Args) >= 2 && in.IsString() {
			s, old, nw := in.String(), va.Args[0].String(), va.Args[1].String()
			count := utf8.RuneCountInString(s) + 1
			if old != "" {
				count = strings.Count(s, old)
			}
			if len(nw) > len(old) && count > 0 && (len(nw)-len(old)) > (lim-len(s))/count {
				return b.fail("replace: the result would be over the limit of %d bytes", lim)
			}
		}
	case "join":
		sep := 0
		if len(va.Args) > 0 {
			sep = len(va.Args[0].String())
		}
		n := inLen()
		if (in.IsList() || in.IsDict()) && sep > 0 {
			if k := in.Len(); k > 0 && sep > (lim-n)/k {
				return b.fail("join: the result would be over the limit of %d bytes", lim)
			}
		}
		return b.build(n, "join's result")
	case "indent", "center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "wordwrap":
		width := 0
		for _, a := range va.Args {
			if a.IsInteger() {
				width = max(width, a.Integer())
			}
		}
		for _, a := range va.KwArgs {
			if a.IsInteger() {
				width = max(width, a.Integer())
			}
		}
		n := inLen()
		lines := 1
		if in.IsString() && (name == "indent" || name == "expandtabs") {
			lines += strings.Count(in.String(), "\n") + strings.Count(in.String(), "\t")
		}
		if width > 0 && lines > 0 && width > (lim-n)/lines {
			return b.fail("%s: the result would be over the limit of %d bytes", name, lim)
		}
		if name == "format" || name == "format_map" {
			// Go verbs with widths: "%999999999d".
			for _, w := range chatNumbers(in.String()) {
				if w > lim {
					return b.fail("format: a width of %d is over the limit of %d", w, lim)
				}
			}
		}
	case "tojson", "pprint", "string", "list", "urlencode", "escape", "e", "forceescape", "urlize", "xmlattr":
		// Escaping multiplies the size by at most 6.
		if n := inLen(); n > lim/6 {
			return b.fail("%s of %d bytes: the result could be over the limit of %d", name, n, lim)
		}
	}
	return nil
}

// chatPostcheck counts a call's result against the budget.
func chatPostcheck(b *chatBudget, name string, out *exec.Value) error {
	if out == nil || out.IsError() {
		return nil
	}
	switch {
	case out.IsString():
		return b.build(len(out.String()), name+"'s result")
	case out.IsList(), out.IsDict():
		return b.build(out.Len(), name+"'s result")
	}
	return nil
}

// chatNumbers returns the decimal numbers in s (up to 10 digits each; longer
// runs count as huge).
func chatNumbers(s string) []int {
	var out []int
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n := 0
		if j-i > 10 {
			n = min(1<<40, math.MaxInt)
		} else {
			for _, c := range s[i:j] {
				n = n*10 + int(c-'0')
			}
		}
		out = append(out, n)
		i = j
	}
	return out
}

// chatMethodsFor returns the methods of one render, wrapped with its budget.
func chatMethodsFor(b *chatBudget) exec.Methods {
	base := chatEnvironment().Methods
	str := map[string]exec.Method[string]{}
	for name, m := range chatStrMethodSet() {
		str[name] = chatGuardMethod(b, name, chatMarkupMethod(name, m))
	}
	dict := map[string]exec.Method[map[string]any]{}
	for name, m := range chatDictMethodSet() {
		dict[name] = chatGuardMethod(b, name, m)
	}
	list := map[string]exec.Method[[]any]{}
	for _, name := range []string{"append", "reverse", "copy", "pop", "extend", "insert", "remove", "sort", "clear"} {
		if m, ok := base.List.Get(name); ok {
			list[name] = chatGuardMethod(b, name, m)
		}
	}
	for name, m := range chatListMethods {
		list[name] = chatGuardMethod(b, name, m)
	}
	return exec.Methods{Bool: base.Bool, Int: base.Int, Float: base.Float,
		Str: exec.NewMethodSet(str), Dict: exec.NewMethodSet(dict), List: exec.NewMethodSet(list)}
}

// chatRefers reports whether v is, or holds within a few levels, the
// container target (the same list, dict or namespace): a container holding
// itself sends gonja's printing into endless recursion, which overflows
// the stack, an error no recover catches.
func chatRefers(v, target *exec.Value, depth int) bool {
	if v == nil || target == nil || depth > 16 {
		return false
	}
	if v == target || chatSameContainer(v.Val, target.Val) {
		return true
	}
	if !(v.IsList() || v.IsDict()) {
		return false
	}
	found := false
	v.Iterate(func(_, _ int, key, value *exec.Value) bool {
		found = chatRefers(key, target, depth+1) || value != nil && chatRefers(value, target, depth+1)
		return !found
	}, func() {})
	return found
}

func chatSameContainer(a, b reflect.Value) bool {
	for a.IsValid() && (a.Kind() == reflect.Interface || a.Kind() == reflect.Pointer) && !a.IsNil() {
		if a.Kind() == reflect.Pointer && a.Type() != chatValueType {
			break
		}
		a = a.Elem()
	}
	for b.IsValid() && (b.Kind() == reflect.Interface || b.Kind() == reflect.Pointer) && !b.IsNil() {
		if b.Kind() == reflect.Pointer && b.Type() != chatValueType {
			break
		}
		b = b.Elem()
	}
	if !a.IsValid() || !b.IsValid() || a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Map:
		return !a.IsNil() && a.Pointer() == b.Pointer()
	case reflect.Slice:
		return a.Cap() > 0 && b.Cap() > 0 && a.Pointer() == b.Pointer()
	case reflect.Pointer:
		return !a.IsNil() && a.Pointer() == b.Pointer()
	}
	return false
}

// chatNoCycle checks the arguments of the methods that store values in a
// container.
func chatNoCycle(b *chatBudget, name string, self *exec.Value, va *exec.VarArgs) error {
	switch name {
	case "append", "extend", "insert", "update", "setdefault":
	default:
		return nil
	}
	for _, a := range va.Args {
		if chatRefers(a, self, 0) {
			return b.fail("%s: a list or dict cannot contain itself", name)
		}
	}
	for _, a := range va.KwArgs {
		if chatRefers(a, self, 0) {
			return b.fail("%s: a list or dict cannot contain itself", name)
		}
	}
	return nil
}

var _ io.Writer = (*chatLimitWriter)(nil)
