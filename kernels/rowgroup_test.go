package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// rowsFrom returns the rows i.. of m as a matrix sharing its storage.
func rowsFrom(m *Mat, i int) *Mat {
	s := &Mat{Rows: m.Rows - i, Cols: m.Cols, Type: m.Type}
	off := i * m.Cols
	switch m.Type {
	case F32:
		s.F32 = m.F32[off:]
	case BF16, F16:
		s.Half = m.Half[off:]
	case Q8_0:
		s.Q = m.Q[off:]
	case Q4_0:
		s.Q4 = m.Q4[off/2:]
	}
	if m.Type.quantized() {
		s.Scales = m.Scales[off/BlockSize:]
	}
	return s
}

// TestRowGroupingIndependence checks that a row's sum does not depend on
// which rows the kernel computes it with: the row kernels take rows in
// groups (of 4 or 8) and the rest one at a time, and MatVec over the rows
// from i on shifts every row into another place of its group. MatMul and
// the thread split only ever cut at multiples of the groups, so the other
// tests cannot see a group that sums in another order than a lone row.
func TestRowGroupingIndependence(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, typ := range types {
			for _, cols := range []int{32, 64, 100, 576} {
				if typ.quantized() && cols%BlockSize != 0 {
					continue
				}
				const rows = 19
				m := randMat(r, typ, rows, cols)
				x := randVec(r, cols)
				want := make([]float32, rows)
				MatVec(want, m, x)
				for i := 1; i < rows; i++ {
					got := make([]float32, rows-i)
					MatVec(got, rowsFrom(m, i), x)
					for j, g := range got {
						if w := want[i+j]; math.Float32bits(g) != math.Float32bits(w) {
							t.Fatalf("%v %dx%d: row %d is %g computed from row %d on, %g from row 0", typ, rows, cols, i+j, g, i, w)
						}
					}
				}
			}
		}
	})
}

// TestHalfWidening checks the widening of every BF16 and F16 value inside
// the matrix-vector kernels against the conversions of mat.go: row i holds
// the half i (infinities and NaNs replaced by zero) in column i%32 and
// zeros elsewhere, and x is all ones, so each row's product is the value
// itself, exactly.
func TestHalfWidening(t *testing.T) {
	paths(t, func(t *testing.T) {
		const rows, cols = 1 << 16, 32
		x := make([]float32, cols)
		for j := range x {
			x[j] = 1
		}
		for _, typ := range []Type{BF16, F16} {
			m := &Mat{Rows: rows, Cols: cols, Type: typ, Half: make([]uint16, rows*cols)}
			want := make([]float32, rows)
			for i := range rows {
				h := uint16(i)
				v := F16ToF32(h)
				if typ == BF16 {
					v = BF16ToF32(h)
				}
				if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
					continue
				}
				m.Half[i*cols+i%cols] = h
				want[i] = v
			}
			got := make([]float32, rows)
			MatVec(got, m, x)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v half %#04x widened to %g, want %g", typ, i, got[i], want[i])
				}
			}
		}
	})
}
