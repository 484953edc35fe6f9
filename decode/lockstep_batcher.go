package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// This file is the lockstep loop over many prompts at once, as a service:
// N models x B prompts, every model stepping one engine.Batch that holds a
// sequence per prompt, so a step reads each model's weights once for all
// prompts in flight. Requests from any number of callers join as the KV
// budgets allow and leave when they finish or are cancelled (continuous
// batching, as Batcher does for one model).

// LockstepBatcherConfig configures a LockstepBatcher. Zero values mean the
// defaults named.
type LockstepBatcherConfig struct {
	// Batch bounds each model's batch (engine.BatchOptions' defaults).
	Batch engine.BatchOptions
	// MaxQueue is the most requests waiting for admission (256).
	MaxQueue int
	// Context is the most positions one request may use: 0 (or more than
	// the smallest model context) means the smallest model context.
	Context int
	// EOS ends a generation; nil means EOSIDs of the tokenizer and the
	// models.
	EOS []int
	// Vocab is the shared vocabulary logits are truncated to (SharedVocab);
	// 0 means the smallest of the models' and the tokenizer's.
	Vocab int
}

// LockstepBatcher generates for many concurrent callers with a lockstep
// method (a Combiner over several models that share a vocabulary): each
// prompt gets its own combiner (NewCombiner; stateful ones such as Nudging
// need one each) and its own seeded sampler, and its tokens, text, stop
// strings, EOS and MaxTokens are handled exactly as Lockstep under a
// Generator handles them for that prompt alone: the ids are the same
// (greedy ids identical; seeded sampling draws the same tokens while the
// batched logits equal the session's, which engine.Batch keeps bit for bit
// where MatMul rows equal MatVec).
//
// Combiners that read hidden states (CoLLM) are refused: a batch keeps no
// per-sequence hidden state. Loops that rewind or branch (Speculative,
// Mentor, Cascade) are not lockstep and run one prompt at a time.
//
// The stepping goroutine starts with the first request and returns when no
// request is queued or running, so an unclosed LockstepBatcher holds no
// goroutine while idle; Close refuses new requests and ends running ones.
// Its methods are safe for concurrent use.
type LockstepBatcher struct {
	models  []*engine.Model
	tok     *tokenizer.Tokenizer
	newComb func() Combiner
	cfg     LockstepBatcherConfig
	vocab   int
	eos     []int

	mu      sync.Mutex
	queue   []*lsJob
	running bool
	closed  bool
	loops   sync.WaitGroup // the running loop, for Close to wait on
	// batches and owner belong to the running loop (one at a time).
	batches []*engine.Batch
	owner   []map[*engine.Seq]*lsJob

	stats struct {
		queued, active, kvUsed                    atomic.Int64
		steps, rows, prompt, generated, completed atomic.Int64
	}
	kvBudget int64
}

// lsJob is one request of a LockstepBatcher.
type lsJob struct {
	ctx      context.Context
	req      BatchRequest
	start    time.Time
	done     chan struct{}
	res      BatchResult
	err      error
	seqs     []*engine.Seq
	ready    []bool
	logits   [][]float32
	combined []float32
	comb     Combiner
	smp      *Sampler
	history  []int
	stream   *tokenizer.Stream
	stop     *stopWriter
	chunk    Chunk
	limit    int
	probs    []float64
	lead     textLead
}

