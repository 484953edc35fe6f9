package merge

import (
	"fmt"
	"math"
)

// This file holds mergekit's spherical merges beyond slerp: nuslerp,
// multislerp and the Karcher mean. Each follows mergekit's formula (its
// merge_methods/nuslerp.py, multislerp.py, karcher.py), with float64
// reductions and float32 outputs.

// NuSlerp is mergekit's nuslerp of two models a and b with weights w (t =
// w[1]/(w[0]+w[1]), 0.5 when the weights sum to about zero). With a base,
// it interpolates the task vectors a-base and b-base and adds the base.
// flatten treats the whole tensor as one vector (mergekit's default);
// otherwise each row (vectors along the last dimension) is interpolated on
// its own, or each column with rowWise (vectors along dimension 0,
// mergekit's nuslerp_row_wise). Near-parallel vectors (|sin theta| < 1e-8)
// are interpolated linearly.
func NuSlerp(dst, base, a, b []float32, w []float64, shape []int, rowWise, flatten bool) error {
	xs := [][]float32{a, b}
	if base != nil {
		xs = append(xs, base)
	}
	if err := checkInputs(dst, xs, make([]float64, len(xs))); err != nil {
		return err
	}
	if len(w) != 2 {
		return fmt.Errorf("nuslerp: want 2 weights, got %d", len(w))
	}
	t := 0.5
	if s := w[0] + w[1]; math.Abs(s) >= 1e-6 {
		t = w[1] / s
	}
	n := len(dst)
	// Vectors: count of them, their length, and the stride between elements.
	count, length, stride := 1, n, 1
	if !flatten && len(shape) >= 2 {
		if rowWise {
			length = shape[0]
			count, stride = n/length, n/length
		} else {
			length = shape[len(shape)-1]
			count = n / length
		}
	}
	at := func(x []float32, v, j int) float64 {
		if stride == 1 {
			return float64(x[v*length+j])
		}
		return float64(x[v+j*stride])
	}
	idx := func(v, j int) int {
		if stride == 1 {
			return v*length + j
		}
		return v + j*stride
	}
	delta := func(x []float32, v, j int) float64 {
		if base == nil {
			return at(x, v, j)
		}
		return at(x, v, j) - at(base, v, j)
	}
	for v := 0; v < count; v++ {
		var n0, n1, dot float64
		for j := 0; j < length; j++ {
			x, y := delta(a, v, j), delta(b, v, j)
			n0 += x * x
			n1 += y * y
			dot += x * y
		}
		n0, n1 = math.Max(math.Sqrt(n0), 1e-7), math.Max(math.Sqrt(n1), 1e-7)
		cos := math.Max(-1, math.Min(1, dot/(n0*n1)))
		theta := math.Acos(cos)
		sin := math.Sin(theta)
		c0, c1 := 1-t, t
		if math.Abs(sin) >= 1e-8 {
			c0, c1 = math.Sin((1-t)*theta)/sin, math.Sin(t*theta)/sin
		}
		for j := 0; j < length; j++ {
			r := c0*delta(a, v, j) + c1*delta(b, v, j)
			if base != nil {
				r += at(base, v, j)
			}
			dst[idx(v, j)] = float32(r)
		}
	}
	return nil
}

// MultiSlerp is mergekit's multislerp: barycentric interpolation on the
// hypersphere of the tensors (task vectors when base is not nil) with
// weights w (divided by their sum with normalize): the unit vectors are
// averaged, projected to the tangent space at their normalized mean,
// averaged there, mapped back with the exponential map and scaled by the
// weighted mean of the norms. One model is returned as it is.
func MultiSlerp(dst, base []float32, xs [][]float32, w []float64, normalize bool, eps float64) error {
	if err := checkInputs(dst, xs, w); err != nil {
		return err
	}
	if base != nil && len(base) != len(dst) {
		return fmt.Errorf("base has %d elements, want %d", len(base), len(dst))
	}
	if len(xs) == 1 {
		copy(dst, xs[0])
		return nil
	}
	w = append([]float64(nil), w...)
	if normalize {
		s := sum(w)
		for i := range w {
			w[i] /= s
		}
	}
	d := func(i, j int) float64 {
		if base == nil {
			return float64(xs[i][j])
		}
		return float64(xs[i][j]) - float64(base[j])
	}
	n := len(dst)
	norms := make([]float64, len(xs))
	for i := range xs {
		var s float64
		for j := 0; j < n; j++ {
			v := d(i, j)
			s += v * v
		}
		norms[i] = math.Sqrt(s)
	}
	mean := make([]float64, n)
	for i := range xs {
		c := w[i] / (norms[i] + eps)
		for j := range mean {
			mean[j] += c * d(i, j)
		}
	}
	mn := norm64(mean)
	if mn < eps {
		if len(xs) == 2 {
			for j := range dst {
				r := w[0]*d(0, j) + w[1]*d(1, j)
				if base != nil {
					r += float64(base[j])
				}
				dst[j] = float32(r)
			}
			return nil
		}
		return fmt.Errorf("multislerp: the weighted sum of the unit tensors is zero (antipodal tensors with balancing weights); try other weights")
	}
	for j := range mean {
		mean[j] /= mn
	}
	tangent := make([]float64, n)
	for i := range xs {
		u := 1 / (norms[i] + eps)
		var dot float64
		for j := range mean {
			dot += d(i, j) * u * mean[j]
		}
		for j := range tangent {
			tangent[j] += w[i] * (d(i, j)*u - dot*mean[j])
		}
	}
	tn := norm64(tangent) + eps
	var avg float64
	for i := range xs {
		avg += norms[i] * w[i]
	}
	c, sn := math.Cos(tn), math.Sin(tn)/tn
	for j := range dst {
		r := (mean[j]*c + tangent[j]*sn) * avg
		if base != nil {
			r += float64(base[j])
		}
		dst[j] = float32(r)
	}
	return nil
}

