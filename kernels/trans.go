package kernels

import (
	"fmt"
	"sync"
)

// This file holds the transposed products a training backward pass needs,
// beside MatMul's y = x·Wᵀ:
//
//	MatMulNN: dst += a·b    (the input gradient dX = dY·W)
//	MatMulTN: dst += aᵀ·b   (the weight gradient dW = dYᵀ·X)
//
// All matrices are dense float32, row-major. Both products are rewritten
// as MatMul's form, whose kernels are the tested, tiled and threaded ones:
// the operands that need it are transposed into scratch (Transpose), which
// costs one pass over them against the product's k passes. The pure-Go
// references below are the yardstick the tests hold them to. As with
// MatMul, every output element is computed in an order fixed by the
// element, so results do not depend on the thread count.

// Transpose writes the cols×rows transpose of src (rows×cols) into dst,
// in blocks of 16×16 split over the thread pool; each block's writes are
// contiguous runs.
func Transpose(dst, src []float32, rows, cols int) {
	if rows < 0 || cols < 0 || len(src) < rows*cols || len(dst) < rows*cols {
		panic(fmt.Sprintf("kernels.Transpose: %dx%d needs %d values, have src %d, dst %d", rows, cols, rows*cols, len(src), len(dst)))
	}
	const b = 16
	Parallel((cols+b-1)/b, rows*cols/4, func(c0, c1 int) {
		for i0 := 0; i0 < rows; i0 += b {
			i1 := min(rows, i0+b)
			for j := c0 * b; j < min(cols, c1*b); j++ {
				d := dst[j*rows+i0 : j*rows+i1]
				for ii := range d {
					d[ii] = src[(i0+ii)*cols+j]
				}
			}
		}
	})
}

// MatMulNN adds a·b into dst: dst[i*m+j] += Σ_p a[i*k+p]·b[p*m+j] for a
// n×k and b k×m. In a backward pass, dX += dY·W with a = dY [tokens, out]
// and b = W [out, in].
func MatMulNN(dst, a, b []float32, n, k, m int) {
	checkTrans("MatMulNN", dst, a, b, n, k, m)
	if n == 0 || m == 0 || k == 0 {
		return
	}
	if k < smallDim {
		// A short inner dimension (a LoRA rank): each row of dst is a
		// weighted sum of b's k rows, vectorized along m; no transposes.
		Parallel(n, n*k*m, func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				AxpyRows(dst[i*m:(i+1)*m], a[i*k:(i+1)*k], b, m)
			}
		})
		return
	}
	bt, btp := getScratch[float32](&transB, k*m)
	Transpose(bt, b, k, m)
	matMulAdd(dst, bt, a, n, k, m)
	transB.Put(btp)
}

// MatMulTN adds aᵀ·b into dst: dst[i*m+j] += Σ_p a[p*n+i]·b[p*m+j] for a
// k×n and b k×m. In a backward pass, dW += dYᵀ·X with a = dY [tokens, out]
// and b = X [tokens, in] (k is the number of tokens).
func MatMulTN(dst, a, b []float32, k, n, m int) {
	checkTrans("MatMulTN", dst, a, b, n, k, m)
	if n == 0 || m == 0 || k == 0 {
		return
	}
	if n < smallDim {
		// Few output rows (a LoRA A's gradient): row i of dst is the sum
		// of b's rows weighted by column i of a; no transposes of b.
		Parallel(n, n*k*m, func(i0, i1 int) {
			p := make([]float32, k)
			for i := i0; i < i1; i++ {
				for t := range k {
					p[t] = a[t*n+i]
				}
				AxpyRows(dst[i*m:(i+1)*m], p, b, m)
			}
		})
		return
	}
	if m < smallDim {
		// Few output columns (a LoRA B's gradient): dstᵀ = bᵀ·a by the
		// branch above, added back transposed.
		tt := make([]float32, m*n)
		MatMulTN(tt, b, a, k, m, n)
		for i := range n {
			for j := range m {
				dst[i*m+j] += tt[j*n+i]
			}
		}
		return
	}
	at, atp := getScratch[float32](&transA, k*n)
	bt, btp := getScratch[float32](&transB, k*m)
	Transpose(at, a, k, n)
	Transpose(bt, b, k, m)
	matMulAdd(dst, bt, at, n, k, m)
	transA.Put(atp)
	transB.Put(btp)
}

// MatMulAdd adds x·wᵀ into dst (w rows×cols, x n×cols, dst n×rows):
// MatMul's product for a dense float32 weight, accumulated. A backward
// pass that keeps a frozen weight's transpose uses it for dX += dY·W.
func MatMulAdd(dst, w, x []float32, n, rows, cols int) {
	if len(w) < rows*cols || len(x) < n*cols || len(dst) < n*rows {
		panic(fmt.Sprintf("kernels.MatMulAdd: %d tokens of %dx%d, have w %d, x %d, dst %d", n, rows, cols, len(w), len(x), len(dst)))
	}
	if n == 0 || rows == 0 || cols == 0 {
		return
	}
	matMulAdd(dst, w, x, n, cols, rows)
}

// matMulAdd is dst[t*m+j] += Σ_p w[j*k+p]·x[t*k+p] through MatMul.
func matMulAdd(dst, w, x []float32, n, k, m int) {
	tmp, tmpp := getScratch[float32](&transOut, n*m)
	MatMul(tmp, &Mat{Rows: m, Cols: k, Type: F32, F32: w}, x, n)
	for i, v := range tmp {
		dst[i] += v
	}
	transOut.Put(tmpp)
}

// smallDim is the size under which a dimension counts as short (a LoRA
// rank): products with a short inner dimension, or few rows, take the
// kernels' row axpys instead of transposing operands for MatMul, whose
// tiles need 32 columns or more.
const smallDim = 32

// Scratch for the transposed operands and the product before it is added.
var transA, transB, transOut sync.Pool

func checkTrans(op string, dst, a, b []float32, n, k, m int) {
	if n < 0 || k < 0 || m < 0 || len(a) < n*k || len(b) < k*m || len(dst) < n*m {
		panic(fmt.Sprintf("kernels.%s: n=%d k=%d m=%d, have a %d, b %d, dst %d", op, n, k, m, len(a), len(b), len(dst)))
	}
}

// refMatMulNN is MatMulNN's reference: each element's sum in p order.
func refMatMulNN(dst, a, b []float32, n, k, m int) {
	for i := range n {
		for j := range m {
			var s float32
			for p := range k {
				s += a[i*k+p] * b[p*m+j]
			}
			dst[i*m+j] += s
		}
	}
}

// refMatMulTN is MatMulTN's reference.
func refMatMulTN(dst, a, b []float32, k, n, m int) {
	for i := range n {
		for j := range m {
			var s float32
			for p := range k {
				s += a[p*n+i] * b[p*m+j]
			}
			dst[i*m+j] += s
		}
	}
}
