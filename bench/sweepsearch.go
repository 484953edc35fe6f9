package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/merge"
	"github.com/mocolab/moco/tokenizer"
)

// The dev-scored weight searches of package merge (`moco search`) as
// collab methods, so a sweep (and anything else that reads the registry)
// runs them like any other method. They live here, not in collab, because
// scoring a candidate on dev is this package's job (DevScorer), and bench
// sits above collab. Each is built from the pool's model folders and the
// dev split named by its "dev" parameter (a sweep fills it in per
// dataset): it runs the search, keeps the winning weights in memory and
// answers with them.
//
//	greedy-soup:      MoCo's weight_greedy_soup (Wortsman et al. 2022)
//	model-swarms:     Model Swarms (Feng et al. 2024), particles in weight space
//	expo-search:      ExPO, worst to best on dev by default, alpha chosen on dev
//	dare-ties-search: DARE-TIES weights searched by particle swarm (MoCo's optimized mode); needs base
//	lorahub:          LoraHub over the pool's LoRA adapters and their base (base: the base's pool name)
//
// Parameters: dev, dev_n (a seeded stratified sample of the dev items per
// candidate; 0 all), dev_max_tokens (default 32, as `moco search`),
// metric (accuracy or nll), seed, and the method's own: base, alphas,
// expo_mode, k, density, particles, iterations, extra_particles, budget,
// optimizer. dev_stop and dev_temperature are accepted for the sweep's
// sake and unused: candidates are scored greedily, as `moco search` does.
type SearchParams struct {
	collab.DevConfig
	Metric         string    `json:"metric"`
	Seed           uint64    `json:"seed"`
	Base           string    `json:"base"`
	Alphas         []float64 `json:"alphas"`
	ExPOMode       string    `json:"expo_mode"`
	K              int       `json:"k"`
	Density        float64   `json:"density"`
	Particles      int       `json:"particles"`
	Iterations     int       `json:"iterations"`
	ExtraParticles int       `json:"extra_particles"`
	Budget         int       `json:"budget"`
	Optimizer      string    `json:"optimizer"`
	// CacheDir is accepted as the merges' is, and unused: the chosen
	// weights stay in memory.
	CacheDir string `json:"cache_dir"`
}

func init() {
	reg := func(name string, min int, summary string) {
		collab.Register(collab.Spec{Name: name, Level: collab.LevelWeight, MinModels: min, Dev: true, Summary: summary,
			New: func(ctx context.Context, pool []collab.Member, p collab.Params) (collab.Method, error) {
				return newSearchMethod(ctx, name, pool, p)
			}})
	}
	reg("greedy-soup", 2, "add models to a uniform soup, best dev score first, while dev accuracy does not drop")
	reg("model-swarms", 2, "particle swarm over whole models' weights, scored on dev")
	reg("expo-search", 2, "extrapolate the best dev model away from the worst, alpha chosen on dev")
	reg("dare-ties-search", 2, "DARE-TIES merge weights searched by particle swarm on dev (needs base)")
	reg("lorahub", 2, "LoraHub: weights over LoRA adapters searched gradient-free on dev (needs base)")
}

// adapterDirs maps the models a sweep loaded from LoRA adapter folders to
// those folders, for lorahub.
var adapterDirs sync.Map // *collab.Local -> string

// searchMethod answers with the weights a search chose.
type searchMethod struct {
	name   string
	local  *collab.Local
	closes []func() error
}

