package kernels

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The bf16-activation mode is llama.cpp's trade for bf16 weights, opt-in:
// products of a BF16 matrix first round the activations to bf16 (to
// nearest, ties to even), so that both factors are bf16 and VDPBF16PS
// (AVX512-BF16, e.g. AMD Zen 4 and 5) multiplies 32 pairs per instruction
// with float32 sums, twice the work per instruction of widening the weights
// and using f32 FMAs. Every path computes the same math: the activations are
// rounded the same way, the products of two bf16 values are exact in
// float32, and only the order of the additions differs (CPUs without
// AVX512-BF16, and AMX, run their exact kernels on the rounded activations).
//
// The price is the activations' rounding: 8 significant bits instead of 24,
// a relative error of up to 2^-9 per activation. On random products of
// 896 and 4864 terms the result is off by about 1e-3 of sum |w*x|
// (TestBF16ActError measures and bounds it); see the package documentation
// for the measured effect on a model's logits. The default (off) keeps
// activations in float32 and results exact to float32 rounding.
//
// MOCO_BF16_ACT=1 in the environment turns the mode on at start-up.

var bf16Act atomic.Bool

func init() {
	if os.Getenv("MOCO_BF16_ACT") == "1" {
		bf16Act.Store(true)
	}
}

// SetBF16Activations turns the bf16-activation mode on or off for the
// products of BF16 matrices that start afterwards.
func SetBF16Activations(on bool) { bf16Act.Store(on) }

// BF16Activations reports whether the bf16-activation mode is on.
func BF16Activations() bool { return bf16Act.Load() }

// preferDPBF16 is the per-CPU choice of the mode's kernels: VDPBF16PS where
// it runs at full speed (AMD Zen 4 and 5), the widening kernels on the
// rounded activations elsewhere (Intel measured VDPBF16PS at half its f32
// FMA rate, and prefill there runs on AMX). Tests override it.
var preferDPBF16 = isAMD

// BF16ActKernels names the kernels the bf16-activation mode runs on:
// "vdpbf16ps", or "widen" (the exact kernels on rounded activations).
func BF16ActKernels() string {
	if bf16dMV != nil {
		return "vdpbf16ps"
	}
	return "widen"
}

// The assembly of the mode, when the CPU has it (simd_amd64.go): mv computes
// rows over k columns (a multiple of 32) of bf16 activations x; mm6p a tile
// of 6 rows x 4 tokens over one panel of columns (ldx in elements; see
// kern.mm6p).
var (
	bf16dMV   func(dst, w, s, x unsafe.Pointer, rows, k, ldw int)
	bf16dMVs  func(dst, w, s, x unsafe.Pointer, rows, k, ldw int) // bf16dMV over four runs of rows far apart (decodeStream)
	bf16dMM6p func(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode int)
	bf16dMM2  *[9]tile2 // decode tiles of 2 rows x T tokens (kern.mm2)
)

// bf16dDecode reports whether n tokens run the mode's decode tiles.
func bf16dDecode(n int) bool { return bf16dMM2 != nil && n >= decodeMin && n <= decodeMax }

// roundBF16Impl rounds activations to bf16 (F32ToBF16 on each).
var roundBF16Impl = roundBF16Ref

func roundBF16Ref(dst []uint16, src []float32) {
	for i, v := range src {
		dst[i] = F32ToBF16(v)
	}
}

