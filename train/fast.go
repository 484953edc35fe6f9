package train

import (
	"math"

	"github.com/mocolab/moco/kernels"
)

// The float32 instances of the heavy layers run on the kernels package:
// the linear maps' three products on its tiled, threaded MatMul (y = x·Wᵀ,
// dX += dY·W through MatMulNN or a kept transpose, dW += dYᵀ·X through
// MatMulTN), attention over the thread pool one head (forward) or one
// key/value head (backward) per unit with the kernels' row dots and
// axpys, and cross-entropy row by row over the pool. The float64 instances,
// kept for the gradient checks, are the plain loops of layers.go, and
// TestFloat32MatchesFloat64 holds these to them. Every unit is computed
// the same way whichever thread runs it, so results do not depend on the
// thread count and a run is reproducible bit for bit.

func as32[T Float](s []T) ([]float32, bool) {
	v, ok := any(s).([]float32)
	return v, ok
}

func linear32(y, x, w []float32, n, in, out int) {
	if in < 32 {
		// A short input (a LoRA B [out, r]): MatMul's tiles need 32
		// columns, so y = x·(Wᵀ) as weighted sums of Wᵀ's rows.
		wt := make([]float32, in*out)
		kernels.Transpose(wt, w, out, in)
		clear(y[:n*out])
		kernels.MatMulNN(y, x, wt, n, in, out)
		return
	}
	kernels.MatMul(y, &kernels.Mat{Rows: out, Cols: in, Type: kernels.F32, F32: w}, x, n)
}

func linearBackward32(dx, dw, dy, x, w []float32, n, in, out int) {
	if dx != nil {
		kernels.MatMulNN(dx, dy, w, n, out, in)
	}
	if dw != nil {
		kernels.MatMulTN(dw, dy, x, n, out, in)
	}
}

func attnForward32(a Attn, out, p, q, k, v []float32) {
	n, hd, group := a.N, a.HeadDim, a.Heads/a.KVHeads
	qDim, kvDim := a.Heads*hd, a.KVHeads*hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	kernels.Parallel(a.Heads, a.Heads*n*n*hd, func(h0, h1 int) {
		for h := h0; h < h1; h++ {
			kh := (h / group) * hd
			for t := range n {
				pr := p[(h*n+t)*n : (h*n+t+1)*n]
				qt := q[t*qDim+h*hd : t*qDim+(h+1)*hd]
				kernels.DotRows(pr[:t+1], k[kh:], kvDim, qt)
				for u := range pr[:t+1] {
					pr[u] *= scale
				}
				clear(pr[t+1:])
				kernels.Softmax(pr[:t+1])
				ot := out[t*qDim+h*hd : t*qDim+(h+1)*hd]
				clear(ot)
				kernels.AxpyRows(ot, pr[:t+1], v[kh:], kvDim)
			}
		}
	})
}

func attnBackward32(a Attn, dq, dk, dv, dout, p, q, k, v []float32) {
	n, hd, group := a.N, a.HeadDim, a.Heads/a.KVHeads
	qDim, kvDim := a.Heads*hd, a.KVHeads*hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	// One unit per key/value head: the query heads of its group write
	// their own dq columns and its dk, dv columns alone.
	kernels.Parallel(a.KVHeads, 2*a.Heads*n*n*hd, func(g0, g1 int) {
		dp := make([]float32, n)
		for g := g0; g < g1; g++ {
			kh := g * hd
			for h := g * group; h < (g+1)*group; h++ {
				for t := range n {
					pr := p[(h*n+t)*n : (h*n+t)*n+t+1]
					dot := dout[t*qDim+h*hd : t*qDim+(h+1)*hd]
					kernels.DotRows(dp[:t+1], v[kh:], kvDim, dot)
					var rs float32
					for u, pu := range pr {
						rs += pu * dp[u]
						if pu != 0 {
							kernels.Axpy(pu, dot, dv[u*kvDim+kh:u*kvDim+kh+hd])
						}
					}
					for u, pu := range pr {
						dp[u] = pu * (dp[u] - rs) * scale
					}
					dqt := dq[t*qDim+h*hd : t*qDim+(h+1)*hd]
					kernels.AxpyRows(dqt, dp[:t+1], k[kh:], kvDim)
					qt := q[t*qDim+h*hd : t*qDim+(h+1)*hd]
					for u, ds := range dp[:t+1] {
						if ds != 0 {
							kernels.Axpy(ds, qt, dk[u*kvDim+kh:u*kvDim+kh+hd])
						}
					}
				}
			}
		}
	})
}

// swiGLU32 is SwiGLU on the kernels' vectorized SiLU, over the pool.
func swiGLU32(h, gate, up []float32) {
	elementwise(len(gate), func(i0, i1 int) {
		hh := h[i0:i1]
		copy(hh, gate[i0:i1])
		kernels.SiLU(hh)
		for i, u := range up[i0:i1] {
			hh[i] *= u
		}
	})
}

// swiGLUBackward32 is SwiGLUBackward with silu(g) from the kernels'
// vectorized SiLU and σ(g) = silu(g)/g (½ at g = 0).
func swiGLUBackward32(dgate, dup, dh, gate, up []float32) {
	elementwise(len(gate), func(i0, i1 int) {
		silu := make([]float32, i1-i0)
		copy(silu, gate[i0:i1])
		kernels.SiLU(silu)
		for j, si := range silu {
			i := i0 + j
			g := gate[i]
			s := float32(0.5)
			if g != 0 {
				s = si / g
			}
			dgate[i] += dh[i] * up[i] * s * (1 + g*(1-s))
			dup[i] += dh[i] * si
		}
	})
}

// crossEntropy32 is CrossEntropy's float32 instance: rows over the pool,
// each row's probabilities from the kernels' vectorized softmax (a row
// whose target probability falls below 1e-30 takes the float64 route for
// its loss), and the per-row losses summed in row order.
func crossEntropy32(dlogits, logits []float32, targets []int, vocab, count int) float64 {
	losses := make([]float64, len(targets))
	kernels.Parallel(len(targets), len(targets)*vocab*8, func(t0, t1 int) {
		p := make([]float32, vocab)
		for t := t0; t < t1; t++ {
			y := targets[t]
			if y < 0 {
				continue
			}
			row := logits[t*vocab : (t+1)*vocab]
			copy(p, row)
			kernels.Softmax(p)
			if p[y] >= 1e-30 {
				losses[t] = -math.Log(float64(p[y]))
			} else {
				losses[t] = logSumExp(row) - float64(row[y])
			}
			if dlogits != nil {
				d := dlogits[t*vocab : (t+1)*vocab]
				kernels.Axpy(float32(1/float64(count)), p, d)
				d[y] -= float32(1 / float64(count))
			}
		}
	})
	var loss float64
	for _, l := range losses {
		loss += l
	}
	return loss
}
