package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// testConfig serves stories260K as a, llama2xs as b (same vocabulary),
// their fusion and a speculative pair.
func testConfig(t testing.TB) *Config {
	a := testutil.Shared(t, "models/stories260K")
	b := testutil.Shared(t, "models/llama2xs")
	c, err := ParseConfig([]byte(fmt.Sprintf(`
models:
  - {id: a, path: %q}
  - {id: b, path: %q}
recipes:
  - {id: fusion-ab, method: fusion, models: [a, b], params: {mode: logit-mean}}
  - {id: spec-a, method: speculative, models: [a, b], params: {draft_tokens: 3}}
`, a, b)), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestServer builds the test config's server behind httptest.
func newTestServer(t testing.TB, opts BuildOptions) (*Server, *httptest.Server) {
	t.Helper()
	return serveConfig(t, testConfig(t), opts)
}

// serveConfig builds c's server behind httptest, closed at the test's end.
func serveConfig(t testing.TB, c *Config, opts BuildOptions) (*Server, *httptest.Server) {
	t.Helper()
	s, closeAll, err := Build(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		closeAll()
	})
	return s, ts
}

// post sends body as JSON and returns the status and decoded response.
func post(t testing.TB, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("POST %s: status %d, body %q is not JSON: %v", url, resp.StatusCode, data, err)
	}
	return resp.StatusCode, out
}

// single is the independent reference: the text single-sequence
// generation (decode.NewMethod, Session and Lockstep) gives.
func single(t testing.TB, dir, prompt string, maxTokens int, stop []string) string {
	text, _, _ := singleRun(t, dir, prompt, maxTokens, stop)
	return text
}

// singleCompletion is single's greedy text as a completion of prompt: the
// text its tokens add after the prompt's (a SentencePiece word keeps the
// space that it loses at the start of a text alone).
func singleCompletion(t testing.TB, dir, prompt string, maxTokens int) string {
	_, ids, tok := singleRun(t, dir, prompt, maxTokens, nil)
	return continuation(t, tok, prompt, ids)
}

