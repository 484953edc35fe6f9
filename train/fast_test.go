package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mocolab/moco/kernels"
)

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// near reports the first element of got (float32, the kernels' path) that
// differs from want (float64, the plain loops checked by finite
// differences) by more than 1e-4 of the largest |want|.
func near(got []float32, want []float64) error {
	var scale float64
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	for i, w := range want {
		if math.Abs(float64(got[i])-w) > 1e-4*max(scale, 1e-6) {
			return fmt.Errorf("element %d: float32 %g, float64 %g (scale %g)", i, got[i], w, scale)
		}
	}
	return nil
}

// TestFloat32MatchesFloat64 holds the float32 layers, which run on the
// kernels package over the thread pool, to the float64 loops the gradient
// checks verify, on the same inputs, and checks that the thread count
// changes no bit of the float32 results.
func TestFloat32MatchesFloat64(t *testing.T) {
	defer kernels.SetThreads(0)
	r := rand.New(rand.NewPCG(11, 12))
	var first []float32
	for _, threads := range []int{1, 2, 3} {
		kernels.SetThreads(threads)
		var all []float32
		check := func(name string, got []float32, want []float64) {
			t.Helper()
			if err := near(got, want); err != nil {
				t.Fatalf("%s (%d threads): %v", name, threads, err)
			}
			all = append(all, got...)
		}
		r = rand.New(rand.NewPCG(11, 12))
		for _, sh := range []struct{ n, in, out int }{{1, 3, 5}, {7, 40, 33}, {37, 64, 96}} {
			x, w, dy := randn(r, sh.n*sh.in), randn(r, sh.out*sh.in), randn(r, sh.n*sh.out)
			y64 := make([]float64, sh.n*sh.out)
			Linear(y64, x, w, sh.n, sh.in, sh.out)
			y32 := make([]float32, sh.n*sh.out)
			Linear(y32, to32(x), to32(w), sh.n, sh.in, sh.out)
			check("Linear", y32, y64)
			dx64, dw64 := randn(r, sh.n*sh.in), randn(r, sh.out*sh.in) // accumulate onto non-zero
			dx32, dw32 := to32(dx64), to32(dw64)
			LinearBackward(dx64, dw64, dy, x, w, sh.n, sh.in, sh.out)
			LinearBackward(dx32, dw32, to32(dy), to32(x), to32(w), sh.n, sh.in, sh.out)
			check("LinearBackward dx", dx32, dx64)
			check("LinearBackward dw", dw32, dw64)
		}
		for _, a := range []Attn{{N: 5, Heads: 2, KVHeads: 1, HeadDim: 4}, {N: 33, Heads: 6, KVHeads: 2, HeadDim: 40}} {
			q, k, v := randn(r, a.N*a.Heads*a.HeadDim), randn(r, a.N*a.KVHeads*a.HeadDim), randn(r, a.N*a.KVHeads*a.HeadDim)
			o64, p64 := make([]float64, len(q)), make([]float64, a.Heads*a.N*a.N)
			o32, p32 := make([]float32, len(q)), make([]float32, a.Heads*a.N*a.N)
			AttnForward(a, o64, p64, q, k, v)
			AttnForward(a, o32, p32, to32(q), to32(k), to32(v))
			check("AttnForward out", o32, o64)
			check("AttnForward p", p32, p64)
			dout := randn(r, len(q))
			dq64, dk64, dv64 := make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
			dq32, dk32, dv32 := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
			AttnBackward(a, dq64, dk64, dv64, dout, p64, q, k, v)
			AttnBackward(a, dq32, dk32, dv32, to32(dout), p32, to32(q), to32(k), to32(v))
			check("AttnBackward dq", dq32, dq64)
			check("AttnBackward dk", dk32, dk64)
			check("AttnBackward dv", dv32, dv64)
		}
		const n, vocab = 9, 300
		logits := randn(r, n*vocab)
		targets := []int{3, -100, 0, 299, 17, -100, 5, 6, 7}
		d64, d32 := make([]float64, n*vocab), make([]float32, n*vocab)
		l64, c64 := CrossEntropy(d64, logits, targets, vocab)
		l32, c32 := CrossEntropy(d32, to32(logits), targets, vocab)
		if c64 != c32 || math.Abs(l64-l32) > 1e-5*l64 {
			t.Fatalf("CrossEntropy: float32 %v (%d), float64 %v (%d)", l32, c32, l64, c64)
		}
		check("CrossEntropy grad", d32, d64)
		// A target far below the row's maximum: its float32 probability
		// underflows and the loss takes the float64 route.
		far := make([]float64, 2*vocab)
		far[7], far[vocab+5] = 80, -30
		fl64, _ := CrossEntropy[float64](nil, far, []int{3, 5}, vocab)
		fl32, _ := CrossEntropy[float32](nil, to32(far), []int{3, 5}, vocab)
		if math.Abs(fl64-fl32) > 1e-5*fl64 || fl64 < 40 {
			t.Fatalf("CrossEntropy far target: float32 %v, float64 %v", fl32, fl64)
		}
		if first == nil {
			first = all
		} else {
			for i := range all {
				if math.Float32bits(all[i]) != math.Float32bits(first[i]) {
					t.Fatalf("%d threads change element %d: %g vs %g", threads, i, all[i], first[i])
				}
			}
		}
	}
}

// TestSwiGLUSameForEveryThreadCount holds the float32 SwiGLU and its
// backward pass to the same bits at one, two and three threads, on a
// length that is no multiple of the vector width: the pool's chunks fall
// elsewhere at each thread count, and the vectorized SiLU computes a
// range's last elements on its scalar path.
func TestSwiGLUSameForEveryThreadCount(t *testing.T) {
	defer kernels.SetThreads(0)
	r := rand.New(rand.NewPCG(11, 12))
	const n = 5000 + 13
	gate, up, dh := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range gate {
		gate[i], up[i], dh[i] = float32(r.NormFloat64()*3), float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	run := func(threads int) (h, dg, du []float32) {
		kernels.SetThreads(threads)
		h, dg, du = make([]float32, n), make([]float32, n), make([]float32, n)
		SwiGLU(h, gate, up)
		SwiGLUBackward(dg, du, dh, gate, up)
		return h, dg, du
	}
	h1, dg1, du1 := run(1)
	for _, threads := range []int{2, 3} {
		for range 20 { // the chunks also depend on timing
			h, dg, du := run(threads)
			for i := range h {
				if math.Float32bits(h[i]) != math.Float32bits(h1[i]) || math.Float32bits(dg[i]) != math.Float32bits(dg1[i]) || math.Float32bits(du[i]) != math.Float32bits(du1[i]) {
					t.Fatalf("threads %d: element %d: h %g dgate %g dup %g, at one thread %g %g %g", threads, i, h[i], dg[i], du[i], h1[i], dg1[i], du1[i])
				}
			}
		}
	}
}
