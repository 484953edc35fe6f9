package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// chatPercent is format % args, for a Markup format too: Markup escapes
// the strings it formats in.
func chatPercent(format, args *exec.Value) (*exec.Value, error) {
	if !chatIsMarkup(format) {
		s, err := chatPercentFormat(format.String(), args)
		if err != nil {
			return nil, err
		}
		return exec.AsValue(s), nil
	}
	esc := func(v *exec.Value) any {
		if v.IsString() {
			return chatEscape(v)
		}
		return v.Interface()
	}
	switch {
	case chatIsTuple(args):
		items := make(chatTuple, args.Len())
		for i := range items {
			items[i] = esc(args.Index(i))
		}
		args = exec.AsValue(items)
	case args.IsDict() && !chatIsNamespace(args):
		d := exec.NewDict()
		for _, p := range chatDictPairs(args) {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Key, Value: exec.AsValue(esc(p.Value))})
		}
		args = exec.AsValue(d)
	default:
		args = exec.AsValue(esc(args))
	}
	s, err := chatPercentFormat(format.String(), args)
	if err != nil {
		return nil, err
	}
	return exec.AsValue(chatMarkup(s)), nil
}

// chatPercentFormat is Python's printf-style formatting, format % args,
// which both the % operator and Jinja's format filter use: args is a tuple
// of the values, a mapping for %(name)s, or a single value.
func chatPercentFormat(format string, args *exec.Value) (string, error) {
	var list []*exec.Value
	var mapping *exec.Value
	switch {
	case chatIsTuple(args):
		for i := 0; i < args.Len(); i++ {
			list = append(list, args.Index(i))
		}
	case args != nil && args.IsDict() && !chatIsNamespace(args):
		mapping = args
		list = []*exec.Value{args}
	default:
		list = []*exec.Value{args}
	}
	next := 0
	arg := func() (*exec.Value, error) {
		if next >= len(list) {
			return nil, errors.New("TypeError: not enough arguments for format string")
		}
		next++
		return list[next-1], nil
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("ValueError: incomplete format")
		}
		var value *exec.Value
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 {
				return "", errors.New("ValueError: incomplete format key")
			}
			if mapping == nil {
				return "", errors.New("TypeError: format requires a mapping")
			}
			key := format[i+1 : i+end]
			found := false
			for _, p := range chatDictPairs(mapping) {
				if p.Key.IsString() && p.Key.String() == key {
					value, found = p.Value, true
					break
				}
			}
			if !found {
				return "", fmt.Errorf("KeyError: '%s'", key)
			}
			i += end + 1
		}
		spec := chatPercentSpec{precision: -1}
	flags:
		for ; i < len(format); i++ {
			switch format[i] {
			case '-':
				spec.left = true
			case '+':
				spec.plus = true
			case ' ':
				spec.space = true
			case '#':
				spec.alt = true
			case '0':
				spec.zero = true
			default:
				break flags
			}
		}
		number := func() (int, error) {
			if i < len(format) && format[i] == '*' {
				i++
				v, err := arg()
				if err != nil {
					return 0, err
				}
				if !v.IsInteger() || v.IsBool() {
					return 0, errors.New("TypeError: * wants int")
				}
				return v.Integer(), nil
			}
			n := 0
			for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
				n = min(n*10+int(format[i]-'0'), 1<<30)
			}
			return n, nil
		}
		var err error
		if spec.width, err = number(); err != nil {
			return "", err
		}
		if spec.width < 0 {
			spec.left, spec.width = true, -spec.width
		}
		if i < len(format) && format[i] == '.' {
			i++
			if spec.precision, err = number(); err != nil {
				return "", err
			}
			spec.precision = max(spec.precision, 0)
		}
		for i < len(format) && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L') {
			i++
		}
		if i >= len(format) {
			return "", errors.New("ValueError: incomplete format")
		}
		verb := format[i]
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if value == nil {
			if value, err = arg(); err != nil {
				return "", err
			}
		}
		s, err := spec.format(verb, value)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	if next < len(list) && mapping == nil {
		return "", errors.New("TypeError: not all arguments converted during string formatting")
	}
	return b.String(), nil
}

