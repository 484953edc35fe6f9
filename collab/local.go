package collab

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// Local is a model folder loaded in this process: the engine's weights and
// the tokenizer, shared by every request. It is a Generator (plain
// generation with this one model) and it is what Member.Local holds for
// the logit-level methods, which need the weights themselves.
//
// Local is safe for concurrent use. Generate answers through one batcher
// (decode.Batcher, started on first use) that decodes every request in
// flight together, whoever sent it: the requests of one call, and those of
// concurrent calls (an evaluation's items, a text method's members), share
// each step's pass over the weights. Every other use runs in its own
// session (its own KV cache) over the shared weights.
type Local struct {
	Model *engine.Model
	Tok   *tokenizer.Tokenizer
	// ModelName is the name used in traces and errors (the folder's base
	// name unless set).
	ModelName string
	Dir       string
	// Params is the parameter count, the basis of the FLOPs estimate.
	Params int64

	mu      sync.Mutex
	batcher *decode.Batcher
	owned   bool // batcher started by l, closed by Close
}

// LoadLocal loads the Hugging Face model folder dir with the engine and its
// tokenizer. Close releases the weights.
func LoadLocal(dir string, opts engine.Options) (*Local, error) {
	m, err := engine.Load(dir, opts)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return NewLocal(filepath.Base(filepath.Clean(dir)), dir, m, tok), nil
}

// NewLocal wraps an already loaded model and tokenizer.
func NewLocal(name, dir string, m *engine.Model, tok *tokenizer.Tokenizer) *Local {
	return &Local{Model: m, Tok: tok, ModelName: name, Dir: dir, Params: ParamCount(m.Config)}
}

// Close stops the batcher l started, if any, and releases the model's
// weights.
func (l *Local) Close() error {
	l.mu.Lock()
	b, owned := l.batcher, l.owned
	l.batcher, l.owned = nil, false
	l.mu.Unlock()
	if b != nil && owned {
		b.Close()
	}
	return l.Model.Close()
}

// localQueue is the queue of the batcher a Local starts: every request of
// every caller waits in it for room in the batch, so it is not the bound a
// server's queue is (a dev set of thousands of items is one call).
const localQueue = 1 << 20

// Batcher returns the batcher Generate answers through, starting one over
// the model (default batch bounds, the whole context) on first use.
func (l *Local) Batcher() *decode.Batcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.batcher == nil {
		l.batcher = decode.NewBatcher(l.Model, l.Tok, decode.BatcherConfig{MaxQueue: localQueue})
		l.owned = true
	}
	return l.batcher
}

// UseBatcher makes Generate answer through b, a batcher of l.Model that
// the caller owns and closes (a server's, shared with its other requests).
// A batcher l started before is closed once its requests are done.
func (l *Local) UseBatcher(b *decode.Batcher) {
	l.mu.Lock()
	old, owned := l.batcher, l.owned
	l.batcher, l.owned = b, false
	l.mu.Unlock()
	if old != nil && owned && old != b {
		old.Close()
	}
}

// Name is the model's name.
func (l *Local) Name() string { return l.ModelName }

// Member returns l as a pool member (Gen and Local both set).
func (l *Local) Member() Member {
	return Member{Name: l.ModelName, Dir: l.Dir, Gen: l, Local: l}
}

// ParamCount counts a model's parameters from its configuration: the
// embeddings, the output head when untied, every block's projections and
// norms, and the final norm. Biases are included when the config has them.
func ParamCount(c *engine.Config) int64 {
	h, v, in := int64(c.HiddenSize), int64(c.VocabSize), int64(c.IntermediateSize)
	q, kv := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	n := v * h
	if !c.TieEmbeddings {
		n += v * h
	}
	layer := h*q + 2*h*kv + q*h + 3*h*in
	norms := int64(2)
	if c.Norms == "sandwich" {
		norms = 4
	}
	layer += norms * h
	switch c.QKNorm {
	case "head":
		layer += 2 * int64(c.HeadDim)
	case "full":
		layer += q + kv
	}
	if c.QKVBias {
		layer += q + 2*kv
	}
	if c.OBias {
		layer += h
	}
	if c.MLPBias {
		layer += 2*in + h
	}
	return n + int64(c.NumLayers)*layer + h
}

