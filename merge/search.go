package merge

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/mocolab/moco/safetensors"
)

// Scorer scores a candidate model's weights on a dev set; higher is better.
// The merge package does not evaluate models itself: the caller (bench, the
// CLI) passes a scorer that builds an engine model over src and runs it.
type Scorer func(src safetensors.Source) (float64, error)

// guard returns a scorer that fails with ctx's error once ctx is cancelled
// instead of scoring (nil stays nil).
func (sc Scorer) guard(ctx context.Context) Scorer {
	if sc == nil {
		return nil
	}
	return func(src safetensors.Source) (float64, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return sc(src)
	}
}

// Result is the outcome of a dev-scored search.
type Result struct {
	Src     safetensors.Source // the chosen weights (in memory, float32, or an input)
	Score   float64            // its dev score
	Weights []float64          // the chosen weights over the inputs, where meaningful
	Alpha   float64            // ExPO: the chosen alpha
	Chosen  []string           // names of the inputs that make up the result
	Evals   int                // candidates scored
}

// Logf receives progress lines (nil: none).
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

// scoreInputs scores every input alone and returns the indexes from best to
// worst with the scores.
func scoreInputs(models []Input, score Scorer, log Logf) ([]int, []float64, error) {
	s := make([]float64, len(models))
	for i, m := range models {
		v, err := score(m.Src)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		s[i] = v
		log.printf("dev score of %s: %.4f", m.Name, v)
	}
	order := make([]int, len(models))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return s[order[a]] > s[order[b]] })
	return order, s, nil
}

// uniform merges models by a plain average, in memory.
func uniform(ctx context.Context, models []Input) (safetensors.Source, error) {
	if len(models) == 1 {
		return models[0].Src, nil
	}
	ins := make([]Input, len(models))
	for i, m := range models {
		ins[i] = Input{Name: m.Name, Src: m.Src}
	}
	return (&Spec{Method: "linear", Models: ins, OutDType: safetensors.F32}).MergeToMemory(ctx)
}

// GreedySoup ranks the models by dev score, starts from the best, and adds
// each next one to the uniform soup when that does not lower the dev score.
func GreedySoup(ctx context.Context, models []Input, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	if len(models) == 0 {
		return nil, fmt.Errorf("greedy soup: no models")
	}
	order, s, err := scoreInputs(models, score, log)
	if err != nil {
		return nil, err
	}
	soup := []Input{models[order[0]]}
	best := &Result{Src: models[order[0]].Src, Score: s[order[0]], Chosen: []string{models[order[0]].Name}, Evals: len(models)}
	for _, i := range order[1:] {
		cand := append(append([]Input(nil), soup...), models[i])
		src, err := uniform(ctx, cand)
		if err != nil {
			return nil, err
		}
		v, err := score(src)
		if err != nil {
			return nil, err
		}
		best.Evals++
		if v >= best.Score {
			log.printf("soup + %s: %.4f >= %.4f, kept", models[i].Name, v, best.Score)
			soup, best.Src, best.Score = cand, src, v
			best.Chosen = append(best.Chosen, models[i].Name)
		} else {
			log.printf("soup + %s: %.4f < %.4f, dropped", models[i].Name, v, best.Score)
		}
	}
	best.Weights = make([]float64, len(models))
	for _, m := range soup {
		for i := range models {
			if models[i].Name == m.Name {
				best.Weights[i] = 1 / float64(len(soup))
			}
		}
	}
	return best, nil
}

// ExPOMode selects how ExPO picks its source (weaker) and target (stronger).
type ExPOMode string

const (
	ExPOPair        ExPOMode = "pair"          // models[0] is the source, models[1] the target
	ExPOWorstToBest ExPOMode = "worst_to_best" // by dev rank
	ExPOTopKBottomK ExPOMode = "topk_bottomk"  // uniform merges of the top k and the bottom k
)

