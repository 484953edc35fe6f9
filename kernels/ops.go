package kernels

import (
	"fmt"
	"sync"
	"unsafe"
)

// This file holds the exported kernels. Each checks its arguments, splits the
// work over the thread pool where that pays, and calls either the assembly
// chosen at start-up (see simd_amd64.go) or the reference in ref.go.
//
// Every output element of MatVec and MatMul is computed by one call of one
// kernel in an order that depends only on the element, never on the thread
// count or on how rows and tokens were grouped: the assembly kernels give
// each (row, token) pair one accumulator that walks the columns in the same
// order, whether the tile is 1x1, 4x1, 8x1, 4x4 or 6x4. So MatMul's rows equal
// MatVec's bit for bit, and results do not change with SetThreads.

// kern is one weight type's assembly. mv computes rows consecutive rows over
// the first k columns (k a positive multiple of 32; ldw is the row stride in
// elements); mm, when present, computes a tile of 4 rows x 4 tokens
// (ldd and ldx are the strides of dst and x in elements), and mm6, when
// present, one of 6 rows x 4 tokens. s points at the row's Q8_0 scales and
// is ignored by the other types. For Q8_0, x points at quantized
// activations (q8Rec records; ldx is then in bytes) and k is a multiple of
// 64; see q8.go.
//
// mm6p, when present (F32), is mm6 over one panel of k columns of a longer
// row (mm6x4Panel in gen_amd64.go): acc holds the tile's accumulators
// between panels, mode bit 0 loads them from acc, bit 1 marks the last
// panel, which stores the sums to dst. Long rows are cut into panels that
// stay in L1 while the tokens are swept over them (panelCols).
type kern struct {
	mv   func(dst, w, s, x unsafe.Pointer, rows, k, ldw int)
	mvs  func(dst, w, s, x unsafe.Pointer, rows, k, ldw int) // mv reading four runs of rows far apart, bit for bit the same (decodeStream)
	mm   func(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)
	mm6  func(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)
	mm6p func(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode int)
	mm2  *[9]tile2 // decode tiles of 2 rows x T tokens, indexed by T
	// pack and mmp, when present (Q8_0), are a tile that reads rows packed
	// in groups of eight: pack packs nb blocks of eight rows (row stride
	// ldw bytes) into dst, and mmp computes those eight rows x four tokens
	// (see q8PackedTiles).
	pack func(dst, w, s unsafe.Pointer, ldw, nb int)
	mmp  func(dst, wp, x unsafe.Pointer, ldd, ldx, k int)
}