// singleRun is single's generation: its text, its tokens and the
// tokenizer.
func singleRun(t testing.TB, dir, prompt string, maxTokens int, stop []string) (string, []int, *tokenizer.Tokenizer) {
	t.Helper()
	m, tok := testmodel.Load(t, dir)
	c, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{Method: "single", MaxTokens: maxTokens, Stop: stop})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	text, err := c.GenerateContext(context.Background(), prompt, nil, func(tk decode.Token) bool {
		ids = append(ids, tk.ID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return text, ids, tok
}

// continuation is the text ids add after prompt's, by Decode of the whole.
func continuation(t testing.TB, tok *tokenizer.Tokenizer, prompt string, ids []int) string {
	t.Helper()
	p, err := tok.Encode(prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	before, all := tok.Decode(p, true), tok.Decode(append(p, ids...), true)
	if !strings.HasPrefix(all, before) {
		t.Fatalf("%q does not start with the prompt's %q", all, before)
	}
	return all[len(before):]
}

func choiceText(t testing.TB, out map[string]any, chat bool) string {
	t.Helper()
	ch, ok := out["choices"].([]any)
	if !ok || len(ch) == 0 {
		t.Fatalf("no choices in %v", out)
	}
	c := ch[0].(map[string]any)
	if chat {
		return c["message"].(map[string]any)["content"].(string)
	}
	return c["text"].(string)
}

func TestModelsEndpoint(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list modelList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" {
			t.Errorf("%s: object %q", m.ID, m.Object)
		}
	}
	if list.Object != "list" || fmt.Sprint(ids) != "[a b fusion-ab spec-a]" {
		t.Fatalf("models: %+v", list)
	}
}

// TestCompletionsMatchSingle checks completions, chat and both recipes
// against single-sequence generation: greedy text, finish reasons, usage.
func TestCompletionsMatchSingle(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	dirA := testutil.Shared(t, "models/stories260K")
	want := single(t, dirA, "Once upon a time", 30, nil)

	code, out := post(t, ts.URL+"/v1/completions", `{"model": "a", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}`)
	if code != 200 || choiceText(t, out, false) != want {
		t.Fatalf("completion: %d %v, want text %q", code, out, want)
	}
	u := out["usage"].(map[string]any)
	if u["completion_tokens"].(float64) != 30 || u["prompt_tokens"].(float64) < 2 || out["object"] != "text_completion" {
		t.Errorf("usage or object: %v", out)
	}
	if fr := out["choices"].([]any)[0].(map[string]any)["finish_reason"]; fr != "length" {
		t.Errorf("finish_reason %v, want length", fr)
	}
	// A model without a chat template gets the message text as it is.
	code, out = post(t, ts.URL+"/v1/chat/completions", `{"model": "a", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 30, "temperature": 0}`)
	if code != 200 || choiceText(t, out, true) != want || out["object"] != "chat.completion" {
		t.Fatalf("chat: %d %v, want text %q", code, out, want)
	}
	// Speculative decoding keeps the target's greedy text.
	code, out = post(t, ts.URL+"/v1/completions", `{"model": "spec-a", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}`)
	if code != 200 || choiceText(t, out, false) != want {
		t.Fatalf("spec-a: %d %v, want text %q", code, out, want)
	}
	// Stop strings cut the text before them.
	cut := want[:strings.LastIndex(want, " ")]
	stop := want[len(cut):]
	code, out = post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"model": "a", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0, "stop": [%q]}`, stop))
	if code != 200 || !strings.HasPrefix(want, choiceText(t, out, false)) || strings.Contains(choiceText(t, out, false), stop) {
		t.Fatalf("stop %q: %v", stop, out)
	}
	// The fusion recipe answers, and n choices come back.
	code, out = post(t, ts.URL+"/v1/chat/completions", `{"model": "fusion-ab", "messages": [{"role": "user", "content": "Lily"}], "max_tokens": 10, "n": 2, "seed": 3}`)
	if code != 200 || len(out["choices"].([]any)) != 2 {
		t.Fatalf("fusion-ab: %d %v", code, out)
	}
}

// readSSE reads an event stream: the data of each event, up to [DONE].
func readSSE(t testing.TB, r io.Reader) []map[string]any {
	t.Helper()
	var evs []map[string]any
	sc := bufio.NewScanner(r)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		evs = append(evs, ev)
	}
	if !done {
		t.Fatal("the stream did not end with [DONE]")
	}
	return evs
}

func TestStreaming(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	// "The dog" continues with a word: the completion keeps its space.
	dir := testutil.Shared(t, "models/stories260K")
	wantChat, wantCompletion := single(t, dir, "The dog", 25, nil), singleCompletion(t, dir, "The dog", 25)
	if wantCompletion != " "+wantChat {
		t.Fatalf("completion %q, chat answer %q: want one space between them", wantCompletion, wantChat)
	}
	for _, chat := range []bool{false, true} {
		url, body, want := ts.URL+"/v1/completions", `{"model": "a", "prompt": "The dog", "max_tokens": 25, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2}`, wantCompletion
		if chat {
			want = wantChat
			url, body = ts.URL+"/v1/chat/completions", `{"model": "a", "messages": [{"role": "user", "content": "The dog"}], "max_tokens": 25, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}`
		}
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		evs := readSSE(t, resp.Body)
		resp.Body.Close()
		var text strings.Builder
		var finish any
		var u map[string]any
		var offsets []any
		for i, ev := range evs {
			if x, ok := ev["usage"].(map[string]any); ok {
				u = x
			}
			// Asked for usage, every chunk but the last has it null.
			if x, ok := ev["usage"]; i < len(evs)-1 && (!ok || x != nil) {
				t.Errorf("chat %v: chunk %d has usage %v, want null", chat, i, x)
			}
			for _, c := range ev["choices"].([]any) {
				c := c.(map[string]any)
				if chat {
					if s, ok := c["delta"].(map[string]any)["content"].(string); ok {
						text.WriteString(s)
					}
				} else {
					text.WriteString(c["text"].(string))
					if lp, ok := c["logprobs"].(map[string]any); ok {
						offsets = append(offsets, lp["text_offset"].([]any)...)
					}
				}
				if c["finish_reason"] != nil {
					finish = c["finish_reason"]
				}
			}
		}
		if text.String() != want || finish != "length" || u == nil || u["completion_tokens"].(float64) != 25 {
			t.Fatalf("chat %v: streamed %q (finish %v, usage %v), want %q", chat, text.String(), finish, u, want)
		}
		if !chat {
			// The text offsets run on over the chunks, as in one answer.
			_, out := post(t, url, strings.Replace(body, `"stream": true, "stream_options": {"include_usage": true}`, `"stream": false`, 1))
			wantOffsets := out["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any)["text_offset"]
			if fmt.Sprint(offsets) != fmt.Sprint(wantOffsets) {
				t.Errorf("streamed text_offset %v, want %v as unstreamed", offsets, wantOffsets)
			}
		}
	}
}

// TestLogprobsTokens checks that the logprobs' tokens are the texts they
// add to the answer: they join up to it and text_offset counts its
// characters before each; chat's bytes are the tokens' raw bytes.
// TestCompletionContinuesPrompt checks that a completion's text continues
// its prompt as OpenAI's do (" upon a time" after "Once": stories260K's
// SentencePiece decoder drops a text's first space), for a model and a
// lockstep recipe, streamed or not, while a chat answer starts without it.
func TestCompletionContinuesPrompt(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	for _, model := range []string{"a", "fusion-ab"} {
		_, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"model": %q, "prompt": "Once", "max_tokens": 4, "temperature": 0}`, model))
		text := out["choices"].([]any)[0].(map[string]any)["text"].(string)
		if !strings.HasPrefix(text, " upon") {
			t.Errorf("%s: completion of %q is %q, want it to start with \" upon\"", model, "Once", text)
		}
		var streamed strings.Builder
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json",
			strings.NewReader(fmt.Sprintf(`{"model": %q, "prompt": "Once", "max_tokens": 4, "temperature": 0, "stream": true}`, model)))
		if err != nil {
			t.Fatal(err)
		}
		evs := readSSE(t, resp.Body)
		resp.Body.Close()
		for _, ev := range evs {
			for _, c := range ev["choices"].([]any) {
				streamed.WriteString(c.(map[string]any)["text"].(string))
			}
		}
		if streamed.String() != text {
			t.Errorf("%s: streamed %q, want %q", model, streamed.String(), text)
		}
	}
	_, out := post(t, ts.URL+"/v1/chat/completions", `{"model": "a", "messages": [{"role": "user", "content": "Once"}], "max_tokens": 4, "temperature": 0}`)
	if c := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string); strings.HasPrefix(c, " ") {
		t.Errorf("chat answer %q starts with a space", c)
	}
}

