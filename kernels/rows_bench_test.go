package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkAxpyRows is the attention-weighted sum of values of one query
// over n cached positions (head_dim 64, KV rows of 3 heads), with the
// one-call kernel and row by row.
func BenchmarkAxpyRows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const k, stride = 64, 192
	for _, n := range []int{128, 1024} {
		v := randVec(r, n*stride)
		p := randVec(r, n)
		dst := make([]float32, k)
		for _, impl := range []struct {
			name string
			fn   func(dst, p, v []float32, stride int)
		}{{"rows", axpyRowsImpl}, {"axpy", refAxpyRows}} {
			b.Run(fmt.Sprintf("n%d/%s", n, impl.name), func(b *testing.B) {
				b.SetBytes(int64(n * k * 4))
				for b.Loop() {
					impl.fn(dst, p, v, stride)
				}
			})
		}
	}
}

// BenchmarkDotRows is the attention scores of one query over n cached
// positions (head_dim 64, KV rows of 3 heads).
func BenchmarkDotRows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const k, stride = 64, 192
	for _, n := range []int{128, 1024} {
		a := randVec(r, n*stride)
		x := randVec(r, k)
		dst := make([]float32, n)
		b.Run(fmt.Sprintf("n%d", n), func(b *testing.B) {
			b.SetBytes(int64(n * k * 4))
			for b.Loop() {
				DotRows(dst, a, stride, x)
			}
		})
	}
}
