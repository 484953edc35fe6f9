package kernels

import (
	"sync"
	"unsafe"
)

// Q8_0 products quantize the activations too, as llama.cpp does: each block
// of 32 activations of a token gets its own scale sx and int8 values qx
// (quantizeRowQ8, the weights' rounding), and a row's product is
//
//	sum over blocks b of float32(sum_j qw[j]*qx[j]) * sx[b] * sw[b]
//
// with the integer dot of each block exact. The activations are quantized
// once per MatVec or MatMul call, before the rows are shared out, and every
// path (assembly and reference) computes this same sum; they differ only in
// the order of the float additions.

// q8Acts holds n tokens' activations quantized to Q8_0.
type q8Acts struct {
	n, cols int
	q       []int8    // n*cols values
	s       []float32 // n*cols/BlockSize scales
	// rec holds, for the assembly, each token's values again as
	// ceil(cols/64) records of 64 columns (see q8Rec); nil when no
	// assembly kernel will read them.
	rec []q8Rec
}

// q8Rec is the layout the Q8_0 assembly reads 64 columns (two blocks) of
// one token in: the values, each block's scale spread over 8 lanes, and
// the correction that takes back out the bias of the unsigned weights
// (-128 times the sum of each block's values, in lanes 0 and 8). A last
// record of a single block leaves the second half zero.
type q8Rec struct {
	q [64]int8
	s [16]float32
	c [16]int32
}

var actsPool sync.Pool // of *q8Acts

// quantizeActs quantizes n tokens of cols activations (cols a multiple of
// BlockSize) into scratch from actsPool; recs asks for the records too.
// The caller puts the result back with putActs.
func quantizeActs(x []float32, n, cols int, recs bool) *q8Acts {
	a, _ := actsPool.Get().(*q8Acts)
	if a == nil {
		a = new(q8Acts)
	}
	a.n, a.cols = n, cols
	a.q = grow(a.q, n*cols)
	a.s = grow(a.s, n*cols/BlockSize)
	a.rec = a.rec[:0]
	if recs {
		a.rec = grow(a.rec, n*q8RecsPerRow(cols))
	}
	if n*cols < 1<<15 {
		a.quantize(x, 0, n, recs)
	} else {
		// Tokens are independent, so a batch's are shared out (this
		// runs before, not inside, the product's parallel call).
		parallel(n, 4*n*cols, 1, func(t0, t1 int) { a.quantize(x, t0, t1, recs) })
	}
	return a
}

// quantize quantizes tokens t0..t1-1 of x.
func (a *q8Acts) quantize(x []float32, t0, t1 int, recs bool) {
	cols, nr := a.cols, q8RecsPerRow(a.cols)
	for t := t0; t < t1; t++ {
		q := a.q[t*cols : (t+1)*cols]
		s := a.s[t*cols/BlockSize : (t+1)*cols/BlockSize]
		if recs {
			quantRecsImpl(a.rec[t*nr:(t+1)*nr], q, s, x[t*cols:(t+1)*cols])
		} else {
			quantizeRowQ8(q, s, x[t*cols:(t+1)*cols])
		}
	}
}

// quantRecsImpl quantizes one token (a multiple of BlockSize long) into q
// and s and lays it out as records, exactly as quantRecsRef does.
var quantRecsImpl = quantRecsRef

// quantRecsFast says quantRecsImpl is an assembly kernel: quantizing
// weights then goes through it too (records discarded), about ten times
// faster than quantizeRowQ8 alone in Go.
var quantRecsFast bool

func quantRecsRef(rec []q8Rec, q []int8, s []float32, x []float32) {
	quantizeRowQ8(q, s, x)
	packRecs(rec, q, s)
}

func putActs(a *q8Acts) { actsPool.Put(a) }

// grow returns s resliced to n, reallocated if its capacity is short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func q8RecsPerRow(cols int) int { return (cols + 63) / 64 }

// packRecs lays one token's quantized values out as records.
func packRecs(rec []q8Rec, q []int8, s []float32) {
	for i := range rec {
		r := &rec[i]
		*r = q8Rec{}
		for h := 0; h < 2; h++ {
			b := 2*i + h
			if b >= len(s) {
				break
			}
			blk := q[b*BlockSize : (b+1)*BlockSize]
			copy(r.q[h*BlockSize:], blk)
			var sum int32
			for _, v := range blk {
				sum += int32(v)
			}
			for j := 0; j < 8; j++ {
				r.s[8*h+j] = s[b]
			}
			r.c[8*h] = -128 * sum
		}
	}
}

