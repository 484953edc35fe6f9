//go:build !purego

#include "textflag.h"

// AVX-512 vector operations of a transformer layer. Every function takes a
// length that is a positive multiple of 16; the Go side does the rest.

// Constants of exp: range reduction x = n*ln2 + r (ln2 split in a high part
// exact in few bits and a low correction), then e^r by its Taylor series to
// r^7 (|r| <= ln2/2, so the truncation error is below 1e-8).
DATA expc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+4(SB)/4, $0x3f318000  // ln2 high part
DATA expc<>+8(SB)/4, $0xb95e8083  // ln2 low part
DATA expc<>+12(SB)/4, $0x39500d01 // 1/7!
DATA expc<>+16(SB)/4, $0x3ab60b61 // 1/6!
DATA expc<>+20(SB)/4, $0x3c088889 // 1/5!
DATA expc<>+24(SB)/4, $0x3d2aaaab // 1/4!
DATA expc<>+28(SB)/4, $0x3e2aaaab // 1/3!
DATA expc<>+32(SB)/4, $0x3f000000 // 1/2
DATA expc<>+36(SB)/4, $0x3f800000 // 1
DATA expc<>+40(SB)/4, $0xc2d00000 // -104: e^x underflows to 0 below
DATA expc<>+44(SB)/4, $0x42b16666 // 88.7: e^x overflows above
DATA expc<>+48(SB)/4, $0x3d372713 // 0.044715 (GELU)
DATA expc<>+52(SB)/4, $0xbfcc422a // -2*sqrt(2/pi) (GELU)
GLOBL expc<>(SB), RODATA|NOPTR, $56

#define EXPCONST \
	VBROADCASTSS expc<>+0(SB), Z20 \
	VBROADCASTSS expc<>+4(SB), Z21 \
	VBROADCASTSS expc<>+8(SB), Z22 \
	VBROADCASTSS expc<>+12(SB), Z23 \
	VBROADCASTSS expc<>+16(SB), Z24 \
	VBROADCASTSS expc<>+20(SB), Z25 \
	VBROADCASTSS expc<>+24(SB), Z26 \
	VBROADCASTSS expc<>+28(SB), Z27 \
	VBROADCASTSS expc<>+32(SB), Z28 \
	VBROADCASTSS expc<>+36(SB), Z29 \
	VBROADCASTSS expc<>+40(SB), Z30 \
	VBROADCASTSS expc<>+44(SB), Z31

// EXP replaces Z0 by e^Z0, using Z1 and Z2.
#define EXP \
	VMAXPS Z30, Z0, Z0 \
	VMINPS Z31, Z0, Z0 \
	VMULPS Z20, Z0, Z1 \
	VRNDSCALEPS $0, Z1, Z1 \
	VFNMADD231PS Z21, Z1, Z0 \
	VFNMADD231PS Z22, Z1, Z0 \
	VMOVAPS Z23, Z2 \
	VFMADD213PS Z24, Z0, Z2 \
	VFMADD213PS Z25, Z0, Z2 \
	VFMADD213PS Z26, Z0, Z2 \
	VFMADD213PS Z27, Z0, Z2 \
	VFMADD213PS Z28, Z0, Z2 \
	VFMADD213PS Z29, Z0, Z2 \
	VFMADD213PS Z29, Z0, Z2 \
	VSCALEFPS Z1, Z2, Z0

// HSUM15 leaves the lane sum of Z15 in X15.
#define HSUM15 \
	VEXTRACTF64X4 $1, Z15, Y14 \
	VADDPS Y14, Y15, Y15 \
	VEXTRACTF32X4 $1, Y15, X14 \
	VADDPS X14, X15, X15 \
	VMOVHLPS X15, X15, X14 \
	VADDPS X14, X15, X15 \
	VMOVSHDUP X15, X14 \
	VADDSS X14, X15, X15

// func silu512(x *float32, n int)
TEXT ·silu512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPCONST
	VXORPS Z19, Z19, Z19