// NewLockstepBatcher returns a batcher of models combined by the
// combiners newComb makes (nil: the first model's logits alone). tok
// decodes the text and finds stop strings; it may be nil for callers that
// read only the ids (Stop must then be empty).
func NewLockstepBatcher(models []*engine.Model, tok *tokenizer.Tokenizer, newComb func() Combiner, cfg LockstepBatcherConfig) (*LockstepBatcher, error) {
	if len(models) == 0 {
		return nil, ErrNoSessions
	}
	if newComb != nil {
		if _, ok := newComb().(*CoLLM); ok {
			return nil, errors.New("decode: co-llm reads hidden states and cannot run in a lockstep batch")
		}
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	ctxLen := math.MaxInt
	vocab := math.MaxInt
	for _, m := range models {
		ctxLen = min(ctxLen, m.ContextSize())
		vocab = min(vocab, m.Config.VocabSize)
	}
	if cfg.Context <= 0 || cfg.Context > ctxLen {
		cfg.Context = ctxLen
	}
	if tok != nil && tok.VocabSize() > 0 {
		vocab = min(vocab, tok.VocabSize())
	}
	if cfg.Vocab > 0 {
		vocab = min(vocab, cfg.Vocab)
	}
	if cfg.EOS == nil && tok != nil {
		cfg.EOS = EOSIDs(tok, models...)
	}
	b := &LockstepBatcher{models: models, tok: tok, newComb: newComb, cfg: cfg, vocab: vocab, eos: cfg.EOS}
	for _, m := range models {
		batch := m.NewBatch(cfg.Batch)
		b.batches = append(b.batches, batch)
		b.owner = append(b.owner, map[*engine.Seq]*lsJob{})
	}
	b.cfg.Batch = b.batches[0].Options()
	for _, batch := range b.batches {
		b.kvBudget += batch.Options().KVBytes
	}
	return b, nil
}

// Stats returns the current counters: KV bytes summed over the models'
// batches, a step (Steps) is one forward pass of every model, and a row
// one prompt in it.
func (b *LockstepBatcher) Stats() BatcherStats {
	s := &b.stats
	return BatcherStats{
		Queued: int(s.queued.Load()), Active: int(s.active.Load()),
		KVUsed: s.kvUsed.Load(), KVBudget: b.kvBudget,
		Steps: s.steps.Load(), StepRows: s.rows.Load(), PromptTokens: s.prompt.Load(),
		GeneratedTokens: s.generated.Load(), Completed: s.completed.Load(),
	}
}

// kvUsed sums the KV cache the batches' sequences reserved.
func (b *LockstepBatcher) kvUsed() int64 {
	var n int64
	for _, batch := range b.batches {
		n += batch.KVUsed()
	}
	return n
}

// Context is the most positions one request may use.
func (b *LockstepBatcher) Context() int { return b.cfg.Context }

// Vocab is the shared vocabulary size the logits are truncated to.
func (b *LockstepBatcher) Vocab() int { return b.vocab }

// positions is what a request reserves in every model's batch.
func (b *LockstepBatcher) positions(req *BatchRequest) int {
	n := b.cfg.Context
	if req.MaxTokens > 0 {
		n = min(n, len(req.Prompt)+req.MaxTokens)
	}
	return n
}

// Fits reports whether a request of positions positions could ever join
// (every model's empty batch holds it), and why not.
func (b *LockstepBatcher) Fits(positions int) error {
	for i, batch := range b.batches {
		if err := batch.Fits(positions); err != nil {
			return fmt.Errorf("model %d: %w", i, err)
		}
	}
	return nil
}

// Check validates req without queueing it: the errors Generate would
// return before any work.
func (b *LockstepBatcher) Check(req *BatchRequest) error {
	switch {
	case len(req.Prompt) == 0:
		return errors.New("the prompt is empty (add a BOS token)")
	case req.MaxTokens < 0:
		return fmt.Errorf("max_tokens must be >= 0, got %d", req.MaxTokens)
	case req.TopLogprobs < 0:
		return fmt.Errorf("top_logprobs must be >= 0, got %d", req.TopLogprobs)
	case len(req.Prompt) >= b.cfg.Context:
		return fmt.Errorf("the prompt has %d tokens, which fills the models' context of %d", len(req.Prompt), b.cfg.Context)
	case b.tok == nil && (len(req.Stop) > 0 || req.Logprobs || req.TopLogprobs > 0 || req.Stream != nil):
		return errors.New("stop strings, logprobs and streaming need the batcher's tokenizer")
	}
	if err := req.Sampler.Validate(); err != nil {
		return err
	}
	for _, id := range req.Prompt {
		for i, m := range b.models {
			if id < 0 || id >= m.Config.VocabSize {
				return fmt.Errorf("token id %d is outside model %d's vocabulary [0, %d)", id, i, m.Config.VocabSize)
			}
		}
	}
	return b.Fits(b.positions(req))
}

// Generate queues req and waits for its result: its text (empty without
// a tokenizer), ids (EOS excluded), finish reason and, when asked, the
// log-probabilities of its tokens under the combined scores (what
// Token.LogProb reports in the one-prompt loop). It returns ErrQueueFull
// at once when the queue is full, ErrClosed after Close, and ctx's error
// when ctx ends first (checked before every step; the request then leaves
// the batch and frees its KV cache).
func (b *LockstepBatcher) Generate(ctx context.Context, req BatchRequest) (BatchResult, error) {
	res, errs := b.GenerateAll(ctx, []BatchRequest{req})
	return res[0], errs[0]
}

// GenerateAll is Generate for many requests, queued together in order
// (so they join the batch in that order): it returns each one's result
// and error. When the queue has no room for all of them, every one gets
// ErrQueueFull.
func (b *LockstepBatcher) GenerateAll(ctx context.Context, reqs []BatchRequest) ([]BatchResult, []error) {
	out := make([]BatchResult, len(reqs))
	errs := make([]error, len(reqs))
	jobs := make([]*lsJob, len(reqs))
	n := 0
	for i := range reqs {
		if errs[i] = b.Check(&reqs[i]); errs[i] == nil {
			jobs[i] = &lsJob{ctx: ctx, req: reqs[i], start: time.Now(), done: make(chan struct{})}
			n++
		}
	}
	var err error
	b.mu.Lock()
	switch {
	case b.closed:
		err = ErrClosed
	case len(b.queue)+n > b.cfg.MaxQueue:
		err = fmt.Errorf("%w (%d waiting)", ErrQueueFull, len(b.queue))
	default:
		for _, j := range jobs {
			if j != nil {
				b.queue = append(b.queue, j)
			}
		}
		b.stats.queued.Store(int64(len(b.queue)))
		if !b.running && len(b.queue) > 0 {
			b.running = true
			b.loops.Add(1)
			go b.loop()
		}
	}
	b.mu.Unlock()
	for i, j := range jobs {
		switch {
		case j == nil:
		case err != nil:
			errs[i] = err
		default:
			<-j.done
			out[i], errs[i] = j.res, j.err
		}
	}
	return out, errs
}

// Close refuses new requests, ends queued and running ones with ErrClosed
// at the next step and waits for the stepping goroutine to return (the
// models may then be closed).
func (b *LockstepBatcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.loops.Wait()
}

// leave takes j's sequences out of every batch.
func (b *LockstepBatcher) leave(j *lsJob) {
	for i, s := range j.seqs {
		if s != nil {
			b.batches[i].Remove(s)
			delete(b.owner[i], s)
			j.seqs[i] = nil
		}
	}
}

// finish ends j; the gauges drop before its caller hears of it.
func (b *LockstepBatcher) finish(j *lsJob, err error) {
	if j.seqs != nil {
		b.leave(j)
		j.seqs = nil
		b.stats.active.Add(-1)
		b.stats.kvUsed.Store(b.kvUsed())
	}
	j.err = err
	b.stats.completed.Add(1)
	close(j.done)
}

// admit adds j's prompt to every model's batch; full reports that there
// is no room now.
func (b *LockstepBatcher) admit(j *lsJob) (full bool, err error) {
	n := len(b.models)
	positions := b.positions(&j.req)
	j.seqs = make([]*engine.Seq, n)
	for i, batch := range b.batches {
		s, err := batch.Add(j.req.Prompt, positions)
		if err != nil {
			b.leave(j)
			j.seqs = nil
			return errors.Is(err, engine.ErrKVFull) || errors.Is(err, engine.ErrBatchFull), fmt.Errorf("model %d: %w", i, err)
		}
		j.seqs[i] = s
		b.owner[i][s] = j
	}
	j.ready = make([]bool, n)
	j.logits = make([][]float32, n)
	j.history = slices.Clone(j.req.Prompt)
	j.limit = positions - len(j.req.Prompt)
	j.smp, _ = NewSampler(j.req.Sampler) // validated in Check
	if b.newComb != nil {
		j.comb = b.newComb()
		if r, ok := j.comb.(Resetter); ok {
			r.Reset()
		}
	}
	if b.tok != nil {
		j.stream = b.tok.NewStream(true)
		j.lead = newTextLead(j.req.Prompt, j.req.Continue)
	}
	j.stop = &stopWriter{stops: j.req.Stop}
	if j.req.Stream != nil {
		j.stop.w = lsChunkWriter{j}
	}
	j.res.PromptTokens = len(j.req.Prompt)
	b.stats.active.Add(1)
	b.stats.prompt.Add(int64(len(j.req.Prompt)))
	return false, nil
}

// loop admits queued requests while every batch has room, steps the
// batches and advances every prompt whose models all have logits; it
// returns once nothing is queued or running.
func (b *LockstepBatcher) loop() {
	defer b.loops.Done()
	var active []*lsJob
	for {
		b.mu.Lock()
		if b.closed {
			for _, j := range append(active, b.queue...) {
				b.finish(j, ErrClosed)
			}
			b.queue, b.running = nil, false
			b.stats.queued.Store(0)
			b.mu.Unlock()
			return
		}
		for len(b.queue) > 0 {
			j := b.queue[0]
			if err := j.ctx.Err(); err != nil {
				b.queue = b.queue[1:]
				b.finish(j, err)
				continue
			}
			full, err := b.admit(j)
			if full && len(active) > 0 {
				break // wait for room
			}
			b.queue = b.queue[1:]
			if err != nil {
				b.finish(j, err)
				continue
			}
			active = append(active, j)
		}
		kept := b.queue[:0]
		for _, j := range b.queue {
			if err := j.ctx.Err(); err != nil {
				b.finish(j, err)
			} else {
				kept = append(kept, j)
			}
		}
		clear(b.queue[len(kept):])
		b.queue = kept
		b.stats.queued.Store(int64(len(b.queue)))
		active = b.prune(active, func(j *lsJob) error { return j.ctx.Err() })
		b.stats.kvUsed.Store(b.kvUsed())
		if len(active) == 0 && len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.stats.steps.Add(1)
		b.stats.rows.Add(int64(len(active)))
		for i, batch := range b.batches {
			for _, s := range batch.Step() {
				j := b.owner[i][s]
				if err := s.Err(); err != nil {
					j.err = fmt.Errorf("model %d: %w", i, err)
					continue
				}
				j.logits[i] = append(j.logits[i][:0], s.Logits()...) // the batch reuses its buffer
				j.ready[i] = true
			}
		}
		active = b.prune(active, b.advance)
	}
}

// prune finishes the jobs of active for which fn returns an error or that
// are done (their done channel closed by fn through finish), keeping the
// others in order.
func (b *LockstepBatcher) prune(active []*lsJob, fn func(*lsJob) error) []*lsJob {
	kept := active[:0]
	for _, j := range active {
		if err := fn(j); err != nil {
			b.finish(j, err)
			continue
		}
		select {
		case <-j.done:
		default:
			kept = append(kept, j)
		}
	}
	clear(active[len(kept):])
	return kept
}

// advance samples j's next token once every model has its logits: it
// finishes j when it is done, else feeds the token to every model.
func (b *LockstepBatcher) advance(j *lsJob) error {
	if j.err != nil {
		return j.err
	}
	for _, r := range j.ready {
		if !r {
			return nil
		}
	}
	v := b.vocab
	lg := make([][]float32, len(j.logits))
	for i, x := range j.logits {
		lg[i] = x[:v]
	}
	scores := lg[0]
	if j.comb != nil {
		if len(j.combined) != v {
			j.combined = make([]float32, v)
		}
		step := &Step{Index: len(j.history) - len(j.req.Prompt), Tokens: j.history, Logits: lg, Defer: math.NaN(), Confidence: math.NaN()}
		if err := j.comb.Combine(j.combined, step); err != nil {
			return err
		}
		scores = j.combined
	}
	tok := j.smp.SampleAfter(scores, j.history)
	b.stats.generated.Add(1)
	if len(j.res.Tokens) == 0 {
		j.res.TTFT = time.Since(j.start)
	}
	var lp *TokenLogprob
	if j.req.Logprobs || j.req.TopLogprobs > 0 {
		lp = logprobOf(b.tok, &j.probs, scores, j.lead.context(j.res.Tokens), tok, j.req.TopLogprobs)
	}
	if slices.Contains(b.eos, tok) {
		b.end(j, FinishStop)
		return nil
	}
	if j.stream != nil {
		j.lead.first(b.tok, len(j.res.Tokens), tok)
	}
	j.history = append(j.history, tok)
	j.res.Tokens = append(j.res.Tokens, tok)
	if lp != nil {
		j.res.Logprobs = append(j.res.Logprobs, *lp)
		j.chunk.Logprobs = append(j.chunk.Logprobs, *lp)
	}
	if j.stream != nil && j.stop.add(j.lead.text(j.stream.Add(tok))) {
		b.end(j, FinishStop)
		return nil
	}
	j.emit()
	if len(j.res.Tokens) >= j.limit {
		b.end(j, FinishLength)
		return nil
	}
	for i, s := range j.seqs {
		j.ready[i] = false
		if err := s.Feed(tok); err != nil {
			return fmt.Errorf("model %d: %w", i, err)
		}
	}
	return nil
}

// end flushes j's text, sets its finish reason and finishes it.
func (b *LockstepBatcher) end(j *lsJob, reason string) {
	if j.stream != nil && !j.stop.stopped {
		j.stop.add(j.lead.rest(j.stream.Flush()))
		j.stop.flush()
	}
	j.res.Finish = reason
	j.res.Text = j.stop.out.String()
	j.emit()
	b.finish(j, nil)
}

func (j *lsJob) emit() {
	if j.req.Stream != nil && (j.chunk.Text != "" || len(j.chunk.Logprobs) > 0) {
		j.req.Stream(j.chunk)
	}
	j.chunk = Chunk{}
}

// lsChunkWriter forwards the stop writer's text to the request's Stream.
type lsChunkWriter struct{ j *lsJob }

func (w lsChunkWriter) Write(p []byte) (int, error) {
	w.j.chunk.Text += string(p)
	return len(p), nil
}

// logprobOf returns tok's log-probability under scores and the k most
// likely alternatives, each with the text it adds after the generated
// tokens prev.
func logprobOf(t *tokenizer.Tokenizer, buf *[]float64, scores []float32, prev []int, tok, k int) *TokenLogprob {
	if cap(*buf) < len(scores) {
		*buf = make([]float64, len(scores))
	}
	p := (*buf)[:len(scores)]
	SoftmaxInto(p, scores, 1)
	// A token decoded alone loses what its context gives it (the space
	// of a SentencePiece word, the rest of a UTF-8 character); a few
	// tokens of context are enough for that.
	prev = prev[max(0, len(prev)-4):]
	text := func(id int) string { return t.Piece(prev, id) }
	out := &TokenLogprob{Token: tok, Text: text(tok), Logprob: safeLog(p[tok])}
	if k > 0 {
		for _, e := range topK(p, k) {
			out.Top = append(out.Top, TokenLogprob{Token: e.ID, Text: text(e.ID), Logprob: safeLog(e.Prob)})
		}
	}
	return out
}
