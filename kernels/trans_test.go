package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestTranspose checks against the definition.
func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, sh := range [][2]int{{0, 3}, {1, 1}, {3, 5}, {33, 65}, {64, 31}} {
		src := randVec(r, sh[0]*sh[1])
		dst := make([]float32, len(src))
		Transpose(dst, src, sh[0], sh[1])
		for i := range sh[0] {
			for j := range sh[1] {
				if dst[j*sh[0]+i] != src[i*sh[1]+j] {
					t.Fatalf("%v: (%d,%d)", sh, i, j)
				}
			}
		}
	}
}

// TestTransposedProducts holds MatMulNN, MatMulTN and MatMulAdd to the
// references on every instruction set, accumulating into a non-zero dst,
// and checks that the thread count changes no bit.
func TestTransposedProducts(t *testing.T) {
	defer SetThreads(0)
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range []int{1, 3, 4, 17, 40} {
			for _, k := range []int{1, 5, 8, 32, 33, 100} {
				for _, m := range []int{1, 6, 25, 64} {
					a, b := randVec(r, n*k), randVec(r, k*m)
					init := randVec(r, n*m)
					// NN: a n×k, b k×m.
					check := func(name string, got, want, mag []float32) {
						t.Helper()
						for i := range got {
							if !closeDot(got[i], want[i], mag[i]) {
								t.Fatalf("%s n=%d k=%d m=%d elem %d: got %g, reference %g", name, n, k, m, i, got[i], want[i])
							}
						}
					}
					abs := func(v []float32) []float32 {
						o := make([]float32, len(v))
						for i, x := range v {
							o[i] = float32(math.Abs(float64(x)))
						}
						return o
					}
					mag := append([]float32(nil), abs(init)...)
					refMatMulNN(mag, abs(a), abs(b), n, k, m)
					want := append([]float32(nil), init...)
					refMatMulNN(want, a, b, n, k, m)
					var first []float32
					for _, th := range []int{1, 2, 3} {
						SetThreads(th)
						got := append([]float32(nil), init...)
						MatMulNN(got, a, b, n, k, m)
						check("NN", got, want, mag)
						if first == nil {
							first = got
						} else if fmt.Sprint(first) != fmt.Sprint(got) {
							t.Fatalf("NN n=%d k=%d m=%d: %d threads change the result", n, k, m, th)
						}
					}
					// TN: a k×n (reuse a's values), b k×m.
					mag = append([]float32(nil), abs(init)...)
					refMatMulTN(mag, abs(a), abs(b), k, n, m)
					want = append([]float32(nil), init...)
					refMatMulTN(want, a, b, k, n, m)
					got := append([]float32(nil), init...)
					MatMulTN(got, a, b, k, n, m)
					check("TN", got, want, mag)
					// MatMulAdd: w m×k (b's values as bᵀ of NN), x n×k.
					bt := make([]float32, k*m)
					Transpose(bt, b, k, m)
					got = append([]float32(nil), init...)
					MatMulAdd(got, bt, a, n, m, k)
					mag = append([]float32(nil), abs(init)...)
					refMatMulNN(mag, abs(a), abs(b), n, k, m)
					want = append([]float32(nil), init...)
					refMatMulNN(want, a, b, n, k, m)
					check("Add", got, want, mag)
				}
			}
		}
	})
}

// BenchmarkTransposed measures the backward's products on SmolLM2-135M
// shapes for 256 tokens against the reference:
//
//	go test -run - -bench Transposed ./kernels/
func BenchmarkTransposed(b *testing.B) {
	defer SetThreads(0)
	r := rand.New(rand.NewPCG(1, 1))
	const n = 256
	for _, sh := range [][2]int{{576, 576}, {1536, 576}, {576, 1536}} {
		out, in := sh[0], sh[1]
		w, dy, x := randVec(r, out*in), randVec(r, n*out), randVec(r, n*in)
		dx, dw, y := make([]float32, n*in), make([]float32, out*in), make([]float32, n*out)
		flops := float64(2 * n * out * in)
		for _, th := range []int{1, 2} {
			for _, c := range []struct {
				name string
				fn   func()
			}{
				{"NN", func() { MatMulNN(dx, dy, w, n, out, in) }},
				{"TN", func() { MatMulTN(dw, dy, x, n, out, in) }},
				{"NT", func() { MatMulAdd(y, w, x, n, out, in) }},
				{"refNN", func() { refMatMulNN(dx, dy, w, n, out, in) }},
			} {
				b.Run(fmt.Sprintf("%dx%d/t%d/%s", out, in, th, c.name), func(b *testing.B) {
					SetThreads(th)
					for b.Loop() {
						c.fn()
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
