package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// ChatTemplate is the Jinja chat template of a model folder
// (tokenizer_config.json's chat_template), rendered the way Hugging Face
// transformers' apply_chat_template renders it: trim_blocks and lstrip_blocks
// on, loop controls, {% generation %}, raise_exception, strftime_now and a
// tojson equal to json.dumps(ensure_ascii=False), with the variables messages,
// tools and documents (None when absent), add_generation_prompt, the special
// tokens of the config (bos_token, eos_token, unk_token, pad_token, ...,
// additional_special_tokens, and the model-specific ones: image_token, ...)
// and any extra keyword arguments. Where transformers 4 and 5 pass
// different special tokens, moco passes the union (additional_special_tokens
// is a variable in 4 only, keys ending in _token in 5 only) and leaves out
// tokens that are "" as 4 does (5 passes them).
//
// The engine is gonja, corrected where chat templates meet its differences
// from Jinja: expressions are read with Jinja's grammar (chat_expr.go),
// operators, truth and printing are Python's (chat_py.go), filters, tests
// and methods Jinja's (chat_builtins.go, chat_filters.go, chat_strings.go).
// Known remaining differences, none used by the templates checked:
// integers are 64-bit (a power that overflows gives a float), loop.depth
// counts nesting of ordinary loops, {% set a, b = ... %}, {% set x | f %}
// and a macro's varargs and kwargs are not supported, list.pop is missing,
// str.format is gonja's (no !r, None or lists), slices of a Markup are
// plain strings, and the filters that give generators in Jinja (map,
// select, selectattr, reject, rejectattr, unique) give lists, so their
// result has a length, converts to JSON and is false when empty, where
// Jinja fails or finds it true. The methods transformers' sandbox refuses
// (list.append, dict.update, ...) and {% do %}, which transformers does
// not enable, work (only templates that transformers refuses use them).
//
// A ChatTemplate is safe for concurrent use.
type ChatTemplate struct {
	names     []string          // template names, in file order
	sources   map[string]string // name -> Jinja source
	def       string            // default template name
	special   map[string]any    // bos_token, eos_token, ... from the config
	mu        sync.Mutex
	templates map[string]*exec.Template // parsed lazily, by name
}

// ChatOptions are the arguments of one render besides the messages.
type ChatOptions struct {
	// AddGenerationPrompt appends the tokens that start the assistant's turn.
	AddGenerationPrompt bool
	// Tools is the list of tool (function) descriptions offered to the model.
	// Elements may be map[string]any, ChatMap (key order kept), json.RawMessage
	// (decoded keeping key order) or anything encoding/json can marshal.
	Tools []any
	// Extra holds further template variables, e.g. "enable_thinking" or
	// "date_string". They take precedence over the special tokens of the
	// config, AddGenerationPrompt and Tools; "messages" is always the
	// conversation.
	Extra map[string]any
	// Name picks a named template ("" means the default one).
	Name string
	// Now is the time strftime_now reports; the zero value means time.Now().
	Now time.Time
	// Limits bound the render's output, work and time (zero fields: the
	// defaults). A template that exceeds them fails with *ChatLimitError.
	Limits ChatLimits
}

// chatTemplateNamed is one entry of the list form of chat_template.
type chatTemplateNamed struct {
	Name     string `json:"name"`
	Template string `json:"template"`
}

// chatSpecialTokenKeys are the special-token attributes transformers passes to
// the template (its special_tokens_map), when the config sets them.
var chatSpecialTokenKeys = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

