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

//go:generate go run gen_amd64.go

// The assembly in simd_amd64.s; see kern in ops.go for the contract.

//go:noescape
func mv512F32(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512BF16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512F16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512Q8(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mv512F32, mv512BF16 and mv512F16 over four runs of rows far apart (kern.mvs).
//
//go:noescape
func mv512F32s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512BF16s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512F16s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512BF16ds(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mv256F32, mv256BF16 and mv256F16 over four runs of rows far apart (kern.mvs).
//
//go:noescape
func mv256F32s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv256BF16s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv256F16s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv512Q8s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mm512F32(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm512BF16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm512F16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm512Q8(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm6x4F32(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm6x4BF16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm6x4F16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mv256F32(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv256BF16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// The AVX2 4-row x 4-token tiles (mm256 in gen_amd64.go).
//
//go:noescape
func mm256F32(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm256BF16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm256F16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mv256F16(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mv256Q8(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mv256Q8 over four runs of rows far apart (kern.mvs).
//
//go:noescape
func mv256Q8s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// mm256Q8 is mm512Q8's 4-row x 4-token tile for AVX2 (gen_amd64.go).
//
//go:noescape
func mm256Q8(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mv512Q4(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mm512Q4(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mv256Q4(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

// packQ4x8 and mm8x4Q4p are the AVX2 Q4_0 tile over rows packed in eights
// (gen_amd64.go, kern.pack and kern.mmp).
//
//go:noescape
func packQ4x8(dst, w, s unsafe.Pointer, ldw, nb int)

//go:noescape
func mm8x4Q4p(dst, wp, x unsafe.Pointer, ldd, ldx, k int)

//go:noescape
func mv512BF16d(dst, w, s, x unsafe.Pointer, rows, k, ldw int)

//go:noescape
func mm6x4BF16d(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm6x4F32p(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode int)

//go:noescape
func mm6x4BF16dp(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode int)

//go:noescape
func mm2x1BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x1F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x1BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x2BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x2F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x2BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x3BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x3F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x3BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x4BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x4F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x4BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x5BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x5F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x5BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x6BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x6F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x6BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x7BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x7F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x7BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x8BF16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x8F16(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func mm2x8BF16d(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)

//go:noescape
func roundBF16x512(dst *uint16, src *float32, n int)

//go:noescape
func mm256x6F32(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm256x6BF16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

//go:noescape
func mm256x6F16(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)

// packQ8x8 and mm8x4Q8p are the AVX2 Q8_0 tile over rows packed in eights
// (gen_amd64.go, kern.pack and kern.mmp).
//
//go:noescape
func packQ8x8(dst, w, s unsafe.Pointer, ldw, nb int)

//go:noescape
func mm8x4Q8p(dst, wp, x unsafe.Pointer, ldd, ldx, k int)

//go:noescape
func quantQ8x512(rec *q8Rec, q *int8, s *float32, x *float32, nb int)

//go:noescape
func quantQ8x256(rec *q8Rec, q *int8, s *float32, x *float32, nb int)

//go:noescape
func quantQ4x256(q *uint8, d *float32, x *float32, nb int)

// The 2-row x T-token decode tiles (mm2xT in gen_amd64.go), indexed by T.
var (
	mm2BF16  = [9]tile2{nil, mm2x1BF16, mm2x2BF16, mm2x3BF16, mm2x4BF16, mm2x5BF16, mm2x6BF16, mm2x7BF16, mm2x8BF16}
	mm2F16   = [9]tile2{nil, mm2x1F16, mm2x2F16, mm2x3F16, mm2x4F16, mm2x5F16, mm2x6F16, mm2x7F16, mm2x8F16}
	mm2BF16d = [9]tile2{nil, mm2x1BF16d, mm2x2BF16d, mm2x3BF16d, mm2x4BF16d, mm2x5BF16d, mm2x6BF16d, mm2x7BF16d, mm2x8BF16d}
)

// quantRecs512 is quantizeRecs with quantQ8x512.
func quantRecs512(rec []q8Rec, q []int8, s []float32, x []float32) {
	quantQ8x512(&rec[0], &q[0], &s[0], &x[0], len(s))
}

// quantQ4Vec256 is quantQ4Impl with quantQ4x256.
func quantQ4Vec256(q []uint8, d []float32, x []float32) {
	quantQ4x256(&q[0], &d[0], &x[0], len(d))
}

// quantRecs256 is quantizeRecs with quantQ8x256.
func quantRecs256(rec []q8Rec, q []int8, s []float32, x []float32) {
	quantQ8x256(&rec[0], &q[0], &s[0], &x[0], len(s))
}

func hasAVX512() bool {
	x := &cpu.X86
	return x.HasAVX512F && x.HasAVX512VL && x.HasAVX512BW && x.HasAVX512DQ
}

func hasAVX2() bool {
	x := &cpu.X86
	return x.HasAVX2 && x.HasFMA && x.HasAVX // F16C comes with every AVX2 CPU
}

// init picks the best path this CPU can run, or the one MOCO_KERNELS names
// (pickPath).
func init() {
	name, note := pickPath(os.Getenv("MOCO_KERNELS"), simdPaths())
	kernelsNote = note
	if name == "purego" {
		useSIMD(false, false)
		return
	}
	selectPath(name)
}

// kernelsNote says how MOCO_KERNELS changed the selection ("" if unset);
// Choices reports it.
var kernelsNote string

// pickPath returns the path to use: the first (fastest) of paths, or the
// one env names (avx512+amx, avx512, avx2 or purego) if this CPU can run
// it, so that a slower machine's kernels can be measured on a faster one.
// note explains a forced or refused choice.
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

// useSIMD selects the kernels; tests call it to check each path.
func useSIMD(avx512, avx2 bool) {
	simd = [5]kern{}
	simdName = "purego"
	amxOn = false
	decodeStream = false
	quantRecsImpl, quantRecsFast = quantRecsRef, false
	quantQ4Impl = nil
	dotImpl = refDot
	useDPBF16(false)
	widenMode = widenAll
	roundBF16Impl = roundBF16Ref
	useVec512(avx512)
	resetCalibration()
	switch {
	case avx512:
		simdName = "avx512"
		simd[F32] = kern{mv: mv512F32, mvs: mv512F32s, mm: mm512F32, mm6: mm6x4F32, mm6p: mm6x4F32p}
		roundBF16Impl = roundBF16Vec
		simd[BF16] = kern{mv: mv512BF16, mvs: mv512BF16s, mm: mm512BF16, mm6: mm6x4BF16, mm2: &mm2BF16}
		simd[F16] = kern{mv: mv512F16, mvs: mv512F16s, mm: mm512F16, mm6: mm6x4F16, mm2: &mm2F16}
		decodeStream = isAMD()
		quantRecsImpl, quantRecsFast = quantRecs512, true
		quantQ4Impl = quantQ4Vec256
		simd[Q8_0] = kern{mv: mv256Q8, mvs: mv256Q8s, mm: mm256Q8, pack: packQ8x8, mmp: mm8x4Q8p}
		simd[Q4_0] = kern{mv: mv256Q4, pack: packQ4x8, mmp: mm8x4Q4p}
		if cpu.X86.HasAVX512VNNI {
			simd[Q8_0] = kern{mv: mv512Q8, mvs: mv512Q8s, mm: mm512Q8}
			simd[Q4_0] = kern{mv: mv512Q4, mm: mm512Q4}
		}
		dotImpl = simdDot
		useDPBF16(cpu.X86.HasAVX512BF16 && preferDPBF16())
	case avx2:
		simdName = "avx2"
		simd[F32] = kern{mv: mv256F32, mvs: mv256F32s, mm: mm256F32, mm6: mm256x6F32}
		simd[BF16] = kern{mv: mv256BF16, mvs: mv256BF16s, mm: mm256BF16, mm6: mm256x6BF16}
		simd[F16] = kern{mv: mv256F16, mvs: mv256F16s, mm: mm256F16, mm6: mm256x6F16}
		decodeStream = isAMD()
		simd[Q8_0] = kern{mv: mv256Q8, mvs: mv256Q8s, mm: mm256Q8, pack: packQ8x8, mmp: mm8x4Q8p}
		simd[Q4_0] = kern{mv: mv256Q4, pack: packQ4x8, mmp: mm8x4Q4p}
		quantRecsImpl, quantRecsFast = quantRecs256, true
		quantQ4Impl = quantQ4Vec256
		siluImpl = siluVec256
		widenImpl = widenVec256 // for Widen's callers: widenTiles stays off
		axpyImpl, axpyRowsImpl = axpyVec256, axpyRowsVec256
		softmaxImpl = softmaxVec256
		dotImpl = simdDot
	}
}

// useDPBF16 selects the bf16-activation mode's kernels: VDPBF16PS (on), or
// the exact kernels on the rounded activations.
func useDPBF16(on bool) {
	bf16dMV, bf16dMVs, bf16dMM6p, bf16dMM2 = nil, nil, nil, nil
	if on {
		bf16dMV, bf16dMVs, bf16dMM6p, bf16dMM2 = mv512BF16d, mv512BF16ds, mm6x4BF16dp, &mm2BF16d
	}
}

// roundBF16Vec is roundBF16Ref with the assembly over a multiple of 16.
func roundBF16Vec(dst []uint16, src []float32) {
	k := len(src) &^ 15
	if k > 0 {
		roundBF16x512(&dst[0], &src[0], k)
	}
	roundBF16Ref(dst[k:], src[k:])
}

// simdDot runs the f32 matrix-vector kernel on a one-row matrix.
func simdDot(a, b []float32) float32 {
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

// simdPaths lists the instruction sets this CPU can run, for tests.
func simdPaths() []string {
	var p []string
	if amxAvailable { // implies AVX-512
		p = append(p, "avx512+amx")
	}
	if hasAVX512() {
		p = append(p, "avx512")
	}
	if hasAVX2() {
		p = append(p, "avx2")
	}
	return p
}

func selectPath(name string) {
	useSIMD(name == "avx512" || name == "avx512+amx", name == "avx2")
	if name == "avx512+amx" {
		amxOn, simdName = true, name
	}
}

// choices explains the selection useSIMD and preferDPBF16 made.
func choices() []Choice {
	x := &cpu.X86
	var c []Choice
	add := func(k, p, r string) { c = append(c, Choice{k, p, r}) }
	if kernelsNote != "" {
		add("selection", simdName, kernelsNote)
	}
	cpuName := cpuInfo.String()
	switch simdName {
	case "purego":
		why := "no AVX2+FMA on this CPU, or forced: the pure-Go reference"
		for _, k := range []string{"f32/bf16/f16 decode", "bf16/f16 decode batch (exact)", "bf16 prefill (exact)", "bf16 activation mode", "q8_0", "q4_0", "quantize at load"} {
			add(k, "purego", why)
		}
		return c
	case "avx2":
		if decodeStream {
			add("f32/bf16/f16 decode", "avx2 four runs of rows far apart, a row of each at a time, each read 2 KiB ahead by prefetch (8 lanes, weights widened in registers)", "AVX2+FMA without AVX-512, on AMD (as AVX-512 there)")
		} else {
			add("f32/bf16/f16 decode", "avx2 rows (8 lanes, weights widened in registers)", "AVX2+FMA without AVX-512")
		}
		add("bf16/f16 decode batch (exact)", "avx2 6x4 tiles (two passes of 3 rows x 4 tokens) for 4+ tokens, rows for the rest", "AVX2+FMA without AVX-512")
		add("bf16 prefill (exact)", "avx2 6x4 tiles (two passes of 3 rows x 4 tokens: 12 FMA chains, each weight widened once for 4 tokens)", "AVX2+FMA without AVX-512 (16 ymm registers: no one-pass 6x4 tile)")
		add("bf16 activation mode", "widen (exact kernels on rounded activations)", "no AVX512-BF16")
		add("q8_0", q8AVX2Path(), "AVX2 without AVX512-VNNI")
		add("q4_0", "avx2 vpmaddubsw, both blocks of a record side by side in decode, prefill tile of 8 rows x 4 tokens over rows unpacked and packed once per call (a lane per row, int16 sums per block)", "AVX2 without AVX512-VNNI")
		add("quantize at load", "q8_0: the activations' avx2 quantizer; q4_0: avx2 quantQ4x256", "AVX2")
		return c
	}
	if decodeStream {
		add("f32/bf16/f16 decode", "avx512 four runs of rows far apart, a row of each at a time, each read 1.5 KiB ahead by prefetch (weights widened in registers)",
			"AVX-512 F/BW/DQ/VL on AMD (Zen 5: streams far apart read faster than neighbouring rows)")
	} else {
		add("f32/bf16/f16 decode", "avx512 rows of 8 (weights widened in registers, next rows prefetched)", "AVX-512 F/BW/DQ/VL")
	}
	add("bf16/f16 decode batch (exact)", fmt.Sprintf("avx512 2-row x 8-token tiles for %d-%d tokens (each weight widened once in a register for 8 tokens)", decodeMin, decodeMax), "AVX-512 F/BW/DQ/VL")
	if amxOn {
		add("bf16 prefill (exact)", "amx-bf16 tiles (activations split exactly into three bf16 parts), 16 tokens and up",
			"AMX-BF16 present and enabled by the OS (MOCO_AMX=0 turns it off)")
	} else {
		why := "AVX-512 without AMX"
		if amxAvailable {
			why = "AMX turned off (MOCO_AMX=0 or selected path)"
		}
		path := "avx512 f32 6x4 tile on widened weights, 24 KiB column panels"
		switch widenMode {
		case widenNone:
			path = "avx512 bf16 6x4 tile, weights widened in registers"
		case widenShort:
			path = "avx512 f32 6x4 tile on widened weights where six rows fit one 24 KiB panel, else the bf16 6x4 tile widening in registers"
		}
		add("bf16 prefill (exact)", path, why)
	}
	mode := "off"
	if bf16Act.Load() {
		mode = "on"
	}
	switch {
	case bf16dMV != nil:
		path := "vdpbf16ps (mode " + mode + ")"
		if decodeStream {
			path = "vdpbf16ps, decode over four runs of rows far apart, prefetched 1.5 KiB ahead (mode " + mode + ")"
		}
		add("bf16 activation mode", path,
			"AVX512-BF16 on "+cpuName+": AMD Zen 4/5 issue VDPBF16PS at the f32 FMA rate, twice the multiply-adds (measured 1.9/cycle on Zen 5)")
	case x.HasAVX512BF16:
		add("bf16 activation mode", "widen (mode "+mode+")",
			"AVX512-BF16 on "+cpuName+": Intel before AMX measured VDPBF16PS at half its f32 FMA rate, so the exact kernels run on the rounded activations")
	default:
		add("bf16 activation mode", "widen (mode "+mode+")", "no AVX512-BF16")
	}
	switch {
	case amxOn && amxInt8:
		add("q8_0", "amx-int8 tiles for 16 tokens and up, avx512-vnni vpdpbusd below", "AMX-INT8 present")
	case x.HasAVX512VNNI && decodeStream:
		add("q8_0", "avx512-vnni vpdpbusd; decode over four runs of rows far apart, each read 1.5 KiB ahead by prefetch", "AVX512-VNNI on AMD (as f32/bf16/f16 decode)")
	case x.HasAVX512VNNI:
		add("q8_0", "avx512-vnni vpdpbusd", "AVX512-VNNI")
	default:
		add("q8_0", q8AVX2Path(), "AVX-512 without VNNI")
	}
	if x.HasAVX512VNNI {
		add("q4_0", "avx512-vnni vpdpbusd, 4-row x 4-token tiles for prefill (each weight block unpacked once for 4 tokens)", "AVX512-VNNI")
	} else {
		add("q4_0", "avx2 vpmaddubsw, both blocks of a record side by side in decode, prefill tile of 8 rows x 4 tokens over rows unpacked and packed once per call (a lane per row, int16 sums per block)", "AVX-512 without VNNI")
	}
	add("quantize at load", "q8_0: the activations' avx512 quantizer; q4_0: avx2 quantQ4x256", "AVX-512 (Q4_0's quantizer is AVX2 only)")
	return c
}

// q8AVX2Path describes the AVX2 Q8_0 kernels in use.
func q8AVX2Path() string {
	rows := "rows"
	if decodeStream {
		rows = "decode over four runs of rows far apart, each read 2 KiB ahead by prefetch"
	}
	return "avx2 vpmaddubsw " + rows + ", prefill tile of 8 rows x 4 tokens over rows packed once per call (a lane per row: no horizontal sums)"
}
