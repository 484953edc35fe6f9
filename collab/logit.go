package collab

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// The logit-level methods and "single" are decode's token loops
// (decode.NewMethod) over models loaded in this process, safe for
// concurrent use. Fusion, contrastive and nudging decode every request in
// flight together, whoever sent it: one decode.LockstepBatcher per method
// (started on first use, its goroutine gone while idle) steps each model
// once for all of them, and every request keeps its own combiner, seeded
// sampler, stop strings and token cap, so each answer is the one the
// request gets alone. "single" answers through the model's own batcher
// (Local.Generate). Co-LLM (it reads hidden states), mentor, speculative
// decoding and cascade (they rewind, patch or restart per prompt) build
// their loop afresh per request, with its own sessions over the shared
// weights, and answer one request at a time. Their parameters are the
// decode package's, with its defaults; see LogitParams.

// FusionParams: the models' next-token distributions averaged.
type FusionParams struct {
	// Mode is "logit-mean" (default) or "prob-mean".
	Mode string `json:"mode"`
	// Weights, one per model (default uniform).
	Weights []float64 `json:"weights"`
}

// ContrastiveParams: MoCo's logit contrastive by default. The pool,
// ranked best first, gives top1 + Alpha*(sum of the top K - sum of the
// bottom K) (K 1: the best model counts twice; 2K models at least). With
// Dev, each model alone answers the dev items first (greedy unless
// dev_temperature says otherwise, dev_max_tokens, dev_stop) and the pool is
// ranked by dev accuracy, MoCo's rule (Rank "nll": by the mean NLL of the
// reference answers, lowest first; local models only), ties keeping pool
// order; without Dev the pool order is the ranking. The ranking is the
// first event of every response's trace.
//
// Proxy-tuning's form instead: explicit Experts and Anti (model indexes;
// Base, default 0, is the base) give base + Alpha*(experts - anti), with
// Alpha 1 for proxy-tuning itself; it takes no Dev, K or Rank.
type ContrastiveParams struct {
	Alpha float64 `json:"alpha"` // default 0.2 (MoCo's lambda; 1 is proxy-tuning)
	K     int     `json:"k"`     // default 1 (MoCo's)
	Rank  string  `json:"rank"`  // with Dev: "accuracy" (default, MoCo's) or "nll"
	DevConfig
	Base    int   `json:"base"`
	Experts []int `json:"experts"`
	Anti    []int `json:"anti"`
}

// NudgingParams: model 0 is the base, model 1 the nudger, which writes the
// first word and then a word whenever the base's top-1 probability is
// below Gamma (decode.Nudging).
type NudgingParams struct {
	Gamma float64 `json:"gamma"` // default decode.DefaultGamma (0.4)
}

// CascadeParams: weak to strong; an answer whose confidence is below the
// level's threshold goes to the next model. Thresholds (one per level but
// the last) or DevPrompts to calibrate them at Quantile.
type CascadeParams struct {
	Thresholds []float64 `json:"thresholds"`
	DevPrompts []string  `json:"dev_prompts"`
	Quantile   float64   `json:"quantile"` // default decode.DefaultQuantile (0.5)
}

// CoLLMParams: model 0 the base, model 1 the assistant; a trained head on
// the base's hidden state decides when to defer.
type CoLLMParams struct {
	Head      string  `json:"head"`      // the head's .safetensors (required)
	Threshold float64 `json:"threshold"` // default 0.5
	WarmUp    int     `json:"warm_up"`
	Mode      string  `json:"mode"` // "defer" (default) or "compose"
}

// MentorParams: model 0 the generator, model 1 the mentor.
type MentorParams struct {
	Share       float64 `json:"share"`        // default decode.DefaultMentorShare (0.25)
	PatchTokens int     `json:"patch_tokens"` // default decode.DefaultPatchLen (16)
	Head        string  `json:"head"`         // optional trained chooser head
}

// SpeculativeParams: model 0 the target, model 1 the draft.
type SpeculativeParams struct {
	DraftTokens int `json:"draft_tokens"` // default decode.DefaultDraftTokens (4)
}