silu_loop:
	VMOVUPS (DI), Z3
	VSUBPS Z3, Z19, Z0
	EXP
	VADDPS Z29, Z0, Z0
	VDIVPS Z0, Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JGT silu_loop
	VZEROUPPER
	RET

// func gelu512(x *float32, n int): x / (1 + e^(-2u)), u = sqrt(2/pi)*(x + 0.044715x^3),
// which equals 0.5x(1 + tanh u).
TEXT ·gelu512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPCONST
	VBROADCASTSS expc<>+48(SB), Z18
	VBROADCASTSS expc<>+52(SB), Z17
gelu_loop:
	VMOVUPS (DI), Z3
	VMULPS Z3, Z3, Z0
	VFMADD213PS Z29, Z18, Z0
	VMULPS Z3, Z0, Z0
	VMULPS Z17, Z0, Z0
	EXP
	VADDPS Z29, Z0, Z0
	VDIVPS Z0, Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JGT gelu_loop
	VZEROUPPER
	RET

// func expSub512(x *float32, n int, m float32) float32: x = e^(x-m), returns the sum.
TEXT ·expSub512(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Z16
	EXPCONST
	VXORPS Z15, Z15, Z15
exps_loop:
	VMOVUPS (DI), Z0
	VSUBPS Z16, Z0, Z0
	EXP
	VMOVUPS Z0, (DI)
	VADDPS Z0, Z15, Z15
	ADDQ $64, DI
	SUBQ $16, CX
	JGT exps_loop
	HSUM15
	VMOVSS X15, ret+24(FP)
	VZEROUPPER
	RET

// func max512(x *float32, n int) float32
TEXT ·max512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VMOVUPS (DI), Z15
max_loop:
	VMAXPS (DI), Z15, Z15
	ADDQ $64, DI
	SUBQ $16, CX
	JGT max_loop
	VEXTRACTF64X4 $1, Z15, Y14
	VMAXPS Y14, Y15, Y15
	VEXTRACTF32X4 $1, Y15, X14
	VMAXPS X14, X15, X15
	VMOVHLPS X15, X15, X14
	VMAXPS X14, X15, X15
	VMOVSHDUP X15, X14
	VMAXSS X14, X15, X15
	VMOVSS X15, ret+16(FP)
	VZEROUPPER
	RET

// func sumSq512(x *float32, n int) float32
TEXT ·sumSq512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VXORPS Z15, Z15, Z15
sumsq_loop:
	VMOVUPS (DI), Z0
	VFMADD231PS Z0, Z0, Z15
	ADDQ $64, DI
	SUBQ $16, CX
	JGT sumsq_loop
	HSUM15
	VMOVSS X15, ret+16(FP)
	VZEROUPPER
	RET

// func normMul512(dst, x, w *float32, n int, scale, offset float32): dst = x*scale*(w+offset)
TEXT ·normMul512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS scale+32(FP), Z16
	VBROADCASTSS offset+36(FP), Z17
norm_loop:
	VMOVUPS (SI), Z0
	VADDPS (DX), Z17, Z1
	VMULPS Z16, Z0, Z0
	VMULPS Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, DX
	SUBQ $16, CX
	JGT norm_loop
	VZEROUPPER
	RET

// func scale512(x *float32, n int, s float32)
TEXT ·scale512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Z16
scale_loop:
	VMULPS (DI), Z16, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JGT scale_loop
	VZEROUPPER
	RET

// func axpy512(a float32, x, y *float32, n int): y += a*x
TEXT ·axpy512(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Z16
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
axpy_loop:
	VMOVUPS (DI), Z0
	VFMADD231PS (SI), Z16, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, SI
	SUBQ $16, CX
	JGT axpy_loop
	VZEROUPPER
	RET

// func widen512BF16(dst *float32, src *uint16, n int)
// Widens n bfloat16 values (a positive multiple of 16) to float32.
TEXT ·widen512BF16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
widenbf16_loop:
	VPMOVZXWD (SI)(AX*2), Z0
	VPSLLD $16, Z0, Z0
	VMOVUPS Z0, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT widenbf16_loop
	VZEROUPPER
	RET

// func widen512F16(dst *float32, src *uint16, n int)
// Widens n IEEE half values (a positive multiple of 16) to float32.
TEXT ·widen512F16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
widenf16_loop:
	VCVTPH2PS (SI)(AX*2), Z0
	VMOVUPS Z0, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT widenf16_loop
	VZEROUPPER
	RET

// func axpyRows512(dst, p, v *float32, n, k, stride int)
// dst[i] += p[j] * v[j*stride+i] for j = 0..n-1 in order, i < k (a positive
// multiple of 16): axpy512 once per row, but with dst held in registers,
// 64 columns at a time, instead of loaded and stored for every row.
TEXT ·axpyRows512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), R8
	MOVQ stride+40(FP), R9
	SHLQ $2, R9
rows_block64:
	CMPQ R8, $64
	JLT rows_block16
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	MOVQ DX, R11
	XORQ R12, R12
rows_loop64:
	VBROADCASTSS (SI)(R12*4), Z16
	VFMADD231PS (R11), Z16, Z0
	VFMADD231PS 64(R11), Z16, Z1
	VFMADD231PS 128(R11), Z16, Z2
	VFMADD231PS 192(R11), Z16, Z3
	ADDQ R9, R11
	INCQ R12
	CMPQ R12, CX
	JLT rows_loop64
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $256, DX
	SUBQ $64, R8
	JMP rows_block64
rows_block16:
	CMPQ R8, $16
	JLT rows_done
	VMOVUPS (DI), Z0
	MOVQ DX, R11
	XORQ R12, R12
rows_loop16:
	VBROADCASTSS (SI)(R12*4), Z16
	VFMADD231PS (R11), Z16, Z0
	ADDQ R9, R11
	INCQ R12
	CMPQ R12, CX
	JLT rows_loop16
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, DX
	SUBQ $16, R8
	JMP rows_block16
rows_done:
	VZEROUPPER
	RET

// func prefetch512(p unsafe.Pointer, n int)
// Prefetches the n bytes (n > 0) from p into the caches, a line at a time.
TEXT ·prefetch512(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	ADDQ SI, CX
prefetch_loop:
	PREFETCHT0 (SI)
	ADDQ $64, SI
	CMPQ SI, CX
	JLT prefetch_loop
	RET

// func roundBF16x512(dst *uint16, src *float32, n int)
// Rounds n float32 (a multiple of 16) to bfloat16, to nearest with ties to
// even, as F32ToBF16 does (a NaN keeps its high half with the quiet bit set).
TEXT ·roundBF16x512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $1, AX
	VPBROADCASTD AX, Z28
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z31
	MOVL $0x40, AX
	VPBROADCASTD AX, Z27
round_loop:
	VMOVDQU32 (SI), Z0
	VPSRLD $16, Z0, Z1
	VPANDD Z28, Z1, Z2
	VPADDD Z29, Z2, Z2
	VPADDD Z0, Z2, Z2
	VPSRLD $16, Z2, Z2
	VPANDD Z30, Z0, Z3
	VPCMPUD $6, Z31, Z3, K1
	VPORD Z27, Z1, Z1
	VMOVDQA32 Z1, K1, Z2
	VPMOVDW Z2, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JNZ round_loop
	VZEROUPPER
	RET

// AVX2 constants of silu256 (whole vectors: AVX2 has no embedded
// broadcast): exp's range limits narrowed so that 2^n is a normal float
// built from its exponent bits (AVX2 has no VSCALEFPS), and that bias.
DATA exp256<>+0(SB)/8, $0xc2ae0000c2ae0000 // -87: e^x is below 2^-125
DATA exp256<>+8(SB)/8, $0xc2ae0000c2ae0000
DATA exp256<>+16(SB)/8, $0xc2ae0000c2ae0000
DATA exp256<>+24(SB)/8, $0xc2ae0000c2ae0000
DATA exp256<>+32(SB)/8, $0x42b0999a42b0999a // 88.3: n stays <= 127
DATA exp256<>+40(SB)/8, $0x42b0999a42b0999a
DATA exp256<>+48(SB)/8, $0x42b0999a42b0999a
DATA exp256<>+56(SB)/8, $0x42b0999a42b0999a
DATA exp256<>+64(SB)/8, $0x3f8000003f800000 // 127<<23, the exponent bias
DATA exp256<>+72(SB)/8, $0x3f8000003f800000
DATA exp256<>+80(SB)/8, $0x3f8000003f800000
DATA exp256<>+88(SB)/8, $0x3f8000003f800000
GLOBL exp256<>(SB), RODATA|NOPTR, $96

// EXPCONST256 loads EXP256's polynomial constants into Y4-Y13.
#define EXPCONST256 \
	VBROADCASTSS expc<>+0(SB), Y4 \
	VBROADCASTSS expc<>+4(SB), Y5 \
	VBROADCASTSS expc<>+8(SB), Y6 \
	VBROADCASTSS expc<>+12(SB), Y7 \
	VBROADCASTSS expc<>+16(SB), Y8 \
	VBROADCASTSS expc<>+20(SB), Y9 \
	VBROADCASTSS expc<>+24(SB), Y10 \
	VBROADCASTSS expc<>+28(SB), Y11 \
	VBROADCASTSS expc<>+32(SB), Y12 \
	VBROADCASTSS expc<>+36(SB), Y13

// EXP256 replaces Y0 by e^Y0 (constants in Y4-Y13, from EXPCONST256; the
// range limits and exponent bias from exp256), using Y1 and Y2.
#define EXP256 \
	VMAXPS exp256<>+0(SB), Y0, Y0 \
	VMINPS exp256<>+32(SB), Y0, Y0 \
	VMULPS Y4, Y0, Y1 \
	VROUNDPS $0, Y1, Y1 \
	VFNMADD231PS Y5, Y1, Y0 \
	VFNMADD231PS Y6, Y1, Y0 \
	VMOVAPS Y7, Y2 \
	VFMADD213PS Y8, Y0, Y2 \
	VFMADD213PS Y9, Y0, Y2 \
	VFMADD213PS Y10, Y0, Y2 \
	VFMADD213PS Y11, Y0, Y2 \
	VFMADD213PS Y12, Y0, Y2 \
	VFMADD213PS Y13, Y0, Y2 \
	VFMADD213PS Y13, Y0, Y2 \
	VCVTPS2DQ Y1, Y1 \
	VPSLLD $23, Y1, Y1 \
	VPADDD exp256<>+64(SB), Y1, Y1 \
	VMULPS Y1, Y2, Y0

// func silu256(x *float32, n int): silu512 for AVX2, 8 lanes at a time (n
// a positive multiple of 8), with EXP's steps and constants except the
// range and the power of two: e^-x is clamped to [e^-87, e^88.3] (silu
// then differs from x/(1+e^-x) by less than 1e-36) and 2^n is made by
// adding n to the exponent bits of 1.
TEXT ·silu256(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPCONST256

silu256_loop:
	VMOVUPS (DI), Y3
	VXORPS  Y0, Y0, Y0
	VSUBPS  Y3, Y0, Y0
	EXP256
	VADDPS  Y13, Y0, Y0
	VDIVPS  Y0, Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, DI
	SUBQ $8, CX
	JGT silu256_loop
	VZEROUPPER
	RET

// func axpy256(a float32, x, y *float32, n int): axpy512 for AVX2 (n a
// positive multiple of 8); each element gets the same FMA as in axpy512.
TEXT ·axpy256(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y15
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
axpy256_loop:
	VMOVUPS (DI), Y0
	VFMADD231PS (SI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JGT axpy256_loop
	VZEROUPPER
	RET

// func axpyRows256(dst, p, v *float32, n, k, stride int): axpyRows512 for
// AVX2 (k a positive multiple of 8): 32 columns of dst in registers, then 8.
TEXT ·axpyRows256(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), R8
	MOVQ stride+40(FP), R9
	SHLQ $2, R9
rows256_block32:
	CMPQ R8, $32
	JLT rows256_block8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ DX, R11
	XORQ R12, R12
rows256_loop32:
	VBROADCASTSS (SI)(R12*4), Y15
	VFMADD231PS (R11), Y15, Y0
	VFMADD231PS 32(R11), Y15, Y1
	VFMADD231PS 64(R11), Y15, Y2
	VFMADD231PS 96(R11), Y15, Y3
	ADDQ R9, R11
	INCQ R12
	CMPQ R12, CX
	JLT rows256_loop32
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, DX
	SUBQ $32, R8
	JMP rows256_block32
rows256_block8:
	CMPQ R8, $8
	JLT rows256_done
	VMOVUPS (DI), Y0
	MOVQ DX, R11
	XORQ R12, R12
rows256_loop8:
	VBROADCASTSS (SI)(R12*4), Y15
	VFMADD231PS (R11), Y15, Y0
	ADDQ R9, R11
	INCQ R12
	CMPQ R12, CX
	JLT rows256_loop8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $8, R8
	JMP rows256_block8
rows256_done:
	VZEROUPPER
	RET

// HSUM256 leaves the lane sum of Y15 in X15 (hsum256's pairs).
#define HSUM256 \
	VEXTRACTF128 $1, Y15, X14 \
	VADDPS X14, X15, X15 \
	VMOVHLPS X15, X15, X14 \
	VADDPS X14, X15, X15 \
	VMOVSHDUP X15, X14 \
	VADDSS X14, X15, X15

// func expSub256(x *float32, n int, m float32) float32: expSub512 for AVX2
// (n a positive multiple of 8): x = e^(x-m), returns the sum.
TEXT ·expSub256(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPCONST256
	VBROADCASTSS m+16(FP), Y3
	VXORPS Y15, Y15, Y15
exps256_loop:
	VMOVUPS (DI), Y0
	VSUBPS Y3, Y0, Y0
	EXP256
	VMOVUPS Y0, (DI)
	VADDPS Y0, Y15, Y15
	ADDQ $32, DI
	SUBQ $8, CX
	JGT exps256_loop
	HSUM256
	VMOVSS X15, ret+24(FP)
	VZEROUPPER
	RET

// func max256(x *float32, n int) float32 (n a positive multiple of 8)
TEXT ·max256(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VMOVUPS (DI), Y15
max256_loop:
	VMAXPS (DI), Y15, Y15
	ADDQ $32, DI
	SUBQ $8, CX
	JGT max256_loop
	VEXTRACTF128 $1, Y15, X14
	VMAXPS X14, X15, X15
	VMOVHLPS X15, X15, X14
	VMAXPS X14, X15, X15
	VMOVSHDUP X15, X14
	VMAXSS X14, X15, X15
	VMOVSS X15, ret+16(FP)
	VZEROUPPER
	RET

// func scale256(x *float32, n int, s float32) (n a positive multiple of 8)
TEXT ·scale256(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Y15
scale256_loop:
	VMULPS (DI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	SUBQ $8, CX
	JGT scale256_loop
	VZEROUPPER
	RET

// func widen256BF16(dst *float32, src *uint16, n int)
// widen512BF16 for AVX2: n a positive multiple of 8.
TEXT ·widen256BF16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
widen256bf16_loop:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD $16, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT widen256bf16_loop
	VZEROUPPER
	RET

// func widen256F16(dst *float32, src *uint16, n int)
// widen512F16 for AVX2 (F16C): n a positive multiple of 8.
TEXT ·widen256F16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
widen256f16_loop:
	VCVTPH2PS (SI)(AX*2), Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT widen256f16_loop
	VZEROUPPER
	RET
