package kernels

import (
	"fmt"
	"unsafe"
)

// DotRows computes dst[j] = Dot(a[j*stride:j*stride+len(x)], x) for every j
// in [0, len(dst)): the attention scores of one query against keys stored
// every stride floats (a KV cache laid out [position][heads*headDim]). It
// runs on the caller's goroutine; callers parallelize over heads.
func DotRows(dst, a []float32, stride int, x []float32) {
	n, k := len(dst), len(x)
	if n == 0 {
		return
	}
	if stride < k || len(a) < (n-1)*stride+k {
		panic(fmt.Sprintf("kernels.DotRows: %d rows of %d every %d floats need %d, have %d", n, k, stride, (n-1)*stride+k, len(a)))
	}
	kv := simd[F32].mv
	k32 := k &^ 31
	if kv == nil || k32 == 0 {
		for j := range dst {
			dst[j] = refDot(a[j*stride:j*stride+k], x)
		}
		return
	}
	kv(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), nil, unsafe.Pointer(&x[0]), n, k32, stride)
	if k32 < k {
		for j := range dst {
			row := a[j*stride : j*stride+k]
			var s float32
			for i := k32; i < k; i++ {
				s += row[i] * x[i]
			}
			dst[j] += s
		}
	}
}

// AxpyRows computes dst[i] += sum_j p[j] * v[j*stride+i] for i in
// [0, len(dst)), adding the rows in order of j: the attention-weighted sum of
// values stored every stride floats.
func AxpyRows(dst, p, v []float32, stride int) {
	n, k := len(p), len(dst)
	if n == 0 {
		return
	}
	if stride < k || len(v) < (n-1)*stride+k {
		panic(fmt.Sprintf("kernels.AxpyRows: %d rows of %d every %d floats need %d, have %d", n, k, stride, (n-1)*stride+k, len(v)))
	}
	axpyRowsImpl(dst, p, v, stride)
}

// axpyRowsImpl is AxpyRows after its checks; the assembly replaces it.
var axpyRowsImpl = refAxpyRows

// refAxpyRows is AxpyRows one row at a time.
func refAxpyRows(dst, p, v []float32, stride int) {
	k := len(dst)
	for j, w := range p {
		axpyImpl(w, v[j*stride:j*stride+k], dst)
	}
}
