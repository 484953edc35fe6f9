//go:build ignore

// This program writes simd_arm64.s, the NEON assembly of the matrix-vector
// kernels for arm64. The kernels differ only in how they load and widen a
// weight type, so they are generated rather than written out by hand.
//
//	go run gen_arm64.go
//
// The Go assembler has no mnemonic for some of the NEON instructions used
// here (vector FADD, FADDP, FMUL, FCVTL, SCVTF, SDOT); those are emitted as
// WORD with their encoding from the Arm Architecture Reference Manual and
// the instruction in a comment.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

var out bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// enc emits one instruction the assembler lacks: base with Rd, Rn and Rm
// (vector register numbers) filled in.
func enc(base uint32, d, n, m int, text string) {
	p("\tWORD $0x%08x // %s", base|uint32(m)<<16|uint32(n)<<5|uint32(d), text)
}

// fadd4s: FADD Vd.4S, Vn.4S, Vm.4S.
func fadd4s(d, n, m int) {
	enc(0x4e20d400, d, n, m, fmt.Sprintf("FADD V%d.4S, V%d.4S, V%d.4S", d, n, m))
}

// faddp4s: FADDP Vd.4S, Vn.4S, Vm.4S = [n0+n1, n2+n3, m0+m1, m2+m3].
func faddp4s(d, n, m int) {
	enc(0x6e20d400, d, n, m, fmt.Sprintf("FADDP V%d.4S, V%d.4S, V%d.4S", d, n, m))
}

// faddpS: FADDP Sd, Vn.2S = n0+n1.
func faddpS(d, n int) { enc(0x7e30d800, d, n, 0, fmt.Sprintf("FADDP S%d, V%d.2S", d, n)) }

// fmul4s: FMUL Vd.4S, Vn.4S, Vm.4S.
func fmul4s(d, n, m int) {
	enc(0x6e20dc00, d, n, m, fmt.Sprintf("FMUL V%d.4S, V%d.4S, V%d.4S", d, n, m))
}

// fcvtl: FCVTL Vd.4S, Vn.4H (the low four halves); fcvtl2 the high four.
func fcvtl(d, n int)  { enc(0x0e217800, d, n, 0, fmt.Sprintf("FCVTL V%d.4S, V%d.4H", d, n)) }
func fcvtl2(d, n int) { enc(0x4e217800, d, n, 0, fmt.Sprintf("FCVTL2 V%d.4S, V%d.8H", d, n)) }

// scvtf4s: SCVTF Vd.4S, Vn.4S (int32 lanes to float32).
func scvtf4s(d, n int) { enc(0x4e21d800, d, n, 0, fmt.Sprintf("SCVTF V%d.4S, V%d.4S", d, n)) }

// scvtfS: SCVTF Sd, Sn (lane 0 only).
func scvtfS(d, n int) { enc(0x5e21d800, d, n, 0, fmt.Sprintf("SCVTF S%d, S%d", d, n)) }

// sdot: SDOT Vd.4S, Vn.16B, Vm.16B (the dotprod extension, ARMv8.2).
func sdot(d, n, m int) {
	enc(0x4e809400, d, n, m, fmt.Sprintf("SDOT V%d.4S, V%d.16B, V%d.16B", d, n, m))
}

// smull: SMULL Vd.8H, Vn.8B, Vm.8B (the low eight int8 lanes, widened
// products); smull2 the high eight.
func smull(d, n, m int) {
	enc(0x0e20c000, d, n, m, fmt.Sprintf("SMULL V%d.8H, V%d.8B, V%d.8B", d, n, m))
}

func smull2(d, n, m int) {
	enc(0x4e20c000, d, n, m, fmt.Sprintf("SMULL2 V%d.8H, V%d.16B, V%d.16B", d, n, m))
}

// sadalp: SADALP Vd.4S, Vn.8H (adds pairs of int16 lanes to int32 lanes).
func sadalp(d, n int) { enc(0x4e606800, d, n, 0, fmt.Sprintf("SADALP V%d.4S, V%d.8H", d, n)) }

