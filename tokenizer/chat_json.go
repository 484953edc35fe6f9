package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// ChatMap is a JSON object that keeps the order of its keys, as Python dicts
// do. Templates show that order through tojson and items().
type ChatMap []ChatField

// ChatField is one key of a ChatMap.
type ChatField struct {
	Key   string
	Value any
}

// DecodeChatJSON decodes JSON for use as template data, keeping key order:
// objects become ChatMap, arrays []any, integers int64 (float64 beyond its
// range), other numbers float64, as Python's json.loads would type them.
func DecodeChatJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := chatDecodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func chatDecodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := ChatMap{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := chatDecodeValue(dec)
				if err != nil {
					return nil, err
				}
				// A repeated key keeps its first position and its last value, as in Python.
				replaced := false
				for i := range m {
					if m[i].Key == key {
						m[i].Value, replaced = v, true
						break
					}
				}
				if !replaced {
					m = append(m, ChatField{key, v})
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return m, nil
		case '[':
			list := []any{}
			for dec.More() {
				v, err := chatDecodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return list, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", s, err)
		}
		return f, nil
	default: // string, bool, nil
		return t, nil
	}
}

// chatNoneType is Python's None inside templates. gonja represents both None
// and undefined as nil; a distinct value lets "x is none", "x is defined",
// default() and printing ("None") follow Jinja. As an int kind it is falsy.
type chatNoneType int

func (chatNoneType) String() string { return "None" }

const (
	chatNone     chatNoneType = 0
	chatNoneName              = "moco_none" // the template name bound to chatNone
)

func chatIsNone(v *exec.Value) bool {
	if v == nil {
		return false
	}
	_, ok := v.Interface().(chatNoneType)
	return ok
}

// chatValue converts caller data into the values gonja works with: JSON
// objects become *exec.Dict (ordered; chatEmptyDict when empty), lists
// []any, numbers int or float64.
func chatValue(v any) (any, error) {
	return chatValueDepth(v, 0)
}

const chatMaxDepth = 200

func chatValueDepth(v any, depth int) (any, error) {
	if depth > chatMaxDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return chatNone, nil
	case string, bool, float64, int, chatNoneType:
		return x, nil
	case *exec.Value, *exec.Dict, exec.Dict:
		return x, nil
	case int64:
		return int(x), nil
	case int32:
		return int(x), nil
	case float32:
		return float64(x), nil
	case json.Number:
		return chatValueDepth(chatNumber(x), depth)
	case json.RawMessage:
		d, err := DecodeChatJSON(x)
		if err != nil {
			return nil, err
		}
		return chatValueDepth(d, depth)
	case ChatMap:
		if len(x) == 0 {
			return chatEmptyDict{}, nil
		}
		dict := exec.NewDict()
		for _, f := range x {
			cv, err := chatValueDepth(f.Value, depth+1)
			if err != nil {
				return nil, err
			}
			dict.Pairs = append(dict.Pairs, &exec.Pair{Key: exec.AsValue(f.Key), Value: exec.AsValue(cv)})
		}
		return dict, nil
	case map[string]any:
		if len(x) == 0 {
			return chatEmptyDict{}, nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dict := exec.NewDict()
		for _, k := range keys {
			cv, err := chatValueDepth(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			dict.Pairs = append(dict.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(cv)})
		}
		return dict, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			cv, err := chatValueDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = cv
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			cv, err := chatValueDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = cv
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	}
	// Other types (structs, typed maps and slices, other numbers) go through
	// encoding/json, which keeps struct field order.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Func || rv.Kind() == reflect.Chan {
		return nil, fmt.Errorf("unsupported type %T", v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	d, err := DecodeChatJSON(b)
	if err != nil {
		return nil, err
	}
	return chatValueDepth(d, depth)
}

func chatNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil && !strings.ContainsAny(string(n), ".eE") {
		return i
	}
	f, _ := n.Float64()
	return f
}

// chatJSONOptions are the arguments of transformers' tojson filter, which
// calls json.dumps with ensure_ascii=False by default.
type chatJSONOptions struct {
	indent      string // "" with hasIndent: newlines only
	hasIndent   bool
	itemSep     string
	keySep      string
	sortKeys    bool
	ensureASCII bool
}