func TestLogprobsTokens(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	_, out := post(t, ts.URL+"/v1/completions", `{"model": "a", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "logprobs": 2}`)
	c := out["choices"].([]any)[0].(map[string]any)
	lp := c["logprobs"].(map[string]any)
	var text strings.Builder
	for i, tok := range lp["tokens"].([]any) {
		if off := lp["text_offset"].([]any)[i].(float64); int(off) != text.Len() {
			t.Errorf("token %d %q: text_offset %v, want %d", i, tok, off, text.Len())
		}
		text.WriteString(tok.(string))
		if _, ok := lp["top_logprobs"].([]any)[i].(map[string]any)[tok.(string)]; !ok {
			t.Errorf("token %d %q: not among its top_logprobs %v", i, tok, lp["top_logprobs"].([]any)[i])
		}
	}
	if text.String() != c["text"] || !strings.Contains(text.String(), " ") {
		t.Errorf("tokens %v join up to %q, want the text %q", lp["tokens"], text.String(), c["text"])
	}

	_, out = post(t, ts.URL+"/v1/chat/completions", `{"model": "a", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 12, "temperature": 0, "logprobs": true, "top_logprobs": 1}`)
	c = out["choices"].([]any)[0].(map[string]any)
	var b []byte
	for _, e := range c["logprobs"].(map[string]any)["content"].([]any) {
		e := e.(map[string]any)
		for _, x := range e["bytes"].([]any) {
			b = append(b, byte(x.(float64)))
		}
		if top := e["top_logprobs"].([]any)[0].(map[string]any); top["token"] != e["token"] {
			t.Errorf("token %q: top alternative %q", e["token"], top["token"])
		}
	}
	if want := c["message"].(map[string]any)["content"]; string(b) != want {
		t.Errorf("bytes join up to %q, want the content %q", b, want)
	}

	// "好!" split into byte tokens: each is named by its bytes, as OpenAI
	// does, its bytes are its own, and the character's offset is that
	// of its first byte.
	g := &generation{req: &genRequest{Logprobs: true}}
	lps := []decode.TokenLogprob{{Text: "a "}, {Text: "\xe5"}, {Text: "\xa5"}, {Text: "\xbd"}, {Text: "!"}}
	cl := g.completionLogprobs(lps, &textOffset{})
	if fmt.Sprint(cl.Tokens) != `[a  bytes:\xe5 bytes:\xa5 bytes:\xbd !]` || fmt.Sprint(cl.TextOffset) != "[0 2 2 2 3]" {
		t.Errorf("tokens %q, text_offset %v", cl.Tokens, cl.TextOffset)
	}
	if ch := g.chatLogprobs(lps); fmt.Sprint(ch.Content[1].Bytes) != "[229]" || ch.Content[1].Token != `bytes:\xe5` {
		t.Errorf("chat logprob %+v, want bytes:\\xe5 and [229]", ch.Content[1])
	}
}