// The vector float operations of silu (FMAX, FMIN, FRINTN, FCVTZS, FNEG,
// FDIV on .4S).
func fmax4s(d, n, m int) {
	enc(0x4e20f400, d, n, m, fmt.Sprintf("FMAX V%d.4S, V%d.4S, V%d.4S", d, n, m))
}
func fmin4s(d, n, m int) {
	enc(0x4ea0f400, d, n, m, fmt.Sprintf("FMIN V%d.4S, V%d.4S, V%d.4S", d, n, m))
}
func fdiv4s(d, n, m int) {
	enc(0x6e20fc00, d, n, m, fmt.Sprintf("FDIV V%d.4S, V%d.4S, V%d.4S", d, n, m))
}
func frintn4s(d, n int) { enc(0x4e218800, d, n, 0, fmt.Sprintf("FRINTN V%d.4S, V%d.4S", d, n)) }
func fcvtzs4s(d, n int) { enc(0x4ea1b800, d, n, 0, fmt.Sprintf("FCVTZS V%d.4S, V%d.4S", d, n)) }
func fneg4s(d, n int)   { enc(0x6ea0f800, d, n, 0, fmt.Sprintf("FNEG V%d.4S, V%d.4S", d, n)) }

// fmla: Vd.4S += Vn.4S * Vm.4S.
func fmla(d, n, m int) { p("\tVFMLA V%d.S4, V%d.S4, V%d.S4", m, n, d) }

func zero(v int) { p("\tVEOR V%d.B16, V%d.B16, V%d.B16", v, v, v) }

// wtype describes how a weight type is loaded and widened.
type wtype struct {
	name  string
	shift int // log2 of the bytes per weight
}

var types = []wtype{{"F32", 2}, {"BF16", 1}, {"F16", 1}}

// The registers of the matrix-vector kernels: V0-V7 hold 32 activations,
// V8-V15 the weights of one row (V12 zero for BF16), V16-V31 four
// accumulators for each of four rows.
const (
	vx   = 0
	vw   = 8
	vz   = 12 // BF16's zero
	vt   = 13 // widened weights
	vacc = 16
)

// chunk multiplies 32 columns of the row at register rp (post-incremented)
// by V0-V7 into the accumulators vacc+4r .. vacc+4r+3. Column group g (four
// columns) goes to accumulator g%4, so each row's sum runs in the same
// order whichever kernel and however many rows.
func chunk(t wtype, rp string, r int) {
	a := vacc + 4*r
	switch t.name {
	case "F32":
		for h := 0; h < 2; h++ {
			p("\tVLD1.P 64(%s), [V%d.S4, V%d.S4, V%d.S4, V%d.S4]", rp, vw+4*h, vw+4*h+1, vw+4*h+2, vw+4*h+3)
			for i := 0; i < 4; i++ {
				g := 4*h + i
				fmla(a+g%4, vw+g, vx+g)
			}
		}
	default:
		p("\tVLD1.P 64(%s), [V%d.H8, V%d.H8, V%d.H8, V%d.H8]", rp, vw, vw+1, vw+2, vw+3)
		for i := 0; i < 4; i++ {
			lo, hi := vt, vt+1
			if t.name == "BF16" {
				// ZIP1 Vd.8H, zero, w: each weight becomes the high half
				// of a float32 lane with a zero low half.
				p("\tVZIP1 V%d.H8, V%d.H8, V%d.H8", vw+i, vz, lo)
				p("\tVZIP2 V%d.H8, V%d.H8, V%d.H8", vw+i, vz, hi)
			} else {
				fcvtl(lo, vw+i)
				fcvtl2(hi, vw+i)
			}
			fmla(a+(2*i)%4, lo, vx+2*i)
			fmla(a+(2*i+1)%4, hi, vx+2*i+1)
		}
	}
}

