package kernels

import "unsafe"

// Q4_0 products use the Q8_0 activations of q8.go (quantized once per
// call, with the records for the assembly) and llama.cpp's Q4_0 x Q8_0
// math: for each block, the exact integer dot of the weights' values
// (u-8) with the activations' int8 values, times both scales, summed in
// float32.

// refQ4Rows computes rows r0..r1-1 of the product of m with token t of a
// into dst (indexed by row).
func refQ4Rows(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	c, nb := m.Cols, m.Cols/BlockSize
	xq := a.q[t*c : (t+1)*c]
	xs := a.s[t*nb : (t+1)*nb]
	for i := r0; i < r1; i++ {
		var s float32
		for b := 0; b < nb; b++ {
			s += float32(q4BlockDot(m, i*c+b*BlockSize, xq[b*BlockSize:])) * xs[b] * F16ToF32(m.Scales[i*nb+b])
		}
		dst[i] = s
	}
}

// q4BlockDot returns the exact integer dot of the block of m starting at
// weight off with the activations x.
func q4BlockDot(m *Mat, off int, x []int8) int32 {
	var s int32
	for j := range BlockSize {
		s += int32(q4At(m.Q4, off+j)) * int32(x[j])
	}
	return s
}

// q4Rows is q8Rows for Q4_0: the assembly over whole records of two
// blocks, a last odd block here.
func q4Rows(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	k := simd[Q4_0]
	if k.mv == nil {
		refQ4Rows(dst, m, a, t, r0, r1)
		return
	}
	k64 := m.Cols &^ 63
	if k64 > 0 {
		k.mv(unsafe.Pointer(&dst[r0]), m.wptr(r0), m.sptr(r0), a.recPtr(t), r1-r0, k64, m.Cols)
	} else {
		clear(dst[r0:r1])
	}
	q4Tail(dst, m, a, t, r0, r1)
}

// q4Tail adds the last block to rows r0..r1-1 of token t when the blocks
// are odd in number (the assembly stops at a multiple of 64 columns).
func q4Tail(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	c, nb := m.Cols, m.Cols/BlockSize
	if nb%2 == 0 {
		return
	}
	b := nb - 1
	xq := a.q[t*c+b*BlockSize : (t+1)*c]
	xs := a.s[t*nb+b]
	for i := r0; i < r1; i++ {
		dst[i] += float32(q4BlockDot(m, i*c+b*BlockSize, xq)) * xs * F16ToF32(m.Scales[i*nb+b])
	}
}

// q4MatMul is MatVec (n = 1) and MatMul for Q4_0 weights.
func q4MatMul(dst []float32, m *Mat, x []float32, n int) {
	a := quantizeActs(x, n, m.Cols, simd[Q4_0].mv != nil)
	defer putActs(a)
	R, C := m.Rows, m.Cols
	parallel(R, R*C*n, rowGrain, func(r0, r1 int) { q4MatMulRows(dst, m, a, n, r0, r1) })
}

// q4MatMulRows computes rows r0..r1-1 of the product of m with the n
// tokens of a: as q8MatMulRows does, over rows packed in eights where
// there is a packed tile (AVX2), else in tiles of 4 rows x 4 tokens where
// there is an assembly tile (which unpacks each row's nibbles once for the
// four tokens), the rows and tokens left over by the row kernel, the last
// odd block by q4Tail; without a tile, each token's rows swept over row
// blocks that stay in L1.
func q4MatMulRows(dst []float32, m *Mat, a *q8Acts, n, r0, r1 int) {
	k := simd[Q4_0]
	R, C := m.Rows, m.Cols
	k64 := C &^ 63
	if k.mmp != nil && k64 > 0 && r1-r0 >= 8 && n >= 4 {
		q8PackedTiles(dst, m, a, n, r0, r1, k, q4Tail)
		return
	}
	if k.mm == nil || k64 == 0 || n < 4 {
		rb := max(4, 2*l1Bytes/C&^3)
		for r := r0; r < r1; r += rb {
			for t := 0; t < n; t++ {
				q4Rows(dst[t*R:(t+1)*R], m, a, t, r, min(r1, r+rb))
			}
		}
		return
	}
	quantTiles(dst, m, a, n, r0, r1, k, q4Tail)
}