// TestErrors sends bad requests: each gets its 4xx in OpenAI's shape, and
// the server keeps serving.
func TestErrors(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{Server: Options{Limits: Limits{MaxBodyBytes: 4096, MaxTokens: 100}}})
	long := strings.Repeat("Once upon a time there was a dog. ", 130)
	for _, tc := range []struct {
		name, path, method, body string
		status                   int
		code, want               string
	}{
		{"malformed JSON", "/v1/completions", "POST", `{"model": "a", "prompt": `, 400, "", "not valid JSON"},
		{"wrong type", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "max_tokens": "ten"}`, 400, "", "not valid JSON"},
		{"unknown model", "/v1/completions", "POST", `{"model": "nope", "prompt": "x"}`, 404, "model_not_found", "does not exist"},
		{"no model", "/v1/chat/completions", "POST", `{"messages": [{"role": "user", "content": "x"}]}`, 400, "", "model parameter"},
		{"negative max_tokens", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "max_tokens": -5}`, 400, "", "max_tokens must be at least 1"},
		{"max_tokens over the limit", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "max_tokens": 101}`, 400, "", "limit of 100"},
		{"prompt past the context", "/v1/completions", "POST", fmt.Sprintf(`{"model": "b", "prompt": %q, "max_tokens": 10}`, long[:2000]), 400, "context_length_exceeded", "maximum context length is 256"},
		{"body too large", "/v1/completions", "POST", fmt.Sprintf(`{"model": "a", "prompt": %q}`, long), 413, "request_too_large", "4096 bytes"},
		{"bad temperature", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "temperature": 3}`, 400, "", "temperature"},
		{"bad n", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "n": 0}`, 400, "", "n must be"},
		{"bad role", "/v1/chat/completions", "POST", `{"model": "a", "messages": [{"role": "wizard", "content": "x"}]}`, 400, "", "wizard"},
		{"no messages", "/v1/chat/completions", "POST", `{"model": "a", "messages": []}`, 400, "", "empty"},
		{"no content", "/v1/chat/completions", "POST", `{"model": "a", "messages": [{"role": "user"}]}`, 400, "", "no content"},
		{"null content", "/v1/chat/completions", "POST", `{"model": "a", "messages": [{"role": "system", "content": null}, {"role": "user", "content": "x"}]}`, 400, "", "messages[0] has no content"},
		{"tool calls", "/v1/chat/completions", "POST", `{"model": "a", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}`, 400, "", "tool calls"},
		{"penalty", "/v1/completions", "POST", `{"model": "a", "prompt": "x", "frequency_penalty": 1}`, 400, "", "not supported"},
		{"recipe logprobs", "/v1/chat/completions", "POST", `{"model": "spec-a", "messages": [{"role": "user", "content": "x"}], "logprobs": true}`, 400, "", "not available"},
		{"wrong method", "/v1/completions", "GET", ``, 405, "method_not_allowed", "use POST"},
		{"unknown path", "/v2/x", "GET", ``, 404, "not_found", "no endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Error *APIError `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Error == nil {
				t.Fatalf("status %d, body not an OpenAI error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(out.Error.Message, tc.want) || out.Error.Type == "" ||
				(tc.code != "" && (out.Error.Code == nil || *out.Error.Code != tc.code)) {
				t.Fatalf("status %d, error %+v (code %v); want %d, %q, code %q", resp.StatusCode, out.Error, out.Error.Code, tc.status, tc.want, tc.code)
			}
		})
	}
	// The error names the field the client used.
	code, out := post(t, ts.URL+"/v1/chat/completions", `{"model": "a", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 101}`)
	if e, _ := out["error"].(map[string]any); code != 400 || e["param"] != "max_completion_tokens" || !strings.HasPrefix(fmt.Sprint(e["message"]), "max_completion_tokens is 101") {
		t.Errorf("max_completion_tokens over the limit: %d %v", code, out)
	}
	if code, out := post(t, ts.URL+"/v1/completions", `{"model": "a", "prompt": "x", "max_tokens": 3}`); code != 200 {
		t.Fatalf("after the errors: %d %v", code, out)
	}
}