// LoadChatTemplate reads the chat template of a tokenizer_config.json.
// chat_template may be a string or a list of {"name", "template"} objects;
// the default template is the one named "default", or the only one.
// It returns (nil, nil) when the config has no chat template.
// The templates are parsed here, so a syntax error is reported at once.
func LoadChatTemplate(tokenizerConfigJSON []byte) (*ChatTemplate, error) {
	if len(tokenizerConfigJSON) == 0 {
		return nil, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(tokenizerConfigJSON, &cfg); err != nil {
		return nil, fmt.Errorf("chat template: tokenizer_config.json: %w", err)
	}
	raw, ok := cfg["chat_template"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	ct := &ChatTemplate{
		sources:   map[string]string{},
		special:   map[string]any{},
		templates: map[string]*exec.Template{},
	}
	var single string
	var list []chatTemplateNamed
	switch {
	case json.Unmarshal(raw, &single) == nil:
		ct.names = []string{"default"}
		ct.sources["default"] = single
		ct.def = "default"
	case json.Unmarshal(raw, &list) == nil:
		if len(list) == 0 {
			return nil, nil
		}
		for _, t := range list {
			if _, dup := ct.sources[t.Name]; dup {
				return nil, fmt.Errorf("chat template: template name %q appears twice", t.Name)
			}
			ct.names = append(ct.names, t.Name)
			ct.sources[t.Name] = t.Template
		}
		if _, ok := ct.sources["default"]; ok {
			ct.def = "default"
		} else if len(list) == 1 {
			ct.def = list[0].Name
		}
	default:
		return nil, errors.New("chat template: chat_template is neither a string nor a list of {name, template}")
	}

	// transformers passes its special_tokens_map, which leaves out the
	// tokens that are None or "" and an empty additional_special_tokens:
	// for them "is defined" is false.
	for _, key := range chatSpecialTokenKeys {
		if tok, ok := chatTokenContent(cfg[key]); ok && tok != "" {
			ct.special[key] = tok
		}
	}
	if raw, ok := cfg["additional_special_tokens"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			toks := []any{}
			for _, r := range list {
				if tok, ok := chatTokenContent(r); ok {
					toks = append(toks, tok)
				}
			}
			if len(toks) > 0 {
				ct.special["additional_special_tokens"] = toks
			}
		}
	}

	// Model-specific special tokens (multimodal models: "image_token":
	// "<image>") are in special_tokens_map too. transformers 4.48 and later
	// read them from a mapping extra_special_tokens; transformers 5 writes
	// them at the top of the config and in model_specific_special_tokens
	// (its extra_special_tokens is a list, which flags tokens as special and
	// names none), and takes any other key ending in _token whose value is a
	// string or an AddedToken for one.
	named := func(key string, raw json.RawMessage) {
		// A template cannot name moco_ variables (chatReserved).
		if tok, ok := chatTokenContent(raw); ok && tok != "" && !strings.HasPrefix(key, "moco_") {
			ct.special[key] = tok
		}
	}
	for key, raw := range cfg {
		if strings.HasSuffix(key, "_token") && ct.special[key] == nil && chatIsTokenValue(raw) && !slices.Contains(chatSpecialTokenKeys, key) {
			named(key, raw)
		}
	}
	for _, field := range []string{"extra_special_tokens", "model_specific_special_tokens"} {
		var m map[string]json.RawMessage
		if json.Unmarshal(cfg[field], &m) == nil {
			for key, r := range m {
				named(key, r)
			}
		}
	}

	for _, name := range ct.names {
		if _, err := ct.template(name); err != nil {
			return nil, err
		}
	}
	return ct, nil
}

// chatIsTokenValue reports a string or a serialized AddedToken (an object
// with "__type": "AddedToken"), the values transformers 5 takes a key ending
// in _token for a special token by.
func chatIsTokenValue(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return true
	}
	var obj struct {
		Type    string  `json:"__type"`
		Content *string `json:"content"`
	}
	return json.Unmarshal(raw, &obj) == nil && obj.Type == "AddedToken" && obj.Content != nil
}

// chatTokenContent reads a special token given as a string or as an
// AddedToken object {"content": ...}; ok is false for null.
func chatTokenContent(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Content != nil {
		return *obj.Content, true
	}
	return "", false
}

// Names returns the names of the templates, in the order of the config.
// A plain-string chat_template is named "default".
func (ct *ChatTemplate) Names() []string {
	return append([]string(nil), ct.names...)
}

