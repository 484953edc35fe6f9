//go:build !purego

package merge

import (
	"math"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The assembly halves of the element-wise hot paths: sign-elected sums
// (TIES, DARE-TIES), band selections and linear sums (breadcrumbs, task
// arithmetic), DELLA's keys and draws, and the bf16 narrowing after every
// chunk (kernels widens), in AVX-512 and, for the machines without it, in
// AVX2. Each computes exactly what its Go version computes, bit for bit;
// tests hold one to the other.

//go:noescape
func sumCore512(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, scratch unsafe.Pointer, n, models int, p *sumParams)

//go:noescape
func sumCore256(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, scratch unsafe.Pointer, n, models int, p *sumParams)

//go:noescape
func narrowBF16x256(dst *uint16, src *float32, n int)

//go:noescape
func collect256(buf *uint32, x, base *float32, n int, lo, hi uint32, lut *uint64) (c, above int)

//go:noescape
func collect256BF16(buf *uint32, x, base *uint16, n int, lo, hi uint32, lut *uint64) (c, above int)

//go:noescape
func collect256H(buf *uint32, x, base *float32, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above int)

//go:noescape
func collect256BF16H(buf *uint32, x, base *uint16, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above int)

//go:noescape
func bandLinear256(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, n, models int, p *sumParams)

//go:noescape
func linear256(dst *float32, xs *unsafe.Pointer, n, models int, w *float64, div float64)

//go:noescape
func dot256(x, y, b *float32, n int, s *[4]float64)

//go:noescape
func combine256(dst *float32, xs *unsafe.Pointer, base *float32, c *float64, n, models, flags int)

//go:noescape
func stock256(dst *float32, xs *unsafe.Pointer, base *float32, n, models int, t float64, flags int)

//go:noescape
func sceVar256(v, base, x0, x1 *float32, n int)

//go:noescape
func keepAtLeast256(m *uint32, d *float32, n int, th1 int32)

//go:noescape
func keepTies256(m *uint32, d *float32, n int, th uint32, q int) (j, left int)

//go:noescape
func collectBits256(buf *uint32, v *float32, n int, lo, hi uint32, lut *uint64) (c, above, nz int)

//go:noescape
func pruneRanks256(row *float32, ord *uint64, qg *uint64, th *uint64, p *float64, n int, s uint64, rescale int, c *[6][4]uint64)

//go:noescape
func keys256BF16(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32, idx *[12]uint64)

//go:noescape
func list256(a, s8, s16, zs, ls *uint64, n int, perm *[16][8]uint32) (n8, n16, nz int)

//go:noescape
func prefix256(c *int32, n int, start int32) (total int32)

//go:noescape
func collect512(buf *uint32, x, base *float32, n int, lo, hi uint32) (c, above int)

//go:noescape
func bandLinear512(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, n, models int, p *sumParams)

//go:noescape
func collect512BF16(buf *uint32, x, base *uint16, n int, lo, hi uint32) (c, above int)

//go:noescape
func pruneRanks512(row *float32, ord *uint64, q *int32, th *uint64, p *float64, n int, s uint64, rescale int)

//go:noescape
func narrowBF16x512(dst *uint16, src *float32, n int)

//go:noescape
func prefix512(c *int32, n int, start int32) (total int32)

// sumParams is what sumCore512 reads per model and per call; the layout is
// the assembly's.
type sumParams struct {
	sc     [16]float32 // delta scale per model
	th     [16]uint32  // keep threshold on 32-bit draws
	drop   [16]uint32  // 1: drop entries at random
	w      [16]float32 // weight per model
	lam    float32     // scale of the merged delta
	norm   uint32      // 1: divide by the agreeing weights
	eps    float32     // float32(minWeightSum)
	_      uint32
	consts [8]uint64  // rngGamma*8, the two mix multipliers
	mlo    [16]uint32 // drop 2: the kept band of |delta| bits, [mlo, mhi)
	mhi    [16]uint32
	w64    [16]float64 // bandLinear512: weight per model
	scale  float64     // bandLinear512: lambda / the weights' sum
	// sumCore256's constants as vectors of four: 4*gamma, the two mix
	// multipliers, each then its high half (VPMULUDQ reads low halves).
	c256 [5][4]uint64
	bf16 uint64 // pModelsBF16, pBaseBF16: which inputs are bfloat16
}

// The assembly reads mlo and mhi at these offsets.
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.mlo)-336]
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.mhi)-400]
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.w64)-464]
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.scale)-592]
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.c256)-600]
var _ = [1]struct{}{}[unsafe.Offsetof(sumParams{}.bf16)-760]

// hasAVX512 reports whether the CPU runs the AVX-512 assembly (F, DQ, BW
// and VL); without it, hasAVX2 whether it runs the AVX2 assembly.
var (
	hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT
)

func init() { useSIMD(true) }

// useSIMD switches the assembly on (what the CPU has of it) or off; tests
// call it to check both, so on must not reach instructions the CPU lacks
// (an AVX2-only machine died of SIGILL in the tests).
func useSIMD(on bool) {
	switch {
	case on && hasAVX512:
		narrowBF16, sumFast, combineSumFast, bandSumFast = narrowBF16Fast512, sumFast512, combineSum512, bandSum512
		collectFast, collectBF16Fast = collectFast512, collectBF16Fast512
		bandLinearFast, combineLinearFast = bandLinear512Go, combineLinear512
		pruneRanksFast, keysBF16Fast, prefixFast, listFast = pruneRanksFast512, keysBF16Fast512, prefixFast512, listFast256
		digitsFast = digitsFast512
		// Exp's bits are its FMA path's (math's useFMA: AVX and FMA),
		// which every AVX-512 machine takes unless GODEBUG turns FMA off;
		// the kernels' first use checks that math computes them so here.
		expFast, klTermsFast = pick(cpu.X86.HasFMA, expFast512), pick(cpu.X86.HasFMA, klTermsFast512)
		maxKeyFast = maxKeyFast512
		impTopFast, impHitsFast, fusionApplyFast = impTopFast512, impHitsFast512, fusionApplyFast512
		ram2Fast, nearSwapFast = ram2Fast512, nearSwapFast512
		ramNFast, ramCountNFast = ramNFast512, ramCountNFast512
	case on && hasAVX2:
		narrowBF16, sumFast, combineSumFast, bandSumFast = narrowBF16Fast256, sumFast256, combineSum256, bandSum256
		collectFast, collectBF16Fast = collectFast256, collectBF16Fast256
		bandLinearFast, combineLinearFast = bandLinear256Go, combineLinear256
		pruneRanksFast, keysBF16Fast, prefixFast, listFast = pruneRanksFast256, keysBF16Fast256, prefixFast256, listFast256
		digitsFast = digitsFast256
		// Exp's FMA path needs AVX too, which AVX2 machines have.
		expFast, klTermsFast = pick(cpu.X86.HasFMA, expFast256), pick(cpu.X86.HasFMA, klTermsFast256)
		maxKeyFast = nil
		impTopFast, impHitsFast, fusionApplyFast = impTopFast256, impHitsFast256, fusionApplyFast256
		ram2Fast, nearSwapFast = ram2Fast256, nearSwapFast256
		ramNFast, ramCountNFast = ramNFast256, ramCountNFast256
	default:
		narrowBF16, sumFast, combineSumFast, bandSumFast = narrowBF16Go, nil, nil, nil
		collectFast, collectBF16Fast = nil, nil
		bandLinearFast, combineLinearFast = nil, nil
		pruneRanksFast, keysBF16Fast, prefixFast, listFast = nil, nil, nil, nil
		digitsFast = nil
		expFast, klTermsFast = nil, nil
		maxKeyFast = nil
		impTopFast, impHitsFast, fusionApplyFast = nil, nil, nil
		ram2Fast, nearSwapFast = nil, nil
		ramNFast, ramCountNFast = nil, nil
	}
	// The kernels that exist in AVX2 only run on AVX-512 machines too,
	// which have AVX2; each is set, or cleared, by its own pick.
	avx2 := on && (hasAVX512 || hasAVX2)
	collectHeavyFast = pick(avx2, collectHeavyFast256)
	dropFast, sceOutFast, linearFast = pickWidest(on && hasAVX512, dropFast512, avx2, dropFast256), pick(avx2, sceOutFast256), pick(avx2, linearFast256)
	dotFast, combineFast, stockFast = pick(avx2, dotFast256), pick(avx2, combineFast256), pick(avx2, stockFast256)
	gram2Fast = pick(avx2, gram2Fast256)
	sceVarFast, keepAtLeastFast = pick(avx2, sceVarFast256), pick(avx2, keepAtLeastFast256)
	collectBitsFast = pick(avx2, collectBitsFast256)
	squaresFast, keepTiesFast, collectBitsHeavyFast = pick(avx2, squaresFast256), pick(avx2, keepTiesFast256), pick(avx2, collectBitsHeavyFast256)
	packMaskFast = pick(avx2, packMaskFast256)
	// The kernels with an AVX-512 twin take it where the CPU has AVX-512.
	avx512 := on && hasAVX512
	sceVarBF16Fast = pickWidest(avx512, sceVarBF16Fast512, avx2, sceVarBF16Fast256)
	sceOutBF16Fast = pickWidest(avx512, sceOutBF16Fast512, avx2, sceOutBF16Fast256)
	sceOutBF16BitsFast = pickWidest(avx512, sceOutBF16BitsFast512, avx2, sceOutBF16BitsFast256)
	bandSum2BF16Fast = pickWidest(avx512, bandSum2BF16Fast512, avx2, bandSum2BF16Fast256)
	bandLinearBF16Fast = pickWidest(avx512, bandLinearBF16Fast512, avx2, bandLinearBF16Fast256)
	collectBF16HeavyFast = pickWidest(avx512, collectBF16HeavyFast512, avx2, collectBF16HeavyFast256)
	squaresBF16Fast = pickWidest(avx512, squaresBF16Fast512, avx2, squaresBF16Fast256)
	sceWeighBF16Fast = pick(avx512, sceWeighBF16Fast512)
}