func init() {
	one := func(name, summary string, min, max int, build func(p Params) (decode.MethodConfig, error)) {
		level := LevelLogit
		if name == "single" {
			level = LevelSingle
		}
		Register(Spec{Name: name, Level: level, Summary: summary, MinModels: min, MaxModels: max,
			New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
				cfg, err := build(p)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				if _, local := pool[0].Local.(*Local); name == "single" && !local {
					return remoteSingle{pool[0]}, nil // an endpoint alone: its own answers
				}
				cfg.Method = name
				return newLogitMethod(ctx, level, pool, cfg)
			}})
	}
	one("single", "one model alone, the baseline", 1, 1, func(p Params) (decode.MethodConfig, error) {
		return decode.MethodConfig{}, p.Decode(&struct{}{})
	})
	one("fusion", "average the models' next-token distributions (logit-mean or prob-mean)", 1, 0, func(p Params) (decode.MethodConfig, error) {
		var q FusionParams
		err := p.Decode(&q)
		return decode.MethodConfig{Mode: q.Mode, Weights: q.Weights}, err
	})
	Register(Spec{Name: "contrastive", Level: LevelLogit, MinModels: 2, Dev: true,
		Summary: "MoCo's top1 + lambda*(top k - bottom k) over the pool ranked by dev accuracy; proxy-tuning with experts/anti",
		New:     newContrastive})
	one("nudging", "a nudger writes a word when the base is unsure", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := NudgingParams{Gamma: decode.DefaultGamma}
		err := p.Decode(&q)
		return decode.MethodConfig{Gamma: &q.Gamma}, err
	})
	one("cascade", "weak to strong by confidence thresholds", 1, 0, func(p Params) (decode.MethodConfig, error) {
		q := CascadeParams{Quantile: decode.DefaultQuantile}
		err := p.Decode(&q)
		return decode.MethodConfig{Thresholds: q.Thresholds, DevPrompts: q.DevPrompts, Quantile: &q.Quantile}, err
	})
	one("co-llm", "a trained head defers tokens from the base to the assistant", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := CoLLMParams{Threshold: decode.DefaultThreshold}
		if err := p.Decode(&q); err != nil {
			return decode.MethodConfig{}, err
		}
		if q.Head == "" {
			return decode.MethodConfig{}, inputErrorf("needs a deferral head (parameter head: a .safetensors file from 'moco collab train-head')")
		}
		h, err := decode.LoadHead(q.Head)
		return decode.MethodConfig{Head: h, Threshold: &q.Threshold, WarmUp: q.WarmUp, CoLLMMode: q.Mode}, err
	})
	one("mentor", "a mentor drafts patches where the generator's next word differs", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := MentorParams{Share: decode.DefaultMentorShare, PatchTokens: decode.DefaultPatchLen}
		if err := p.Decode(&q); err != nil {
			return decode.MethodConfig{}, err
		}
		cfg := decode.MethodConfig{Share: &q.Share, PatchLen: q.PatchTokens}
		if q.Head != "" {
			h, err := decode.LoadHead(q.Head)
			if err != nil {
				return cfg, err
			}
			cfg.Head = h
		}
		return cfg, nil
	})
	one("speculative", "a draft model proposes tokens the target verifies", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := SpeculativeParams{DraftTokens: decode.DefaultDraftTokens}
		err := p.Decode(&q)
		return decode.MethodConfig{DraftTokens: q.DraftTokens}, err
	})
}

// logitMethod runs a decode method over local models.
type logitMethod struct {
	name    string
	level   Level
	locals  []*Local
	cfg     decode.MethodConfig // read-only after construction
	ranking string              // contrastive's dev ranking, reported in traces

	mu      sync.Mutex
	batcher *decode.LockstepBatcher // fusion, contrastive, nudging; built on first use
}

