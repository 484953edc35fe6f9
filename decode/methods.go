package decode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// Methods lists the collaboration methods NewMethod builds, in the CLI's
// order; "single" is plain generation with the first model.
var Methods = []string{"single", "fusion", "contrastive", "nudging", "cascade", "co-llm", "mentor", "speculative"}

// methodMinModels is how many models each of Methods needs at least.
var methodMinModels = map[string]int{"single": 1, "fusion": 1, "contrastive": 2, "nudging": 2, "cascade": 1, "co-llm": 2, "mentor": 2, "speculative": 2}

// MethodConfig configures NewMethod. Zero values mean the defaults named
// on each field; the thresholds where 0 is a meaningful setting (Gamma,
// Threshold, Quantile, Share) are pointers, nil for the default, so that
// new(0.0) asks for 0.
type MethodConfig struct {
	Method    string
	Sampler   SamplerConfig
	MaxTokens int // 0: up to the context
	Stop      []string
	Chat      bool
	Trace     func(TraceStep)
	Names     []string // model names for error messages

	// Fusion: Mode "logit-mean" (default) or "prob-mean"; Weights per model.
	Mode    string
	Weights []float64
	// Contrastive: base + Alpha*(experts - anti). With Experts and Anti
	// both nil the models are read as ranked best first and MoCo's rule
	// applies (MoCoContrastive with TopK, default 1); explicit Experts and
	// Anti (and Base, default model 0) give proxy-tuning's form.
	Alpha         float64
	Base          int
	Experts, Anti []int
	TopK          int
	// Nudging: Gamma (nil: DefaultGamma); model 0 is the base, 1 the nudger.
	Gamma *float64
	// Co-LLM (model 0 base, 1 assistant) and mentor (0 generator, 1 mentor).
	Head      *Head
	Threshold *float64 // nil: DefaultThreshold
	WarmUp    int
	CoLLMMode string // "defer" (default) or "compose"
	// Cascade: Thresholds per level but the last, or DevPrompts to
	// calibrate them at Quantile (nil: DefaultQuantile).
	Thresholds []float64
	DevPrompts []string
	Quantile   *float64
	// Speculative: model 0 is the target, 1 the draft.
	DraftTokens int
	// Mentor: Share of word starts checked (nil: DefaultMentorShare),
	// PatchLen (16).
	Share    *float64
	PatchLen int
}