// tile2 computes tiles of 2 rows x T tokens (mm2xT in gen_amd64.go) over
// rows (even) consecutive rows and one panel of k columns; acc and mode are
// as for kern.mm6p, acc holding 2T registers per row pair.
type tile2 func(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

var (
	simd     [5]kern    // indexed by Type; zero entries use the reference
	simdName = "purego" // which instruction set the kernels use

	dotImpl      = refDot
	axpyImpl     = refAxpy
	rmsNormImpl  = refRMSNorm
	softmaxImpl  = refSoftmax
	siluImpl     = refSiLU
	geluTanhImpl = refGELUTanh

	// widenImpl, when set, is Widen's kernel (BF16/F16 to float32).
	widenImpl func(dst []float32, src []uint16, t Type)

	// widenTiles says that widenImpl is fast enough that MatMul widens
	// each row block once and runs the f32 tile over it, rather than
	// widening the same weights again for every 4 tokens (AVX-512; on
	// AVX2 the half-precision tiles are faster, and Widen's kernel serves
	// its other callers, the merges' bf16 rows).
	widenTiles bool

	// prefetchImpl, when set, asks the caches for n bytes from p.
	prefetchImpl func(p unsafe.Pointer, n int)

	// widenMode says which half-precision row blocks MatMul widens to f32
	// for the f32 tile (with widenTiles); the others run the half-precision
	// tile (kern.mm6), which widens in registers. Both give the same
	// results bit for bit; which is faster depends on the CPU and the
	// shape, so calibration chooses (calibrate_amd64.go).
	widenMode = widenAll
)

// The values of widenMode.
const (
	widenAll   = iota // every row block
	widenNone         // none
	widenShort        // rows short enough for one column panel (panelCols)
)

// widenRows reports whether MatMul widens the row blocks of a
// half-precision matrix of cols columns (see widenMode).
func widenRows(cols int) bool {
	switch widenMode {
	case widenNone:
		return false
	case widenShort:
		k32 := cols &^ 31
		return panelCols(k32, 4) >= k32
	}
	return true
}

// Widen converts half-precision values of type t (BF16 or F16) to float32,
// exactly; len(dst) must be at least len(src).
func Widen(dst []float32, src []uint16, t Type) {
	if t != BF16 && t != F16 {
		panic(fmt.Sprintf("kernels.Widen: %v is not a half-precision type", t))
	}
	if len(dst) < len(src) {
		panic(fmt.Sprintf("kernels.Widen: len(dst) %d < len(src) %d", len(dst), len(src)))
	}
	if widenImpl != nil {
		widenImpl(dst, src, t)
		return
	}
	widenRef(dst, src, t)
}

// widenRef widens half-precision weights of type t to float32.
func widenRef(dst []float32, src []uint16, t Type) {
	if t == BF16 {
		for i, h := range src {
			dst[i] = BF16ToF32(h)
		}
		return
	}
	for i, h := range src {
		dst[i] = F16ToF32(h)
	}
}

// widenScratch holds row blocks widened to float32 for matMulRows.
var widenScratch sync.Pool

// getScratch returns a slice of length n from p (a pool of *[]T), or a new
// one when the pool's is short, and the pointer the caller gives back with
// p.Put(ptr): putting back the pool's own pointer, rather than the address
// of a new slice variable, keeps a call free of allocations.
func getScratch[T any](p *sync.Pool, n int) ([]T, *[]T) {
	if s, ok := p.Get().(*[]T); ok && cap(*s) >= n {
		return (*s)[:n], s
	}
	s := make([]T, n)
	return s, &s
}

// Impl names the instruction set the kernels use: "avx512+amx" (AVX-512,
// and AMX tiles for prefill with BF16 and Q8_0 weights), "avx512", "avx2",
// on arm64 "neon+dotprod" (NEON and SDOT) or "neon", or "purego".
func Impl() string { return simdName }

// Dot returns the dot product of a and b (len(a) == len(b)).
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("kernels.Dot: lengths %d and %d differ", len(a), len(b)))
	}
	return dotImpl(a, b)
}

// Axpy computes y += a*x (len(x) == len(y)).
func Axpy(a float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels.Axpy: lengths %d and %d differ", len(x), len(y)))
	}
	axpyImpl(a, x, y)
}

// RMSNorm writes x / rms(x) * (w + offset) to dst; offset is 1 for Gemma's
// (1 + w) convention, 0 otherwise. dst may alias x.
func RMSNorm(dst, x, w []float32, eps, offset float32) {
	if len(dst) < len(x) || len(w) < len(x) {
		panic(fmt.Sprintf("kernels.RMSNorm: len(x) %d, len(dst) %d, len(w) %d", len(x), len(dst), len(w)))
	}
	if len(x) == 0 {
		return
	}
	rmsNormImpl(dst[:len(x)], x, w[:len(x)], eps, offset)
}

// Softmax normalizes x in place into probabilities.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	softmaxImpl(x)
}

// SiLU computes x * sigmoid(x) in place.
func SiLU(x []float32) { siluImpl(x) }

// GELUTanh computes the tanh approximation of GELU in place (PyTorch's
// gelu(approximate="tanh"), Hugging Face's gelu_pytorch_tanh).
func GELUTanh(x []float32) { geluTanhImpl(x) }

// MatVec computes dst[i] = sum_j m[i,j] * x[j] for every row i, using the
// thread pool (see SetThreads). len(x) must be at least m.Cols and len(dst)
// at least m.Rows.
func MatVec(dst []float32, m *Mat, x []float32) {
	checkMat("MatVec", dst, m, x, 1)
	if m.Rows == 0 {
		return
	}
	if m.Type == Q8_0 {
		q8MatVec(dst, m, x)
		return
	}
	if m.Type == Q4_0 {
		q4MatMul(dst, m, x, 1)
		return
	}
	if m.Type == BF16 && bf16Act.Load() {
		bf16ActProduct(dst, m, x, 1)
		return
	}
	parallel(m.Rows, m.Rows*m.Cols, rowGrain, func(r0, r1 int) { matVecRows(dst, m, x, r0, r1) })
}