// DefaultName returns the name of the template used when ChatOptions.Name is
// empty, or "" when a list has several templates and none is named "default".
func (ct *ChatTemplate) DefaultName() string { return ct.def }

// Source returns the Jinja source of the named template ("" for the default).
func (ct *ChatTemplate) Source(name string) (string, bool) {
	if name == "" {
		name = ct.def
	}
	src, ok := ct.sources[name]
	return src, ok
}

// template returns the parsed template of the given name.
func (ct *ChatTemplate) template(name string) (*exec.Template, error) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t, ok := ct.templates[name]; ok {
		return t, nil
	}
	src, ok := ct.sources[name]
	if !ok {
		return nil, fmt.Errorf("chat template: no template named %q (have %s)", name, strings.Join(ct.names, ", "))
	}
	t, err := chatParse(src)
	if err != nil {
		if name != "default" {
			return nil, fmt.Errorf("chat template %q: %w", name, err)
		}
		return nil, fmt.Errorf("chat template: %w", err)
	}
	ct.templates[name] = t
	return t, nil
}

// Render renders the conversation. Each message is usually
// {"role": ..., "content": ...}; values may be nested maps, slices, ChatMap
// or json.RawMessage (the last two keep their key order, which tojson shows).
// Keys of plain Go maps are visited in sorted order.
// raise_exception in the template comes back as an error carrying its message.
func (ct *ChatTemplate) Render(messages []map[string]any, opts ChatOptions) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = m
	}
	return ct.render(msgs, opts)
}

// RenderJSON renders a conversation given as a JSON array of message objects,
// keeping the key order of every object.
func (ct *ChatTemplate) RenderJSON(messagesJSON []byte, opts ChatOptions) (string, error) {
	v, err := DecodeChatJSON(messagesJSON)
	if err != nil {
		return "", fmt.Errorf("chat template: messages: %w", err)
	}
	msgs, ok := v.([]any)
	if !ok {
		return "", errors.New("chat template: messages: not a JSON array")
	}
	return ct.render(msgs, opts)
}

func (ct *ChatTemplate) render(messages []any, opts ChatOptions) (string, error) {
	name := opts.Name
	if name == "" {
		name = ct.def
		if name == "" {
			return "", fmt.Errorf("chat template: several templates (%s) and none is named \"default\": set ChatOptions.Name", strings.Join(ct.names, ", "))
		}
	}
	t, err := ct.template(name)
	if err != nil {
		return "", err
	}

	vars := map[string]any{}
	for k, v := range ct.special {
		vars[k] = v
	}
	vars["add_generation_prompt"] = opts.AddGenerationPrompt
	// transformers always passes tools and documents, None when absent.
	vars["tools"] = nil
	if opts.Tools != nil {
		vars["tools"] = opts.Tools
	}
	vars["documents"] = nil
	for k, v := range opts.Extra {
		vars[k] = v
	}
	vars["messages"] = messages

	// Convert in sorted order so that the error for bad data is deterministic.
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := make(map[string]any, len(vars)+2)
	for _, k := range keys {
		cv, err := chatValue(vars[k])
		if err != nil {
			return "", fmt.Errorf("chat template: variable %q: %w", k, err)
		}
		data[k] = cv
	}

	// raise_exception records its message so that it survives gonja's error
	// wrapping and reaches the caller verbatim.
	var raised *ChatTemplateException
	data["raise_exception"] = func(va *exec.VarArgs) (*exec.Value, error) {
		msg := ""
		if len(va.Args) > 0 {
			msg = va.Args[0].String()
		}
		raised = &ChatTemplateException{Message: msg}
		return nil, raised
	}
	now := opts.Now
	data["strftime_now"] = func(va *exec.VarArgs) (*exec.Value, error) {
		if len(va.Args) != 1 || !va.Args[0].IsString() {
			return nil, errors.New("strftime_now takes one string argument")
		}
		at := now
		if at.IsZero() {
			at = time.Now()
		}
		return exec.AsValue(chatStrftime(at, va.Args[0].String())), nil
	}

	budget := newChatBudget(opts.Limits, chatSize(exec.AsValue(data), min(1<<40, math.MaxInt)))
	for k, v := range chatBudgetVars(budget) {
		data[k] = v
	}
	out, err := chatExecute(t, data, budget)
	if raised != nil {
		return "", raised
	}
	if budget.err != nil {
		return "", budget.err
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}

// chatExecute runs a template, turning a panic inside gonja into an error:
// a malformed template must not bring the caller down.
// It renders as Template.Execute does, with the render's own methods
// (wrapped with its budget) and an output bounded by it.
func chatExecute(t *exec.Template, data map[string]any, b *chatBudget) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("the template engine failed: %v", r)
		}
	}()
	env := chatEnvironment()
	w := &chatLimitWriter{b: b}
	r := exec.NewRenderer(&exec.Environment{
		Tests:             env.Tests,
		Filters:           env.Filters,
		ControlStructures: env.ControlStructures,
		Context:           env.Context.Inherit().Update(exec.NewContext(data)),
		Methods:           chatMethodsFor(b),
	}, w, chatConfig(), chatLoader, t)
	if err := r.Execute(); err != nil {
		return "", err
	}
	return w.out.String(), nil
}