// Locals returns the local models behind a pool, or an error naming the
// first member that is not loaded in this process.
func Locals(method string, pool []Member) ([]*Local, error) {
	ls := make([]*Local, len(pool))
	for i, m := range pool {
		l, ok := m.Local.(*Local)
		if !ok || l == nil {
			return nil, inputErrorf("%s works on model weights token by token: %s is not a model loaded in this process", method, m.Name)
		}
		ls[i] = l
	}
	return ls, nil
}

func newLogitMethod(ctx context.Context, level Level, pool []Member, cfg decode.MethodConfig) (Method, error) {
	ls, err := Locals(cfg.Method, pool)
	if err != nil {
		return nil, err
	}
	m := &logitMethod{name: cfg.Method, level: level, locals: ls, cfg: cfg}
	// Build once now so that bad parameters and mismatched vocabularies
	// fail here, and a cascade calibrates its thresholds once.
	models, toks := m.models()
	probe := cfg
	probe.Sampler = decode.SamplerConfig{}
	probe.MaxTokens = 1
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := decode.NewMethodContext(ctx, models, toks, probe)
	if err != nil {
		if ctx.Err() != nil || cfg.DevPrompts != nil {
			// Cancelled, or the calibration failed while working.
			return nil, fmt.Errorf("%s: %w", cfg.Method, err)
		}
		// Parameters decode refuses, vocabularies that differ.
		return nil, inputErrorf("%s: %w", cfg.Method, err)
	}
	if c.Cascade != nil && cfg.Thresholds == nil {
		m.cfg.Thresholds = append([]float64(nil), c.Cascade.Thresholds...)
		m.cfg.DevPrompts = nil
	}
	return m, nil
}

func (m *logitMethod) models() ([]*engine.Model, []*tokenizer.Tokenizer) {
	models := make([]*engine.Model, len(m.locals))
	toks := make([]*tokenizer.Tokenizer, len(m.locals))
	for i, l := range m.locals {
		models[i], toks[i] = l.Model, l.Tok
	}
	return models, toks
}

func (m *logitMethod) Name() string {
	if m.name == "single" {
		return m.locals[0].ModelName
	}
	return m.name
}

func (m *logitMethod) Level() Level { return m.level }