// MatMul computes dst[t*Rows+i] = sum_j m[i,j] * x[t*Cols+j] for n
// activation rows x (a batch of n tokens). Row t of dst equals
// MatVec(dst[t*Rows:], m, x[t*Cols:]) exactly.
func MatMul(dst []float32, m *Mat, x []float32, n int) {
	if n <= 0 || m.Rows == 0 {
		return
	}
	checkMat("MatMul", dst, m, x, n)
	if n == 1 {
		MatVec(dst, m, x)
		return
	}
	if m.Type == Q8_0 {
		q8MatMul(dst, m, x, n)
		return
	}
	if m.Type == Q4_0 {
		q4MatMul(dst, m, x, n)
		return
	}
	if m.Type == BF16 && bf16Act.Load() {
		bf16ActProduct(dst, m, x, n)
		return
	}
	if amxMatMul(dst, m, x, n) {
		return
	}
	xp, xpp := packPanels(m, x, n)
	if xp != nil {
		defer panelScratch.Put(xpp)
	}
	parallel(m.Rows, m.Rows*m.Cols*n, rowGrain, func(r0, r1 int) { matMulRowsP(dst, m, x, xp, n, r0, r1) })
}

// Product is one of the products MatMulShared computes: Dst = M times the
// shared activations.
type Product struct {
	Dst []float32
	M   *Mat
}

// MatMulShared computes MatMul(p.Dst, p.M, x, n) for each product p, the
// matrices sharing the activations x (as a layer's query, key and value
// projections do). Where the matrices have the same type and columns and
// take the row kernels (F32, BF16 and F16 weights, outside AMX; in the
// bf16-activation mode, BF16 weights for one token with VDPBF16PS, the
// activations then rounded once for all), their rows are cut among the threads in
// one parallel call rather than one call each: the threads wait for each
// other once, and the small matrices no longer run alone. Each result
// equals MatMul's bit for bit.
func MatMulShared(x []float32, n int, ps ...Product) {
	if n <= 0 {
		return
	}
	shared, rows, act := len(ps) > 1, 0, bf16Act.Load()
	for _, p := range ps {
		checkMat("MatMulShared", p.Dst, p.M, x, n)
		m := p.M
		switch {
		case m.Type != ps[0].M.Type || m.Cols != ps[0].M.Cols:
			shared = false
		case m.Type == F32 || m.Type == F16:
		case m.Type == BF16 && !act && !amxTakes(m, n):
		case m.Type == BF16 && act && n == 1 && bf16dMV != nil && m.Cols >= 32:
			// The bf16-activation mode's matvec (bf16ActProduct).
		case m.Type.quantized() && n == 1:
			// One token through Q8_0 or Q4_0 weights (quantShared).
		default:
			shared = false
		}
		rows += m.Rows
	}
	if !shared {
		for _, p := range ps {
			MatMul(p.Dst, p.M, x, n)
		}
		return
	}
	if rows == 0 {
		return
	}
	C := ps[0].M.Cols
	if ps[0].M.Type == BF16 && act {
		bf16ActShared(x, rows, ps)
		return
	}
	if ps[0].M.Type.quantized() {
		quantShared(x, rows, ps)
		return
	}
	var xp []float32
	if n > 1 {
		var xpp *[]float32
		if xp, xpp = packPanels(ps[0].M, x, n); xp != nil {
			defer panelScratch.Put(xpp)
		}
	}
	sharedRows(ps, rows*C*n, func(p Product, r0, r1 int) {
		if n == 1 {
			matVecRows(p.Dst, p.M, x, r0, r1)
		} else {
			matMulRowsP(p.Dst, p.M, x, xp, n, r0, r1)
		}
	})
}

