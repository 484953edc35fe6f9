package train

import (
	"fmt"
	"math"

	"github.com/mocolab/moco/kernels"
)

// Float is the element type of the layers: float32 for training, float64
// for the finite-difference gradient checks.
type Float interface{ ~float32 | ~float64 }

// Embed writes row tokens[t] of the table emb ([vocab, d]) into x[t].
func Embed[T Float](x, emb []T, tokens []int, d int) {
	for t, id := range tokens {
		copy(x[t*d:(t+1)*d], emb[id*d:(id+1)*d])
	}
}

// EmbedBackward adds dx[t] into row tokens[t] of demb.
func EmbedBackward[T Float](demb, dx []T, tokens []int, d int) {
	for t, id := range tokens {
		row := demb[id*d : (id+1)*d]
		for i, g := range dx[t*d : (t+1)*d] {
			row[i] += g
		}
	}
}

// Linear computes y = x·Wᵀ for x [n, in] and w [out, in] (y is [n, out]).
func Linear[T Float](y, x, w []T, n, in, out int) {
	if y32, ok := as32(y); ok {
		x32, _ := as32(x)
		w32, _ := as32(w)
		linear32(y32, x32, w32, n, in, out)
		return
	}
	for t := range n {
		xr := x[t*in : (t+1)*in]
		for o := range out {
			wr := w[o*in : (o+1)*in]
			var s T
			for i, v := range xr {
				s += v * wr[i]
			}
			y[t*out+o] = s
		}
	}
}

// LinearBackward adds dx += dy·W and, when dw is not nil, dw += dyᵀ·x.
// A frozen weight passes dw nil; an input that needs no gradient passes
// dx nil.
func LinearBackward[T Float](dx, dw, dy, x, w []T, n, in, out int) {
	if dy32, ok := as32(dy); ok {
		dx32, _ := as32(dx)
		dw32, _ := as32(dw)
		x32, _ := as32(x)
		w32, _ := as32(w)
		linearBackward32(dx32, dw32, dy32, x32, w32, n, in, out)
		return
	}
	for t := range n {
		dyr := dy[t*out : (t+1)*out]
		xr := x[t*in : (t+1)*in]
		for o, g := range dyr {
			if g == 0 {
				continue
			}
			wr := w[o*in : (o+1)*in]
			if dx != nil {
				dxr := dx[t*in : (t+1)*in]
				for i, v := range wr {
					dxr[i] += g * v
				}
			}
			if dw != nil {
				dwr := dw[o*in : (o+1)*in]
				for i, v := range xr {
					dwr[i] += g * v
				}
			}
		}
	}
}

// RMSNorm computes y = x / rms(x) · (w + offset) row by row, where
// rms(x) = √(mean(x²) + eps). offset is the engine's NormOffset (1 for
// Gemma's (1+w) weights, else 0).
func RMSNorm[T Float](y, x, w []T, width int, eps, offset T) {
	for r := 0; r < len(x)/width; r++ {
		xr, yr := x[r*width:(r+1)*width], y[r*width:(r+1)*width]
		inv := rmsInv(xr, eps)
		for i, v := range xr {
			yr[i] = v * inv * (w[i] + offset)
		}
	}
}

// rmsInv is 1/√(mean(x²)+eps).
func rmsInv[T Float](x []T, eps T) T {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return T(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
}

// RMSNormBackward adds the gradients of RMSNorm. With r = 1/rms(x) and
// g = dy·(w+offset):
//
//	dx_i += r·g_i − r³·x_i·(Σ_j g_j x_j)/width
//	dw_i += dy_i·x_i·r
//
// dw may be nil for a frozen norm.
func RMSNormBackward[T Float](dx, dw, dy, x, w []T, width int, eps, offset T) {
	for r := 0; r < len(x)/width; r++ {
		xr, dyr, dxr := x[r*width:(r+1)*width], dy[r*width:(r+1)*width], dx[r*width:(r+1)*width]
		inv := rmsInv(xr, eps)
		var gx T
		for i, v := range xr {
			gx += dyr[i] * (w[i] + offset) * v
		}
		c := inv * inv * inv * gx / T(width)
		for i, v := range xr {
			dxr[i] += inv*dyr[i]*(w[i]+offset) - c*v
			if dw != nil {
				dw[i] += dyr[i] * v * inv
			}
		}
	}
}

// SwiGLU computes h = silu(gate) · up elementwise, silu(g) = g·σ(g).
func SwiGLU[T Float](h, gate, up []T) {
	if h32, ok := as32(h); ok {
		g32, _ := as32(gate)
		u32, _ := as32(up)
		swiGLU32(h32, g32, u32)
		return
	}
	elementwise(len(gate), func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			g := gate[i]
			h[i] = g * sigmoid(g) * up[i]
		}
	})
}

