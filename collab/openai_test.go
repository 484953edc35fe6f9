package collab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "sk-test-SECRET-4242"

func newTestEndpoint(t *testing.T, h http.HandlerFunc) (*Endpoint, *httptest.Server) {
	// Reading the body first lets the server notice a client that hangs up
	// (it watches the connection only once the body is consumed).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("MOCO_TEST_KEY", testKey)
	e, err := NewEndpoint(srv.URL+"/v1/", "test-model", "MOCO_TEST_KEY")
	if err != nil {
		t.Fatal(err)
	}
	e.Backoff = time.Millisecond
	return e, srv
}

func TestEndpointProtocol(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var paths, auths []string
	e, _ := newTestEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("request body: %v", err)
		}
		mu.Lock()
		got, paths, auths = append(got, m), append(paths, r.URL.Path), append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/v1/chat/completions" {
			fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"chat answer"}}],"usage":{"prompt_tokens":7,"completion_tokens":2}}`)
			return
		}
		fmt.Fprint(w, `{"choices":[{"index":0,"text":" text answer"}],"usage":{"prompt_tokens":3,"completion_tokens":5}}`)
	})
	res, err := e.Generate(context.Background(), []Request{
		{Messages: []Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}, MaxTokens: 16, Temperature: 0.7, TopP: 0.9, Seed: 3, Stop: []string{"\n"}},
		{Prompt: "Q: 1+1=\nA:"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != "chat answer" || res[0].PromptTokens != 7 || res[0].CompletionTokens != 2 {
		t.Errorf("chat response %+v", res[0])
	}
	if res[1].Text != " text answer" || res[1].PromptTokens != 3 || res[1].CompletionTokens != 5 {
		t.Errorf("completion response %+v", res[1])
	}
	if paths[0] != "/v1/chat/completions" { // the other request comes first
		paths[0], paths[1] = paths[1], paths[0]
		got[0], got[1] = got[1], got[0]
	}
	if paths[0] != "/v1/chat/completions" || paths[1] != "/v1/completions" {
		t.Errorf("paths %v", paths)
	}
	for _, a := range auths {
		if a != "Bearer "+testKey {
			t.Errorf("Authorization %q", a)
		}
	}
	wantChat := `{"max_tokens":16,"messages":[{"content":"be brief","role":"system"},{"content":"hi","role":"user"}],"model":"test-model","seed":3,"stop":["\n"],"temperature":0.7,"top_p":0.9}`
	wantText := `{"model":"test-model","prompt":"Q: 1+1=\nA:","temperature":0}`
	for i, want := range []string{wantChat, wantText} {
		b, _ := json.Marshal(got[i])
		if string(b) != want {
			t.Errorf("request %d\n got %s\nwant %s", i, b, want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", e, e, e); strings.Contains(s, testKey) {
		t.Errorf("the key shows when the endpoint is printed: %s", s)
	}
}

func TestEndpointRetries(t *testing.T) {
	var calls atomic.Int32
	e, _ := newTestEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"slow down"}}`)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			fmt.Fprint(w, `{"choices":[{"text":"ok"}]}`)
		}
	})
	res, err := e.Generate(context.Background(), []Request{{Prompt: "x"}})
	if err != nil || res[0].Text != "ok" || calls.Load() != 3 {
		t.Fatalf("after 429 and 502: %v %v, %d calls", res, err, calls.Load())
	}
}