// TestDefaultMaxTokensFitsContext: a request without max_tokens to a
// model whose context is smaller than prompt + the default max_tokens
// generates to the end of the context instead of failing; a prompt that
// leaves no room still fails.
func TestDefaultMaxTokensFitsContext(t *testing.T) {
	// b's context is 256, the default max_tokens 256; no EOS, so that
	// generation runs to the cap.
	_, ts := newTestServer(t, BuildOptions{Batcher: decode.BatcherConfig{EOS: []int{}}})
	for _, path := range []string{"/v1/completions", "/v1/chat/completions"} {
		body := `{"model": "b", "prompt": "Once upon a time"}`
		if strings.Contains(path, "chat") {
			body = `{"model": "b", "messages": [{"role": "user", "content": "Once upon a time"}]}`
		}
		code, out := post(t, ts.URL+path, body)
		if code != 200 {
			t.Fatalf("%s without max_tokens: %d %v", path, code, out)
		}
		u := out["usage"].(map[string]any)
		if u["total_tokens"] != 256.0 || out["choices"].([]any)[0].(map[string]any)["finish_reason"] != "length" {
			t.Errorf("%s without max_tokens: usage %v, want the 256-token context filled, finish length", path, u)
		}
	}
	long := strings.Repeat("Once upon a time there was a dog. ", 60)
	code, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"model": "b", "prompt": %q}`, long))
	if e, _ := out["error"].(map[string]any); code != 400 || e == nil || e["code"] != "context_length_exceeded" ||
		strings.Contains(e["message"].(string), "max_tokens") {
		t.Errorf("a prompt past the context without max_tokens: %d %v (the message must not blame a max_tokens never sent)", code, out)
	}
}

// TestSpeculativeFillsContext: the speculative recipe generates up to the
// end of its context (b's 256 positions) as a model does; its drafts
// never run past max_tokens, so they need no room of their own.
func TestSpeculativeFillsContext(t *testing.T) {
	_, ts := newTestServer(t, BuildOptions{})
	_, out := post(t, ts.URL+"/v1/completions", `{"model": "b", "prompt": "Once upon a time", "max_tokens": 1}`)
	room := 256 - int(out["usage"].(map[string]any)["prompt_tokens"].(float64))
	for _, n := range []int{room, room - 3} {
		code, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"model": "spec-a", "prompt": "Once upon a time", "max_tokens": %d, "temperature": 0.9, "seed": 11}`, n))
		if code != 200 {
			t.Fatalf("max_tokens %d: %d %v", n, code, out)
		}
		got := out["usage"].(map[string]any)["completion_tokens"].(float64)
		fr := out["choices"].([]any)[0].(map[string]any)["finish_reason"]
		if int(got) != n || fr != "length" {
			t.Errorf("max_tokens %d: %v tokens, finish %v; want all of them", n, got, fr)
		}
	}
}

// TestQueueLimitAndDisconnect fills a one-sequence batch and its
// one-request queue: the next request gets 429. The running client then
// disconnects, which frees its KV cache, and the queued one runs.
func TestQueueLimitAndDisconnect(t *testing.T) {
	s, ts := newTestServer(t, BuildOptions{Batcher: decode.BatcherConfig{MaxQueue: 1, EOS: []int{}, Batch: engine.BatchOptions{MaxSeqs: 1}}})
	b := s.lookup("a").batcher
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
		strings.NewReader(`{"model": "a", "prompt": "x", "max_tokens": 500, "stream": true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the first token arrived: it is running
		t.Fatal(err)
	}
	queued := make(chan int)
	go func() {
		code, _ := post(t, ts.URL+"/v1/completions", `{"model": "a", "prompt": "x", "max_tokens": 4}`)
		queued <- code
	}()
	for b.Stats().Queued != 1 {
		time.Sleep(time.Millisecond)
	}
	code, out := post(t, ts.URL+"/v1/completions", `{"model": "a", "prompt": "x", "max_tokens": 4}`)
	if e, _ := out["error"].(map[string]any); code != 429 || e == nil || e["code"] != "rate_limit_exceeded" {
		t.Fatalf("with the queue full: %d %v", code, out)
	}
	if b.Stats().KVUsed == 0 {
		t.Fatal("the running request holds no KV cache")
	}
	cancel()
	resp.Body.Close()
	if code := <-queued; code != 200 {
		t.Fatalf("the queued request: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st := b.Stats(); st.KVUsed != 0 || st.Active != 0; st = b.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the disconnected client's sequence still holds the cache: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAPIKeyHealthMetrics(t *testing.T) {
	s, ts := newTestServer(t, BuildOptions{Server: Options{APIKey: "sekrit"}})
	do := func(path, key string) (int, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("/v1/models", ""); code != 401 {
		t.Errorf("no key: %d", code)
	}
	if code, body := do("/v1/models", "wrong"); code != 401 || !strings.Contains(body, "invalid_api_key") {
		t.Errorf("wrong key: %d %s", code, body)
	}
	if code, _ := do("/v1/models", "sekrit"); code != 200 {
		t.Errorf("right key: %d", code)
	}
	if code, body := do("/health", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("health: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(`{"model": "a", "prompt": "x", "max_tokens": 5, "temperature": 0}`))
	req.Header.Set("Authorization", "Bearer sekrit")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("completion: %v %v", err, resp)
	}
	resp.Body.Close()
	code, body := do("/metrics", "sekrit")
	for _, want := range []string{`moco_requests_total{endpoint="/v1/completions",code="200"} 1`, `moco_generated_tokens_total{model="a"} 5`,
		`moco_queue_depth{model="a"} 0`, `moco_batch_size{model="a"} 0`, "moco_tokens_per_second", `moco_batch_steps_total{model="a"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	s.Drain()
	if code, _ := do("/health", ""); code != 503 {
		t.Errorf("health while draining: %d", code)
	}
	req, _ = http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(`{"model": "a", "prompt": "x"}`))
	req.Header.Set("Authorization", "Bearer sekrit")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 503 {
		t.Errorf("a request while draining: %v %v", err, resp)
	}
}

// TestLoad sends 200 requests from 16 concurrent clients over 10 prompts
// and lengths: every answer must be its own prompt's single-sequence
// greedy text, nothing lost or mixed up.
func TestLoad(t *testing.T) {
	requests, clients := 200, 16
	if testing.Short() {
		requests = 64
	}
	_, ts := newTestServer(t, BuildOptions{})
	dir := testutil.Shared(t, "models/stories260K")
	words := strings.Fields("Once upon a time there was a little girl named Lily who loved to play")
	type job struct {
		prompt string
		max    int
	}
	var jobs []job
	want := map[job]string{}
	for i := range 10 {
		j := job{strings.Join(words[:1+i], " "), 4 + 3*i}
		jobs = append(jobs, j)
		want[j] = singleCompletion(t, dir, j.prompt, j.max)
	}
	work := make(chan int)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := range work {
				j := jobs[(i*7)%len(jobs)]
				stream := i%3 == 0
				body, _ := json.Marshal(map[string]any{"model": "a", "prompt": j.prompt, "max_tokens": j.max, "temperature": 0, "stream": stream})
				resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(body))
				var got string
				if err == nil {
					if stream {
						for _, ev := range readSSE(t, resp.Body) {
							for _, c := range ev["choices"].([]any) {
								got += c.(map[string]any)["text"].(string)
							}
						}
					} else {
						var out completion
						err = json.NewDecoder(resp.Body).Decode(&out)
						if err == nil && len(out.Choices) == 1 {
							got = out.Choices[0].Text
						}
					}
					resp.Body.Close()
				}
				if err != nil || got != want[j] {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("request %d (%q): %q, %v; want %q", i, j.prompt, got, err, want[j]))
					mu.Unlock()
				}
			}
		})
	}
	for i := range requests {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(failures), requests, failures[0])
	}
}

