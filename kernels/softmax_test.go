package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestSoftmaxWideRange gives Softmax scores far wider than exp's range (a
// spread of 400), as attention scores can be: only the largest score
// subtracted first keeps e^(x-max) in range, so a wrong maximum (one lane,
// a tail element missed) shows. Elementwise tests clamp their inputs to
// ±30, where any shift would pass.
func TestSoftmaxWideRange(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, n := range []int{1, 3, 4, 5, 16, 17, 100} {
			for pos := 0; pos < n; pos += max(1, n/7) {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.Float64()*400 - 300)
				}
				x[pos] = 100 + float32(r.Float64()) // the maximum, anywhere
				want := append([]float32(nil), x...)
				refSoftmax(want)
				Softmax(x)
				for i := range x {
					if !closeRel(x[i], want[i], 1e-5, 1e-30) {
						t.Fatalf("n=%d max at %d [%d]: got %g, reference %g", n, pos, i, x[i], want[i])
					}
				}
			}
		}
	})
}