// Generate answers the requests: fusion, contrastive and nudging all of
// them together with every other request in flight (see the note above
// FusionParams), "single" through the model's batcher, the other methods
// one at a time in order.
func (m *logitMethod) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Response
	var err error
	switch {
	case m.cfg.Method == "single":
		out, err = m.locals[0].Generate(ctx, reqs)
		return out, err
	case slices.Contains(decode.BatchMethods, m.cfg.Method):
		out, err = m.generateBatched(ctx, reqs)
	default:
		out = make([]Response, len(reqs))
		for i, r := range reqs {
			if out[i], err = runLocal(ctx, m.locals, m.cfg, r); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	if m.ranking != "" {
		for i := range out {
			out[i].Trace = append([]Event{{Step: "rank", From: m.name, Note: m.ranking}}, out[i].Trace...)
		}
	}
	return out, nil
}

// lockstepQueue is the queue of a method's lockstep batcher: like
// localQueue, every request of every caller waits in it.
const lockstepQueue = 1 << 20

// lockstep returns the method's batcher, building it on first use.
func (m *logitMethod) lockstep() (*decode.LockstepBatcher, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.batcher == nil {
		b, err := m.newBatcher(decode.LockstepBatcherConfig{MaxQueue: lockstepQueue})
		if err != nil {
			return nil, err
		}
		m.batcher = b
	}
	return m.batcher, nil
}

func (m *logitMethod) newBatcher(cfg decode.LockstepBatcherConfig) (*decode.LockstepBatcher, error) {
	models, toks := m.models()
	mc := m.cfg
	mc.Names = make([]string, len(m.locals))
	for i, l := range m.locals {
		mc.Names[i] = l.ModelName
	}
	return decode.NewMethodBatcher(models, toks, mc, cfg)
}

// LockstepBatcher returns a new lockstep batcher running m, configured by
// cfg, and makes m.Generate answer through it from now on: a server
// generates through it directly (streaming, logprobs of the combined
// distribution) and its requests share the batch with m's other callers.
// The caller closes it (m's requests then fail with decode.ErrClosed). Only
// fusion, contrastive and nudging batch; other methods return an error.
func LockstepBatcher(m Method, cfg decode.LockstepBatcherConfig) (*decode.LockstepBatcher, error) {
	lm, ok := m.(*logitMethod)
	if !ok || !slices.Contains(decode.BatchMethods, lm.cfg.Method) || lm.cfg.Method == "single" {
		return nil, inputErrorf("%s does not run in a lockstep batch (fusion, contrastive and nudging do)", m.Name())
	}
	b, err := lm.newBatcher(cfg)
	if err != nil {
		return nil, err
	}
	lm.mu.Lock()
	lm.batcher = b
	lm.mu.Unlock()
	return b, nil
}

// generateBatched answers reqs through the method's lockstep batcher, each
// request encoded, fitted and sampled as runLocal does it; a request whose
// KV cache could never fit in a batch runs in sessions of its own.
func (m *logitMethod) generateBatched(ctx context.Context, reqs []Request) ([]Response, error) {
	b, err := m.lockstep()
	if err != nil {
		return nil, err
	}
	tok := m.locals[0].Tok
	out := make([]Response, len(reqs))
	var breqs []decode.BatchRequest
	var which, alone []int
	for i, r := range reqs {
		ids, err := encodeRequest(m.locals[0], r)
		if err != nil {
			return nil, requestErr(len(reqs), i, err)
		}
		ids, maxNew := fitPrompt(ids, b.Context(), r.MaxTokens, tok.BOS())
		if b.Fits(len(ids)+maxNew) != nil {
			alone = append(alone, i)
			continue
		}
		top := r.TopP
		if top == 0 {
			top = 1
		}
		breqs = append(breqs, decode.BatchRequest{Prompt: ids, MaxTokens: maxNew, Stop: r.Stop,
			Sampler: decode.SamplerConfig{Temperature: r.Temperature, TopP: top, Seed: r.Seed}})
		which = append(which, i)
	}
	res, errs := b.GenerateAll(ctx, breqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for k, i := range which {
		if errs[k] != nil {
			return nil, requestErr(len(reqs), i, errs[k])
		}
		n := int64(len(breqs[k].Prompt) + len(res[k].Tokens))
		rp := Response{Text: res[k].Text, PromptTokens: len(breqs[k].Prompt), CompletionTokens: len(res[k].Tokens), Finish: res[k].Finish}
		for _, l := range m.locals {
			rp.ForwardTokens += n
			rp.FLOPs += 2 * float64(l.Params) * float64(n)
		}
		out[i] = rp
	}
	for _, i := range alone {
		if out[i], err = runLocal(ctx, m.locals, m.cfg, reqs[i]); err != nil {
			return nil, requestErr(len(reqs), i, err)
		}
	}
	return out, nil
}

// requestErr names the request an error is about when there are several.
func requestErr(n, i int, err error) error {
	if n > 1 {
		return fmt.Errorf("request %d: %w", i, err)
	}
	return err
}

func newContrastive(ctx context.Context, pool []Member, p Params) (Method, error) {
	q := ContrastiveParams{Alpha: decode.DefaultContrastiveAlpha, K: decode.DefaultContrastiveK}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("contrastive: %w", err)
	}
	explicit := q.Experts != nil || q.Anti != nil
	_, kGiven := p["k"]
	_, rankGiven := p["rank"]
	switch {
	case explicit && (q.Dev != "" || kGiven || rankGiven):
		return nil, inputErrorf("contrastive: experts/anti fix the roles (proxy-tuning); dev, k and rank rank the pool for MoCo's rule: give one or the other")
	case !explicit && q.Base != 0:
		return nil, inputErrorf("contrastive: base %d needs explicit experts or anti (MoCo's rule takes the best-ranked model as the base)", q.Base)
	case q.K < 1:
		return nil, inputErrorf("contrastive: k must be at least 1, got %d", q.K)
	case !explicit && 2*q.K > len(pool):
		return nil, inputErrorf("contrastive: k %d needs at least %d models (top k and bottom k), the pool has %d", q.K, 2*q.K, len(pool))
	case q.Rank != "" && q.Rank != "accuracy" && q.Rank != "nll":
		return nil, inputErrorf("contrastive: rank must be accuracy or nll, got %q", q.Rank)
	case q.Rank != "" && q.Dev == "":
		return nil, inputErrorf("contrastive: rank needs a dev set (dev) to rank the pool on")
	}
	cfg := decode.MethodConfig{Method: "contrastive", Alpha: q.Alpha, Base: q.Base, Experts: q.Experts, Anti: q.Anti}
	if explicit {
		return newLogitMethod(ctx, LevelLogit, pool, cfg)
	}
	cfg.TopK = q.K
	var ranking string
	if q.Dev != "" {
		if _, err := Locals("contrastive", pool); err != nil {
			return nil, inputError{err}
		}
		items, err := q.DevConfig.load("contrastive")
		if err != nil {
			return nil, err
		}
		rank := q.Rank
		if rank == "" {
			rank = "accuracy"
		}
		scores, err := devRanking(ctx, pool, items, q.DevConfig, rank)
		if err != nil {
			return nil, err
		}
		order := rankOrder(scores, rank == "accuracy")
		var b strings.Builder
		for i, j := range order {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s %.4g)", pool[j].Name, rank, scores[j])
		}
		ranking = fmt.Sprintf("models by dev %s, best first: %s; top %d and bottom %d used", rank, b.String(), q.K, q.K)
		sel := append(append([]int(nil), order[:q.K]...), order[len(order)-q.K:]...)
		ranked := make([]Member, len(sel))
		for i, j := range sel {
			ranked[i] = pool[j]
		}
		pool = ranked
	}
	m, err := newLogitMethod(ctx, LevelLogit, pool, cfg)
	if err != nil {
		return nil, err
	}
	m.(*logitMethod).ranking = ranking
	return m, nil
}