// mv writes mvNeon<T>(dst, w, s, x unsafe.Pointer, rows, k, ldw int): rows
// of 4, then one at a time. Each row's sum: four accumulators of four lanes
// (column group g of every 32 to accumulator g%4), then (a0+a1)+(a2+a3),
// then (l0+l1)+(l2+l3) over its lanes.
func mv(t wtype) {
	p("// func mvNeon%s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", t.name)
	p("TEXT ·mvNeon%s(SB), NOSPLIT, $0-56", t.name)
	p("\tMOVD dst+0(FP), R0")
	p("\tMOVD w+8(FP), R1")
	p("\tMOVD x+24(FP), R3")
	p("\tMOVD rows+32(FP), R4")
	p("\tMOVD k+40(FP), R5")
	p("\tMOVD ldw+48(FP), R6")
	p("\tLSL $%d, R6, R6 // row stride in bytes", t.shift)
	if t.name == "BF16" {
		zero(vz)
	}
	p("rows4%s:", t.name)
	p("\tCMP $4, R4")
	p("\tBLT row1%s", t.name)
	p("\tMOVD R1, R7")
	p("\tADD R6, R7, R8")
	p("\tADD R6, R8, R9")
	p("\tADD R6, R9, R10")
	p("\tMOVD R3, R11")
	p("\tMOVD R5, R12")
	for i := vacc; i < 32; i++ {
		zero(i)
	}
	p("cols4%s:", t.name)
	p("\tVLD1.P 64(R11), [V0.S4, V1.S4, V2.S4, V3.S4]")
	p("\tVLD1.P 64(R11), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for r := 0; r < 4; r++ {
		chunk(t, fmt.Sprintf("R%d", 7+r), r)
	}
	p("\tSUBS $32, R12, R12")
	p("\tBNE cols4%s", t.name)
	for r := 0; r < 4; r++ {
		a := vacc + 4*r
		fadd4s(a, a, a+1)
		fadd4s(a+2, a+2, a+3)
		fadd4s(a, a, a+2)
	}
	faddp4s(vacc, vacc, vacc+4)
	faddp4s(vacc+8, vacc+8, vacc+12)
	faddp4s(vacc, vacc, vacc+8)
	p("\tVST1.P [V%d.S4], 16(R0)", vacc)
	p("\tADD R6<<2, R1, R1")
	p("\tSUB $4, R4, R4")
	p("\tB rows4%s", t.name)
	p("row1%s:", t.name)
	p("\tCBZ R4, done%s", t.name)
	p("\tMOVD R1, R7")
	p("\tMOVD R3, R11")
	p("\tMOVD R5, R12")
	for i := vacc; i < vacc+4; i++ {
		zero(i)
	}
	p("cols1%s:", t.name)
	p("\tVLD1.P 64(R11), [V0.S4, V1.S4, V2.S4, V3.S4]")
	p("\tVLD1.P 64(R11), [V4.S4, V5.S4, V6.S4, V7.S4]")
	chunk(t, "R7", 0)
	p("\tSUBS $32, R12, R12")
	p("\tBNE cols1%s", t.name)
	a := vacc
	fadd4s(a, a, a+1)
	fadd4s(a+2, a+2, a+3)
	fadd4s(a, a, a+2)
	faddp4s(a, a, a)
	faddpS(a, a)
	p("\tFMOVS F%d, (R0)", a)
	p("\tADD $4, R0, R0")
	p("\tADD R6, R1, R1")
	p("\tSUB $1, R4, R4")
	p("\tB row1%s", t.name)
	p("done%s:", t.name)
	p("\tRET")
	p("")
}

