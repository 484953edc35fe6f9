package collab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoint is a model behind an OpenAI-compatible HTTP API (vLLM,
// llama.cpp's server, TGI, moco serve, or a hosted service): requests with
// Messages go to /v1/chat/completions, plain prompts to /v1/completions
// (Mode changes that). It is safe for concurrent use; at most Concurrency
// requests are in flight at once over all callers.
//
// A request that fails with 429 or a 5xx status, or whose connection
// fails, is retried up to MaxRetries times, waiting Backoff, then twice
// that and so on up to 30 s, or what a Retry-After header asks. Each
// attempt is limited to Timeout. Cancelling the context stops at once.
//
// The API key is read from an environment variable and sent as a bearer
// token; it is never part of an error, a trace or the Endpoint's printed
// form.
type Endpoint struct {
	// BaseURL is the server's address, with or without the /v1 suffix
	// (http://host:8000 and http://host:8000/v1 are the same).
	BaseURL string
	// Model is the model name the server knows ("model" in each request).
	Model string
	// ModelName names the endpoint in traces and errors (default Model).
	ModelName string
	// Mode is "auto" (default: chat for Messages, completions for a
	// Prompt), "chat" (a Prompt is sent as one user message) or
	// "completion" (Messages are refused).
	Mode        string
	Timeout     time.Duration // per attempt; default 120 s
	MaxRetries  int           // default 4; negative: none
	Backoff     time.Duration // first wait before a retry; default 500 ms
	Concurrency int           // requests in flight; default 4
	Client      *http.Client  // default: a client without its own timeout

	key  *secret // behind a pointer, which fmt prints as an address
	once sync.Once
	sem  chan struct{}
}

// secret holds a credential; Endpoint keeps it behind a pointer so that
// printing an Endpoint with any fmt verb shows an address, not the key.
type secret struct{ s string }

func (e *Endpoint) keyText() string {
	if e.key == nil {
		return ""
	}
	return e.key.s
}

// NewEndpoint returns an endpoint for model at baseURL whose API key is in
// the environment variable keyEnv ("" for servers without keys). A named
// variable that is unset or empty is an error, naming the variable only.
func NewEndpoint(baseURL, model, keyEnv string) (*Endpoint, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("endpoint %q: the base URL must start with http:// or https://", baseURL)
	}
	if model == "" {
		return nil, fmt.Errorf("endpoint %s: no model name", baseURL)
	}
	e := &Endpoint{BaseURL: baseURL, Model: model}
	if keyEnv != "" {
		k := os.Getenv(keyEnv)
		if k == "" {
			return nil, fmt.Errorf("endpoint %s: the API key variable %s is unset or empty", baseURL, keyEnv)
		}
		e.key = &secret{k}
	}
	return e, nil
}

// SetKey sets the API key directly (for callers that hold it already).
func (e *Endpoint) SetKey(k string) { e.key = &secret{k} }

// Name is ModelName, or the model name.
func (e *Endpoint) Name() string {
	if e.ModelName != "" {
		return e.ModelName
	}
	return e.Model
}

// Member returns e as a pool member.
func (e *Endpoint) Member() Member { return Member{Name: e.Name(), Gen: e} }

func (e *Endpoint) init() {
	e.once.Do(func() {
		n := e.Concurrency
		if n <= 0 {
			n = 4
		}
		e.sem = make(chan struct{}, n)
	})
}

// url joins the base URL and an API path such as "chat/completions".
func (e *Endpoint) url(path string) string {
	base := strings.TrimRight(e.BaseURL, "/")
	if !strings.HasSuffix(base, "/v1") {
		base += "/v1"
	}
	return base + "/" + path
}

// Generate sends the requests concurrently (within the endpoint's limit)
// and returns the responses in order, or the first error, after which the
// other requests are cancelled.
func (e *Endpoint) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	e.init()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-e.sem }()
			out[i], errs[i] = e.one(ctx, r)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the first real failure rather than the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, e.redact(first)
	}
	return out, nil
}

