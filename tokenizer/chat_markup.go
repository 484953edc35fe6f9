package tokenizer

import (
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// chatMarkup is markupsafe's Markup, the string type of safe, escape and
// forceescape. Autoescaping is off in transformers, yet Markup escapes
// what is combined with it: '<a>'|safe + '<b>' is <a>&lt;b&gt;, and
// Functionary v3.1 writes its tools as "..."|safe + name + ... + t|tojson,
// so transformers prints their JSON HTML-escaped (&#34;). Operators,
// filters and methods that keep the type in Python keep it here.
type chatMarkup string

func (m chatMarkup) String() string { return string(m) }

func chatIsMarkup(v *exec.Value) bool {
	if v == nil {
		return false
	}
	_, ok := v.Interface().(chatMarkup)
	return ok
}

var chatHTMLEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

// chatEscape is markupsafe's escape: a Markup as it is, anything else as
// its str() with &, <, >, " and ' replaced by entities.
func chatEscape(v *exec.Value) chatMarkup {
	if chatIsMarkup(v) {
		return v.Interface().(chatMarkup)
	}
	return chatMarkup(chatHTMLEscaper.Replace(chatPyStr(v)))
}

// chatMarkupFilters keep a Markup input a Markup (their result is
// soft_str(value) transformed in Jinja).
var chatMarkupFilters = map[string]bool{
	"upper": true, "lower": true, "capitalize": true, "trim": true, "string": true,
	"center": true, "indent": true, "format": true, "truncate": true,
}

func chatFilterSafe(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsValue(chatMarkup(chatPyStr(in)))
}

func chatFilterEscape(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsValue(chatEscape(in))
}

func chatFilterForceEscape(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsValue(chatMarkup(chatHTMLEscaper.Replace(chatPyStr(in))))
}

// chatMarkupMethod makes a str method of a Markup return a Markup, its
// arguments escaped where Markup escapes them (format, join).
func chatMarkupMethod(name string, m exec.Method[string]) exec.Method[string] {
	return func(s string, self *exec.Value, va *exec.VarArgs) (any, error) {
		if !chatIsMarkup(self) {
			return m(s, self, va)
		}
		switch name {
		case "format":
			esc := &exec.VarArgs{KwArgs: map[string]*exec.Value{}}
			for _, a := range va.Args {
				esc.Args = append(esc.Args, exec.AsValue(string(chatEscape(a))))
			}
			for k, a := range va.KwArgs {
				esc.KwArgs[k] = exec.AsValue(string(chatEscape(a)))
			}
			va = esc
		case "join":
			if len(va.Args) == 1 {
				var items []any
				for _, it := range chatIter(va.Args[0]) {
					items = append(items, string(chatEscape(it)))
				}
				va = &exec.VarArgs{Args: []*exec.Value{exec.AsValue(items)}, KwArgs: va.KwArgs}
			}
		}
		out, err := m(s, self, va)
		if str, ok := out.(string); ok && err == nil {
			return chatMarkup(str), nil
		}
		return out, err
	}
}