// sharedRows calls fn over the rows of the products ps, taken end to end
// and cut among the threads in one parallel call (work multiply-adds):
// fn gets each product's part of a chunk, r0 < r1 in that product's rows.
func sharedRows(ps []Product, work int, fn func(p Product, r0, r1 int)) {
	rows := 0
	for _, p := range ps {
		rows += p.M.Rows
	}
	parallel(rows, work, rowGrain, func(lo, hi int) {
		off := 0
		for _, p := range ps {
			r0, r1 := max(lo-off, 0), min(hi-off, p.M.Rows)
			off += p.M.Rows
			if r0 < r1 {
				fn(p, r0, r1)
			}
		}
	})
}

// quantShared decodes one token through products of Q8_0 or Q4_0 weights
// of one width: the activations are quantized once for all of them, and
// one parallel call covers every product's rows, each row summed as
// q8MatVec and q4MatMul sum it.
func quantShared(x []float32, rows int, ps []Product) {
	typ, C := ps[0].M.Type, ps[0].M.Cols
	a := quantizeActs(x, 1, C, simd[typ].mv != nil)
	defer putActs(a)
	sharedRows(ps, rows*C, func(p Product, r0, r1 int) {
		if typ == Q8_0 {
			q8Rows(p.Dst, p.M, a, 0, r0, r1)
		} else {
			q4Rows(p.Dst, p.M, a, 0, r0, r1)
		}
	})
}

// widenMin is the fewest tokens for which half-precision weights are
// widened to f32 for the panel tile; fewer run the half-precision tile
// (kern.mm6), which widens in registers. With a single 4-token tile per
// row block the widened copy is used once and does not pay for itself:
// BatchDecode with 4 sequences ran about 8% more tokens per CPU second
// with the direct tile (Qwen2.5-0.5B shape, 2 threads, Zen5, 4 interleaved
// pairs on a loaded machine); with 8 and 16 the widened copy won.
const widenMin = 5

// panelScratch holds activations packed by column panels.
var panelScratch, panelHalf sync.Pool

// f32Tiles reports whether matMulRows runs the f32 6x4 tile (kern.mm6p)
// on m for n tokens, and returns the width of its column panels.
func f32Tiles(m *Mat, n int) (bool, int) {
	ok := simd[F32].mm6p != nil && n >= 4 && (m.Type == F32 ||
		((m.Type == BF16 || m.Type == F16) && widenTiles && n >= widenMin && widenRows(m.Cols)))
	k32 := m.Cols &^ 31
	return ok && k32 > 0, panelCols(k32, 4)
}

// packPanels returns the activations x of n tokens packed for the 6x4
// tiles when their rows are cut into column panels, or nil: panel by
// panel, each token's columns of the panel, so that the tokens swept over
// a panel lie together in memory (packedAt finds them). The copy is
// shared by the threads; the caller gives it back to panelScratch with
// the pointer returned beside it.
func packPanels(m *Mat, x []float32, n int) ([]float32, *[]float32) {
	ok, kc := f32Tiles(m, n)
	if decodeTiles(m, n) {
		return nil, nil // the decode tiles read x as it is
	}
	k32 := m.Cols &^ 31
	if !ok || kc >= k32 {
		return nil, nil
	}
	C := m.Cols
	xp, xpp := getScratch[float32](&panelScratch, n*k32)
	parallel(n, n*C, 1, func(t0, t1 int) {
		for c0 := 0; c0 < k32; c0 += kc {
			kw := min(kc, k32-c0)
			for t := t0; t < t1; t++ {
				copy(xp[n*c0+t*kw:n*c0+(t+1)*kw], x[t*C+c0:t*C+c0+kw])
			}
		}
	})
	return xp, xpp
}

// rowGrain is the granularity of the row ranges handed to threads: a
// multiple of every register tile's height (8, 6, 4), so that ranges rarely
// end in a partial tile.
const rowGrain = 24