func TestEndpointFailures(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		setup   func(e *Endpoint)
		err     string
		calls   int32
	}{
		{"5xx until the retries run out", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "overloaded")
		}, func(e *Endpoint) { e.MaxRetries = 2 }, `HTTP 503: "overloaded" (gave up after 2 retries)`, 3},
		{"4xx is not retried", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"message":"model not found"}}`)
		}, nil, "HTTP 404: model not found", 1},
		{"malformed JSON", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"choices":[{"text":"unterminated`)
		}, nil, "malformed JSON in the answer", 1},
		{"no choices", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"choices":[]}`)
		}, nil, "the answer has no choices", 1},
		{"error object", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"error":{"message":"context length exceeded"}}`)
		}, nil, "the server reported an error: context length exceeded", 1},
		{"slow endpoint times out", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}, func(e *Endpoint) { e.Timeout = 20 * time.Millisecond; e.MaxRetries = 1 }, "no answer within 20ms (gave up after 1 retries)", 2},
		{"a server that echoes the key", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"bad key %s"}}`, r.Header.Get("Authorization"))
		}, nil, "bad key Bearer [redacted]", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			e, _ := newTestEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.handler(w, r)
			})
			if tc.setup != nil {
				tc.setup(e)
			}
			_, err := e.Generate(context.Background(), []Request{{Prompt: "x"}})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("the key is in the error: %v", err)
			}
			if calls.Load() != tc.calls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.calls)
			}
		})
	}
}

func TestEndpointCancelAndConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	e, _ := newTestEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
			fmt.Fprint(w, `{"choices":[{"text":"done"}]}`)
		case <-r.Context().Done():
		}
	})
	e.Concurrency = 2
	// Cancellation: a hung server, cancelled after 30 ms, returns promptly.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Generate(ctx, []Request{{Prompt: "a"}, {Prompt: "b"}, {Prompt: "c"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	// The server notices the cancelled requests' closed connections in its
	// own time; only then does its count measure the client's limit.
	for deadline := time.Now().Add(5 * time.Second); inFlight.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d cancelled requests still open on the server", inFlight.Load())
		}
	}
	peak.Store(0)
	// The limit: six requests, at most two at a time.
	done := make(chan error)
	go func() {
		_, err := e.Generate(context.Background(), []Request{{Prompt: "1"}, {Prompt: "2"}, {Prompt: "3"}, {Prompt: "4"}, {Prompt: "5"}, {Prompt: "6"}})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

func TestNewEndpointErrors(t *testing.T) {
	t.Setenv("MOCO_EMPTY_KEY", "")
	for _, tc := range []struct{ url, model, env, err string }{
		{"localhost:8000", "m", "", "must start with http://"},
		{"http://h", "", "", "no model name"},
		{"http://h", "m", "MOCO_EMPTY_KEY", "MOCO_EMPTY_KEY is unset or empty"},
	} {
		if _, err := NewEndpoint(tc.url, tc.model, tc.env); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: error %v, want %q", tc, err, tc.err)
		}
	}
}

// TestParseOAIFinish: an endpoint's finish_reason is kept as it is sent,
// and left empty when it sends none.
func TestParseOAIFinish(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"choices":[{"text":"x","finish_reason":"length"}]}`, "length"},
		{`{"choices":[{"message":{"content":"y"},"finish_reason":"stop"}]}`, "stop"},
		{`{"choices":[{"message":{"content":"y"},"finish_reason":"content_filter"}]}`, "content_filter"},
		{`{"choices":[{"text":"x","finish_reason":null}]}`, ""},
		{`{"choices":[{"text":"x"}]}`, ""},
	} {
		res, err := parseOAI([]byte(tc.body))
		if err != nil || res.Finish != tc.want {
			t.Errorf("%s: finish %q, %v; want %q", tc.body, res.Finish, err, tc.want)
		}
	}
}

func FuzzParseOAI(f *testing.F) {
	f.Add([]byte(`{"choices":[{"text":"x"}]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":"y"}}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"choices":[{"message":null,"text":null}]}`))
	f.Add([]byte(`{"error":{"message":"e"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parseOAI(b)
		if err == nil && res.ForwardTokens != int64(res.PromptTokens+res.CompletionTokens) {
			t.Fatalf("token sums disagree: %+v", res)
		}
	})
}

func TestOpenPoolEndpoints(t *testing.T) {
	pool, closeAll, err := OpenPool([]string{"http://127.0.0.1:1/v1#m", "https://h#m"}, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if pool[0].Name != "m" || pool[1].Name != "m#2" || pool[0].Local != nil {
		t.Errorf("pool %+v", pool)
	}
	if _, _, err := OpenPool([]string{"http://h:8000/v1"}, PoolOptions{}); err == nil || !strings.Contains(err.Error(), "after a #") {
		t.Errorf("no model name: %v", err)
	}
}

// TestEndpointSeed: the seed sent is the request's low 63 bits, a JSON
// integer every OpenAI-compatible server takes (a seed of 2^63 or more was
// refused with HTTP 400, by moco's server among others).
func TestEndpointSeed(t *testing.T) {
	e, err := NewEndpoint("http://h/v1", "m", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seed uint64
		want string
	}{
		{3, `"seed":3`},
		{1<<63 | 5, `"seed":5`},
		{math.MaxUint64, `"seed":9223372036854775807`},
		{1 << 63, `"seed":0`},
	} {
		b, _, err := e.body(Request{Prompt: "x", Seed: tc.seed})
		if err != nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("seed %d: body %s (%v), want %s", tc.seed, b, err, tc.want)
		}
	}
}