type chatPercentSpec struct {
	left, plus, space, alt, zero bool
	width, precision             int
}

// format formats one value for the conversion verb.
func (s chatPercentSpec) format(verb byte, v *exec.Value) (string, error) {
	var body, sign, prefix string
	numeric := true
	switch verb {
	case 's', 'r', 'a':
		numeric = false
		switch verb {
		case 's':
			body = chatPyStr(v)
		case 'r':
			body = chatPyRepr(v)
		default:
			body = strconv.QuoteToASCII(chatPyRepr(v))
			body = body[1 : len(body)-1]
		}
		if s.precision >= 0 && utf8.RuneCountInString(body) > s.precision {
			body = string([]rune(body)[:s.precision])
		}
	case 'c':
		numeric = false
		switch {
		case v.IsString() && utf8.RuneCountInString(v.String()) == 1:
			body = v.String()
		case v.IsInteger() && !v.IsBool() && v.Integer() >= 0 && v.Integer() <= utf8.MaxRune:
			body = string(rune(v.Integer()))
		default:
			return "", errors.New("TypeError: %c requires an int or a unicode character")
		}
	case 'd', 'i', 'u', 'o', 'x', 'X':
		f, isInt, ok := chatPyNumber(v)
		if !ok || !isInt && verb != 'd' && verb != 'i' && verb != 'u' {
			what := "a real number"
			if verb == 'o' || verb == 'x' || verb == 'X' {
				what = "an integer"
			}
			return "", fmt.Errorf("TypeError: %%%c format: %s is required, not %s", verb, what, chatTypeName(v))
		}
		var n int64
		if isInt {
			n = int64(chatInt(v))
		} else {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return "", errors.New("ValueError: cannot convert float NaN or infinity to integer")
			}
			n = int64(f) // truncates, as int() does
		}
		if n < 0 {
			sign, n = "-", -n
		}
		switch verb {
		case 'o':
			body = strconv.FormatInt(n, 8)
			if s.alt {
				prefix = "0o"
			}
		case 'x', 'X':
			body = strconv.FormatInt(n, 16)
			if s.alt {
				prefix = "0" + string(verb)
			}
			if verb == 'X' {
				body = strings.ToUpper(body)
			}
		default:
			body = strconv.FormatInt(n, 10)
		}
		if s.precision >= 0 && len(body) < s.precision {
			body = strings.Repeat("0", s.precision-len(body)) + body
		}
	case 'e', 'E', 'f', 'F', 'g', 'G':
		f, _, ok := chatPyNumber(v)
		if !ok {
			return "", fmt.Errorf("TypeError: must be real number, not %s", chatTypeName(v))
		}
		if math.Signbit(f) && !math.IsNaN(f) {
			sign, f = "-", -f
		}
		p := s.precision
		if p < 0 {
			p = 6
		}
		lower := verb | 0x20
		switch {
		case math.IsInf(f, 0):
			body = "inf"
		case math.IsNaN(f):
			body = "nan"
		case lower == 'g' && s.alt:
			body = fmt.Sprintf("%#.*g", max(p, 1), f)
		case lower == 'g':
			body = strconv.FormatFloat(f, 'g', max(p, 1), 64)
		default:
			body = strconv.FormatFloat(f, lower, p, 64)
			if s.alt && p == 0 && lower == 'f' {
				body += "."
			}
		}
		if verb != lower {
			body = strings.ToUpper(body)
		}
	default:
		return "", fmt.Errorf("ValueError: unsupported format character '%c'", verb)
	}
	if numeric && sign == "" {
		if s.plus {
			sign = "+"
		} else if s.space {
			sign = " "
		}
	}
	sign += prefix
	pad := s.width - utf8.RuneCountInString(sign+body)
	switch {
	case pad <= 0:
		return sign + body, nil
	case s.left:
		return sign + body + strings.Repeat(" ", pad), nil
	case s.zero && numeric:
		return sign + strings.Repeat("0", pad) + body, nil
	}
	return strings.Repeat(" ", pad) + sign + body, nil
}