// checkMat panics with a clear message when the slices cannot hold the
// product: the assembly must never read or write out of bounds.
func checkMat(op string, dst []float32, m *Mat, x []float32, n int) {
	if m.Rows < 0 || m.Cols < 0 {
		panic(fmt.Sprintf("kernels.%s: bad shape %dx%d", op, m.Rows, m.Cols))
	}
	size := m.Rows * m.Cols
	var have int
	switch m.Type {
	case F32:
		have = len(m.F32)
	case BF16, F16:
		have = len(m.Half)
	case Q8_0:
		have = len(m.Q)
		if m.Cols%BlockSize != 0 || len(m.Scales) < size/BlockSize {
			panic(fmt.Sprintf("kernels.%s: Q8_0 matrix %dx%d needs Cols%%%d == 0 and %d scales (has %d)",
				op, m.Rows, m.Cols, BlockSize, size/BlockSize, len(m.Scales)))
		}
	case Q4_0:
		have = 2 * len(m.Q4)
		if m.Cols%BlockSize != 0 || len(m.Scales) < size/BlockSize {
			panic(fmt.Sprintf("kernels.%s: Q4_0 matrix %dx%d needs Cols%%%d == 0 and %d scales (has %d)",
				op, m.Rows, m.Cols, BlockSize, size/BlockSize, len(m.Scales)))
		}
	default:
		panic(fmt.Sprintf("kernels.%s: unknown weight type %v", op, m.Type))
	}
	if have < size {
		panic(fmt.Sprintf("kernels.%s: %v matrix %dx%d holds only %d values", op, m.Type, m.Rows, m.Cols, have))
	}
	if len(x) < n*m.Cols || len(dst) < n*m.Rows {
		panic(fmt.Sprintf("kernels.%s: %d tokens of a %dx%d matrix need len(x) >= %d and len(dst) >= %d, have %d and %d",
			op, n, m.Rows, m.Cols, n*m.Cols, n*m.Rows, len(x), len(dst)))
	}
}

// wptr returns the address of row r's first weight.
func (m *Mat) wptr(r int) unsafe.Pointer {
	off := r * m.Cols
	switch m.Type {
	case F32:
		return unsafe.Pointer(unsafe.SliceData(m.F32[off:]))
	case BF16, F16:
		return unsafe.Pointer(unsafe.SliceData(m.Half[off:]))
	case Q4_0:
		return unsafe.Pointer(unsafe.SliceData(m.Q4[off/2:]))
	default:
		return unsafe.Pointer(unsafe.SliceData(m.Q[off:]))
	}
}

// sptr returns the address of row r's first Q8_0 scale (nil for other types).
func (m *Mat) sptr(r int) unsafe.Pointer {
	if !m.Type.quantized() {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(m.Scales[r*m.Cols/BlockSize:]))
}

// tailDot returns the sum over columns k..Cols-1 of row i times x, in column
// order. The assembly covers the columns before k.
func (m *Mat) tailDot(i int, x []float32, k int) float32 {
	var s float32
	off := i * m.Cols
	switch m.Type {
	case F32:
		for j := k; j < m.Cols; j++ {
			s += m.F32[off+j] * x[j]
		}
	case BF16:
		for j := k; j < m.Cols; j++ {
			s += BF16ToF32(m.Half[off+j]) * x[j]
		}
	case F16:
		for j := k; j < m.Cols; j++ {
			s += F16ToF32(m.Half[off+j]) * x[j]
		}
	}
	return s
}

// decodeStream makes the decode paths run kern.mvs instead of kern.mv. On
// Zen 5 the several-row loops of kern.mv, which read neighbouring rows at
// once and prefetch the next ones in software, stream bf16 weights at 33.9
// GB/s on 896-column rows at one thread, where a plain read of the same
// memory gets 40.5 and four runs far apart 39.0 (quiet, docs/speed.md,
// before the runs were prefetched): the hardware prefetcher
// follows one sequential stream, or a few far apart, at full speed, and
// neighbouring rows read together poorly (two at once: 0.6x of eight).
// kern.mvs reads four runs of rows far apart (f32, bf16, f16, Q8_0, and
// the bf16-activation mode's bf16dMVs), each prefetched 1.5 KiB ahead
// (AVX2: 2 KiB). The sums are the same bit for bit. Intel keeps the loops
// it was tuned on.
var decodeStream bool

// streams reports whether decoding runs k.mvs.
func (k *kern) streams() bool { return decodeStream && k.mvs != nil }