// elementwise runs fn over [0, n) split over the kernels' thread pool,
// in ranges that start on multiples of elementBlock. Each element is
// computed alone, but the vectorized kernels fn calls (SiLU) take a
// range's last few elements through their scalar reference, whose bits
// may differ: ranges cut anywhere would make results depend on the thread
// count and on which thread claimed what (the pool's chunks depend on
// timing), and a resumed training run would drift from a straight one.
func elementwise(n int, fn func(i0, i1 int)) {
	kernels.Parallel((n+elementBlock-1)/elementBlock, 16*n, func(b0, b1 int) {
		fn(b0*elementBlock, min(n, b1*elementBlock))
	})
}

// elementBlock is a multiple of every vector width of the kernels'
// elementwise functions (16 float32s for AVX-512).
const elementBlock = 64

// SwiGLUBackward adds dgate += dh·up·σ(g)·(1 + g·(1−σ(g))) and
// dup += dh·silu(g).
func SwiGLUBackward[T Float](dgate, dup, dh, gate, up []T) {
	if dg32, ok := as32(dgate); ok {
		du32, _ := as32(dup)
		dh32, _ := as32(dh)
		g32, _ := as32(gate)
		u32, _ := as32(up)
		swiGLUBackward32(dg32, du32, dh32, g32, u32)
		return
	}
	elementwise(len(gate), func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			g := gate[i]
			s := sigmoid(g)
			dgate[i] += dh[i] * up[i] * s * (1 + g*(1-s))
			dup[i] += dh[i] * g * s
		}
	})
}

func sigmoid[T Float](x T) T { return T(1 / (1 + math.Exp(-float64(x)))) }

// RopeFreqs returns the default rotary inverse frequencies
// base^(−2i/dim), i < dim/2 (no rope_scaling).
func RopeFreqs(base float64, dim int) []float64 {
	f := make([]float64, dim/2)
	for i := range f {
		f[i] = math.Pow(base, -float64(2*i)/float64(dim))
	}
	return f
}

// Rope rotates, in place, the pairs (i, i+len(invFreq)) of every head of
// x ([n, heads·headDim]); token t sits at position start+t.
func Rope[T Float](x []T, n, heads, headDim int, invFreq []float64, start int) {
	rope(x, n, heads, headDim, invFreq, start, 1)
}

// RopeBackward turns, in place, the gradient of Rope's output into the
// gradient of its input: the rotation is orthogonal, so this is the
// rotation by the opposite angle.
func RopeBackward[T Float](dx []T, n, heads, headDim int, invFreq []float64, start int) {
	rope(dx, n, heads, headDim, invFreq, start, -1)
}

func rope[T Float](x []T, n, heads, headDim int, invFreq []float64, start int, sign float64) {
	h := len(invFreq)
	for t := range n {
		pos := float64(start + t)
		for hh := range heads {
			v := x[t*heads*headDim+hh*headDim:]
			for i, f := range invFreq {
				c, s := T(math.Cos(pos*f)), T(sign*math.Sin(pos*f))
				a, b := v[i], v[i+h]
				v[i] = a*c - b*s
				v[i+h] = b*c + a*s
			}
		}
	}
}

// Attn describes causal self-attention with grouped-query heads: heads
// query heads share kvHeads key/value heads (heads/kvHeads each).
type Attn struct {
	N, Heads, KVHeads, HeadDim int
}

func (a Attn) check() {
	if a.KVHeads <= 0 || a.Heads%a.KVHeads != 0 {
		panic(fmt.Sprintf("train.Attn: %d heads over %d kv heads", a.Heads, a.KVHeads))
	}
}

// AttnForward computes out ([N, Heads·HeadDim]) from q ([N,
// Heads·HeadDim]), k and v ([N, KVHeads·HeadDim]), and writes the
// attention probabilities into p ([Heads, N, N], zero above the diagonal)
// for the backward pass. Scores are q·k/√HeadDim, masked causally.
func AttnForward[T Float](a Attn, out, p, q, k, v []T) {
	a.check()
	if o32, ok := as32(out); ok {
		p32, _ := as32(p)
		q32, _ := as32(q)
		k32, _ := as32(k)
		v32, _ := as32(v)
		attnForward32(a, o32, p32, q32, k32, v32)
		return
	}
	n, hd, group := a.N, a.HeadDim, a.Heads/a.KVHeads
	qDim, kvDim := a.Heads*hd, a.KVHeads*hd
	scale := T(1 / math.Sqrt(float64(hd)))
	for h := range a.Heads {
		kh := (h / group) * hd
		for t := range n {
			pr := p[(h*n+t)*n : (h*n+t+1)*n]
			qt := q[t*qDim+h*hd : t*qDim+(h+1)*hd]
			mx := T(math.Inf(-1))
			for u := range n {
				if u > t {
					pr[u] = 0
					continue
				}
				var s T
				for i, x := range qt {
					s += x * k[u*kvDim+kh+i]
				}
				pr[u] = s * scale
				mx = max(mx, pr[u])
			}
			var sum T
			for u := 0; u <= t; u++ {
				pr[u] = T(math.Exp(float64(pr[u] - mx)))
				sum += pr[u]
			}
			ot := out[t*qDim+h*hd : t*qDim+(h+1)*hd]
			clear(ot)
			for u := 0; u <= t; u++ {
				pr[u] /= sum
				for i := range ot {
					ot[i] += pr[u] * v[u*kvDim+kh+i]
				}
			}
		}
	}
}

