package collab

import (
	"errors"
	"math"
	"math/rand/v2"
)

// MLP is the small network behind the trained methods (router, switch
// selector, LLM-Blender's ranker): standardised inputs, one tanh hidden
// layer, a linear output. With Hidden 0 it is a linear model.
type MLP struct {
	In, Hidden, Out int
	Mean, Std       []float64 // input standardisation, from the training set
	W1, B1          []float64 // Hidden x In, Hidden
	W2, B2          []float64 // Out x (Hidden or In), Out
}

// MLPConfig sets the training of an MLP.
type MLPConfig struct {
	Hidden int     // hidden units (default 32; 0 after setting Linear)
	Linear bool    // no hidden layer
	Epochs int     // full-batch Adam steps (default 300)
	LR     float64 // Adam step size (default 0.01)
	L2     float64 // weight decay on the weights, not the biases (default 1e-3)
	Seed   uint64
}

func (c MLPConfig) withDefaults() MLPConfig {
	if c.Hidden == 0 && !c.Linear {
		c.Hidden = 32
	}
	if c.Linear {
		c.Hidden = 0
	}
	if c.Epochs == 0 {
		c.Epochs = 300
	}
	if c.LR == 0 {
		c.LR = 0.01
	}
	if c.L2 == 0 {
		c.L2 = 1e-3
	}
	return c
}

func newMLP(xs [][]float32, out int, c MLPConfig) *MLP {
	in := len(xs[0])
	m := &MLP{In: in, Hidden: c.Hidden, Out: out, Mean: make([]float64, in), Std: make([]float64, in)}
	for _, x := range xs {
		for j, v := range x {
			m.Mean[j] += float64(v)
		}
	}
	for j := range m.Mean {
		m.Mean[j] /= float64(len(xs))
	}
	for _, x := range xs {
		for j, v := range x {
			d := float64(v) - m.Mean[j]
			m.Std[j] += d * d
		}
	}
	for j := range m.Std {
		m.Std[j] = math.Sqrt(m.Std[j]/float64(len(xs))) + 1e-6
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x6d6c70))
	mid := in
	if c.Hidden > 0 {
		mid = c.Hidden
		m.W1 = make([]float64, c.Hidden*in)
		m.B1 = make([]float64, c.Hidden)
		s := 1 / math.Sqrt(float64(in))
		for i := range m.W1 {
			m.W1[i] = rng.NormFloat64() * s
		}
	}
	m.W2 = make([]float64, out*mid)
	m.B2 = make([]float64, out)
	s := 1 / math.Sqrt(float64(mid))
	for i := range m.W2 {
		m.W2[i] = rng.NormFloat64() * s * 0.1
	}
	return m
}

// params lists the parameter slices in a fixed order.
func (m *MLP) params() [][]float64 { return [][]float64{m.W1, m.B1, m.W2, m.B2} }

// forward returns the output and the hidden activations for x.
func (m *MLP) forward(x []float32) (out, z, h []float64) {
	z = make([]float64, m.In)
	for j, v := range x {
		z[j] = (float64(v) - m.Mean[j]) / m.Std[j]
	}
	h = z
	if m.Hidden > 0 {
		h = make([]float64, m.Hidden)
		for k := range h {
			s := m.B1[k]
			row := m.W1[k*m.In : (k+1)*m.In]
			for j, v := range z {
				s += row[j] * v
			}
			h[k] = math.Tanh(s)
		}
	}
	out = make([]float64, m.Out)
	for o := range out {
		s := m.B2[o]
		row := m.W2[o*len(h) : (o+1)*len(h)]
		for k, v := range h {
			s += row[k] * v
		}
		out[o] = s
	}
	return out, z, h
}

// Output is the network's output for x (logits, or a score).
func (m *MLP) Output(x []float32) []float64 {
	o, _, _ := m.forward(x)
	return o
}

// backward adds the gradient of a loss with dOut = dL/dout at x into g
// (same layout as params).
func (m *MLP) backward(g [][]float64, dOut, z, h []float64) {
	gW1, gB1, gW2, gB2 := g[0], g[1], g[2], g[3]
	dh := make([]float64, len(h))
	for o, d := range dOut {
		gB2[o] += d
		row := m.W2[o*len(h) : (o+1)*len(h)]
		grow := gW2[o*len(h) : (o+1)*len(h)]
		for k, v := range h {
			grow[k] += d * v
			dh[k] += d * row[k]
		}
	}
	if m.Hidden == 0 {
		return
	}
	for k := range h {
		d := dh[k] * (1 - h[k]*h[k])
		gB1[k] += d
		grow := gW1[k*m.In : (k+1)*m.In]
		for j, v := range z {
			grow[j] += d * v
		}
	}
}