func matVecRows(dst []float32, m *Mat, x []float32, r0, r1 int) {
	k := simd[m.Type]
	k32 := m.Cols &^ 31
	if k.mv == nil || k32 == 0 {
		refMatVecRows(dst, m, x, r0, r1)
		return
	}
	mv := k.mv
	if k.streams() {
		mv = k.mvs
	}
	mv(unsafe.Pointer(&dst[r0]), m.wptr(r0), m.sptr(r0), unsafe.Pointer(&x[0]), r1-r0, k32, m.Cols)
	if k32 < m.Cols {
		for i := r0; i < r1; i++ {
			dst[i] += m.tailDot(i, x, k32)
		}
	}
}

// tileBytes bounds the activations of one token block so that they stay in
// the L2 cache while every weight row of the block is swept over them.
const tileBytes = 512 << 10

// l1Bytes bounds the weights of one row block of the kernels without a 4x4
// tile, so that they stay in L1 while the tokens are swept over them.
const l1Bytes = 24 << 10

// l2Bytes bounds the weights of one row block that the small-batch path of
// matMulRows sweeps each token over, so that they stay in L2.
const l2Bytes = 192 << 10

// panelBytes bounds one panel of a 6-row block of weights (kern.mm6p), so
// that it stays in L1 (32 KiB and up) beside the activations streaming by.
const panelBytes = 24 << 10

// tileAcc is the float32s of one 6x4 tile's accumulators between panels.
const tileAcc = 24 * 16

// accScratch holds the accumulators of a token block's tiles.
var accScratch sync.Pool

// panelCols returns the width of the column panels that the k32 columns of
// six rows of esize-byte weights are cut into: all k32 when they fit in
// panelBytes, else about equal multiples of 32.
func panelCols(k32, esize int) int {
	np := (6*k32*esize + panelBytes - 1) / panelBytes
	if np <= 1 {
		return k32
	}
	return min(k32, ((k32+np-1)/np+31)&^31)
}

// panelMode is the mode of kern.mm6p for the panel at column c0.
func panelMode(c0, kc, k32 int) int {
	mode := 0
	if c0 > 0 {
		mode |= 1
	}
	if c0+kc >= k32 {
		mode |= 2
	}
	return mode
}

func matMulRows(dst []float32, m *Mat, x []float32, n, r0, r1 int) {
	matMulRowsP(dst, m, x, nil, n, r0, r1)
}

