package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDotRowsAxpyRows(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(31, 32))
		for _, k := range []int{1, 7, 16, 32, 64, 80, 128, 200} {
			for _, n := range []int{0, 1, 3, 17} {
				stride := 3*k + 5
				a := randVec(r, max(0, (n-1)*stride+k))
				x := randVec(r, k)
				dst := make([]float32, n)
				DotRows(dst, a, stride, x)
				for j := range dst {
					row := a[j*stride : j*stride+k]
					var mag float32
					for i := range row {
						mag += float32(math.Abs(float64(row[i] * x[i])))
					}
					if want := refDot(row, x); !closeDot(dst[j], want, mag) {
						t.Fatalf("DotRows k=%d n=%d row %d: %g, reference %g", k, n, j, dst[j], want)
					}
				}
				p := randVec(r, n)
				got := randVec(r, k)
				want := append([]float32(nil), got...)
				AxpyRows(got, p, a, stride)
				for j := range p {
					refAxpy(p[j], a[j*stride:j*stride+k], want)
				}
				for i := range got {
					if !closeRel(got[i], want[i], 1e-5, 1) {
						t.Fatalf("AxpyRows k=%d n=%d [%d]: %g, reference %g", k, n, i, got[i], want[i])
					}
				}
				// On every path, AxpyRows is Axpy row by row, bit for bit.
				rowwise := randVec(r, k)
				batched := append([]float32(nil), rowwise...)
				AxpyRows(batched, p, a, stride)
				for j := range p {
					Axpy(p[j], a[j*stride:j*stride+k], rowwise)
				}
				for i := range batched {
					if math.Float32bits(batched[i]) != math.Float32bits(rowwise[i]) {
						t.Fatalf("AxpyRows k=%d n=%d [%d]: %g, Axpy row by row %g", k, n, i, batched[i], rowwise[i])
					}
				}
			}
		}
	})
}