// chatToJSON writes v as Python's json.dumps does.
func chatToJSON(v *exec.Value, o *chatJSONOptions) (string, error) {
	var b strings.Builder
	if err := chatWriteJSON(&b, v, o, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func chatWriteJSON(b *strings.Builder, v *exec.Value, o *chatJSONOptions, level int) error {
	if level > chatMaxDepth {
		return errors.New("tojson: value nested too deeply")
	}
	switch {
	case v == nil || v.IsNil():
		return errors.New("TypeError: Object of type Undefined is not JSON serializable")
	case chatIsNone(v):
		b.WriteString("null")
	case v.IsError():
		return errors.New(v.Error())
	case v.IsBool():
		if v.Bool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case v.IsInteger():
		b.WriteString(strconv.Itoa(v.Integer()))
	case v.IsFloat():
		b.WriteString(chatJSONFloat(v.Float()))
	case v.IsString():
		chatJSONString(b, v.String(), o.ensureASCII)
	case v.IsList():
		n := v.Len()
		if n == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			chatJSONNewline(b, o, level+1)
			if err := chatWriteJSON(b, v.Index(i), o, level+1); err != nil {
				return err
			}
		}
		chatJSONNewline(b, o, level)
		b.WriteByte(']')
	case v.IsDict():
		pairs := chatDictPairs(v)
		if len(pairs) == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := make([]string, len(pairs))
		for i, p := range pairs {
			k, err := chatJSONKey(p.Key)
			if err != nil {
				return err
			}
			keys[i] = k
		}
		order := make([]int, len(pairs))
		for i := range order {
			order[i] = i
		}
		if o.sortKeys {
			sort.SliceStable(order, func(i, j int) bool { return keys[order[i]] < keys[order[j]] })
		}
		b.WriteByte('{')
		for n, i := range order {
			if n > 0 {
				b.WriteString(o.itemSep)
			}
			chatJSONNewline(b, o, level+1)
			chatJSONString(b, keys[i], o.ensureASCII)
			b.WriteString(o.keySep)
			if err := chatWriteJSON(b, pairs[i].Value, o, level+1); err != nil {
				return err
			}
		}
		chatJSONNewline(b, o, level)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: object of type %T is not JSON serializable", v.Interface())
	}
	return nil
}

func chatJSONNewline(b *strings.Builder, o *chatJSONOptions, level int) {
	if !o.hasIndent {
		return
	}
	b.WriteByte('\n')
	for range level {
		b.WriteString(o.indent)
	}
}

// chatJSONKey converts a dict key as json.dumps does: strings as they are,
// numbers, booleans and None to their JSON text.
func chatJSONKey(k *exec.Value) (string, error) {
	switch {
	case k.IsString():
		return k.String(), nil
	case k.IsNil() || chatIsNone(k):
		return "null", nil
	case k.IsBool():
		if k.Bool() {
			return "true", nil
		}
		return "false", nil
	case k.IsInteger():
		return strconv.Itoa(k.Integer()), nil
	case k.IsFloat():
		return chatJSONFloat(k.Float()), nil
	}
	return "", fmt.Errorf("tojson: keys must be str, int, float, bool or None, not %T", k.Interface())
}

// chatDictPairs lists the entries of a gonja dict in its iteration order:
// insertion order for *exec.Dict, sorted keys for Go maps.
func chatDictPairs(v *exec.Value) []*exec.Pair {
	switch d := v.Interface().(type) {
	case *exec.Dict:
		return d.Pairs
	case exec.Dict:
		return d.Pairs
	}
	var pairs []*exec.Pair
	for _, k := range v.Keys() {
		item, _ := v.GetItem(k.Interface())
		pairs = append(pairs, &exec.Pair{Key: k, Value: item})
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].Key.String() < pairs[j].Key.String() })
	return pairs
}

// chatJSONFloat formats a float as Python's float.__repr__, the way
// json.dumps writes it (NaN and infinities as JavaScript literals).
func chatJSONFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return chatPyFloat(f)
}

// chatPyFloat is Python's repr(float): the shortest digits that round-trip,
// positional when the decimal exponent is in [-4, 16), else scientific with a
// signed, at least two-digit exponent.
func chatPyFloat(f float64) string {
	if math.IsNaN(f) {
		return "nan"
	}
	if math.IsInf(f, 0) {
		if f > 0 {
			return "inf"
		}
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	epos := strings.IndexByte(s, 'e')
	digits := strings.Replace(s[:epos], ".", "", 1)
	exp, _ := strconv.Atoi(s[epos+1:])
	if exp >= -4 && exp < 16 {
		var out string
		switch {
		case exp < 0:
			out = "0." + strings.Repeat("0", -exp-1) + digits
		case exp+1 >= len(digits):
			out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		default:
			out = digits[:exp+1] + "." + digits[exp+1:]
		}
		return sign + out
	}
	mant := digits[:1]
	if len(digits) > 1 {
		mant += "." + digits[1:]
	}
	esign := "+"
	if exp < 0 {
		esign, exp = "-", -exp
	}
	return fmt.Sprintf("%s%se%s%02d", sign, mant, esign, exp)
}

// chatJSONString writes s as a JSON string the way json.dumps does: with
// ensure_ascii off only '"', '\\' and control characters are escaped.
func chatJSONString(b *strings.Builder, s string, ensureASCII bool) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (ensureASCII && r > 0x7f):
				if r == utf8.RuneError {
					r = 0xfffd
				}
				if r > 0xffff {
					r -= 0x10000
					hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
					for _, u := range []rune{hi, lo} {
						b.WriteString(`\u`)
						b.WriteByte(hex[u>>12&0xf])
						b.WriteByte(hex[u>>8&0xf])
						b.WriteByte(hex[u>>4&0xf])
						b.WriteByte(hex[u&0xf])
					}
					continue
				}
				b.WriteString(`\u`)
				b.WriteByte(hex[r>>12&0xf])
				b.WriteByte(hex[r>>8&0xf])
				b.WriteByte(hex[r>>4&0xf])
				b.WriteByte(hex[r&0xf])
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
