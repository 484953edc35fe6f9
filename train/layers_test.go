package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randn returns n values drawn from N(0, 1) with a fixed seed stream.
func randn(r *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	return x
}

// dot is Σ a_i·b_i: the tests' scalar loss L = Σ y·proj, so dL/dy = proj.
func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// checkGrads compares analytic gradients against central finite
// differences (L(x+h) − L(x−h))/2h of loss, element by element, for every
// named tensor; loss must read the tensors at call time.
func checkGrads(t *testing.T, loss func() float64, params map[string][]float64, grads map[string][]float64) {
	t.Helper()
	const h, tol = 1e-5, 1e-6
	for name, p := range params {
		g := grads[name]
		if len(g) != len(p) {
			t.Fatalf("%s: gradient length %d, tensor %d", name, len(g), len(p))
		}
		for i := range p {
			old := p[i]
			p[i] = old + h
			up := loss()
			p[i] = old - h
			down := loss()
			p[i] = old
			num := (up - down) / (2 * h)
			if d := math.Abs(num - g[i]); d > tol*math.Max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %.10g, finite difference %.10g", name, i, g[i], num)
			}
		}
	}
}

func TestLayerGradients(t *testing.T) {
	type layer struct {
		name string
		// build returns the tensors to check, a loss reading them, and
		// the analytic gradients computed at the current values.
		build func(r *rand.Rand) (params map[string][]float64, loss func() float64, grads func() map[string][]float64)
	}

	layers := []layer{
		{"embedding", func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
			const vocab, d = 5, 3
			tokens := []int{2, 0, 2, 4} // a repeated token accumulates
			emb, proj := randn(r, vocab*d), randn(r, n*d)
			x := make([]float64, n*d)
			loss := func() float64 { Embed(x, emb, tokens, d); return dot(x, proj) }
			grads := func() map[string][]float64 {
				de := make([]float64, vocab*d)
				EmbedBackward(de, proj, tokens, d)
				return map[string][]float64{"emb": de}
			}
			return map[string][]float64{"emb": emb}, loss, grads
		}},
		{"linear", func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
			const in, out = 3, 5
			x, w, proj := randn(r, n*in), randn(r, out*in), randn(r, n*out)
			y := make([]float64, n*out)
			loss := func() float64 { Linear(y, x, w, n, in, out); return dot(y, proj) }
			grads := func() map[string][]float64 {
				dx, dw := make([]float64, n*in), make([]float64, out*in)
				LinearBackward(dx, dw, proj, x, w, n, in, out)
				return map[string][]float64{"x": dx, "w": dw}
			}
			return map[string][]float64{"x": x, "w": w}, loss, grads
		}},
		{"rmsnorm", rmsCase(0)},
		{"rmsnorm offset 1 (Gemma)", rmsCase(1)},
		{"swiglu", func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
			g, u, proj := randn(r, n*3), randn(r, n*3), randn(r, n*3)
			h := make([]float64, n*3)
			loss := func() float64 { SwiGLU(h, g, u); return dot(h, proj) }
			grads := func() map[string][]float64 {
				dg, du := make([]float64, len(g)), make([]float64, len(u))
				SwiGLUBackward(dg, du, proj, g, u)
				return map[string][]float64{"gate": dg, "up": du}
			}
			return map[string][]float64{"gate": g, "up": u}, loss, grads
		}},
		{"rope", func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
			const heads, hd = 2, 4
			x, proj := randn(r, n*heads*hd), randn(r, n*heads*hd)
			freqs := RopeFreqs(10000, hd)
			y := make([]float64, len(x))
			loss := func() float64 { copy(y, x); Rope(y, n, heads, hd, freqs, 3); return dot(y, proj) }
			grads := func() map[string][]float64 {
				dx := append([]float64(nil), proj...)
				RopeBackward(dx, n, heads, hd, freqs, 3)
				return map[string][]float64{"x": dx}
			}
			return map[string][]float64{"x": x}, loss, grads
		}},
		{"attention MHA", attnCase(Attn{N: n, Heads: 2, KVHeads: 2, HeadDim: 3})},
		{"attention GQA", attnCase(Attn{N: n, Heads: 4, KVHeads: 2, HeadDim: 2})},
		{"attention MQA", attnCase(Attn{N: 5, Heads: 3, KVHeads: 1, HeadDim: 2})},
		{"cross-entropy with mask", func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
			const vocab = 6
			logits := randn(r, n*vocab)
			targets := []int{-100, 3, -100, 5} // prompt positions ignored
			loss := func() float64 { l, _ := CrossEntropy[float64](nil, logits, targets, vocab); return l }
			grads := func() map[string][]float64 {
				d := make([]float64, len(logits))
				CrossEntropy(d, logits, targets, vocab)
				return map[string][]float64{"logits": d}
			}
			return map[string][]float64{"logits": logits}, loss, grads
		}},
	}
	for i, l := range layers {
		t.Run(l.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			params, loss, grads := l.build(r)
			checkGrads(t, loss, params, grads())
		})
	}
}

