package collab

import (
	"context"
	"fmt"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// The logit-level methods and "single" are decode's token loops
// (decode.NewMethod) over models loaded in this process. Each request
// builds the loop afresh with the request's sampling settings, so the
// method is safe for concurrent use: every request has its own sessions
// over the shared weights. Their parameters are the decode package's, with
// its defaults; see LogitParams.

// FusionParams: the models' next-token distributions averaged.
type FusionParams struct {
	// Mode is "logit-mean" (default) or "prob-mean".
	Mode string `json:"mode"`
	// Weights, one per model (default uniform).
	Weights []float64 `json:"weights"`
}

// ContrastiveParams: base + Alpha*(experts - anti-experts). With two
// models and no indexes: model 0 minus Alpha times model 1.
type ContrastiveParams struct {
	Alpha   float64 `json:"alpha"` // default 0.2 (1 is proxy-tuning)
	Base    int     `json:"base"`
	Experts []int   `json:"experts"`
	Anti    []int   `json:"anti"`
}

// NudgingParams: model 0 is the base, model 1 the nudger, which writes a
// word whenever the base's top-1 probability is below Gamma.
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
	one("contrastive", "base + alpha*(experts - anti-experts), proxy-tuning at alpha 1", 2, 0, func(p Params) (decode.MethodConfig, error) {
		q := ContrastiveParams{Alpha: 0.2}
		err := p.Decode(&q)
		return decode.MethodConfig{Alpha: q.Alpha, Base: q.Base, Experts: q.Experts, Anti: q.Anti}, err
	})
	one("nudging", "a nudger writes a word when the base is unsure", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := NudgingParams{Gamma: decode.DefaultGamma}
		err := p.Decode(&q)
		return decode.MethodConfig{Gamma: q.Gamma}, err
	})
	one("cascade", "weak to strong by confidence thresholds", 1, 0, func(p Params) (decode.MethodConfig, error) {
		q := CascadeParams{Quantile: decode.DefaultQuantile}
		err := p.Decode(&q)
		return decode.MethodConfig{Thresholds: q.Thresholds, DevPrompts: q.DevPrompts, Quantile: q.Quantile}, err
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
		return decode.MethodConfig{Head: h, Threshold: q.Threshold, WarmUp: q.WarmUp, CoLLMMode: q.Mode}, err
	})
	one("mentor", "a mentor drafts patches where the generator's next word differs", 2, 2, func(p Params) (decode.MethodConfig, error) {
		q := MentorParams{Share: decode.DefaultMentorShare, PatchTokens: decode.DefaultPatchLen}
		if err := p.Decode(&q); err != nil {
			return decode.MethodConfig{}, err
		}
		cfg := decode.MethodConfig{Share: q.Share, PatchLen: q.PatchTokens}
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
	name   string
	level  Level
	locals []*Local
	cfg    decode.MethodConfig // read-only after construction
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
	c, err := decode.NewMethod(models, toks, probe)
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

// Generate answers each request in order with the method's token loop.
func (m *logitMethod) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		res, err := runLocal(ctx, m.locals, m.cfg, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		out[i] = res
	}
	return out, nil
}
