package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// This file is batched generation: many prompts, each with its own
// sampling settings and stop conditions, decoded together by one
// goroutine that steps an engine.Batch (continuous batching: requests join
// as soon as the KV budget has room and leave when they finish or their
// context is cancelled).

// BatchRequest is one prompt of a batched generation.
type BatchRequest struct {
	// Prompt is the encoded prompt (BOS included as wanted); non-empty.
	Prompt []int
	// Sampler chooses the tokens, from the request's own seeded generator.
	Sampler SamplerConfig
	// MaxTokens caps the generated tokens (0: up to the context).
	MaxTokens int
	// Stop strings end the text before the first of them.
	Stop []string
	// Logprobs asks for the log-probability of every generated token, and
	// TopLogprobs for that many most likely alternatives at each.
	Logprobs    bool
	TopLogprobs int
	// Stream, when set, receives the text as it is produced, on the
	// batcher's goroutine: it must return quickly (queue, don't write to
	// a slow client).
	Stream func(Chunk)
	// Continue makes the text continue the prompt: the decoder's rules for
	// the start of a text (a SentencePiece word's leading space dropped)
	// do not apply to the first token, so that prompt and text join up as
	// the model wrote them, as OpenAI's and vLLM's completions do.
	// Without it the text reads as Decode of the generated tokens alone.
	Continue bool
}

// Chunk is a streamed piece of a generation: the text the tokens since
// the last chunk completed, and their log-probabilities when asked for.
type Chunk struct {
	Text     string
	Logprobs []TokenLogprob
}

// TokenLogprob is a generated token with its log-probability under the
// model (log-softmax of the logits) and, when asked, the most likely
// alternatives.
type TokenLogprob struct {
	Token int
	// Text is what the token adds to the text generated before it
	// (tokenizer.Piece): the texts of a generation's tokens join up to
	// its text. A token that is part of a UTF-8 character gives its raw
	// bytes, which are not valid UTF-8 on their own.
	Text    string
	Logprob float64
	Top     []TokenLogprob
}

// Finish reasons, as the OpenAI API names them.
const (
	FinishStop   = "stop"   // an EOS token or a stop string
	FinishLength = "length" // MaxTokens or the context
)

// BatchResult is the outcome of one BatchRequest.
type BatchResult struct {
	Text         string
	Tokens       []int // generated ids (EOS excluded)
	Finish       string
	PromptTokens int
	Logprobs     []TokenLogprob
	// TTFT is the time from submission to the first generated token.
	TTFT time.Duration
}

// ErrQueueFull is returned by Batcher.Generate when the queue of requests
// waiting for room in the batch is full.
var ErrQueueFull = errors.New("decode: the request queue is full")

// ErrClosed is returned for requests the batcher did not finish because it
// was closed.
var ErrClosed = errors.New("decode: the batcher is closed")

// BatcherConfig configures a Batcher. Zero values mean the defaults named.
type BatcherConfig struct {
	Batch engine.BatchOptions
	// MaxQueue is the most requests waiting for admission (256).
	MaxQueue int
	// Context is the most positions (prompt and generation) one request
	// may use: 0 means the model's ContextSize (engine.Options.ContextSize,
	// else max_position_embeddings, else engine.DefaultContextSize, 4096),
	// and a larger value is cut to it. A request with MaxTokens 0
	// generates up to Context and reserves all of it in the KV budget
	// (Batch.KVBytes) while it runs.
	Context int
	// EOS ends a generation; nil means the tokenizer's and the model's.
	EOS []int
}

// BatcherStats is a snapshot of a batcher's state and counters.
type BatcherStats struct {
	Queued, Active   int
	KVUsed, KVBudget int64
	Steps            int64 // forward passes
	StepRows         int64 // sequences stepped, summed over steps
	PromptTokens     int64 // prompt tokens fed
	GeneratedTokens  int64 // tokens sampled
	Completed        int64 // requests finished (any reason)
}

// Batcher generates for many concurrent callers with one model, stepping
// all admitted requests together. Its methods are safe for concurrent use.
type Batcher struct {
	m     *engine.Model
	tok   *tokenizer.Tokenizer
	cfg   BatcherConfig
	vocab int
	eos   map[int]bool

	mu     sync.Mutex
	queue  []*job
	closed bool
	wake   chan struct{}
	done   chan struct{}

	stats struct {
		queued, active, kvUsed                              atomic.Int64
		steps, rows, prompt, generated, completed, kvBudget atomic.Int64
	}
}

type job struct {
	ctx    context.Context
	req    BatchRequest
	start  time.Time
	done   chan struct{}
	res    BatchResult
	err    error
	seq    *engine.Seq
	smp    *Sampler
	stream *tokenizer.Stream
	stop   *stopWriter
	chunk  Chunk
	limit  int // most tokens to generate
	probs  []float64
	lead   textLead
}