// devRanking scores each pool model alone on the dev items: its accuracy,
// or the mean NLL per token of the reference answers.
func devRanking(ctx context.Context, pool []Member, items []DevItem, d DevConfig, rank string) ([]float64, error) {
	if rank == "accuracy" {
		res, err := runDev(ctx, "contrastive", pool, items, d)
		if err != nil {
			return nil, err
		}
		scores := make([]float64, len(pool))
		for m := range pool {
			scores[m] = res.Accuracy(m)
		}
		return scores, nil
	}
	ls, err := Locals("contrastive", pool)
	if err != nil {
		return nil, err
	}
	scores := make([]float64, len(pool))
	for m, l := range ls {
		sum, n := 0.0, 0
		for _, it := range items {
			if strings.TrimSpace(it.Ref) == "" {
				return nil, inputErrorf("contrastive: rank nll needs a reference answer for every dev item (item %s has none)", it.ID)
			}
			ll, k, err := l.LogLikelihood(ctx, it.Prompt, answerSep(it.Prompt, it.Ref)+it.Ref)
			if err != nil {
				return nil, fmt.Errorf("contrastive: ranking on dev: %w", err)
			}
			sum, n = sum-ll, n+k
		}
		scores[m] = sum / float64(max(n, 1))
	}
	return scores, nil
}

// answerSep is what goes between a prompt and its reference answer: a
// space ("A:" then " 42", as the models generate it) unless either side
// already has whitespace there.
func answerSep(prompt, answer string) string {
	if strings.TrimRight(prompt, " \n\t") != prompt || strings.TrimLeft(answer, " \n\t") != answer {
		return ""
	}
	return " "
}

// rankOrder returns the model indexes best first: highest score first when
// higher is better, lowest first otherwise; ties keep pool order (as
// Python's stable sort in MoCo).
func rankOrder(scores []float64, higherBetter bool) []int {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		if higherBetter {
			return scores[order[a]] > scores[order[b]]
		}
		return scores[order[a]] < scores[order[b]]
	})
	return order
}

