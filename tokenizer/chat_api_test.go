package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestLoadChatTemplateForms(t *testing.T) {
	hello := `{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}`
	tests := []struct {
		name     string
		config   string
		nilCT    bool
		wantErr  string
		names    []string
		defName  string
		render   string // ChatOptions.Name
		want     string
		renderEr string
	}{
		{name: "absent", config: `{"bos_token": "<s>"}`, nilCT: true},
		{name: "null", config: `{"chat_template": null}`, nilCT: true},
		{name: "empty config", config: ``, nilCT: true},
		{name: "empty list", config: `{"chat_template": []}`, nilCT: true},
		{name: "string", config: `{"chat_template": ` + q(hello) + `, "bos_token": "<s>", "eos_token": "</s>"}`,
			names: []string{"default"}, defName: "default", want: "<s>user:hi</s>"},
		{name: "added token objects", config: `{"chat_template": ` + q(hello) + `, "bos_token": {"content": "<b>", "lstrip": false}, "eos_token": {"__type": "AddedToken", "content": "<e>"}}`,
			names: []string{"default"}, defName: "default", want: "<b>user:hi<e>"},
		{name: "null token", config: `{"chat_template": ` + q(hello) + `, "bos_token": null}`,
			names: []string{"default"}, defName: "default", want: "user:hi"},
		{name: "list with default", config: `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`,
			names: []string{"tool_use", "default"}, defName: "default", want: "D"},
		{name: "list pick by name", config: `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`,
			names: []string{"tool_use", "default"}, defName: "default", render: "tool_use", want: "T"},
		{name: "list of one", config: `{"chat_template": [{"name": "rag", "template": "R"}]}`,
			names: []string{"rag"}, defName: "rag", want: "R"},
		{name: "list without default", config: `{"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]}`,
			names: []string{"a", "b"}, defName: "", renderEr: `none is named "default"`},
		{name: "unknown name", config: `{"chat_template": "X"}`,
			names: []string{"default"}, defName: "default", render: "rag", renderEr: `no template named "rag"`},
		{name: "duplicate names", config: `{"chat_template": [{"name": "a", "template": "A"}, {"name": "a", "template": "B"}]}`, wantErr: "twice"},
		{name: "wrong type", config: `{"chat_template": 5}`, wantErr: "neither a string nor a list"},
		{name: "bad json", config: `{"chat_template": "x"`, wantErr: "tokenizer_config.json"},
		{name: "syntax error", config: `{"chat_template": "{% if x %}never closed"}`, wantErr: "syntax error"},
		{name: "syntax error in named", config: `{"chat_template": [{"name": "rag", "template": "{{ x "}]}`, wantErr: `chat template "rag": syntax error`},
	}
	msgs := []map[string]any{{"role": "user", "content": "hi"}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := LoadChatTemplate([]byte(tc.config))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.nilCT {
				if ct != nil {
					t.Fatalf("got a template, want none")
				}
				return
			}
			if got := ct.Names(); strings.Join(got, ",") != strings.Join(tc.names, ",") {
				t.Errorf("Names() = %q, want %q", got, tc.names)
			}
			if got := ct.DefaultName(); got != tc.defName {
				t.Errorf("DefaultName() = %q, want %q", got, tc.defName)
			}
			got, err := ct.Render(msgs, ChatOptions{Name: tc.render})
			if tc.renderEr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.renderEr) {
					t.Fatalf("render err = %v, want one containing %q", err, tc.renderEr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("render = %q, want %q", got, tc.want)
			}
		})
	}
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestChatTemplateErrors(t *testing.T) {
	load := func(src string) *ChatTemplate {
		t.Helper()
		ct, err := LoadChatTemplate([]byte(`{"chat_template": ` + q(src) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	msgs := []map[string]any{{"role": "user", "content": "hi"}}

	// raise_exception surfaces its message, as a *ChatTemplateException.
	_, err := load(`{% if messages|length < 2 %}{{ raise_exception("need two messages, got " ~ messages|length) }}{% endif %}`).Render(msgs, ChatOptions{})
	var exc *ChatTemplateException
	if !errors.As(err, &exc) || exc.Message != "need two messages, got 1" {
		t.Errorf("err = %v, want ChatTemplateException with the template's message", err)
	}
	// Undefined filters and unconvertible data are errors, not panics.
	if _, err := load(`{{ messages|nosuchfilter }}`).Render(msgs, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "nosuchfilter") {
		t.Errorf("unknown filter: err = %v", err)
	}
	if _, err := load(`{{ x }}`).Render(msgs, ChatOptions{Extra: map[string]any{"x": func() {}}}); err == nil {
		t.Error("a func value: want an error")
	}
	if _, err := load(`{{ x }}`).RenderJSON([]byte(`[{"role": "user"`), ChatOptions{}); err == nil {
		t.Error("truncated messages JSON: want an error")
	}
	if _, err := load(`{{ x }}`).RenderJSON([]byte(`{"role": "user"}`), ChatOptions{}); err == nil {
		t.Error("messages not an array: want an error")
	}
}

// TestChatTemplateData checks how Go data reaches the template: key order,
// numbers, None versus undefined, structs.
func TestChatTemplateData(t *testing.T) {
	ct, err := LoadChatTemplate([]byte(`{"chat_template": ` + q(`{{ messages[0]|tojson }}|{{ tools|tojson }}|{{ messages[0].missing is defined }}{{ messages[0].n is none }}|{{ s|tojson }}`) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	type params struct {
		Zeta  string  `json:"zeta"`
		Alpha float64 `json:"alpha"`
	}
	got, err := ct.Render(
		[]map[string]any{{"role": "user", "n": nil, "content": "é\u2028", "i": int64(3), "f": 0.5}},
		ChatOptions{
			Tools: []any{json.RawMessage(`{"b": 1, "a": [1.0, 2e-7]}`), ChatMap{{"y", true}, {"x", nil}}},
			Extra: map[string]any{"s": params{"z", 2}},
		})
	if err != nil {
		t.Fatal(err)
	}
	// Plain maps are visited in sorted key order; JSON and ChatMap keep theirs.
	want := `{"content": "é` + "\u2028" + `", "f": 0.5, "i": 3, "n": null, "role": "user"}` +
		`|[{"b": 1, "a": [1.0, 2e-07]}, {"y": true, "x": null}]|FalseTrue|{"zeta": "z", "alpha": 2}`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestChatPyFloat(t *testing.T) {
	// Python 3: repr(float(x)).
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {-2.5, "-2.5"}, {0.1, "0.1"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
		{123456789012345678, "1.2345678901234568e+17"}, {0.0001, "0.0001"}, {0.00001, "1e-05"}, {1.5e-7, "1.5e-07"},
		{1e22, "1e+22"}, {1.7976931348623157e308, "1.7976931348623157e+308"}, {5e-324, "5e-324"}, {2.0 / 3, "0.6666666666666666"},
	} {
		if got := chatPyFloat(tc.f); got != tc.want {
			t.Errorf("chatPyFloat(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestChatTemplateConcurrent(t *testing.T) {
	ct, err := LoadChatTemplate([]byte(`{"chat_template": ` + q(`{% for m in messages %}{{ m.role }}={{ m.content|trim }};{% endfor %}`) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf(" m%d ", i)
			got, err := ct.Render([]map[string]any{{"role": "user", "content": msg}}, ChatOptions{})
			if want := fmt.Sprintf("user=m%d;", i); err != nil || got != want {
				t.Errorf("render %d = %q, %v; want %q", i, got, err, want)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkChatTemplate measures parsing and rendering the Qwen 3 template.
func BenchmarkChatTemplate(b *testing.B) {
	dir := testutil.Shared(b, "fixtures/tokenizers/qwen3")
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := LoadChatTemplate(cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
	ct, err := LoadChatTemplate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	msgs := []map[string]any{
		{"role": "system", "content": "You are terse."},
		{"role": "user", "content": "Name a fruit."},
		{"role": "assistant", "content": "<think>\nok\n</think>\n\nApple."},
		{"role": "user", "content": "Another?"},
	}
	b.Run("render", func(b *testing.B) {
		for b.Loop() {
			if _, err := ct.Render(msgs, ChatOptions{AddGenerationPrompt: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestChatTemplateModelSpecificTokens: transformers 5 writes the named
// special tokens of multimodal and other models both at the top of
// tokenizer_config.json and in model_specific_special_tokens (with
// extra_special_tokens a list), and reads them back from either: every
// other key ending in _token whose value is a string or an AddedToken is
// such a token (PreTrainedTokenizerBase.__init__, auto_model_specific_tokens).
// special_tokens_map, which apply_chat_template passes to the template,
// has them. Expected values worked out from that code (transformers is not
// installed here to run it).
func TestChatTemplateModelSpecificTokens(t *testing.T) {
	cfg := `{
		"chat_template": "{{ image_token }}|{{ video_token }}|{{ audio_token }}|{{ eot_token }}|{{ add_bos_token is defined }}|{{ count_token is defined }}|{{ bos_token is defined }}|{{ eos_token }}|{{ extra_special_tokens is defined }}",
		"bos_token": null,
		"eos_token": "<|im_end|>",
		"add_bos_token": true,
		"image_token": "<|image_pad|>",
		"audio_token": {"__type": "AddedToken", "content": "<|audio_pad|>", "special": true},
		"eot_token": "<turn|>",
		"count_token": 5,
		"extra_special_tokens": ["<|im_start|>", "<|im_end|>"],
		"model_specific_special_tokens": {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
	}`
	ct, err := LoadChatTemplate([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ct.Render(nil, ChatOptions{})
	want := "<|image_pad|>|<|video_pad|>|<|audio_pad|>|<turn|>|False|False|False|<|im_end|>|False"
	if err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}