// F32ToBF16 rounds v to the nearest bfloat16, ties to even (NaN stays NaN).
func F32ToBF16(v float32) uint16 {
	b := math.Float32bits(v)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

var bf16ActScratch, bf16ActHalf sync.Pool

// bf16ActProduct computes MatMul(dst, m, x, n) for a BF16 matrix in the
// bf16-activation mode.
func bf16ActProduct(dst []float32, m *Mat, x []float32, n int) {
	C := m.Cols
	size := n * C
	xh, xhp := getScratch[uint16](&bf16ActHalf, size)
	defer bf16ActHalf.Put(xhp)
	// Rounding is a pass over the activations; the threads share it by
	// tokens (a few percent of a prefill otherwise left on one thread).
	k32 := C &^ 31
	useDP := bf16dMV != nil && k32 > 0
	// With rows cut into column panels, the tiles read a second copy packed
	// panel by panel (see packPanels).
	var xp []uint16
	kc := panelCols(k32, 2)
	if useDP && n >= 4 && kc < k32 && !bf16dDecode(n) {
		var xpp *[]uint16
		xp, xpp = getScratch[uint16](&panelHalf, n*k32)
		defer panelHalf.Put(xpp)
	}
	parallel(n, size, 1, func(t0, t1 int) {
		roundBF16Impl(xh[t0*C:t1*C], x[t0*C:t1*C])
		if xp != nil {
			for c0 := 0; c0 < k32; c0 += kc {
				kw := min(kc, k32-c0)
				for t := t0; t < t1; t++ {
					copy(xp[n*c0+t*kw:n*c0+(t+1)*kw], xh[t*C+c0:t*C+c0+kw])
				}
			}
		}
	})
	var xr []float32
	if !useDP || k32 < C {
		// The rounded activations as float32: for the exact kernels, and
		// for the columns past the assembly's multiple of 32.
		var xrp *[]float32
		xr, xrp = getScratch[float32](&bf16ActScratch, size)
		defer bf16ActScratch.Put(xrp)
		for i, h := range xh {
			xr[i] = BF16ToF32(h)
		}
	}
	if !useDP {
		// No VDPBF16PS: the exact kernels on the rounded activations.
		if n == 1 {
			parallel(m.Rows, m.Rows*C, rowGrain, func(r0, r1 int) { matVecRows(dst, m, xr, r0, r1) })
		} else if !amxMatMul(dst, m, xr, n) {
			parallel(m.Rows, m.Rows*C*n, rowGrain, func(r0, r1 int) { matMulRows(dst, m, xr, n, r0, r1) })
		}
		return
	}
	if n > 1 && amxMatMul(dst, m, xr, n) {
		return
	}
	parallel(m.Rows, m.Rows*C*n, rowGrain, func(r0, r1 int) { bf16ActRows(dst, m, xr, xh, xp, n, r0, r1, k32) })
}

// bf16ActRows computes rows r0..r1-1 of every token with the mode's
// assembly: 6x4 tiles where they fit (over panels of columns that stay in
// L1), the row kernel elsewhere, and the columns past k32 in Go, in column
// order.
func bf16ActRows(dst []float32, m *Mat, xr []float32, xh, xp []uint16, n, r0, r1, k32 int) {
	R, C := m.Rows, m.Cols
	if bf16dDecode(n) {
		decodeRows(dst, m, unsafe.Pointer(&xh[0]), 2, n, r0, r1, bf16dMM2, bf16dMV)
		if k32 < C {
			for t := 0; t < n; t++ {
				for i := r0; i < r1; i++ {
					dst[t*R+i] += m.tailDot(i, xr[t*C:], k32)
				}
			}
		}
		return
	}
	kc := panelCols(k32, 2)
	tb := max(4, tileBytes/(2*kc)&^3)
	var acc []float32
	if kc < k32 && n >= 4 {
		var accp *[]float32
		acc, accp = getScratch[float32](&accScratch, tb/4*tileAcc)
		defer accScratch.Put(accp)
	}
	for t0 := 0; t0 < n; t0 += tb {
		t1 := min(n, t0+tb)
		r := r0
		if n >= 4 {
			for ; r+6 <= r1; r += 6 {
				w := m.wptr(r)
				for c0 := 0; c0 < k32; c0 += kc {
					kw, mode := min(kc, k32-c0), panelMode(c0, kc, k32)
					for t := t0; t+4 <= t1; t += 4 {
						var a unsafe.Pointer
						if acc != nil {
							a = unsafe.Pointer(&acc[(t-t0)/4*tileAcc])
						}
						xa, ldx := unsafe.Pointer(&xh[t*C+c0]), C
						if xp != nil {
							xa, ldx = unsafe.Pointer(&xp[n*c0+t*kw]), kw
						}
						bf16dMM6p(unsafe.Pointer(&dst[t*R+r]), unsafe.Add(w, 2*c0), a, xa, R, C, ldx, kw, mode)
					}
				}
				for t := t0 + (t1-t0)&^3; t < t1; t++ {
					bf16dMV(unsafe.Pointer(&dst[t*R+r]), w, nil, unsafe.Pointer(&xh[t*C]), 6, k32, C)
				}
			}
		}
		if r < r1 {
			mv := bf16dMV
			if decodeStream && bf16dMVs != nil {
				mv = bf16dMVs // the same sums, four runs of rows far apart (see decodeStream)
			}
			for t := t0; t < t1; t++ {
				mv(unsafe.Pointer(&dst[t*R+r]), m.wptr(r), nil, unsafe.Pointer(&xh[t*C]), r1-r, k32, C)
			}
		}
		if k32 < C {
			for t := t0; t < t1; t++ {
				for i := r0; i < r1; i++ {
					dst[t*R+i] += m.tailDot(i, xr[t*C:], k32)
				}
			}
		}
	}
}

// bf16ActShared is MatMulShared of one token for BF16 matrices of the
// same columns (at least 32) in the bf16-activation mode with VDPBF16PS:
// the activations are rounded once, and the rows of all the products
// (rows in all) are cut among the threads in one parallel call. Each row
// runs the kernel bf16ActProduct runs it on, so the results are the same
// bit for bit.
func bf16ActShared(x []float32, rows int, ps []Product) {
	C := ps[0].M.Cols
	k32 := C &^ 31
	xh, xhp := getScratch[uint16](&bf16ActHalf, C)
	defer bf16ActHalf.Put(xhp)
	roundBF16Impl(xh, x[:C])
	var xr []float32
	if k32 < C {
		var xrp *[]float32
		xr, xrp = getScratch[float32](&bf16ActScratch, C)
		defer bf16ActScratch.Put(xrp)
		for i, h := range xh {
			xr[i] = BF16ToF32(h)
		}
	}
	sharedRows(ps, rows*C, func(p Product, r0, r1 int) {
		bf16ActRows(p.Dst, p.M, xr, xh, nil, 1, r0, r1, k32)
	})
}