// mvQ8 writes mvNeonQ8(dst, w, s, x unsafe.Pointer, rows, k, ldw int) for
// Q8_0 weights with SDOT: x points at the activations' records (q8Rec:
// 64 values, then each block's scale in 8 lanes), s at the rows' f16
// block scales, k is a multiple of 64 and ldw the row length in bytes.
// Each block's integer dot d is exact; a row's sum runs over its blocks in
// order, acc = fma(float32(d)*sx, sw, acc), in one lane of a vector of four
// rows or in lane 0 for a lone row, so both give the same bits.
//
// With q4, mvNeonQ4 for Q4_0 weights (16 bytes a block, byte j holding
// weight j in its low nibble and weight j+16 in its high one, each +8),
// unpacked to int8 with AND, USHR and SUB before the same SDOTs.
//
// With dot false, mvNeonQ8m and mvNeonQ4m for CPUs without SDOT (ARMv8.0,
// e.g. Cortex-A53 and A72): each 16-byte dot as SMULL and SMULL2 (int16
// products, at most 128*128) added pairwise into the int32 lanes with
// SADALP. The block dots are the same exact integers, the float work the
// same instructions, so the results are SDOT's bit for bit.
func mvQ8(q4, dot bool) {
	fn, l := "Q8", "q8"
	if q4 {
		fn, l = "Q4", "q4"
	}
	if !dot {
		fn, l = fn+"m", l+"m"
	}
	// idot adds the dot of the int8 lanes of V w and V x to the int32
	// lanes of V acc (V24 scratch without SDOT).
	idot := func(acc, w, x int) {
		if dot {
			sdot(acc, w, x)
			return
		}
		smull(24, w, x)
		sadalp(acc, 24)
		smull2(24, w, x)
		sadalp(acc, 24)
	}
	// loadW loads row register rp's 64 weights (post-incremented) as
	// int8 into V w..w+3.
	loadW := func(rp string, w int) {
		if !q4 {
			p("\tVLD1.P 64(%s), [V%d.B16, V%d.B16, V%d.B16, V%d.B16]", rp, w, w+1, w+2, w+3)
			return
		}
		p("\tVLD1.P 32(%s), [V6.B16, V7.B16]", rp)
		for b := 0; b < 2; b++ {
			p("\tVAND V14.B16, V%d.B16, V%d.B16", 6+b, w+2*b)
			p("\tVUSHR $4, V%d.B16, V%d.B16", 6+b, w+2*b+1)
			p("\tVSUB V15.B16, V%d.B16, V%d.B16", w+2*b, w+2*b)
			p("\tVSUB V15.B16, V%d.B16, V%d.B16", w+2*b+1, w+2*b+1)
		}
	}
	p("// func mvNeon%s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·mvNeon%s(SB), NOSPLIT, $0-56", fn)
	p("\tMOVD dst+0(FP), R0")
	p("\tMOVD w+8(FP), R1")
	p("\tMOVD s+16(FP), R2")
	p("\tMOVD x+24(FP), R3")
	p("\tMOVD rows+32(FP), R4")
	p("\tMOVD k+40(FP), R5")
	p("\tMOVD ldw+48(FP), R6")
	p("\tLSR $4, R6, R15 // the scales' row stride in bytes (2 per 32 weights)")
	if q4 {
		p("\tLSR $1, R6, R6 // the weights' row stride in bytes")
		p("\tVMOVI $15, V14.B16")
		p("\tVMOVI $8, V15.B16")
	}
	p("%srows4:", l)
	p("\tCMP $4, R4")
	p("\tBLT %srow1", l)
	p("\tMOVD R1, R7")
	p("\tADD R6, R7, R8")
	p("\tADD R6, R8, R9")
	p("\tADD R6, R9, R10")
	p("\tMOVD R2, R19")
	p("\tADD R15, R19, R20")
	p("\tADD R15, R20, R21")
	p("\tADD R15, R21, R22")
	p("\tMOVD R3, R11")
	p("\tMOVD R5, R12")
	zero(30)
	p("%scols4:", l)
	for i := 16; i < 24; i++ {
		zero(i)
	}
	p("\tVLD1.P 64(R11), [V0.B16, V1.B16, V2.B16, V3.B16]")
	p("\tFMOVQ (R11), F4 // block 0's activation scale, 4 lanes")
	p("\tFMOVQ 32(R11), F5 // block 1's")
	p("\tADD $128, R11, R11")
	for r := 0; r < 4; r++ {
		w := 8 + 4*(r%2)
		if q4 {
			w = 8
		}
		loadW(fmt.Sprintf("R%d", 7+r), w)
		idot(16+2*r, w, 0)
		idot(16+2*r, w+1, 1)
		idot(17+2*r, w+2, 2)
		idot(17+2*r, w+3, 3)
	}
	for r := 0; r < 4; r++ {
		p("\tMOVWU.P 4(R%d), R23", 19+r)
		p("\tVMOV R23, V26.S[%d]", r)
	}
	// The int32 block dots of the four rows, lane r for row r (integer
	// sums: exact in any order).
	for b := 0; b < 2; b++ {
		p("\tVADDP V%d.S4, V%d.S4, V%d.S4", 18+b, 16+b, 6)
		p("\tVADDP V%d.S4, V%d.S4, V%d.S4", 22+b, 20+b, 7)
		p("\tVADDP V7.S4, V6.S4, V%d.S4", 24+b)
		scvtf4s(24+b, 24+b)
	}
	fcvtl(27, 26)  // [r0b0 r0b1 r1b0 r1b1]
	fcvtl2(28, 26) // [r2b0 r2b1 r3b0 r3b1]
	p("\tVUZP1 V28.S4, V27.S4, V26.S4 // the rows' block 0 scales")
	p("\tVUZP2 V28.S4, V27.S4, V29.S4 // block 1's")
	fmul4s(24, 24, 4)
	fmla(30, 24, 26)
	fmul4s(25, 25, 5)
	fmla(30, 25, 29)
	p("\tSUBS $64, R12, R12")
	p("\tBNE %scols4", l)
	p("\tVST1.P [V30.S4], 16(R0)")
	p("\tADD R6<<2, R1, R1")
	p("\tADD R15<<2, R2, R2")
	p("\tSUB $4, R4, R4")
	p("\tB %srows4", l)
	p("%srow1:", l)
	p("\tCBZ R4, %sdone", l)
	p("\tMOVD R1, R7")
	p("\tMOVD R2, R19")
	p("\tMOVD R3, R11")
	p("\tMOVD R5, R12")
	zero(30)
	p("%scols1:", l)
	zero(16)
	zero(17)
	p("\tVLD1.P 64(R11), [V0.B16, V1.B16, V2.B16, V3.B16]")
	p("\tFMOVS (R11), F4")
	p("\tFMOVS 32(R11), F5")
	p("\tADD $128, R11, R11")
	loadW("R7", 8)
	idot(16, 8, 0)
	idot(16, 9, 1)
	idot(17, 10, 2)
	idot(17, 11, 3)
	p("\tMOVWU.P 4(R19), R23")
	p("\tVMOV R23, V26.S[0]")
	p("\tVADDV V16.S4, V24")
	p("\tVADDV V17.S4, V25")
	scvtf4s(24, 24)
	scvtf4s(25, 25)
	fcvtl(26, 26) // [b0 b1 ...]
	p("\tVDUP V26.S[1], V29.S4")
	fmul4s(24, 24, 4)
	fmla(30, 24, 26)
	fmul4s(25, 25, 5)
	fmla(30, 25, 29)
	p("\tSUBS $64, R12, R12")
	p("\tBNE %scols1", l)
	p("\tFMOVS F30, (R0)")
	p("\tADD $4, R0, R0")
	p("\tADD R6, R1, R1")
	p("\tADD R15, R2, R2")
	p("\tSUB $1, R4, R4")
	p("\tB %srow1", l)
	p("%sdone:", l)
	p("\tRET")
	p("")
}