// TestParseConfigLoRA: a model given as mergekit's MODEL+LORA, or as a
// LoRA adapter folder, is refused when the config is read, naming the
// entry and the merge that makes it servable, not after the models before
// it have loaded; a folder whose name holds a "+" is still a folder.
func TestParseConfigLoRA(t *testing.T) {
	models := testutil.Shared(t, "models")
	for _, c := range []struct{ path, want string }{
		{"skills-base+skills-lora-add", "models[1] (b): path skills-base+skills-lora-add is MODEL+LORA"},
		{filepath.Join(models, "skills-base") + "+" + filepath.Join(models, "skills-lora-add"), "is MODEL+LORA"},
		{"skills-lora-add", "models[1] (b): path skills-lora-add is a LoRA adapter, not a model folder"},
	} {
		cfg := fmt.Sprintf("models:\n  - {id: a, path: skills-base}\n  - {id: b, path: %q}\n", c.path)
		_, err := ParseConfig([]byte(cfg), models)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "moco merge --method lora") {
			t.Errorf("%s: error %v, want %q and the merge to run", c.path, err, c.want)
		}
	}
	if _, err := ParseConfig([]byte("models: [{id: a, path: skills-base+skills-lora-add}]"), models); err == nil ||
		!strings.Contains(err.Error(), "--base "+filepath.Join(models, "skills-base")+" -m "+filepath.Join(models, "skills-lora-add")) {
		t.Errorf("the merge should name both folders resolved: %v", err)
	}
	dir := t.TempDir()
	plus := filepath.Join(dir, "a+lora")
	if err := os.MkdirAll(plus, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plus, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(models, "skills-lora-add"), filepath.Join(dir, "lora")); err != nil {
		t.Skip(err)
	}
	if c, err := ParseConfig([]byte("models: [{id: a, path: a+lora}]"), dir); err != nil || c.Models[0].Path != plus {
		t.Errorf("a folder named a+lora: %+v, %v", c, err)
	}
}

