package serve

import (
	"strings"
	"testing"
)

// FuzzParseRequest feeds arbitrary bodies to both endpoints' parser: it
// must never panic, and what it accepts must lie within the limits.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model": "a", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}`,
		`{"model": "a", "prompt": ["x"], "stop": ["\n", "."], "n": 2, "logprobs": 3, "seed": -1}`,
		`{"model": "a", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}}`,
		`{"model": "a", "messages": [{"role": "system", "content": [{"type": "text", "text": "be brief"}]}], "logprobs": true, "top_logprobs": 5}`,
		`{"model": "a", "prompt": "x", "max_completion_tokens": 5, "top_p": 0.5, "response_format": {"type": "text"}}`,
		`{"model": "a", "prompt": "x", "max_tokens": -1}`,
		`{"model": 3}`, `[]`, `null`, `{"model": "a", "prompt": "x"} {}`, ``,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	lim := Limits{MaxTokens: 100, MaxN: 4, MaxMessages: 8}.withDefaults()
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		r, err := parseRequest(body, chat, lim)
		if err != nil {
			if r != nil || err.Status != 400 || err.Message == "" || err.Type == "" {
				t.Fatalf("bad error %+v (request %+v)", err, r)
			}
			return
		}
		switch {
		case r.Model == "":
			t.Fatal("accepted without a model")
		case r.MaxTokens < 1 || r.MaxTokens > lim.MaxTokens:
			t.Fatalf("max_tokens %d accepted", r.MaxTokens)
		case r.N < 1 || r.N > lim.MaxN:
			t.Fatalf("n %d accepted", r.N)
		case !(r.Temperature >= 0 && r.Temperature <= 2) || !(r.TopP > 0 && r.TopP <= 1):
			t.Fatalf("temperature %v, top_p %v accepted", r.Temperature, r.TopP)
		case len(r.Stop) > 4 || r.TopLogprobs < 0 || r.TopLogprobs > 20:
			t.Fatalf("stop %q, top_logprobs %d accepted", r.Stop, r.TopLogprobs)
		case chat && (len(r.Messages) == 0 || len(r.Messages) > lim.MaxMessages):
			t.Fatalf("%d messages accepted", len(r.Messages))
		case r.TopLogprobs > 0 && !r.Logprobs:
			t.Fatal("top_logprobs without logprobs")
		case r.StreamUsage && !r.Stream:
			t.Fatal("stream_options without stream")
		}
		for _, s := range r.Stop {
			if s == "" {
				t.Fatal("an empty stop string was kept")
			}
		}
	})
}

// FuzzParseConfig: the YAML config parser never panics, and an accepted
// config has ids, a path or an http(s) url per model (not both), and
// recipes over listed models.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("models: [{id: a, path: x}, {id: b, path: y}]\nrecipes: [{id: f, method: fusion, models: [a, b], params: {mode: prob-mean}}]"))
	f.Add([]byte("models:\n  - id: a\n    path: /m\n"))
	f.Add([]byte("recipes: [{id: r}]"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("models: [{id: g, url: 'https://h/v1', model: m, api_key_env: K}, {id: b, path: y}]\nrecipes: [{id: v, method: debate, models: [g, b]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "/base")
		if err != nil {
			return
		}
		ids := map[string]bool{}
		for _, m := range c.Models {
			remote := strings.HasPrefix(m.URL, "http://") || strings.HasPrefix(m.URL, "https://")
			if m.ID == "" || (m.Path == "") == (m.URL == "") || m.URL != "" && !remote || ids[m.ID] {
				t.Fatalf("accepted model %+v", m)
			}
			ids[m.ID] = true
		}
		for _, r := range c.Recipes {
			if r.ID == "" || r.Method == "" || len(r.Models) == 0 || ids[r.ID] {
				t.Fatalf("accepted recipe %+v", r)
			}
			for _, id := range r.Models {
				if !ids[id] {
					t.Fatalf("recipe %s over unknown %s", r.ID, id)
				}
			}
		}
	})
}
