//go:build !purego

package kernels

import (
	"unsafe"
)

// Go halves of the AVX-512 vector operations in vec_amd64.s: the assembly
// covers the longest prefix that is a multiple of 16, the reference the rest.

//go:noescape
func silu512(x *float32, n int)

//go:noescape
func gelu512(x *float32, n int)

//go:noescape
func expSub512(x *float32, n int, m float32) float32

//go:noescape
func max512(x *float32, n int) float32

//go:noescape
func sumSq512(x *float32, n int) float32

//go:noescape
func normMul512(dst, x, w *float32, n int, scale, offset float32)

//go:noescape
func scale512(x *float32, n int, s float32)

//go:noescape
func axpy512(a float32, x, y *float32, n int)

//go:noescape
func prefetch512(p unsafe.Pointer, n int)

//go:noescape
func axpyRows512(dst, p, v *float32, n, k, stride int)

// axpyRowsVec is AxpyRows with the assembly: the same multiply-adds in the
// same order as axpyVec row by row.
func axpyRowsVec(dst, p, v []float32, stride int) {
	k := len(dst) &^ 15
	if k > 0 {
		axpyRows512(&dst[0], &p[0], &v[0], len(p), k, stride)
	}
	if k < len(dst) {
		for j, w := range p {
			refAxpy(w, v[j*stride+k:j*stride+len(dst)], dst[k:])
		}
	}
}

//go:noescape
func widen512BF16(dst *float32, src *uint16, n int)

//go:noescape
func widen512F16(dst *float32, src *uint16, n int)

//go:noescape
func widen256BF16(dst *float32, src *uint16, n int)

//go:noescape
func widen256F16(dst *float32, src *uint16, n int)

// widenVec256 is widenVec for AVX2 (a multiple of 8 in assembly).
func widenVec256(dst []float32, src []uint16, t Type) {
	widenSplit(dst, src, t, 8, widen256BF16, widen256F16)
}

// widenVec widens half-precision weights of type t to float32 (the
// assembly covers a multiple of 16; BF16ToF32 and F16ToF32 the rest).
func widenVec(dst []float32, src []uint16, t Type) {
	widenSplit(dst, src, t, 16, widen512BF16, widen512F16)
}

func useVec512(on bool) {
	widenImpl, widenTiles, axpyRowsImpl, prefetchImpl = nil, false, refAxpyRows, nil
	if !on {
		axpyImpl, rmsNormImpl, softmaxImpl = refAxpy, refRMSNorm, refSoftmax
		siluImpl, geluTanhImpl = refSiLU, refGELUTanh
		return
	}
	axpyImpl, rmsNormImpl, softmaxImpl = axpyVec, rmsNormVec, softmaxVec
	widenImpl, widenTiles = widenVec, true
	prefetchImpl = prefetch512
	axpyRowsImpl = axpyRowsVec
	siluImpl, geluTanhImpl = siluVec, geluVec
}

func siluVec(x []float32) { mapSplit(x, 16, silu512, refSiLU) }

//go:noescape
func silu256(x *float32, n int)

// siluVec256 is SiLU for AVX2: silu256 on a multiple of 8, the reference
// on the rest.
func siluVec256(x []float32) { mapSplit(x, 8, silu256, refSiLU) }

func geluVec(x []float32) { mapSplit(x, 16, gelu512, refGELUTanh) }

func axpyVec(a float32, x, y []float32) {
	k := len(x) &^ 15
	if k > 0 {
		axpy512(a, &x[0], &y[0], k)
	}
	refAxpy(a, x[k:], y[k:len(x)])
}

//go:noescape
func axpy256(a float32, x, y *float32, n int)

//go:noescape
func axpyRows256(dst, p, v *float32, n, k, stride int)

// axpyVec256 and axpyRowsVec256 are Axpy and AxpyRows for AVX2: the
// assembly on a multiple of 8 columns, the reference on the rest, so that
// AxpyRows is Axpy row by row here too.
func axpyVec256(a float32, x, y []float32) {
	k := len(x) &^ 7
	if k > 0 {
		axpy256(a, &x[0], &y[0], k)
	}
	refAxpy(a, x[k:], y[k:len(x)])
}

func axpyRowsVec256(dst, p, v []float32, stride int) {
	k := len(dst) &^ 7
	if k > 0 && len(p) > 0 {
		axpyRows256(&dst[0], &p[0], &v[0], len(p), k, stride)
	}
	if k < len(dst) {
		for j, w := range p {
			refAxpy(w, v[j*stride+k:j*stride+len(dst)], dst[k:])
		}
	}
}

//go:noescape
func expSub256(x *float32, n int, m float32) float32

//go:noescape
func max256(x *float32, n int) float32

//go:noescape
func scale256(x *float32, n int, s float32)

// softmaxVec256 is softmaxVec for AVX2.
func softmaxVec256(x []float32) { softmaxSplit(x, 8, max256, expSub256, scale256) }

func softmaxVec(x []float32) { softmaxSplit(x, 16, max512, expSub512, scale512) }

func rmsNormVec(dst, x, w []float32, eps, offset float32) {
	rmsNormSplit(dst, x, w, eps, offset, 16, sumSq512, normMul512)
}
