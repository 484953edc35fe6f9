package collab

import (
	"context"
	"fmt"
	"strings"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
)

// SwitchParams configures switch generation (#3, MoCo's
// api_switch_generation): the response is written in patches of
// PatchTokens tokens, and before each patch a selector picks which pool
// model writes it, seeing the prompt and the response so far.
//
// MoCo's selector is an LLM fine-tuned on rollouts scored by a reward
// model. Here, like Co-LLM's deferral head, the selector is a small MLP
// trained in Go on the encoder's mean-pooled hidden state of "prompt +
// response so far". Its training targets come from the dev set: every
// correct dev answer of any pool model is cut into patches, and at each
// patch boundary the target is the softmax over the pool models of the
// log-likelihood each gives the next patch (the posterior that this model
// wrote it, under a uniform prior). Scoring needs models loaded in this
// process. Patches are joined as text and re-encoded, so a token split
// across a patch boundary may be encoded differently than one model alone
// would have.
type SwitchParams struct {
	PatchTokens int `json:"patch_tokens"` // default 25 (MoCo's patch_size)
	DevConfig
	EncoderConfig
	Hidden int     `json:"hidden"` // selector hidden units (default 32; -1: linear)
	Epochs int     `json:"epochs"` // default 300
	LR     float64 `json:"lr"`     // default 0.01
	L2     float64 `json:"l2"`     // default: chosen by 2-fold CV on dev, as the trained router's
	Seed   uint64  `json:"seed"`
}

func init() {
	Register(Spec{Name: "switch-generation", Level: LevelAPI, MinModels: 2, Dev: true,
		Summary: "a trained selector picks which model writes each next patch of the answer",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			return NewSwitch(ctx, pool, p)
		}})
}

// Switch is switch generation over a pool.
type Switch struct {
	pool   []Member
	patch  int
	choose func(ctx context.Context, text string) (int, []float64, error)
	render func(r Request) (string, error)
}

func (s *Switch) Name() string { return "switch-generation" }
func (s *Switch) Level() Level { return LevelAPI }

// NewSwitch trains the selector on the dev set.
func NewSwitch(ctx context.Context, pool []Member, p Params) (*Switch, error) {
	q := SwitchParams{PatchTokens: 25}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("switch-generation: %w", err)
	}
	if q.PatchTokens < 1 {
		return nil, inputErrorf("switch-generation: patch_tokens must be at least 1, got %d", q.PatchTokens)
	}
	scorers := make([]Scorer, len(pool))
	for i, m := range pool {
		sc, ok := m.Gen.(Scorer)
		if !ok {
			return nil, inputErrorf("switch-generation trains its selector on the models' likelihoods: %s cannot score text (use models loaded in this process)", m.Name)
		}
		scorers[i] = sc
	}
	ls, err := Locals("switch-generation", pool)
	if err != nil {
		return nil, err
	}
	tok := ls[0].Tok
	items, err := q.DevConfig.load("switch-generation")
	if err != nil {
		return nil, err
	}
	enc, encName, err := q.EncoderConfig.resolve("switch-generation", pool, engine.Options{})
	if err != nil {
		return nil, err
	}
	res, err := runDev(ctx, "switch-generation", pool, items, q.DevConfig)
	if err != nil {
		return nil, err
	}
	var texts []string
	var ys [][]float64
	for i, it := range items {
		seen := map[string]bool{}
		for m := range pool {
			ans := res.Texts[m][i]
			if !res.Correct[m][i] || seen[ans] {
				continue
			}
			seen[ans] = true
			ids, err := tok.Encode(ans, false)
			if err != nil {
				return nil, err
			}
			for b := 0; b < len(ids); b += q.PatchTokens {
				prefix := tok.Decode(ids[:b], false)
				next := tok.Decode(ids[b:min(b+q.PatchTokens, len(ids))], false)
				ll := make([]float64, len(pool))
				for k, sc := range scorers {
					if ll[k], _, err = sc.LogLikelihood(ctx, it.Prompt+prefix, next); err != nil {
						return nil, fmt.Errorf("switch-generation: scoring a dev patch with %s: %w", pool[k].Name, err)
					}
				}
				texts = append(texts, it.Prompt+prefix)
				ys = append(ys, softmax64(ll))
			}
		}
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("switch-generation: no pool model answered any of the %d dev items correctly, so there is nothing to learn", len(items))
	}
	xs, err := enc.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("switch-generation: embedding with %s: %w", encName, err)
	}
	cfg := MLPConfig{Hidden: q.Hidden, Linear: q.Hidden < 0, Epochs: q.Epochs, LR: q.LR, L2: q.L2, Seed: q.Seed}
	if cfg.L2 == 0 {
		cfg.L2 = chooseL2(xs, ys, cfg)
	}
	sel, _, err := TrainClassifier(xs, ys, cfg)
	if err != nil {
		return nil, fmt.Errorf("switch-generation: %w", err)
	}
	s := &Switch{pool: pool, patch: q.PatchTokens}
	s.choose = func(ctx context.Context, text string) (int, []float64, error) {
		e, err := enc.Embed(ctx, []string{text})
		if err != nil {
			return 0, nil, err
		}
		p := softmax64(sel.Output(e[0]))
		return argmax64(p), p, nil
	}
	s.render = func(r Request) (string, error) {
		if len(r.Messages) == 0 {
			return r.Prompt, nil
		}
		return RenderMessages(tok, r.Messages)
	}
	return s, nil
}

// Generate writes each answer patch by patch.
func (s *Switch) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		x := newExchange(ctx, "switch-generation", s.pool, r)
		prompt, err := s.render(r)
		if err != nil {
			return nil, err
		}
		limit := r.MaxTokens
		if limit <= 0 {
			limit = 512
		}
		var sofar strings.Builder
		written := 0
		finish := decode.FinishLength // unless a patch ends the answer
		for round := 1; written < limit; round++ {
			m, p, err := s.choose(ctx, prompt+sofar.String())
			if err != nil {
				return nil, fmt.Errorf("switch-generation: selecting: %w", err)
			}
			x.note(round, "select", "selector", s.pool[m].Name, fmtProbs(s.pool, p))
			sub := r
			sub.Messages = nil
			sub.Prompt = prompt + sofar.String()
			sub.MaxTokens = min(s.patch, limit-written)
			x.req = sub
			txt, err := x.ask(round, "patch", []call{{Member: m, Orig: true}})
			if err != nil {
				return nil, err
			}
			sofar.WriteString(txt[0])
			n := x.lastCompletion()
			written += max(n, 1)
			if n < sub.MaxTokens || txt[0] == "" || cutStop(&sofar, r.Stop) {
				finish = decode.FinishStop
				break
			}
		}
		out[i] = x.finish(sofar.String())
		out[i].Finish = finish
	}
	return out, nil
}

// cutStop cuts b at the first stop string and reports whether it found one.
func cutStop(b *strings.Builder, stops []string) bool {
	s := b.String()
	cut := -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return false
	}
	b.Reset()
	b.WriteString(s[:cut])
	return true
}
