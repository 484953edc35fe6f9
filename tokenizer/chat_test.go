package tokenizer

import (
	"bufio"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// chatRef is one line of ../shared/fixtures/tokenizers/chat_templates.ref.jsonl.
type chatRef struct {
	Tokenizer string          `json:"tokenizer"`
	Case      string          `json:"case"`
	Messages  json.RawMessage `json:"messages"`
	Kwargs    json.RawMessage `json:"kwargs"`
	Rendered  *string         `json:"rendered"`
	Error     *string         `json:"error"`
}

// TestChatTemplateReference renders every conversation of the reference file
// with the real templates and compares byte for byte.
func TestChatTemplateReference(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/tokenizers")
	f, err := os.Open(filepath.Join(dir, "chat_templates.ref.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	templates := map[string]*ChatTemplate{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	n := 0
	for sc.Scan() {
		var ref chatRef
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			t.Fatal(err)
		}
		n++
		t.Run(ref.Tokenizer+"/"+ref.Case, func(t *testing.T) {
			ct, ok := templates[ref.Tokenizer]
			if !ok {
				cfg, err := os.ReadFile(filepath.Join(dir, ref.Tokenizer, "tokenizer_config.json"))
				if err != nil {
					t.Fatal(err)
				}
				if ct, err = LoadChatTemplate(cfg); err != nil {
					t.Fatal(err)
				}
				templates[ref.Tokenizer] = ct
			}
			if ct == nil {
				t.Fatal("no chat template")
			}
			// The reference passes the special tokens, add_generation_prompt,
			// tools and extra kwargs as keyword arguments: split them the way
			// a caller of Render would.
			kw, err := DecodeChatJSON(ref.Kwargs)
			if err != nil {
				t.Fatal(err)
			}
			opts := ChatOptions{Extra: map[string]any{}, Now: time.Date(2026, 7, 26, 12, 0, 0, 0, time.UTC)}
			for _, f := range kw.(ChatMap) {
				switch f.Key {
				case "add_generation_prompt":
					opts.AddGenerationPrompt = f.Value.(bool)
				case "tools":
					opts.Tools = f.Value.([]any)
				default:
					opts.Extra[f.Key] = f.Value
				}
			}
			got, err := ct.RenderJSON(ref.Messages, opts)
			if ref.Error != nil {
				if err == nil {
					t.Fatalf("rendered %q, want error %q", got, *ref.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ref.Rendered == nil || got != *ref.Rendered {
				t.Errorf("render mismatch\n got %q\nwant %q", got, deref(ref.Rendered))
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no reference cases")
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestChatTemplateSpecialTokensFromConfig checks that the config's own special
// tokens reach the template without the caller passing them: the reference
// kwargs are exactly the config's tokens, so Render with no Extra must agree.
func TestChatTemplateSpecialTokensFromConfig(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/tokenizers")
	cfg, err := os.ReadFile(filepath.Join(dir, "gemma3", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := LoadChatTemplate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ct.Render([]map[string]any{{"role": "user", "content": " Hi there \n"}}, ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Gemma 3 refuses roles that do not alternate, through raise_exception.
	_, err = ct.Render([]map[string]any{{"role": "assistant", "content": "x"}}, ChatOptions{})
	var exc *ChatTemplateException
	if !errors.As(err, &exc) || exc.Message != "Conversation roles must alternate user/assistant/user/assistant/..." {
		t.Errorf("err = %v, want the template's raise_exception message", err)
	}
}

// TestChatTemplateHandWritten renders small templates whose output is worked
// out by hand from Jinja's rules (testdata/chat/*.jinja with *.json inputs and
// *.txt expected outputs).
func TestChatTemplateHandWritten(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "chat", "*.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/chat/*.jinja")
	}
	for _, file := range files {
		base := strings.TrimSuffix(file, ".jinja")
		t.Run(filepath.Base(base), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(base + ".txt")
			if err != nil {
				t.Fatal(err)
			}
			var in struct {
				Messages json.RawMessage `json:"messages"`
				Kwargs   json.RawMessage `json:"kwargs"`
				Now      string          `json:"now"`
			}
			if err := json.Unmarshal(input, &in); err != nil {
				t.Fatal(err)
			}
			cfg, _ := json.Marshal(map[string]any{"chat_template": string(src), "bos_token": "<s>", "eos_token": map[string]any{"content": "</s>", "special": true}})
			ct, err := LoadChatTemplate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			opts := ChatOptions{AddGenerationPrompt: true, Extra: map[string]any{}}
			if in.Now != "" {
				if opts.Now, err = time.Parse(time.RFC3339, in.Now); err != nil {
					t.Fatal(err)
				}
			}
			if len(in.Kwargs) > 0 {
				kw, err := DecodeChatJSON(in.Kwargs)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range kw.(ChatMap) {
					switch f.Key {
					case "add_generation_prompt":
						opts.AddGenerationPrompt = f.Value.(bool)
					case "tools":
						opts.Tools = f.Value.([]any)
					default:
						opts.Extra[f.Key] = f.Value
					}
				}
			}
			got, err := ct.RenderJSON(in.Messages, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("render mismatch\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestChatTemplateJinjaReference renders the cases of testdata/chat/jinja_ref.jsonl
// (template constructs found in real chat templates) and compares them with
// Python Jinja2 configured as transformers configures it (gen_jinja_ref.py).
func TestChatTemplateJinjaReference(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "chat", "jinja_ref.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	n := 0
	for sc.Scan() {
		var c struct {
			Name     string          `json:"name"`
			Template string          `json:"template"`
			Messages json.RawMessage `json:"messages"`
			Kwargs   json.RawMessage `json:"kwargs"`
			Config   map[string]any  `json:"config"` // special tokens, if not the default ones
			Rendered *string         `json:"rendered"`
			Error    *string         `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			config := map[string]any{"bos_token": "<s>", "eos_token": "</s>"}
			if c.Config != nil {
				config = c.Config
			}
			config["chat_template"] = c.Template
			cfg, _ := json.Marshal(config)
			ct, err := LoadChatTemplate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The generator renders at this fixed time, with add_generation_prompt on.
			opts := ChatOptions{AddGenerationPrompt: true, Extra: map[string]any{}, Now: time.Date(2026, 7, 26, 9, 5, 3, 0, time.UTC)}
			kw, err := DecodeChatJSON(c.Kwargs)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range kw.(ChatMap) {
				if f.Key == "tools" {
					opts.Tools = f.Value.([]any)
				} else {
					opts.Extra[f.Key] = f.Value
				}
			}
			got, err := ct.RenderJSON(c.Messages, opts)
			if c.Error != nil {
				if err == nil {
					t.Fatalf("rendered %q, want error %s", got, *c.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != *c.Rendered {
				t.Errorf("render mismatch\n got %q\nwant %q", got, *c.Rendered)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no cases")
	}
}

// FuzzChatTemplate checks that any template source gives a template or an
// error, and any render a string or an error: no panic reaches the caller.
// (Failures inside gonja are recovered into errors; the rewriting done here
// runs unprotected, so the fuzzer sees its panics.)
func FuzzChatTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ bos_token }}{% for m in messages %}{{ m.role + (': ' if m.content else '') + m.content|trim }}{% endfor %}",
		"{%- if messages[0]['role'] == 'system' -%}{{ raise_exception('x') }}{%- endif -%}",
		"{% set ns = namespace(a=none) %}{{ ns.a is none }}{{ tools|tojson(indent=2) }}",
		"{% for k, v in messages[0].items() %}{{ k }}{% endfor %}{# c #}{% raw %}{{{% endraw %}",
		"{{ (((a if b else c) if d else e)) }}{% if (x if y) %}{% endif %}",
		"{{ 1 < x < 3 }}{{ not not x is defined }}{{ 'a' 'b' }}{{ ('x' if y).upper() }}{% for i in x if 1 < i < 3 %}{% endfor %}",
		// Hostile: the render limits must stop these quickly.
		"{{ 'x' * 2000000000 }}",
		"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
		"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
		"{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
		"{% set d = {} %}{% do d.update({'a': [d]}) %}{{ d }}",
	} {
		f.Add(s)
	}
	msgs := []map[string]any{{"role": "user", "content": "Hi"}, {"role": "assistant", "content": nil}}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := json.Marshal(map[string]any{"chat_template": src, "bos_token": "<s>"})
		if err != nil {
			return
		}
		ct, err := LoadChatTemplate(cfg)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("parse %q: empty error", src)
			}
			return
		}
		lim := ChatLimits{MaxOutput: 1 << 16, MaxBuilt: 1 << 22, MaxSteps: 1 << 12, Timeout: time.Second}
		out, err := ct.Render(msgs, ChatOptions{Tools: []any{map[string]any{"name": "f"}}, Limits: lim})
		if err != nil && err.Error() == "" {
			t.Fatalf("render %q: empty error", src)
		}
		if len(out) > lim.MaxOutput {
			t.Fatalf("render %q: %d bytes of output, limit %d", src, len(out), lim.MaxOutput)
		}
	})
}

// TestChatTemplateFiles: a folder whose chat template is saved as
// chat_template.jinja (newer checkpoints: tokenizer_config.json has none, or
// an older one) renders with the file's template, which takes priority as in
// transformers; additional_chat_templates/NAME.jinja adds named templates.
// The reference is transformers' render of the qwen3 fixture's template.
func TestChatTemplateFiles(t *testing.T) {
	fix, cfg, src := qwen3TemplateConfig(t)
	want := "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n" // chat_templates.ref.jsonl, qwen3/single
	for _, tc := range []struct {
		name      string
		inConfig  any // tokenizer_config.json's chat_template (nil: none)
		extra     bool
		wantNames []string
	}{
		{"file only", nil, false, []string{"default"}},
		{"file over an older config template", "{{ 'stale template' }}", false, []string{"default"}},
		{"file and an additional one", nil, true, []string{"default", "tool_use"}},
	} {
		dir := t.TempDir()
		if err := os.Symlink(filepath.Join(fix, "qwen3", "tokenizer.json"), filepath.Join(dir, "tokenizer.json")); err != nil {
			t.Fatal(err)
		}
		c := map[string]any{}
		for k, v := range cfg {
			c[k] = v
		}
		delete(c, "chat_template")
		if tc.inConfig != nil {
			c["chat_template"] = tc.inConfig
		}
		b, _ := json.Marshal(c)
		os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), b, 0o644)
		os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(src), 0o644)
		if tc.extra {
			os.Mkdir(filepath.Join(dir, "additional_chat_templates"), 0o755)
			os.WriteFile(filepath.Join(dir, "additional_chat_templates", "tool_use.jinja"), []byte("{{ 'tools' }}"), 0o644)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tok.Chat == nil {
			t.Fatalf("%s: no chat template (%v)", tc.name, tok.ChatErr)
		}
		got, err := tok.Chat.RenderJSON([]byte(`[{"role": "user", "content": "Hi there"}]`), ChatOptions{AddGenerationPrompt: true})
		if err != nil || got != want {
			t.Errorf("%s: rendered %q, %v; want %q", tc.name, got, err, want)
		}
		if names := tok.Chat.Names(); strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
			t.Errorf("%s: templates %v, want %v", tc.name, names, tc.wantNames)
		}
	}
}

// qwen3TemplateConfig returns the tokenizer fixtures' folder, the qwen3
// fixture's tokenizer_config.json and its chat template.
func qwen3TemplateConfig(t *testing.T) (fix string, cfg map[string]any, src string) {
	t.Helper()
	fix = testutil.Shared(t, "fixtures/tokenizers")
	cfgJSON, err := os.ReadFile(filepath.Join(fix, "qwen3", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	if src, _ = cfg["chat_template"].(string); src == "" {
		t.Fatal("the qwen3 fixture has no chat template")
	}
	return fix, cfg, src
}

// TestChatTemplateJSON: a multimodal model's folder keeps its template in
// the processor's chat_template.json; the tokenizer chats with it when
// tokenizer_config.json and chat_template.jinja have none, and not
// otherwise.
func TestChatTemplateJSON(t *testing.T) {
	fix, cfg, src := qwen3TemplateConfig(t)
	delete(cfg, "chat_template")
	want := "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n" // chat_templates.ref.jsonl, qwen3/single
	for _, tc := range []struct {
		name, inConfig, jinja, want string
	}{
		{"chat_template.json alone", "", "", want},
		{"chat_template.json under a null one", "null", "", want},
		{"tokenizer_config.json's first", "{{ 'config' }}", "", "config"},
		{"chat_template.jinja's first", "", "{{ 'jinja' }}", "jinja"},
	} {
		dir := t.TempDir()
		if err := os.Symlink(filepath.Join(fix, "qwen3", "tokenizer.json"), filepath.Join(dir, "tokenizer.json")); err != nil {
			t.Fatal(err)
		}
		c := maps.Clone(cfg)
		switch tc.inConfig {
		case "":
		case "null":
			c["chat_template"] = nil
		default:
			c["chat_template"] = tc.inConfig
		}
		b, _ := json.Marshal(c)
		os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), b, 0o644)
		b, _ = json.Marshal(map[string]string{"chat_template": src})
		os.WriteFile(filepath.Join(dir, "chat_template.json"), b, 0o644)
		if tc.jinja != "" {
			os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(tc.jinja), 0o644)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tok.Chat == nil {
			t.Fatalf("%s: no chat template (%v)", tc.name, tok.ChatErr)
		}
		got, err := tok.Chat.RenderJSON([]byte(`[{"role": "user", "content": "Hi there"}]`), ChatOptions{AddGenerationPrompt: true})
		if err != nil || got != tc.want {
			t.Errorf("%s: rendered %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestFiles lists the tokenizer files of a folder, chat templates included,
// and nothing else.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json", "config.json", "model.safetensors",
		"additional_chat_templates/tool_use.jinja", "additional_chat_templates/rag.jinja", "additional_chat_templates/notes.txt"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	got, err := Files(dir)
	want := "tokenizer.json tokenizer_config.json chat_template.jinja chat_template.json additional_chat_templates/rag.jinja additional_chat_templates/tool_use.jinja"
	if err != nil || strings.Join(got, " ") != want {
		t.Errorf("Files: %v, %v; want %s", got, err, want)
	}
}