// pick returns f when on, else its zero value (nil: the Go loop).
func pick[F any](on bool, f F) F {
	if on {
		return f
	}
	var zero F
	return zero
}

// pickWidest returns f512 when on512, else pick(on256, f256).
func pickWidest[F any](on512 bool, f512 F, on256 bool, f256 F) F {
	if on512 {
		return f512
	}
	return pick(on256, f256)
}

// bandLinearBF16Fast512 and bandLinearBF16Fast256 run bandLinear512 or
// bandLinear256 on bfloat16 models over the largest multiple of 16 or 8
// entries, for up to 16 models; the base is float32 (base) or, when base
// is nil, bfloat16 (bbase).
var (
	bandLinearBF16Fast512 = bandLinearBF16With(16)
	bandLinearBF16Fast256 = bandLinearBF16With(8)
)

func bandLinearBF16With(lanes int) func(dst, base []float32, bbase []uint16, xs [][]uint16, w []float64, lo, hi []uint32, scale float64) int {
	return func(dst, base []float32, bbase []uint16, xs [][]uint16, w []float64, lo, hi []uint32, scale float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 || len(xs) == 0 || len(xs) > 16 {
			return 0
		}
		ptrs := ptrsOf(xs, 0, n)
		if base == nil {
			_ = bbase[n-1]
			bandLinearPtrs(lanes, dst, unsafe.Pointer(&bbase[0]), &ptrs, n, len(xs), w, lo, hi, scale, pModelsBF16|pBaseBF16)
			return n
		}
		_ = base[n-1]
		bandLinearPtrs(lanes, dst, unsafe.Pointer(&base[0]), &ptrs, n, len(xs), w, lo, hi, scale, pModelsBF16)
		return n
	}
}

// sumParams.bf16's flags: the models are bfloat16 (bandLinear512 and
// 256), the base is bfloat16 (those and bandSum2x512BF16 and 256).
const (
	pModelsBF16 = 1 << iota
	pBaseBF16
)

// ptrsOf returns the addresses of xs[i][a] for the assembly, each of xs
// checked to hold at least a+n entries (at most 16 of them).
func ptrsOf[T float32 | uint16](xs [][]T, a, n int) (p [16]unsafe.Pointer) {
	for i, x := range xs {
		_ = x[a+n-1]
		p[i] = unsafe.Pointer(&x[a])
	}
	return p
}

// bandLinearPtrs runs the linear band sum (bandLinear512 for lanes 16,
// bandLinear256 for 8) over n entries of the models at ptrs and the base
// at base, float32 or (by flags) bfloat16.
func bandLinearPtrs(lanes int, dst []float32, base unsafe.Pointer, ptrs *[16]unsafe.Pointer, n, models int, w []float64, lo, hi []uint32, scale float64, flags uint64) {
	var p sumParams
	for i := range models {
		p.w64[i], p.mlo[i], p.mhi[i] = w[i], lo[i], hi[i]
	}
	p.scale, p.bf16 = scale, flags
	linearCoreN(lanes, unsafe.Pointer(&dst[0]), base, base, &ptrs[0], n, models, &p)
}

// The wrappers below are made for either width: lanes 16 runs
// sumCore512 or bandLinear512, 8 sumCore256 or bandLinear256 (called
// directly, in sumCoreN and linearCoreN, so that the parameters stay on
// the stack).
var (
	combineSum512, combineSum256       = combineSumWith(16), combineSumWith(8)
	bandSum512, bandSum256             = bandSumWith(16), bandSumWith(8)
	bandLinear512Go, bandLinear256Go   = bandLinearWith(16), bandLinearWith(8)
	combineLinear512, combineLinear256 = combineLinearWith(16), combineLinearWith(8)
)

func sumCoreN(lanes int, dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, scratch unsafe.Pointer, n, models int, p *sumParams) {
	if lanes == 16 {
		sumCore512(dst, base, obase, xs, scratch, n, models, p)
	} else {
		sumCore256(dst, base, obase, xs, scratch, n, models, p)
	}
}

func linearCoreN(lanes int, dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, n, models int, p *sumParams) {
	if lanes == 16 {
		bandLinear512(dst, base, obase, xs, n, models, p)
	} else {
		bandLinear256(dst, base, obase, xs, n, models, p)
	}
}

// sumParamsFor is the sumParams of a sign election by sum without draws.
func sumParamsFor(w []float64, normalize bool, lambda float64) sumParams {
	var p sumParams
	for i := range w {
		p.sc[i], p.w[i] = float32(w[i]), float32(w[i])
	}
	p.lam = float32(lambda)
	if normalize {
		p.norm = 1
	}
	p.eps = float32(minWeightSum)
	return p
}

// combineSumWith makes combine with consensus "sum" over the largest
// multiple of lanes elements: the sign election core with the deltas as
// inputs, a zero base to subtract (x - 0 is x, bit for bit) and the real
// base to add. zero and scratch hold at least len(dst) and lanes*len(ds)
// floats.
func combineSumWith(lanes int) func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero, scratch []float32) int {
	return func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero, scratch []float32) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 || len(ds) == 0 || len(ds) > 16 {
			return 0
		}
		p := sumParamsFor(w[:len(ds)], normalize, lambda)
		ptrs := ptrsOf(ds, 0, n)
		_, _, _ = zero[n-1], base[n-1], scratch[lanes*len(ds)-1]
		sumCoreN(lanes, unsafe.Pointer(&dst[0]), unsafe.Pointer(&zero[0]), unsafe.Pointer(&base[0]), &ptrs[0], unsafe.Pointer(&scratch[0]), n, len(ds), &p)
		return n
	}
}