// q8BlockDot returns the exact integer dot of one block of weights and
// activations.
func q8BlockDot(w, x []int8) int32 {
	var s int32
	for j := range BlockSize {
		s += int32(w[j]) * int32(x[j])
	}
	return s
}

// refQ8Rows computes rows r0..r1-1 of the product of m with token t of a
// into dst (indexed by row).
func refQ8Rows(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	c, nb := m.Cols, m.Cols/BlockSize
	xq := a.q[t*c : (t+1)*c]
	xs := a.s[t*nb : (t+1)*nb]
	for i := r0; i < r1; i++ {
		var s float32
		for b := 0; b < nb; b++ {
			off := i*c + b*BlockSize
			d := q8BlockDot(m.Q[off:off+BlockSize], xq[b*BlockSize:])
			s += float32(d) * xs[b] * F16ToF32(m.Scales[i*nb+b])
		}
		dst[i] = s
	}
}

// q8Rows computes rows r0..r1-1 of the product of m with token t of a into
// dst (indexed by row), with the assembly when there is one. The assembly
// covers the columns in whole records of two blocks; a last odd block is
// added here, the same way whichever kernel ran.
func q8Rows(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	k := simd[Q8_0]
	if k.mv == nil {
		refQ8Rows(dst, m, a, t, r0, r1)
		return
	}
	k64 := m.Cols &^ 63
	if k64 > 0 {
		mv := k.mv
		if k.streams() {
			mv = k.mvs
		}
		mv(unsafe.Pointer(&dst[r0]), m.wptr(r0), m.sptr(r0), a.recPtr(t), r1-r0, k64, m.Cols)
	} else {
		clear(dst[r0:r1])
	}
	q8Tail(dst, m, a, t, r0, r1)
}

// recPtr returns the address of token t's first record.
func (a *q8Acts) recPtr(t int) unsafe.Pointer {
	return unsafe.Pointer(&a.rec[t*q8RecsPerRow(a.cols)])
}

// q8Tail adds the last block to rows r0..r1-1 when the blocks are odd in
// number (the assembly stops at a multiple of 64 columns).
func q8Tail(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int) {
	c, nb := m.Cols, m.Cols/BlockSize
	if nb%2 == 0 {
		return
	}
	b := nb - 1
	xq := a.q[t*c+b*BlockSize : (t+1)*c]
	xs := a.s[t*nb+b]
	for i := r0; i < r1; i++ {
		off := i*c + b*BlockSize
		d := q8BlockDot(m.Q[off:off+BlockSize], xq)
		dst[i] += float32(d) * xs * F16ToF32(m.Scales[i*nb+b])
	}
}

// q8MatVec is MatVec for Q8_0 weights.
func q8MatVec(dst []float32, m *Mat, x []float32) {
	a := quantizeActs(x, 1, m.Cols, simd[Q8_0].mv != nil)
	defer putActs(a)
	parallel(m.Rows, m.Rows*m.Cols, rowGrain, func(r0, r1 int) { q8Rows(dst, m, a, 0, r0, r1) })
}

// q8MatMul is MatMul for Q8_0 weights: AMX tiles where the CPU has them
// (amxQ8MatMul), else 4x4 tiles where there is an assembly tile, each
// token's rows on their own otherwise.
func q8MatMul(dst []float32, m *Mat, x []float32, n int) {
	// The records come with the assembly's quantizer at no extra cost
	// (and the reference quantizer without them is slower), so they are
	// made even when AMX takes every row.
	a := quantizeActs(x, n, m.Cols, simd[Q8_0].mv != nil)
	defer putActs(a)
	if amxQ8Applies(m, n) {
		amxQ8MatMul(dst, m, a, n)
		return
	}
	parallel(m.Rows, m.Rows*m.Cols*n, rowGrain, func(r0, r1 int) { q8MatMulRows(dst, m, a, n, r0, r1) })
}

// q8MatMulRows computes rows r0..r1-1 of the product of m with the n
// tokens of a.
func q8MatMulRows(dst []float32, m *Mat, a *q8Acts, n, r0, r1 int) {
	k := simd[Q8_0]
	R, C := m.Rows, m.Cols
	k64 := C &^ 63
	if k.mm == nil || k64 == 0 {
		// Sweep the tokens over row blocks that stay in L1.
		rb := max(4, l1Bytes/C&^3)
		for r := r0; r < r1; r += rb {
			for t := 0; t < n; t++ {
				q8Rows(dst[t*R:(t+1)*R], m, a, t, r, min(r1, r+rb))
			}
		}
		return
	}
	if k.mmp != nil && r1-r0 >= 8 && n >= 4 {
		q8PackedTiles(dst, m, a, n, r0, r1, k, q8Tail)
		return
	}
	quantTiles(dst, m, a, n, r0, r1, k, q8Tail)
}