// matMulRowsP is matMulRows with the activations also packed by
// packPanels (xp, or nil to read them from x).
func matMulRowsP(dst []float32, m *Mat, x, xp []float32, n, r0, r1 int) {
	R, C := m.Rows, m.Cols
	k := simd[m.Type]
	k32 := C &^ 31
	if k.mv == nil || k32 == 0 {
		for t := 0; t < n; t++ {
			refMatVecRows(dst[t*R:(t+1)*R], m, x[t*C:(t+1)*C], r0, r1)
		}
		return
	}
	tb := max(4, tileBytes/(4*C)&^3)
	// Half-precision weights: widen each block of six rows once and run
	// the f32 tile over it. Widening is exact and the f32 kernels add in
	// the same order, so the result is the same bit for bit.
	var wide []float32
	if (m.Type == BF16 || m.Type == F16) && widenTiles && simd[F32].mm6p != nil && n >= widenMin && widenRows(C) {
		var widep *[]float32
		wide, widep = getScratch[float32](&widenScratch, 6*C)
		defer widenScratch.Put(widep)
	}
	if decodeTiles(m, n) {
		decodeRows(dst, m, unsafe.Pointer(&x[0]), 4, n, r0, r1, k.mm2, k.mv)
		if k32 < C {
			for t := 0; t < n; t++ {
				for i := r0; i < r1; i++ {
					dst[t*R+i] += m.tailDot(i, x[t*C:], k32)
				}
			}
		}
		return
	}
	if ok, kc := f32Tiles(m, n); ok {
		// The f32 6x4 tile, over column panels that stay in L1.
		tile := simd[F32].mm6p
		var acc []float32
		if kc < k32 {
			tb = max(4, tileBytes/(4*kc)&^3)
			var accp *[]float32
			acc, accp = getScratch[float32](&accScratch, tb/4*tileAcc)
			defer accScratch.Put(accp)
		}
		for t0 := 0; t0 < n; t0 += tb {
			t1 := min(n, t0+tb)
			t4 := t0 + (t1-t0)&^3
			r := r0
			for ; r+6 <= r1; r += 6 {
				w := m.wptr(r)
				if wide != nil {
					widenImpl(wide, m.Half[r*C:(r+6)*C], m.Type)
					w = unsafe.Pointer(&wide[0])
				}
				// While the tiles run, fetch the next row block's weights
				// a slice per call, so that widening or multiplying them
				// does not wait for memory.
				var next unsafe.Pointer
				calls, size := (t4-t0)/4*((k32+kc-1)/kc), 6*C*m.Type.size()
				if prefetchImpl != nil && r+12 <= r1 && calls > 0 {
					next = m.wptr(r + 6)
				}
				call := 0
				for c0 := 0; c0 < k32; c0 += kc {
					kw, mode := min(kc, k32-c0), panelMode(c0, kc, k32)
					for t := t0; t < t4; t += 4 {
						if next != nil {
							if lo, hi := call*size/calls, (call+1)*size/calls; hi > lo {
								prefetchImpl(unsafe.Add(next, lo), hi-lo)
							}
							call++
						}
						var a unsafe.Pointer
						if acc != nil {
							a = unsafe.Pointer(&acc[(t-t0)/4*tileAcc])
						}
						xa, ldx := unsafe.Pointer(&x[t*C+c0]), C
						if xp != nil {
							xa, ldx = unsafe.Pointer(&xp[n*c0+t*kw]), kw
						}
						tile(unsafe.Pointer(&dst[t*R+r]), unsafe.Add(w, 4*c0), a, xa, R, C, ldx, kw, mode)
					}
				}
				for t := t4; t < t1; t++ {
					simd[F32].mv(unsafe.Pointer(&dst[t*R+r]), w, nil, unsafe.Pointer(&x[t*C]), 6, k32, C)
				}
			}
			if r < r1 {
				for t := t0; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), nil, unsafe.Pointer(&x[t*C]), r1-r, k32, C)
				}
			}
			if k32 < C {
				for t := t0; t < t1; t++ {
					for i := r0; i < r1; i++ {
						dst[t*R+i] += m.tailDot(i, x[t*C:], k32)
					}
				}
			}
		}
		return
	}
	for t0 := 0; t0 < n; t0 += tb {
		t1 := min(n, t0+tb)
		if k.mm6 != nil && t1-t0 < 4 {
			// Too few tokens for the tile: one matvec call per token over
			// a block of rows that stays in L2, so that each call streams
			// eight rows at once (mv's fast path) and the weights come
			// from memory once. Each row's sum is MatVec's bit for bit.
			rb := max(8, l2Bytes/(m.Type.size()*C)&^7)
			for r := r0; r < r1; r += rb {
				re := min(r1, r+rb)
				for t := t0; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), nil, unsafe.Pointer(&x[t*C]), re-r, k32, C)
				}
			}
		} else if k.mm6 != nil {
			r := r0
			for ; r+6 <= r1; r += 6 {
				w := m.wptr(r)
				t := t0
				for ; t+4 <= t1; t += 4 {
					k.mm6(unsafe.Pointer(&dst[t*R+r]), w, nil, unsafe.Pointer(&x[t*C]), R, C, C, k32)
				}
				for ; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), w, nil, unsafe.Pointer(&x[t*C]), 6, k32, C)
				}
			}
			if r < r1 {
				for t := t0; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), nil, unsafe.Pointer(&x[t*C]), r1-r, k32, C)
				}
			}
		} else if k.mm != nil {
			r := r0
			for ; r+4 <= r1; r += 4 {
				w, s := m.wptr(r), m.sptr(r)
				t := t0
				for ; t+4 <= t1; t += 4 {
					k.mm(unsafe.Pointer(&dst[t*R+r]), w, s, unsafe.Pointer(&x[t*C]), R, C, C, k32)
				}
				for ; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), w, s, unsafe.Pointer(&x[t*C]), 4, k32, C)
				}
			}
			if r < r1 {
				for t := t0; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), m.sptr(r), unsafe.Pointer(&x[t*C]), r1-r, k32, C)
				}
			}
		} else {
			esize := 4
			switch m.Type {
			case BF16, F16:
				esize = 2
			case Q8_0:
				esize = 1
			}
			rb := max(4, l1Bytes/(esize*C)&^3)
			for r := r0; r < r1; r += rb {
				re := min(r1, r+rb)
				for t := t0; t < t1; t++ {
					k.mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), m.sptr(r), unsafe.Pointer(&x[t*C]), re-r, k32, C)
				}
			}
		}
		if k32 < C {
			for t := t0; t < t1; t++ {
				for i := r0; i < r1; i++ {
					dst[t*R+i] += m.tailDot(i, x[t*C:], k32)
				}
			}
		}
	}
}