// NewBatcher starts a batcher of m; Close stops it.
func NewBatcher(m *engine.Model, tok *tokenizer.Tokenizer, cfg BatcherConfig) *Batcher {
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	if cfg.Context <= 0 {
		cfg.Context = contextLimit(m)
	}
	cfg.Context = min(cfg.Context, m.ContextSize())
	if cfg.EOS == nil {
		cfg.EOS = EOSIDs(tok, m)
	}
	b := &Batcher{m: m, tok: tok, cfg: cfg, vocab: min(tok.VocabSize(), m.Config.VocabSize),
		eos: map[int]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if tok.VocabSize() == 0 {
		b.vocab = m.Config.VocabSize
	}
	for _, id := range cfg.EOS {
		b.eos[id] = true
	}
	batch := m.NewBatch(cfg.Batch)
	b.cfg.Batch = batch.Options()
	b.stats.kvBudget.Store(b.cfg.Batch.KVBytes)
	go b.loop(batch)
	return b
}

// Context is the most positions one request may use.
func (b *Batcher) Context() int { return b.cfg.Context }

// Stats returns the current counters.
func (b *Batcher) Stats() BatcherStats {
	s := &b.stats
	return BatcherStats{
		Queued: int(s.queued.Load()), Active: int(s.active.Load()),
		KVUsed: s.kvUsed.Load(), KVBudget: s.kvBudget.Load(),
		Steps: s.steps.Load(), StepRows: s.rows.Load(), PromptTokens: s.prompt.Load(),
		GeneratedTokens: s.generated.Load(), Completed: s.completed.Load(),
	}
}

// Check validates req without queueing it: the errors Generate would
// return before any work.
func (b *Batcher) Check(req *BatchRequest) error {
	if len(req.Prompt) == 0 {
		return errors.New("the prompt is empty")
	}
	if err := req.Sampler.Validate(); err != nil {
		return err
	}
	if req.MaxTokens < 0 {
		return fmt.Errorf("max_tokens must be >= 0, got %d", req.MaxTokens)
	}
	if req.TopLogprobs < 0 {
		return fmt.Errorf("top_logprobs must be >= 0, got %d", req.TopLogprobs)
	}
	if len(req.Prompt) >= b.cfg.Context {
		return fmt.Errorf("the prompt has %d tokens, which fills the context of %d", len(req.Prompt), b.cfg.Context)
	}
	for _, id := range req.Prompt {
		if id < 0 || id >= b.m.Config.VocabSize {
			return fmt.Errorf("token id %d is outside the vocabulary [0, %d)", id, b.m.Config.VocabSize)
		}
	}
	return nil
}

// positions is what a request reserves: its prompt and the tokens it may
// generate, within the context.
func (b *Batcher) positions(req *BatchRequest) int {
	n := b.cfg.Context
	if req.MaxTokens > 0 {
		n = min(n, len(req.Prompt)+req.MaxTokens)
	}
	return n
}

// Generate queues req and waits for its result. It returns ErrQueueFull at
// once when the queue is full, ctx's error when ctx ends first (the
// request leaves the batch and frees its KV cache), and an error for a
// request that can never run.
func (b *Batcher) Generate(ctx context.Context, req BatchRequest) (BatchResult, error) {
	if err := b.Check(&req); err != nil {
		return BatchResult{}, err
	}
	bo := b.cfg.Batch
	if need := int64(b.positions(&req)) * b.m.KVBytesPerPos(); need > bo.KVBytes {
		return BatchResult{}, fmt.Errorf("the request needs %d bytes of KV cache, more than the whole budget of %d: ask for fewer max_tokens", need, bo.KVBytes)
	}
	j := &job{ctx: ctx, req: req, start: time.Now(), done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return BatchResult{}, ErrClosed
	case len(b.queue) >= b.cfg.MaxQueue:
		n := len(b.queue)
		b.mu.Unlock()
		return BatchResult{}, fmt.Errorf("%w (%d waiting)", ErrQueueFull, n)
	}
	b.queue = append(b.queue, j)
	b.stats.queued.Store(int64(len(b.queue)))
	b.mu.Unlock()
	b.poke()
	select {
	case <-j.done:
	case <-ctx.Done():
		b.poke() // the loop drops the request and frees its cache
		<-j.done
	}
	return j.res, j.err
}

func (b *Batcher) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Close stops the batcher: requests still queued or running end with
// ErrClosed. It waits for the loop to return.
func (b *Batcher) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
	}
	b.mu.Unlock()
	b.poke()
	<-b.done
}