// bandSumWith makes bandSum over the largest multiple of lanes elements:
// the sign election core with every model in drop mode 2. scratch holds
// at least lanes*len(xs) floats.
func bandSumWith(lanes int) func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, normalize bool, lambda float64, scratch []float32) int {
	return func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, normalize bool, lambda float64, scratch []float32) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 || len(xs) == 0 || len(xs) > 16 {
			return 0
		}
		p := sumParamsFor(w[:len(xs)], normalize, lambda)
		var ptrs [16]unsafe.Pointer
		for i, x := range xs {
			_ = x[n-1]
			p.drop[i], p.mlo[i], p.mhi[i] = 2, lo[i], hi[i]
			ptrs[i] = unsafe.Pointer(&x[0])
		}
		_, _ = base[n-1], scratch[lanes*len(xs)-1]
		sumCoreN(lanes, unsafe.Pointer(&dst[0]), unsafe.Pointer(&base[0]), unsafe.Pointer(&base[0]), &ptrs[0], unsafe.Pointer(&scratch[0]), n, len(xs), &p)
		return n
	}
}

//go:noescape
func bandSum2x256BF16(dst, base unsafe.Pointer, x0, x1 *uint16, n int, p *sumParams)

//go:noescape
func bandSum2x512BF16(dst, base unsafe.Pointer, x0, x1 *uint16, n int, p *sumParams)

// bandSum2BF16Fast512 and bandSum2BF16Fast256 are bandSum for two
// bfloat16 models read in place, over the largest multiple of 16 or 8
// entries, which they return: sumCore's arithmetic specialized to two
// models in drop mode 2. The base is float32 (base) or, when base is
// nil, bfloat16 (bbase), read in place.
var (
	bandSum2BF16Fast512 = bandSum2BF16With(16, bandSum2x512BF16)
	bandSum2BF16Fast256 = bandSum2BF16With(8, bandSum2x256BF16)
)

func bandSum2BF16With(lanes int, kernel func(dst, base unsafe.Pointer, x0, x1 *uint16, n int, p *sumParams)) func(dst, base []float32, bbase, x0, x1 []uint16, w []float64, lo, hi []uint32, normalize bool, lambda float64) int {
	return func(dst, base []float32, bbase, x0, x1 []uint16, w []float64, lo, hi []uint32, normalize bool, lambda float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		p := sumParamsFor(w[:2], normalize, lambda)
		for i := range 2 {
			p.drop[i], p.mlo[i], p.mhi[i] = 2, lo[i], hi[i]
		}
		_, _ = x0[n-1], x1[n-1]
		var b unsafe.Pointer
		if base != nil {
			_ = base[n-1]
			b = unsafe.Pointer(&base[0])
		} else {
			_ = bbase[n-1]
			b, p.bf16 = unsafe.Pointer(&bbase[0]), pBaseBF16
		}
		kernel(unsafe.Pointer(&dst[0]), b, &x0[0], &x1[0], n, &p)
		return n
	}
}

// bandLinearWith makes bandLinear over the largest multiple of lanes
// elements.
func bandLinearWith(lanes int) func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, scale float64) int {
	return func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, scale float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 || len(xs) == 0 || len(xs) > 16 {
			return 0
		}
		ptrs := ptrsOf(xs, 0, n)
		_ = base[n-1]
		bandLinearPtrs(lanes, dst, unsafe.Pointer(&base[0]), &ptrs, n, len(xs), w, lo, hi, scale, 0)
		return n
	}
}

// combineLinearWith makes combine without a consensus over the largest
// multiple of lanes elements: the linear core with the deltas as inputs,
// a zero base to subtract (d - 0 is d, bit for bit), bands that keep
// every magnitude, and the real base to add; zero holds at least
// len(dst).
func combineLinearWith(lanes int) func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero []float32) int {
	return func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero []float32) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 || len(ds) == 0 || len(ds) > 16 {
			return 0
		}
		var p sumParams
		var ptrs [16]unsafe.Pointer
		for i, d := range ds {
			_ = d[n-1]
			p.w64[i], p.mlo[i], p.mhi[i] = w[i], 0, 1<<31
			ptrs[i] = unsafe.Pointer(&d[0])
		}
		p.scale = linearScale(w, lambda, normalize)
		_, _ = zero[n-1], base[n-1]
		linearCoreN(lanes, unsafe.Pointer(&dst[0]), unsafe.Pointer(&zero[0]), unsafe.Pointer(&base[0]), &ptrs[0], n, len(ds), &p)
		return n
	}
}

// compressLUT gives, for each mask of eight lanes, the indices of its set
// lanes in order (a byte each, the rest zero): collect256 moves the kept
// lanes to the front with VPERMD by them, as VPCOMPRESSD does.
var compressLUT = func() (t [256]uint64) {
	for m := range t {
		k := 0
		for i := range 8 {
			if m>>i&1 != 0 {
				t[m] |= uint64(i) << (8 * k)
				k++
			}
		}
	}
	return t
}()

// collectWith makes collectDelta's (T float32) or collectBF16's (T
// uint16) assembly path over the largest multiple of lanes entries from
// its kernel; buf holds at least that many plus lanes.
func collectWith[T float32 | uint16](lanes int, kernel func(buf *uint32, x, base *T, n int, lo, hi uint32) (c, above int)) func(buf []uint32, x, base []T, lo, hi uint32) (int, int, int64) {
	return func(buf []uint32, x, base []T, lo, hi uint32) (int, int, int64) {
		n := len(base) &^ (lanes - 1)
		if n == 0 {
			return 0, 0, 0
		}
		_, _ = buf[n+lanes-1], x[n-1]
		c, above := kernel(&buf[0], &x[0], &base[0], n, lo, hi)
		return n, c, int64(above)
	}
}

var (
	collectFast512     = collectWith(16, collect512)
	collectBF16Fast512 = collectWith(16, collect512BF16)
	collectFast256     = collectWith(8, func(buf *uint32, x, base *float32, n int, lo, hi uint32) (int, int) {
		return collect256(buf, x, base, n, lo, hi, &compressLUT[0])
	})
	collectBF16Fast256 = collectWith(8, func(buf *uint32, x, base *uint16, n int, lo, hi uint32) (int, int) {
		return collect256BF16(buf, x, base, n, lo, hi, &compressLUT[0])
	})
)

// heavyLanes gives the heavy-value kernels their four values, eight
// copies each; the slots past len(heavy) repeat heavy[0] (whose entries
// are left out anyway; their counts are not read).
func heavyLanes(heavy []uint32) (hv [4][8]uint32) {
	for j := range hv {
		v := heavy[0]
		if j < len(heavy) {
			v = heavy[j]
		}
		for l := range hv[j] {
			hv[j][l] = v
		}
	}
	return hv
}

// addHeavyLanes adds the kernels' lane counts of the first k heavy
// values to eq.
func addHeavyLanes(eq *[maxHeavy]int32, lanes *[32]uint32, k int) {
	for j := range k {
		var s uint32
		for _, v := range lanes[8*j : 8*j+8] {
			s += v
		}
		eq[j] += int32(s)
	}
}

//go:noescape
func collectBits256H(buf *uint32, v *float32, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above, nz int)

