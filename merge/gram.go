package merge

import (
	"context"
	"fmt"
	"math"

	"github.com/mocolab/moco/safetensors"
)

// Streaming merges for the spherical methods (slerp, nuslerp, multislerp,
// karcher) and model_stock. Each of their results is a combination of the
// input tensors (or task vectors) with coefficients that depend only on
// the inputs' norms and dot products: their Gram matrix. So one pass over
// the inputs sums the Gram matrix (per tensor, or per row or column for
// the row-wise variants), a few float64 operations on it give the
// coefficients, and a second pass writes the output chunk by chunk, as
// the element-wise merges do. No whole tensor is widened to float32, and
// the float64 vectors the whole-tensor functions (MultiSlerp, Karcher)
// keep are never formed: multislerp of two 0.5B models took 43 s and 8.6
// GB, Karcher as long.
//
// The whole-tensor functions (Slerp, NuSlerp, MultiSlerp, Karcher,
// ModelStock) compute the same formulas element by element; they are the
// reference the tests hold these to (the sums are taken in another order,
// so the results agree to rounding, not to the bit).

// Gram matrices are over segments of a tensor's n entries.
const (
	gramWhole = iota // one vector: the whole tensor
	gramRows         // each row of rowLen entries
	gramCols         // each column: entries rowLen apart
)

// gramBlock is the number of entries (whole rows) whose sums a gram pass
// takes in order before adding them to the others, in block order: the
// sums do not depend on the number of threads.
var gramBlock = 1 << 18 // a variable for the tests

// gramPairs is the number of entries of an m-vector Gram matrix kept (the
// upper triangle, row by row: (0,0), (0,1), ..., (1,1), ...).
func gramPairs(m int) int { return m * (m + 1) / 2 }

// gramAt returns entry (i, k) of Gram matrix g of m vectors.
func gramAt(g []float64, m, i, k int) float64 {
	if i > k {
		i, k = k, i
	}
	return g[i*m-i*(i-1)/2+k-i]
}