// axpy writes axpyNeon(a float32, x, y *float32, n int): y += a*x over n
// (a multiple of 16) elements, one FMLA each.
func axpy() {
	p("// func axpyNeon(a float32, x, y *float32, n int)")
	p("TEXT ·axpyNeon(SB), NOSPLIT, $0-32")
	p("\tFMOVS a+0(FP), F0")
	p("\tVDUP V0.S[0], V0.S4")
	p("\tMOVD x+8(FP), R0")
	p("\tMOVD y+16(FP), R1")
	p("\tMOVD n+24(FP), R2")
	p("axpyloop:")
	p("\tVLD1.P 64(R0), [V1.S4, V2.S4, V3.S4, V4.S4]")
	p("\tVLD1 (R1), [V5.S4, V6.S4, V7.S4, V8.S4]")
	for i := 0; i < 4; i++ {
		fmla(5+i, 1+i, 0)
	}
	p("\tVST1.P [V5.S4, V6.S4, V7.S4, V8.S4], 64(R1)")
	p("\tSUBS $16, R2, R2")
	p("\tBNE axpyloop")
	p("\tRET")
	p("")
}

// axpyRows writes axpyRowsNeon(dst, p, v *float32, n, k, stride int): dst
// += p[j] * v[j*stride:] for j = 0..n-1 (n > 0) over k (a multiple of 16)
// columns, 16 columns at a time held in registers over the rows: for each
// element the FMLAs of axpyNeon row by row, in the same order.
func axpyRows() {
	p("// func axpyRowsNeon(dst, p, v *float32, n, k, stride int)")
	p("TEXT ·axpyRowsNeon(SB), NOSPLIT, $0-48")
	p("\tMOVD dst+0(FP), R0")
	p("\tMOVD p+8(FP), R1")
	p("\tMOVD v+16(FP), R2")
	p("\tMOVD n+24(FP), R3")
	p("\tMOVD k+32(FP), R4")
	p("\tMOVD stride+40(FP), R5")
	p("\tLSL $2, R5, R5")
	p("axpyrcols:")
	p("\tVLD1 (R0), [V0.S4, V1.S4, V2.S4, V3.S4]")
	p("\tMOVD R1, R6")
	p("\tMOVD R2, R7")
	p("\tMOVD R3, R8")
	p("axpyrrows:")
	p("\tVLD1R.P 4(R6), [V4.S4]")
	p("\tVLD1 (R7), [V5.S4, V6.S4, V7.S4, V8.S4]")
	p("\tADD R5, R7, R7")
	for i := 0; i < 4; i++ {
		fmla(i, 5+i, 4)
	}
	p("\tSUBS $1, R8, R8")
	p("\tBNE axpyrrows")
	p("\tVST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)")
	p("\tADD $64, R2, R2")
	p("\tSUBS $16, R4, R4")
	p("\tBNE axpyrcols")
	p("\tRET")
	p("")
}