// collectBitsHeavyFast256 runs collectBits256H over the largest multiple
// of 8 entries (heavy holds one to four values).
func collectBitsHeavyFast256(buf []uint32, v []float32, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int, int64, int64) {
	n := len(v) &^ 7
	if n == 0 {
		return 0, 0, 0, 0
	}
	_ = buf[n+7]
	hv := heavyLanes(heavy)
	var lanes [32]uint32
	c, above, nz := collectBits256H(&buf[0], &v[0], n, lo, hi, &compressLUT[0], &hv, &lanes)
	addHeavyLanes(eq, &lanes, len(heavy))
	return n, c, int64(above), int64(nz)
}

// collectHeavyWith makes collectHeavy's (T float32) or collectBF16Heavy's
// (T uint16) path over the largest multiple of lanes entries: the heavy
// values (at most four) go to the kernel eight copies each (heavyLanes),
// and the lanes' counts come back summed into eq.
func collectHeavyWith[T float32 | uint16](lanes int, kernel func(buf *uint32, x, base *T, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above int)) func(buf []uint32, x, base []T, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int, int64) {
	return func(buf []uint32, x, base []T, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int, int64) {
		n := len(base) &^ (lanes - 1)
		if n == 0 {
			return 0, 0, 0
		}
		_, _ = buf[n+lanes-1], x[n-1]
		hv := heavyLanes(heavy)
		var counts [32]uint32
		c, above := kernel(&buf[0], &x[0], &base[0], n, lo, hi, &compressLUT[0], &hv, &counts)
		addHeavyLanes(eq, &counts, len(heavy))
		return n, c, int64(above)
	}
}

// The heavy-value kernels compare with four values: all that a bracket
// names.
var _ = [1]struct{}{}[maxHeavy-4]

//go:noescape
func collect512BF16H(buf *uint32, x, base *uint16, n int, lo, hi uint32, hv *[4][8]uint32, eq *[32]uint32) (c, above int)

var (
	collectHeavyFast256     = collectHeavyWith(8, collect256H)
	collectBF16HeavyFast256 = collectHeavyWith(8, collect256BF16H)
	// VPCOMPRESSD needs no table of permutations.
	collectBF16HeavyFast512 = collectHeavyWith(16, func(buf *uint32, x, base *uint16, n int, lo, hi uint32, _ *uint64, hv *[4][8]uint32, eq *[32]uint32) (int, int) {
		return collect512BF16H(buf, x, base, n, lo, hi, hv, eq)
	})
)

// prefixFast512 is prefixSums over the largest multiple of 16 counters.
func prefixFast512(c []int32, start int32) (int, int32) {
	n := len(c) &^ 15
	if n == 0 {
		return 0, start
	}
	return n, prefix512(&c[0], n, start)
}

//go:noescape
func digits512(dg *uint16, a *uint64, n int, lo16 uint32)

// digitsFast512 is topDigits' loop over the largest multiple of 16
// entries.
func digitsFast512(dg []uint16, a []uint64, lo16 uint32) int {
	n := len(a) &^ 15
	if n == 0 {
		return 0
	}
	_ = dg[n-1]
	digits512(&dg[0], &a[0], n, lo16)
	return n
}

//go:noescape
func digits256(dg *uint16, a *uint64, n int, lo16 uint32, perm *[8]uint32)

// digitsPerm256 is digits256's VPERMD order.
var digitsPerm256 = [8]uint32{0, 4, 1, 5, 2, 6, 3, 7}

// digitsFast256 is digitsFast512 for AVX2.
func digitsFast256(dg []uint16, a []uint64, lo16 uint32) int {
	n := len(a) &^ 15
	if n == 0 {
		return 0
	}
	_ = dg[n-1]
	digits256(&dg[0], &a[0], n, lo16, &digitsPerm256)
	return n
}

// prefixFast256 is prefixSums over the largest multiple of 8 counters.
func prefixFast256(c []int32, start int32) (int, int32) {
	n := len(c) &^ 7
	if n == 0 {
		return 0, start
	}
	return n, prefix256(&c[0], n, start)
}

// kernelRanks returns how many of ord's ranks a kernel of lanes takes
// (a multiple of lanes), having checked the bounds of row, th and p that
// it relies on, and the rescale flag as the assembly reads it.
func (m *magPruner) kernelRanks(row []float32, ord []uint64, lanes int) (n, resc int) {
	n = len(ord) &^ (lanes - 1)
	if n == 0 {
		return 0, 0
	}
	_, _, _ = row[len(ord)-1], m.th[n-1], m.p[n-1]
	if m.rescale {
		resc = 1
	}
	return n, resc
}

// pruneRanksFast512 is magPruner.row's per-rank step with the AVX-512
// kernel for the largest multiple of 8 ranks, written to row (of ord's
// length: the entries' indices are below it).
func pruneRanksFast512(m *magPruner, row []float32, ord []uint64, s uint64) int {
	n, resc := m.kernelRanks(row, ord, 8)
	if n > 0 {
		_ = m.q[n-1]
		pruneRanks512(&row[0], &ord[0], &m.q[0], &m.th[0], &m.p[0], n, s, resc)
	}
	return n
}

// pruneRanksFast256 is pruneRanksFast for AVX2, 4 ranks at a time; it
// reads each rank's step to its draw from m.qg (AVX2 has no 64-bit
// multiply).
func pruneRanksFast256(m *magPruner, row []float32, ord []uint64, s uint64) int {
	n, resc := m.kernelRanks(row, ord, 4)
	if n > 0 {
		_ = m.qg[n-1]
		pruneRanks256(&row[0], &ord[0], &m.qg[0], &m.th[0], &m.p[0], n, s, resc, &pruneConsts256)
	}
	return n
}

// keysIdx256 is keys256BF16's table: the entries' first indices, 0-7,
// then 8s to add.
var keysIdx256 = [12]uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8}

// keysPerm256 is list256's table: for each mask of four lanes, the dword
// indices that move the 64-bit lanes set in it to the front.
var keysPerm256 = func() (t [16][8]uint32) {
	for m := range t {
		k := 0
		for i := range 4 {
			if m>>i&1 != 0 {
				t[m][2*k], t[m][2*k+1] = uint32(2*i), uint32(2*i+1)
				k++
			}
		}
	}
	return t
}()

// listFast256 is keyStats.list for AVX2 over the largest multiple of 4
// entries, from the first.
func listFast256(st *keyStats, a, b []uint64) {
	n := len(a) &^ 3
	if n == 0 {
		return
	}
	_, _, _, _, _ = b[n-1], st.s8[n-1], st.s16[n-1], st.l[n-1], a[n-1]
	n8, n16, nz := list256(&a[0], &st.s8[0], &st.s16[0], &b[0], &st.l[0], n, &keysPerm256)
	st.listed, st.n8, st.n16, st.nz = n, uint32(n8), uint32(n16), uint32(nz)
}

// keysBF16Fast512 and keysBF16Fast256 are sortRowBF16's loop for
// AVX-512 and AVX2, over the largest multiple of 16 or 8 entries; they
// build no lists.
var (
	keysBF16Fast512 = keysBF16With(16, func(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32) {
		keys512BF16(a, x, base, n, vec, &keysIdx512)
	})
	keysBF16Fast256 = keysBF16With(8, func(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32) {
		keys256BF16(a, x, base, n, vec, &keysIdx256)
	})
)

//go:noescape
func keys512BF16(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32, idx *[24]uint64)

// keysIdx512 is keys512BF16's table: the entries' first indices, 0-15,
// then 16s to add.
var keysIdx512 = [24]uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16, 16, 16, 16}