// RenderMessages turns a chat into the text a model continues: with the
// tokenizer's chat template and the generation prompt when it has one.
// A model without a template (a base model) gets the contents alone,
// joined by blank lines, so a single user message is sent as it is.
func RenderMessages(tok *tokenizer.Tokenizer, msgs []Message) (string, error) {
	if tok.Chat == nil {
		parts := make([]string, len(msgs))
		for i, m := range msgs {
			parts[i] = m.Content
		}
		return strings.Join(parts, "\n\n"), nil
	}
	if tok.ChatErr != nil {
		return "", fmt.Errorf("the model's chat template cannot be used: %w", tok.ChatErr)
	}
	ms := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		ms[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return tok.Chat.Render(ms, tokenizer.ChatOptions{AddGenerationPrompt: true})
}

// encodeRequest renders and encodes r's prompt for l: the chat template
// for Messages, the prompt as it is otherwise, with the tokenizer's special
// tokens (BOS) unless the rendered template already starts with BOS; an
// empty prompt starts from decode.StartID.
func encodeRequest(l *Local, r Request) ([]int, error) {
	tok := l.Tok
	text := r.Prompt
	special := true
	if len(r.Messages) > 0 {
		var err error
		if text, err = RenderMessages(tok, r.Messages); err != nil {
			return nil, err
		}
		if bos := tok.BOS(); tok.Chat != nil && bos >= 0 && strings.HasPrefix(text, tok.TokenString(bos)) {
			special = false
		}
	}
	ids, err := tok.Encode(text, special)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		bos, err := decode.StartID(tok, l.Model.Config)
		if err != nil {
			return nil, err
		}
		ids = []int{bos}
	}
	return ids, nil
}

// fitPrompt keeps a prompt and maxNew new tokens within a context of limit
// positions. Without a maxNew the rest of the context is the limit, but at
// least a quarter of it; a maxNew that does not fit is cut to the rest of
// the context, but not below half of it. A prompt too long for what
// remains keeps its last tokens (the question comes last), and its first
// one when that is BOS.
func fitPrompt(ids []int, limit, maxNew, bos int) ([]int, int) {
	switch {
	case maxNew <= 0:
		maxNew = max(limit-len(ids), limit/4)
	case len(ids)+maxNew > limit && maxNew > limit/2:
		maxNew = max(limit-len(ids), limit/2)
	}
	room := limit - maxNew
	if len(ids) <= room {
		return ids, maxNew
	}
	if bos >= 0 && ids[0] == bos {
		return append([]int{bos}, ids[len(ids)-room+1:]...), maxNew
	}
	return ids[len(ids)-room:], maxNew
}

// sessionLimit is the number of positions a default session of m holds.
func sessionLimit(m *engine.Model) int { return m.ContextSize() }

// Generate answers each request with this model alone, all of them
// together in the batch (see Local). Each answer equals what a session of
// its own generates (runLocal with the "single" method): greedy ids are
// identical, and a seeded sampler draws the same tokens. A prompt too
// long for the context keeps its last tokens; generation stops at an EOS
// token, at the request's MaxTokens, at the context's end or before the
// first stop string. Cancelling ctx stops generation at the next step.
func (l *Local) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := l.Batcher()
	out := make([]Response, len(reqs))
	errs := make([]error, len(reqs))
	if len(reqs) == 1 {
		out[0], errs[0] = l.generateOne(ctx, b, reqs[0])
	} else {
		var wg sync.WaitGroup
		for i, r := range reqs {
			wg.Go(func() { out[i], errs[i] = l.generateOne(ctx, b, r) })
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			if len(reqs) > 1 {
				return nil, fmt.Errorf("%s: request %d: %w", l.ModelName, i, err)
			}
			return nil, fmt.Errorf("%s: %w", l.ModelName, err)
		}
	}
	return out, nil
}

// generateOne answers one request through the batcher b, with the prompt
// fitted as runLocal fits it.
func (l *Local) generateOne(ctx context.Context, b *decode.Batcher, r Request) (Response, error) {
	ids, err := encodeRequest(l, r)
	if err != nil {
		return Response{}, err
	}
	ids, maxNew := fitPrompt(ids, b.Context(), r.MaxTokens, l.Tok.BOS())
	if need := int64(len(ids)+maxNew) * l.Model.KVBytesPerPos(); need > b.Stats().KVBudget {
		// The batch reserves a request's whole length up front; one that
		// could never fit (a long context without MaxTokens) runs in a
		// session of its own, whose cache grows as it goes.
		return runLocal(ctx, []*Local{l}, decode.MethodConfig{Method: "single"}, r)
	}
	top := r.TopP
	if top == 0 {
		top = 1
	}
	res, err := b.Generate(ctx, decode.BatchRequest{Prompt: ids, MaxTokens: maxNew, Stop: r.Stop,
		Sampler: decode.SamplerConfig{Temperature: r.Temperature, TopP: top, Seed: r.Seed}})
	if err != nil {
		return Response{}, err
	}
	n := int64(len(ids) + len(res.Tokens))
	return Response{Text: res.Text, PromptTokens: len(ids), CompletionTokens: len(res.Tokens),
		ForwardTokens: n, FLOPs: 2 * float64(l.Params) * float64(n), Finish: res.Finish}, nil
}