// loop owns the batch: it admits queued requests while they fit, steps
// the batch, samples each ready sequence's next token and finishes
// requests.
func (b *Batcher) loop(batch *engine.Batch) {
	defer close(b.done)
	var active []*job
	finish := func(j *job, err error) {
		if j.seq != nil {
			// The gauges drop before the caller hears of the result, so a
			// client that reads the metrics after its answer sees it gone.
			batch.Remove(j.seq)
			j.seq = nil
			b.stats.active.Add(-1)
			b.stats.kvUsed.Store(batch.KVUsed())
		}
		j.err = err
		b.stats.completed.Add(1)
		close(j.done)
	}
	for {
		b.mu.Lock()
		closed := b.closed
		var waiting []*job
		if closed {
			waiting, b.queue = b.queue, nil
		}
		// Admit in order while the head fits; drop cancelled requests.
		for !closed && len(b.queue) > 0 {
			j := b.queue[0]
			if err := j.ctx.Err(); err != nil {
				b.queue = b.queue[1:]
				finish(j, err)
				continue
			}
			s, err := batch.Add(j.req.Prompt, b.positions(&j.req))
			if errors.Is(err, engine.ErrKVFull) || errors.Is(err, engine.ErrBatchFull) {
				break
			}
			b.queue = b.queue[1:]
			if err != nil {
				finish(j, err)
				continue
			}
			b.start(j, s)
			active = append(active, j)
		}
		// Requests behind the head may have been cancelled while waiting.
		kept := b.queue[:0]
		for _, j := range b.queue {
			if err := j.ctx.Err(); err != nil {
				finish(j, err)
			} else {
				kept = append(kept, j)
			}
		}
		clear(b.queue[len(kept):])
		b.queue = kept
		b.stats.queued.Store(int64(len(b.queue)))
		b.mu.Unlock()
		if closed {
			for _, j := range append(active, waiting...) {
				finish(j, ErrClosed)
			}
			return
		}
		// Cancelled requests leave before the step.
		kept = active[:0]
		for _, j := range active {
			if err := j.ctx.Err(); err != nil {
				finish(j, err)
			} else {
				kept = append(kept, j)
			}
		}
		clear(active[len(kept):])
		active = kept
		b.stats.kvUsed.Store(batch.KVUsed())
		if len(active) == 0 {
			<-b.wake
			continue
		}
		byID := make(map[*engine.Seq]*job, len(active))
		for _, j := range active {
			byID[j.seq] = j
			if j.seq.Pos() == 0 {
				b.stats.prompt.Add(int64(j.seq.Pending()))
			}
		}
		ready := batch.Step()
		b.stats.steps.Add(1)
		b.stats.rows.Add(int64(len(active)))
		for _, s := range ready {
			j := byID[s]
			if done, err := b.next(j); done || err != nil {
				finish(j, err)
			}
		}
		kept = active[:0]
		for _, j := range active {
			if j.seq != nil {
				kept = append(kept, j)
			}
		}
		clear(active[len(kept):])
		active = kept
	}
}

// start sets up a job's sampling state once it is admitted.
func (b *Batcher) start(j *job, s *engine.Seq) {
	j.seq = s
	b.stats.active.Add(1)
	j.smp, _ = NewSampler(j.req.Sampler) // validated in Check
	j.stream = b.tok.NewStream(true)
	j.lead = newTextLead(j.req.Prompt, j.req.Continue)
	j.stop = &stopWriter{stops: j.req.Stop}
	if j.req.Stream != nil {
		j.stop.w = chunkWriter{j}
	}
	j.limit = s.MaxSeq() - len(j.req.Prompt)
	j.res.PromptTokens = len(j.req.Prompt)
}

// chunkWriter forwards the stop writer's text to the request's Stream.
type chunkWriter struct{ j *job }

func (w chunkWriter) Write(p []byte) (int, error) {
	w.j.chunk.Text += string(p)
	return len(p), nil
}

// next samples j's next token from its logits and reports whether j is
// done; otherwise the token is queued to be fed.
func (b *Batcher) next(j *job) (bool, error) {
	if err := j.seq.Err(); err != nil {
		return true, err
	}
	lg := j.seq.Logits()[:b.vocab]
	tok := j.smp.Sample(lg)
	b.stats.generated.Add(1)
	if len(j.res.Tokens) == 0 {
		j.res.TTFT = time.Since(j.start)
	}
	prev := j.lead.context(j.res.Tokens)
	var lp *TokenLogprob
	if j.req.Logprobs || j.req.TopLogprobs > 0 {
		lp = logprobOf(b.tok, &j.probs, lg, prev, tok, j.req.TopLogprobs)
	}
	if b.eos[tok] {
		return true, b.end(j, FinishStop)
	}
	j.lead.first(b.tok, len(j.res.Tokens), tok)
	j.res.Tokens = append(j.res.Tokens, tok)
	if lp != nil {
		j.res.Logprobs = append(j.res.Logprobs, *lp)
		j.chunk.Logprobs = append(j.chunk.Logprobs, *lp)
	}
	if j.stop.add(j.lead.text(j.stream.Add(tok))) {
		return true, b.end(j, FinishStop)
	}
	j.emit()
	if len(j.res.Tokens) >= j.limit {
		return true, b.end(j, FinishLength)
	}
	return false, j.seq.Feed(tok)
}

