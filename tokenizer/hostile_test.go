package tokenizer

import (
	"encoding/json"
	"errors"
	"github.com/mocolab/moco/internal/testutil"
	"math"
	"strings"
	"testing"
	"time"
)

// splitTokenizerJSON is a byte-level BPE tokenizer.json whose pre-tokenizer
// is a Split on pattern.
func splitTokenizerJSON(t *testing.T, pattern string) []byte {
	t.Helper()
	vocab := map[string]int{}
	for i := 0; i < 256; i++ {
		vocab[string(rune(i))] = i
	}
	tj := map[string]any{
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	data, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRegexCatastrophicBacktracking: a Split pattern that backtracks
// exponentially fails with an error naming the pattern instead of running
// for minutes (regexp2 alone takes over 50 s on this input).
func TestRegexCatastrophicBacktracking(t *testing.T) {
	const pattern = `(\w+\s?)*$`
	tk, err := New(splitTokenizerJSON(t, pattern), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Encode("hello world", false); err != nil {
		t.Fatalf("ordinary text: %v", err)
	}
	start := time.Now()
	_, err = tk.Encode(strings.Repeat("a", 28)+"!", false)
	took := time.Since(start)
	var te *RegexTimeoutError
	if !errors.As(err, &te) || te.Pattern != pattern || !strings.Contains(err.Error(), "regex") {
		t.Fatalf("Encode: err = %v, want a RegexTimeoutError naming %q", err, pattern)
	}
	if took > 10*regexTimeout {
		t.Errorf("Encode took %v, limit %v", took, regexTimeout)
	}
}

// TestStandardPatternsKeepScanners: the bound on regexp2 does not send the
// standard pre-tokenizer patterns to it; they keep their linear scanners.
func TestStandardPatternsKeepScanners(t *testing.T) {
	for _, p := range scannerPatterns {
		f, err := compileRegex(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, slow := f.(backtracking); slow {
			t.Errorf("pattern %.30q compiled to regexp2, want its scanner", p)
		}
	}
}

// chatTemplateOf wraps a template source in a tokenizer_config.json.
func chatTemplateOf(t *testing.T, src string) *ChatTemplate {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"chat_template": src, "bos_token": "<s>"})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := LoadChatTemplate(cfg)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return ct
}

// TestChatTemplateLimits: hostile templates end with one short, clear error
// within bounded time and memory (before: 10 GB for a repeated string, 14 GB
// for doubling, nested range loops never ended, and the recursion error was
// 24 KB of wrapped messages).
func TestChatTemplateLimits(t *testing.T) {
	msgs := []map[string]any{{"role": "user", "content": "hi"}}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"repeat", `{{ 'x' * 2000000000 }}`, "repeated 2000000000 times is over the limit"},
		{"repeat var", `{% set n = 2000000000 %}{{ 'abc' * n }}`, "over the limit"},
		{"doubling", `{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}`, "over the limit"},
		{"doubling tilde", `{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}`, "over the limit"},
		{"nested loops", `{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}`, "more than 262144 loop iterations"},
		{"huge range", `{% for i in range(1000000000) %}{% endfor %}`, "range of 1000000000 numbers"},
		{"recursion", `{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}`, "macro f: recursion deeper than 200 calls"},
		{"call tree", `{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}`, "more than 262144 loop iterations"},
		{"center", `{{ 'x'|center(2000000000) }}`, "over the limit"},
		{"ljust", `{{ 'x'.ljust(2000000000) }}`, "over the limit"},
		{"replace", `{% set s = 'x' * 1000000 %}{{ s|replace('x', s) }}`, "over the limit"},
		{"replace method", `{% set s = 'x' * 1000000 %}{{ s.replace('', s) }}`, "over the limit"},
		{"join", `{% set s = 'x' * 1000000 %}{{ [s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s]|join(s) }}`, "over the limit"},
		{"format width", `{{ '%999999999d'|format(1) }}`, "over the limit"},
		{"indent", `{{ ('a\n' * 100000)|indent(1000) }}`, "over the limit"},
		{"output", `{% set s = 'x' * 10000000 %}{% for i in range(10) %}{{ s }}{% endfor %}`, "the output would be more than"},
		{"loop over a long string", `{% for c in 'x' * 10000000 %}{% endfor %}`, "a loop over 10000000 items"},
		{"self append", `{% set l = [1] %}{% do l.append(l) %}{% do l.append(l) %}{{ l }}`, "cannot contain itself"},
		{"namespace cycle", `{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}`, "cannot contain itself"},
		{"dict cycle", `{% set d = {'x': 1} %}{% set d['y'] = [d] %}{{ d }}`, "cannot contain itself"},
		{"update cycle", `{% set d = {'x': 1} %}{% do d.update({'a': d}) %}{{ d }}`, "cannot contain itself"},
		{"setdefault cycle", `{% set d = {} %}{% do d.setdefault('a', d) %}{{ d|tojson }}`, "cannot contain itself"},
		{"batch", `{{ [1]|batch(2000000000, 'x')|list }}`, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && strings.Contains(tc.want, "loop iterations") {
				t.Skip("runs to the step limit (seconds; minutes under the race detector)")
			}
			ct := chatTemplateOf(t, tc.src)
			err := testutil.Bounded(t, 1<<30, 20*time.Second, func() error {
				_, err := ct.Render(msgs, ChatOptions{})
				return err
			})
			// On a loaded machine the time limit may stop a long render
			// before the step limit: either is the bound at work.
			timedOut := err != nil && strings.Contains(tc.want, "loop iterations") && strings.Contains(err.Error(), "rendering took longer than")
			if err == nil || !strings.Contains(err.Error(), tc.want) && !timedOut {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if len(err.Error()) > 200 || strings.Contains(err.Error(), "\n") {
				t.Errorf("error is %d bytes, want one short line: %.300q", len(err.Error()), err)
			}
		})
	}
}