func keysBF16With(lanes int, kernel func(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32)) func(st *keyStats, a, zl []uint64, x []uint16, base []float32) int {
	return func(st *keyStats, a, zl []uint64, x []uint16, base []float32) int {
		n := len(base) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _ = a[n-1], x[n-1]
		var vec [32]uint32
		for i := range 8 {
			vec[i], vec[8+i] = st.max, st.min
		}
		kernel(&a[0], &x[0], &base[0], n, &vec)
		var zero8, zero16 int
		for i := range 8 {
			st.max, st.min = max(st.max, vec[i]), min(st.min, vec[8+i])
			zero8, zero16 = zero8+int(vec[16+i]), zero16+int(vec[24+i])
		}
		st.low8, st.low16 = uint32(n-zero8), uint32(n-zero16)
		return n
	}
}

// pruneConsts256 are pruneRanks256's constants as vectors of four: gamma
// (unused since m.qg) and the two mix multipliers, each then its high
// half.
var pruneConsts256 = func() (c [6][4]uint64) {
	for l := range 4 {
		c[0][l], c[1][l] = rngGamma, rngGamma>>32
		c[2][l], c[3][l] = rngMul1, rngMul1>>32
		c[4][l], c[5][l] = rngMul2, rngMul2>>32
	}
	return c
}()

//go:noescape
func drop256(x *float32, n int, scale float32, th uint32, states *[4]uint64, c *[5][4]uint64)

// dropConsts256 are drop256's constants: four lanes of 4*gamma, then the
// two mix multipliers, each followed by its high half.
var dropConsts256 = func() (c [5][4]uint64) {
	g := uint64(rngGamma)
	for l := range 4 {
		c[0][l] = 4 * g // wraps, as the states do
		c[1][l], c[2][l] = rngMul1, rngMul1>>32
		c[3][l], c[4][l] = rngMul2, rngMul2>>32
	}
	return c
}()

//go:noescape
func gram2x256(x, y, b *float32, n int, s *[12]float64)

// gram2Fast256 runs gram2x256 over the largest multiple of 4 entries of x.
func gram2Fast256(x, y, b []float32) (n int, s [3][4]float64) {
	n = len(x) &^ 3
	if n == 0 {
		return 0, s
	}
	_ = y[n-1]
	var sums [12]float64
	gram2x256(&x[0], &y[0], basePtr(b, n), n, &sums)
	for p := range 3 {
		s[p] = [4]float64(sums[4*p : 4*p+4])
	}
	return n, s
}

//go:noescape
func exp512(dst *float64, x *float32, m float64, n int, c *[14]float64) (done int)

//go:noescape
func klTerms512(t, u, v *float64, sx, sb float64, n int, c *[16]float64) (done int)

// expConsts512 are exp512's constants: those of the standard library's
// exp_amd64.s, written as it writes them.
var expConsts512 = [14]float64{
	1.4426950408889634073599246810018920,                  // LOG2E
	0.69314718055966295651160180568695068359375,           // LN2U
	0.28235290563031577122588448175013436025525412068e-12, // LN2L
	0.0625,
	2.4801587301587301587e-5,
	1.9841269841269841270e-4,
	1.3888888888888888889e-3,
	8.3333333333333333333e-3,
	4.1666666666666666667e-2,
	1.6666666666666666667e-1,
	0.5, 1.0, 2.0,
	7.09782712893384e+02, // Overflow
}

// klConsts512 are klTerms512's constants: arcee_fusion's 1e-8, then those
// of the standard library's log_amd64.s, written as it writes them.
var klConsts512 = [16]float64{
	1e-8, 1.0, 2.0, 0.5,
	7.07106781186547524401e-01, // HSqrt2
	6.93147180369123816490e-01, // Ln2Hi
	1.90821492927058770002e-10, // Ln2Lo
	6.666666666666735130e-01,   // L1
	3.999999999940941908e-01,   // L2
	2.857142874366239149e-01,   // L3
	2.222219843214978396e-01,   // L4
	1.818357216161805012e-01,   // L5
	1.531383769920937332e-01,   // L6
	1.479819860511658591e-01,   // L7
	math.Float64frombits(0x000FFFFFFFFFFFFF),
	math.Float64frombits(0x3FE0000000000000),
}

//go:noescape
func maxKey512(x *float32, n int) (key uint32, nan bool)

// maxKeyFast512 is maxKeyFast over the largest multiple of 16 entries.
func maxKeyFast512(x []float32) (n int, key uint32, nan bool) {
	n = len(x) &^ 15
	if n == 0 {
		return 0, 0, false
	}
	key, nan = maxKey512(&x[0], n)
	return n, key, nan
}

//go:noescape
func impTop512(dst *uint16, b, x *float32, n int, kl float32)

//go:noescape
func impHits512(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32) (c int)

//go:noescape
func fusionApply512(dst, b, x *float32, n int, kl, th float32)

//go:noescape
func impTop256(dst *uint16, b, x *float32, n int, kl float32)

//go:noescape
func impHits256(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32, lut *uint64) (c int)

//go:noescape
func fusionApply256(dst, b, x *float32, n int, kl, th float32)

//go:noescape
func exp256(dst *float64, x *float32, m float64, n int, c *[14][4]float64) (done int)

//go:noescape
func klTerms256(t, u, v *float64, sx, sb float64, n int, c *[16][4]float64) (done int)

// expConsts256 and klConsts256 are exp512's and klTerms512's constants,
// each four times (the AVX2 kernels read them as vectors from memory).
var (
	expConsts256 = fourTimes[[14][4]float64](expConsts512[:])
	klConsts256  = fourTimes[[16][4]float64](klConsts512[:])
)

func fourTimes[T [14][4]float64 | [16][4]float64](c []float64) (t T) {
	for i := range c {
		t[i] = [4]float64{c[i], c[i], c[i], c[i]}
	}
	return t
}

// impTopWith, impHitsWith and fusionApplyWith make impTopFast,
// impHitsFast and fusionApplyFast over the largest multiple of lanes
// entries from their kernels.
func impTopWith(lanes int, kernel func(dst *uint16, b, x *float32, n int, kl float32)) func([]uint16, []float32, []float32, float32) int {
	return func(dst []uint16, b, x []float32, kl float32) int {
		n := len(b) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _ = dst[n-1], x[n-1]
		kernel(&dst[0], &b[0], &x[0], n, kl)
		return n
	}
}

func impHitsWith(lanes int, kernel func(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32) int) func([]uint32, []float32, []float32, float32, *[4]uint32) (int, int) {
	return func(dst []uint32, b, x []float32, kl float32, bins *[4]uint32) (n, c int) {
		n = len(b) &^ (lanes - 1)
		if n == 0 {
			return 0, 0
		}
		_, _ = dst[n-1+lanes-1], x[n-1]
		return n, kernel(&dst[0], &b[0], &x[0], n, kl, bins)
	}
}

func fusionApplyWith(lanes int, kernel func(dst, b, x *float32, n int, kl, th float32)) func([]float32, []float32, []float32, float32, float32) int {
	return func(dst, b, x []float32, kl, th float32) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _ = b[n-1], x[n-1]
		kernel(&dst[0], &b[0], &x[0], n, kl, th)
		return n
	}
}

// expKernel and klKernel are exp512's and klTerms512's shapes without
// their constants, which the AVX2 siblings hold in another layout.
type (
	expKernel func(dst *float64, x *float32, m float64, n int) int
	klKernel  func(t, u, v *float64, sx, sb float64, n int) int
)