// ChatTemplateException is the error raised by the template's own
// raise_exception(message), e.g. for roles that do not alternate.
type ChatTemplateException struct {
	Message string
}

func (e *ChatTemplateException) Error() string {
	return "chat template: raise_exception: " + e.Message
}

// chatConfig is the Jinja environment transformers uses for chat templates.
func chatConfig() *config.Config {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	cfg.KeepTrailingNewline = false
	cfg.AutoEscape = false
	return cfg
}

var (
	chatEnvOnce sync.Once
	chatEnv     *exec.Environment
)

// chatEnvironment returns the gonja environment with the additions and
// corrections chat templates need (see chat_builtins.go). It is built once and
// never changed afterwards; gonja's own global sets are left untouched.
func chatEnvironment() *exec.Environment {
	chatEnvOnce.Do(func() {
		ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
		ctx.Set(chatNoneName, chatNone)
		ctx.Set(chatItemName, chatItem)
		ctx.Set(chatEqName, chatEq)
		for name, fn := range chatPyFuncs {
			ctx.Set(name, fn)
		}
		ctx.Set("namespace", chatNamespaceFunc)
		ctx.Set("dict", chatDictFunc)
		chatEnv = &exec.Environment{
			Context:           ctx,
			Filters:           chatFilters(),
			Tests:             chatTests(),
			ControlStructures: chatControlStructures(),
			Methods:           chatMethods(),
		}
	})
	return chatEnv
}

// chatParse parses a chat template source.
func chatParse(src string) (*exec.Template, error) {
	if err := chatReserved(src); err != nil {
		return nil, err
	}
	rewritten, err := chatRewrite(src)
	if err != nil {
		return nil, err
	}
	return chatParseGonja(rewritten)
}

// chatParseGonja parses with gonja, turning a panic in its parser into an error.
func chatParseGonja(src string) (t *exec.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("syntax error (the template engine failed: %v)", r)
		}
	}()
	const id = "/chat_template"
	loader, err := loaders.NewMemoryLoader(map[string]string{id: src})
	if err != nil {
		return nil, err
	}
	t, err = exec.NewTemplate(id, chatConfig(), loader, chatEnvironment())
	if err != nil {
		return nil, chatSyntaxError(err)
	}
	if err := chatGuard(t.Root()); err != nil {
		return nil, err
	}
	return t, nil
}

// chatLoader is the loader renders get: chat templates load nothing.
var chatLoader, _ = loaders.NewMemoryLoader(map[string]string{})

// chatSyntaxError shortens gonja's parse error, which quotes the whole
// template source, to the part that says what and where.
func chatSyntaxError(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "': "); i >= 0 && strings.HasPrefix(msg, "failed to parse template '") {
		msg = msg[i+3:]
	}
	return fmt.Errorf("syntax error: %s", msg)
}