// ExPO extrapolates target + alpha*(target - source). With a scorer, each
// alpha and alpha = 0 (the target itself, the search's starting point) are
// scored and the best kept (ties go to the earlier candidate, alpha 0
// first), so the result never scores below the target on dev. Without a
// scorer, the single alpha is applied unscored.
func ExPO(ctx context.Context, models []Input, mode ExPOMode, k int, alphas []float64, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	if len(alphas) == 0 {
		alphas = []float64{0.3}
	}
	var src, tgt safetensors.Source
	res := &Result{}
	switch mode {
	case ExPOPair, "":
		if len(models) != 2 {
			return nil, fmt.Errorf("expo pair: want 2 models (source, target), got %d", len(models))
		}
		src, tgt = models[0].Src, models[1].Src
		res.Chosen = []string{models[0].Name, models[1].Name}
	case ExPOWorstToBest, ExPOTopKBottomK:
		if score == nil || len(models) < 2 {
			return nil, fmt.Errorf("expo %s: needs a dev scorer and at least 2 models", mode)
		}
		order, _, err := scoreInputs(models, score, log)
		if err != nil {
			return nil, err
		}
		res.Evals = len(models)
		if mode == ExPOWorstToBest {
			k = 1
		}
		if k < 1 || 2*k > len(models) {
			return nil, fmt.Errorf("expo topk_bottomk: k=%d does not fit %d models", k, len(models))
		}
		var top, bottom []Input
		for _, i := range order[:k] {
			top = append(top, models[i])
		}
		for _, i := range order[len(order)-k:] {
			bottom = append(bottom, models[i])
		}
		if tgt, err = uniform(ctx, top); err != nil {
			return nil, err
		}
		if src, err = uniform(ctx, bottom); err != nil {
			return nil, err
		}
		for _, m := range bottom {
			res.Chosen = append(res.Chosen, m.Name)
		}
		for _, m := range top {
			res.Chosen = append(res.Chosen, m.Name)
		}
	default:
		return nil, fmt.Errorf("unknown expo mode %q (want pair, worst_to_best or topk_bottomk)", mode)
	}
	if score == nil && len(alphas) > 1 {
		return nil, fmt.Errorf("expo: searching %d alphas needs a dev scorer", len(alphas))
	}
	if score != nil {
		// A search includes its starting point: alpha 0 is the target
		// itself, so the result is never worse on dev than the target.
		alphas = withZero(alphas)
	}
	res.Score = math.Inf(-1)
	for _, a := range alphas {
		if a == 0 && score != nil {
			v, err := score(tgt)
			if err != nil {
				return nil, err
			}
			res.Evals++
			log.printf("expo alpha 0 (the target): %.4f", v)
			if v > res.Score {
				res.Src, res.Score, res.Alpha = tgt, v, 0
			}
			continue
		}
		in := Input{Name: "source", Src: src}
		cand, err := (&Spec{Method: "expo", Base: &in, Models: []Input{{Name: "target", Src: tgt}},
			Params: Params{"alpha": Scalar(a)}, OutDType: safetensors.F32}).MergeToMemory(ctx)
		if err != nil {
			return nil, err
		}
		if score == nil {
			res.Src, res.Alpha, res.Score = cand, a, math.NaN()
			return res, nil
		}
		v, err := score(cand)
		if err != nil {
			return nil, err
		}
		res.Evals++
		log.printf("expo alpha %.3g: %.4f", a, v)
		if v > res.Score {
			res.Src, res.Score, res.Alpha = cand, v, a
		}
	}
	return res, nil
}

// withZero returns alphas with 0 first unless it is already among them.
func withZero(alphas []float64) []float64 {
	for _, a := range alphas {
		if a == 0 {
			return alphas
		}
	}
	return append([]float64{0}, alphas...)
}

// PSOOptions configures DareTiesSearch's particle swarm over weights.
type PSOOptions struct {
	Particles, Iterations int
	Seed                  uint64
	Density               float64 // DARE density of every model
}

// DareTiesSearch searches DARE-TIES weights (MoCo's optimized mode): a
// particle swarm over logits whose softmax gives the weights, each
// candidate merged in memory and scored. The uniform weights are the first
// particle, so the search never returns worse than uniform on dev.
func DareTiesSearch(ctx context.Context, base Input, models []Input, o PSOOptions, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	if o.Particles <= 0 {
		o.Particles = 6
	}
	if o.Iterations <= 0 {
		o.Iterations = 5
	}
	if o.Density <= 0 {
		o.Density = 0.5
	}
	k := len(models)
	eval := func(z []float64) (float64, safetensors.Source, error) {
		w := softmax(z)
		ins := make([]Input, k)
		for i, m := range models {
			ins[i] = Input{Name: m.Name, Src: m.Src, Params: Params{"weight": Scalar(w[i]), "density": Scalar(o.Density)}}
		}
		src, err := (&Spec{Method: "dare_ties", Base: &base, Models: ins, OutDType: safetensors.F32, Seed: o.Seed}).MergeToMemory(ctx)
		if err != nil {
			return 0, nil, err
		}
		v, err := score(src)
		log.printf("dare_ties weights %s: %.4f", fmtW(w), v)
		return v, src, err
	}
	r := rand.New(rand.NewPCG(o.Seed, 1))
	type particle struct {
		x, v, best []float64
		bestScore  float64
	}
	ps := make([]*particle, o.Particles)
	res := &Result{Score: math.Inf(-1)}
	var gbest []float64
	for i := range ps {
		x := make([]float64, k)
		if i > 0 {
			for j := range x {
				x[j] = r.NormFloat64()
			}
		}
		p := &particle{x: x, v: make([]float64, k)}
		s, src, err := eval(x)
		if err != nil {
			return nil, err
		}
		res.Evals++
		p.best, p.bestScore = append([]float64(nil), x...), s
		if s > res.Score {
			res.Score, res.Src, gbest = s, src, append([]float64(nil), x...)
		}
		ps[i] = p
	}
	const inertia, cognitive, social = 0.5, 1.5, 1.5
	for it := 0; it < o.Iterations; it++ {
		for _, p := range ps {
			for j := range p.x {
				p.v[j] = inertia*p.v[j] + cognitive*r.Float64()*(p.best[j]-p.x[j]) + social*r.Float64()*(gbest[j]-p.x[j])
				p.x[j] += p.v[j]
			}
			s, src, err := eval(p.x)
			if err != nil {
				return nil, err
			}
			res.Evals++
			if s > p.bestScore {
				p.best, p.bestScore = append([]float64(nil), p.x...), s
			}
			if s > res.Score {
				res.Score, res.Src, gbest = s, src, append([]float64(nil), p.x...)
			}
		}
	}
	res.Weights = softmax(gbest)
	for _, m := range models {
		res.Chosen = append(res.Chosen, m.Name)
	}
	return res, nil
}

func softmax(z []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v)
	}
	w := make([]float64, len(z))
	var s float64
	for i, v := range z {
		w[i] = math.Exp(v - mx)
		s += w[i]
	}
	for i := range w {
		w[i] /= s
	}
	return w
}

func fmtW(w []float64) string {
	s := "["
	for i, v := range w {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.3f", v)
	}
	return s + "]"
}