func rmsCase(offset float64) func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
	return func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
		const width, eps = 5, 1e-5
		x, w, proj := randn(r, n*width), randn(r, width), randn(r, n*width)
		y := make([]float64, len(x))
		loss := func() float64 { RMSNorm(y, x, w, width, eps, offset); return dot(y, proj) }
		grads := func() map[string][]float64 {
			dx, dw := make([]float64, len(x)), make([]float64, len(w))
			RMSNormBackward(dx, dw, proj, x, w, width, eps, offset)
			return map[string][]float64{"x": dx, "w": dw}
		}
		return map[string][]float64{"x": x, "w": w}, loss, grads
	}
}

func attnCase(a Attn) func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
	return func(r *rand.Rand) (map[string][]float64, func() float64, func() map[string][]float64) {
		qDim, kvDim := a.Heads*a.HeadDim, a.KVHeads*a.HeadDim
		q, k, v := randn(r, a.N*qDim), randn(r, a.N*kvDim), randn(r, a.N*kvDim)
		proj := randn(r, a.N*qDim)
		out, p := make([]float64, a.N*qDim), make([]float64, a.Heads*a.N*a.N)
		loss := func() float64 { AttnForward(a, out, p, q, k, v); return dot(out, proj) }
		grads := func() map[string][]float64 {
			AttnForward(a, out, p, q, k, v)
			dq, dk, dv := make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
			AttnBackward(a, dq, dk, dv, proj, p, q, k, v)
			return map[string][]float64{"q": dq, "k": dk, "v": dv}
		}
		return map[string][]float64{"q": q, "k": k, "v": v}, loss, grads
	}
}

// TestAttentionCausal checks against hand-derived values that a query
// never sees later keys: the first position's output is v_0 whatever the
// scores, and the second averages v_0 and v_1 when their scores tie.
func TestAttentionCausal(t *testing.T) {
	a := Attn{N: 2, Heads: 1, KVHeads: 1, HeadDim: 1}
	q, k, v := []float64{1, 1}, []float64{2, 2}, []float64{10, 30}
	out, p := make([]float64, 2), make([]float64, 4)
	AttnForward(a, out, p, q, k, v)
	if out[0] != 10 || out[1] != 20 || p[1] != 0 {
		t.Fatalf("out %v p %v, want [10 20] and p[0][1] = 0", out, p)
	}
}

// TestCrossEntropyHand checks the loss against a hand-derived value:
// uniform logits over 4 tokens give ln 4 per counted position.
func TestCrossEntropyHand(t *testing.T) {
	l, c := CrossEntropy[float32](nil, make([]float32, 8), []int{1, -1}, 4)
	if c != 1 || math.Abs(l-math.Log(4)) > 1e-6 {
		t.Fatalf("loss %v count %d, want %v over 1", l, c, math.Log(4))
	}
}

const n = 4