// silu writes siluNeon(x *float32, n int): x = x / (1 + e^-x) over n (a
// positive multiple of 4) elements, with silu256's exp (vec_amd64.s): -x
// clamped to [-87, 88.3], n = round(-x*log2(e)), r = -x - n*ln2 (ln2 in a
// high and a low part), e^r by its Taylor series to r^7 (Horner, fused),
// times 2^n built in the exponent bits.
func silu() {
	p("// func siluNeon(x *float32, n int)")
	p("TEXT ·siluNeon(SB), NOSPLIT, $0-16")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	expConsts()
	p("siluloop:")
	p("\tVLD1 (R0), [V0.S4]")
	fneg4s(1, 0)
	e := exp()
	fadd4s(e, e, 25)
	fdiv4s(0, 0, e)
	p("\tVST1.P [V0.S4], 16(R0)")
	p("\tSUBS $4, R1, R1")
	p("\tBNE siluloop")
	p("\tRET")
	p("")
}

// gelu writes geluNeon(x *float32, n int), gelu512's GELU (tanh form):
// x / (1 + e^(-2*sqrt(2/pi)*x*(1 + 0.044715*x^2))), n a positive multiple
// of 4.
func gelu() {
	p("// func geluNeon(x *float32, n int)")
	p("TEXT ·geluNeon(SB), NOSPLIT, $0-16")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	expConsts()
	p("\tMOVW $0x3d372713, R2 // 0.044715")
	p("\tVDUP R2, V28.S4")
	p("\tMOVW $0xbfcc422a, R2 // -2*sqrt(2/pi)")
	p("\tVDUP R2, V29.S4")
	p("geluloop:")
	p("\tVLD1 (R0), [V0.S4]")
	fmul4s(1, 0, 0)
	p("\tVORR V25.B16, V25.B16, V5.B16")
	fmla(5, 1, 28)
	fmul4s(1, 5, 0)
	fmul4s(1, 1, 29)
	e := exp()
	fadd4s(e, e, 25)
	fdiv4s(0, 0, e)
	p("\tVST1.P [V0.S4], 16(R0)")
	p("\tSUBS $4, R1, R1")
	p("\tBNE geluloop")
	p("\tRET")
	p("")
}