// Karcher is mergekit's Karcher (Riemannian) mean of the tensors with equal
// weights: the unit directions are averaged on the sphere by at most
// maxIter fixed-point steps (stopping when the step's norm is below tol;
// tensors with norm <= tol take no part in the direction), and the result
// is scaled by the mean norm.
func Karcher(dst []float32, xs [][]float32, maxIter int, tol float64) error {
	if err := checkInputs(dst, xs, make([]float64, len(xs))); err != nil {
		return err
	}
	if len(xs) == 1 {
		copy(dst, xs[0])
		return nil
	}
	n := len(dst)
	alpha := 1 / float64(len(xs))
	norms := make([]float64, len(xs))
	var valid []int
	for i, x := range xs {
		var s float64
		for _, v := range x {
			s += float64(v) * float64(v)
		}
		norms[i] = math.Sqrt(s)
		if norms[i] > tol {
			valid = append(valid, i)
		}
	}
	if len(valid) == 0 {
		clear(dst)
		return nil
	}
	a := 1 / float64(len(valid)) // the valid models' alphas, normalized
	unit := func(i, j int) float64 { return float64(xs[i][j]) / norms[i] }
	u := make([]float64, n)
	for _, i := range valid {
		for j := range u {
			u[j] += a * unit(i, j)
		}
	}
	if nu := norm64(u); nu < tol {
		for j := range u {
			u[j] = unit(valid[0], j)
		}
	} else {
		for j := range u {
			u[j] /= nu
		}
	}
	T := make([]float64, n)
	for it := 0; it < maxIter; it++ {
		clear(T)
		for _, i := range valid {
			var dot float64
			for j := range u {
				dot += u[j] * unit(i, j)
			}
			dot = math.Max(-1, math.Min(1, dot))
			theta := math.Acos(dot)
			if theta < tol {
				continue
			}
			c := a * theta / math.Sin(theta)
			for j := range T {
				T[j] += c * (unit(i, j) - dot*u[j])
			}
		}
		nT := norm64(T)
		if nT < tol {
			break
		}
		c, sn := math.Cos(nT), math.Sin(nT)
		for j := range u {
			u[j] = c*u[j] + sn*T[j]/nT
		}
		if nu := norm64(u); nu > tol {
			for j := range u {
				u[j] /= nu
			}
		}
	}
	var scale float64
	for _, nm := range norms {
		scale += alpha * nm
	}
	for j := range dst {
		dst[j] = float32(scale * u[j])
	}
	return nil
}

func norm64(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

// SCE is mergekit's sce (Select, Calculate, Erase; Wan et al. 2024) on the
// task vectors of xs from base: with selectTopK < 1 only the elements of
// largest variance across the models are kept (int(selectTopK * the
// number of non-zero variances), ties in index order); each model is
// weighted by its mean squared (kept) task vector, normalized over the
// models (uniform when they sum to about zero); elements whose sign
// disagrees with the sign of the sum are erased; the result is base plus
// the weighted mean of the remaining deltas (divided by at least 1e-6).
func SCE(dst, base []float32, xs [][]float32, selectTopK float64) error {
	if err := checkInputs(dst, plus(xs, base), make([]float64, len(xs)+1)); err != nil {
		return err
	}
	n := len(dst)
	var keep []float32 // nil: all
	if selectTopK < 1 {
		keep = make([]float32, n)
		if selectTopK > 0 {
			nonzero := 0
			for j := range keep {
				var m float64
				for _, x := range xs {
					m += float64(x[j]) - float64(base[j])
				}
				m /= float64(len(xs))
				var v float64
				for _, x := range xs {
					e := float64(x[j]) - float64(base[j]) - m
					v += e * e
				}
				keep[j] = float32(v / float64(len(xs)))
				if keep[j] != 0 {
					nonzero++
				}
			}
			keepTopK(keep, int(float64(nonzero)*selectTopK))
		}
	}
	tv := func(i, j int) float32 {
		if keep != nil && keep[j] == 0 {
			return 0
		}
		return xs[i][j] - base[j]
	}
	w := make([]float64, len(xs))
	for i := range xs {
		var s float64
		for j := 0; j < n; j++ {
			v := float64(tv(i, j))
			s += v * v
		}
		w[i] = s / float64(n)
	}
	sceNormalize(w)
	for j := range dst {
		var e float64
		for i := range xs {
			e += float64(tv(i, j))
		}
		var num, den float64
		for i := range xs {
			v := float64(tv(i, j))
			if (e >= 0 && v > 0) || (e < 0 && v < 0) {
				num += v * w[i]
				den += w[i]
			}
		}
		dst[j] = float32(float64(base[j]) + num/math.Max(den, 1e-6))
	}
	return nil
}

// sceNormalize divides SCE's model weights by their sum, or makes them
// uniform when they sum to about zero.
func sceNormalize(w []float64) {
	ws := sum(w)
	if math.Abs(ws) < 1e-6 {
		for i := range w {
			w[i] = 1 / float64(len(w))
		}
		return
	}
	for i := range w {
		w[i] /= ws
	}
}