// TestChatTemplateTimeout: the time limit stops a render that stays within
// the other limits.
func TestChatTemplateTimeout(t *testing.T) {
	ct := chatTemplateOf(t, `{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}`)
	start := time.Now()
	_, err := ct.Render(nil, ChatOptions{Limits: ChatLimits{MaxSteps: min(1<<40, math.MaxInt), Timeout: 200 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "rendering took longer than 200ms") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopped after %v", took)
	}
}

// TestChatTemplateReserved: templates cannot reach the guard's functions,
// nor include other templates (itself, endlessly).
func TestChatTemplateReserved(t *testing.T) {
	for _, src := range []string{
		`{% macro moco_tick(n) %}{% endmacro %}{% for i in range(10) %}{% endfor %}`,
		`{% include "/chat_template" %}`,
		`{% import "/chat_template" as x %}`,
		`{% extends "/chat_template" %}`,
	} {
		cfg, _ := json.Marshal(map[string]any{"chat_template": src})
		if _, err := LoadChatTemplate(cfg); err == nil {
			t.Errorf("%s: accepted", src)
		}
	}
}

// TestDeepTokenizerJSON: a valid but deeply nested tokenizer.json says
// which limit it hit (it reported "unexpected end of JSON input").
func TestDeepTokenizerJSON(t *testing.T) {
	for _, n := range []int{5000, 20000} {
		for _, tj := range []string{
			`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`,
			`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":` + strings.Repeat(`{"type":"Sequence","normalizers":[`, n) + strings.Repeat("]}", n) + `}`,
		} {
			err := testutil.Bounded(t, 64<<20, 5*time.Second, func() error { _, err := New([]byte(tj), nil); return err })
			if err == nil || !strings.Contains(err.Error(), "JSON nested deeper than 1000 levels (limit)") {
				t.Errorf("depth %d: err = %v", n, err)
			}
		}
	}
}

// FuzzChatJSON feeds arbitrary message JSON (a request body's messages) to
// RenderJSON on a template that walks every message: no panic, bounded
// output.
func FuzzChatJSON(f *testing.F) {
	f.Add([]byte(`[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "x"}], "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}]`))
	f.Add([]byte(`[{"role": "user", "content": "\ud800"}]`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	ct, err := LoadChatTemplate([]byte(`{"chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content if m.content is string else m.content|tojson }}{% if m.tool_calls %}{{ m.tool_calls|tojson }}{% endif %}\n{% endfor %}{{ messages|length }}"}`))
	if err != nil {
		f.Fatal(err)
	}
	lim := ChatLimits{MaxOutput: 1 << 16, MaxSteps: 1 << 12, Timeout: time.Second}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ct.RenderJSON(data, ChatOptions{Limits: lim})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(out) > max(lim.MaxOutput, 4*len(data)+64) {
			t.Fatalf("%d bytes of output", len(out))
		}
	})
}

// TestHugeTokenIDs: ids that would size the id table are refused before
// anything is allocated.
func TestHugeTokenIDs(t *testing.T) {
	for _, tj := range []string{
		`{"model":{"type":"BPE","vocab":{"a":0,"b":2000000000},"merges":[]}}`,
		`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"added_tokens":[{"id":2000000000,"content":"<x>","special":true}]}`,
		`{"model":{"type":"WordPiece","vocab":{"a":0,"b":2000000000}}}`,
		`{"model":{"type":"Unigram","vocab":[["a",0.0]],"unk_id":2000000000}}`,
	} {
		err := testutil.Bounded(t, 64<<20, 5*time.Second, func() error { _, err := New([]byte(tj), nil); return err })
		if err == nil || !strings.Contains(err.Error(), "2000000000") {
			t.Errorf("%s: err = %v", tj, err)
		}
	}
}

// TestChatTemplateLongConversation: the limits scale with the conversation,
// so a long one renders with a real template's loop and filters.
func TestChatTemplateLongConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 10000 messages")
	}
	ct := chatTemplateOf(t, `{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content|trim + '<|im_end|>\n' }}{% endfor %}`)
	msgs := make([]map[string]any, 10000)
	for i := range msgs {
		msgs[i] = map[string]any{"role": "user", "content": strings.Repeat("word ", 80)}
	}
	out, err := ct.Render(msgs, ChatOptions{})
	if err != nil || len(out) < 10000*400 {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
}