func TestParseConfigStrict(t *testing.T) {
	for _, bad := range []string{
		"",
		"models: [{id: a, path: x, extra: 1}]",
		"models: [{id: a}]",
		"models: [{id: a, path: x}, {id: a, path: y}]",
		"models: [{id: a, path: x}]\nrecipes: [{id: r, method: fusion, models: [a, c]}]",
		"models: [{id: a, path: x}]\nrecipes: [{id: a, method: fusion, models: [a]}]",
		"modelz: []",
		"models: []\n---\nmodels: []",
		"models: [{id: a, path: x, url: 'http://h/v1'}]",      // both
		"models: [{id: a, url: 'ftp://h/v1'}]",                // not http(s)
		"models: [{id: a, path: x, model: m}]",                // model is a url's
		"models: [{id: a, path: x, api_key_env: OPENAI_KEY}]", // so is the key
	} {
		_, err := ParseConfig([]byte(bad), "")
		if err == nil {
			t.Errorf("config %q was accepted", bad)
		} else if strings.Contains(err.Error(), "serve.") || strings.Contains(err.Error(), "\n") {
			t.Errorf("config %q: Go type names or several lines in %q", bad, err)
		}
	}
	if c, err := ParseConfig([]byte("models: [{id: g, url: 'https://h/v1', model: gpt, api_key_env: K}]"), "/cfg"); err != nil || c.Models[0].Path != "" || c.Models[0].Model != "gpt" {
		t.Errorf("a remote model: %+v %v", c, err)
	}
	c, err := ParseConfig([]byte("models: [{id: a, path: m}]\nrecipes: [{id: r, method: fusion, models: [a], params: {mode: prob-mean}}]"), "/cfg")
	if err != nil || c.Models[0].Path != "/cfg/m" || c.Recipes[0].Params["mode"] != "prob-mean" {
		t.Fatalf("%+v %v", c, err)
	}
	// Unknown method parameters fail when the recipe is built.
	c.Models[0].Path = testutil.Shared(t, "models/stories260K")
	c.Recipes[0].Params = map[string]any{"mdoe": "x"}
	if _, _, err := Build(context.Background(), c, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "mdoe") {
		t.Fatalf("a misspelt parameter: %v", err)
	}
}

