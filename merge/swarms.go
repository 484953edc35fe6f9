package merge

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mocolab/moco/safetensors"
)

// flat lays a model's floating-point tensors end to end in one float32
// vector, so that weight-space searches can do vector arithmetic on whole
// models. Non-float tensors are carried over from the reference.
type flat struct {
	names  []string
	shapes [][]int
	offs   []int
	n      int
	other  []*safetensors.Tensor // non-float tensors, copied as they are
}

// newFlat plans the layout after checking that the models line up.
func newFlat(models []Input) (*flat, error) {
	ps, err := (&Spec{Method: "linear", Models: models}).plan()
	if err != nil {
		return nil, err
	}
	f := &flat{}
	for _, p := range ps {
		if !p.merge {
			t, _ := models[0].Src.Tensor(p.name)
			f.other = append(f.other, t)
			continue
		}
		n := 1
		for _, d := range p.shape {
			n *= d
		}
		f.names = append(f.names, p.name)
		f.shapes = append(f.shapes, p.shape)
		f.offs = append(f.offs, f.n)
		f.n += n
	}
	return f, nil
}

// load widens a model's tensors into one vector.
func (f *flat) load(src safetensors.Source) ([]float32, error) {
	x := make([]float32, f.n)
	for i, name := range f.names {
		t, _ := src.Tensor(name)
		v, err := safetensors.ToF32(t)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		copy(x[f.offs[i]:], v)
	}
	return x, nil
}

// source views a vector as float32 tensors (no copy: x must stay unchanged
// while the Source is in use).
func (f *flat) source(x []float32) safetensors.Source {
	ts := append([]*safetensors.Tensor(nil), f.other...)
	for i, name := range f.names {
		end := f.n
		if i+1 < len(f.offs) {
			end = f.offs[i+1]
		}
		ts = append(ts, &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: f.shapes[i], Data: f32Bytes(x[f.offs[i]:end])})
	}
	return safetensors.NewMemSource(ts)
}

// SwarmOptions are Model Swarms' hyperparameters; zero values take MoCo's
// defaults.
type SwarmOptions struct {
	Inertia, Cognitive, Social, Repel float64 // 0.2, 0.3, 0.4, 0.05
	Step, StepDecay, MinStep          float64 // 0.5, 0.95, 0.1
	Patience                          int     // 5: stop when the global best stalls this long
	RestartPatience                   int     // 3: send a stalled particle back to its personal best
	MaxIterations                     int     // 10
	ExtraParticles                    int     // particles added as random crossovers of two inputs
	Seed                              uint64
}

func (o *SwarmOptions) defaults() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Inertia, 0.2)
	def(&o.Cognitive, 0.3)
	def(&o.Social, 0.4)
	def(&o.Repel, 0.05)
	def(&o.Step, 0.5)
	def(&o.StepDecay, 0.95)
	def(&o.MinStep, 0.1)
	if o.Patience == 0 {
		o.Patience = 5
	}
	if o.RestartPatience == 0 {
		o.RestartPatience = 3
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 10
	}
}

// ModelSwarms runs the Model Swarms search in weight space: each particle is
// a whole model, starting at the inputs (plus optional crossovers), with a
// velocity toward a random other input. Each iteration moves every particle
// by
//
//	v = inertia*v + cognitive*r1*(personal best - x) + social*r2*(global best - x) - repel*r3*(global worst - x)
//	x = x + step*v
//
// with r1..r3 uniform in [0, 1), scores it on dev, and updates the bests;
// the step decays geometrically to a floor. A particle whose personal best
// has not improved for RestartPatience iterations restarts there; the search
// stops after Patience iterations without a new global best. It holds three
// float32 copies of the model per particle.
func ModelSwarms(ctx context.Context, models []Input, o SwarmOptions, score Scorer, log Logf) (*Result, error) {
	score = score.guard(ctx)
	o.defaults()
	if len(models) < 2 {
		return nil, fmt.Errorf("model swarms: need at least 2 models, got %d", len(models))
	}
	f, err := newFlat(models)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(o.Seed, 2))
	type particle struct {
		x, v, best []float32
		bestScore  float64
		stall      int
	}
	var xs [][]float32
	for _, m := range models {
		x, err := f.load(m.Src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		xs = append(xs, x)
	}
	for e := 0; e < o.ExtraParticles; e++ {
		a, b := r.IntN(len(models)), r.IntN(len(models)-1)
		if b >= a {
			b++
		}
		t := float32(r.Float64())
		x := make([]float32, f.n)
		for j := range x {
			x[j] = t*xs[a][j] + (1-t)*xs[b][j]
		}
		xs = append(xs, x)
	}
	res := &Result{Score: math.Inf(-1)}
	var gbest, gworst []float32
	worst := math.Inf(1)
	ps := make([]*particle, len(xs))
	for i, x := range xs {
		s, err := score(f.source(x))
		if err != nil {
			return nil, err
		}
		res.Evals++
		log.printf("particle %d starts at %.4f", i, s)
		p := &particle{x: x, best: append([]float32(nil), x...), bestScore: s, v: make([]float32, f.n)}
		j := r.IntN(len(xs) - 1)
		if j >= i {
			j++
		}
		for k := range p.v {
			p.v[k] = xs[j][k] - x[k]
		}
		ps[i] = p
		if s > res.Score {
			res.Score, gbest = s, p.best
		}
		if s < worst {
			worst, gworst = s, append([]float32(nil), x...)
		}
	}
	step := o.Step
	stall := 0
	for it := 0; it < o.MaxIterations && stall < o.Patience; it++ {
		improved := false
		for i, p := range ps {
			rc, rs, rw := r.Float64(), r.Float64(), r.Float64()
			ci, cc, cs, cw := float32(o.Inertia), float32(o.Cognitive*rc), float32(o.Social*rs), float32(o.Repel*rw)
			st := float32(step)
			for k := range p.x {
				x := p.x[k]
				v := ci*p.v[k] + cc*(p.best[k]-x) + cs*(gbest[k]-x) - cw*(gworst[k]-x)
				p.v[k] = v
				p.x[k] = x + st*v
			}
			s, err := score(f.source(p.x))
			if err != nil {
				return nil, err
			}
			res.Evals++
			if s > p.bestScore {
				copy(p.best, p.x)
				p.bestScore, p.stall = s, 0
			} else if p.stall++; p.stall >= o.RestartPatience {
				copy(p.x, p.best)
				clear(p.v)
				p.stall = 0
			}
			if s > res.Score {
				res.Score, gbest, improved = s, p.best, true
			}
			if s < worst {
				worst = s
				copy(gworst, p.x)
			}
			log.printf("iteration %d particle %d: %.4f (best %.4f)", it+1, i, s, res.Score)
		}
		if improved {
			stall = 0
		} else {
			stall++
		}
		step = math.Max(step*o.StepDecay, o.MinStep)
	}
	res.Src = f.source(append([]float32(nil), gbest...))
	for _, m := range models {
		res.Chosen = append(res.Chosen, m.Name)
	}
	return res, nil
}
