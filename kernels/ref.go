package kernels

import "math"

// This file holds the pure-Go reference for every kernel. The exported entry
// points in ops.go call these or their assembly equivalents; the purego build
// tag makes them call these everywhere. They are written for clarity, not
// speed, and every other path is tested against them.

func refDot(a, b []float32) float32 {
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}

// refMatVecRows computes dst[i] = sum_j m[i,j] * x[j] for rows r0..r1-1.
func refMatVecRows(dst []float32, m *Mat, x []float32, r0, r1 int) {
	c := m.Cols
	switch m.Type {
	case F32:
		for i := r0; i < r1; i++ {
			dst[i] = refDot(m.F32[i*c:(i+1)*c], x)
		}
	case BF16:
		for i := r0; i < r1; i++ {
			var s float32
			for j, h := range m.Half[i*c : (i+1)*c] {
				s += BF16ToF32(h) * x[j]
			}
			dst[i] = s
		}
	case F16:
		for i := r0; i < r1; i++ {
			var s float32
			for j, h := range m.Half[i*c : (i+1)*c] {
				s += F16ToF32(h) * x[j]
			}
			dst[i] = s
		}
	case Q8_0:
		a := quantizeActs(x, 1, c, false)
		refQ8Rows(dst, m, a, 0, r0, r1)
		putActs(a)
	case Q4_0:
		a := quantizeActs(x, 1, c, false)
		refQ4Rows(dst, m, a, 0, r0, r1)
		putActs(a)
	}
}

func refMatMul(dst []float32, m *Mat, x []float32, n int) {
	for t := 0; t < n; t++ {
		refMatVecRows(dst[t*m.Rows:(t+1)*m.Rows], m, x[t*m.Cols:(t+1)*m.Cols], 0, m.Rows)
	}
}

func refRMSNorm(dst, x, w []float32, eps, offset float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	scale := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		dst[i] = v * scale * (w[i] + offset)
	}
}

func refSoftmax(x []float32) {
	if len(x) == 0 {
		return
	}
	max := x[0]
	for _, v := range x[1:] {
		if v > max {
			max = v
		}
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - max)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

func refSiLU(x []float32) {
	for i, v := range x {
		x[i] = v / (1 + float32(math.Exp(float64(-v))))
	}
}

func refGELUTanh(x []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, v := range x {
		f := float64(v)
		x[i] = float32(0.5 * f * (1 + math.Tanh(c*(f+0.044715*f*f*f))))
	}
}

func refAxpy(a float32, x, y []float32) {
	for i, v := range x {
		y[i] += a * v
	}
}