// TestTextRecipeBatched serves a text-level recipe (debate) whose members
// generate through the batchers: at temperature 0 its answer must be the
// one the same method gives over plain collab.Local members, which decode
// one request at a time in their own sessions.
func TestTextRecipeBatched(t *testing.T) {
	c := testConfig(t)
	c.Recipes = []RecipeSpec{{ID: "debate-ab", Method: "debate", Models: []string{"a", "b"}}}
	s, ts := serveConfig(t, c, BuildOptions{})
	code, out := post(t, ts.URL+"/v1/chat/completions", `{"model": "debate-ab", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 12, "temperature": 0}`)
	if code != 200 {
		t.Fatalf("debate-ab: %d %v", code, out)
	}
	pool, closePool, err := collab.LoadPool([]string{c.Models[0].Path, c.Models[1].Path}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closePool()
	m, err := collab.New(context.Background(), "debate", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Generate(context.Background(), []collab.Request{{Messages: []collab.Message{{Role: "user", Content: "Once upon a time"}}, MaxTokens: 12}})
	if err != nil {
		t.Fatal(err)
	}
	if got := choiceText(t, out, true); got != want[0].Text {
		t.Fatalf("debate-ab served %q, over plain members %q", got, want[0].Text)
	}
	if st := s.lookup("a").batcher.Stats(); st.Completed < 2 {
		t.Fatalf("the debate's requests did not go through a's batcher: %+v", st)
	}
}

// TestTextRecipeFinishReason: a text recipe's finish_reason is that of the
// call that wrote its answer. Majority vote over the three skills models
// answers "Q: 289+623=\nA:" with one model's answer, which ends at the
// stop string within 8 tokens ("stop"), though the three calls together
// generate more than 8 tokens (which a guess from the summed count took for
// "length"); with max_tokens 2 every answer is cut ("length").
func TestTextRecipeFinishReason(t *testing.T) {
	var models strings.Builder
	for _, n := range []string{"add", "rev", "sort"} {
		fmt.Fprintf(&models, "  - {id: %s, path: %q}\n", n, testutil.Shared(t, "models/skills-"+n))
	}
	c, err := ParseConfig([]byte("models:\n"+models.String()+"recipes:\n  - {id: vote, method: majority-vote, models: [add, rev, sort]}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, ts := serveConfig(t, c, BuildOptions{})
	ask := func(model string, maxTokens int) (finish string, completion float64) {
		code, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"model": %q, "prompt": "Q: 289+623=\nA:", "max_tokens": %d, "temperature": 0, "stop": ["\n"]}`, model, maxTokens))
		if code != 200 {
			t.Fatalf("%s: %d %v", model, code, out)
		}
		fr, _ := out["choices"].([]any)[0].(map[string]any)["finish_reason"].(string)
		return fr, out["usage"].(map[string]any)["completion_tokens"].(float64)
	}
	for _, m := range []string{"add", "rev", "sort"} {
		if fr, n := ask(m, 8); fr != "stop" || n >= 8 {
			t.Fatalf("%s alone: finish %q after %v tokens; the test needs every member to stop early", m, fr, n)
		}
	}
	if fr, n := ask("vote", 8); fr != "stop" || n < 8 {
		t.Errorf("vote, max_tokens 8: finish %q after %v tokens in all, want stop (and at least 8 tokens in all)", fr, n)
	}
	if fr, _ := ask("vote", 2); fr != "length" {
		t.Errorf("vote, max_tokens 2: finish %q, want length", fr)
	}
}

// TestRemoteModels: a config's models may be OpenAI-compatible endpoints
// (here a second moco server): served under their ids, their answers are
// the remote server's (at temperature 0, the same model served directly);
// they join text-level recipes beside local models; a logit-level recipe
// over one is refused when the server is built.
func TestRemoteModels(t *testing.T) {
	_, remote := newTestServer(t, BuildOptions{}) // serves a and b
	local := testutil.Shared(t, "models/llama2xs")
	cfg := func(recipe string) *Config {
		c, err := ParseConfig([]byte(fmt.Sprintf("models:\n  - {id: ra, url: %q, model: a}\n  - {id: b, path: %q}\nrecipes:\n  - %s\n", remote.URL+"/v1", local, recipe)), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, _, err := Build(context.Background(), cfg("{id: f, method: fusion, models: [ra, b]}"), BuildOptions{}); err == nil || !strings.Contains(err.Error(), "ra") {
		t.Errorf("fusion over a remote model: %v", err)
	}
	_, ts := serveConfig(t, cfg("{id: vote, method: majority-vote, models: [ra, b], params: {task_type: text}}"), BuildOptions{})
	body := `{"model": %q, "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}`
	_, direct := post(t, remote.URL+"/v1/completions", fmt.Sprintf(body, "a"))
	code, proxied := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, "ra"))
	if code != 200 || choiceText(t, proxied, false) != choiceText(t, direct, false) || proxied["model"] != "ra" {
		t.Errorf("ra: %d %v, want a's answer %q", code, proxied, choiceText(t, direct, false))
	}
	// A request without max_tokens goes on without it: the remote fits
	// the answer to b's context (256 positions), which this server's
	// default of 256 tokens would overrun.
	c, err := ParseConfig([]byte(fmt.Sprintf("models: [{id: rb, url: %q, model: b}]", remote.URL+"/v1")), "")
	if err != nil {
		t.Fatal(err)
	}
	_, tsb := serveConfig(t, c, BuildOptions{})
	if code, out := post(t, tsb.URL+"/v1/completions", `{"model": "rb", "prompt": "Once upon a time", "temperature": 0}`); code != 200 {
		t.Errorf("rb without max_tokens: %d %v", code, out)
	}
	// Unseeded requests draw a 64-bit seed, which the endpoint must pass
	// on in a form the remote server takes.
	for range 4 {
		code, out := post(t, ts.URL+"/v1/completions", `{"model": "vote", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.8}`)
		if code != 200 {
			t.Fatalf("vote over ra and b: %d %v", code, out)
		}
	}
}

// TestRemoteModelFailures: a remote model's failure is answered as a
// gateway answers: its refusal of the request (400) passes through as the
// client's error, a failure of its own (401: the server's key, an
// unreadable answer) is 502. Neither is retried, so the test is quick.
func TestRemoteModelFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		want       int
		wantType   string
		wantInText string
	}{
		{"refused", 400, `{"error": {"message": "max_tokens is too large"}}`, 400, "invalid_request_error", "max_tokens is too large"},
		{"unauthorized", 401, `{"error": {"message": "bad key"}}`, 502, "server_error", "bad key"},
		{"unreadable", 200, `{"choices": [`, 502, "server_error", "malformed JSON"},
	} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			fmt.Fprint(w, tc.body)
		}))
		c, err := ParseConfig([]byte(fmt.Sprintf("models: [{id: r, url: %q, model: m}]", up.URL+"/v1")), "")
		if err != nil {
			t.Fatal(err)
		}
		_, ts := serveConfig(t, c, BuildOptions{})
		code, out := post(t, ts.URL+"/v1/completions", `{"model": "r", "prompt": "x", "max_tokens": 4}`)
		e, _ := out["error"].(map[string]any)
		if code != tc.want || e["type"] != tc.wantType || !strings.Contains(fmt.Sprint(e["message"]), tc.wantInText) {
			t.Errorf("%s: %d %v, want %d %s mentioning %q", tc.name, code, out, tc.want, tc.wantType, tc.wantInText)
		}
		up.Close()
	}
}

// TestCloseEndsRecipeRequests: Close (the end of a graceful shutdown's
// grace period) ends a request to a remote model that does not answer,
// with a 503, as it ends a model's sequences.
func TestCloseEndsRecipeRequests(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	c, err := ParseConfig([]byte(fmt.Sprintf("models: [{id: r, url: %q, model: m}]", up.URL+"/v1")), "")
	if err != nil {
		t.Fatal(err)
	}
	s, ts := serveConfig(t, c, BuildOptions{})
	done := make(chan string, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"model": "r", "prompt": "x", "max_tokens": 4}`))
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	<-arrived
	s.Close()
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"shutting_down"`) {
			t.Errorf("after Close: %s, want 503 shutting_down", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left the request to the remote model running")
	}
}