// mathAgrees reports whether exp and kl (exp512 and klTerms512, or their
// AVX2 siblings) compute what math.Exp and math.Log do, bit for bit, on
// 256 arguments spread over their range: they copy the amd64 functions'
// FMA path and constants, and would part from a math built otherwise
// (GODEBUG=cpu.fma=off, another Go release's algorithm) without notice.
// The kernels' wrappers ask (once, agrees512 or agrees256) on their first
// call, not at start-up, and take nothing when math disagrees.
func mathAgrees(exp expKernel, kl klKernel) bool {
	const n = 256
	x := make([]float32, n)
	u, v, got := make([]float64, n), make([]float64, n), make([]float64, n)
	for j := range x {
		x[j] = -float32(j) * 0.37 // exponents down to e^-94
		u[j], v[j] = float64(j%17+1)/17, float64(j%23+1)/23
	}
	if exp(&got[0], &x[0], 0.125, n) != n {
		return false
	}
	for j := range x {
		if math.Float64bits(got[j]) != math.Float64bits(math.Exp(float64(x[j])-0.125)) {
			return false
		}
	}
	const sx, sb = 3.7, 5.3
	if kl(&got[0], &u[0], &v[0], sx, sb, n) != n {
		return false
	}
	for j := range u {
		p, q := u[j]/sx+1e-8, v[j]/sb+1e-8
		if math.Float64bits(got[j]) != math.Float64bits(p*math.Log(p/q)) {
			return false
		}
	}
	return true
}

// expWith and klTermsWith make expFast and klTermsFast over the largest
// multiple of lanes entries from their kernels, which they take only when
// agrees.
func expWith(lanes int, kernel expKernel, agrees func() bool) func([]float64, []float32, float64) int {
	return func(dst []float64, x []float32, m float64) int {
		n := len(x) &^ (lanes - 1)
		if n == 0 || !agrees() {
			return 0
		}
		_ = dst[n-1]
		return kernel(&dst[0], &x[0], m, n)
	}
}

func klTermsWith(lanes int, kernel klKernel, agrees func() bool) func(t, u, v []float64, sx, sb float64) int {
	return func(t, u, v []float64, sx, sb float64) int {
		n := len(u) &^ (lanes - 1)
		if n == 0 || !agrees() {
			return 0
		}
		_, _ = t[n-1], v[n-1]
		return kernel(&t[0], &u[0], &v[0], sx, sb, n)
	}
}

var (
	exp512k = func(dst *float64, x *float32, m float64, n int) int { return exp512(dst, x, m, n, &expConsts512) }
	exp256k = func(dst *float64, x *float32, m float64, n int) int { return exp256(dst, x, m, n, &expConsts256) }
	kl512k  = func(t, u, v *float64, sx, sb float64, n int) int { return klTerms512(t, u, v, sx, sb, n, &klConsts512) }
	kl256k  = func(t, u, v *float64, sx, sb float64, n int) int { return klTerms256(t, u, v, sx, sb, n, &klConsts256) }

	agrees512 = sync.OnceValue(func() bool { return mathAgrees(exp512k, kl512k) })
	agrees256 = sync.OnceValue(func() bool { return mathAgrees(exp256k, kl256k) })

	expFast512, klTermsFast512 = expWith(8, exp512k, agrees512), klTermsWith(8, kl512k, agrees512)
	expFast256, klTermsFast256 = expWith(4, exp256k, agrees256), klTermsWith(4, kl256k, agrees256)

	impTopFast512, impHitsFast512, fusionApplyFast512 = impTopWith(16, impTop512), impHitsWith(16, impHits512), fusionApplyWith(16, fusionApply512)
	impTopFast256, fusionApplyFast256                 = impTopWith(8, impTop256), fusionApplyWith(8, fusionApply256)
	impHitsFast256                                    = impHitsWith(8, func(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32) int {
		return impHits256(dst, b, x, n, kl, bins, &compressLUT[0])
	})
)

//go:noescape
func ram2x512(dst, b, x0, x1 *float32, n int, key int32, f *[4]float64)

//go:noescape
func nearSwap512(dst, b, x *float32, n int, t float64)

//go:noescape
func ram2x256(dst, b, x0, x1 *float32, n int, key int32, f *[4]float64)

//go:noescape
func nearSwap256(dst, b, x *float32, n int, t float64)

//go:noescape
func ramN512(dst, b *float32, xs *unsafe.Pointer, models, n int, key int32, mul, div *[16]float64)

//go:noescape
func ramCountN512(counts *[16]int64, b *float32, xs *unsafe.Pointer, models, n int, key int32)

//go:noescape
func ramN256(dst, b *float32, xs *unsafe.Pointer, models, n int, key int32, mul, div *[16]float64)

//go:noescape
func ramCountN256(counts *[16]int64, b *float32, xs *unsafe.Pointer, models, n int, key int32)

// ramNWith and ramCountNWith make ramNFast and ramCountNFast over the
// largest multiple of lanes entries from their kernels.
func ramNWith(lanes int, kernel func(dst, b *float32, xs *unsafe.Pointer, models, n int, key int32, mul, div *[16]float64)) func([]float32, []float32, [][]float32, int64, *[16]float64, *[16]float64) int {
	return func(dst, base []float32, xs [][]float32, key int64, mul, div *[16]float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_ = base[n-1]
		ptrs := ptrsOf(xs, 0, n)
		kernel(&dst[0], &base[0], &ptrs[0], len(xs), n, int32(key), mul, div) // key is in [-1, 2^31)
		return n
	}
}

func ramCountNWith(lanes int, kernel func(counts *[16]int64, b *float32, xs *unsafe.Pointer, models, n int, key int32)) func([]int64, []float32, [][]float32, int64) int {
	return func(counts []int64, base []float32, xs [][]float32, key int64) int {
		n := len(base) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		var c [16]int64
		ptrs := ptrsOf(xs, 0, n)
		kernel(&c, &base[0], &ptrs[0], len(xs), n, int32(key))
		for p := range counts {
			counts[p] += c[p]
		}
		return n
	}
}

var (
	ramNFast512, ramCountNFast512 = ramNWith(8, ramN512), ramCountNWith(16, ramCountN512)
	ramNFast256, ramCountNFast256 = ramNWith(4, ramN256), ramCountNWith(8, ramCountN256)
)

// ramWith and nearSwapWith make ram2Fast and nearSwapFast over the
// largest multiple of lanes entries from their kernels.
func ramWith(lanes int, kernel func(dst, b, x0, x1 *float32, n int, key int32, f *[4]float64)) func([]float32, []float32, []float32, []float32, int64, *[4]float64) int {
	return func(dst, base, x0, x1 []float32, key int64, f *[4]float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _, _ = base[n-1], x0[n-1], x1[n-1]
		kernel(&dst[0], &base[0], &x0[0], &x1[0], n, int32(key), f) // key is in [-1, 2^31)
		return n
	}
}

func nearSwapWith(lanes int, kernel func(dst, b, x *float32, n int, t float64)) func([]float32, []float32, []float32, float64) int {
	return func(dst, base, x []float32, t float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _ = base[n-1], x[n-1]
		kernel(&dst[0], &base[0], &x[0], n, t)
		return n
	}
}

var (
	ram2Fast512, nearSwapFast512 = ramWith(8, ram2x512), nearSwapWith(8, nearSwap512)
	ram2Fast256, nearSwapFast256 = ramWith(4, ram2x256), nearSwapWith(4, nearSwap256)
)

// dotFast256 runs dot256 over the largest multiple of 4 entries of x.
func dotFast256(x, y, b []float32) (int, float64, float64, float64, float64) {
	n := len(x) &^ 3
	if n == 0 {
		return 0, 0, 0, 0, 0
	}
	_ = y[n-1]
	var s [4]float64
	dot256(&x[0], &y[0], basePtr(b, n), n, &s)
	return n, s[0], s[1], s[2], s[3]
}

// basePtr returns &b[0], having checked that b holds n entries, or nil
// when there is no base (b nil).
func basePtr(b []float32, n int) *float32 {
	if b == nil {
		return nil
	}
	_ = b[n-1]
	return &b[0]
}