func (s *searchMethod) Name() string        { return s.name }
func (s *searchMethod) Level() collab.Level { return collab.LevelWeight }
func (s *searchMethod) Generate(ctx context.Context, reqs []collab.Request) ([]collab.Response, error) {
	out, err := s.local.Generate(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return out, nil
}

// LogLikelihood scores continuation after prompt under the chosen model.
func (s *searchMethod) LogLikelihood(ctx context.Context, prompt, continuation string) (float64, int, error) {
	return s.local.LogLikelihood(ctx, prompt, continuation)
}

// Close releases the chosen model and the inputs it may still read.
func (s *searchMethod) Close() error {
	var errs []error
	errs = append(errs, s.local.Close())
	for i := len(s.closes) - 1; i >= 0; i-- {
		errs = append(errs, s.closes[i]())
	}
	return errors.Join(errs...)
}

func newSearchMethod(ctx context.Context, name string, pool []collab.Member, p collab.Params) (m collab.Method, err error) {
	q := SearchParams{Metric: MetricAccuracy, ExPOMode: string(merge.ExPOWorstToBest), K: 1, Alphas: []float64{0.3}, Density: 0.5}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if q.Dev == "" {
		return nil, fmt.Errorf("%s searches on a dev set: give the dev parameter (a MoCo-format dataset file)", name)
	}
	ds, err := LoadDataset(q.Dev)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	maxNew := q.DevMaxTokens
	if maxNew <= 0 {
		maxNew = 32
	}
	sm := &searchMethod{name: name}
	defer func() {
		if err != nil {
			for i := len(sm.closes) - 1; i >= 0; i-- {
				sm.closes[i]()
			}
		}
	}()
	var base *collab.Member
	var ins []merge.Input
	var adapters []*merge.Adapter
	for i := range pool {
		mb := &pool[i]
		if q.Base != "" && mb.Name == q.Base {
			base = mb
			continue
		}
		if name == "lorahub" {
			l, _ := mb.Local.(*collab.Local)
			dir, ok := adapterDirs.Load(l)
			if !ok || l == nil {
				return nil, fmt.Errorf("lorahub: %s is not a LoRA adapter folder", mb.Name)
			}
			a, err := merge.LoadAdapter(dir.(string))
			if err != nil {
				return nil, fmt.Errorf("lorahub: %w", err)
			}
			adapters = append(adapters, a)
			continue
		}
		if mb.Dir == "" {
			return nil, fmt.Errorf("%s searches over weights: %s is not a local model folder", name, mb.Name)
		}
		in, err := merge.OpenModel(mb.Dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		in.Name = mb.Name
		sm.closes = append(sm.closes, in.Src.Close)
		ins = append(ins, in)
	}
	if q.Base != "" && base == nil {
		return nil, fmt.Errorf("%s: base %q is not a model of the pool", name, q.Base)
	}
	if (name == "lorahub" || name == "dare-ties-search") && base == nil {
		return nil, fmt.Errorf("%s needs base: the pool member that is the base model", name)
	}
	ref := ""
	if base != nil {
		ref = base.Dir
	} else if len(ins) > 0 {
		ref = pool[0].Dir
	}
	if ref == "" {
		return nil, fmt.Errorf("%s: the base must be a local model folder", name)
	}
	cfg, err := engine.LoadConfig(ref)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(ref)
	if err != nil {
		return nil, err
	}
	o := NLLOptions{Options: Options{N: q.DevN, Seed: q.Seed}, AnswerPrefix: " ", AppendEOS: true}
	score := merge.Scorer(DevScorer(ctx, cfg, tok, ds, "dev", q.Metric, o, maxNew))
	var res *merge.Result
	switch name {
	case "greedy-soup":
		res, err = merge.GreedySoup(ctx, ins, score, nil)
	case "model-swarms":
		res, err = merge.ModelSwarms(ctx, ins, merge.SwarmOptions{MaxIterations: q.Iterations, ExtraParticles: q.ExtraParticles, Seed: q.Seed}, score, nil)
	case "expo-search":
		res, err = merge.ExPO(ctx, ins, merge.ExPOMode(q.ExPOMode), q.K, q.Alphas, score, nil)
	case "dare-ties-search", "lorahub":
		b, err2 := merge.OpenModel(base.Dir)
		if err2 != nil {
			return nil, err2
		}
		sm.closes = append(sm.closes, b.Src.Close)
		if name == "lorahub" {
			res, err = merge.LoraHub(ctx, b.Src, adapters, merge.LoraHubOptions{Budget: q.Budget, Seed: q.Seed, Optimizer: q.Optimizer}, score, nil)
		} else {
			res, err = merge.DareTiesSearch(ctx, b, ins, merge.PSOOptions{Particles: q.Particles, Iterations: q.Iterations, Seed: q.Seed, Density: q.Density}, score, nil)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	em, err := engine.New(cfg, res.Src, engine.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	isInput := false
	for _, in := range ins {
		isInput = isInput || in.Src == res.Src
	}
	if !isInput {
		sm.closes = append(sm.closes, res.Src.Close)
	}
	sm.local = collab.NewLocal(name, "", em, tok)
	return sm, nil
}