// q8PackedBytes is the size of one block of a packed group of eight rows
// (q8Packed in gen_amd64.go: eight rows' 32 values, then their scales as
// float32).
const q8PackedBytes = 8*BlockSize + 8*4

// q8PackScratch holds the rows packed by q8PackedTiles.
var q8PackScratch sync.Pool

// q8PackedTiles is quantTiles for a kernel that reads rows packed in groups
// of eight (kern.pack, kern.mmp; Q8_0, and Q4_0 on AVX2, with q8Tail or
// q4Tail as tail): each group is packed once, then swept
// over the tokens four at a time, in token blocks whose records stay in
// cache. Four rows left over run the 4x4 tile (kern.mm), the rest and the
// tokens left over the row kernel, and each token's last odd block
// tail; every kernel sums a (row, token) the same way, so the result
// does not depend on which one ran.
func q8PackedTiles(dst []float32, m *Mat, a *q8Acts, n, r0, r1 int, k kern, tail func(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int)) {
	R, C := m.Rows, m.Cols
	k64 := C &^ 63
	nb := k64 / BlockSize
	ldx := q8RecsPerRow(C) * int(unsafe.Sizeof(q8Rec{}))
	groups := (r1 - r0) / 8
	gb := nb * q8PackedBytes
	buf, bp := getScratch[byte](&q8PackScratch, groups*gb)
	defer q8PackScratch.Put(bp)
	for g := 0; g < groups; g++ {
		r := r0 + 8*g
		k.pack(unsafe.Pointer(&buf[g*gb]), m.wptr(r), m.sptr(r), C, nb)
	}
	tb := max(4, tileBytes/ldx&^3)
	for t0 := 0; t0 < n; t0 += tb {
		t1 := min(n, t0+tb)
		t4 := t0 + (t1-t0)&^3
		for g := 0; g < groups; g++ {
			r := r0 + 8*g
			wp := unsafe.Pointer(&buf[g*gb])
			for t := t0; t < t4; t += 4 {
				k.mmp(unsafe.Pointer(&dst[t*R+r]), wp, a.recPtr(t), R, ldx, k64)
			}
			for t := t4; t < t1; t++ {
				k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), m.sptr(r), a.recPtr(t), 8, k64, C)
			}
		}
		r := r0 + 8*groups
		if r+4 <= r1 && k.mm != nil {
			w, s := m.wptr(r), m.sptr(r)
			for t := t0; t < t4; t += 4 {
				k.mm(unsafe.Pointer(&dst[t*R+r]), w, s, a.recPtr(t), R, C, ldx, k64)
			}
			for t := t4; t < t1; t++ {
				k.mv(unsafe.Pointer(&dst[t*R+r]), w, s, a.recPtr(t), 4, k64, C)
			}
			r += 4
		}
		for t := t0; t < t1; t++ {
			if r < r1 {
				k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), m.sptr(r), a.recPtr(t), r1-r, k64, C)
			}
			tail(dst[t*R:(t+1)*R], m, a, t, r0, r1)
		}
	}
}

// quantTiles computes rows r0..r1-1 of the product of m (Q8_0 or Q4_0)
// with the n tokens of a through k's assembly: 4-row x 4-token tiles (k.mm)
// over token blocks that keep their records in cache, the rows and tokens
// left over by the row kernel (k.mv), and each token's last odd block by
// tail.
func quantTiles(dst []float32, m *Mat, a *q8Acts, n, r0, r1 int, k kern, tail func(dst []float32, m *Mat, a *q8Acts, t, r0, r1 int)) {
	R, C := m.Rows, m.Cols
	k64 := C &^ 63
	ldx := q8RecsPerRow(C) * int(unsafe.Sizeof(q8Rec{}))
	tb := max(4, tileBytes/ldx&^3)
	for t0 := 0; t0 < n; t0 += tb {
		t1 := min(n, t0+tb)
		r := r0
		for ; r+4 <= r1; r += 4 {
			w, s := m.wptr(r), m.sptr(r)
			t := t0
			for ; t+4 <= t1; t += 4 {
				k.mm(unsafe.Pointer(&dst[t*R+r]), w, s, a.recPtr(t), R, C, ldx, k64)
			}
			for ; t < t1; t++ {
				k.mv(unsafe.Pointer(&dst[t*R+r]), w, s, a.recPtr(t), 4, k64, C)
			}
		}
		for t := t0; t < t1; t++ {
			if r < r1 {
				k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), m.sptr(r), a.recPtr(t), r1-r, k64, C)
			}
			tail(dst[t*R:(t+1)*R], m, a, t, r0, r1)
		}
	}
}