// runLocal answers one request with the decode method cfg over the local
// models (the first one's tokenizer renders the prompt), filling in the
// request's sampling settings and the token and FLOP counts.
func runLocal(ctx context.Context, ls []*Local, cfg decode.MethodConfig, r Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	tok := ls[0].Tok
	ids, err := encodeRequest(ls[0], r)
	if err != nil {
		return Response{}, err
	}
	limit := 1 << 30
	models := make([]*engine.Model, len(ls))
	toks := make([]*tokenizer.Tokenizer, len(ls))
	cfg.Names = make([]string, len(ls))
	for i, l := range ls {
		models[i], toks[i] = l.Model, l.Tok
		limit = min(limit, sessionLimit(l.Model))
		cfg.Names[i] = l.ModelName
	}
	// Leave room for the look-ahead of mentor patches, as decode's own
	// bound does (speculative drafts stop at MaxTokens: they need none).
	margin := 0
	if cfg.Method == "mentor" {
		margin = cmp.Or(cfg.PatchLen, decode.DefaultPatchLen)
	}
	ids, maxNew := fitPrompt(ids, limit-margin, r.MaxTokens, tok.BOS())
	cfg.MaxTokens = maxNew
	cfg.Sampler = decode.SamplerConfig{Temperature: r.Temperature, TopP: r.TopP, Seed: r.Seed}
	if cfg.Sampler.TopP == 0 {
		cfg.Sampler.TopP = 1
	}
	cfg.Stop = r.Stop
	cfg.Chat = false
	c, err := decode.NewMethod(models, toks, cfg)
	if err != nil {
		return Response{}, err
	}
	completion := 0
	text, err := c.GenerateIDsContext(ctx, ids, nil, func(decode.Token) bool {
		completion++
		return true
	})
	if err != nil {
		return Response{}, err
	}
	res := Response{Text: text, PromptTokens: len(ids), CompletionTokens: completion, Finish: decode.FinishStop}
	if completion >= maxNew {
		res.Finish = decode.FinishLength
	}
	used := len(ls)
	if cfg.Method == "single" {
		used = 1
	}
	for _, l := range ls[:used] {
		n := int64(len(ids) + completion)
		res.ForwardTokens += n
		res.FLOPs += 2 * float64(l.Params) * float64(n)
	}
	return res, nil
}

// Embedder is implemented by generators that expose hidden states: Embed
// returns one vector per text (the trained router's features).
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Scorer is implemented by generators that can score a continuation:
// LogLikelihood returns the sum of the log-probabilities of continuation's
// tokens after prompt, and how many tokens that is.
type Scorer interface {
	LogLikelihood(ctx context.Context, prompt, continuation string) (float64, int, error)
}

// Embed returns each text's mean-pooled final hidden state (after the
// final norm), over every token including BOS. A text longer than the
// context keeps its last tokens.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	s := l.Model.NewSession(0)
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids, err := l.Tok.Encode(t, true)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			if bos := l.Tok.BOS(); bos >= 0 {
				ids = []int{bos}
			} else {
				return nil, fmt.Errorf("%s: cannot embed an empty text without a BOS token", l.ModelName)
			}
		}
		ids, _ = fitPrompt(ids, s.MaxSeq()+1, 1, l.Tok.BOS())
		s.Reset()
		sum := make([]float64, l.Model.Config.HiddenSize)
		for _, id := range ids {
			if _, err := s.Forward([]int{id}); err != nil {
				return nil, fmt.Errorf("%s: %w", l.ModelName, err)
			}
			for j, v := range s.Hidden() {
				sum[j] += float64(v)
			}
		}
		v := make([]float32, len(sum))
		for j := range sum {
			v[j] = float32(sum[j] / float64(len(ids)))
		}
		out[i] = v
	}
	return out, nil
}

// LogLikelihood scores continuation after prompt: the prompt is encoded
// with BOS, the continuation without, and both are run in one pass.
func (l *Local) LogLikelihood(ctx context.Context, prompt, continuation string) (float64, int, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	p, err := l.Tok.Encode(prompt, true)
	if err != nil {
		return 0, 0, err
	}
	c, err := l.Tok.Encode(continuation, false)
	if err != nil {
		return 0, 0, err
	}
	if len(c) == 0 {
		return 0, 0, nil
	}
	if len(p) == 0 {
		return 0, 0, fmt.Errorf("%s: scoring needs a non-empty prompt", l.ModelName)
	}
	s := l.Model.NewSession(0)
	all := append(append([]int(nil), p...), c...)
	if len(all) > s.MaxSeq() {
		return 0, 0, fmt.Errorf("%s: %d tokens to score exceed the context of %d", l.ModelName, len(all), s.MaxSeq())
	}
	lg, err := s.ForwardAll(all[:len(all)-1])
	if err != nil {
		return 0, 0, err
	}
	V := l.Model.Config.VocabSize
	sum := 0.0
	for k, id := range c {
		pos := len(p) - 1 + k
		sum += decode.LogSoftmaxAt(lg[pos*V:(pos+1)*V], id)
	}
	return sum, len(c), nil
}