// lossFunc returns the loss and its gradient for the network's current
// parameters.
type lossFunc func(m *MLP, g [][]float64) float64

// addL2 adds the weight decay term to a loss and its gradient.
func (m *MLP) addL2(g [][]float64, l2 float64) float64 {
	loss := 0.0
	for _, i := range []int{0, 2} {
		for j, w := range m.params()[i] {
			loss += 0.5 * l2 * w * w
			g[i][j] += l2 * w
		}
	}
	return loss
}

func zeroGrad(m *MLP) [][]float64 {
	ps := m.params()
	g := make([][]float64, len(ps))
	for i, p := range ps {
		g[i] = make([]float64, len(p))
	}
	return g
}

// softCE is the mean cross-entropy of softmax(out) against target
// distributions ys, plus weight decay.
func softCE(xs [][]float32, ys [][]float64, l2 float64) lossFunc {
	return func(m *MLP, g [][]float64) float64 {
		loss := 0.0
		for i, x := range xs {
			out, z, h := m.forward(x)
			p := softmax64(out)
			d := make([]float64, len(out))
			for o := range out {
				if ys[i][o] > 0 {
					loss -= ys[i][o] * math.Log(math.Max(p[o], 1e-300)) / float64(len(xs))
				}
				d[o] = (p[o] - ys[i][o]) / float64(len(xs))
			}
			m.backward(g, d, z, h)
		}
		return loss + m.addL2(g, l2)
	}
}

// pairLoss is RankNet's loss: the mean of log(1 + exp(-(s(a) - s(b)))) over
// pairs where a is preferred to b, plus weight decay.
func pairLoss(xs [][]float32, pairs [][2]int, l2 float64) lossFunc {
	return func(m *MLP, g [][]float64) float64 {
		loss := 0.0
		n := float64(len(pairs))
		for _, pr := range pairs {
			oa, za, ha := m.forward(xs[pr[0]])
			ob, zb, hb := m.forward(xs[pr[1]])
			d := oa[0] - ob[0]
			loss += softplus(-d) / n
			s := -sigmoid(-d) / n // dL/dd
			m.backward(g, []float64{s}, za, ha)
			m.backward(g, []float64{-s}, zb, hb)
		}
		return loss + m.addL2(g, l2)
	}
}

// train runs full-batch Adam on loss and returns the final loss.
func (m *MLP) train(loss lossFunc, c MLPConfig) float64 {
	ps := m.params()
	mom, vel := zeroGrad(m), zeroGrad(m)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	last := 0.0
	for t := 1; t <= c.Epochs; t++ {
		g := zeroGrad(m)
		last = loss(m, g)
		c1, c2 := 1-math.Pow(b1, float64(t)), 1-math.Pow(b2, float64(t))
		for i, p := range ps {
			for j := range p {
				mom[i][j] = b1*mom[i][j] + (1-b1)*g[i][j]
				vel[i][j] = b2*vel[i][j] + (1-b2)*g[i][j]*g[i][j]
				p[j] -= c.LR * (mom[i][j] / c1) / (math.Sqrt(vel[i][j]/c2) + eps)
			}
		}
	}
	return last
}

// TrainClassifier fits an MLP to map xs to the target distributions ys
// (soft labels: a row may spread over several classes).
func TrainClassifier(xs [][]float32, ys [][]float64, c MLPConfig) (*MLP, float64, error) {
	if len(xs) == 0 || len(xs) != len(ys) {
		return nil, 0, errors.New("no training examples")
	}
	c = c.withDefaults()
	m := newMLP(xs, len(ys[0]), c)
	return m, m.train(softCE(xs, ys, c.L2), c), nil
}

// TrainRanker fits a scoring MLP (one output) to pairwise preferences:
// pairs[k] = {a, b} says xs[a] should score above xs[b].
func TrainRanker(xs [][]float32, pairs [][2]int, c MLPConfig) (*MLP, float64, error) {
	if len(pairs) == 0 {
		return nil, 0, errors.New("no preference pairs to train on")
	}
	c = c.withDefaults()
	m := newMLP(xs, 1, c)
	return m, m.train(pairLoss(xs, pairs, c.L2), c), nil
}

func softmax64(x []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, v)
	}
	p := make([]float64, len(x))
	s := 0.0
	for i, v := range x {
		p[i] = math.Exp(v - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// argmax64 is the index of the largest value, the first on ties.
func argmax64(x []float64) int {
	b := 0
	for i, v := range x {
		if v > x[b] {
			b = i
		}
	}
	return b
}