// redact removes the key from an error's text, in case a server or a
// transport echoed it.
func (e *Endpoint) redact(err error) error {
	k := e.keyText()
	if k == "" || !strings.Contains(err.Error(), k) {
		return err
	}
	return redactedError{msg: strings.ReplaceAll(err.Error(), k, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (r redactedError) Error() string { return r.msg }
func (r redactedError) Unwrap() error { return r.err }

type oaiMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type oaiRequest struct {
	Model       string       `json:"model"`
	Messages    []oaiMessage `json:"messages,omitempty"`
	Prompt      *string      `json:"prompt,omitempty"`
	MaxTokens   int          `json:"max_tokens,omitempty"`
	Temperature float64      `json:"temperature"`
	TopP        float64      `json:"top_p,omitempty"`
	Seed        *int64       `json:"seed,omitempty"`
	Stop        []string     `json:"stop,omitempty"`
}

type oaiResponse struct {
	Choices []struct {
		Text    *string `json:"text"`
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// body builds the JSON request and the API path for r.
func (e *Endpoint) body(r Request) ([]byte, string, error) {
	q := oaiRequest{Model: e.Model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, Stop: r.Stop}
	if r.TopP > 0 && r.TopP < 1 {
		q.TopP = r.TopP
	}
	if r.Seed != 0 {
		// OpenAI's seed is a signed 64-bit integer, and servers refuse
		// larger ones (moco's own did, for a seed it had drawn itself):
		// the seed's low 63 bits.
		s := int64(r.Seed & math.MaxInt64)
		q.Seed = &s
	}
	path := "completions"
	chat := len(r.Messages) > 0
	switch e.Mode {
	case "", "auto":
	case "chat":
		chat = true
	case "completion":
		if chat {
			return nil, "", errors.New("chat messages sent to an endpoint in completion mode")
		}
	default:
		return nil, "", fmt.Errorf("unknown endpoint mode %q (want auto, chat or completion)", e.Mode)
	}
	if chat {
		path = "chat/completions"
		msgs := r.Messages
		if len(msgs) == 0 {
			msgs = []Message{{Role: "user", Content: r.Prompt}}
		}
		for _, m := range msgs {
			q.Messages = append(q.Messages, oaiMessage(m))
		}
	} else {
		p := r.Prompt
		q.Prompt = &p
	}
	b, err := json.Marshal(q)
	return b, path, err
}

// httpError is a failed HTTP exchange; retryable ones are retried.
type httpError struct {
	status    int
	msg       string
	retry     bool
	waitAfter time.Duration // the server's Retry-After, if any
}

func (h *httpError) Error() string {
	if h.status == 0 {
		return h.msg
	}
	return fmt.Sprintf("HTTP %d: %s", h.status, h.msg)
}

// one sends one request with retries.
func (e *Endpoint) one(ctx context.Context, r Request) (Response, error) {
	body, path, err := e.body(r)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w", e.Name(), err)
	}
	retries := e.MaxRetries
	if retries == 0 {
		retries = 4
	}
	retries = max(retries, 0)
	wait := e.Backoff
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	var last error
	for attempt := 0; ; attempt++ {
		res, err := e.attempt(ctx, path, body)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("%s: %w", e.Name(), ctx.Err())
		}
		last = err
		var he *httpError
		if !errors.As(err, &he) || !he.retry || attempt >= retries {
			break
		}
		d := wait
		if he.waitAfter > 0 {
			d = he.waitAfter
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Response{}, fmt.Errorf("%s: %w", e.Name(), ctx.Err())
		}
		wait = min(2*wait, 30*time.Second)
	}
	if retries > 0 {
		var he *httpError
		if errors.As(last, &he) && he.retry {
			return Response{}, fmt.Errorf("%s at %s: %w (gave up after %d retries)", e.Name(), e.url(path), last, retries)
		}
	}
	return Response{}, fmt.Errorf("%s at %s: %w", e.Name(), e.url(path), last)
}

// attempt makes one HTTP exchange within the per-attempt timeout.
func (e *Endpoint) attempt(ctx context.Context, path string, body []byte) (Response, error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 120 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, e.url(path), bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if k := e.keyText(); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	client := e.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return Response{}, &httpError{msg: fmt.Sprintf("no answer within %v", timeout), retry: true}
		}
		// Connection failures are retried; the URL is in err, the key is not.
		return Response{}, &httpError{msg: err.Error(), retry: ctx.Err() == nil}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return Response{}, &httpError{msg: fmt.Sprintf("no complete answer within %v", timeout), retry: true}
		}
		return Response{}, &httpError{msg: "reading the answer: " + err.Error(), retry: ctx.Err() == nil}
	}
	if resp.StatusCode != http.StatusOK {
		he := &httpError{status: resp.StatusCode, msg: errorText(raw),
			retry: resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			he.waitAfter = min(time.Duration(s)*time.Second, 60*time.Second)
		}
		return Response{}, he
	}
	res, err := parseOAI(raw)
	if err != nil {
		return Response{}, &httpError{msg: err.Error()} // an answer we cannot read: not retried
	}
	return res, nil
}

// EndpointStatus reports whether err is an endpoint's failure to answer
// (no connection, no answer in time, an HTTP error, an unreadable answer)
// and the HTTP status it answered with (0: none), so that a server that
// forwards requests can answer as a gateway does.
func EndpointStatus(err error) (status int, ok bool) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, true
	}
	return 0, false
}

// parseOAI reads a completion or chat completion answer.
func parseOAI(raw []byte) (Response, error) {
	var o oaiResponse
	if err := json.Unmarshal(raw, &o); err != nil {
		return Response{}, fmt.Errorf("malformed JSON in the answer (%v): %s", err, snippet(raw))
	}
	if o.Error != nil {
		return Response{}, fmt.Errorf("the server reported an error: %s", o.Error.Message)
	}
	if len(o.Choices) == 0 {
		return Response{}, fmt.Errorf("the answer has no choices: %s", snippet(raw))
	}
	c := o.Choices[0]
	var text *string
	switch {
	case c.Message != nil && c.Message.Content != nil:
		text = c.Message.Content
	case c.Text != nil:
		text = c.Text
	default:
		return Response{}, fmt.Errorf("the answer's first choice has neither message content nor text: %s", snippet(raw))
	}
	res := Response{Text: *text, PromptTokens: o.Usage.PromptTokens, CompletionTokens: o.Usage.CompletionTokens,
		ForwardTokens: int64(o.Usage.PromptTokens + o.Usage.CompletionTokens)}
	if c.FinishReason != nil {
		res.Finish = *c.FinishReason
	}
	return res, nil
}

// errorText is the message of an error body: OpenAI's {"error": {"message"}}
// when it parses, else the body's start.
func errorText(raw []byte) string {
	var o struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &o) == nil && o.Error.Message != "" {
		return o.Error.Message
	}
	return snippet(raw)
}

// snippet is the start of a body for an error message.
func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}