// combineFast256 runs combine256 over the largest multiple of 8 entries
// of dst, for up to 16 models, with combineRun's three orders of
// summation: from zero, without base; from zero, with base; from the
// first product, with base (two models).
func combineFast256(dst []float32, xs [][]float32, base []float32, c []float64, a int) int {
	n := len(dst) &^ 7
	if n == 0 || len(xs) == 0 || len(xs) > 16 {
		return 0
	}
	ptrs := ptrsOf(xs, a, n)
	_ = c[len(xs)-1]
	var pb *float32
	flags := 2 // from zero
	if base != nil {
		_ = base[a+n-1]
		pb = &base[a]
		if len(xs) == 2 {
			flags = 1
		} else {
			flags = 3
		}
	}
	combine256(&dst[0], &ptrs[0], pb, &c[0], n, len(xs), flags)
	return n
}

// stockFast256 runs stock256 over the largest multiple of 8 entries of
// dst, for 2 to 16 models, with stockRun's two orders of summation of
// the mean: from the first model (two models) or from zero.
func stockFast256(dst []float32, xs [][]float32, base []float32, t float64, a int) int {
	n := len(dst) &^ 7
	if n == 0 || len(xs) < 2 || len(xs) > 16 {
		return 0
	}
	ptrs := ptrsOf(xs, a, n)
	_ = base[a+n-1]
	flags := 0
	if len(xs) > 2 {
		flags = 2 // from zero
	}
	stock256(&dst[0], &ptrs[0], &base[a], n, len(xs), t, flags)
	return n
}

// collectBitsFast256 runs collectBits256 over the largest multiple of 8
// entries.
func collectBitsFast256(buf []uint32, v []float32, lo, hi uint32) (int, int, int64, int64) {
	n := len(v) &^ 7
	if n == 0 {
		return 0, 0, 0, 0
	}
	_ = buf[n+7]
	c, above, nz := collectBits256(&buf[0], &v[0], n, lo, hi, &compressLUT[0])
	return n, c, int64(above), int64(nz)
}

//go:noescape
func sceVar512BF16(v *float32, base, x0, x1 *uint16, n int)

// sceVarWith makes sceVarFast256 (T float32), sceVarBF16Fast256 and
// sceVarBF16Fast512 (T uint16): its kernel over the largest multiple of
// lanes entries, which it returns.
func sceVarWith[T float32 | uint16](lanes int, kernel func(v *float32, base, x0, x1 *T, n int)) func(v []float32, base, x0, x1 []T) int {
	return func(v []float32, base, x0, x1 []T) int {
		n := len(v) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _, _ = base[n-1], x0[n-1], x1[n-1]
		kernel(&v[0], &base[0], &x0[0], &x1[0], n)
		return n
	}
}

var (
	sceVarFast256, sceVarBF16Fast256 = sceVarWith(8, sceVar256), sceVarWith(8, sceVar256BF16)
	sceVarBF16Fast512                = sceVarWith(16, sceVar512BF16)
)

//go:noescape
func packMask256(bits *uint64, m *uint32, n int)

// packMaskFast256 runs packMask256 over the largest multiple of 64
// entries.
func packMaskFast256(bits []uint64, m []uint32) int {
	n := len(m) &^ 63
	if n == 0 {
		return 0
	}
	_ = bits[n/64-1]
	packMask256(&bits[0], &m[0], n)
	return n
}

//go:noescape
func sceOut256BF16Bits(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64, nib *[16][4]uint32)

// nibbleMasks are the lane masks of each four bits of a packed mask.
var nibbleMasks = func() (t [16][4]uint32) {
	for b := range t {
		for l := range t[b] {
			if b>>l&1 != 0 {
				t[b][l] = ^uint32(0)
			}
		}
	}
	return t
}()

// sceOutBitsWith makes sceOutBF16BitsFast256 and sceOutBF16BitsFast512:
// each runs its kernel over the largest multiple of lanes entries, which
// it returns.
func sceOutBitsWith(lanes int, kernel func(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64)) func(dst []float32, base, x0, x1 []uint16, bits []uint64, w0, w1 float64) int {
	return func(dst []float32, base, x0, x1 []uint16, bits []uint64, w0, w1 float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _, _, _ = base[n-1], x0[n-1], x1[n-1], bits[(n-1)/64]
		w := [3]float64{w0, w1, 1e-6}
		kernel(&dst[0], &base[0], &x0[0], &x1[0], &bits[0], n, &w)
		return n
	}
}

var (
	sceOutBF16BitsFast256 = sceOutBitsWith(4, func(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64) {
		sceOut256BF16Bits(dst, base, x0, x1, bits, n, w, &nibbleMasks)
	})
	sceOutBF16BitsFast512 = sceOutBitsWith(8, sceOut512BF16Bits)
)

//go:noescape
func sceVar256BF16(v *float32, base, x0, x1 *uint16, n int)

// keepAtLeastFast256 runs keepAtLeast256 over the largest multiple of 8
// entries, for thresholds a magnitude can meet (th <= 2^31 - 1; above,
// the Go loop keeps none).
func keepAtLeastFast256(m []uint32, d []float32, th int64) int {
	n := len(d) &^ 7
	if n == 0 || th < 0 || th > math.MaxInt32 {
		return 0
	}
	_ = m[n-1]
	keepAtLeast256(&m[0], &d[0], n, int32(th-1))
	return n
}

// linearFast256 runs linear256 over the largest multiple of 8 entries of
// dst, for up to 16 models, and returns that length.
func linearFast256(dst []float32, xs [][]float32, w []float64, div float64) int {
	n := len(dst) &^ 7
	if n == 0 || len(xs) == 0 || len(xs) > 16 {
		return 0
	}
	ptrs := ptrsOf(xs, 0, n)
	_ = w[len(xs)-1]
	linear256(&dst[0], &ptrs[0], n, len(xs), &w[0], div)
	return n
}

//go:noescape
func drop512(x *float32, n int, scale float32, th uint32, states *[8]uint64, c *[3]uint64)

// dropConsts512 are drop512's constants: 8*gamma, the two mix multipliers.
var dropConsts512 = [3]uint64{8 * rngGamma & (1<<64 - 1), rngMul1, rngMul2}

// dropWith makes dropFast from a kernel that drops lanes entries a step
// with lanes/2 consecutive draws of r's stream, draw m of the first step
// from state st[m]; r is left past the draws the kernel took.
func dropWith(lanes int, kernel func(x *float32, n int, scale float32, th uint32, st *[8]uint64)) func([]float32, float32, uint32, *rng) int {
	return func(x []float32, scale float32, th uint32, r *rng) int {
		n := len(x) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		var st [8]uint64
		for m := range lanes / 2 {
			st[m] = r.s + uint64(m+1)*rngGamma
		}
		kernel(&x[0], n, scale, th, &st)
		r.s += uint64(n/2) * rngGamma
		return n
	}
}

var (
	dropFast256 = dropWith(8, func(x *float32, n int, scale float32, th uint32, st *[8]uint64) {
		drop256(x, n, scale, th, (*[4]uint64)(st[:4]), &dropConsts256)
	})
	dropFast512 = dropWith(16, func(x *float32, n int, scale float32, th uint32, st *[8]uint64) {
		drop512(x, n, scale, th, st, &dropConsts512)
	})
)

//go:noescape
func sceOut256(dst, base, x0, x1 *float32, mask *uint32, n int, w *[3]float64)

//go:noescape
func squares256(l *[2][8]float64, base, x0, x1 *float32, m *uint32, n int)