// widen writes widenNeonBF16 and widenNeonF16(dst *float32, src *uint16,
// n int): Widen over n (a positive multiple of 8) values, bf16 with ZIP1
// and ZIP2 against zero (exact), f16 with FCVTL and FCVTL2.
func widen() {
	for _, t := range []string{"BF16", "F16"} {
		p("// func widenNeon%s(dst *float32, src *uint16, n int)", t)
		p("TEXT ·widenNeon%s(SB), NOSPLIT, $0-24", t)
		p("\tMOVD dst+0(FP), R0")
		p("\tMOVD src+8(FP), R1")
		p("\tMOVD n+16(FP), R2")
		zero(3)
		p("widen%sloop:", t)
		p("\tVLD1.P 16(R1), [V0.H8]")
		if t == "BF16" {
			p("\tVZIP1 V0.H8, V3.H8, V1.H8")
			p("\tVZIP2 V0.H8, V3.H8, V2.H8")
		} else {
			fcvtl(1, 0)
			fcvtl2(2, 0)
		}
		p("\tVST1.P [V1.S4, V2.S4], 32(R0)")
		p("\tSUBS $8, R2, R2")
		p("\tBNE widen%sloop", t)
		p("\tRET")
		p("")
	}
}

// expConsts loads the constants of exp into V16-V27.
func expConsts() {
	for i, c := range []struct {
		bits uint32
		what string
	}{
		{0x3fb8aa3b, "log2(e)"}, {0x3f318000, "ln2 high part"}, {0xb95e8083, "ln2 low part"},
		{0x39500d01, "1/7!"}, {0x3ab60b61, "1/6!"}, {0x3c088889, "1/5!"}, {0x3d2aaaab, "1/4!"},
		{0x3e2aaaab, "1/3!"}, {0x3f000000, "1/2"}, {0x3f800000, "1, and 127<<23, the exponent bias"},
		{0xc2ae0000, "-87: e^x is below 2^-125"}, {0x42b0999a, "88.3: n stays <= 127"},
	} {
		p("\tMOVW $0x%08x, R2 // %s", c.bits, c.what)
		p("\tVDUP R2, V%d.S4", 16+i)
	}
}

// exp computes e^V1 (expConsts loaded) and returns the register that holds
// it (V3 or V4); V1 and V2 are clobbered.
func exp() int {
	fmax4s(1, 1, 26)
	fmin4s(1, 1, 27)
	fmul4s(2, 1, 16)
	frintn4s(2, 2)
	p("\tVFMLS V17.S4, V2.S4, V1.S4")
	p("\tVFMLS V18.S4, V2.S4, V1.S4")
	// Horner from 1/7!: p = c + p*r, alternating V3 and V4.
	p("\tVORR V19.B16, V19.B16, V3.B16")
	cur, next := 3, 4
	for _, c := range []int{20, 21, 22, 23, 24, 25, 25} {
		p("\tVORR V%d.B16, V%d.B16, V%d.B16", c, c, next)
		fmla(next, cur, 1)
		cur, next = next, cur
	}
	fcvtzs4s(2, 2)
	p("\tVSHL $23, V2.S4, V2.S4")
	p("\tVADD V25.S4, V2.S4, V2.S4 // 2^n")
	fmul4s(cur, cur, 2)
	return cur
}

