package serve

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// Options configure a Server. Zero values mean the defaults named.
type Options struct {
	Limits Limits
	// APIKey, when set, is required as "Authorization: Bearer KEY" on every
	// endpoint but /health (compared in constant time).
	APIKey string
	// RecipeQueue is the most requests a recipe holds, running or waiting
	// (16); more get 429. RecipeConcurrency is how many run at once (2).
	RecipeQueue       int
	RecipeConcurrency int
	// Logf receives one line per failed request (nil: none).
	Logf func(format string, args ...any)
}

// Server answers the OpenAI-compatible API for its models and recipes.
// Add them before serving; Close stops their batchers.
type Server struct {
	opts     Options
	lim      Limits
	mu       sync.RWMutex
	entries  map[string]*entry
	created  int64
	draining atomic.Bool
	metrics  *metrics
	// closed is done once Close is called: it ends the requests of
	// recipes without a batcher, which Close cannot reach otherwise.
	closed   context.Context
	closeAll context.CancelFunc
}

// entry is one served model id.
type entry struct {
	id      string
	tok     *tokenizer.Tokenizer
	config  *engine.Config // tok's model's: its bos_token_id may start an empty prompt
	context int            // positions a request may use
	// A model folder: its batcher. A recipe: its method, and either its
	// lockstep batcher (fusion, contrastive, nudging) or queue slots.
	batcher tokenBatcher
	method  collab.Method
	slots   chan struct{} // held by every queued or running request
	running chan struct{} // held by every running request
}

// tokenBatcher is what a served id generates through token by token: a
// model's decode.Batcher or a recipe's decode.LockstepBatcher.
type tokenBatcher interface {
	Generate(context.Context, decode.BatchRequest) (decode.BatchResult, error)
	Stats() decode.BatcherStats
	Context() int
	Close()
}

// New returns an empty server.
func New(opts Options) *Server {
	if opts.RecipeQueue <= 0 {
		opts.RecipeQueue = 16
	}
	if opts.RecipeConcurrency <= 0 {
		opts.RecipeConcurrency = 2
	}
	s := &Server{opts: opts, lim: opts.Limits.withDefaults(), entries: map[string]*entry{}, created: time.Now().Unix()}
	s.closed, s.closeAll = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	return s
}

// AddModel serves m under id; its requests share one batcher configured
// by cfg.
func (s *Server) AddModel(id string, m *engine.Model, tok *tokenizer.Tokenizer, cfg decode.BatcherConfig) error {
	b := decode.NewBatcher(m, tok, cfg)
	if err := s.add(&entry{id: id, tok: tok, config: m.Config, context: b.Context(), batcher: b}); err != nil {
		b.Close()
		return err
	}
	return nil
}

// AddRecipe serves a collaboration method under id. first, the first
// local model, renders and counts prompts for the limits, context is the
// smallest context among its local models; with no local model (first
// nil) prompts go to the remote models unchecked, as they check their own.
func (s *Server) AddRecipe(id string, m collab.Method, first *collab.Local, context int) error {
	e := &entry{id: id, context: context, method: m,
		slots: make(chan struct{}, s.opts.RecipeQueue), running: make(chan struct{}, s.opts.RecipeConcurrency)}
	if first != nil {
		e.tok, e.config = first.Tok, first.Model.Config
	}
	return s.add(e)
}

// AddBatchedRecipe serves a collaboration method that runs in a lockstep
// batch (collab.LockstepBatcher: fusion, contrastive, nudging) under id:
// its requests, and every choice of each, share b's batch as a model's
// requests share its batcher, with streaming token by token, logprobs of
// the combined distribution, finish reasons and the batcher's queue
// bound. first, the first model, renders and counts prompts. Close
// closes b.
func (s *Server) AddBatchedRecipe(id string, m collab.Method, first *collab.Local, b *decode.LockstepBatcher) error {
	e := &entry{id: id, context: b.Context(), method: m, batcher: b}
	if first != nil {
		e.tok, e.config = first.Tok, first.Model.Config
	}
	return s.add(e)
}