// orDefault is *p, or def when p is nil.
func orDefault(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// Collab is a ready-to-run method over loaded models: Generate streams
// text, Func adapts it for evaluation harnesses. It owns one session per
// model and is not safe for concurrent use; build one per goroutine.
type Collab struct {
	*Generator
	Models   []*engine.Model
	Sessions []Session
	Vocab    int
	EOS      []int

	// The method's loop, one of these set.
	Lockstep    *Lockstep
	Speculative *Speculative
	Cascade     *Cascade
	Mentor      *Mentor

	limit int // smallest context among the models
}

// NewMethod checks the models' vocabularies and builds cfg.Method over
// them. Every model must come with its tokenizer.
func NewMethod(models []*engine.Model, toks []*tokenizer.Tokenizer, cfg MethodConfig) (*Collab, error) {
	return NewMethodContext(context.Background(), models, toks, cfg)
}

// NewMethodContext is NewMethod, stopping with ctx's error when ctx is
// done while a cascade calibrates on cfg.DevPrompts.
func NewMethodContext(ctx context.Context, models []*engine.Model, toks []*tokenizer.Tokenizer, cfg MethodConfig) (*Collab, error) {
	vocab, err := SharedVocab(models, toks, cfg.Names)
	if err != nil {
		return nil, err
	}
	atLeast, ok := methodMinModels[cfg.Method]
	if !ok {
		return nil, fmt.Errorf("unknown method %q (want one of %v)", cfg.Method, Methods)
	}
	if len(models) < atLeast {
		return nil, fmt.Errorf("%s needs at least %d models, got %d", cfg.Method, atLeast, len(models))
	}
	sampler, err := NewSampler(cfg.Sampler)
	if err != nil {
		return nil, err
	}
	c := &Collab{Models: models, Vocab: vocab, EOS: EOSIDs(toks[0], models...), limit: 1 << 30}
	for _, m := range models {
		c.Sessions = append(c.Sessions, m.NewSession(0))
		c.limit = min(c.limit, contextLimit(m))
	}
	tok := toks[0]
	text := func(id int) string { return tok.Decode([]int{id}, false) }
	ls := &Lockstep{Sessions: c.Sessions, Sampler: sampler, Vocab: vocab, EOS: c.EOS, Trace: cfg.Trace, TokenText: text}
	margin := 0
	var run RunFunc
	switch cfg.Method {
	case "single", "fusion", "contrastive", "nudging", "co-llm":
		newComb, err := methodCombiner(models, tok, cfg)
		if err != nil {
			return nil, err
		}
		if newComb != nil {
			ls.Combiner = newComb()
		}
		if cfg.Method == "single" {
			ls.Sessions = c.Sessions[:1]
		}
	case "speculative":
		k := cfg.DraftTokens
		if k <= 0 {
			k = DefaultDraftTokens
		}
		// No margin: Speculative drafts no further than its MaxTokens, so
		// its look-ahead stays within the prompt and MaxTokens.
		c.Speculative = &Speculative{Target: c.Sessions[0], Draft: c.Sessions[1], Sampler: sampler, K: k, Vocab: vocab, EOS: c.EOS, Trace: cfg.Trace}
		run = c.Speculative.RunContext
	case "mentor":
		share := orDefault(cfg.Share, DefaultMentorShare)
		if share < 0 || share > 1 {
			return nil, fmt.Errorf("mentor: share %v outside [0, 1]", share)
		}
		c.Mentor = &Mentor{Generator: c.Sessions[0], Mentor: c.Sessions[1], Sampler: sampler, Share: share, Seed: cfg.Sampler.Seed,
			PatchLen: cfg.PatchLen, WordStart: WordStarts(tok), Head: cfg.Head, HeadThreshold: orDefault(cfg.Threshold, DefaultThreshold),
			Vocab: vocab, EOS: c.EOS, Trace: cfg.Trace}
		if cfg.Head == nil {
			c.Mentor.Choose = promptChooser(tok, models[0].NewSession(0), contextLimit(models[0]))
		}
		margin = c.Mentor.PatchLen
		if margin <= 0 {
			margin = DefaultPatchLen
		}
		run = c.Mentor.RunContext
	case "cascade":
		c.Cascade = &Cascade{Sessions: c.Sessions, Thresholds: cfg.Thresholds, Sampler: sampler, Vocab: vocab, EOS: c.EOS, Trace: cfg.Trace}
		run = func(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error) {
			res, err := c.Cascade.RunContext(ctx, prompt)
			src := fmt.Sprintf("level %d", res.Level)
			for i, t := range res.Tokens {
				if emit != nil && !emit(Token{ID: t, Source: src, logProb: res.LogProbs[i]}) {
					break
				}
			}
			return res.Tokens, err
		}
	}
	if run == nil {
		c.Lockstep = ls
		run = ls.RunContext
	}
	c.Generator = &Generator{Tok: tok, Stop: cfg.Stop, Chat: cfg.Chat, ModelConfig: models[0].Config, Run: c.bounded(run, cfg.MaxTokens, margin)}
	// A cascade of one model has no threshold to calibrate.
	if c.Cascade != nil && cfg.Thresholds == nil && len(models) > 1 {
		if len(cfg.DevPrompts) == 0 {
			return nil, errors.New("cascade needs thresholds or dev prompts to calibrate them on")
		}
		var dev [][]int
		for _, p := range cfg.DevPrompts {
			ids, err := c.Encode(p)
			if err != nil {
				return nil, err
			}
			dev = append(dev, ids)
		}
		c.setMax(cfg.MaxTokens, 0, dev)
		if err := c.Cascade.CalibrateContext(ctx, dev, orDefault(cfg.Quantile, DefaultQuantile)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// bounded caps each run's tokens so the prompt, the continuation and the
// method's look-ahead fit in every model's context.
func (c *Collab) bounded(run RunFunc, maxTokens, margin int) RunFunc {
	return func(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error) {
		room := c.limit - len(prompt) - margin
		if room <= 0 {
			return nil, fmt.Errorf("%w: the prompt has %d tokens, which fills the context size of %d positions", engine.ErrContextFull, len(prompt), c.limit)
		}
		n := room
		if maxTokens > 0 {
			n = min(maxTokens, room)
		}
		c.setMaxN(n)
		return run(ctx, prompt, emit)
	}
}

func (c *Collab) setMaxN(n int) {
	switch {
	case c.Lockstep != nil:
		c.Lockstep.MaxTokens = n
	case c.Speculative != nil:
		c.Speculative.MaxTokens = n
	case c.Mentor != nil:
		c.Mentor.MaxTokens = n
	case c.Cascade != nil:
		c.Cascade.MaxTokens = n
	}
}

func (c *Collab) setMax(maxTokens, margin int, prompts [][]int) {
	longest := 0
	for _, p := range prompts {
		longest = max(longest, len(p))
	}
	n := c.limit - longest - margin
	if maxTokens > 0 {
		n = min(n, maxTokens)
	}
	c.setMaxN(max(n, 1))
}

// promptChooser asks the generator MoCo's question (MentorQuestion after
// the history, then both options) and keeps the mentor's patch when the
// generator's most likely next token is "B", as MoCo's free mode does.
func promptChooser(tok *tokenizer.Tokenizer, s Session, limit int) func(hist, a, b []int) (bool, error) {
	return func(hist, a, b []int) (bool, error) {
		q := tok.Decode(hist, true) + MentorQuestion + tok.Decode(a, true) +
			", Option (B): " + tok.Decode(b, true) + ". My choice: Option ("
		ids, err := tok.Encode(q, true)
		if err != nil {
			return false, err
		}
		if len(ids) > limit { // keep the first token (BOS) and the end
			ids = append(ids[:1], ids[len(ids)-limit+1:]...)
		}
		s.Reset()
		lg, err := s.Forward(ids)
		if err != nil {
			return false, fmt.Errorf("mentor choice: %w", err)
		}
		lg = lg[:min(len(lg), tok.VocabSize())]
		return strings.TrimSpace(tok.Decode([]int{Argmax(lg)}, true)) == "B", nil
	}
}

// BatchMethods are the methods of Methods that NewMethodBatcher runs over
// many prompts at once: the lockstep ones whose combiner reads only the
// models' logits. Co-LLM reads hidden states, and speculative decoding,
// mentor and cascade rewind, patch or restart per prompt, so they run one
// prompt at a time (NewMethod).
var BatchMethods = []string{"single", "fusion", "contrastive", "nudging"}

// NewMethodBatcher builds cfg.Method, one of BatchMethods, over the models
// as a LockstepBatcher: every prompt gets the combiner NewMethod would
// build (one each) and its own sampler, so each request's tokens and text
// equal what NewMethod's Collab generates for it alone with the request's
// sampler, MaxTokens and Stop. cfg's Sampler, MaxTokens, Stop, Chat and
// Trace are per request here and ignored.
func NewMethodBatcher(models []*engine.Model, toks []*tokenizer.Tokenizer, cfg MethodConfig, bcfg LockstepBatcherConfig) (*LockstepBatcher, error) {
	if !slices.Contains(BatchMethods, cfg.Method) {
		return nil, fmt.Errorf("%s does not run in a lockstep batch (batched methods: %v)", cfg.Method, BatchMethods)
	}
	vocab, err := SharedVocab(models, toks, cfg.Names)
	if err != nil {
		return nil, err
	}
	if atLeast := methodMinModels[cfg.Method]; len(models) < atLeast {
		return nil, fmt.Errorf("%s needs at least %d models, got %d", cfg.Method, atLeast, len(models))
	}
	newComb, err := methodCombiner(models, toks[0], cfg)
	if err != nil {
		return nil, err
	}
	if bcfg.EOS == nil {
		bcfg.EOS = EOSIDs(toks[0], models...)
	}
	bcfg.Vocab = vocab
	if cfg.Method == "single" {
		models = models[:1]
	}
	return NewLockstepBatcher(models, toks[0], newComb, bcfg)
}

// methodCombiner returns the maker of cfg.Method's combiner (nil for
// single), checking its parameters once.
func methodCombiner(models []*engine.Model, tok *tokenizer.Tokenizer, cfg MethodConfig) (func() Combiner, error) {
	switch cfg.Method {
	case "single":
		return nil, nil
	case "fusion":
		mode, err := ParseFusionMode(cfg.Mode)
		if err != nil {
			return nil, err
		}
		if cfg.Weights != nil {
			if _, err := normWeights(cfg.Weights, len(models)); err != nil {
				return nil, err
			}
		}
		w := slices.Clone(cfg.Weights)
		return func() Combiner { return &Fusion{Mode: mode, Weights: w} }, nil
	case "contrastive":
		ct := &Contrastive{Base: cfg.Base, Experts: cfg.Experts, Anti: cfg.Anti, Alpha: cfg.Alpha}
		if ct.Experts == nil && ct.Anti == nil {
			if cfg.Base != 0 {
				return nil, errors.New("contrastive: a base other than model 0 needs explicit experts or anti-experts")
			}
			k := cfg.TopK
			if k == 0 {
				k = DefaultContrastiveK
			}
			var err error
			if ct, err = MoCoContrastive(len(models), k, cfg.Alpha); err != nil {
				return nil, err
			}
		}
		// Contrastive keeps no state: the prompts share one.
		return func() Combiner { return ct }, nil
	case "nudging":
		ws, gamma := WordStarts(tok), orDefault(cfg.Gamma, DefaultGamma)
		return func() Combiner { return &Nudging{Base: 0, Nudger: 1, Gamma: gamma, WordStart: ws} }, nil
	case "co-llm":
		if cfg.Head == nil {
			return nil, errors.New("co-llm needs a deferral head (--head FILE; train one with 'moco collab train-head')")
		}
		mode, err := ParseCoLLMMode(cfg.CoLLMMode)
		if err != nil {
			return nil, err
		}
		if h := models[0].Config.HiddenSize; h != len(cfg.Head.W) {
			return nil, fmt.Errorf("the deferral head has %d inputs but the base model's hidden size is %d", len(cfg.Head.W), h)
		}
		thr := orDefault(cfg.Threshold, DefaultThreshold)
		return func() Combiner {
			return &CoLLM{Base: 0, Assistant: 1, Head: cfg.Head, Mode: mode, Threshold: thr, WarmUp: cfg.WarmUp}
		}, nil
	}
	return nil, fmt.Errorf("unknown method %q (want one of %v)", cfg.Method, Methods)
}