// gramPass sums the Gram matrices of m vectors over each segment of the
// first n entries of vs (mode: gramWhole, gramRows or gramCols, with rows
// of rowLen): vector i is vs[i+1]-vs[0] when delta is set, vs[i]
// otherwise. It returns segments * gramPairs(m) sums, segment by segment.
func gramPass(ctx context.Context, vs []view, n, rowLen int, delta bool, mode int) ([]float64, int, error) {
	m := len(vs)
	if delta {
		m--
	}
	np := gramPairs(m)
	rowLen = max(1, min(rowLen, n))
	rowsPer := max(1, gramBlock/rowLen)
	bp := blockPlan{n: n, rowLen: rowLen, rowsPer: rowsPer, nBlocks: max(1, (n+rowsPer*rowLen-1)/(rowsPer*rowLen))}
	bp.sc = new(scratchSet)
	defer bp.sc.release()
	var out, part []float64 // part: per block (whole) or per block and column
	segs := 1
	switch mode {
	case gramWhole:
		part = make([]float64, bp.nBlocks*np)
	case gramRows:
		segs = (n + rowLen - 1) / rowLen
		out = make([]float64, segs*np)
	case gramCols:
		segs = rowLen
		part = make([]float64, bp.nBlocks*rowLen*np)
	}
	err := bp.run(ctx, func() (func(k, lo, hi int), func()) {
		bufs := bp.sc.floats(len(vs), chunk)
		raws := bp.sc.blockBufs(vs, chunk)
		xs := make([][]float32, len(vs))
		return func(k, lo, hi int) {
			// Chunks of whole rows where rows fit one; a longer row is
			// taken in pieces, in order.
			step := max(1, chunk/rowLen) * rowLen
			if rowLen > chunk {
				step = chunk
			}
			for c := lo; c < hi; c += step {
				e := min(c+step, hi)
				for i, vw := range vs {
					xs[i] = vw.read(bufs[i], raws[i], c, e-c)
				}
				var base []float32
				ms := xs
				if delta {
					base, ms = xs[0], xs[1:]
				}
				switch mode {
				case gramWhole:
					gramAdd(part[k*np:(k+1)*np], ms, base, 0, e-c)
				case gramRows:
					for a := c; a < e; {
						r := a / rowLen
						b := min((r+1)*rowLen, e)
						gramAdd(out[r*np:(r+1)*np], ms, base, a-c, b-c)
						a = b
					}
				case gramCols:
					gramAddCols(part[k*rowLen*np:(k+1)*rowLen*np], ms, base, c%rowLen, rowLen)
				}
			}
		}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	switch mode {
	case gramWhole:
		out = make([]float64, np)
		for k := range bp.nBlocks {
			for p := range np {
				out[p] += part[k*np+p]
			}
		}
	case gramCols:
		out = make([]float64, rowLen*np)
		for k := range bp.nBlocks {
			for i, s := range part[k*rowLen*np : (k+1)*rowLen*np] {
				out[i] += s
			}
		}
	}
	return out, segs, nil
}

// gramAdd adds the Gram matrix of the vectors xs[i][a:b] (less base[a:b]
// when base is not nil) to g.
func gramAdd(g []float64, xs [][]float32, base []float32, a, b int) {
	var bb []float32
	if base != nil {
		bb = base[a:b]
	}
	if len(xs) == 2 && gram2Fast != nil {
		// The three pairs of two vectors at once: each pair's sums are
		// dot64's or dotDelta's, in their order.
		x, y := xs[0][a:b], xs[1][a:b]
		j, s := gram2Fast(x, y, bb)
		for p, v := range [3][2][]float32{{x, x}, {x, y}, {y, y}} {
			g[p] += dotRest(v[0], v[1], bb, j, s[p])
		}
		return
	}
	p := 0
	for i := range xs {
		for k := i; k < len(xs); k++ {
			if base == nil {
				g[p] += dot64(xs[i][a:b], xs[k][a:b])
			} else {
				g[p] += dotDelta(xs[i][a:b], xs[k][a:b], bb)
			}
			p++
		}
	}
}

// gram2Fast, when set (assembly), is dotFast for the pairs x.x, x.y and
// y.y at once (less b when b is not nil), over the largest multiple of 4
// entries, which it returns with each pair's four sums.
var gram2Fast func(x, y, b []float32) (n int, s [3][4]float64)

// gramAddCols adds the Gram matrices of each column's entries in xs (less
// base) to g (rowLen of them, column by column); xs's first entry is in
// column col0.
func gramAddCols(g []float64, xs [][]float32, base []float32, col0, rowLen int) {
	np := gramPairs(len(xs))
	p := 0
	for i := range xs {
		for k := i; k < len(xs); k++ {
			x, y := xs[i], xs[k]
			col := col0
			for j := range x {
				u, v := float64(x[j]), float64(y[j])
				if base != nil {
					u, v = u-float64(base[j]), v-float64(base[j])
				}
				g[col*np+p] += u * v
				if col++; col == rowLen {
					col = 0
				}
			}
			p++
		}
	}
}

// dot64 is the dot product of x and y in float64, in four partial sums
// (added at the end) so that the additions do not wait on each other.
func dot64(x, y []float32) float64 {
	y = y[:len(x)]
	var s [4]float64
	j := 0
	if dotFast != nil {
		j, s[0], s[1], s[2], s[3] = dotFast(x, y, nil)
	}
	return dotRest(x, y, nil, j, s)
}

// dotRest is dot64 (b nil) or dotDelta from entry j on, with the four
// partial sums s of the entries before, and adds the sums.
func dotRest(x, y, b []float32, j int, s [4]float64) float64 {
	s0, s1, s2, s3 := s[0], s[1], s[2], s[3]
	if b == nil {
		for ; j+4 <= len(x); j += 4 {
			s0 += float64(x[j]) * float64(y[j])
			s1 += float64(x[j+1]) * float64(y[j+1])
			s2 += float64(x[j+2]) * float64(y[j+2])
			s3 += float64(x[j+3]) * float64(y[j+3])
		}
		for ; j < len(x); j++ {
			s0 += float64(x[j]) * float64(y[j])
		}
		return (s0 + s1) + (s2 + s3)
	}
	for ; j+4 <= len(b); j += 4 {
		b0, b1, b2, b3 := float64(b[j]), float64(b[j+1]), float64(b[j+2]), float64(b[j+3])
		s0 += (float64(x[j]) - b0) * (float64(y[j]) - b0)
		s1 += (float64(x[j+1]) - b1) * (float64(y[j+1]) - b1)
		s2 += (float64(x[j+2]) - b2) * (float64(y[j+2]) - b2)
		s3 += (float64(x[j+3]) - b3) * (float64(y[j+3]) - b3)
	}
	for ; j < len(b); j++ {
		bj := float64(b[j])
		s0 += (float64(x[j]) - bj) * (float64(y[j]) - bj)
	}
	return (s0 + s1) + (s2 + s3)
}

// dotFast, when set (assembly), is the loop of four partial sums of
// dot64 (b nil) or dotDelta over the largest multiple of 4 entries, which
// it returns with the four sums.
var dotFast func(x, y, b []float32) (n int, s0, s1, s2, s3 float64)

// combineFast, when set (assembly), is combineRun over a prefix of dst (a
// multiple of 8 entries), exactly as combineRun computes it, and returns
// its length.
var combineFast func(dst []float32, xs [][]float32, base []float32, c []float64, a int) int

// stockFast, when set (assembly), is stockRun over a prefix of dst (a
// multiple of 8 entries), exactly as stockRun computes it, and returns
// its length.
var stockFast func(dst []float32, xs [][]float32, base []float32, t float64, a int) int

// dotDelta is dot64 of x-b and y-b, each difference taken in float64.
func dotDelta(x, y, b []float32) float64 {
	x, y = x[:len(b)], y[:len(b)]
	var s [4]float64
	j := 0
	if dotFast != nil {
		j, s[0], s[1], s[2], s[3] = dotFast(x, y, b)
	}
	return dotRest(x, y, b, j, s)
}

// slerpCoefs are Slerp's coefficients of a and b from their Gram matrix
// (aa, ab, bb).
func slerpCoefs(g []float64, t float64) (c0, c1 float64) {
	cos := g[1]
	if na := math.Sqrt(g[0]); na > 1e-8 {
		cos /= na
	}
	if nb := math.Sqrt(g[2]); nb > 1e-8 {
		cos /= nb
	}
	c0, c1 = 1-t, t
	if math.Abs(cos) <= slerpDotThreshold {
		theta := math.Acos(cos)
		s := math.Sin(theta)
		c0, c1 = math.Sin((1-t)*theta)/s, math.Sin(t*theta)/s
	}
	return c0, c1
}

// nuslerpCoefs are NuSlerp's coefficients of one pair of vectors.
func nuslerpCoefs(g []float64, t float64) (c0, c1 float64) {
	n0, n1 := math.Max(math.Sqrt(g[0]), 1e-7), math.Max(math.Sqrt(g[2]), 1e-7)
	cos := math.Max(-1, math.Min(1, g[1]/(n0*n1)))
	theta := math.Acos(cos)
	sin := math.Sin(theta)
	c0, c1 = 1-t, t
	if math.Abs(sin) >= 1e-8 {
		c0, c1 = math.Sin((1-t)*theta)/sin, math.Sin(t*theta)/sin
	}
	return c0, c1
}

// quadForm is x' G x for Gram matrix g of len(x) vectors: the squared
// norm of the combination sum x[i] v_i (at least 0: rounding can make a
// nearly zero one negative). Its rounding error is about 1e-16 of the
// squared norms of the terms, not of the result: a combination of nearly
// parallel tensors that nearly cancels (the tangents of Karcher and
// multislerp) has a norm known to fewer digits than the whole-tensor
// functions give it, few when the inputs' cosine is within 1e-10 of 1.
// Karcher then stops (its step is below tol, 1e-5 by default), and
// multislerp's result hardly depends on that norm t (cos t and sin(t)/t
// are 1 to within t*t).
func quadForm(g, x []float64) float64 {
	m := len(x)
	var s float64
	for i := range x {
		for k := range x {
			s += x[i] * x[k] * gramAt(g, m, i, k)
		}
	}
	return math.Max(s, 0)
}

// gramTimes is (G x)_i, the dot product of vector i with sum x[k] v_k.
func gramTimes(g, x []float64, i int) float64 {
	var s float64
	for k := range x {
		s += gramAt(g, len(x), i, k) * x[k]
	}
	return s
}

// multislerpCoefs are MultiSlerp's coefficients of the vectors (w already
// normalized when asked). When the weighted sum of the unit vectors is
// zero, two vectors are combined by w as they are, and more are an error.
func multislerpCoefs(g, w []float64, eps float64) (kappa []float64, err error) {
	m := len(w)
	norms := make([]float64, m)
	c := make([]float64, m)
	for i := range w {
		norms[i] = math.Sqrt(gramAt(g, m, i, i))
		c[i] = w[i] / (norms[i] + eps)
	}
	mn := math.Sqrt(quadForm(g, c))
	if mn < eps {
		if m == 2 {
			return append([]float64(nil), w...), nil
		}
		return nil, fmt.Errorf("multislerp: the weighted sum of the unit tensors is zero (antipodal tensors with balancing weights); try other weights")
	}
	mu := make([]float64, m) // the normalized mean
	for i := range c {
		mu[i] = c[i] / mn
	}
	tau := make([]float64, m) // the tangent
	var wdot float64
	for i := range w {
		u := 1 / (norms[i] + eps)
		wdot += w[i] * u * gramTimes(g, mu, i)
		tau[i] = w[i] * u
	}
	for i := range tau {
		tau[i] -= wdot * mu[i]
	}
	tn := math.Sqrt(quadForm(g, tau)) + eps
	var avg float64
	for i := range w {
		avg += norms[i] * w[i]
	}
	cs, sn := math.Cos(tn), math.Sin(tn)/tn
	kappa = make([]float64, m)
	for i := range kappa {
		kappa[i] = (mu[i]*cs + tau[i]*sn) * avg
	}
	return kappa, nil
}

// karcherCoefs are Karcher's coefficients of the m tensors (equal
// weights) whose Gram matrix is g.
func karcherCoefs(g []float64, m, maxIter int, tol float64) []float64 {
	norms := make([]float64, m)
	var valid []int
	for i := range m {
		norms[i] = math.Sqrt(gramAt(g, m, i, i))
		if norms[i] > tol {
			valid = append(valid, i)
		}
	}
	kappa := make([]float64, m)
	if len(valid) == 0 {
		return kappa
	}
	// The unit vectors' Gram matrix; u and T are combinations of them
	// (beta, tau), and the invalid ones take no part.
	nv := len(valid)
	ug := make([]float64, gramPairs(nv))
	p := 0
	for a, i := range valid {
		for _, k := range valid[a:] {
			ug[p] = gramAt(g, m, i, k) / (norms[i] * norms[k])
			p++
		}
	}
	a := 1 / float64(nv)
	beta := make([]float64, nv)
	for i := range beta {
		beta[i] = a
	}
	if nu := math.Sqrt(quadForm(ug, beta)); nu < tol {
		clear(beta)
		beta[0] = 1
	} else {
		for i := range beta {
			beta[i] /= nu
		}
	}
	tau := make([]float64, nv)
	dots := make([]float64, nv)
	for it := 0; it < maxIter; it++ {
		for i := range dots {
			dots[i] = gramTimes(ug, beta, i)
		}
		clear(tau)
		for i, dot := range dots {
			dot = math.Max(-1, math.Min(1, dot))
			theta := math.Acos(dot)
			if theta < tol {
				continue
			}
			c := a * theta / math.Sin(theta)
			tau[i] += c
			for k := range tau {
				tau[k] -= c * dot * beta[k]
			}
		}
		nT := math.Sqrt(quadForm(ug, tau))
		if nT < tol {
			break
		}
		c, sn := math.Cos(nT), math.Sin(nT)
		for i := range beta {
			beta[i] = c*beta[i] + sn*tau[i]/nT
		}
		if nu := math.Sqrt(quadForm(ug, beta)); nu > tol {
			for i := range beta {
				beta[i] /= nu
			}
		}
	}
	var scale float64
	alpha := 1 / float64(m)
	for _, nm := range norms {
		scale += alpha * nm
	}
	for a, i := range valid {
		kappa[i] = scale * beta[a] / norms[i]
	}
	return kappa
}

// modelStockRatio is ModelStock's interpolation ratio from the Gram matrix
// of the task vectors.
func modelStockRatio(g []float64, m int) float64 {
	var cs float64
	pairs := 0
	for i := range m {
		for k := i + 1; k < m; k++ {
			c := gramAt(g, m, i, k) / math.Max(math.Sqrt(gramAt(g, m, i, i))*math.Sqrt(gramAt(g, m, k, k)), 1e-6)
			cs += math.Max(-1, math.Min(1, c))
			pairs++
		}
	}
	c := cs / float64(pairs)
	n := float64(m)
	return n * c / (1 + (n-1)*c)
}

// streamSpherical merges a tensor with slerp, nuslerp, multislerp,
// karcher or model_stock in two streaming passes (see above); ts holds the
// base first when hasBase, as mergeTensor's. shape is the tensor's.
func (s *Spec) streamSpherical(ctx context.Context, p *planned, ts []*safetensors.Tensor, n int, hasBase bool, w []float64) (*safetensors.Tensor, error) {
	switch {
	case s.Method == "slerp":
		ts = ts[:2] // the base and the first model
	case s.Method == "nuslerp" && len(w) != 2:
		return nil, fmt.Errorf("nuslerp: want 2 weights, got %d", len(w))
	case s.Method == "model_stock" && (!hasBase || len(ts) < 3):
		return nil, fmt.Errorf("model_stock needs at least two models besides the base, got %d", len(ts)-b2i(hasBase))
	}
	vs, err := views(p, ts)
	if err != nil {
		return nil, err
	}
	cols := n
	if len(p.shape) >= 2 {
		cols = p.shape[len(p.shape)-1]
	}
	mode, rowLen := gramWhole, cols
	switch {
	case s.Method == "nuslerp" && !s.flag(p, "nuslerp_flatten", true) && len(p.shape) >= 2 && n > 0:
		if s.flag(p, "nuslerp_row_wise", false) {
			mode, rowLen = gramCols, n/p.shape[0] // vectors along dimension 0
		} else {
			mode = gramRows
		}
	case s.Method == "model_stock" && s.flag(p, "filter_wise", false) && len(p.shape) >= 2:
		mode = gramRows
	}
	// The combination: out = sum kappa[seg][i] * v_i (+ base), with v_i the
	// task vectors (delta) or the tensors; model_stock's mean is of the
	// tensors (mean: out = t*mean + (1-t)*base).
	delta := hasBase
	var kappa [][]float64 // per segment
	var ratio []float64   // model_stock: per segment
	copyModel := -1       // a single model, returned as it is
	switch s.Method {
	case "slerp":
		delta = false
	case "karcher":
		if len(vs) == 1 {
			copyModel = 0
		}
	case "multislerp":
		if len(vs)-b2i(hasBase) == 1 {
			copyModel = len(vs) - 1
		}
	}
	if copyModel >= 0 {
		return streamTensor(p, ts[copyModel:copyModel+1], n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			copy(dst, xs[0])
		})
	}
	g, segs, err := gramPass(ctx, vs, n, rowLen, delta, mode)
	if err != nil {
		return nil, err
	}
	m := len(vs) - b2i(delta)
	np := gramPairs(m)
	kappa = make([][]float64, segs)
	for sg := range segs {
		gs := g[sg*np : (sg+1)*np]
		switch s.Method {
		case "slerp":
			c0, c1 := slerpCoefs(gs, s.value(p, -1, "t", 0.5))
			kappa[sg] = []float64{c0, c1}
		case "nuslerp":
			t := 0.5
			if sw := w[0] + w[1]; math.Abs(sw) >= 1e-6 {
				t = w[1] / sw
			}
			c0, c1 := nuslerpCoefs(gs, t)
			kappa[sg] = []float64{c0, c1}
		case "multislerp":
			ww := append([]float64(nil), w...)
			if s.flag(p, "normalize_weights", true) {
				sw := sum(ww)
				for i := range ww {
					ww[i] /= sw
				}
			}
			k, err := multislerpCoefs(gs, ww, s.value(p, -1, "eps", 1e-8))
			if err != nil {
				return nil, err
			}
			kappa[sg] = k
		case "karcher":
			kappa[sg] = karcherCoefs(gs, m, int(s.value(p, -1, "max_iter", 10)), s.value(p, -1, "tol", 1e-5))
		case "model_stock":
			ratio = append(ratio, modelStockRatio(gs, m))
		}
	}
	return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, k int, _ [][]float32) {
		lo := k * chunk
		var base []float32
		ms := xs
		if delta || ratio != nil {
			base, ms = xs[0], xs[1:]
		}
		// Runs of entries of one segment: the chunk, or its pieces of rows.
		for a := 0; a < len(dst); {
			b, sg := len(dst), 0
			switch mode {
			case gramRows:
				sg = (lo + a) / rowLen
				b = min((sg+1)*rowLen-lo, len(dst))
			case gramCols:
				b = a + 1
				sg = (lo + a) % rowLen
			}
			if ratio != nil {
				stockRun(dst[a:b], ms, base, ratio[sg], a)
			} else {
				combineRun(dst[a:b], ms, base, kappa[sg], a)
			}
			a = b
		}
	})
}