// decodeMin and decodeMax bound the tokens for which MatMul runs the
// decode tiles (kern.mm2) on half-precision weights: every weight is
// loaded and widened once, in a register, for up to 8 tokens, so one pass
// over the weights serves a whole decode batch. BatchDecode (Qwen2.5-0.5B
// shape, 2 threads, loaded 2-core Zen5) ran 4 sequences ~10% faster on the
// tiles than on the 6x4 tile (5% with bf16 activations) and 2 sequences
// ~12% slower than on mv token by token over L2 blocks.
const decodeMin, decodeMax = 4, 16

// decodeTiles reports whether matMulRows runs the decode tiles on n tokens
// of m.
func decodeTiles(m *Mat, n int) bool {
	return simd[m.Type].mm2 != nil && n >= decodeMin && n <= decodeMax
}

// decodePanelBytes bounds the activations of 8 tokens over one column
// panel of the decode tiles, so that they stay in L1 while the rows of a
// block stream by.
const decodePanelBytes = 32 << 10

// decodeRows computes rows r0..r1 of n tokens with the decode tiles: the
// columns before the last multiple of 32 only (the caller adds the tails).
// x holds the activations (xsize bytes each, ldx Cols); a block of rows
// that stays in L2 is swept by groups of up to 8 tokens, each over column
// panels whose activations stay in L1, and the pairs of rows of the block
// run through one tile call per panel. An odd last row runs through mv
// token by token. Every sum is MatVec's bit for bit (see mm2xT).
func decodeRows(dst []float32, m *Mat, x unsafe.Pointer, xsize, n, r0, r1 int, tiles *[9]tile2,
	mv func(dst, w, s, x unsafe.Pointer, rows, k, ldw int)) {
	R, C := m.Rows, m.Cols
	k32 := C &^ 31
	kc := k32
	if np := (8*k32*xsize + decodePanelBytes - 1) / decodePanelBytes; np > 1 {
		kc = min(k32, ((k32+np-1)/np+31)&^31)
	}
	esize := m.Type.size()
	rb := max(2, l2Bytes/(esize*C)&^1)
	var acc []float32
	if kc < k32 {
		var accp *[]float32
		acc, accp = getScratch[float32](&accScratch, rb*8*16)
		defer accScratch.Put(accp)
	}
	var a unsafe.Pointer
	if acc != nil {
		a = unsafe.Pointer(&acc[0])
	}
	rp := r0 + (r1-r0)&^1
	for r := r0; r < rp; r += rb {
		re := min(rp, r+rb)
		w := m.wptr(r)
		for t0 := 0; t0 < n; t0 += 8 {
			tile := tiles[min(8, n-t0)]
			for c0 := 0; c0 < k32; c0 += kc {
				kw, mode := min(kc, k32-c0), panelMode(c0, kc, k32)
				tile(unsafe.Pointer(&dst[t0*R+r]), unsafe.Add(w, esize*c0), a,
					unsafe.Add(x, xsize*(t0*C+c0)), R, C, C, kw, mode, re-r)
			}
		}
	}
	if rp < r1 {
		for t := 0; t < n; t++ {
			mv(unsafe.Pointer(&dst[t*R+rp]), m.wptr(rp), nil, unsafe.Add(x, xsize*t*C), 1, k32, C)
		}
	}
}