// keepTiesFast256 runs keepTies256 over the largest multiple of 8
// entries.
func keepTiesFast256(m []uint32, d []float32, th uint32, q int) (int, int) {
	n := len(d) &^ 7
	if n == 0 {
		return 0, q
	}
	_ = m[n-1]
	return keepTies256(&m[0], &d[0], n, th, q)
}

//go:noescape
func squares256BF16(l *[2][8]float64, base, x0, x1 *uint16, m *uint32, n int)

//go:noescape
func squares512BF16(l *[2][8]float64, base, x0, x1 *uint16, m *uint32, n int)

//go:noescape
func sceOut256BF16(dst *float32, base, x0, x1 *uint16, mask *uint32, n int, w *[3]float64)

//go:noescape
func sceOut512BF16(dst *float32, base, x0, x1 *uint16, mask *uint32, n int, w *[3]float64)

//go:noescape
func sceOut512BF16Bits(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64)

// squaresWith and sceOutWith make squaresFast256 (T float32) and
// squaresBF16Fast256 and 512 (T uint16), and sceOutFast256 and
// sceOutBF16Fast256: each runs its kernel over the largest multiple of
// 8 (squares) or 4 (the output) entries, which it returns.
func squaresWith[T float32 | uint16](kernel func(l *[2][8]float64, base, x0, x1 *T, m *uint32, n int)) func(l *[2][8]float64, base, x0, x1 []T, m []uint32) int {
	return func(l *[2][8]float64, base, x0, x1 []T, m []uint32) int {
		n := len(base) &^ 7
		if n == 0 {
			return 0
		}
		_, _, _ = x0[n-1], x1[n-1], m[n-1]
		kernel(l, &base[0], &x0[0], &x1[0], &m[0], n)
		return n
	}
}

func sceOutWith[T float32 | uint16](lanes int, kernel func(dst *float32, base, x0, x1 *T, mask *uint32, n int, w *[3]float64)) func(dst []float32, base, x0, x1 []T, mask []uint32, w0, w1 float64) int {
	return func(dst []float32, base, x0, x1 []T, mask []uint32, w0, w1 float64) int {
		n := len(dst) &^ (lanes - 1)
		if n == 0 {
			return 0
		}
		_, _, _, _ = base[n-1], x0[n-1], x1[n-1], mask[n-1]
		w := [3]float64{w0, w1, 1e-6}
		kernel(&dst[0], &base[0], &x0[0], &x1[0], &mask[0], n, &w)
		return n
	}
}

//go:noescape
func sceWeigh512BF16(l *[2][8]float64, bits *uint64, base, x0, x1 *uint16, n int, bound uint32)

// sceWeighBF16Fast512 runs sceWeigh512BF16 over the largest multiple of
// 16 entries, which it returns. There is no AVX2 twin: one (eight entries
// a step) took 1.23 ns an entry on a block in cache where the four
// kernels take 1.15 (Zen 5).
func sceWeighBF16Fast512(l *[2][8]float64, bits []uint64, base, x0, x1 []uint16, bound uint32) int {
	n := len(base) &^ 15
	if n == 0 {
		return 0
	}
	_, _, _ = x0[n-1], x1[n-1], bits[(n-1)/64]
	sceWeigh512BF16(l, &bits[0], &base[0], &x0[0], &x1[0], n, bound)
	return n
}

var (
	squaresFast256, squaresBF16Fast256 = squaresWith(squares256), squaresWith(squares256BF16)
	squaresBF16Fast512                 = squaresWith(squares512BF16)
	sceOutFast256, sceOutBF16Fast256   = sceOutWith(4, sceOut256), sceOutWith(4, sceOut256BF16)
	sceOutBF16Fast512                  = sceOutWith(8, sceOut512BF16)
)

// drawParams fills p for sumCore512 or sumCore256 with DARE's drops:
// each model's scale and weight, and for the models that drop, the keep
// threshold and the per generator states of chunk k's first step in
// states (the pairs 0..per-1 of elements); then lam, norm and eps.
func drawParams(p *sumParams, states []uint64, per, models int, w []float64, o TaskOptions, lambda float64, k int) {
	for i := range models {
		sc, drop := sumScale(w, o, i)
		p.sc[i], p.w[i] = sc, float32(w[i])
		if drop {
			p.drop[i] = 1
			p.th[i] = uint32(keepThreshold(o.Density[i]))
			s := mix(o.Seed, uint64(i), uint64(k)+1)
			for m := range per {
				states[per*i+m] = s + uint64(m+1)*rngGamma
			}
		}
	}
	p.lam = float32(lambda)
	if o.Normalize {
		p.norm = 1
	}
	p.eps = float32(minWeightSum)
}

// sumFast512 runs sumCore512 over the largest multiple of 16 elements.
func sumFast512(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32) int {
	n := len(dst) &^ 15
	if n == 0 || len(xs) == 0 {
		return 0
	}
	var p sumParams
	// Scratch: 16 deltas per model, then each model's eight generator
	// states (64 bytes each).
	scratch := ds[len(xs)][:32*len(xs)]
	states := unsafe.Slice((*uint64)(unsafe.Pointer(&scratch[16*len(xs)])), 8*len(xs))
	drawParams(&p, states, 8, len(xs), w, o, lambda, k)
	g := uint64(rngGamma)
	p.consts[0] = 8 * g // wraps, as the state does
	p.consts[1] = rngMul1
	p.consts[2] = rngMul2
	var ptrs [16]unsafe.Pointer
	for i, x := range xs {
		ptrs[i] = unsafe.Pointer(&x[0])
	}
	sumCore512(unsafe.Pointer(&dst[0]), unsafe.Pointer(&base[0]), unsafe.Pointer(&base[0]), &ptrs[0], unsafe.Pointer(&scratch[0]), n, len(xs), &p)
	return n
}

// sumFast256 is sumFast512 for AVX2 (sumCore256), over the largest
// multiple of 8 elements: four generator states per model, for pairs
// 0-3 of the eight elements.
func sumFast256(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32) int {
	n := len(dst) &^ 7
	if n == 0 || len(xs) == 0 || len(xs) > 16 {
		return 0
	}
	var p sumParams
	// Scratch: 8 deltas per model, then each model's four states.
	scratch := ds[len(xs)][:16*len(xs)]
	states := unsafe.Slice((*uint64)(unsafe.Pointer(&scratch[8*len(xs)])), 4*len(xs))
	drawParams(&p, states, 4, len(xs), w, o, lambda, k)
	g := uint64(rngGamma)
	g4 := 4 * g // wraps, as the state does
	p.c256[0] = [4]uint64{g4, g4, g4, g4}
	copy(p.c256[1:], pruneConsts256[2:]) // the mix multipliers and their high halves
	ptrs := ptrsOf(xs, 0, n)
	_ = base[n-1]
	sumCore256(unsafe.Pointer(&dst[0]), unsafe.Pointer(&base[0]), unsafe.Pointer(&base[0]), &ptrs[0], unsafe.Pointer(&scratch[0]), n, len(xs), &p)
	return n
}

// narrowBF16Fast256 is narrowBF16Fast512 for AVX2.
func narrowBF16Fast256(dst []uint16, src []float32) {
	k := len(src) &^ 7
	if k > 0 {
		_ = dst[k-1]
		narrowBF16x256(&dst[0], &src[0], k)
	}
	narrowBF16Go(dst[k:], src[k:])
}

// narrowBF16Fast512 is narrowBF16 with the AVX-512 assembly on a
// multiple of 16 elements.
func narrowBF16Fast512(dst []uint16, src []float32) {
	k := len(src) &^ 15
	if k > 0 {
		narrowBF16x512(&dst[0], &src[0], k)
	}
	narrowBF16Go(dst[k:], src[k:])
}
