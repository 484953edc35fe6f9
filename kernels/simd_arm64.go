//go:build !purego

package kernels

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run gen_arm64.go

// The NEON assembly in simd_arm64.s (gen_arm64.go); see kern in ops.go for
// the contract. Only the matrix-vector kernels (kern.mv) exist: MatMul runs
// them token by token over row blocks that stay in L1 (matMulRowsP), so
// its rows equal MatVec's bit for bit.

//go:noescape
func mvNeonF32(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mvNeonBF16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mvNeonF16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mvNeonQ8 is the Q8_0 matrix-vector kernel (k a multiple of 64, x the
// activations' records, see q8.go); it needs SDOT, the ARMv8.2 dot-product
// extension (hasDotProd).
//
//go:noescape
func mvNeonQ8(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mvNeonQ4 is mvNeonQ8 for Q4_0 weights (the nibbles unpacked to int8).
//
//go:noescape
func mvNeonQ4(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mvNeonQ8m and mvNeonQ4m are mvNeonQ8 and mvNeonQ4 without SDOT (SMULL
// and SADALP), for ARMv8.0 CPUs, with the same results bit for bit.
//
//go:noescape
func mvNeonQ8m(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mvNeonQ4m(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// hasDotProd reports SDOT (ARMv8.2 dot product, "asimddp").
func hasDotProd() bool { return cpu.ARM64.HasASIMDDP }

//go:noescape
func axpyNeon(a float32, x, y *float32, n int)

//go:noescape
func axpyRowsNeon(dst, p, v *float32, n, k, stride int)

// axpyNeonVec is Axpy with the assembly on a multiple of 16 elements and
// the reference on the rest.
func axpyNeonVec(a float32, x, y []float32) {
	k := len(x) &^ 15
	if k > 0 {
		axpyNeon(a, &x[0], &y[0], k)
	}
	refAxpy(a, x[k:], y[k:len(x)])
}

// axpyRowsNeonVec is AxpyRows the same way, so that it is Axpy row by row
// bit for bit.
func axpyRowsNeonVec(dst, p, v []float32, stride int) {
	k := len(dst) &^ 15
	if k > 0 && len(p) > 0 {
		axpyRowsNeon(&dst[0], &p[0], &v[0], len(p), k, stride)
	}
	if k < len(dst) {
		for j, w := range p {
			refAxpy(w, v[j*stride+k:j*stride+len(dst)], dst[k:])
		}
	}
}

//go:noescape
func siluNeon(x *float32, n int)

// siluNeonVec is SiLU with the assembly on a multiple of 4 elements and the
// reference on the rest.
func siluNeonVec(x []float32) { mapSplit(x, 4, siluNeon, refSiLU) }

//go:noescape
func maxNeon(x *float32, n int) float32

//go:noescape
func expSubNeon(x *float32, n int, m float32) float32

//go:noescape
func scaleNeon(x *float32, n int, s float32)

//go:noescape
func sumSqNeon(x *float32, n int) float32

//go:noescape
func normMulNeon(dst, x, w *float32, n int, scale, offset float32)

// softmaxNeonVec is Softmax with the assembly on a multiple of 4 elements.
func softmaxNeonVec(x []float32) { softmaxSplit(x, 4, maxNeon, expSubNeon, scaleNeon) }

// rmsNormNeonVec is RMSNorm with the assembly on a multiple of 16 elements.
func rmsNormNeonVec(dst, x, w []float32, eps, offset float32) {
	rmsNormSplit(dst, x, w, eps, offset, 16, sumSqNeon, normMulNeon)
}

//go:noescape
func geluNeon(x *float32, n int)

// geluNeonVec is GELUTanh with the assembly on a multiple of 4 elements and
// the reference on the rest.
func geluNeonVec(x []float32) { mapSplit(x, 4, geluNeon, refGELUTanh) }

//go:noescape
func widenNeonBF16(dst *float32, src *uint16, n int)

//go:noescape
func widenNeonF16(dst *float32, src *uint16, n int)

// widenNeonVec is Widen with the assembly on a multiple of 8 values and
// the reference on the rest. (It does not make MatMul widen weights for a
// tile: that needs kern.mm6p, which arm64 lacks.)
func widenNeonVec(dst []float32, src []uint16, t Type) {
	widenSplit(dst, src, t, 8, widenNeonBF16, widenNeonF16)
}

// init picks NEON, or the reference when MOCO_KERNELS=purego (pickPath).
func init() {
	name, note := pickPath(os.Getenv("MOCO_KERNELS"), simdPaths())
	kernelsNote = note
	selectPath(name)
}

// kernelsNote says how MOCO_KERNELS changed the selection ("" if unset);
// Choices reports it.
var kernelsNote string

// pickPath returns the path to use: the first of paths, or the one env
// names (neon+dotprod, neon or purego) if this CPU can run it. note
// explains a forced or refused choice.
func pickPath(env string, paths []string) (name, note string) {
	best := "purego"
	if len(paths) > 0 {
		best = paths[0]
	}
	switch {
	case env == "":
		return best, ""
	case env == "purego" || slices.Contains(paths, env):
		return env, "forced by MOCO_KERNELS=" + env
	default:
		return best, fmt.Sprintf("MOCO_KERNELS=%s ignored: this CPU runs %s", env, strings.Join(append(paths, "purego"), ", "))
	}
}

// simdPaths lists the instruction sets this CPU can run, fastest first, for
// tests: every arm64 CPU has NEON (Advanced SIMD is part of ARMv8-A);
// neon+dotprod adds SDOT for Q8_0 and Q4_0.
func simdPaths() []string {
	if hasDotProd() {
		return []string{"neon+dotprod", "neon"}
	}
	return []string{"neon"}
}

// selectPath selects the kernels of the named path (neon+dotprod, neon or
// purego).
func selectPath(name string) {
	simd = [5]kern{}
	simdName = "purego"
	dotImpl = refDot
	axpyImpl, axpyRowsImpl, siluImpl = refAxpy, refAxpyRows, refSiLU
	softmaxImpl, rmsNormImpl, geluTanhImpl = refSoftmax, refRMSNorm, refGELUTanh
	widenImpl = nil
	resetCalibration()
	if name != "neon" && name != "neon+dotprod" {
		return
	}
	simdName = name
	simd[F32] = kern{mv: mvNeonF32}
	simd[BF16] = kern{mv: mvNeonBF16}
	simd[F16] = kern{mv: mvNeonF16}
	dotImpl = neonDot
	axpyImpl, axpyRowsImpl, siluImpl = axpyNeonVec, axpyRowsNeonVec, siluNeonVec
	softmaxImpl, rmsNormImpl, geluTanhImpl = softmaxNeonVec, rmsNormNeonVec, geluNeonVec
	widenImpl = widenNeonVec
	simd[Q8_0] = kern{mv: mvNeonQ8m}
	simd[Q4_0] = kern{mv: mvNeonQ4m}
	if name == "neon+dotprod" {
		simd[Q8_0] = kern{mv: mvNeonQ8}
		simd[Q4_0] = kern{mv: mvNeonQ4}
	}
}

// neonDot runs the f32 matrix-vector kernel on a one-row matrix.
func neonDot(a, b []float32) float32 {
	k32 := len(a) &^ 31
	if k32 == 0 {
		return refDot(a, b)
	}
	var s float32
	simd[F32].mv(unsafe.Pointer(&s), unsafe.Pointer(&a[0]), nil, unsafe.Pointer(&b[0]), 1, k32, k32)
	for i := k32; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

// The AMX tiles exist on amd64 only.

func amxMatMul(dst []float32, m *Mat, x []float32, n int) bool { return false }

func amxTakes(m *Mat, n int) bool { return false }

func amxQ8Applies(m *Mat, n int) bool { return false }

func amxQ8MatMul(dst []float32, m *Mat, a *q8Acts, n int) {}

// choices explains the selection selectPath made.
func choices() []Choice {
	var c []Choice
	add := func(k, p, r string) { c = append(c, Choice{k, p, r}) }
	if kernelsNote != "" {
		add("selection", simdName, kernelsNote)
	}
	if simdName == "purego" {
		why := "forced: the pure-Go reference"
		for _, k := range []string{"f32/bf16/f16 decode", "bf16/f16 decode batch (exact)", "bf16 prefill (exact)", "bf16 activation mode", "q8_0", "q4_0", "quantize at load"} {
			add(k, "purego", why)
		}
		return c
	}
	const neon = "arm64 NEON (Advanced SIMD, every ARMv8-A CPU)"
	add("f32/bf16/f16 decode", "neon rows of 4 (4 accumulators of 4 lanes a row, bf16 widened with zip, f16 with fcvtl)", neon)
	add("bf16/f16 decode batch (exact)", "neon rows of 4, token by token over row blocks in L1", neon+"; no multi-token tile yet")
	add("bf16 prefill (exact)", "neon rows of 4, token by token over row blocks in L1", neon+"; no multi-token tile yet")
	add("bf16 activation mode", "widen (exact kernels on rounded activations)", "no bf16 dot-product kernel for arm64 yet")
	idot, why := "sdot", "ARMv8.2 dot product (asimddp)"
	if simdName == "neon" {
		idot, why = "smull+sadalp", "no SDOT (ARMv8.2 dot product, asimddp) on this CPU"
		if hasDotProd() {
			why = "SDOT turned off (MOCO_KERNELS=neon)"
		}
	}
	add("q8_0", "neon "+idot+" rows of 4, token by token over row blocks in L1", why)
	add("q4_0", "neon "+idot+" rows of 4 (nibbles unpacked in registers), token by token over row blocks in L1", why)
	add("quantize at load", "go", "no arm64 quantizer yet")
	return c
}