func (s *Server) add(e *entry) error {
	if e.id == "" || strings.ContainsAny(e.id, " \t\n\"") {
		return fmt.Errorf("serve: model id %q must be non-empty without spaces or quotes", e.id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.entries[e.id]; dup {
		return fmt.Errorf("serve: model id %q is served twice", e.id)
	}
	s.entries[e.id] = e
	return nil
}

// IDs returns the served model ids, sorted.
func (s *Server) IDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Server) lookup(id string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries[id]
}

// Drain makes the server refuse new generation requests (503) and report
// itself unhealthy, while requests in flight go on: the first step of a
// graceful shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops every batcher and cancels the recipes' requests: requests
// still running end (503, or streams with an error event). Call it after
// draining, when the grace period is over.
func (s *Server) Close() {
	s.Drain()
	s.closeAll()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.entries {
		if e.batcher != nil {
			e.batcher.Close()
		}
	}
	s.metrics.stop()
}

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/health" {
		s.health(w, r)
		return
	}
	if !s.authorized(r) {
		s.writeError(w, r, apiErr(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "",
			"incorrect or missing API key: send it as 'Authorization: Bearer KEY'"))
		return
	}
	method := func(want string) bool {
		if r.Method != want {
			w.Header().Set("Allow", want)
			s.writeError(w, r, apiErr(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "",
				"%s %s is not allowed; use %s", r.Method, path, want))
			return false
		}
		return true
	}
	switch {
	case path == "/metrics":
		if method(http.MethodGet) {
			s.metrics.write(w)
		}
	case path == "/v1/models":
		if method(http.MethodGet) {
			s.listModels(w, r)
		}
	case strings.HasPrefix(path, "/v1/models/"):
		if method(http.MethodGet) {
			s.getModel(w, r, strings.TrimPrefix(path, "/v1/models/"))
		}
	case path == "/v1/completions":
		if method(http.MethodPost) {
			s.generate(w, r, false)
		}
	case path == "/v1/chat/completions":
		if method(http.MethodPost) {
			s.generate(w, r, true)
		}
	default:
		s.writeError(w, r, apiErr(http.StatusNotFound, "invalid_request_error", "not_found", "",
			"no endpoint %s %s (moco serves /v1/models, /v1/completions, /v1/chat/completions, /health, /metrics)", r.Method, path))
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.APIKey == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIKey)) == 1
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"draining"}`+"\n")
		return
	}
	io.WriteString(w, `{"status":"ok"}`+"\n")
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, id := range s.IDs() {
		list.Data = append(list.Data, s.modelObject(id))
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

func (s *Server) modelObject(id string) modelObject {
	owner := "moco"
	if e := s.lookup(id); e != nil && e.method != nil {
		owner = "moco-" + string(e.method.Level())
	}
	return modelObject{ID: id, Object: "model", Created: s.created, OwnedBy: owner}
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request, id string) {
	if s.lookup(id) == nil {
		s.writeError(w, r, unknownModel(id, s.IDs()))
		return
	}
	s.writeJSON(w, r, http.StatusOK, s.modelObject(id))
}

func unknownModel(id string, known []string) *APIError {
	return apiErr(http.StatusNotFound, "invalid_request_error", "model_not_found", "model",
		"the model %q does not exist (served: %s)", id, strings.Join(known, ", "))
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
	s.metrics.request(r.URL.Path, status)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *APIError) {
	if s.opts.Logf != nil && e.Status >= 500 {
		s.opts.Logf("%s %s: %d %s", r.Method, r.URL.Path, e.Status, e.Message)
	}
	s.writeJSON(w, r, e.Status, map[string]*APIError{"error": e})
}

// readBody reads at most the body limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, apiErr(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "",
				"the request body exceeds this server's limit of %d bytes", s.lim.MaxBodyBytes)
		}
		return nil, badRequest("", "reading the request body: %v", err)
	}
	return body, nil
}

// generate answers /v1/completions (chat false) and /v1/chat/completions.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	if s.draining.Load() {
		s.writeError(w, r, apiErr(http.StatusServiceUnavailable, "server_error", "shutting_down", "", "the server is shutting down"))
		return
	}
	body, aerr := s.readBody(w, r)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	req, aerr := parseRequest(body, chat, s.lim)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	e := s.lookup(req.Model)
	if e == nil {
		s.writeError(w, r, unknownModel(req.Model, s.IDs()))
		return
	}
	ids, aerr := s.encode(e, req)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	if !req.SeedSet {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			req.Seed = req.Seed<<8 | uint64(x)
		}
	}
	g := &generation{s: s, w: w, r: r, e: e, req: req, prompt: ids, id: newID(chat), created: time.Now().Unix()}
	g.run()
}

// encode renders and encodes the prompt as the model sees it and checks
// it against the limits and the context.
func (s *Server) encode(e *entry, req *genRequest) ([]int, *APIError) {
	if e.tok == nil {
		return nil, nil // a recipe over remote models only: they count and check their prompts
	}
	text, special := req.Prompt, true
	if req.Chat {
		var err error
		if text, err = collab.RenderMessages(e.tok, req.Messages); err != nil {
			return nil, badRequest("messages", "the model's chat template failed on these messages: %v", err)
		}
		if bos := e.tok.BOS(); e.tok.Chat != nil && bos >= 0 && strings.HasPrefix(text, e.tok.TokenString(bos)) {
			special = false
		}
	}
	ids, err := e.tok.Encode(text, special)
	if err != nil {
		return nil, badRequest("prompt", "the prompt cannot be encoded: %v", err)
	}
	if len(ids) == 0 {
		bos, err := decode.StartID(e.tok, e.config)
		if err != nil {
			return nil, badRequest("prompt", "%v", err)
		}
		ids = []int{bos}
	}
	param := "prompt"
	if req.Chat {
		param = "messages"
	}
	if lim := s.lim.MaxPromptTokens; lim > 0 && len(ids) > lim {
		return nil, apiErr(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", param,
			"the prompt has %d tokens, more than this server's limit of %d", len(ids), lim)
	}
	if !req.MaxTokensSet {
		// The default is a cap, not a demand: a request that names no
		// max_tokens gets what room the context leaves, as OpenAI's do.
		if len(ids) >= e.context {
			return nil, apiErr(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", param,
				"this model's maximum context length is %d tokens and the prompt has %d: shorten the prompt", e.context, len(ids))
		}
		req.MaxTokens = min(req.MaxTokens, e.context-len(ids))
	}
	if len(ids)+req.MaxTokens > e.context {
		return nil, apiErr(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", param,
			"this model's maximum context length is %d tokens; you requested %d tokens (%d in the prompt, %d for the completion): shorten the prompt or lower max_tokens",
			e.context, len(ids)+req.MaxTokens, len(ids), req.MaxTokens)
	}
	return ids, nil
}

func newID(chat bool) string {
	var b [12]byte
	rand.Read(b[:])
	if chat {
		return "chatcmpl-" + hex.EncodeToString(b[:])
	}
	return "cmpl-" + hex.EncodeToString(b[:])
}

// generation is one request being answered.
type generation struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	e       *entry
	req     *genRequest
	prompt  []int
	id      string
	created int64

	mu      sync.Mutex
	events  []event
	signal  chan struct{}
	started bool         // SSE headers written
	roled   []bool       // chat streams: the choice's first delta (with the role) was sent
	offsets []textOffset // completion streams: each choice's text_offset so far
}

// event is a streamed chunk of choice idx, or its end (done).
type event struct {
	idx   int
	chunk decode.Chunk
	done  bool
	res   decode.BatchResult
	err   error
}

func (g *generation) push(ev event) {
	g.mu.Lock()
	g.events = append(g.events, ev)
	g.mu.Unlock()
	select {
	case g.signal <- struct{}{}:
	default:
	}
}

func (g *generation) take() []event {
	g.mu.Lock()
	defer g.mu.Unlock()
	evs := g.events
	g.events = nil
	return evs
}

func (g *generation) run() {
	g.signal = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(g.r.Context())
	defer cancel()
	defer context.AfterFunc(g.s.closed, cancel)()
	if g.e.batcher != nil {
		for i := range g.req.N {
			br := decode.BatchRequest{
				Prompt:  g.prompt,
				Sampler: decode.SamplerConfig{Temperature: g.req.Temperature, TopP: g.req.TopP, Seed: g.req.Seed + uint64(i)},
				// The context check above keeps MaxTokens within it.
				MaxTokens: g.req.MaxTokens, Stop: g.req.Stop,
				Logprobs: g.req.Logprobs, TopLogprobs: g.req.TopLogprobs,
				// A completion continues its prompt (" upon" after
				// "Once"); a chat answer starts a message of its own.
				Continue: !g.req.Chat,
			}
			if g.req.Stream {
				br.Stream = func(c decode.Chunk) { g.push(event{idx: i, chunk: c}) }
			}
			go func() {
				res, err := g.e.batcher.Generate(ctx, br)
				g.push(event{idx: i, done: true, res: res, err: err})
			}()
		}
	} else {
		if g.req.Logprobs {
			g.s.writeError(g.w, g.r, badRequest("logprobs", "logprobs are not available for the collaboration recipe %q", g.e.id))
			return
		}
		select {
		case g.e.slots <- struct{}{}:
		default:
			g.s.writeError(g.w, g.r, queueFull(g.e.id))
			return
		}
		go g.runRecipe(ctx)
	}
	results := make([]decode.BatchResult, g.req.N)
	finished := 0
	var firstErr error
	gone := ctx.Done()
	for finished < g.req.N {
		// When the client leaves, the batcher drops the sequences and
		// they end with the context's error: wait for those ends so that
		// nothing writes after we return.
		select {
		case <-g.signal:
		case <-gone:
			gone = nil
		}
		for _, ev := range g.take() {
			if !ev.done {
				if firstErr == nil {
					g.streamChunk(ev.idx, ev.chunk)
				}
				continue
			}
			finished++
			if ev.err != nil {
				if firstErr == nil {
					firstErr = ev.err
					cancel() // the other choices stop too
				}
				continue
			}
			results[ev.idx] = ev.res
			if g.req.Stream && firstErr == nil {
				g.streamEnd(ev.idx, ev.res)
			}
		}
	}
	var u usage
	for i, res := range results {
		if i == 0 {
			u.PromptTokens = res.PromptTokens
		}
		u.CompletionTokens += len(res.Tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	g.s.metrics.tokens(g.e.id, u.PromptTokens, u.CompletionTokens)
	if firstErr != nil {
		g.fail(firstErr)
		return
	}
	if g.req.Stream {
		g.streamDone(u)
		return
	}
	g.respond(results, u)
}

// runRecipe answers the request with the recipe's method, n choices in
// one call, and posts them as events.
func (g *generation) runRecipe(ctx context.Context) {
	defer func() { <-g.e.slots }()
	fail := func(err error) {
		for i := range g.req.N {
			g.push(event{idx: i, done: true, err: err})
		}
	}
	select {
	case g.e.running <- struct{}{}:
		defer func() { <-g.e.running }()
	case <-ctx.Done():
		fail(ctx.Err())
		return
	}
	maxTokens := g.req.MaxTokens
	if g.e.tok == nil && !g.req.MaxTokensSet {
		// Remote models only: the server's default was not checked
		// against their contexts, which they know and we do not, so the
		// request goes on without max_tokens, as the client sent it.
		maxTokens = 0
	}
	reqs := make([]collab.Request, g.req.N)
	for i := range reqs {
		reqs[i] = collab.Request{Prompt: g.req.Prompt, Messages: g.req.Messages, MaxTokens: maxTokens,
			Temperature: g.req.Temperature, TopP: g.req.TopP, Seed: g.req.Seed + uint64(i), Stop: g.req.Stop}
	}
	start := time.Now()
	resps, err := g.e.method.Generate(ctx, reqs)
	if err == nil && len(resps) != len(reqs) {
		err = fmt.Errorf("the method returned %d answers for %d requests", len(resps), len(reqs))
	}
	if err != nil {
		fail(err)
		return
	}
	for i, rp := range resps {
		res := decode.BatchResult{Text: rp.Text, PromptTokens: rp.PromptTokens, Tokens: make([]int, rp.CompletionTokens),
			Finish: rp.Finish, TTFT: time.Since(start)}
		if res.Finish == "" {
			// The method cannot tell (no single call wrote the answer):
			// "length" when its calls together generated max_tokens.
			res.Finish = decode.FinishStop
			if maxTokens > 0 && rp.CompletionTokens >= maxTokens {
				res.Finish = decode.FinishLength
			}
		}
		if g.req.Stream && rp.Text != "" {
			g.push(event{idx: i, chunk: decode.Chunk{Text: rp.Text}})
		}
		g.push(event{idx: i, done: true, res: res})
	}
}

func queueFull(id string) *APIError {
	return apiErr(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "",
		"the queue of %q is full: retry later", id)
}

// fail reports err: as a JSON error before anything was streamed, as an
// error event after.
func (g *generation) fail(err error) {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, decode.ErrQueueFull):
		ae = queueFull(g.e.id)
	case errors.Is(err, decode.ErrClosed) || g.s.closed.Err() != nil:
		ae = apiErr(http.StatusServiceUnavailable, "server_error", "shutting_down", "", "the server shut down before the answer was finished")
	case errors.Is(err, context.Canceled) && g.r.Context().Err() != nil:
		g.s.metrics.request(g.r.URL.Path, 499) // the client left; nobody reads an answer
		return
	default:
		ae = apiErr(http.StatusInternalServerError, "server_error", "", "", "%v", err)
		// A remote model's failure, answered as a gateway does: its rate
		// limit and its refusal of the request pass through, anything
		// else is a bad gateway.
		if status, ok := collab.EndpointStatus(err); ok {
			switch status {
			case http.StatusTooManyRequests:
				ae = apiErr(http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "", "%v", err)
			case http.StatusBadRequest, http.StatusUnprocessableEntity:
				ae = apiErr(http.StatusBadRequest, "invalid_request_error", "", "", "%v", err)
			default:
				ae = apiErr(http.StatusBadGateway, "server_error", "upstream_error", "", "%v", err)
			}
		}
	}
	if !g.started {
		g.s.writeError(g.w, g.r, ae)
		return
	}
	g.sse(map[string]*APIError{"error": ae})
	g.s.metrics.request(g.r.URL.Path, ae.Status)
}

func (g *generation) respond(results []decode.BatchResult, u usage) {
	if g.req.Chat {
		out := chatCompletion{ID: g.id, Object: "chat.completion", Created: g.created, Model: g.req.Model, Usage: &u}
		for i, res := range results {
			fr := res.Finish
			out.Choices = append(out.Choices, chatChoice{Index: i, Message: &chatMessage{Role: "assistant", Content: res.Text},
				Logprobs: g.chatLogprobs(res.Logprobs), FinishReason: &fr})
		}
		g.s.writeJSON(g.w, g.r, http.StatusOK, out)
		return
	}
	out := completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.req.Model, Usage: &u}
	for i, res := range results {
		fr := res.Finish
		out.Choices = append(out.Choices, completionChoice{Text: res.Text, Index: i, Logprobs: g.completionLogprobs(res.Logprobs, &textOffset{}), FinishReason: &fr})
	}
	g.s.writeJSON(g.w, g.r, http.StatusOK, out)
}

func (g *generation) chatLogprobs(lps []decode.TokenLogprob) *chatLogprobs {
	if !g.req.Logprobs {
		return nil
	}
	out := &chatLogprobs{Content: []chatTokenLogprob{}}
	for _, lp := range lps {
		c := chatTokenLogprob{Token: tokenName(lp.Text), Logprob: lp.Logprob, Bytes: byteList(lp.Text), TopLogprobs: []chatTopLogprob{}}
		for _, t := range lp.Top {
			c.TopLogprobs = append(c.TopLogprobs, chatTopLogprob{Token: tokenName(t.Text), Logprob: t.Logprob, Bytes: byteList(t.Text)})
		}
		out.Content = append(out.Content, c)
	}
	return out
}

func (g *generation) completionLogprobs(lps []decode.TokenLogprob, offset *textOffset) *completionLogprobs {
	if !g.req.Logprobs {
		return nil
	}
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, lp := range lps {
		out.Tokens = append(out.Tokens, tokenName(lp.Text))
		out.TokenLogprobs = append(out.TokenLogprobs, lp.Logprob)
		top := map[string]float64{}
		for _, t := range lp.Top {
			if _, dup := top[tokenName(t.Text)]; !dup {
				top[tokenName(t.Text)] = t.Logprob
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, offset.add(lp.Text))
	}
	return out
}

// tokenName is a token's text as OpenAI writes it: a token that is not
// valid UTF-8 on its own (part of a character) is "bytes:" and its bytes,
// printable ASCII as it is and the rest as \xNN escapes.
func tokenName(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.WriteString("bytes:")
	for i := range len(s) {
		if c := s[i]; c >= ' ' && c <= '~' && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// textOffset counts the characters of a choice's text before each of its
// tokens: OpenAI's text_offset indexes the text as a Python string, by
// characters. A token that ends part-way through a character leaves it
// to the token that finishes it.
type textOffset struct {
	chars   int
	partial []byte // the start of an unfinished character
}

func (o *textOffset) add(text string) int {
	at := o.chars
	b := append(o.partial, text...)
	for len(b) > 0 && utf8.FullRune(b) {
		_, n := utf8.DecodeRune(b)
		b = b[n:]
		o.chars++
	}
	o.partial = append([]byte(nil), b...)
	return at
}

// byteList is the bytes field of chat logprobs: the token's raw bytes,
// which join up to a character that it shares with other tokens.
func byteList(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// Streaming.

func (g *generation) sse(v any) {
	if !g.started {
		h := g.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		g.w.WriteHeader(http.StatusOK)
		g.started = true
	}
	data, _ := json.Marshal(v)
	fmt.Fprintf(g.w, "data: %s\n\n", data)
	if f, ok := g.w.(http.Flusher); ok {
		f.Flush()
	}
}

// chunk streams a chunk of the answer. A client that asked for usage
// gets "usage": null on every chunk but the last, as OpenAI's carry.
func (g *generation) chunk(v any) {
	if g.req.StreamUsage {
		switch c := v.(type) {
		case chatCompletion:
			v = struct {
				chatCompletion
				Usage *usage `json:"usage"`
			}{chatCompletion: c}
		case completion:
			v = struct {
				completion
				Usage *usage `json:"usage"`
			}{completion: c}
		}
	}
	g.sse(v)
}

func (g *generation) streamChunk(idx int, c decode.Chunk) {
	if g.req.Chat {
		text := c.Text
		ch := chatChoice{Index: idx, Delta: &chatDelta{Content: &text}, Logprobs: g.chatLogprobs(c.Logprobs)}
		if g.roled == nil {
			g.roled = make([]bool, g.req.N)
		}
		if !g.roled[idx] {
			ch.Delta.Role, g.roled[idx] = "assistant", true
		}
		g.chunk(chatCompletion{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.req.Model, Choices: []chatChoice{ch}})
		return
	}
	if g.offsets == nil {
		g.offsets = make([]textOffset, g.req.N)
	}
	ch := completionChoice{Text: c.Text, Index: idx, Logprobs: g.completionLogprobs(c.Logprobs, &g.offsets[idx])}
	g.chunk(completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.req.Model, Choices: []completionChoice{ch}})
}

func (g *generation) streamEnd(idx int, res decode.BatchResult) {
	fr := res.Finish
	if g.req.Chat {
		ch := chatChoice{Index: idx, Delta: &chatDelta{}, FinishReason: &fr}
		if g.roled == nil || !g.roled[idx] { // an empty answer still names its role
			ch.Delta.Role = "assistant"
		}
		g.chunk(chatCompletion{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.req.Model, Choices: []chatChoice{ch}})
		return
	}
	ch := completionChoice{Text: "", Index: idx, FinishReason: &fr}
	g.chunk(completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.req.Model, Choices: []completionChoice{ch}})
}

func (g *generation) streamDone(u usage) {
	if g.req.StreamUsage {
		if g.req.Chat {
			g.sse(chatCompletion{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.req.Model, Choices: []chatChoice{}, Usage: &u})
		} else {
			g.sse(completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.req.Model, Choices: []completionChoice{}, Usage: &u})
		}
	}
	io.WriteString(g.w, "data: [DONE]\n\n")
	if f, ok := g.w.(http.Flusher); ok {
		f.Flush()
	}
	g.s.metrics.request(g.r.URL.Path, http.StatusOK)
}
