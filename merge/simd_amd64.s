//go:build !purego

#include "textflag.h"

// func sumCore512(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, scratch unsafe.Pointer, n, models int, p *sumParams)
//
// sumChunkGo's arithmetic, 16 elements at a time: per model the scaled
// delta (x - base) * sc, dropped where the model's draw is not below its
// threshold, and the sum e of the deltas; a zero sum elects +; then the sum
// a of the deltas whose product with e is positive and finite, and of their
// weights v; a /= v where |v| > eps (if normalizing); dst = obase + lam*a
// (obase is base, or the real base when xs are deltas and base is zero).
// Draws: eight splitmix64 states per model in scratch, each 64-bit draw
// giving two consecutive elements their 32-bit halves (low first), as
// rng.next does for pairs. A model with drop 2 draws nothing: it keeps the
// entries whose |x - base| bits lie in [mlo, mhi) (before scaling).
TEXT ·sumCore512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ obase+16(FP), R15
	MOVQ xs+24(FP), DX
	MOVQ scratch+32(FP), R8
	MOVQ n+40(FP), CX
	MOVQ models+48(FP), R9
	MOVQ p+56(FP), R10
	MOVQ R9, R14
	SHLQ $6, R14                  // states start at scratch + 64*models
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z31          // 1.0
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30          // abs mask
	MOVL $0x7f7fffff, AX
	VPBROADCASTD AX, Z29          // largest finite float's bits
	MOVL $1, AX
	VPBROADCASTD AX, Z28          // integer 1
	VPBROADCASTQ 272(R10), Z27    // 8*gamma
	VPBROADCASTQ 280(R10), Z26    // mix multiplier 1
	VPBROADCASTQ 288(R10), Z25    // mix multiplier 2
	VBROADCASTSS 264(R10), Z24    // eps
	VBROADCASTSS 256(R10), Z23    // lam
	MOVL 260(R10), BX             // normalize?
	XORQ AX, AX
sum_loop:
	VMOVUPS (SI)(AX*4), Z0        // base
	VXORPS Z1, Z1, Z1             // e
	XORQ R11, R11
sum_models:
	MOVQ (DX)(R11*8), R12
	VMOVUPS (R12)(AX*4), Z2
	VSUBPS Z0, Z2, Z2
	MOVL 128(R10)(R11*4), R12
	CMPL R12, $2
	JNE sum_scale
	VPANDD Z30, Z2, Z4            // drop 2: keep lo <= |delta| bits < hi
	VPBROADCASTD 336(R10)(R11*4), Z5
	VPCMPUD $5, Z5, Z4, K1
	VPBROADCASTD 400(R10)(R11*4), Z5
	VPCMPUD $1, Z5, Z4, K1, K1
	VMOVAPS.Z Z2, K1, Z2
	XORL R12, R12                 // no draws
sum_scale:
	VBROADCASTSS (R10)(R11*4), Z3
	VMULPS Z3, Z2, Z2
	MOVQ R11, R13
	SHLQ $6, R13
	TESTL R12, R12
	JZ sum_keep
	ADDQ R14, R13
	VMOVDQU64 (R8)(R13*1), Z4
	VPADDQ Z27, Z4, Z5
	VMOVDQU64 Z5, (R8)(R13*1)
	SUBQ R14, R13
	VPSRLQ $30, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPMULLQ Z26, Z4, Z4
	VPSRLQ $27, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPMULLQ Z25, Z4, Z4
	VPSRLQ $31, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPBROADCASTD 64(R10)(R11*4), Z5
	VPCMPUD $1, Z5, Z4, K1        // draw < threshold: keep
	VMOVAPS.Z Z2, K1, Z2
sum_keep:
	VMOVUPS Z2, (R8)(R13*1)
	VADDPS Z2, Z1, Z1
	INCQ R11
	CMPQ R11, R9
	JLT sum_models
	VPTESTNMD Z30, Z1, K1         // e == ±0: a tie elects +
	VADDPS Z31, Z1, K1, Z1
	VXORPS Z6, Z6, Z6             // a
	VXORPS Z7, Z7, Z7             // v
	XORQ R11, R11
	XORQ R13, R13
sum_agree:
	VMOVUPS (R8)(R13*1), Z2
	VMULPS Z1, Z2, Z3
	VPSUBD Z28, Z3, Z3
	VPCMPUD $1, Z29, Z3, K1       // 0 < bits(d*e) <= 0x7f7fffff
	VADDPS Z2, Z6, K1, Z6
	VBROADCASTSS 192(R10)(R11*4), Z4
	VADDPS Z4, Z7, K1, Z7
	ADDQ $64, R13
	INCQ R11
	CMPQ R11, R9
	JLT sum_agree
	TESTL BX, BX
	JZ sum_out
	VANDPS Z30, Z7, Z3
	VCMPPS $0x1e, Z24, Z3, K1     // |v| > eps (false for NaN)
	VDIVPS Z7, Z6, K1, Z6
sum_out:
	VMULPS Z23, Z6, Z6
	VADDPS (R15)(AX*4), Z6, Z6    // obase + lam*a
	VMOVUPS Z6, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT sum_loop
	VZEROUPPER
	RET

// func narrowBF16x512(dst *uint16, src *float32, n int)
// Rounds to nearest even as safetensors.F32ToBF16 does: add 0x7fff plus
// the lowest kept bit; a NaN keeps its top bits with the quiet bit set.
TEXT ·narrowBF16x512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z31
	MOVL $1, AX
	VPBROADCASTD AX, Z30
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z29
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z28
	MOVL $0x40, AX
	VPBROADCASTD AX, Z27
	XORQ AX, AX
narrow_loop:
	VMOVDQU32 (SI)(AX*4), Z0
	VPSRLD $16, Z0, Z1            // top half
	VPANDD Z30, Z1, Z2            // its lowest bit
	VPADDD Z31, Z0, Z3
	VPADDD Z2, Z3, Z3
	VPSRLD $16, Z3, Z3            // rounded
	VPANDD Z29, Z0, Z4
	VPCMPUD $6, Z28, Z4, K1       // |bits| > Inf: NaN
	VPORD Z27, Z1, K1, Z3         // NaN: top half | quiet bit
	VPMOVDW Z3, (DI)(AX*2)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT narrow_loop
	VZEROUPPER
	RET

// COLLECT512BF16BITS sets Z0 to the magnitude bits of x - base for the
// sixteen bfloat16 entries at AX of x (SI) and base (DX), K1 to the lanes
// in [lo, hi] and K2 to those above hi (lo in Z28, hi in Z29, the abs
// mask in Z30).
#define COLLECT512BF16BITS \
	VPMOVZXWD (SI)(AX*2), Z0; \
	VPSLLD $16, Z0, Z0; \
	VPMOVZXWD (DX)(AX*2), Z2; \
	VPSLLD $16, Z2, Z2; \
	VSUBPS Z2, Z0, Z0; \
	VPANDD Z30, Z0, Z0; \
	VPCMPUD $6, Z29, Z0, K2; \
	VPCMPUD $5, Z28, Z0, K1; \
	VPCMPUD $2, Z29, Z0, K1, K1

// COLLECT512KEEP stores the lanes of Z0 set in K1 to buf (DI) at c (R8),
// in order, counts them into c and those set in K2 into above (R10), and
// goes on to the next sixteen entries.
#define COLLECT512KEEP \
	VPCOMPRESSD Z0, K1, Z1; \
	VMOVDQU32 Z1, (DI)(R8*4); \
	KMOVW K1, R9; \
	POPCNTL R9, R9; \
	ADDQ R9, R8; \
	KMOVW K2, R9; \
	POPCNTL R9, R9; \
	ADDQ R9, R10; \
	ADDQ $16, AX

// func collect512(buf *uint32, x, base *float32, n int, lo, hi uint32) (c, above int)
// collectRange on the deltas x - base, 16 at a time: the |delta| bits in
// [lo, hi] are stored to buf in order (each store writes 16 entries, so buf
// needs 15 spare), and c counts them; above counts those above hi.
TEXT ·collect512(SB), NOSPLIT, $0-56
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVL lo+32(FP), AX
	VPBROADCASTD AX, Z28
	MOVL hi+36(FP), AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30
	XORQ AX, AX
	XORQ R8, R8                   // c
	XORQ R10, R10                 // above
collect_loop:
	VMOVUPS (SI)(AX*4), Z0
	VSUBPS (DX)(AX*4), Z0, Z0
	VPANDD Z30, Z0, Z0
	VPCMPUD $6, Z29, Z0, K2       // bits > hi
	VPCMPUD $5, Z28, Z0, K1       // bits >= lo
	VPCMPUD $2, Z29, Z0, K1, K1   // and bits <= hi
	COLLECT512KEEP
	CMPQ AX, CX
	JLT collect_loop
	MOVQ R8, c+40(FP)
	MOVQ R10, above+48(FP)
	VZEROUPPER
	RET

// func bandLinear512(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, n, models int, p *sumParams)
// bandLinear's arithmetic, 16 elements at a time: per model the delta
// x - base (float32), zeroed unless its magnitude bits lie in [mlo, mhi),
// widened and weighted in float64 (w64) and summed in model order; then
// dst = float32(float64(obase) + scale*sum), scale a float64 at p.scale
// (obase is base for bandLinear; combine's base, with zeros for base, for
// combine without a consensus). The models are float32, or bfloat16
// widened in registers when p.bf16 has pModelsBF16 (a predictable branch
// per model and step), and so is the base with pBaseBF16.
TEXT ·bandLinear512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ obase+16(FP), R13
	MOVQ xs+24(FP), DX
	MOVQ n+32(FP), CX
	MOVQ models+40(FP), R9
	MOVQ p+48(FP), R10
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30          // abs mask
	VBROADCASTSD 592(R10), Z29    // scale
	MOVQ 760(R10), BX             // p.bf16
	XORQ AX, AX
lin_loop:
	TESTQ $2, BX                  // pBaseBF16
	JNZ lin_bbase
	VMOVUPS (SI)(AX*4), Z0        // base
	JMP lin_based
lin_bbase:
	VPMOVZXWD (SI)(AX*2), Z0
	VPSLLD $16, Z0, Z0
lin_based:
	VXORPD Z6, Z6, Z6             // sum, elements 0-7
	VXORPD Z7, Z7, Z7             // sum, elements 8-15
	XORQ R11, R11
lin_models:
	MOVQ (DX)(R11*8), R12
	TESTQ $1, BX                  // pModelsBF16
	JNZ lin_bf16
	VMOVUPS (R12)(AX*4), Z2
	JMP lin_loaded
lin_bf16:
	VPMOVZXWD (R12)(AX*2), Z2     // widened in registers
	VPSLLD $16, Z2, Z2
lin_loaded:
	VSUBPS Z0, Z2, Z2
	VPANDD Z30, Z2, Z4
	VPBROADCASTD 336(R10)(R11*4), Z5
	VPCMPUD $5, Z5, Z4, K1        // bits >= lo
	VPBROADCASTD 400(R10)(R11*4), Z5
	VPCMPUD $1, Z5, Z4, K1, K1    // and bits < hi
	VMOVAPS.Z Z2, K1, Z2
	VBROADCASTSD 464(R10)(R11*8), Z8
	VCVTPS2PD Y2, Z3
	VEXTRACTF32X8 $1, Z2, Y4
	VCVTPS2PD Y4, Z4
	VMULPD Z8, Z3, Z3
	VMULPD Z8, Z4, Z4
	VADDPD Z3, Z6, Z6
	VADDPD Z4, Z7, Z7
	INCQ R11
	CMPQ R11, R9
	JLT lin_models
	TESTQ $2, BX
	JNZ lin_obbase
	VMOVUPS (R13)(AX*4), Z0       // the base to add
	JMP lin_obased
lin_obbase:
	VPMOVZXWD (R13)(AX*2), Z0
	VPSLLD $16, Z0, Z0
lin_obased:
	VCVTPS2PD Y0, Z3
	VEXTRACTF32X8 $1, Z0, Y4
	VCVTPS2PD Y4, Z4
	VMULPD Z29, Z6, Z6
	VMULPD Z29, Z7, Z7
	VADDPD Z6, Z3, Z3
	VADDPD Z7, Z4, Z4
	VCVTPD2PS Z3, Y3
	VCVTPD2PS Z4, Y4
	VINSERTF32X8 $1, Y4, Z3, Z3
	VMOVUPS Z3, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT lin_loop
	VZEROUPPER
	RET

// func collect512BF16(buf *uint32, x, base *uint16, n int, lo, hi uint32) (c, above int)
// collect512 on bfloat16 inputs, widened in registers.
TEXT ·collect512BF16(SB), NOSPLIT, $0-56
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVL lo+32(FP), AX
	VPBROADCASTD AX, Z28
	MOVL hi+36(FP), AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30
	XORQ AX, AX
	XORQ R8, R8                   // c
	XORQ R10, R10                 // above
collectbf_loop:
	COLLECT512BF16BITS
	COLLECT512KEEP
	CMPQ AX, CX
	JLT collectbf_loop
	MOVQ R8, c+40(FP)
	MOVQ R10, above+48(FP)
	VZEROUPPER
	RET

// SCEVAR8 is SCEVAR4 on eight entries in Z registers (0.5 in Z15): the
// same operations in the same order per lane, so the same bits.
#define SCEVAR8(B, A, C, M) \
	VSUBPD B, A, A; \
	VSUBPD B, C, C; \
	VADDPD C, A, M; \
	VMULPD Z15, M, M; \
	VSUBPD M, A, A; \
	VSUBPD M, C, C; \
	VMULPD A, A, A; \
	VMULPD C, C, C; \
	VADDPD C, A, A; \
	VMULPD Z15, A, A

// WIDEN8BF16 loads eight bfloat16 values at M as float64 into Z, whose
// lower half is Y.
#define WIDEN8BF16(M, Y, Z) \
	VPMOVZXWD M, Y; \
	VPSLLD $16, Y, Y; \
	VCVTPS2PD Y, Z

// func sceVar512BF16(v *float32, base, x0, x1 *uint16, n int)
// sceVar256BF16 sixteen entries a step (n a multiple of 16).
TEXT ·sceVar512BF16(SB), NOSPLIT, $0-40
	MOVQ v+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ $0x3fe0000000000000, AX
	VPBROADCASTQ AX, Z15
	XORQ AX, AX
