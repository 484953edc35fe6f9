package kernels

import "math"

// The drivers that run a vector kernel over the first multiple of its
// width and the reference's steps over the rest, shared by the assembly
// paths (AVX-512, AVX2, NEON), which differ only in the kernels and width.

// softmaxSplit is Softmax with vector kernels over the first multiple of
// lanes elements: vmax returns their maximum, vexp replaces them with
// exp(x-m) and returns their sum, vscale multiplies them by s.
func softmaxSplit(x []float32, lanes int, vmax func(x *float32, n int) float32,
	vexp func(x *float32, n int, m float32) float32, vscale func(x *float32, n int, s float32)) {
	k := len(x) &^ (lanes - 1)
	if k == 0 {
		refSoftmax(x)
		return
	}
	m := vmax(&x[0], k)
	for _, v := range x[k:] {
		m = max(m, v)
	}
	sum := vexp(&x[0], k, m)
	for i, v := range x[k:] {
		e := float32(math.Exp(float64(v - m)))
		x[k+i] = e
		sum += e
	}
	inv := 1 / sum
	vscale(&x[0], k, inv)
	for i := k; i < len(x); i++ {
		x[i] *= inv
	}
}

// rmsNormSplit is RMSNorm with vector kernels over the first multiple of
// lanes elements: sumSq returns the sum of their squares, normMul writes
// dst = x*scale*(w+offset) for them.
func rmsNormSplit(dst, x, w []float32, eps, offset float32, lanes int, sumSq func(x *float32, n int) float32,
	normMul func(dst, x, w *float32, n int, scale, offset float32)) {
	k := len(x) &^ (lanes - 1)
	var ss float32
	if k > 0 {
		ss = sumSq(&x[0], k)
	}
	for _, v := range x[k:] {
		ss += v * v
	}
	scale := float32(1 / math.Sqrt(float64(ss)/float64(len(x))+float64(eps)))
	if k > 0 {
		normMul(&dst[0], &x[0], &w[0], k, scale, offset)
	}
	for i := k; i < len(x); i++ {
		dst[i] = x[i] * scale * (w[i] + offset)
	}
}

// mapSplit runs vec, an in-place element-wise kernel, over the first
// multiple of lanes elements of x and ref over the rest.
func mapSplit(x []float32, lanes int, vec func(x *float32, n int), ref func([]float32)) {
	k := len(x) &^ (lanes - 1)
	if k > 0 {
		vec(&x[0], k)
	}
	ref(x[k:])
}

// widenSplit is Widen with the kernels bf16 and f16 over the first
// multiple of lanes values and the reference over the rest.
func widenSplit(dst []float32, src []uint16, t Type, lanes int, bf16, f16 func(dst *float32, src *uint16, n int)) {
	k := len(src) &^ (lanes - 1)
	if k > 0 {
		if t == BF16 {
			bf16(&dst[0], &src[0], k)
		} else {
			f16(&dst[0], &src[0], k)
		}
	}
	widenRef(dst[k:], src[k:], t)
}