// end flushes j's text and sets its finish reason. An EOS token is not
// part of the text, so neither it nor its log-probability is reported.
func (b *Batcher) end(j *job, reason string) error {
	if !j.stop.stopped {
		j.stop.add(j.lead.rest(j.stream.Flush()))
		j.stop.flush()
	}
	j.res.Finish = reason
	j.res.Text = j.stop.out.String()
	j.emit()
	return nil
}

// textLead is, for a text that continues its prompt, what the first
// token's text gains from following the prompt (" upon" after "Once"
// where "▁upon" alone decodes to "upon"), held until the stream gives out
// its first text.
type textLead struct {
	prompt []int // the prompt's last leadContext tokens
	cont   bool  // the text continues the prompt
	s      string
}

// leadContext is the number of prompt tokens decoded before the first
// generated one: enough for the decoders' rules on the start of a text.
const leadContext = 4

func newTextLead(prompt []int, cont bool) textLead {
	return textLead{prompt: prompt[max(0, len(prompt)-leadContext):], cont: cont}
}

// context returns the tokens whose text comes before the next token's:
// the generated ones, and the prompt's last few before the first token of
// a text that continues its prompt.
func (l *textLead) context(gen []int) []int {
	if l.cont && len(gen) == 0 {
		return l.prompt
	}
	return gen
}

// first records what tok gains from the prompt when it is the first
// generated token (n tokens came before it) of a text that continues its
// prompt.
func (l *textLead) first(t *tokenizer.Tokenizer, n, tok int) {
	if n > 0 || !l.cont {
		return
	}
	in, alone := t.Piece(l.prompt, tok), t.Piece(nil, tok)
	if strings.HasSuffix(in, alone) {
		l.s = in[:len(in)-len(alone)]
	}
}

// text puts the held lead before the stream's first text.
func (l *textLead) text(inc string) string {
	if l.s == "" || inc == "" {
		return inc
	}
	inc, l.s = l.s+inc, ""
	return inc
}

// rest is text for the stream's last text (its Flush): the lead is given
// out even when nothing follows it (a first token that is only a space).
func (l *textLead) rest(inc string) string {
	inc, l.s = l.s+inc, ""
	return inc
}

func (j *job) emit() {
	if j.req.Stream != nil && (j.chunk.Text != "" || len(j.chunk.Logprobs) > 0) {
		j.req.Stream(j.chunk)
	}
	j.chunk = Chunk{}
}

func safeLog(p float64) float64 {
	if p <= 0 {
		return -9999 // OpenAI's floor for impossible tokens; JSON has no -Inf
	}
	return math.Log(p)
}

// GenerateBatch decodes every prompt with m in one batch and returns the
// texts in order: the offline form of Batcher (evaluation, bulk jobs).
// Prompts are encoded as Generator.Encode does (BOS as the tokenizer
// config says, an empty prompt from StartID; chat renders each as a user
// message).
func GenerateBatch(ctx context.Context, m *engine.Model, tok *tokenizer.Tokenizer, prompts []string, chat bool, reqs []BatchRequest, cfg BatcherConfig) ([]BatchResult, error) {
	if len(reqs) != len(prompts) {
		return nil, fmt.Errorf("%d prompts and %d requests", len(prompts), len(reqs))
	}
	g := &Generator{Tok: tok, Chat: chat, ModelConfig: m.Config}
	for i, p := range prompts {
		ids, err := g.Encode(p)
		if err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		reqs[i].Prompt = ids
	}
	if cfg.MaxQueue < len(reqs) {
		cfg.MaxQueue = len(reqs)
	}
	b := NewBatcher(m, tok, cfg)
	defer b.Close()
	out := make([]BatchResult, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { out[i], errs[i] = b.Generate(ctx, reqs[i]) })
	}
	wg.Wait()
	var msgs []string
	for i, err := range errs {
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			msgs = append(msgs, fmt.Sprintf("prompt %d: %v", i, err))
		}
	}
	if msgs != nil {
		return out, errors.New(strings.Join(msgs, "; "))
	}
	return out, nil
}
