package merge

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mocolab/moco/safetensors"
)

// LoraHubOptions configures LoraHub's gradient-free weight search. The zero
// value is the paper's setting (Huang et al. 2023 and its reference code):
// weights start at zero, stay in [-1.5, 1.5], the objective is the dev loss
// plus 0.05 times the mean |w|, and 40 candidates are scored. (MoCo's
// weight_lorahub uses the same start, bounds and penalty with a budget of 20.)
type LoraHubOptions struct {
	Budget int     // candidates scored (default 40)
	L1     float64 // penalty on mean |w| (default 0.05; negative: none)
	Bound  float64 // weights stay in [-Bound, Bound] (default 1.5)
	Seed   uint64
	// Optimizer is LoraHubOnePlusOne (default) or LoraHubES.
	Optimizer string
	// Lambda and Sigma configure LoraHubES: offspring per generation
	// (default 4) and the initial step (default 0.5).
	Lambda int
	Sigma  float64
}

// LoraHub's optimizers.
const (
	// LoraHubOnePlusOne is the (1+1) evolution strategy with the one-fifth
	// success rule (nevergrad's OnePlusOne, one of the optimizers its NGOpt
	// picks for small budgets; NGOpt itself, the paper's choice, is a Python
	// meta-optimizer that moco does not reproduce): from zero weights, each
	// candidate adds sigma*N(0, 1) to every weight of the best so far,
	// reflected at the bounds; sigma starts at 1 (nevergrad's default step),
	// doubles after an improvement and shrinks by 2^(-1/4) otherwise.
	LoraHubOnePlusOne = "oneplusone"
	// LoraHubES is moco's earlier search, kept as an option: a (1+lambda)
	// evolution strategy from uniform weights 1/k, clipped at the bounds,
	// with a one-fifth rule per generation.
	LoraHubES = "es"
)

// LoraHub composes adapters as sum w_i A_i, sum w_i B_i (as the paper's and
// MoCo's code do) and searches w with a gradient-free optimizer that
// minimizes loss + L1*mean|w|, where loss = -score (score is higher is
// better, e.g. dev accuracy or minus the dev NLL). The result is the best
// candidate scored.
func LoraHub(ctx context.Context, base safetensors.Source, adapters []*Adapter, o LoraHubOptions, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	if len(adapters) == 0 {
		return nil, fmt.Errorf("lorahub: no adapters")
	}
	if o.Budget <= 0 {
		o.Budget = 40
	}
	if o.L1 == 0 {
		o.L1 = 0.05
	} else if o.L1 < 0 {
		o.L1 = 0
	}
	if o.Bound <= 0 {
		o.Bound = 1.5
	}
	if o.Lambda <= 0 {
		o.Lambda = 4
	}
	if o.Sigma <= 0 {
		o.Sigma = 0.5
	}
	k := len(adapters)
	res := &Result{}
	var bestObj, bestScore float64
	var bestW []float64
	var bestSrc safetensors.Source
	// objective scores w and keeps the best; it reports whether w improved.
	objective := func(w []float64) (bool, error) {
		src, err := ApplyLoRA(base, adapters, w)
		if err != nil {
			return false, err
		}
		s, err := score(src)
		if err != nil {
			return false, err
		}
		res.Evals++
		var l1 float64
		for _, v := range w {
			l1 += math.Abs(v)
		}
		obj := -s + o.L1*l1/float64(k)
		log.printf("lorahub weights %s: score %.4f, objective %.4f", fmtW(w), s, obj)
		if bestW == nil || obj < bestObj {
			bestObj, bestScore, bestW, bestSrc = obj, s, append([]float64(nil), w...), src
			return true, nil
		}
		return false, nil
	}
	r := rand.New(rand.NewPCG(o.Seed, 3))
	switch o.Optimizer {
	case "", LoraHubOnePlusOne:
		w := make([]float64, k) // the paper starts from zero
		if _, err := objective(w); err != nil {
			return nil, err
		}
		sigma := 1.0
		for res.Evals < o.Budget {
			cand := make([]float64, k)
			for i := range cand {
				cand[i] = bounce(bestW[i]+sigma*r.NormFloat64(), o.Bound)
			}
			better, err := objective(cand)
			if err != nil {
				return nil, err
			}
			if better {
				sigma *= 2
			} else {
				sigma *= math.Pow(2, -0.25)
			}
		}
	case LoraHubES:
		w := make([]float64, k)
		for i := range w {
			w[i] = 1 / float64(k)
		}
		if _, err := objective(w); err != nil {
			return nil, err
		}
		sigma := o.Sigma
		for res.Evals < o.Budget {
			improved := false
			cur := append([]float64(nil), bestW...)
			for c := 0; c < o.Lambda && res.Evals < o.Budget; c++ {
				cand := make([]float64, k)
				for i := range cand {
					cand[i] = math.Max(-o.Bound, math.Min(o.Bound, cur[i]+sigma*r.NormFloat64()))
				}
				better, err := objective(cand)
				if err != nil {
					return nil, err
				}
				improved = improved || better
			}
			// One-fifth rule, per generation: widen after a success, narrow otherwise.
			if improved {
				sigma *= 1.5
			} else {
				sigma *= math.Pow(1.5, -0.25)
			}
		}
	default:
		return nil, fmt.Errorf("lorahub: unknown optimizer %q (want %s or %s)", o.Optimizer, LoraHubOnePlusOne, LoraHubES)
	}
	res.Src, res.Score, res.Weights = bestSrc, bestScore, bestW
	for _, a := range adapters {
		res.Chosen = append(res.Chosen, a.Dir)
	}
	return res, nil
}

// bounce folds x into [-b, b] by reflection at the bounds (nevergrad's
// "bouncing" of bounded arrays).
func bounce(x, b float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	w := 4 * b
	x = math.Mod(x+b, w)
	if x < 0 {
		x += w
	}
	if x > 2*b {
		x = w - x
	}
	return x - b
}