sceVar512BF16_loop:
	WIDEN8BF16((SI)(AX*2), Y0, Z0)    // base
	WIDEN8BF16((DX)(AX*2), Y1, Z1)
	WIDEN8BF16((R8)(AX*2), Y2, Z2)
	SCEVAR8(Z0, Z1, Z2, Z3)
	WIDEN8BF16(16(SI)(AX*2), Y4, Z4)  // entries 8-15
	WIDEN8BF16(16(DX)(AX*2), Y5, Z5)
	WIDEN8BF16(16(R8)(AX*2), Y6, Z6)
	SCEVAR8(Z4, Z5, Z6, Z7)
	VCVTPD2PS Z1, Y1
	VCVTPD2PS Z5, Y5
	VMOVUPS Y1, (DI)(AX*4)
	VMOVUPS Y5, 32(DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT sceVar512BF16_loop
	VZEROUPPER
	RET

// SCEOUT512SETUP sets sceOut512BF16's constants from w (at R11): w0 in
// Z14, w1 in Z13, the least divisor in Z12, zero in Z15; it clears AX.
#define SCEOUT512SETUP \
	VBROADCASTSD (R11), Z14; \
	VBROADCASTSD 8(R11), Z13; \
	VBROADCASTSD 16(R11), Z12; \
	VXORPD Z15, Z15, Z15; \
	XORQ AX, AX

// SCEOUT8BF16 is SCEOUT4BF16 on eight entries at AX (the mask in Y3):
// SCEOUT4's operations in the same order per lane, its comparisons into
// mask registers (K1-K5) and its ANDs with them as zeroing moves (which
// give +0 where the AND does), so the same bits.
#define SCEOUT8BF16 \
	VPMOVZXWD (SI)(AX*2), Y0; \
	VPSLLD $16, Y0, Y0; \
	VPMOVZXWD (R8)(AX*2), Y1; \
	VPSLLD $16, Y1, Y1; \
	VSUBPS Y0, Y1, Y1; \
	VANDPS Y3, Y1, Y1; \
	VPMOVZXWD (R9)(AX*2), Y2; \
	VPSLLD $16, Y2, Y2; \
	VSUBPS Y0, Y2, Y2; \
	VANDPS Y3, Y2, Y2; \
	SCEOUT8TAIL

// SCEOUT8BF16K is SCEOUT8BF16 with the mask in K6: the deltas are taken
// with zeroing, which gives +0 where the AND does.
#define SCEOUT8BF16K \
	VPMOVZXWD (SI)(AX*2), Y0; \
	VPSLLD $16, Y0, Y0; \
	VPMOVZXWD (R8)(AX*2), Y1; \
	VPSLLD $16, Y1, Y1; \
	VSUBPS.Z Y0, Y1, K6, Y1; \
	VPMOVZXWD (R9)(AX*2), Y2; \
	VPSLLD $16, Y2, Y2; \
	VSUBPS.Z Y0, Y2, K6, Y2; \
	SCEOUT8TAIL

// SCEOUT8TAIL is the rest of SCEOUT8BF16's step, from the masked deltas
// in Y1 and Y2 and the base in Y0.
#define SCEOUT8TAIL \
	VCVTPS2PD Y1, Z1; \
	VCVTPS2PD Y2, Z2; \
	VCVTPS2PD Y0, Z0; \
	VADDPD Z2, Z1, Z3; \
	VCMPPD $0x1d, Z15, Z3, K1; \
	VCMPPD $0x11, Z15, Z3, K2; \
	VCMPPD $0x1e, Z15, Z1, K3; \
	VCMPPD $0x11, Z15, Z1, K4; \
	KANDW K1, K3, K3; \
	KANDW K2, K4, K4; \
	KORW K4, K3, K3; \
	VCMPPD $0x1e, Z15, Z2, K4; \
	VCMPPD $0x11, Z15, Z2, K5; \
	KANDW K1, K4, K4; \
	KANDW K2, K5, K5; \
	KORW K5, K4, K4; \
	VMULPD Z14, Z1, Z1; \
	VMULPD Z13, Z2, Z2; \
	VMOVAPD.Z Z1, K3, Z1; \
	VMOVAPD.Z Z2, K4, Z2; \
	VADDPD Z1, Z15, Z1; \
	VADDPD Z2, Z1, Z1; \
	VMOVAPD.Z Z14, K3, Z6; \
	VMOVAPD.Z Z13, K4, Z7; \
	VADDPD Z6, Z15, Z6; \
	VADDPD Z7, Z6, Z6; \
	VMAXPD Z6, Z12, Z6; \
	VDIVPD Z6, Z1, Z1; \
	VADDPD Z1, Z0, Z1; \
	VCVTPD2PS Z1, Y1; \
	VMOVUPS Y1, (DI)(AX*4)

// func sceOut512BF16(dst *float32, base, x0, x1 *uint16, mask *uint32, n int, w *[3]float64)
// sceOut256BF16 eight entries a step (n a multiple of 8).
TEXT ·sceOut512BF16(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ mask+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ w+48(FP), R11
	SCEOUT512SETUP
sceout512bf_loop:
	VMOVUPS (R10)(AX*4), Y3       // mask
	SCEOUT8BF16
	ADDQ $8, AX
	CMPQ AX, CX
	JLT sceout512bf_loop
	VZEROUPPER
	RET

// func sceOut512BF16Bits(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64)
// sceOut512BF16 with the mask packed into bits (entry j is bit j%64 of
// word j/64): each byte is loaded into a mask register (KMOVB) that the
// deltas' subtractions zero with. Turning it into a vector mask first
// (KMOVW from a register, VPMOVM2D, two ANDs) made this loop 1.45x as
// slow as sceOut512BF16's on Zen 5 (BenchmarkKernels/sce-out-bf16-bits).
TEXT ·sceOut512BF16Bits(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ bits+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ w+48(FP), R11
	SCEOUT512SETUP
sceout512bits_loop:
	MOVQ AX, R12
	SHRQ $3, R12
	KMOVB (R10)(R12*1), K6        // the next eight entries' bits
	SCEOUT8BF16K
	ADDQ $8, AX
	CMPQ AX, CX
	JLT sceout512bits_loop
	VZEROUPPER
	RET

// func pruneRanks512(row *float32, ord *uint64, q *int32, th *uint64, p *float64, n int, s uint64, rescale int)
// magPruner.row's per-rank step, 8 ranks at a time: the entry of rank r
// (ord[r] = |x| bits << 32 | sign bit << 31 | index) is kept when the top
// 53 bits of draw q[r] (the mix of s + (q[r]+1)*gamma) are below th[r],
// scaled by 1/p[r] in float64 when rescaling, and written (scattered) to
// row[index].
TEXT ·pruneRanks512(SB), NOSPLIT, $0-64
	MOVQ row+0(FP), DI
	MOVQ ord+8(FP), SI
	MOVQ q+16(FP), R12
	MOVQ th+24(FP), R13
	MOVQ p+32(FP), R14
	MOVQ n+40(FP), CX
	VPBROADCASTQ s+48(FP), Z31
	MOVQ rescale+56(FP), R9
	MOVQ $0x9e3779b97f4a7c15, BX
	VPBROADCASTQ BX, Z30          // gamma
	MOVQ $0xbf58476d1ce4e5b9, BX
	VPBROADCASTQ BX, Z29          // mix multiplier 1
	MOVQ $0x94d049bb133111eb, BX
	VPBROADCASTQ BX, Z28          // mix multiplier 2
	MOVQ $0x80000000, BX
	VPBROADCASTQ BX, Z27          // the sign bit
	MOVQ $1, BX
	VPBROADCASTQ BX, Z26
	MOVL $0x7fffffff, BX
	VPBROADCASTD BX, Z25
	XORQ AX, AX
prune_loop:
	VMOVDQU64 (SI)(AX*8), Z0
	VPSRLQ $32, Z0, Z1
	VPANDQ Z27, Z0, Z2
	VPORQ Z2, Z1, Z1
	VPMOVQD Z1, Y1                // x
	VPMOVSXDQ (R12)(AX*4), Z3
	VPADDQ Z26, Z3, Z3
	VPMULLQ Z30, Z3, Z3
	VPADDQ Z31, Z3, Z3            // s + (q+1)*gamma
	VPSRLQ $30, Z3, Z4
	VPXORQ Z4, Z3, Z3
	VPMULLQ Z29, Z3, Z3
	VPSRLQ $27, Z3, Z4
	VPXORQ Z4, Z3, Z3
	VPMULLQ Z28, Z3, Z3
	VPSRLQ $31, Z3, Z4
	VPXORQ Z4, Z3, Z3
	VPSRLQ $11, Z3, Z3
	VPCMPUQ $1, (R13)(AX*8), Z3, K1 // keep: below th
	TESTQ R9, R9
	JZ prune_store
	VCVTPS2PD Y1, Z5
	VDIVPD (R14)(AX*8), Z5, Z5
	VCVTPD2PS Z5, Y1
prune_store:
	VMOVAPS.Z Y1, K1, Y1
	VPMOVQD Z0, Y7
	VPANDD Y25, Y7, Y7            // the entries' indices
	KXNORB K2, K2, K2
	VSCATTERDPS Y1, K2, (DI)(Y7*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT prune_loop
	VZEROUPPER
	RET

// func prefix512(c *int32, n int, start int32) (total int32)
// Exclusive prefix sums in place, 16 counters at a time: c[i] becomes
// start plus the sum of c[:i]; n is a multiple of 16. Returns start plus
// the sum of all n.
TEXT ·prefix512(SB), NOSPLIT, $0-28
	MOVQ c+0(FP), DI
	MOVQ n+8(FP), CX
	MOVL start+16(FP), AX
	VPBROADCASTD AX, Z2           // the running total, in every lane
	VPXORD Z3, Z3, Z3             // zeros
	MOVL $15, AX
	VPBROADCASTD AX, Z4           // lane 15, for VPERMD
	XORQ AX, AX
prefix_loop:
	VMOVDQU32 (DI)(AX*4), Z0
	VALIGND $15, Z3, Z0, Z1       // lanes up by 1
	VPADDD Z1, Z0, Z1
	VALIGND $14, Z3, Z1, Z5       // by 2
	VPADDD Z5, Z1, Z1
	VALIGND $12, Z3, Z1, Z5       // by 4
	VPADDD Z5, Z1, Z1
	VALIGND $8, Z3, Z1, Z5        // by 8
	VPADDD Z5, Z1, Z1             // inclusive sums of the sixteen
	VPERMD Z1, Z4, Z6             // the sixteen's total, in every lane
	VPSUBD Z0, Z1, Z0             // exclusive sums
	VPADDD Z2, Z0, Z0             // plus the total before
	VMOVDQU32 Z0, (DI)(AX*4)
	VPADDD Z6, Z2, Z2             // the total after: one addition a step
	ADDQ $16, AX
	CMPQ AX, CX
	JLT prefix_loop
	VMOVD X2, AX
	MOVL AX, total+24(FP)
	VZEROUPPER
	RET

// MULLQ256 sets the four 64-bit lanes of A to their products with a
// constant, modulo 2^64, from VPMULUDQ (AVX2 has no VPMULLQ): C holds the
// constant in each lane (VPMULUDQ reads its low half), CH its high half;
// T1-T3 are scratch.
#define MULLQ256(A, C, CH, T1, T2, T3) \
	VPMULUDQ C, A, T1; \
	VPSRLQ $32, A, T2; \
	VPMULUDQ C, T2, T2; \
	VPMULUDQ CH, A, T3; \
	VPADDQ T3, T2, T2; \
	VPSLLQ $32, T2, T2; \
	VPADDQ T2, T1, A

// func sumCore256(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, scratch unsafe.Pointer, n, models int, p *sumParams)
//
// sumCore512 for AVX2, 8 elements at a time: four draws per model (the
// states after the deltas in scratch, the constants in p.c256). Without
// mask registers the unsigned comparisons are signed ones on values biased
// by 0x80000000, and the kept entries are selected with AND, as the Go
// loops do.
TEXT ·sumCore256(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ obase+16(FP), R15
	MOVQ xs+24(FP), DX
	MOVQ scratch+32(FP), R8
	MOVQ n+40(FP), CX
	MOVQ models+48(FP), R9
	MOVQ p+56(FP), R10
	MOVQ R9, R14
	SHLQ $5, R14                  // states start at scratch + 32*models
	MOVL $0x3f800000, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15         // 1.0
	MOVL $0x7fffffff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14         // abs mask
	VPCMPEQD Y13, Y13, Y13
	VPSLLD $31, Y13, Y13          // bias 0x80000000
	MOVL $0xff7fffff, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12         // 0x7f7fffff, biased
	VPSRLD $31, Y13, Y11          // integer 1
	VBROADCASTSS 264(R10), Y10    // eps
	VBROADCASTSS 256(R10), Y9     // lam
	MOVL 260(R10), BX             // normalize?
	XORQ AX, AX
sum256_loop:
	VMOVUPS (SI)(AX*4), Y0        // base
	VXORPS Y1, Y1, Y1             // e
	XORQ R11, R11
	MOVQ R8, R13
sum256_models:
	MOVQ (DX)(R11*8), R12
	VMOVUPS (R12)(AX*4), Y2
	VSUBPS Y0, Y2, Y2
	MOVL 128(R10)(R11*4), R12
	CMPL R12, $2
	JNE sum256_scale
	VPAND Y14, Y2, Y3             // drop 2: keep lo <= |delta| bits < hi
	VPXOR Y13, Y3, Y3
	VPBROADCASTD 336(R10)(R11*4), Y4
	VPXOR Y13, Y4, Y4
	VPCMPGTD Y3, Y4, Y4           // lo > k
	VPBROADCASTD 400(R10)(R11*4), Y5
	VPXOR Y13, Y5, Y5
	VPCMPGTD Y3, Y5, Y5           // hi > k
	VPANDN Y5, Y4, Y4
	VPAND Y4, Y2, Y2
	XORL R12, R12                 // no draws
sum256_scale:
	VBROADCASTSS (R10)(R11*4), Y3
	VMULPS Y3, Y2, Y2
	TESTL R12, R12
	JZ sum256_keep
	// drop 1: four splitmix64 states per model after the deltas, each
	// draw giving two consecutive elements its 32-bit halves.
	VMOVDQU (R13)(R14*1), Y4
	VPADDQ 600(R10), Y4, Y5       // 4*gamma
	VMOVDQU Y5, (R13)(R14*1)
	VPSRLQ $30, Y4, Y5
	VPXOR Y5, Y4, Y4
	MULLQ256(Y4, 632(R10), 664(R10), Y6, Y7, Y8) // * mix multiplier 1
	VPSRLQ $27, Y4, Y5
	VPXOR Y5, Y4, Y4
	MULLQ256(Y4, 696(R10), 728(R10), Y6, Y7, Y8) // * mix multiplier 2
	VPSRLQ $31, Y4, Y5
	VPXOR Y5, Y4, Y4
	VPXOR Y13, Y4, Y4
	VPBROADCASTD 64(R10)(R11*4), Y5
	VPXOR Y13, Y5, Y5
	VPCMPGTD Y4, Y5, Y5           // draw < threshold: keep
	VPAND Y5, Y2, Y2
sum256_keep:
	VMOVUPS Y2, (R13)
	VADDPS Y2, Y1, Y1
	ADDQ $32, R13
	INCQ R11
	CMPQ R11, R9
	JLT sum256_models
	VPAND Y14, Y1, Y3             // e == ±0: a tie elects +
	VPXOR Y4, Y4, Y4
	VPCMPEQD Y4, Y3, Y3
	VPAND Y15, Y3, Y3
	VADDPS Y3, Y1, Y1
	VXORPS Y5, Y5, Y5             // a
	VXORPS Y6, Y6, Y6             // v
	XORQ R11, R11
	MOVQ R8, R13
sum256_agree:
	VMOVUPS (R13), Y2
	VMULPS Y1, Y2, Y3
	VPSUBD Y11, Y3, Y3
	VPXOR Y13, Y3, Y3
	VPCMPGTD Y3, Y12, Y3          // 0 < bits(d*e) <= 0x7f7fffff
	VPAND Y3, Y2, Y4
	VADDPS Y4, Y5, Y5
	VBROADCASTSS 192(R10)(R11*4), Y4
	VPAND Y3, Y4, Y4
	VADDPS Y4, Y6, Y6
	ADDQ $32, R13
	INCQ R11
	CMPQ R11, R9
	JLT sum256_agree
	TESTL BX, BX
	JZ sum256_out
	VANDPS Y14, Y6, Y3
	VCMPPS $0x1e, Y10, Y3, Y3     // |v| > eps (false for NaN)
	VDIVPS Y6, Y5, Y4
	VBLENDVPS Y3, Y4, Y5, Y5
sum256_out:
	VMULPS Y9, Y5, Y5
	VADDPS (R15)(AX*4), Y5, Y5    // obase + lam*a
	VMOVUPS Y5, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT sum256_loop
	VZEROUPPER
	RET

// func narrowBF16x256(dst *uint16, src *float32, n int)
// narrowBF16x512 for AVX2, 8 at a time: the rounded and the NaN results
// both made, the NaN lanes blended in, the dwords packed to words.
TEXT ·narrowBF16x256(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7fff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $1, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x7fffffff, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x7f800000, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	MOVL $0x40, AX
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	XORQ AX, AX
narrow256_loop:
	VMOVDQU (SI)(AX*4), Y0
	VPSRLD $16, Y0, Y1            // top half
	VPAND Y14, Y1, Y2             // its lowest bit
	VPADDD Y15, Y0, Y3
	VPADDD Y2, Y3, Y3
	VPSRLD $16, Y3, Y3            // rounded
	VPAND Y13, Y0, Y4
	VPCMPGTD Y12, Y4, Y4          // |bits| > Inf: NaN
	VPOR Y11, Y1, Y5              // NaN: top half | quiet bit
	VPBLENDVB Y4, Y5, Y3, Y3
	VEXTRACTI128 $1, Y3, X4
	VPACKUSDW X4, X3, X3
	VMOVDQU X3, (DI)(AX*2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT narrow256_loop
	VZEROUPPER
	RET

// COLLECT256SETUP sets collect256's constants from lo in AX and hi in BX:
// the bias 0x80000000 in Y15, lo and hi biased in Y14 and Y13, the
// magnitude mask in Y12; AX then counts the entries, R8 c and R10 above.
#define COLLECT256SETUP \
	VPCMPEQD Y15, Y15, Y15; \
	VPSLLD $31, Y15, Y15; \
	VMOVD AX, X14; \
	VPBROADCASTD X14, Y14; \
	VPXOR Y15, Y14, Y14; \
	VMOVD BX, X13; \
	VPBROADCASTD X13, Y13; \
	VPXOR Y15, Y13, Y13; \
	VPCMPEQD Y12, Y12, Y12; \
	VPSRLD $1, Y12, Y12; \
	XORQ AX, AX; \
	XORQ R8, R8; \
	XORQ R10, R10

// COLLECT256KEEP appends the lanes of Y0 not set in the mask Y3 to buf
// at c (R8), as VPCOMPRESSD would (VPERMD by the table at R11), counts
// the lanes set in Y2 (above hi) in R10, and goes on to the next eight.
#define COLLECT256KEEP \
	VMOVMSKPS Y3, R9; \
	XORL $0xff, R9; \
	VMOVQ (R11)(R9*8), X4; \
	VPMOVZXBD X4, Y4; \
	VPERMD Y0, Y4, Y5; \
	VMOVDQU Y5, (DI)(R8*4); \
	POPCNTL R9, R9; \
	ADDQ R9, R8; \
	VMOVMSKPS Y2, R9; \
	POPCNTL R9, R9; \
	ADDQ R9, R10; \
	ADDQ $8, AX

// COLLECT256STEP appends the magnitude bits of the eight deltas in Y0
// that lie in [lo, hi] to buf at c, as VPCOMPRESSD would (VPERMD by the
// table at R11), counts those above hi, and goes on to the next eight.
#define COLLECT256STEP \
	VPAND Y12, Y0, Y0; \
	VPXOR Y15, Y0, Y1; \
	VPCMPGTD Y13, Y1, Y2; \
	VPCMPGTD Y1, Y14, Y3; \
	VPOR Y3, Y2, Y3; \
	COLLECT256KEEP

// func collect256(buf *uint32, x, base *float32, n int, lo, hi uint32, lut *uint64) (c, above int)
// collect512 for AVX2, 8 at a time: the unsigned comparisons as signed
// ones on biased values (bits > hi, lo > bits), and VPCOMPRESSD as VPERMD
// by the indices that lut gives for the mask of the kept lanes
// (compressLUT).
TEXT ·collect256(SB), NOSPLIT, $0-64
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ lut+40(FP), R11
	MOVL lo+32(FP), AX
	MOVL hi+36(FP), BX
	COLLECT256SETUP
collect256_loop:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	COLLECT256STEP
	CMPQ AX, CX
	JLT collect256_loop
	MOVQ R8, c+48(FP)
	MOVQ R10, above+56(FP)
	VZEROUPPER
	RET

// func collect256BF16(buf *uint32, x, base *uint16, n int, lo, hi uint32, lut *uint64) (c, above int)
// collect256 on bfloat16 rows, widened as collect512BF16 does.
TEXT ·collect256BF16(SB), NOSPLIT, $0-64
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ lut+40(FP), R11
	MOVL lo+32(FP), AX
	MOVL hi+36(FP), BX
	COLLECT256SETUP
collect256bf_loop:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
	VPMOVZXWD (DX)(AX*2), Y2
	VPSLLD $16, Y2, Y2
	VSUBPS Y2, Y0, Y0
	COLLECT256STEP
	CMPQ AX, CX
	JLT collect256bf_loop
	MOVQ R8, c+48(FP)
	MOVQ R10, above+56(FP)
	VZEROUPPER
	RET

// COLLECT256HSTEP is COLLECT256STEP that also counts the lanes equal to
// each of four heavy values (eight copies each at R12) in Y6-Y9 and
// leaves them out of buf, as dropHeavy does.
#define COLLECT256HSTEP \
	VPAND Y12, Y0, Y0; \
	COLLECT256HBITS

// COLLECT256HBITS is COLLECT256HSTEP on the bits of Y0 as they are.
#define COLLECT256HBITS \
	VPXOR Y15, Y0, Y1; \
	VPCMPGTD Y13, Y1, Y2; \
	VPCMPGTD Y1, Y14, Y3; \
	VPOR Y3, Y2, Y3; \
	VPCMPEQD (R12), Y0, Y10; \
	VPSUBD Y10, Y6, Y6; \
	VPCMPEQD 32(R12), Y0, Y11; \
	VPSUBD Y11, Y7, Y7; \
	VPOR Y11, Y10, Y10; \
	VPCMPEQD 64(R12), Y0, Y11; \
	VPSUBD Y11, Y8, Y8; \
	VPOR Y11, Y10, Y10; \
	VPCMPEQD 96(R12), Y0, Y11; \
	VPSUBD Y11, Y9, Y9; \
	VPOR Y11, Y10, Y10; \
	VPOR Y10, Y3, Y3; \
	COLLECT256KEEP

// COLLECT256HSETUP sets collect256's constants (lo in AX, hi in BX) and
// clears the heavy values' counts.
#define COLLECT256HSETUP \
	COLLECT256SETUP; \
	VPXOR Y6, Y6, Y6; \
	VPXOR Y7, Y7, Y7; \
	VPXOR Y8, Y8, Y8; \
	VPXOR Y9, Y9, Y9

// COLLECT256HEND stores the heavy values' counts, eight lanes each, at R13.
#define COLLECT256HEND \
	VMOVDQU Y6, (R13); \
	VMOVDQU Y7, 32(R13); \
	VMOVDQU Y8, 64(R13); \
	VMOVDQU Y9, 96(R13)

// func collect256H(buf *uint32, x, base *float32, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above int)
// collect256 with the heavy values hv counted into eq and left out.
TEXT ·collect256H(SB), NOSPLIT, $0-80
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ lut+40(FP), R11
	MOVQ hv+48(FP), R12
	MOVQ eq+56(FP), R13
	MOVL lo+32(FP), AX
	MOVL hi+36(FP), BX
	COLLECT256HSETUP
collect256h_loop:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	COLLECT256HSTEP
	CMPQ AX, CX
	JLT collect256h_loop
	COLLECT256HEND
	MOVQ R8, c+64(FP)
	MOVQ R10, above+72(FP)
	VZEROUPPER
	RET

// func collect256BF16H(buf *uint32, x, base *uint16, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above int)
// collect256BF16 with the heavy values hv counted into eq and left out.
TEXT ·collect256BF16H(SB), NOSPLIT, $0-80
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ lut+40(FP), R11
	MOVQ hv+48(FP), R12
	MOVQ eq+56(FP), R13
	MOVL lo+32(FP), AX
	MOVL hi+36(FP), BX
	COLLECT256HSETUP
collect256bfh_loop:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
	VPMOVZXWD (DX)(AX*2), Y2
	VPSLLD $16, Y2, Y2
	VSUBPS Y2, Y0, Y0
	COLLECT256HSTEP
	CMPQ AX, CX
	JLT collect256bfh_loop
	COLLECT256HEND
	MOVQ R8, c+64(FP)
	MOVQ R10, above+72(FP)
	VZEROUPPER
	RET

// HEAVY512 counts the lanes of Z0 equal to the heavy value in HV into the
// counts CNT and ors their mask into K3.
#define HEAVY512(HV, CNT) \
	VPCMPEQD HV, Z0, K4; \
	VPADDD Z31, CNT, K4, CNT; \
	KORW K4, K3, K3

// func collect512BF16H(buf *uint32, x, base *uint16, n int, lo, hi uint32, hv *[4][8]uint32, eq *[32]uint32) (c, above int)
// collect256BF16H 16 entries at a time: the magnitude bits of x - base in
// [lo, hi] that equal none of the four heavy values are stored to buf in
// order (VPCOMPRESSD; each store writes 16 entries, so buf needs 15
// spare), those equal to heavy value j counted per lane (folded to eight
// lanes at the end, as collect256BF16H leaves them in eq), and those
// above hi counted.
TEXT ·collect512BF16H(SB), NOSPLIT, $0-72
	MOVQ buf+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVL lo+32(FP), AX
	VPBROADCASTD AX, Z28
	MOVL hi+36(FP), AX
	VPBROADCASTD AX, Z29
	MOVQ hv+40(FP), R12
	MOVQ eq+48(FP), R13
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30          // abs mask
	MOVL $1, AX
	VPBROADCASTD AX, Z31          // integer 1
	VPBROADCASTD (R12), Z24       // the heavy values
	VPBROADCASTD 32(R12), Z25
	VPBROADCASTD 64(R12), Z26
	VPBROADCASTD 96(R12), Z27
	VPXORD Z20, Z20, Z20          // their counts
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	XORQ AX, AX
	XORQ R8, R8                   // c
	XORQ R10, R10                 // above
collect512bfh_loop:
	COLLECT512BF16BITS
	VPCMPEQD Z24, Z0, K3
	VPADDD Z31, Z20, K3, Z20
	HEAVY512(Z25, Z21)
	HEAVY512(Z26, Z22)
	HEAVY512(Z27, Z23)
	KANDNW K1, K3, K1             // and no heavy value
	COLLECT512KEEP
	CMPQ AX, CX
	JLT collect512bfh_loop
	VEXTRACTI32X8 $1, Z20, Y1     // eight lanes each, as collect256BF16H's
	VPADDD Y1, Y20, Y1
	VMOVDQU Y1, (R13)
	VEXTRACTI32X8 $1, Z21, Y1
	VPADDD Y1, Y21, Y1
	VMOVDQU Y1, 32(R13)
	VEXTRACTI32X8 $1, Z22, Y1
	VPADDD Y1, Y22, Y1
	VMOVDQU Y1, 64(R13)
	VEXTRACTI32X8 $1, Z23, Y1
	VPADDD Y1, Y23, Y1
	VMOVDQU Y1, 96(R13)
	MOVQ R8, c+56(FP)
	MOVQ R10, above+64(FP)
	VZEROUPPER
	RET

// func bandLinear256(dst, base, obase unsafe.Pointer, xs *unsafe.Pointer, n, models int, p *sumParams)
// bandLinear512 for AVX2, 8 elements at a time (the band test as in
// sumCore256); the models are float32, or bfloat16 widened in registers
// when p.bf16 has pModelsBF16 (a predictable branch per model and step),
// and so is the base with pBaseBF16.
TEXT ·bandLinear256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ obase+16(FP), R13
	MOVQ xs+24(FP), DX
	MOVQ n+32(FP), CX
	MOVQ models+40(FP), R9
	MOVQ p+48(FP), R10
	VPCMPEQD Y15, Y15, Y15
	VPSLLD $31, Y15, Y15          // bias 0x80000000
	VPCMPEQD Y14, Y14, Y14
	VPSRLD $1, Y14, Y14           // abs mask
	VBROADCASTSD 592(R10), Y13    // scale
	MOVQ 760(R10), BX             // p.bf16
	XORQ AX, AX
lin256_loop:
	TESTQ $2, BX                  // pBaseBF16
	JNZ lin256_bbase
	VMOVUPS (SI)(AX*4), Y0        // base
	JMP lin256_based
lin256_bbase:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
lin256_based:
	VXORPD Y6, Y6, Y6             // sum, elements 0-3
	VXORPD Y7, Y7, Y7             // sum, elements 4-7
	XORQ R11, R11
lin256_models:
	MOVQ (DX)(R11*8), R12
	TESTQ $1, BX                  // pModelsBF16
	JNZ lin256_bf16
	VMOVUPS (R12)(AX*4), Y2
	JMP lin256_loaded
lin256_bf16:
	VPMOVZXWD (R12)(AX*2), Y2      // widened in registers
	VPSLLD $16, Y2, Y2
lin256_loaded:
	VSUBPS Y0, Y2, Y2
	VPAND Y14, Y2, Y3
	VPXOR Y15, Y3, Y3
	VPBROADCASTD 336(R10)(R11*4), Y4
	VPXOR Y15, Y4, Y4
	VPCMPGTD Y3, Y4, Y4           // lo > bits
	VPBROADCASTD 400(R10)(R11*4), Y5
	VPXOR Y15, Y5, Y5
	VPCMPGTD Y3, Y5, Y5           // hi > bits
	VPANDN Y5, Y4, Y4
	VPAND Y4, Y2, Y2
	VBROADCASTSD 464(R10)(R11*8), Y8
	VCVTPS2PD X2, Y3
	VEXTRACTF128 $1, Y2, X4
	VCVTPS2PD X4, Y4
	VMULPD Y8, Y3, Y3
	VMULPD Y8, Y4, Y4
	VADDPD Y3, Y6, Y6
	VADDPD Y4, Y7, Y7
	INCQ R11
	CMPQ R11, R9
	JLT lin256_models
	TESTQ $2, BX
	JNZ lin256_obbase
	VMOVUPS (R13)(AX*4), Y0       // the base to add
	JMP lin256_obased
lin256_obbase:
	VPMOVZXWD (R13)(AX*2), Y0
	VPSLLD $16, Y0, Y0
lin256_obased:
	VCVTPS2PD X0, Y3
	VEXTRACTF128 $1, Y0, X4
	VCVTPS2PD X4, Y4
	VMULPD Y13, Y6, Y6
	VMULPD Y13, Y7, Y7
	VADDPD Y6, Y3, Y3
	VADDPD Y7, Y4, Y4
	VCVTPD2PSY Y3, X3
	VCVTPD2PSY Y4, X4
	VINSERTF128 $1, X4, Y3, Y3
	VMOVUPS Y3, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT lin256_loop
	VZEROUPPER
	RET

// func linear256(dst *float32, xs *unsafe.Pointer, n, models int, w *float64, div float64)
// linearInto for AVX2, 8 entries at a time: each model's entries widened
// to float64, multiplied by its weight and added to a sum from zero in
// the models' order (no FMA: the Go loop rounds the product), the sums
// divided by div and rounded to float32.
TEXT ·linear256(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ xs+8(FP), DX
	MOVQ n+16(FP), CX
	MOVQ models+24(FP), R9
	MOVQ w+32(FP), R10
	VBROADCASTSD div+40(FP), Y13
	XORQ AX, AX
linear256_loop:
	VXORPD Y6, Y6, Y6             // sum, entries 0-3
	VXORPD Y7, Y7, Y7             // sum, entries 4-7
	XORQ R11, R11
linear256_models:
	MOVQ (DX)(R11*8), R12
	VCVTPS2PD (R12)(AX*4), Y3
	VCVTPS2PD 16(R12)(AX*4), Y4
	VBROADCASTSD (R10)(R11*8), Y8
	VMULPD Y8, Y3, Y3
	VMULPD Y8, Y4, Y4
	VADDPD Y3, Y6, Y6
	VADDPD Y4, Y7, Y7
	INCQ R11
	CMPQ R11, R9
	JLT linear256_models
	VDIVPD Y13, Y6, Y6
	VDIVPD Y13, Y7, Y7
	VCVTPD2PSY Y6, X6
	VCVTPD2PSY Y7, X7
	VINSERTF128 $1, X7, Y6, Y6
	VMOVUPS Y6, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT linear256_loop
	VZEROUPPER
	RET

// func dot256(x, y, b *float32, n int, s *[4]float64)
// dot64's (b nil) or dotDelta's four partial sums for AVX2: lane k sums
// the products of the entries k, k+4, k+8, ... in float64, each
// difference from b and product rounded as the Go loop rounds them.
TEXT ·dot256(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DX
	MOVQ b+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ s+32(FP), DI
	VXORPD Y0, Y0, Y0
	XORQ AX, AX
	TESTQ R8, R8
	JNE dot256_delta
dot256_loop:
	VCVTPS2PD (SI)(AX*4), Y1
	VCVTPS2PD (DX)(AX*4), Y2
	VMULPD Y2, Y1, Y1
	VADDPD Y1, Y0, Y0
	ADDQ $4, AX
	CMPQ AX, CX
	JLT dot256_loop
	JMP dot256_done
dot256_delta:
	VCVTPS2PD (R8)(AX*4), Y3
	VCVTPS2PD (SI)(AX*4), Y1
	VCVTPS2PD (DX)(AX*4), Y2
	VSUBPD Y3, Y1, Y1
	VSUBPD Y3, Y2, Y2
	VMULPD Y2, Y1, Y1
	VADDPD Y1, Y0, Y0
	ADDQ $4, AX
	CMPQ AX, CX
	JLT dot256_delta
dot256_done:
	VMOVUPD Y0, (DI)
	VZEROUPPER
	RET

// func combine256(dst *float32, xs *unsafe.Pointer, base *float32, c *float64, n, models, flags int)
// combineRun for AVX2, 8 entries at a time, in float64: each model's
// entries (less base's, flags bit 0) times its coefficient, summed in the
// models' order from zero (flags bit 1) or from the first product, plus
// base's entries (bit 0), rounded to float32.
TEXT ·combine256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ xs+8(FP), DX
	MOVQ base+16(FP), R13
	MOVQ c+24(FP), R10
	MOVQ n+32(FP), CX
	MOVQ models+40(FP), R9
	MOVQ flags+48(FP), BX
	XORQ AX, AX
combine256_loop:
	VXORPD Y10, Y10, Y10          // base, entries 0-3 (0 without one)
	VXORPD Y11, Y11, Y11          // entries 4-7
	TESTQ $1, BX
	JEQ combine256_nobase
	VCVTPS2PD (R13)(AX*4), Y10
	VCVTPS2PD 16(R13)(AX*4), Y11
combine256_nobase:
	XORQ R11, R11
	VXORPD Y6, Y6, Y6             // sums, entries 0-3
	VXORPD Y7, Y7, Y7             // entries 4-7
	TESTQ $2, BX
	JNE combine256_models
	MOVQ (DX), R12                // from the first product
	VCVTPS2PD (R12)(AX*4), Y6
	VCVTPS2PD 16(R12)(AX*4), Y7
	VSUBPD Y10, Y6, Y6
	VSUBPD Y11, Y7, Y7
	VBROADCASTSD (R10), Y8
	VMULPD Y8, Y6, Y6
	VMULPD Y8, Y7, Y7
	INCQ R11
combine256_models:
	MOVQ (DX)(R11*8), R12
	VCVTPS2PD (R12)(AX*4), Y3
	VCVTPS2PD 16(R12)(AX*4), Y4
	TESTQ $1, BX
	JEQ combine256_nosub
	VSUBPD Y10, Y3, Y3
	VSUBPD Y11, Y4, Y4
combine256_nosub:
	VBROADCASTSD (R10)(R11*8), Y8
	VMULPD Y8, Y3, Y3
	VMULPD Y8, Y4, Y4
	VADDPD Y3, Y6, Y6
	VADDPD Y4, Y7, Y7
	INCQ R11
	CMPQ R11, R9
	JLT combine256_models
	TESTQ $1, BX
	JEQ combine256_store
	VADDPD Y10, Y6, Y6
	VADDPD Y11, Y7, Y7
combine256_store:
	VCVTPD2PSY Y6, X6
	VCVTPD2PSY Y7, X7
	VINSERTF128 $1, X7, Y6, Y6
	VMOVUPS Y6, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT combine256_loop
	VZEROUPPER
	RET

// func stock256(dst *float32, xs *unsafe.Pointer, base *float32, n, models int, t float64, flags int)
// stockRun for AVX2, 8 entries at a time, in float64: the models' mean
// (their sum in order from zero, flags bit 1, or from the first model,
// divided by their number), then t*mean + (1-t)*base, rounded to
// float32.
TEXT ·stock256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ xs+8(FP), DX
	MOVQ base+16(FP), R13
	MOVQ n+24(FP), CX
	MOVQ models+32(FP), R9
	VBROADCASTSD t+40(FP), Y13
	MOVQ flags+48(FP), BX
	MOVQ $1, AX
	VCVTSI2SDQ AX, X12, X12
	VBROADCASTSD X12, Y12
	VSUBPD Y13, Y12, Y12          // 1-t
	VCVTSI2SDQ R9, X14, X14
	VBROADCASTSD X14, Y14         // the number of models
	XORQ AX, AX
stock256_loop:
	XORQ R11, R11
	VXORPD Y6, Y6, Y6             // sums, entries 0-3
	VXORPD Y7, Y7, Y7             // entries 4-7
	TESTQ $2, BX
	JNE stock256_models
	MOVQ (DX), R12                // from the first model
	VCVTPS2PD (R12)(AX*4), Y6
	VCVTPS2PD 16(R12)(AX*4), Y7
	INCQ R11
stock256_models:
	MOVQ (DX)(R11*8), R12
	VCVTPS2PD (R12)(AX*4), Y3
	VCVTPS2PD 16(R12)(AX*4), Y4
	VADDPD Y3, Y6, Y6
	VADDPD Y4, Y7, Y7
	INCQ R11
	CMPQ R11, R9
	JLT stock256_models
	VDIVPD Y14, Y6, Y6            // the mean
	VDIVPD Y14, Y7, Y7
	VMULPD Y13, Y6, Y6
	VMULPD Y13, Y7, Y7
	VCVTPS2PD (R13)(AX*4), Y3
	VCVTPS2PD 16(R13)(AX*4), Y4
	VMULPD Y12, Y3, Y3
	VMULPD Y12, Y4, Y4
	VADDPD Y3, Y6, Y6
	VADDPD Y4, Y7, Y7
	VCVTPD2PSY Y6, X6
	VCVTPD2PSY Y7, X7
	VINSERTF128 $1, X7, Y6, Y6
	VMOVUPS Y6, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT stock256_loop
	VZEROUPPER
	RET

// func sceVar256(v, base, x0, x1 *float32, n int)
// sceVariance's two-model loop for AVX2, four entries per half, in
// float64 with the Go loop's steps: the task vectors d = x - base, their
// mean (d0 + d1) * 0.5, and ((d0-m)^2 + (d1-m)^2) * 0.5, rounded to
// float32.
// SCEVARSETUP sets sceVar256's constant, 0.5 in Y15, and its entry AX;
// v is in DI, base in SI, the models in DX and R8, n in CX. (go vet
// takes argument names in a macro for those of the function before it.)
#define SCEVARSETUP \
	MOVQ $0x3fe0000000000000, AX; \
	VMOVQ AX, X15; \
	VBROADCASTSD X15, Y15; \
	XORQ AX, AX

// SCEVAR4 is the variance of two models' task vectors on four entries
// in float64: the base in B, the models in A and C; the variance to A
// (M is scratch): the deviations from their mean m, squared, summed and
// halved (x/2 is x*0.5, exactly).
#define SCEVAR4(B, A, C, M) \
	VSUBPD B, A, A; \
	VSUBPD B, C, C; \
	VADDPD C, A, M; \
	VMULPD Y15, M, M; \
	VSUBPD M, A, A; \
	VSUBPD M, C, C; \
	VMULPD A, A, A; \
	VMULPD C, C, C; \
	VADDPD C, A, A; \
	VMULPD Y15, A, A

// SCEVARSTORE stores the eight variances of Y1 and Y5 as float32 at AX
// and steps AX, comparing it with n.
#define SCEVARSTORE \
	VCVTPD2PSY Y1, X1; \
	VCVTPD2PSY Y5, X5; \
	VINSERTF128 $1, X5, Y1, Y1; \
	VMOVUPS Y1, (DI)(AX*4); \
	ADDQ $8, AX; \
	CMPQ AX, CX

// WIDEN4BF16 loads four bfloat16 values at M as float64 into Y, whose
// lower half is X.
#define WIDEN4BF16(M, X, Y) \
	VPMOVZXWD M, X; \
	VPSLLD $16, X, X; \
	VCVTPS2PD X, Y

TEXT ·sceVar256(SB), NOSPLIT, $0-40
	MOVQ v+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	SCEVARSETUP
sceVar256_loop:
	VCVTPS2PD (SI)(AX*4), Y0      // base
	VCVTPS2PD (DX)(AX*4), Y1
	VCVTPS2PD (R8)(AX*4), Y2
	SCEVAR4(Y0, Y1, Y2, Y3)
	VCVTPS2PD 16(SI)(AX*4), Y4    // entries 4-7
	VCVTPS2PD 16(DX)(AX*4), Y5
	VCVTPS2PD 16(R8)(AX*4), Y6
	SCEVAR4(Y4, Y5, Y6, Y7)
	SCEVARSTORE
	JLT sceVar256_loop
	VZEROUPPER
	RET

// func sceVar256BF16(v *float32, base, x0, x1 *uint16, n int)
// sceVar256 on bfloat16 inputs, each widened as it is loaded.
TEXT ·sceVar256BF16(SB), NOSPLIT, $0-40
	MOVQ v+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	SCEVARSETUP
sceVar256BF16_loop:
	WIDEN4BF16((SI)(AX*2), X0, Y0)    // base
	WIDEN4BF16((DX)(AX*2), X1, Y1)
	WIDEN4BF16((R8)(AX*2), X2, Y2)
	SCEVAR4(Y0, Y1, Y2, Y3)
	WIDEN4BF16(8(SI)(AX*2), X4, Y4)   // entries 4-7
	WIDEN4BF16(8(DX)(AX*2), X5, Y5)
	WIDEN4BF16(8(R8)(AX*2), X6, Y6)
	SCEVAR4(Y4, Y5, Y6, Y7)
	SCEVARSTORE
	JLT sceVar256BF16_loop
	VZEROUPPER
	RET

// func keepAtLeast256(m *uint32, d *float32, n int, th1 int32)
// keepMask's comparison for AVX2: m[j] all ones where d[j]'s magnitude
// bits, as a signed 32-bit value (never negative), exceed th1 (the
// threshold less one), eight at a time.
TEXT ·keepAtLeast256(SB), NOSPLIT, $0-28
	MOVQ m+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL th1+24(FP), AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VPCMPEQD Y14, Y14, Y14
	VPSRLD $1, Y14, Y14           // abs mask
	XORQ AX, AX
keepAtLeast256_loop:
	VPAND (SI)(AX*4), Y14, Y0
	VPCMPGTD Y15, Y0, Y0
	VMOVDQU Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT keepAtLeast256_loop
	VZEROUPPER
	RET

// func collectBits256(buf *uint32, v *float32, n int, lo, hi uint32, lut *uint64) (c, above, nz int)
// collectBits for AVX2, eight at a time: COLLECT256STEP on the entries'
// bits as they are (no magnitude taken), and the entries not zero
// counted on the way (as n less the zeros).
TEXT ·collectBits256(SB), NOSPLIT, $0-64
	MOVQ buf+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ lut+32(FP), R11
	MOVL lo+24(FP), AX
	MOVL hi+28(FP), BX
	COLLECT256SETUP
	XORQ R13, R13                 // zeros
	VPXOR Y11, Y11, Y11
collectBits256_loop:
	VMOVDQU (SI)(AX*4), Y0
	VPCMPEQD Y11, Y0, Y6
	VMOVMSKPS Y6, R9
	POPCNTL R9, R9
	ADDQ R9, R13
	VPXOR Y15, Y0, Y1
	VPCMPGTD Y13, Y1, Y2          // above hi
	VPCMPGTD Y1, Y14, Y3          // below lo
	VPOR Y3, Y2, Y3
	COLLECT256KEEP
	CMPQ AX, CX
	JLT collectBits256_loop
	MOVQ R8, c+40(FP)
	MOVQ R10, above+48(FP)
	SUBQ R13, CX
	MOVQ CX, nz+56(FP)
	VZEROUPPER
	RET

// func collectBits256H(buf *uint32, v *float32, n int, lo, hi uint32, lut *uint64, hv *[4][8]uint32, eq *[32]uint32) (c, above, nz int)
// collectBits256 with the heavy values hv counted into eq and left out.
TEXT ·collectBits256H(SB), NOSPLIT, $0-80
	MOVQ buf+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ lut+32(FP), R11
	MOVQ hv+40(FP), R12
	MOVQ eq+48(FP), R13
	MOVL lo+24(FP), AX
	MOVL hi+28(FP), BX
	COLLECT256HSETUP
	VPXOR Y12, Y12, Y12           // zero (no magnitude mask here)
	XORQ R14, R14                 // zeros
collectBits256h_loop:
	VMOVDQU (SI)(AX*4), Y0
	VPCMPEQD Y12, Y0, Y1
	VMOVMSKPS Y1, R9
	POPCNTL R9, R9
	ADDQ R9, R14
	COLLECT256HBITS
	CMPQ AX, CX
	JLT collectBits256h_loop
	COLLECT256HEND
	MOVQ R8, c+56(FP)
	MOVQ R10, above+64(FP)
	SUBQ R14, CX
	MOVQ CX, nz+72(FP)
	VZEROUPPER
	RET

// func pruneRanks256(row *float32, ord *uint64, qg *uint64, th *uint64, p *float64, n int, s uint64, rescale int, c *[6][4]uint64)
// pruneRanks512 for AVX2, 4 ranks at a time: each rank's step to its draw
// read from qg ((q+1)*gamma), the mix's 64-bit products from VPMULUDQ (c:
// gamma, the mix multipliers, each then its high half), the comparison
// with th as signed (both below 2^63), and the scatter as four scalar
// stores.
TEXT ·pruneRanks256(SB), NOSPLIT, $0-72
	MOVQ row+0(FP), DI
	MOVQ ord+8(FP), SI
	MOVQ qg+16(FP), R12
	MOVQ th+24(FP), R13
	MOVQ p+32(FP), R14
	MOVQ n+40(FP), CX
	VPBROADCASTQ s+48(FP), Y15
	MOVQ rescale+56(FP), R9
	MOVQ c+64(FP), R10
	MOVQ $0x80000000, BX
	VMOVQ BX, X14
	VPBROADCASTQ X14, Y14         // the sign bit
	MOVQ $0x0000000600000004, BX  // VPERMD: the low dwords of the four qwords
	VMOVQ BX, X12
	MOVQ $0x0000000200000000, BX
	VMOVQ BX, X11
	VPUNPCKLQDQ X12, X11, X12
	XORQ AX, AX
prune256_loop:
	VMOVDQU (SI)(AX*8), Y0
	VPSRLQ $32, Y0, Y1
	VPAND Y14, Y0, Y2
	VPOR Y2, Y1, Y1
	VPERMD Y1, Y12, Y1            // x, in X1
	VPADDQ (R12)(AX*8), Y15, Y3   // s + (q+1)*gamma
	VPSRLQ $30, Y3, Y4
	VPXOR Y4, Y3, Y3
	MULLQ256(Y3, 64(R10), 96(R10), Y4, Y5, Y6) // * mix multiplier 1
	VPSRLQ $27, Y3, Y4
	VPXOR Y4, Y3, Y3
	MULLQ256(Y3, 128(R10), 160(R10), Y4, Y5, Y6) // * mix multiplier 2
	VPSRLQ $31, Y3, Y4
	VPXOR Y4, Y3, Y3
	VPSRLQ $11, Y3, Y3
	VMOVDQU (R13)(AX*8), Y4
	VPCMPGTQ Y3, Y4, Y4           // keep: below th
	VPERMD Y4, Y12, Y4
	TESTQ R9, R9
	JZ prune256_store
	VCVTPS2PD X1, Y5
	VDIVPD (R14)(AX*8), Y5, Y5
	VCVTPD2PSY Y5, X1
prune256_store:
	VPAND X4, X1, X1
	MOVL (SI)(AX*8), BX
	ANDL $0x7fffffff, BX
	VMOVSS X1, (DI)(BX*4)
	MOVL 8(SI)(AX*8), BX
	ANDL $0x7fffffff, BX
	VEXTRACTPS $1, X1, (DI)(BX*4)
	MOVL 16(SI)(AX*8), BX
	ANDL $0x7fffffff, BX
	VEXTRACTPS $2, X1, (DI)(BX*4)
	MOVL 24(SI)(AX*8), BX
	ANDL $0x7fffffff, BX
	VEXTRACTPS $3, X1, (DI)(BX*4)
	ADDQ $4, AX
	CMPQ AX, CX
	JLT prune256_loop
	VZEROUPPER
	RET

// LIST4 appends the entries of E (four) whose lanes of MASK are zero to
// LIST at COUNT, moving them to the front with VPERMD by the table at R15
// (keysPerm256), and adds their number to COUNT. It writes four entries.
#define LIST4(E, MASK, LIST, COUNT) \
	VMOVMSKPD MASK, R12; \
	XORL $0xf, R12; \
	POPCNTL R12, CX; \
	SHLQ $5, R12; \
	VMOVDQU (R15)(R12*1), Y7; \
	VPERMD E, Y7, Y8; \
	VMOVDQU Y8, (LIST)(COUNT*8); \
	ADDQ CX, COUNT

// SPLIT4 appends the entries of E whose lanes of MASK are set to zs (BX)
// at nz (R14) and the others to ls (R13) at j-nz (j in AX), then adds the
// former's number to nz.
#define SPLIT4(E, MASK) \
	VMOVMSKPD MASK, R12; \
	POPCNTL R12, CX; \
	SHLQ $5, R12; \
	VMOVDQU (R15)(R12*1), Y7; \
	VPERMD E, Y7, Y8; \
	VMOVDQU Y8, (BX)(R14*8); \
	XORQ $0x1e0, R12; \
	VMOVDQU (R15)(R12*1), Y7; \
	VPERMD E, Y7, Y8; \
	MOVQ AX, R12; \
	SUBQ R14, R12; \
	VMOVDQU Y8, (R13)(R12*8); \
	ADDQ CX, R14

// func list256(a, s8, s16, zs, ls *uint64, n int, perm *[16][8]uint32) (n8, n16, nz int)
// keyStats.list for AVX2 from the row's first entry, 4 entries at a time
// (n a multiple of 4): the entries (key << 32 | payload) whose key has
// bits set in its low byte to s8 and in its low 16 bits to s16, those
// whose key's bits 8-15 are zero to zs, the others to ls. Each store
// writes four entries, none past entry n.
TEXT ·list256(SB), NOSPLIT, $0-80
	MOVQ a+0(FP), SI
	MOVQ s8+8(FP), R8
	MOVQ s16+16(FP), R9
	MOVQ zs+24(FP), BX
	MOVQ ls+32(FP), R13
	MOVQ n+40(FP), DX
	MOVQ perm+48(FP), R15
	VPXOR Y14, Y14, Y14
	XORQ AX, AX
	XORQ R10, R10                 // n8
	XORQ R11, R11                 // n16
	XORQ R14, R14                 // nz
list256_loop:
	VMOVDQU (SI)(AX*8), Y6        // entries j..j+3
	VPSLLQ $24, Y6, Y1
	VPSRLQ $56, Y1, Y1
	VPCMPEQQ Y14, Y1, Y1          // the key's low byte zero
	VPSLLQ $16, Y6, Y2
	VPSRLQ $48, Y2, Y2
	VPCMPEQQ Y14, Y2, Y2          // its low 16 bits zero
	VPSLLQ $16, Y6, Y3
	VPSRLQ $56, Y3, Y3
	VPCMPEQQ Y14, Y3, Y3          // its bits 8-15 zero
	LIST4(Y6, Y1, R8, R10)
	LIST4(Y6, Y2, R9, R11)
	SPLIT4(Y6, Y3)
	ADDQ $4, AX
	CMPQ AX, DX
	JLT list256_loop
	MOVQ R10, n8+56(FP)
	MOVQ R11, n16+64(FP)
	MOVQ R14, nz+72(FP)
	VZEROUPPER
	RET

// func keys256BF16(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32, idx *[12]uint64)
// sortRowBF16's keys for AVX2, 8 entries at a time (two halves of four
// 64-bit entries), n a multiple of 8: the largest and least magnitudes
// lane-wise in vec[0:8] and vec[8:16], and per lane how many keys have
// their low byte zero (vec[16:24]) and their low 16 bits zero
// (vec[24:32]). idx holds 0-7, then four 8s.
TEXT ·keys256BF16(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ vec+32(FP), R15
	MOVQ idx+40(FP), R8
	VMOVDQU (R15), Y13            // largest magnitudes
	VMOVDQU 32(R15), Y12          // least magnitudes
	VMOVDQU (R8), Y11             // indices j..j+3
	VMOVDQU 32(R8), Y10           // indices j+4..j+7
	VMOVDQU 64(R8), Y9            // 8s
	VPCMPEQD Y15, Y15, Y15
	VPSLLD $31, Y15, Y15          // sign bit
	VPXOR Y14, Y14, Y14           // zero
	VPXOR Y8, Y8, Y8              // keys with the low byte zero
	VPXOR Y7, Y7, Y7              // keys with the low 16 bits zero
	XORQ AX, AX
keys256_loop:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
	VSUBPS (DX)(AX*4), Y0, Y0     // x - base
	VPANDN Y0, Y15, Y1            // magnitude bits
	VPAND Y15, Y0, Y2             // sign bit
	VPMAXUD Y1, Y13, Y13
	VPMINUD Y1, Y12, Y12
	VPSLLD $24, Y1, Y3
	VPCMPEQD Y14, Y3, Y3          // low byte zero: -1
	VPSUBD Y3, Y8, Y8
	VPSLLD $16, Y1, Y4
	VPCMPEQD Y14, Y4, Y4          // low 16 bits zero: -1
	VPSUBD Y4, Y7, Y7
	VPMOVZXDQ X1, Y6
	VPSLLQ $32, Y6, Y6
	VPMOVZXDQ X2, Y5
	VPOR Y5, Y6, Y6
	VPOR Y11, Y6, Y6              // entries j..j+3
	VEXTRACTI128 $1, Y1, X0
	VPMOVZXDQ X0, Y0
	VPSLLQ $32, Y0, Y0
	VEXTRACTI128 $1, Y2, X5
	VPMOVZXDQ X5, Y5
	VPOR Y5, Y0, Y0
	VPOR Y10, Y0, Y0              // entries j+4..j+7
	VMOVDQU Y6, (DI)(AX*8)
	VMOVDQU Y0, 32(DI)(AX*8)
	VPADDQ Y9, Y11, Y11
	VPADDQ Y9, Y10, Y10
	ADDQ $8, AX
	CMPQ AX, CX
	JLT keys256_loop
	VMOVDQU Y13, (R15)
	VMOVDQU Y12, 32(R15)
	VMOVDQU Y8, 64(R15)
	VMOVDQU Y7, 96(R15)
	VZEROUPPER
	RET

// KEYS512HALF builds eight of keys512BF16's entries from the magnitude
// bits M and sign bits S (eight lanes each, Y registers) and the indices
// IDX into DST: magnitude << 32 | sign | index.
#define KEYS512HALF(M, S, IDX, DST) \
	VPMOVZXDQ M, DST; \
	VPSLLQ $32, DST, DST; \
	VPMOVZXDQ S, Z5; \
	VPORQ Z5, DST, DST; \
	VPORQ IDX, DST, DST

// func keys512BF16(a *uint64, x *uint16, base *float32, n int, vec *[32]uint32, idx *[24]uint64)
// keys256BF16 for AVX-512, 16 entries at a time, n a multiple of 16: the
// same entries and statistics, the statistics folded to keys256BF16's
// eight lanes at the end (vec's first and ninth lanes start as the
// largest and least so far). idx holds 0-15, then eight 16s.
TEXT ·keys512BF16(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ vec+32(FP), R15
	MOVQ idx+40(FP), R8
	VPBROADCASTD (R15), Z13       // largest magnitudes
	VPBROADCASTD 32(R15), Z12     // least magnitudes
	VMOVDQU64 (R8), Z11           // indices j..j+7
	VMOVDQU64 64(R8), Z10         // indices j+8..j+15
	VMOVDQU64 128(R8), Z9         // 16s
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z15          // sign bit
	MOVL $0xff, AX
	VPBROADCASTD AX, Z14          // low byte
	MOVL $0xffff, AX
	VPBROADCASTD AX, Z16          // low 16 bits
	MOVL $1, AX
	VPBROADCASTD AX, Z17          // integer 1
	VPXORD Z8, Z8, Z8             // keys with the low byte zero
	VPXORD Z7, Z7, Z7             // keys with the low 16 bits zero
	XORQ AX, AX
keys512_loop:
	VPMOVZXWD (SI)(AX*2), Z0
	VPSLLD $16, Z0, Z0
	VSUBPS (DX)(AX*4), Z0, Z0     // x - base
	VPANDND Z0, Z15, Z1           // magnitude bits
	VPANDD Z15, Z0, Z2            // sign bit
	VPMAXUD Z1, Z13, Z13
	VPMINUD Z1, Z12, Z12
	VPTESTNMD Z14, Z1, K1         // low byte zero
	VPADDD Z17, Z8, K1, Z8
	VPTESTNMD Z16, Z1, K2         // low 16 bits zero
	VPADDD Z17, Z7, K2, Z7
	KEYS512HALF(Y1, Y2, Z11, Z6)  // entries j..j+7
	VEXTRACTI32X8 $1, Z1, Y3
	VEXTRACTI32X8 $1, Z2, Y4
	KEYS512HALF(Y3, Y4, Z10, Z3)  // entries j+8..j+15
	VMOVDQU64 Z6, (DI)(AX*8)
	VMOVDQU64 Z3, 64(DI)(AX*8)
	VPADDQ Z9, Z11, Z11
	VPADDQ Z9, Z10, Z10
	ADDQ $16, AX
	CMPQ AX, CX
	JLT keys512_loop
	VEXTRACTI32X8 $1, Z13, Y1     // eight lanes each, as keys256BF16's
	VPMAXUD Y1, Y13, Y1
	VMOVDQU Y1, (R15)
	VEXTRACTI32X8 $1, Z12, Y1
	VPMINUD Y1, Y12, Y1
	VMOVDQU Y1, 32(R15)
	VEXTRACTI32X8 $1, Z8, Y1
	VPADDD Y1, Y8, Y1
	VMOVDQU Y1, 64(R15)
	VEXTRACTI32X8 $1, Z7, Y1
	VPADDD Y1, Y7, Y1
	VMOVDQU Y1, 96(R15)
	VZEROUPPER
	RET

// func prefix256(c *int32, n int, start int32) (total int32)
// prefix512 for AVX2, 8 counters at a time: the sums within each 128-bit
// half by byte shifts, then the low half's total added to the high half;
// the running total waits on one addition a step (the eight's own sums
// and total do not wait on it).
TEXT ·prefix256(SB), NOSPLIT, $0-28
	MOVQ c+0(FP), DI
	MOVQ n+8(FP), CX
	MOVL start+16(FP), AX
	VMOVD AX, X2
	VPBROADCASTD X2, Y2           // the running total, in every lane
	MOVL $7, AX
	VMOVD AX, X4
	VPBROADCASTD X4, Y4           // lane 7, for VPERMD
	XORQ AX, AX
prefix256_loop:
	VMOVDQU (DI)(AX*4), Y0
	VPSLLDQ $4, Y0, Y1            // lanes up by 1, in each half
	VPADDD Y1, Y0, Y1
	VPSLLDQ $8, Y1, Y5            // by 2
	VPADDD Y5, Y1, Y1
	VPSHUFD $0xff, Y1, Y5         // each half's total
	VPERM2I128 $0x08, Y5, Y5, Y5  // the low half's, to the high half
	VPADDD Y5, Y1, Y1             // inclusive sums
	VPERMD Y1, Y4, Y6             // the eight's total, in every lane
	VPSUBD Y0, Y1, Y0             // exclusive sums
	VPADDD Y2, Y0, Y0             // plus the total before
	VMOVDQU Y0, (DI)(AX*4)
	VPADDD Y6, Y2, Y2             // the total after: one addition a step
	ADDQ $8, AX
	CMPQ AX, CX
	JLT prefix256_loop
	VMOVD X2, AX
	MOVL AX, total+24(FP)
	VZEROUPPER
	RET

// func drop256(x *float32, n int, scale float32, th uint32, states *[4]uint64, c *[5][4]uint64)
//
// dropRandom's loop for AVX2, 8 entries at a time: four splitmix64 states
// (the next draw of each lane, steps of 4*gamma: c[0]; read, not written
// back), the two mix
// multipliers and their high halves (c[1..4]); each draw's 32-bit halves
// decide two consecutive entries, kept (times scale) when below th,
// compared unsigned as signed values biased by 0x80000000.
TEXT ·drop256(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	MOVL scale+16(FP), AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	MOVL th+20(FP), AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVQ states+24(FP), SI
	MOVQ c+32(FP), R10
	VPCMPEQD Y13, Y13, Y13
	VPSLLD $31, Y13, Y13          // bias 0x80000000
	VPXOR Y13, Y10, Y10           // th, biased
	VMOVDQU (SI), Y4
	XORQ AX, AX
drop256_loop:
	VPADDQ (R10), Y4, Y0          // the states of the next step
	VPSRLQ $30, Y4, Y5
	VPXOR Y5, Y4, Y4
	MULLQ256(Y4, 32(R10), 64(R10), Y6, Y7, Y8)
	VPSRLQ $27, Y4, Y5
	VPXOR Y5, Y4, Y4
	MULLQ256(Y4, 96(R10), 128(R10), Y6, Y7, Y8)
	VPSRLQ $31, Y4, Y5
	VPXOR Y5, Y4, Y4
	VPXOR Y13, Y4, Y4
	VPCMPGTD Y4, Y10, Y5          // th > draw: keep
	VMULPS (DI)(AX*4), Y9, Y1
	VPAND Y5, Y1, Y1
	VMOVUPS Y1, (DI)(AX*4)
	VMOVDQA Y0, Y4
	ADDQ $8, AX
	CMPQ AX, CX
	JLT drop256_loop
	VZEROUPPER
	RET

// func sceOut256(dst, base, x0, x1 *float32, mask *uint32, n int, w *[3]float64)
//
// streamSCE's output for two models, 4 entries at a time in float64 as
// its Go loop: the kept task vectors t0, t1 (x - base, masked), their
// sum e, each t kept where it has e's sign (e >= 0 asks t > 0, e < 0
// asks t < 0; a NaN e keeps none), the sums of the kept t*w and w from
// zero, the latter at least w[2] (a NaN stays), and base + num/den.
// SCEOUTSETUP sets sceOut256's constants from w (at R11): w0 in Y14, w1
// in Y13, the least divisor in Y12, zero in Y15; AX is the entry.
#define SCEOUTSETUP \
	VBROADCASTSD (R11), Y14; \
	VBROADCASTSD 8(R11), Y13; \
	VBROADCASTSD 16(R11), Y12; \
	VXORPD Y15, Y15, Y15; \
	XORQ AX, AX

// SCEOUT4BF16 is SCEOUT4 on bfloat16 base (SI) and models (R8, R9) at AX,
// widened as they are loaded, with the mask in X3.
#define SCEOUT4BF16 \
	VPMOVZXWD (SI)(AX*2), X0; \
	VPSLLD $16, X0, X0; \
	VPMOVZXWD (R8)(AX*2), X1; \
	VPSLLD $16, X1, X1; \
	VSUBPS X0, X1, X1; \
	VANDPS X3, X1, X1; \
	VPMOVZXWD (R9)(AX*2), X2; \
	VPSLLD $16, X2, X2; \
	VSUBPS X0, X2, X2; \
	VANDPS X3, X2, X2; \
	SCEOUT4

// SCEOUT4 is sceOut256's step on four entries: the base in X0, the
// models in X1 and X2, the mask in X3 (float32); the output to dst (DI)
// at AX. Y12-Y15 hold the least divisor, w1, w0 and zero.
#define SCEOUT4 \
	VCVTPS2PD X1, Y1; \
	VCVTPS2PD X2, Y2; \
	VCVTPS2PD X0, Y0; \
	VADDPD Y2, Y1, Y3; \
	VCMPPD $0x1d, Y15, Y3, Y4; \
	VCMPPD $0x11, Y15, Y3, Y5; \
	VCMPPD $0x1e, Y15, Y1, Y6; \
	VCMPPD $0x11, Y15, Y1, Y7; \
	VANDPD Y4, Y6, Y6; \
	VANDPD Y5, Y7, Y7; \
	VORPD Y7, Y6, Y6; \
	VCMPPD $0x1e, Y15, Y2, Y7; \
	VCMPPD $0x11, Y15, Y2, Y8; \
	VANDPD Y4, Y7, Y7; \
	VANDPD Y5, Y8, Y8; \
	VORPD Y8, Y7, Y7; \
	VMULPD Y14, Y1, Y1; \
	VMULPD Y13, Y2, Y2; \
	VANDPD Y6, Y1, Y1; \
	VANDPD Y7, Y2, Y2; \
	VADDPD Y1, Y15, Y1; \
	VADDPD Y2, Y1, Y1; \
	VANDPD Y6, Y14, Y6; \
	VANDPD Y7, Y13, Y7; \
	VADDPD Y6, Y15, Y6; \
	VADDPD Y7, Y6, Y6; \
	VMAXPD Y6, Y12, Y6; \
	VDIVPD Y6, Y1, Y1; \
	VADDPD Y1, Y0, Y1; \
	VCVTPD2PSY Y1, X1; \
	VMOVUPS X1, (DI)(AX*4)

TEXT ·sceOut256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ mask+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ w+48(FP), R11
	SCEOUTSETUP
sceout_loop:
	VMOVUPS (SI)(AX*4), X0        // base
	VMOVUPS (R10)(AX*4), X3       // mask
	VMOVUPS (R8)(AX*4), X1
	VSUBPS X0, X1, X1             // x0 - base
	VANDPS X3, X1, X1
	VMOVUPS (R9)(AX*4), X2
	VSUBPS X0, X2, X2             // x1 - base
	VANDPS X3, X2, X2
	SCEOUT4
	ADDQ $4, AX
	CMPQ AX, CX
	JLT sceout_loop
	VZEROUPPER
	RET

// func sceOut256BF16(dst *float32, base, x0, x1 *uint16, mask *uint32, n int, w *[3]float64)
// sceOut256 on bfloat16 inputs, each widened as it is loaded.
TEXT ·sceOut256BF16(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ mask+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ w+48(FP), R11
	SCEOUTSETUP
sceoutbf_loop:
	VMOVUPS (R10)(AX*4), X3       // mask
	SCEOUT4BF16
	ADDQ $4, AX
	CMPQ AX, CX
	JLT sceoutbf_loop
	VZEROUPPER
	RET

// func squares256(l *[2][8]float64, base, x0, x1 *float32, m *uint32, n int)
// sceSquares' loop for AVX2, two models, 8 entries at a time (n a
// multiple of 8): each model's task vector masked by m, widened, squared
// (exactly) and added to its lanes, entries j..j+3 to lanes 0-3 and
// j+4..j+7 to lanes 4-7, no FMA (the Go loop rounds the sum, not the
// square, and squares are exact either way).
// SQUARESLANES loads the lanes at l (DI) into Y0-Y3 (model 0's lanes
// 0-3 and 4-7, then model 1's) and clears the entry AX; SQUARESSTORE
// stores them back.
#define SQUARESLANES \
	VMOVUPD (DI), Y0; \
	VMOVUPD 32(DI), Y1; \
	VMOVUPD 64(DI), Y2; \
	VMOVUPD 96(DI), Y3; \
	XORQ AX, AX

#define SQUARESSTORE \
	VMOVUPD Y0, (DI); \
	VMOVUPD Y1, 32(DI); \
	VMOVUPD Y2, 64(DI); \
	VMOVUPD Y3, 96(DI)

// SQUARES8 is squares256's step for one model on eight entries: its
// values in Y6, the base in Y4 and the mask in Y5 (float32), added to
// the lanes LO (entries 0-3) and HI (4-7).
#define SQUARES8(LO, HI) \
	VSUBPS Y4, Y6, Y6; \
	VANDPS Y5, Y6, Y6; \
	VCVTPS2PD X6, Y7; \
	VEXTRACTF128 $1, Y6, X6; \
	VCVTPS2PD X6, Y6; \
	VMULPD Y7, Y7, Y7; \
	VMULPD Y6, Y6, Y6; \
	VADDPD Y7, LO, LO; \
	VADDPD Y6, HI, HI

TEXT ·squares256(SB), NOSPLIT, $0-48
	MOVQ l+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ m+32(FP), R10
	MOVQ n+40(FP), CX
	SQUARESLANES
squares256_loop:
	VMOVUPS (SI)(AX*4), Y4        // base
	VMOVDQU (R10)(AX*4), Y5       // mask
	VMOVUPS (R8)(AX*4), Y6
	SQUARES8(Y0, Y1)
	VMOVUPS (R9)(AX*4), Y6
	SQUARES8(Y2, Y3)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT squares256_loop
	SQUARESSTORE
	VZEROUPPER
	RET

// func squares256BF16(l *[2][8]float64, base, x0, x1 *uint16, m *uint32, n int)
// squares256 on bfloat16 inputs, each widened as it is loaded.
TEXT ·squares256BF16(SB), NOSPLIT, $0-48
	MOVQ l+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ m+32(FP), R10
	MOVQ n+40(FP), CX
	SQUARESLANES
squaresbf_loop:
	VPMOVZXWD (SI)(AX*2), Y4
	VPSLLD $16, Y4, Y4            // base
	VMOVDQU (R10)(AX*4), Y5       // mask
	VPMOVZXWD (R8)(AX*2), Y6
	VPSLLD $16, Y6, Y6
	SQUARES8(Y0, Y1)
	VPMOVZXWD (R9)(AX*2), Y6
	VPSLLD $16, Y6, Y6
	SQUARES8(Y2, Y3)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT squaresbf_loop
	SQUARESSTORE
	VZEROUPPER
	RET

// SQUARES8X512 is SQUARES8 with the eight float64 lanes of one model in
// one register ACC: entry j of the step still goes to lane j, in the
// same operations and operand order, so the sums are squares256BF16's.
#define SQUARES8X512(ACC) \
	VSUBPS Y4, Y6, Y6; \
	VANDPS Y5, Y6, Y6; \
	VCVTPS2PD Y6, Z7; \
	VMULPD Z7, Z7, Z7; \
	VADDPD Z7, ACC, ACC

// func squares512BF16(l *[2][8]float64, base, x0, x1 *uint16, m *uint32, n int)
// squares256BF16 with each model's eight lanes in one AVX-512 register.
TEXT ·squares512BF16(SB), NOSPLIT, $0-48
	MOVQ l+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ m+32(FP), R10
	MOVQ n+40(FP), CX
	VMOVUPD (DI), Z0
	VMOVUPD 64(DI), Z1
	XORQ AX, AX
squares512bf_loop:
	VPMOVZXWD (SI)(AX*2), Y4
	VPSLLD $16, Y4, Y4            // base
	VMOVDQU (R10)(AX*4), Y5       // mask
	VPMOVZXWD (R8)(AX*2), Y6
	VPSLLD $16, Y6, Y6
	SQUARES8X512(Z0)
	VPMOVZXWD (R9)(AX*2), Y6
	VPSLLD $16, Y6, Y6
	SQUARES8X512(Z1)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT squares512bf_loop
	VMOVUPD Z0, (DI)
	VMOVUPD Z1, 64(DI)
	VZEROUPPER
	RET

// SQUARESK adds to ACC the squares of the eight deltas X - B (float32,
// Y registers) that mask K keeps, in float64 (in T, a Z register):
// squares512BF16's step, the zeroing conversion giving +0 where its AND
// does.
#define SQUARESK(B, X, T, K, ACC) \
	VSUBPS B, X, X; \
	VCVTPS2PD.Z X, K, T; \
	VMULPD T, T, T; \
	VADDPD T, ACC, ACC

// func sceWeigh512BF16(l *[2][8]float64, bits *uint64, base, x0, x1 *uint16, n int, bound uint32)
// sce's weights pass on a block that keeps the entries whose variance's
// magnitude bits are at least bound, sixteen entries a step (n a
// multiple of 16): each variance as sceVar512BF16 computes it, compared
// as keepAtLeast does; the mask stored as packMask packs it (sixteen bits
// a step); the kept task vectors' squares added to the lanes as
// squares512BF16 adds them (entries 0-7, then 8-15). The zeroing
// conversion gives +0 where squares512BF16's AND does.
TEXT ·sceWeigh512BF16(SB), NOSPLIT, $0-52
	MOVQ l+0(FP), DI
	MOVQ bits+8(FP), BX
	MOVQ base+16(FP), SI
	MOVQ x0+24(FP), R8
	MOVQ x1+32(FP), R9
	MOVQ n+40(FP), CX
	MOVL bound+48(FP), AX
	VPBROADCASTD AX, Z16          // bound
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z17          // magnitude bits
	MOVQ $0x3fe0000000000000, AX
	VPBROADCASTQ AX, Z15          // 0.5
	VMOVUPD (DI), Z0              // model 0's lanes
	VMOVUPD 64(DI), Z1            // model 1's
	XORQ AX, AX
sceWeigh512_loop:
	VPMOVZXWD (SI)(AX*2), Y4      // entries 0-7 as float32
	VPSLLD $16, Y4, Y4            // base
	VPMOVZXWD (R8)(AX*2), Y5
	VPSLLD $16, Y5, Y5
	VPMOVZXWD (R9)(AX*2), Y6
	VPSLLD $16, Y6, Y6
	VCVTPS2PD Y4, Z8
	VCVTPS2PD Y5, Z9
	VCVTPS2PD Y6, Z10
	SCEVAR8(Z8, Z9, Z10, Z11)     // variances to Z9
	VPMOVZXWD 16(SI)(AX*2), Y12   // entries 8-15
	VPSLLD $16, Y12, Y12
	VPMOVZXWD 16(R8)(AX*2), Y13
	VPSLLD $16, Y13, Y13
	VPMOVZXWD 16(R9)(AX*2), Y14
	VPSLLD $16, Y14, Y14
	VCVTPS2PD Y12, Z18
	VCVTPS2PD Y13, Z19
	VCVTPS2PD Y14, Z20
	SCEVAR8(Z18, Z19, Z20, Z21)   // to Z19
	VCVTPD2PS Z9, Y9
	VCVTPD2PS Z19, Y19
	VINSERTF32X8 $1, Y19, Z9, Z9  // the sixteen variances
	VPANDD Z17, Z9, Z9
	VPCMPUD $5, Z16, Z9, K1       // kept: bits >= bound
	KMOVW K1, (BX)
	KSHIFTRW $8, K1, K2
	SQUARESK(Y4, Y5, Z5, K1, Z0)  // x0 - base, entries 0-7
	SQUARESK(Y4, Y6, Z6, K1, Z1)
	SQUARESK(Y12, Y13, Z13, K2, Z0) // entries 8-15
	SQUARESK(Y12, Y14, Z14, K2, Z1)
	ADDQ $2, BX
	ADDQ $16, AX
	CMPQ AX, CX
	JLT sceWeigh512_loop
	VMOVUPD Z0, (DI)
	VMOVUPD Z1, 64(DI)
	VZEROUPPER
	RET

// func keepTies256(m *uint32, d *float32, n int, th uint32, q int) (j, left int)
// keepMask's ties for AVX2, eight entries at a time (n a multiple of 8)
// while the quota q is at least eight: the entries whose magnitude bits
// equal th are set in m and counted off q; returns where it stopped and
// the quota left.
TEXT ·keepTies256(SB), NOSPLIT, $0-56
	MOVQ m+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL th+24(FP), AX
	MOVQ q+32(FP), DX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VPCMPEQD Y14, Y14, Y14
	VPSRLD $1, Y14, Y14           // abs mask
	XORQ AX, AX
	CMPQ DX, $8
	JLT keepTies256_done
	CMPQ AX, CX
	JGE keepTies256_done
keepTies256_loop:
	VPAND (SI)(AX*4), Y14, Y0
	VPCMPEQD Y15, Y0, Y0
	VMOVMSKPS Y0, R9
	TESTL R9, R9
	JZ keepTies256_next
	VPOR (DI)(AX*4), Y0, Y0
	VMOVDQU Y0, (DI)(AX*4)
	POPCNTL R9, R9
	SUBQ R9, DX
keepTies256_next:
	ADDQ $8, AX
	CMPQ DX, $8
	JLT keepTies256_done
	CMPQ AX, CX
	JLT keepTies256_loop
keepTies256_done:
	MOVQ AX, j+40(FP)
	MOVQ DX, left+48(FP)
	VZEROUPPER
	RET

// BAND2 is sumCore256's drop-2 step for one model in bandSum2x256BF16:
// the delta in Y2 kept where lo <= its magnitude bits < hi (biased bounds
// in LO and HI), then scaled by the model's sc at SC.
#define BAND2(LO, HI, SC) \
	VPAND Y14, Y2, Y3; \
	VPXOR Y13, Y3, Y3; \
	VPCMPGTD Y3, LO, Y4; \
	VPCMPGTD Y3, HI, Y9; \
	VPANDN Y9, Y4, Y4; \
	VPAND Y4, Y2, Y2; \
	VBROADCASTSS SC, Y3; \
	VMULPS Y3, Y2, Y2

// AGREE2 is sumCore256's agreement step for one model's delta D with the
// elected sign in Y1: D where d*e is positive and finite, added to a (Y10),
// and the model's weight at W added to v (Y11) there.
#define AGREE2(D, W) \
	VMULPS Y1, D, Y3; \
	VPSUBD Y15, Y3, Y3; \
	VPXOR Y13, Y3, Y3; \
	VPCMPGTD Y3, Y12, Y3; \
	VPAND Y3, D, Y4; \
	VADDPS Y4, Y10, Y10; \
	VBROADCASTSS W, Y4; \
	VPAND Y3, Y4, Y4; \
	VADDPS Y4, Y11, Y11

// func bandSum2x256BF16(dst, base unsafe.Pointer, x0, x1 *uint16, n int, p *sumParams)
// sumCore256 for two bfloat16 models in drop mode 2 (TIES' band sum),
// the base float32, or bfloat16 when p.bf16 has pBaseBF16 (a predictable branch),
// 8 entries at a time, the models widened as they are loaded, with the
// same operations in the same order (and operand order, which decides
// which NaN comes out): the deltas x - base kept in their bands and
// scaled, e = (0 + d0) + d1 (+1 where e is ±0), a and v summed from zero
// over the agreeing models, a/v where |v| > eps when p.norm is set, and
// base + lam*a. No scratch: both deltas stay in registers.
TEXT ·bandSum2x256BF16(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ p+40(FP), R10
	MOVL $0x7fffffff, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14         // abs mask
	VPCMPEQD Y13, Y13, Y13
	VPSLLD $31, Y13, Y13          // bias 0x80000000
	MOVL $0xff7fffff, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12         // 0x7f7fffff, biased
	VPSRLD $31, Y13, Y15          // integer 1
	VPBROADCASTD 336(R10), Y5     // model 0's band, biased
	VPXOR Y13, Y5, Y5
	VPBROADCASTD 400(R10), Y6
	VPXOR Y13, Y6, Y6
	VPBROADCASTD 340(R10), Y7     // model 1's
	VPXOR Y13, Y7, Y7
	VPBROADCASTD 404(R10), Y8
	VPXOR Y13, Y8, Y8
	MOVL 260(R10), BX             // normalize?
	MOVQ 760(R10), R11            // p.bf16: the base is bfloat16 too
	XORQ AX, AX
band2_loop:
	TESTQ $2, R11                 // pBaseBF16
	JNZ band2_bf16base
	VMOVUPS (SI)(AX*4), Y0        // base
	JMP band2_base
band2_bf16base:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
band2_base:
	VPMOVZXWD (R8)(AX*2), Y2
	VPSLLD $16, Y2, Y2
	VSUBPS Y0, Y2, Y2
	BAND2(Y7, Y8, 4(R10))
	VMOVAPS Y2, Y11               // d1
	VPMOVZXWD (DX)(AX*2), Y2
	VPSLLD $16, Y2, Y2
	VSUBPS Y0, Y2, Y2
	BAND2(Y5, Y6, (R10))          // d0
	VXORPS Y1, Y1, Y1
	VADDPS Y2, Y1, Y1
	VADDPS Y11, Y1, Y1            // e = (0 + d0) + d1
	VMOVAPS Y11, Y9               // d1, kept while Y11 sums v
	VPAND Y14, Y1, Y3             // e == ±0: a tie elects +
	VPXOR Y4, Y4, Y4
	VPCMPEQD Y4, Y3, Y3
	MOVL $0x3f800000, R9
	VMOVD R9, X4
	VPBROADCASTD X4, Y4
	VPAND Y4, Y3, Y3
	VADDPS Y3, Y1, Y1
	VXORPS Y10, Y10, Y10          // a
	VXORPS Y11, Y11, Y11          // v
	AGREE2(Y2, 192(R10))
	AGREE2(Y9, 196(R10))
	TESTL BX, BX
	JZ band2_out
	VANDPS Y14, Y11, Y3
	VBROADCASTSS 264(R10), Y4     // eps
	VCMPPS $0x1e, Y4, Y3, Y3      // |v| > eps (false for NaN)
	VDIVPS Y11, Y10, Y4
	VBLENDVPS Y3, Y4, Y10, Y10
band2_out:
	VBROADCASTSS 256(R10), Y4     // lam
	VMULPS Y4, Y10, Y10
	VADDPS Y0, Y10, Y10           // base + lam*a
	VMOVUPS Y10, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT band2_loop
	VZEROUPPER
	RET

// BAND2X512 is sumCore512's drop-2 step for one model in
// bandSum2x512BF16: the model's bfloat16 entries at X widened into D,
// the delta D - base (Z0) kept where lo <= its magnitude bits < hi (LO,
// HI) and zeroed elsewhere, then scaled by SC.
#define BAND2X512(X, D, LO, HI, SC) \
	VPMOVZXWD X, D; \
	VPSLLD $16, D, D; \
	VSUBPS Z0, D, D; \
	VPANDD Z30, D, Z4; \
	VPCMPUD $5, LO, Z4, K1; \
	VPCMPUD $1, HI, Z4, K1, K1; \
	VMOVAPS.Z D, K1, D; \
	VMULPS SC, D, D

// AGREE2X512 is sumCore512's agreement step for one model's delta D with
// the elected sign in Z1: D added to a (Z6), and the weight W to v (Z7),
// where d*e is positive and finite.
#define AGREE2X512(D, W) \
	VMULPS Z1, D, Z4; \
	VPSUBD Z28, Z4, Z4; \
	VPCMPUD $1, Z29, Z4, K1; \
	VADDPS D, Z6, K1, Z6; \
	VADDPS W, Z7, K1, Z7

// func bandSum2x512BF16(dst, base unsafe.Pointer, x0, x1 *uint16, n int, p *sumParams)
// bandSum2x256BF16 16 entries at a time: sumCore512's operations for two
// bfloat16 models in drop mode 2, in its order and operand order, the
// comparisons in mask registers; the base float32, or bfloat16 when
// p.bf16 has pBaseBF16.
TEXT ·bandSum2x512BF16(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ p+40(FP), R10
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z31          // 1.0
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30          // abs mask
	MOVL $0x7f7fffff, AX
	VPBROADCASTD AX, Z29          // largest finite float's bits
	MOVL $1, AX
	VPBROADCASTD AX, Z28          // integer 1
	VBROADCASTSS 264(R10), Z24    // eps
	VBROADCASTSS 256(R10), Z23    // lam
	VPBROADCASTD 336(R10), Z22    // model 0's band
	VPBROADCASTD 400(R10), Z21
	VPBROADCASTD 340(R10), Z20    // model 1's
	VPBROADCASTD 404(R10), Z19
	VBROADCASTSS (R10), Z18       // the models' scales
	VBROADCASTSS 4(R10), Z17
	VBROADCASTSS 192(R10), Z16    // and weights
	VBROADCASTSS 196(R10), Z15
	MOVL 260(R10), BX             // normalize?
	MOVQ 760(R10), R11            // p.bf16: the base is bfloat16 too
	XORQ AX, AX
band2x512_loop:
	TESTQ $2, R11                 // pBaseBF16
	JNZ band2x512_bf16base
	VMOVUPS (SI)(AX*4), Z0        // base
	JMP band2x512_base
band2x512_bf16base:
	VPMOVZXWD (SI)(AX*2), Z0
	VPSLLD $16, Z0, Z0
band2x512_base:
	BAND2X512((DX)(AX*2), Z2, Z22, Z21, Z18)
	BAND2X512((R8)(AX*2), Z3, Z20, Z19, Z17)
	VXORPS Z1, Z1, Z1
	VADDPS Z2, Z1, Z1
	VADDPS Z3, Z1, Z1             // e = (0 + d0) + d1
	VPTESTNMD Z30, Z1, K1         // e == ±0: a tie elects +
	VADDPS Z31, Z1, K1, Z1
	VXORPS Z6, Z6, Z6             // a
	VXORPS Z7, Z7, Z7             // v
	AGREE2X512(Z2, Z16)
	AGREE2X512(Z3, Z15)
	TESTL BX, BX
	JZ band2x512_out
	VANDPS Z30, Z7, Z4
	VCMPPS $0x1e, Z24, Z4, K1     // |v| > eps (false for NaN)
	VDIVPS Z7, Z6, K1, Z6
band2x512_out:
	VMULPS Z23, Z6, Z6
	VADDPS Z0, Z6, Z6             // base + lam*a
	VMOVUPS Z6, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT band2x512_loop
	VZEROUPPER
	RET

// PACK8 ors the sign bits of the eight masks at OFF(SI)(AX*4), shifted
// left by SH, into R8.
#define PACK8(OFF, SH) \
	VMOVUPS OFF(SI)(AX*4), Y0; \
	VMOVMSKPS Y0, R9; \
	SHLQ $SH, R9; \
	ORQ R9, R8

// func packMask256(bits *uint64, m *uint32, n int)
// packMask for AVX2, 64 entries (a word) at a time, n a multiple of 64:
// the sign bits of eight masks at a time (VMOVMSKPS) shifted into place.
TEXT ·packMask256(SB), NOSPLIT, $0-24
	MOVQ bits+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
packMask256_loop:
	VMOVUPS (SI)(AX*4), Y0
	VMOVMSKPS Y0, R8
	PACK8(32, 8)
	PACK8(64, 16)
	PACK8(96, 24)
	PACK8(128, 32)
	PACK8(160, 40)
	PACK8(192, 48)
	PACK8(224, 56)
	MOVQ R8, (DI)
	ADDQ $8, DI
	ADDQ $64, AX
	CMPQ AX, CX
	JLT packMask256_loop
	VZEROUPPER
	RET

// func sceOut256BF16Bits(dst *float32, base, x0, x1 *uint16, bits *uint64, n int, w *[3]float64, nib *[16][4]uint32)
// sceOut256BF16 with the mask as bits (packMask's), four at a time made
// lane masks by the table nib.
TEXT ·sceOut256BF16Bits(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ base+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ bits+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ w+48(FP), R11
	MOVQ nib+56(FP), R13
	SCEOUTSETUP
sceoutbits_loop:
	TESTQ $63, AX
	JNZ sceoutbits_nibble
	MOVQ AX, R12
	SHRQ $6, R12
	MOVQ (R10)(R12*8), R12        // the next 64 entries' bits
sceoutbits_nibble:
	MOVQ R12, R11
	ANDQ $15, R11
	SHLQ $4, R11
	VMOVDQU (R13)(R11*1), X3      // mask
	SHRQ $4, R12
	SCEOUT4BF16
	ADDQ $4, AX
	CMPQ AX, CX
	JLT sceoutbits_loop
	VZEROUPPER
	RET

// func digits512(dg *uint16, a *uint64, n int, lo16 uint32)
// dg[j] = max(a[j]>>48 - lo16, 0) (rankSort's top digit) for j < n, a
// multiple of 16: the upper 16 bits of sixteen entries narrowed to words,
// less lo16 with unsigned saturation.
TEXT ·digits512(SB), NOSPLIT, $0-28
	MOVQ dg+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL lo16+24(FP), AX
	VMOVD AX, X2
	VPBROADCASTW X2, Y2           // lo16 in every word
	XORQ AX, AX
digits_loop:
	VPSRLQ $48, (SI)(AX*8), Z0
	VPSRLQ $48, 64(SI)(AX*8), Z1
	VPMOVQW Z0, X0
	VPMOVQW Z1, X1
	VINSERTI128 $1, X1, Y0, Y0
	VPSUBUSW Y2, Y0, Y0
	VMOVDQU Y0, (DI)(AX*2)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT digits_loop
	VZEROUPPER
	RET

// func digits256(dg *uint16, a *uint64, n int, lo16 uint32, perm *[8]uint32)
// digits512 for AVX2: the upper 16 bits of sixteen entries (four vectors
// of four) packed to words by three VPACKUSDW (no value saturates: keys
// have no sign bit), whose lane order perm's VPERMD restores.
TEXT ·digits256(SB), NOSPLIT, $0-40
	MOVQ dg+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL lo16+24(FP), AX
	MOVQ perm+32(FP), DX
	VMOVD AX, X4
	VPBROADCASTW X4, Y4           // lo16 in every word
	VMOVDQU (DX), Y5              // dword order 0, 4, 1, 5, 2, 6, 3, 7
	XORQ AX, AX
digits256_loop:
	VPSRLQ $48, (SI)(AX*8), Y0    // entries 0-3
	VPSRLQ $48, 32(SI)(AX*8), Y1  // 4-7
	VPSRLQ $48, 64(SI)(AX*8), Y2  // 8-11
	VPSRLQ $48, 96(SI)(AX*8), Y3  // 12-15
	VPACKUSDW Y1, Y0, Y0          // per lane: 0, 1, 4, 5 | 2, 3, 6, 7, as dwords
	VPACKUSDW Y3, Y2, Y2          // 8, 9, 12, 13 | 10, 11, 14, 15
	VPACKUSDW Y2, Y0, Y0          // words 0 1 4 5 8 9 12 13 | 2 3 6 7 10 11 14 15
	VPERMD Y0, Y5, Y0             // in order
	VPSUBUSW Y4, Y0, Y0
	VMOVDQU Y0, (DI)(AX*2)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT digits256_loop
	VZEROUPPER
	RET

// func gram2x256(x, y, b *float32, n int, s *[12]float64)
// dot256's loop for the three pairs of two vectors at once, x.x, x.y and
// y.y (less b when b is not nil), each in its own accumulator of four
// partial sums (s[0:4], s[4:8], s[8:12]) with dot256's operations in its
// order: three chains of additions in flight where dot256, called per
// pair, had one. n is a multiple of 4.
TEXT ·gram2x256(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DX
	MOVQ b+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ s+32(FP), DI
	VXORPD Y0, Y0, Y0             // x.x
	VXORPD Y4, Y4, Y4             // x.y
	VXORPD Y5, Y5, Y5             // y.y
	XORQ AX, AX
	TESTQ R8, R8
	JNE gram2_delta
gram2_loop:
	VCVTPS2PD (SI)(AX*4), Y1
	VCVTPS2PD (DX)(AX*4), Y2
	VMULPD Y1, Y1, Y6
	VMULPD Y2, Y1, Y7
	VMULPD Y2, Y2, Y8
	VADDPD Y6, Y0, Y0
	VADDPD Y7, Y4, Y4
	VADDPD Y8, Y5, Y5
	ADDQ $4, AX
	CMPQ AX, CX
	JLT gram2_loop
	JMP gram2_done
gram2_delta:
	VCVTPS2PD (R8)(AX*4), Y3
	VCVTPS2PD (SI)(AX*4), Y1
	VCVTPS2PD (DX)(AX*4), Y2
	VSUBPD Y3, Y1, Y1
	VSUBPD Y3, Y2, Y2
	VMULPD Y1, Y1, Y6
	VMULPD Y2, Y1, Y7
	VMULPD Y2, Y2, Y8
	VADDPD Y6, Y0, Y0
	VADDPD Y7, Y4, Y4
	VADDPD Y8, Y5, Y5
	ADDQ $4, AX
	CMPQ AX, CX
	JLT gram2_delta
gram2_done:
	VMOVUPD Y0, (DI)
	VMOVUPD Y4, 32(DI)
	VMOVUPD Y5, 64(DI)
	VZEROUPPER
	RET

// func exp512(dst *float64, x *float32, m float64, n int, c *[14]float64) (done int)
// dst[j] = math.Exp(float64(x[j]) - m) for j < n (a multiple of 8), eight
// at a time, by the operations of the standard library's amd64 Exp on
// machines with FMA (archExp's avxfma path), in its order, so the bits are
// its. It stops before a group of eight with a lane that path does not
// finish (not finite, above Overflow, or a result outside the normal
// exponents: Exp's denormal and overflow steps) and returns how many
// entries it did. c: LOG2E, LN2U, LN2L, 1/16, the eight Taylor
// coefficients from 2.48e-5 down to 0.5, 1, 2, Overflow.
TEXT ·exp512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSD m+16(FP), Z31
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), R9
	VBROADCASTSD 0(R9), Z30       // LOG2E
	VBROADCASTSD 8(R9), Z29       // LN2U
	VBROADCASTSD 16(R9), Z28      // LN2L
	VBROADCASTSD 24(R9), Z27      // 1/16
	VBROADCASTSD 32(R9), Z26      // 2.48e-5 (c64)
	VBROADCASTSD 40(R9), Z25      // c56
	VBROADCASTSD 48(R9), Z24      // c48
	VBROADCASTSD 56(R9), Z23      // c40
	VBROADCASTSD 64(R9), Z22      // c32
	VBROADCASTSD 72(R9), Z21      // c24
	VBROADCASTSD 80(R9), Z20      // 0.5
	VBROADCASTSD 88(R9), Z19      // 1
	VBROADCASTSD 96(R9), Z18      // 2
	VBROADCASTSD 104(R9), Z17     // Overflow
	MOVL $0x3FF, AX
	VPBROADCASTD AX, Y16          // the exponent's bias
	MOVL $0x7FF, AX
	VPBROADCASTD AX, Y15
	VPXORD Y14, Y14, Y14
	XORQ AX, AX
exp512_loop:
	CMPQ AX, CX
	JGE exp512_done
	VCVTPS2PD (SI)(AX*4), Z0
	VSUBPD Z31, Z0, Z0            // x
	VCMPPD $2, Z17, Z0, K1        // x <= Overflow (false for NaN)
	VMULPD Z30, Z0, Z1            // LOG2E*x
	VCVTPD2DQ Z1, Y2              // the exponent, rounded to nearest
	VCVTDQ2PD Y2, Z1
	VFNMADD231PD Z29, Z1, Z0      // x - k*LN2U
	VFNMADD231PD Z28, Z1, Z0      // - k*LN2L
	VMULPD Z27, Z0, Z0            // reduce the argument
	VMOVAPD Z26, Z3
	VFMADD213PD Z25, Z0, Z3
	VFMADD213PD Z24, Z0, Z3
	VFMADD213PD Z23, Z0, Z3
	VFMADD213PD Z22, Z0, Z3
	VFMADD213PD Z21, Z0, Z3
	VFMADD213PD Z20, Z0, Z3
	VFMADD213PD Z19, Z0, Z3
	VMULPD Z3, Z0, Z0
	VADDPD Z18, Z0, Z3
	VMULPD Z3, Z0, Z0
	VADDPD Z18, Z0, Z3
	VMULPD Z3, Z0, Z0
	VADDPD Z18, Z0, Z3
	VMULPD Z3, Z0, Z0
	VADDPD Z18, Z0, Z3
	VFMADD213PD Z19, Z3, Z0
	VPADDD Y16, Y2, Y2            // biased exponent: 1 to 0x7FE, or Exp's other steps
	VPCMPD $6, Y14, Y2, K1, K2    // > 0
	VPCMPD $1, Y15, Y2, K2, K3    // < 0x7FF
	KORTESTB K3, K3
	JCC exp512_done               // a lane Exp finishes otherwise
	VPMOVZXDQ Y2, Z4
	VPSLLQ $52, Z4, Z4
	VMULPD Z4, Z0, Z0
	VMOVUPD Z0, (DI)(AX*8)
	ADDQ $8, AX
	JMP exp512_loop
exp512_done:
	MOVQ AX, done+40(FP)
	VZEROUPPER
	RET

// func klTerms512(t, u, v *float64, sx, sb float64, n int, c *[16]float64) (done int)
// t[j] = p*math.Log(p/q) with p = u[j]/sx + 1e-8 and q = v[j]/sb + 1e-8,
// for j < n (a multiple of 8), eight at a time; the logarithm by the
// operations of the standard library's amd64 Log (archLog), in its order.
// It stops before a group of eight with a lane whose p/q is not a positive
// normal number (Log's other cases) and returns how many entries it did.
// c: 1e-8, 1, 2, 0.5, HSqrt2, Ln2Hi, Ln2Lo, L1-L7, then the mantissa mask
// and the exponent of 0.5 as bits.
TEXT ·klTerms512(SB), NOSPLIT, $0-64
	MOVQ t+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ v+16(FP), DX
	VBROADCASTSD sx+24(FP), Z31
	VBROADCASTSD sb+32(FP), Z30
	MOVQ n+40(FP), CX
	MOVQ c+48(FP), R9
	VBROADCASTSD 0(R9), Z29       // 1e-8
	VBROADCASTSD 8(R9), Z28       // 1
	VBROADCASTSD 16(R9), Z27      // 2
	VBROADCASTSD 24(R9), Z26      // 0.5
	VBROADCASTSD 32(R9), Z25      // HSqrt2
	VBROADCASTSD 40(R9), Z24      // Ln2Hi
	VBROADCASTSD 48(R9), Z23      // Ln2Lo
	VBROADCASTSD 56(R9), Z22      // L1
	VBROADCASTSD 64(R9), Z21      // L2
	VBROADCASTSD 72(R9), Z20      // L3
	VBROADCASTSD 80(R9), Z19      // L4
	VBROADCASTSD 88(R9), Z18      // L5
	VBROADCASTSD 96(R9), Z17      // L6
	VBROADCASTSD 104(R9), Z16     // L7
	VPBROADCASTQ 112(R9), Z15     // mantissa mask
	VPBROADCASTQ 120(R9), Z14     // 0.5's exponent
	MOVQ $0x3FE, AX
	VPBROADCASTQ AX, Z13
	MOVQ $0x7FF, AX
	VPBROADCASTQ AX, Z12
	VPXORQ Z11, Z11, Z11
	XORQ AX, AX
kl512_loop:
	CMPQ AX, CX
	JGE kl512_done
	VMOVUPD (SI)(AX*8), Z0
	VDIVPD Z31, Z0, Z0
	VADDPD Z29, Z0, Z0            // p
	VMOVUPD (DX)(AX*8), Z1
	VDIVPD Z30, Z1, Z1
	VADDPD Z29, Z1, Z1            // q
	VDIVPD Z1, Z0, Z2             // x = p/q
	VPSRLQ $52, Z2, Z3            // sign and exponent
	VPCMPQ $6, Z11, Z3, K1        // > 0: not zero or subnormal
	VPCMPQ $1, Z12, Z3, K1, K2    // < 0x7FF: finite and positive
	KORTESTB K2, K2
	JCC kl512_done
	VPSUBQ Z13, Z3, Z3
	VCVTQQ2PD Z3, Z3              // k
	VPANDQ Z15, Z2, Z4
	VPORQ Z14, Z4, Z4             // f1, in [0.5, 1)
	VCMPPD $5, Z4, Z25, K3        // !(HSqrt2 < f1)
	VMOVAPD.Z Z28, K3, Z5         // 1 or 0
	VSUBPD Z5, Z3, Z3             // k -= 1
	VADDPD Z28, Z5, Z5
	VMULPD Z5, Z4, Z4             // f1 *= 2
	VSUBPD Z28, Z4, Z4            // f
	VADDPD Z27, Z4, Z5            // 2 + f
	VDIVPD Z5, Z4, Z5             // s
	VMULPD Z5, Z5, Z6             // s2
	VMULPD Z6, Z6, Z7             // s4
	VMULPD Z7, Z16, Z8            // t1 := s2*(L1+s4*(L3+s4*(L5+s4*L7)))
	VADDPD Z18, Z8, Z8
	VMULPD Z7, Z8, Z8
	VADDPD Z20, Z8, Z8
	VMULPD Z7, Z8, Z8
	VADDPD Z22, Z8, Z8
	VMULPD Z8, Z6, Z6
	VMULPD Z7, Z17, Z8            // t2 := s4*(L2+s4*(L4+s4*L6))
	VADDPD Z19, Z8, Z8
	VMULPD Z7, Z8, Z8
	VADDPD Z21, Z8, Z8
	VMULPD Z8, Z7, Z7
	VADDPD Z7, Z6, Z6             // R
	VMULPD Z4, Z26, Z9
	VMULPD Z4, Z9, Z9             // hfsq
	VADDPD Z9, Z6, Z6             // hfsq + R
	VMULPD Z6, Z5, Z5             // s*(hfsq+R)
	VMULPD Z3, Z23, Z6            // k*Ln2Lo
	VADDPD Z6, Z5, Z5
	VSUBPD Z5, Z9, Z9             // hfsq - (...)
	VSUBPD Z4, Z9, Z9             // - f
	VMULPD Z24, Z3, Z3            // k*Ln2Hi
	VSUBPD Z9, Z3, Z3             // log(x)
	VMULPD Z3, Z0, Z0             // p*log(p/q)
	VMOVUPD Z0, (DI)(AX*8)
	ADDQ $8, AX
	JMP kl512_loop
kl512_done:
	MOVQ AX, done+56(FP)
	VZEROUPPER
	RET

// func maxKey512(x *float32, n int) (key uint32, nan bool)
// The largest orderKey of x[:n] (n a multiple of 16, at least 16): the
// keys order as the values do, -0 below +0, so their maximum is Go's max
// of the values; nan reports a NaN among them, whose max depends on the
// order (rowMax takes such a row again in order).
TEXT ·maxKey512(SB), NOSPLIT, $0-21
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z3           // the sign bit
	VPXORD Z2, Z2, Z2             // the largest key
	KXORW K2, K2, K2              // NaNs
	XORQ AX, AX
maxkey512_loop:
	VMOVDQU32 (SI)(AX*4), Z0
	VCMPPS $3, Z0, Z0, K1         // unordered: a NaN
	KORW K1, K2, K2
	VPSRAD $31, Z0, Z1
	VPORD Z3, Z1, Z1
	VPXORD Z0, Z1, Z1             // ^b when negative, else b with its sign bit
	VPMAXUD Z1, Z2, Z2
	ADDQ $16, AX
	CMPQ AX, CX
	JLT maxkey512_loop
	VEXTRACTI32X8 $1, Z2, Y1
	VPMAXUD Y1, Y2, Y2
	VEXTRACTI128 $1, Y2, X1
	VPMAXUD X1, X2, X2
	VPSHUFD $0x4e, X2, X1
	VPMAXUD X1, X2, X2
	VPSHUFD $0xb1, X2, X1
	VPMAXUD X1, X2, X2
	VMOVD X2, AX
	MOVL AX, key+16(FP)
	KMOVW K2, AX
	TESTL AX, AX
	SETNE nan+20(FP)
	VZEROUPPER
	RET

// IMPKEY512 sets Z1 to the order keys of the importances |x - b| * kl of
// the sixteen entries at AX (b at SI, x at DX; kl in Z4, the abs mask in
// Z5, the sign bit in Z3), as fusion.importance and orderKey compute them.
#define IMPKEY512 \
	VMOVUPS (DX)(AX*4), Z0; \
	VSUBPS (SI)(AX*4), Z0, Z0; \
	VPANDD Z5, Z0, Z0; \
	VMULPS Z4, Z0, Z0; \
	VPSRAD $31, Z0, Z1; \
	VPORD Z3, Z1, Z1; \
	VPXORD Z0, Z1, Z1

// IMPCONSTS512 loads IMPKEY512's constants but kl.
#define IMPCONSTS512 \
	MOVL $0x7fffffff, AX; \
	VPBROADCASTD AX, Z5; \
	MOVL $0x80000000, AX; \
	VPBROADCASTD AX, Z3

// func impTop512(dst *uint16, b, x *float32, n int, kl float32)
// dst[j] = the upper 16 bits of the importance's order key, for j < n (a
// multiple of 16, at least 16).
TEXT ·impTop512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS kl+32(FP), Z4
	IMPCONSTS512
	XORQ AX, AX
imptop512_loop:
	IMPKEY512
	VPSRLD $16, Z1, Z1
	VPMOVDW Z1, (DI)(AX*2)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT imptop512_loop
	VZEROUPPER
	RET

// func impHits512(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32) (c int)
// Stores to dst, in order, the order keys of the importances (j < n, a
// multiple of 16, at least 16) whose upper 16 bits are one of bins, and
// returns their count; each store writes 16 entries, so dst needs 15
// spare. Few entries hit, so a group of sixteen without one stores
// nothing.
TEXT ·impHits512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ bins+40(FP), R8
	VPBROADCASTD 0(R8), Z6
	VPBROADCASTD 4(R8), Z7
	VPBROADCASTD 8(R8), Z8
	VPBROADCASTD 12(R8), Z9
	VBROADCASTSS kl+32(FP), Z4
	IMPCONSTS512
	XORQ AX, AX
	XORQ R8, R8                   // c
imphits512_loop:
	IMPKEY512
	VPSRLD $16, Z1, Z2
	VPCMPEQD Z6, Z2, K1
	VPCMPEQD Z7, Z2, K2
	KORW K1, K2, K1
	VPCMPEQD Z8, Z2, K2
	KORW K1, K2, K1
	VPCMPEQD Z9, Z2, K2
	KORTESTW K1, K2
	JZ imphits512_next
	KORW K1, K2, K1
	VPCOMPRESSD Z1, K1, Z2
	VMOVDQU32 Z2, (DI)(R8*4)
	KMOVW K1, R9
	POPCNTL R9, R9
	ADDQ R9, R8
imphits512_next:
	ADDQ $16, AX
	CMPQ AX, CX
	JLT imphits512_loop
	MOVQ R8, c+48(FP)
	VZEROUPPER
	RET

// func fusionApply512(dst, b, x *float32, n int, kl, th float32)
// dst[j] = b + (x - b)*mask for j < n (a multiple of 16, at least 16),
// mask 1 where the importance is at least th (ordered: not for a NaN),
// else 0, in fusion.apply's operations.
TEXT ·fusionApply512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS kl+32(FP), Z4
	VBROADCASTSS th+36(FP), Z6
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z5
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z7           // 1.0
	XORQ AX, AX
fapply512_loop:
	VMOVUPS (SI)(AX*4), Z0        // b
	VMOVUPS (DX)(AX*4), Z1
	VSUBPS Z0, Z1, Z1             // d = x - b
	VPANDD Z5, Z1, Z2
	VMULPS Z4, Z2, Z2             // |d| * kl
	VCMPPS $0x1d, Z6, Z2, K1      // >= th, ordered
	VMOVAPS.Z Z7, K1, Z2          // the mask: 1 or 0
	VMULPS Z2, Z1, Z1
	VADDPS Z1, Z0, Z0             // b + d*mask
	VMOVUPS Z0, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT fapply512_loop
	VZEROUPPER
	RET

// func exp256(dst *float64, x *float32, m float64, n int, c *[14][4]float64) (done int)
// exp512 for AVX2 and FMA, four at a time (n a multiple of 4): the same
// operations in the same order, the constants c (exp512's, each four
// times) read from memory, and the lanes' checks as vector masks.
TEXT ·exp256(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSD m+16(FP), Y15
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), R9
	MOVL $0x3FF, AX
	VMOVD AX, X14
	VPBROADCASTD X14, X14         // the exponent's bias
	MOVL $0x7FF, AX
	VMOVD AX, X12
	VPBROADCASTD X12, X12
	VPXOR X13, X13, X13
	XORQ AX, AX
exp256_loop:
	CMPQ AX, CX
	JGE exp256_done
	VCVTPS2PD (SI)(AX*4), Y0
	VSUBPD Y15, Y0, Y0            // x
	VCMPPD $2, 416(R9), Y0, Y5    // x <= Overflow (false for NaN)
	VMULPD 0(R9), Y0, Y1          // LOG2E*x
	VCVTPD2DQY Y1, X2             // the exponent, rounded to nearest
	VCVTDQ2PD X2, Y1
	VFNMADD231PD 32(R9), Y1, Y0   // x - k*LN2U
	VFNMADD231PD 64(R9), Y1, Y0   // - k*LN2L
	VMULPD 96(R9), Y0, Y0         // reduce the argument
	VMOVUPD 128(R9), Y3
	VFMADD213PD 160(R9), Y0, Y3
	VFMADD213PD 192(R9), Y0, Y3
	VFMADD213PD 224(R9), Y0, Y3
	VFMADD213PD 256(R9), Y0, Y3
	VFMADD213PD 288(R9), Y0, Y3
	VFMADD213PD 320(R9), Y0, Y3
	VFMADD213PD 352(R9), Y0, Y3
	VMULPD Y3, Y0, Y0
	VADDPD 384(R9), Y0, Y3
	VMULPD Y3, Y0, Y0
	VADDPD 384(R9), Y0, Y3
	VMULPD Y3, Y0, Y0
	VADDPD 384(R9), Y0, Y3
	VMULPD Y3, Y0, Y0
	VADDPD 384(R9), Y0, Y3
	VFMADD213PD 352(R9), Y3, Y0
	VPADDD X14, X2, X2            // biased exponent: 1 to 0x7FE, or Exp's other steps
	VPCMPGTD X13, X2, X6          // > 0
	VPCMPGTD X2, X12, X7          // < 0x7FF
	VPAND X7, X6, X6
	VMOVMSKPD Y5, R10
	VMOVMSKPS X6, R11
	ANDL R11, R10
	CMPL R10, $15
	JNE exp256_done               // a lane Exp finishes otherwise
	VPMOVZXDQ X2, Y4
	VPSLLQ $52, Y4, Y4
	VMULPD Y4, Y0, Y0
	VMOVUPD Y0, (DI)(AX*8)
	ADDQ $4, AX
	JMP exp256_loop
exp256_done:
	MOVQ AX, done+40(FP)
	VZEROUPPER
	RET

// func klTerms256(t, u, v *float64, sx, sb float64, n int, c *[16][4]float64) (done int)
// klTerms512 for AVX2 and FMA, four at a time (n a multiple of 4): the
// same operations in the same order, the constants c (klTerms512's, each
// four times) read from memory, the exponent k converted by adding it to
// 1.5*2^52's bits and subtracting 1.5*2^52 (exact for |k| < 2^51, as
// VCVTQQ2PD is), and the lanes' checks as vector masks.
TEXT ·klTerms256(SB), NOSPLIT, $0-64
	MOVQ t+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ v+16(FP), DX
	VBROADCASTSD sx+24(FP), Y15
	VBROADCASTSD sb+32(FP), Y14
	MOVQ n+40(FP), CX
	MOVQ c+48(FP), R9
	VPXOR Y13, Y13, Y13
	MOVQ $0x7FF, AX
	VMOVQ AX, X12
	VPBROADCASTQ X12, Y12
	MOVQ $0x4338000000000000, AX  // 1.5*2^52
	VMOVQ AX, X11
	VPBROADCASTQ X11, Y11
	MOVQ $0x3FE, AX
	VMOVQ AX, X10
	VPBROADCASTQ X10, Y10
	VPSUBQ Y10, Y11, Y10          // 1.5*2^52's bits - 0x3FE
	XORQ AX, AX
kl256_loop:
	CMPQ AX, CX
	JGE kl256_done
	VMOVUPD (SI)(AX*8), Y0
	VDIVPD Y15, Y0, Y0
	VADDPD 0(R9), Y0, Y0          // p
	VMOVUPD (DX)(AX*8), Y1
	VDIVPD Y14, Y1, Y1
	VADDPD 0(R9), Y1, Y1          // q
	VDIVPD Y1, Y0, Y2             // x = p/q
	VPSRLQ $52, Y2, Y3            // sign and exponent
	VPCMPGTQ Y13, Y3, Y4          // > 0: not zero or subnormal
	VPCMPGTQ Y3, Y12, Y5          // < 0x7FF: finite and positive
	VPAND Y5, Y4, Y4
	VMOVMSKPD Y4, R10
	CMPL R10, $15
	JNE kl256_done
	VPADDQ Y10, Y3, Y3
	VSUBPD Y11, Y3, Y3            // k
	VPAND 448(R9), Y2, Y4
	VPOR 480(R9), Y4, Y4          // f1, in [0.5, 1)
	VMOVUPD 128(R9), Y6
	VCMPPD $5, Y4, Y6, Y6         // !(HSqrt2 < f1)
	VANDPD 32(R9), Y6, Y5         // 1 or 0
	VSUBPD Y5, Y3, Y3             // k -= 1
	VADDPD 32(R9), Y5, Y5
	VMULPD Y5, Y4, Y4             // f1 *= 2
	VSUBPD 32(R9), Y4, Y4         // f
	VADDPD 64(R9), Y4, Y5         // 2 + f
	VDIVPD Y5, Y4, Y5             // s
	VMULPD Y5, Y5, Y6             // s2
	VMULPD Y6, Y6, Y7             // s4
	VMULPD 416(R9), Y7, Y8        // t1 := s2*(L1+s4*(L3+s4*(L5+s4*L7)))
	VADDPD 352(R9), Y8, Y8
	VMULPD Y7, Y8, Y8
	VADDPD 288(R9), Y8, Y8
	VMULPD Y7, Y8, Y8
	VADDPD 224(R9), Y8, Y8
	VMULPD Y8, Y6, Y6
	VMULPD 384(R9), Y7, Y8        // t2 := s4*(L2+s4*(L4+s4*L6))
	VADDPD 320(R9), Y8, Y8
	VMULPD Y7, Y8, Y8
	VADDPD 256(R9), Y8, Y8
	VMULPD Y8, Y7, Y7
	VADDPD Y7, Y6, Y6             // R
	VMULPD 96(R9), Y4, Y9
	VMULPD Y4, Y9, Y9             // hfsq
	VADDPD Y9, Y6, Y6             // hfsq + R
	VMULPD Y6, Y5, Y5             // s*(hfsq+R)
	VMULPD 192(R9), Y3, Y6        // k*Ln2Lo
	VADDPD Y6, Y5, Y5
	VSUBPD Y5, Y9, Y9             // hfsq - (...)
	VSUBPD Y4, Y9, Y9             // - f
	VMULPD 160(R9), Y3, Y3        // k*Ln2Hi
	VSUBPD Y9, Y3, Y3             // log(x)
	VMULPD Y3, Y0, Y0             // p*log(p/q)
	VMOVUPD Y0, (DI)(AX*8)
	ADDQ $4, AX
	JMP kl256_loop
kl256_done:
	MOVQ AX, done+56(FP)
	VZEROUPPER
	RET

// IMPKEY256 sets Y1 to the order keys of the importances of the eight
// entries at AX, as IMPKEY512 (kl in Y4, the abs mask in Y5, the sign bit
// in Y3).
#define IMPKEY256 \
	VMOVUPS (DX)(AX*4), Y0; \
	VSUBPS (SI)(AX*4), Y0, Y0; \
	VPAND Y5, Y0, Y0; \
	VMULPS Y4, Y0, Y0; \
	VPSRAD $31, Y0, Y1; \
	VPOR Y3, Y1, Y1; \
	VPXOR Y0, Y1, Y1

// IMPCONSTS256 loads IMPKEY256's constants but kl.
#define IMPCONSTS256 \
	MOVL $0x7fffffff, AX; \
	VMOVD AX, X5; \
	VPBROADCASTD X5, Y5; \
	MOVL $0x80000000, AX; \
	VMOVD AX, X3; \
	VPBROADCASTD X3, Y3

// func impTop256(dst *uint16, b, x *float32, n int, kl float32)
// impTop512 for AVX2, eight at a time (n a multiple of 8).
TEXT ·impTop256(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS kl+32(FP), Y4
	IMPCONSTS256
	XORQ AX, AX
imptop256_loop:
	IMPKEY256
	VPSRLD $16, Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPACKUSDW X2, X1, X1
	VMOVDQU X1, (DI)(AX*2)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT imptop256_loop
	VZEROUPPER
	RET

// func impHits256(dst *uint32, b, x *float32, n int, kl float32, bins *[4]uint32, lut *uint64) (c int)
// impHits512 for AVX2, eight at a time (n a multiple of 8), VPCOMPRESSD as
// VPERMD by the indices lut gives (compressLUT); dst needs 7 spare.
TEXT ·impHits256(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ bins+40(FP), R8
	MOVQ lut+48(FP), R11
	VPBROADCASTD 0(R8), Y6
	VPBROADCASTD 4(R8), Y7
	VPBROADCASTD 8(R8), Y8
	VPBROADCASTD 12(R8), Y9
	VBROADCASTSS kl+32(FP), Y4
	IMPCONSTS256
	XORQ AX, AX
	XORQ R8, R8                   // c
imphits256_loop:
	IMPKEY256
	VPSRLD $16, Y1, Y2
	VPCMPEQD Y6, Y2, Y10
	VPCMPEQD Y7, Y2, Y11
	VPOR Y11, Y10, Y10
	VPCMPEQD Y8, Y2, Y11
	VPOR Y11, Y10, Y10
	VPCMPEQD Y9, Y2, Y11
	VPOR Y11, Y10, Y10
	VMOVMSKPS Y10, R9
	TESTL R9, R9
	JZ imphits256_next
	VMOVQ (R11)(R9*8), X12
	VPMOVZXBD X12, Y12
	VPERMD Y1, Y12, Y13
	VMOVDQU Y13, (DI)(R8*4)
	POPCNTL R9, R9
	ADDQ R9, R8
imphits256_next:
	ADDQ $8, AX
	CMPQ AX, CX
	JLT imphits256_loop
	MOVQ R8, c+56(FP)
	VZEROUPPER
	RET

// func fusionApply256(dst, b, x *float32, n int, kl, th float32)
// fusionApply512 for AVX2, eight at a time (n a multiple of 8).
TEXT ·fusionApply256(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS kl+32(FP), Y4
	VBROADCASTSS th+36(FP), Y6
	MOVL $0x7fffffff, AX
	VMOVD AX, X5
	VPBROADCASTD X5, Y5
	MOVL $0x3f800000, AX
	VMOVD AX, X7
	VPBROADCASTD X7, Y7           // 1.0
	XORQ AX, AX
fapply256_loop:
	VMOVUPS (SI)(AX*4), Y0        // b
	VMOVUPS (DX)(AX*4), Y1
	VSUBPS Y0, Y1, Y1             // d = x - b
	VPAND Y5, Y1, Y2
	VMULPS Y4, Y2, Y2             // |d| * kl
	VCMPPS $0x1d, Y6, Y2, Y2      // >= th, ordered
	VANDPS Y7, Y2, Y2             // the mask: 1 or 0
	VMULPS Y2, Y1, Y1
	VADDPS Y1, Y0, Y0             // b + d*mask
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT fapply256_loop
	VZEROUPPER
	RET

// RAMCONSTS512 and RAMCONSTS256 broadcast the RAM kernels' constants:
// the key (from AX) to Z10 or Y10, the abs mask to Z12 or Y12, and
// 0x7f800001 (the least NaN's magnitude bits) to Z13 or Y13.
#define RAMCONSTS512 \
	VPBROADCASTD AX, Z10; \
	MOVL $0x7fffffff, AX; \
	VPBROADCASTD AX, Z12; \
	MOVL $0x7f800001, AX; \
	VPBROADCASTD AX, Z13

#define RAMCONSTS256 \
	VMOVD AX, X10; \
	VPBROADCASTD X10, Y10; \
	MOVL $0x7fffffff, AX; \
	VMOVD AX, X12; \
	VPBROADCASTD X12, Y12; \
	MOVL $0x7f800001, AX; \
	VMOVD AX, X13; \
	VPBROADCASTD X13, Y13

// RAMTAKES512 sets the mask k to the lanes of x (deltas, eight in a Y
// register or sixteen in a Z one) whose magnitude bits are above the key
// and not a NaN's (below nan = 0x7f800001), ramChunk's takesPart; abs
// holds the abs mask, t is clobbered (registers of x's width).
#define RAMTAKES512(x, k, t, key, abs, nan) \
	VPANDD abs, x, t; \
	VPCMPGTD key, t, k; \
	VPCMPGTD t, nan, k, k

// func ram2x512(dst, b, x0, x1 *float32, n int, key int32, f *[4]float64)
// ramChunk on two models, eight entries at a time (n a multiple of 8, at
// least 8): each delta takes part as takesPart says, s = (0 + d0) + d1 of
// those that do, in float64, and dst = float32(float64(b) + s*f[mask]),
// mask having bit i where model i takes part; f[mask] is ramChunk's
// mul[mask]/div[mask], which for two models is a factor s*mul/div
// rounds as (mul or div is 1, or div 2 with mul 1).
TEXT ·ram2x512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	MOVL key+40(FP), AX
	RAMCONSTS512
	MOVQ f+48(FP), R9
	VBROADCASTF64X4 (R9), Z11     // the factors, twice
	MOVQ $1, AX
	VPBROADCASTQ AX, Z14
	MOVQ $2, AX
	VPBROADCASTQ AX, Z15
	VPXORQ Z16, Z16, Z16          // +0
	XORQ AX, AX
ram2x512_loop:
	VMOVUPS (DX)(AX*4), Y1
	VSUBPS (SI)(AX*4), Y1, Y1     // d0 = x0 - b
	VMOVUPS (R8)(AX*4), Y2
	VSUBPS (SI)(AX*4), Y2, Y2     // d1
	RAMTAKES512(Y1, K1, Y3, Y10, Y12, Y13)
	RAMTAKES512(Y2, K2, Y3, Y10, Y12, Y13)
	VMOVDQU32.Z Y1, K1, Y1        // the deltas that take part, else +0
	VMOVDQU32.Z Y2, K2, Y2
	VCVTPS2PD Y1, Z1
	VADDPD Z1, Z16, Z1            // s = 0 + d0
	VCVTPS2PD Y2, Z2
	VADDPD Z2, Z1, Z1             // s += d1
	VMOVDQA64.Z Z14, K1, Z4       // the mask: 1 where model 0 takes part
	VPADDQ Z15, Z4, K2, Z4        // + 2 where model 1 does
	VPERMPD Z11, Z4, Z5           // f[mask]
	VMULPD Z5, Z1, Z1
	VCVTPS2PD (SI)(AX*4), Z0
	VADDPD Z1, Z0, Z0             // b + s*f
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT ram2x512_loop
	VZEROUPPER
	RET

// func nearSwap512(dst, b, x *float32, n int, t float64)
// nearSwap eight entries at a time (n a multiple of 8, at least 8), in
// its operations: d = float64(max(|b - x|, 1e-6)) in float32, w =
// min(max(t/d, 0), 1) with Go's min and max (a NaN stays one: VMAXPS and
// VMINPD return their second operand for a NaN, so the NaN is that
// operand, or put back), dst = float32(w*x + (1-w)*b).
TEXT ·nearSwap512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSD t+32(FP), Z10
	MOVL $0x358637bd, AX          // float32(1e-6)
	VPBROADCASTD AX, Y11
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Y12
	VPXORQ Z13, Z13, Z13          // +0
	MOVQ $0x3ff0000000000000, AX
	VPBROADCASTQ AX, Z14          // 1
	XORQ AX, AX
nearswap512_loop:
	VMOVUPS (SI)(AX*4), Y0        // b
	VMOVUPS (DX)(AX*4), Y1        // x
	VSUBPS Y1, Y0, Y2             // b - x
	VPANDD Y12, Y2, Y2
	VMAXPS Y2, Y11, Y2            // max(|b - x|, 1e-6), a NaN kept
	VCVTPS2PD Y2, Z2              // d
	VDIVPD Z2, Z10, Z3            // t/d
	VMAXPD Z13, Z3, Z4            // max(t/d, 0): +0 for -0
	VMINPD Z14, Z4, Z4            // min(.., 1)
	VCMPPD $3, Z3, Z3, K1
	VMOVAPD Z3, K1, Z4            // w: t/d where it is a NaN
	VCVTPS2PD Y1, Z1
	VCVTPS2PD Y0, Z0
	VMULPD Z1, Z4, Z1             // w*x
	VSUBPD Z4, Z14, Z5            // 1 - w
	VMULPD Z0, Z5, Z5             // (1-w)*b
	VADDPD Z5, Z1, Z1
	VCVTPD2PS Z1, Y1
	VMOVUPS Y1, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT nearswap512_loop
	VZEROUPPER
	RET

// RAMTAKES256 sets m to the lanes of x (four or eight deltas) that take
// part, ramChunk's takesPart (key in X10/Y10, the abs mask in X12/Y12,
// 0x7f800001 in X13/Y13; t is clobbered).
#define RAMTAKES256(x, m, t, key, abs, nan) \
	VPAND abs, x, t; \
	VPCMPGTD key, t, m; \
	VPCMPGTD t, nan, t; \
	VPAND t, m, m

// func ram2x256(dst, b, x0, x1 *float32, n int, key int32, f *[4]float64)
// ram2x512 for AVX2, four entries at a time (n a multiple of 4, at least
// 4), the pattern's factor chosen by blends.
TEXT ·ram2x256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x0+16(FP), DX
	MOVQ x1+24(FP), R8
	MOVQ n+32(FP), CX
	MOVL key+40(FP), AX
	RAMCONSTS256
	MOVQ f+48(FP), R9
	VBROADCASTSD 0(R9), Y6
	VBROADCASTSD 8(R9), Y7
	VBROADCASTSD 16(R9), Y8
	VBROADCASTSD 24(R9), Y9
	VXORPD Y14, Y14, Y14          // +0
	XORQ AX, AX
ram2x256_loop:
	VMOVUPS (DX)(AX*4), X1
	VSUBPS (SI)(AX*4), X1, X1     // d0 = x0 - b
	VMOVUPS (R8)(AX*4), X2
	VSUBPS (SI)(AX*4), X2, X2     // d1
	RAMTAKES256(X1, X4, X3, X10, X12, X13)
	RAMTAKES256(X2, X5, X3, X10, X12, X13)
	VPAND X4, X1, X1              // the deltas that take part, else +0
	VPAND X5, X2, X2
	VCVTPS2PD X1, Y1
	VADDPD Y1, Y14, Y1            // s = 0 + d0
	VCVTPS2PD X2, Y2
	VADDPD Y2, Y1, Y1             // s += d1
	VPMOVSXDQ X4, Y4              // the masks, as lanes of 64 bits
	VPMOVSXDQ X5, Y5
	VBLENDVPD Y4, Y7, Y6, Y3      // f[1] where model 0 takes part, else f[0]
	VBLENDVPD Y4, Y9, Y8, Y0      // f[3] or f[2]
	VBLENDVPD Y5, Y0, Y3, Y3      // f[mask]
	VMULPD Y3, Y1, Y1
	VCVTPS2PD (SI)(AX*4), Y0
	VADDPD Y1, Y0, Y0             // b + s*f
	VCVTPD2PSY Y0, X0
	VMOVUPS X0, (DI)(AX*4)
	ADDQ $4, AX
	CMPQ AX, CX
	JLT ram2x256_loop
	VZEROUPPER
	RET

// func nearSwap256(dst, b, x *float32, n int, t float64)
// nearSwap512 for AVX2, four entries at a time (n a multiple of 4, at
// least 4), a NaN quotient put back by a blend.
TEXT ·nearSwap256(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSD t+32(FP), Y10
	MOVL $0x358637bd, AX          // float32(1e-6)
	VMOVD AX, X11
	VPBROADCASTD X11, X11
	MOVL $0x7fffffff, AX
	VMOVD AX, X12
	VPBROADCASTD X12, X12
	VXORPD Y13, Y13, Y13          // +0
	MOVQ $0x3ff0000000000000, AX
	VMOVQ AX, X14
	VPBROADCASTQ X14, Y14         // 1
	XORQ AX, AX
nearswap256_loop:
	VMOVUPS (SI)(AX*4), X0        // b
	VMOVUPS (DX)(AX*4), X1        // x
	VSUBPS X1, X0, X2             // b - x
	VPAND X12, X2, X2
	VMAXPS X2, X11, X2            // max(|b - x|, 1e-6), a NaN kept
	VCVTPS2PD X2, Y2              // d
	VDIVPD Y2, Y10, Y3            // t/d
	VMAXPD Y13, Y3, Y4            // max(t/d, 0): +0 for -0
	VMINPD Y14, Y4, Y4            // min(.., 1)
	VCMPPD $3, Y3, Y3, Y5
	VBLENDVPD Y5, Y3, Y4, Y4      // w: t/d where it is a NaN
	VCVTPS2PD X1, Y1
	VCVTPS2PD X0, Y0
	VMULPD Y1, Y4, Y1             // w*x
	VSUBPD Y4, Y14, Y5            // 1 - w
	VMULPD Y0, Y5, Y5             // (1-w)*b
	VADDPD Y5, Y1, Y1
	VCVTPD2PSY Y1, X1
	VMOVUPS X1, (DI)(AX*4)
	ADDQ $4, AX
	CMPQ AX, CX
	JLT nearswap256_loop
	VZEROUPPER
	RET

// func drop512(x *float32, n int, scale float32, th uint32, states *[8]uint64, c *[3]uint64)
// drop256 for AVX-512, 16 entries at a time (n a multiple of 16, at least
// 16): eight splitmix64 states (c[0] = 8*gamma their step, read, not
// written back), the mix multipliers c[1] and c[2] by VPMULLQ; each
// draw's 32-bit halves decide two consecutive entries, kept (times
// scale) when below th, unsigned.
TEXT ·drop512(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	MOVL scale+16(FP), AX
	VPBROADCASTD AX, Z9
	MOVL th+20(FP), AX
	VPBROADCASTD AX, Z10
	MOVQ states+24(FP), SI
	MOVQ c+32(FP), R10
	VPBROADCASTQ 0(R10), Z11      // the step
	VPBROADCASTQ 8(R10), Z12      // rngMul1
	VPBROADCASTQ 16(R10), Z13     // rngMul2
	VMOVDQU64 (SI), Z4
	XORQ AX, AX
drop512_loop:
	VPADDQ Z11, Z4, Z0            // the states of the next step
	VPSRLQ $30, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPMULLQ Z12, Z4, Z4
	VPSRLQ $27, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPMULLQ Z13, Z4, Z4
	VPSRLQ $31, Z4, Z5
	VPXORQ Z5, Z4, Z4
	VPCMPUD $1, Z10, Z4, K1       // draw < th: keep
	VMULPS (DI)(AX*4), Z9, Z1
	VMOVDQU32.Z Z1, K1, Z1
	VMOVUPS Z1, (DI)(AX*4)
	VMOVDQA64 Z0, Z4
	ADDQ $16, AX
	CMPQ AX, CX
	JLT drop512_loop
	VZEROUPPER
	RET

// func ramN512(dst, b *float32, xs *unsafe.Pointer, models, n int, key int32, mul, div *[16]float64)
// ramChunk's pattern loop on up to four models (xs[:models]), eight
// entries at a time (n a multiple of 8, at least 8): s = 0 + d0 + d1 + ...
// in float64, in the models' order, of the deltas that take part, the
// pattern (bit i where model i does) its index into mul and div (by
// VPERMT2PD), and dst = float32(float64(b) + s*mul/div).
TEXT ·ramN512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ xs+16(FP), R11
	MOVQ models+24(FP), R12
	MOVQ n+32(FP), CX
	MOVL key+40(FP), AX
	RAMCONSTS512
	MOVQ mul+48(FP), R9
	VMOVUPD 0(R9), Z20
	VMOVUPD 64(R9), Z21
	MOVQ div+56(FP), R9
	VMOVUPD 0(R9), Z22
	VMOVUPD 64(R9), Z23
	XORQ AX, AX
ramn512_loop:
	VPXORQ Z1, Z1, Z1             // s = +0
	VPXORQ Z4, Z4, Z4             // the pattern
	MOVQ $1, R14                  // its bit for model i
	XORQ R13, R13                 // i
ramn512_model:
	MOVQ (R11)(R13*8), BX
	VMOVUPS (BX)(AX*4), Y2
	VSUBPS (SI)(AX*4), Y2, Y2     // d = x - b
	RAMTAKES512(Y2, K1, Y3, Y10, Y12, Y13)
	VMOVDQU32.Z Y2, K1, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z2, Z1, Z1             // s += d
	VPBROADCASTQ R14, Z5
	VPORQ Z5, Z4, K1, Z4
	SHLQ $1, R14
	INCQ R13
	CMPQ R13, R12
	JLT ramn512_model
	VMOVAPD Z20, Z5
	VPERMT2PD Z21, Z4, Z5         // mul[pattern]
	VMOVAPD Z22, Z6
	VPERMT2PD Z23, Z4, Z6         // div[pattern]
	VMULPD Z5, Z1, Z1
	VDIVPD Z6, Z1, Z1
	VCVTPS2PD (SI)(AX*4), Z0
	VADDPD Z1, Z0, Z0             // b + s*mul/div
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT ramn512_loop
	VZEROUPPER
	RET

// func ramCountN512(counts *[16]int64, b *float32, xs *unsafe.Pointer, models, n int, key int32)
// ramCount's pattern histogram on up to four models, sixteen entries at a
// time (n a multiple of 16, at least 16): counts[p] gains the entries of
// pattern p, for every p but 0.
TEXT ·ramCountN512(SB), NOSPLIT, $0-44
	MOVQ counts+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ xs+16(FP), R11
	MOVQ models+24(FP), R12
	MOVL key+40(FP), AX
	RAMCONSTS512
	MOVQ $1, R15
	MOVQ R12, CX
	SHLQ CX, R15                  // the patterns: 1 << models
	MOVQ n+32(FP), CX
	XORQ AX, AX
ramcountn512_loop:
	VPXORD Z4, Z4, Z4             // the pattern
	MOVL $1, R14
	XORQ R13, R13
ramcountn512_model:
	MOVQ (R11)(R13*8), BX
	VMOVUPS (BX)(AX*4), Z2
	VSUBPS (SI)(AX*4), Z2, Z2
	RAMTAKES512(Z2, K1, Z3, Z10, Z12, Z13)
	VPBROADCASTD R14, Z5
	VPORD Z5, Z4, K1, Z4
	SHLL $1, R14
	INCQ R13
	CMPQ R13, R12
	JLT ramcountn512_model
	MOVL $1, R14                  // p
ramcountn512_pattern:
	VPBROADCASTD R14, Z5
	VPCMPEQD Z5, Z4, K2
	KMOVW K2, R9
	POPCNTL R9, R9
	ADDQ R9, (DI)(R14*8)
	INCQ R14
	CMPQ R14, R15
	JLT ramcountn512_pattern
	ADDQ $16, AX
	CMPQ AX, CX
	JLT ramcountn512_loop
	VZEROUPPER
	RET

// func ramN256(dst, b *float32, xs *unsafe.Pointer, models, n int, key int32, mul, div *[16]float64)
// ramN512 for AVX2, four entries at a time (n a multiple of 4, at least
// 4): the pattern's mul and div gathered from their tables (VGATHERDPD).
TEXT ·ramN256(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ xs+16(FP), R11
	MOVQ models+24(FP), R12
	MOVQ n+32(FP), CX
	MOVL key+40(FP), AX
	RAMCONSTS256
	MOVQ mul+48(FP), R9
	MOVQ div+56(FP), R10
	XORQ AX, AX
ramn256_loop:
	VXORPD Y1, Y1, Y1             // s = +0
	VPXOR X4, X4, X4              // the pattern
	MOVL $1, R14                  // its bit for model i
	XORQ R13, R13                 // i
ramn256_model:
	MOVQ (R11)(R13*8), BX
	VMOVUPS (BX)(AX*4), X2
	VSUBPS (SI)(AX*4), X2, X2     // d = x - b
	RAMTAKES256(X2, X5, X3, X10, X12, X13)
	VPAND X5, X2, X2
	VCVTPS2PD X2, Y2
	VADDPD Y2, Y1, Y1             // s += d
	VMOVD R14, X6
	VPBROADCASTD X6, X6
	VPAND X5, X6, X6
	VPOR X6, X4, X4
	SHLL $1, R14
	INCQ R13
	CMPQ R13, R12
	JLT ramn256_model
	VPCMPEQD Y7, Y7, Y7
	VGATHERDPD Y7, (R9)(X4*8), Y5 // mul[pattern]
	VPCMPEQD Y7, Y7, Y7
	VGATHERDPD Y7, (R10)(X4*8), Y6 // div[pattern]
	VMULPD Y5, Y1, Y1
	VDIVPD Y6, Y1, Y1
	VCVTPS2PD (SI)(AX*4), Y0
	VADDPD Y1, Y0, Y0             // b + s*mul/div
	VCVTPD2PSY Y0, X0
	VMOVUPS X0, (DI)(AX*4)
	ADDQ $4, AX
	CMPQ AX, CX
	JLT ramn256_loop
	VZEROUPPER
	RET

// func ramCountN256(counts *[16]int64, b *float32, xs *unsafe.Pointer, models, n int, key int32)
// ramCountN512 for AVX2, eight entries at a time (n a multiple of 8, at
// least 8).
TEXT ·ramCountN256(SB), NOSPLIT, $0-44
	MOVQ counts+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ xs+16(FP), R11
	MOVQ models+24(FP), R12
	MOVL key+40(FP), AX
	RAMCONSTS256
	MOVQ $1, R15
	MOVQ R12, CX
	SHLQ CX, R15                  // the patterns: 1 << models
	MOVQ n+32(FP), CX
	XORQ AX, AX
ramcountn256_loop:
	VPXOR Y4, Y4, Y4              // the pattern
	MOVL $1, R14
	XORQ R13, R13
ramcountn256_model:
	MOVQ (R11)(R13*8), BX
	VMOVUPS (BX)(AX*4), Y2
	VSUBPS (SI)(AX*4), Y2, Y2
	RAMTAKES256(Y2, Y5, Y3, Y10, Y12, Y13)
	VMOVD R14, X6
	VPBROADCASTD X6, Y6
	VPAND Y5, Y6, Y6
	VPOR Y6, Y4, Y4
	SHLL $1, R14
	INCQ R13
	CMPQ R13, R12
	JLT ramcountn256_model
	MOVL $1, R14                  // p
ramcountn256_pattern:
	VMOVD R14, X6
	VPBROADCASTD X6, Y6
	VPCMPEQD Y6, Y4, Y6
	VMOVMSKPS Y6, R9
	POPCNTL R9, R9
	ADDQ R9, (DI)(R14*8)
	INCQ R14
	CMPQ R14, R15
	JLT ramcountn256_pattern
	ADDQ $8, AX
	CMPQ AX, CX
	JLT ramcountn256_loop
	VZEROUPPER
	RET