// combineRun writes dst[j] = sum_i c[i]*(xs[i][a+j] - base[a+j]) +
// base[a+j] (without base when it is nil), in float64.
func combineRun(dst []float32, xs [][]float32, base []float32, c []float64, a int) {
	if combineFast != nil && len(dst) >= 8 {
		j := combineFast(dst, xs, base, c, a)
		dst, a = dst[j:], a+j
	}
	if base == nil {
		for j := range dst {
			var r float64
			for i, x := range xs {
				r += c[i] * float64(x[a+j])
			}
			dst[j] = float32(r)
		}
		return
	}
	if len(xs) == 2 {
		x0, x1, bs := xs[0][a:a+len(dst)], xs[1][a:a+len(dst)], base[a:a+len(dst)]
		c0, c1 := c[0], c[1]
		for j := range dst {
			b := float64(bs[j])
			dst[j] = float32(c0*(float64(x0[j])-b) + c1*(float64(x1[j])-b) + b)
		}
		return
	}
	for j := range dst {
		b := float64(base[a+j])
		var r float64
		for i, x := range xs {
			r += c[i] * (float64(x[a+j]) - b)
		}
		dst[j] = float32(r + b)
	}
}

// stockRun writes model_stock's dst[j] = t*mean_i(xs[i][a+j]) +
// (1-t)*base[a+j].
func stockRun(dst []float32, xs [][]float32, base []float32, t float64, a int) {
	if stockFast != nil && len(dst) >= 8 {
		j := stockFast(dst, xs, base, t, a)
		dst, a = dst[j:], a+j
	}
	n := float64(len(xs))
	if len(xs) == 2 {
		x0, x1, bs := xs[0][a:a+len(dst)], xs[1][a:a+len(dst)], base[a:a+len(dst)]
		for j := range dst {
			mean := (float64(x0[j]) + float64(x1[j])) / n
			dst[j] = float32(t*mean + (1-t)*float64(bs[j]))
		}
		return
	}
	for j := range dst {
		var mean float64
		for _, x := range xs {
			mean += float64(x[a+j])
		}
		mean /= n
		dst[j] = float32(t*mean + (1-t)*float64(base[a+j]))
	}
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
