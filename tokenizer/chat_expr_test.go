package tokenizer

import (
	"testing"
)

// TestChatGonjaString: the literals chatRegroup writes come out of gonja's
// lexer and parser as the string they stand for.
func TestChatGonjaString(t *testing.T) {
	for _, s := range []string{"", "a", `\`, `a\`, `\\`, `"`, `'`, `\"`, `\'`, "\n\t\r\x00\x7f", "é日本😀", "\ufffd", "a\xffb",
		`{{ x }}`, `%}`, `\x41`, `\n`, `\u00e9`, "it's \"q\""} {
		tpl, err := chatParseGonja("{{ x == " + chatGonjaString(s) + " }}")
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		b := newChatBudget(ChatLimits{}, 0)
		data := map[string]any{"x": s}
		for k, v := range chatBudgetVars(b) {
			data[k] = v
		}
		got, err := chatExecute(tpl, data, b)
		if err != nil || got != "True" {
			t.Errorf("%q: written %s, read back as another string (%q, %v)", s, chatGonjaString(s), got, err)
		}
	}
}
