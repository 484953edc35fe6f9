//go:build !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQuantDotPaths holds the Q8_0 and Q4_0 kernels without SDOT (SMULL
// and SADALP, path neon) to those with it (neon+dotprod) bit for bit: the
// block dots are exact integers either way and the float work is the same.
// The Q8_0 weights span all of int8, -128 included, where the int16
// products are largest.
func TestQuantDotPaths(t *testing.T) {
	if !slices.Contains(simdPaths(), "neon+dotprod") {
		t.Skip("no SDOT on this CPU: only the neon path runs")
	}
	defer selectPath(Impl())
	r := rand.New(rand.NewPCG(13, 14))
	for _, typ := range []Type{Q8_0, Q4_0} {
		for _, sh := range [][2]int{{1, 64}, {5, 96}, {9, 576}, {17, 1600}} {
			rows, cols := sh[0], sh[1]
			m := randMat(r, typ, rows, cols)
			if typ == Q8_0 {
				for i := range m.Q {
					m.Q[i] = int8(r.IntN(256) - 128)
				}
			}
			x := randVec(r, 3*cols)
			var want []float32
			for _, p := range []string{"neon+dotprod", "neon"} {
				selectPath(p)
				got := make([]float32, 3*rows)
				MatMul(got, m, x, 3)
				if want == nil {
					want = got
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v %dx%d output %d: %g without SDOT, %g with", typ, rows, cols, i, got[i], want[i])
					}
				}
			}
		}
	}
}