// AttnBackward adds the gradients of AttnForward into dq, dk and dv, given
// dout and the probabilities p that AttnForward saved. With
// dP[t,u] = dout_t·v_u and dS = P∘(dP − rowsum(P∘dP)):
//
//	dv_u += Σ_t P[t,u]·dout_t
//	dq_t += Σ_u dS[t,u]·k_u / √HeadDim
//	dk_u += Σ_t dS[t,u]·q_t / √HeadDim
//
// summed over the query heads that share each key/value head.
func AttnBackward[T Float](a Attn, dq, dk, dv, dout, p, q, k, v []T) {
	a.check()
	if dq32, ok := as32(dq); ok {
		dk32, _ := as32(dk)
		dv32, _ := as32(dv)
		do32, _ := as32(dout)
		p32, _ := as32(p)
		q32, _ := as32(q)
		k32, _ := as32(k)
		v32, _ := as32(v)
		attnBackward32(a, dq32, dk32, dv32, do32, p32, q32, k32, v32)
		return
	}
	n, hd, group := a.N, a.HeadDim, a.Heads/a.KVHeads
	qDim, kvDim := a.Heads*hd, a.KVHeads*hd
	scale := T(1 / math.Sqrt(float64(hd)))
	dp := make([]T, n)
	for h := range a.Heads {
		kh := (h / group) * hd
		for t := range n {
			pr := p[(h*n+t)*n : (h*n+t+1)*n]
			dot := dout[t*qDim+h*hd : t*qDim+(h+1)*hd]
			var rs T
			for u := 0; u <= t; u++ {
				var s T
				for i, g := range dot {
					s += g * v[u*kvDim+kh+i]
					dv[u*kvDim+kh+i] += pr[u] * g
				}
				dp[u] = s
				rs += pr[u] * s
			}
			qt := q[t*qDim+h*hd : t*qDim+(h+1)*hd]
			dqt := dq[t*qDim+h*hd : t*qDim+(h+1)*hd]
			for u := 0; u <= t; u++ {
				ds := pr[u] * (dp[u] - rs) * scale
				if ds == 0 {
					continue
				}
				for i := range dqt {
					dqt[i] += ds * k[u*kvDim+kh+i]
					dk[u*kvDim+kh+i] += ds * qt[i]
				}
			}
		}
	}
}

// CrossEntropy returns the mean negative log-likelihood of targets under
// logits ([n, vocab]) over the positions whose target is ≥ 0 (a negative
// target, like PyTorch's −100, is ignored: prompt tokens in SFT), and the
// number of positions counted. When dlogits is not nil it adds the
// gradient of that mean, (softmax − onehot)/count, for counted rows.
func CrossEntropy[T Float](dlogits, logits []T, targets []int, vocab int) (loss float64, count int) {
	for _, y := range targets {
		if y >= 0 {
			count++
		}
	}
	if count == 0 {
		return 0, 0
	}
	if l32, ok := as32(logits); ok {
		d32, _ := as32(dlogits)
		return crossEntropy32(d32, l32, targets, vocab, count) / float64(count), count
	}
	for t, y := range targets {
		if y < 0 {
			continue
		}
		row := logits[t*vocab : (t+1)*vocab]
		lse := logSumExp(row)
		loss += lse - float64(row[y])
		if dlogits != nil {
			d := dlogits[t*vocab : (t+1)*vocab]
			for i, v := range row {
				d[i] += T(math.Exp(float64(v)-lse) / float64(count))
			}
			d[y] -= T(1 / float64(count))
		}
	}
	return loss / float64(count), count
}

// logSumExp is log(sum(exp(row))) in float64, shifted by the maximum so
// that it neither overflows nor loses the small terms.
func logSumExp[T Float](row []T) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = max(mx, float64(v))
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(sum)
}