// TokenScorer is a method that scores given tokens under its combined
// next-token distribution, for perplexity and NLL evaluation: the
// logit-level methods that combine the models' distributions at every
// position (single, fusion, contrastive), built through the registry
// with the same parameters (and contrastive's dev ranking) as for
// generation. CanScore says whether a method can.
type TokenScorer interface {
	Method
	// Tokenizer is the tokenizer the tokens are in (the first model's).
	Tokenizer() *tokenizer.Tokenizer
	// ContextSize is the smallest context of the models.
	ContextSize() int
	// NLLFrom returns the summed negative log-likelihood of ids[from:],
	// each given its prefix (from >= 1), and the number of tokens scored.
	NLLFrom(ctx context.Context, ids []int, from int) (float64, int, error)
}

// CanScore reports whether m scores tokens (see TokenScorer), and if not
// why not.
func CanScore(m Method) (TokenScorer, error) {
	lm, ok := m.(*logitMethod)
	if !ok {
		return nil, inputErrorf("%s generates text; only single, fusion and contrastive score given tokens (they combine the models' distributions at every position)", m.Name())
	}
	switch lm.cfg.Method {
	case "single", "fusion", "contrastive":
		return lm, nil
	}
	return nil, inputErrorf("%s decides token by token from what it generated itself (who writes, when to defer), so it gives no distribution over given tokens to score; single, fusion and contrastive do", lm.cfg.Method)
}

// Tokenizer is the first model's tokenizer.
func (m *logitMethod) Tokenizer() *tokenizer.Tokenizer { return m.locals[0].Tok }

// ContextSize is the smallest context of the models.
func (m *logitMethod) ContextSize() int {
	n := m.locals[0].Model.ContextSize()
	for _, l := range m.locals[1:] {
		n = min(n, l.Model.ContextSize())
	}
	return n
}

// NLLFrom scores ids[from:] under the method's combined distribution,
// with fresh sessions (safe for concurrent use).
func (m *logitMethod) NLLFrom(ctx context.Context, ids []int, from int) (float64, int, error) {
	models, toks := m.models()
	cfg := m.cfg
	cfg.Sampler = decode.SamplerConfig{}
	cfg.MaxTokens = 1
	c, err := decode.NewMethod(models, toks, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", m.name, err)
	}
	if c.Lockstep == nil {
		return 0, 0, fmt.Errorf("%s: no per-position combination to score with", m.name)
	}
	return decode.NLLFromContext(ctx, c.Lockstep.Sessions, c.Lockstep.Combiner, c.Vocab, ids, from)
}

// LogLikelihood scores continuation after prompt under the method's
// combined next-token distribution (NLLFrom): the sum of the
// log-probabilities of the continuation's tokens and their count, as
// Local.LogLikelihood does for one model; for the methods CanScore
// accepts (single, fusion, contrastive), an error for the others.
func (m *logitMethod) LogLikelihood(ctx context.Context, prompt, continuation string) (float64, int, error) {
	if _, err := CanScore(m); err != nil {
		return 0, 0, err
	}
	tok := m.Tokenizer()
	p, err := tok.Encode(prompt, true)
	if err != nil {
		return 0, 0, err
	}
	cont, err := tok.Encode(continuation, false)
	if err != nil {
		return 0, 0, err
	}
	if len(cont) == 0 {
		return 0, 0, nil
	}
	if len(p) == 0 {
		return 0, 0, fmt.Errorf("%s: scoring needs a non-empty prompt", m.name)
	}
	nll, n, err := m.NLLFrom(ctx, append(p, cont...), len(p))
	if err != nil {
		return 0, 0, err
	}
	return -nll, n, nil
}

// remoteSingle is "single" over a member that is not a local model (an
// OpenAI-compatible endpoint): the member's answers as they are.
type remoteSingle struct{ m Member }

func (r remoteSingle) Name() string { return r.m.Name }
func (r remoteSingle) Level() Level { return LevelSingle }
func (r remoteSingle) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	return r.m.Gen.Generate(ctx, reqs)
}