// softmax writes the three passes of Softmax: maxNeon(x *float32, n int)
// float32, expSubNeon(x *float32, n int, m float32) float32 (x = e^(x-m),
// returning the sum) and scaleNeon(x *float32, n int, s float32) (x *= s),
// n a positive multiple of 4.
func softmax() {
	p("// func maxNeon(x *float32, n int) float32")
	p("TEXT ·maxNeon(SB), NOSPLIT, $0-20")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	p("\tVLD1.P 16(R0), [V0.S4]")
	p("\tSUBS $4, R1, R1")
	p("\tBEQ maxdone")
	p("maxloop:")
	p("\tVLD1.P 16(R0), [V1.S4]")
	fmax4s(0, 0, 1)
	p("\tSUBS $4, R1, R1")
	p("\tBNE maxloop")
	p("maxdone:")
	enc(0x6e20f400, 0, 0, 0, "FMAXP V0.4S, V0.4S, V0.4S")
	enc(0x7e30f800, 0, 0, 0, "FMAXP S0, V0.2S")
	p("\tFMOVS F0, ret+16(FP)")
	p("\tRET")
	p("")

	p("// func expSubNeon(x *float32, n int, m float32) float32")
	p("TEXT ·expSubNeon(SB), NOSPLIT, $0-28")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	p("\tFMOVS m+16(FP), F5")
	p("\tVDUP V5.S[0], V5.S4")
	zero(6)
	expConsts()
	p("expsubloop:")
	p("\tVLD1 (R0), [V0.S4]")
	enc(0x4ea0d400, 1, 0, 5, "FSUB V1.4S, V0.4S, V5.4S")
	e := exp()
	fadd4s(6, 6, e)
	p("\tVST1.P [V%d.S4], 16(R0)", e)
	p("\tSUBS $4, R1, R1")
	p("\tBNE expsubloop")
	faddp4s(6, 6, 6)
	faddpS(6, 6)
	p("\tFMOVS F6, ret+24(FP)")
	p("\tRET")
	p("")

	p("// func scaleNeon(x *float32, n int, s float32)")
	p("TEXT ·scaleNeon(SB), NOSPLIT, $0-20")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	p("\tFMOVS s+16(FP), F5")
	p("\tVDUP V5.S[0], V5.S4")
	p("scaleloop:")
	p("\tVLD1 (R0), [V0.S4]")
	fmul4s(0, 0, 5)
	p("\tVST1.P [V0.S4], 16(R0)")
	p("\tSUBS $4, R1, R1")
	p("\tBNE scaleloop")
	p("\tRET")
	p("")
}

// rmsNorm writes sumSqNeon(x *float32, n int) float32 (four accumulators
// of four lanes over 16 elements a step) and normMulNeon(dst, x, w
// *float32, n int, scale, offset float32): dst = x*scale*(w+offset), left
// to right, n a positive multiple of 16.
func rmsNorm() {
	p("// func sumSqNeon(x *float32, n int) float32")
	p("TEXT ·sumSqNeon(SB), NOSPLIT, $0-20")
	p("\tMOVD x+0(FP), R0")
	p("\tMOVD n+8(FP), R1")
	for i := 0; i < 4; i++ {
		zero(i)
	}
	p("sumsqloop:")
	p("\tVLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for i := 0; i < 4; i++ {
		fmla(i, 4+i, 4+i)
	}
	p("\tSUBS $16, R1, R1")
	p("\tBNE sumsqloop")
	fadd4s(0, 0, 1)
	fadd4s(2, 2, 3)
	fadd4s(0, 0, 2)
	faddp4s(0, 0, 0)
	faddpS(0, 0)
	p("\tFMOVS F0, ret+16(FP)")
	p("\tRET")
	p("")

	p("// func normMulNeon(dst, x, w *float32, n int, scale, offset float32)")
	p("TEXT ·normMulNeon(SB), NOSPLIT, $0-40")
	p("\tMOVD dst+0(FP), R0")
	p("\tMOVD x+8(FP), R1")
	p("\tMOVD w+16(FP), R2")
	p("\tMOVD n+24(FP), R3")
	p("\tFMOVS scale+32(FP), F16")
	p("\tVDUP V16.S[0], V16.S4")
	p("\tFMOVS offset+36(FP), F17")
	p("\tVDUP V17.S[0], V17.S4")
	p("normmulloop:")
	p("\tVLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]")
	p("\tVLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for i := 0; i < 4; i++ {
		fadd4s(4+i, 4+i, 17)
		fmul4s(i, i, 16)
		fmul4s(i, i, 4+i)
	}
	p("\tVST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)")
	p("\tSUBS $16, R3, R3")
	p("\tBNE normmulloop")
	p("\tRET")
	p("")
}

func main() {
	p("// Code generated by gen_arm64.go; DO NOT EDIT.")
	p("")
	p("//go:build !purego")
	p("")
	p("#include \"textflag.h\"")
	p("")
	for _, t := range types {
		mv(t)
	}
	for _, dot := range []bool{true, false} {
		mvQ8(false, dot)
		mvQ8(true, dot)
	}
	axpy()
	axpyRows()
	widen()
	silu()
	gelu()
	softmax()
	rmsNorm()
	if err := os.WriteFile("simd_arm64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
