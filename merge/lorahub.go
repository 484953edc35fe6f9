package merge

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mocolab/moco/safetensors"
)

// LoraHubOptions configures LoraHub's gradient-free weight search.
type LoraHubOptions struct {
	Budget int     // candidates scored (default 40)
	Lambda int     // offspring per generation of the (1+lambda)-ES (default 4)
	Sigma  float64 // initial mutation scale (default 0.5)
	L1     float64 // penalty on mean |w| (default 0.05)
	Bound  float64 // weights are clipped to [-Bound, Bound] (default 1.5)
	Seed   uint64
}

// LoraHub composes adapters as sum w_i A_i, sum w_i B_i and searches w with
// a (1+lambda) evolution strategy (one-fifth success rule for the step)
// that minimizes loss + L1*mean|w|, where loss = -score (score is higher
// is better, e.g. minus the dev NLL). The search starts at uniform weights.
func LoraHub(ctx context.Context, base safetensors.Source, adapters []*Adapter, o LoraHubOptions, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	if len(adapters) == 0 {
		return nil, fmt.Errorf("lorahub: no adapters")
	}
	if o.Budget <= 0 {
		o.Budget = 40
	}
	if o.Lambda <= 0 {
		o.Lambda = 4
	}
	if o.Sigma <= 0 {
		o.Sigma = 0.5
	}
	if o.L1 == 0 {
		o.L1 = 0.05
	}
	if o.Bound <= 0 {
		o.Bound = 1.5
	}
	k := len(adapters)
	res := &Result{}
	objective := func(w []float64) (float64, float64, safetensors.Source, error) {
		src, err := ApplyLoRA(base, adapters, w)
		if err != nil {
			return 0, 0, nil, err
		}
		s, err := score(src)
		if err != nil {
			return 0, 0, nil, err
		}
		res.Evals++
		var l1 float64
		for _, v := range w {
			l1 += math.Abs(v)
		}
		obj := -s + o.L1*l1/float64(k)
		log.printf("lorahub weights %s: score %.4f, objective %.4f", fmtW(w), s, obj)
		return obj, s, src, nil
	}
	w := make([]float64, k)
	for i := range w {
		w[i] = 1 / float64(k)
	}
	bestObj, bestScore, bestSrc, err := objective(w)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(o.Seed, 3))
	sigma := o.Sigma
	for res.Evals < o.Budget {
		improved := false
		cur := append([]float64(nil), w...)
		for c := 0; c < o.Lambda && res.Evals < o.Budget; c++ {
			cand := make([]float64, k)
			for i := range cand {
				cand[i] = math.Max(-o.Bound, math.Min(o.Bound, cur[i]+sigma*r.NormFloat64()))
			}
			obj, s, src, err := objective(cand)
			if err != nil {
				return nil, err
			}
			if obj < bestObj {
				bestObj, bestScore, bestSrc, w, improved = obj, s, src, cand, true
			}
		}
		// One-fifth rule, per generation: widen after a success, narrow otherwise.
		if improved {
			sigma *= 1.5
		} else {
			sigma *= math.Pow(1.5, -0.25)
		}
	}
	res.Src, res.Score, res.Weights = bestSrc, bestScore, w
	for _, a := range adapters {
		res.Chosen = append(res.Chosen, a.Dir)
	}
	return res, nil
}
