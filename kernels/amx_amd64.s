//go:build !purego

#include "textflag.h"

// AMX (Advanced Matrix Extensions) for BF16 and Q8_0 weights, and the
// AVX-512 routines that pack activations for the tiles and unpack results.
// Go's assembler does not know the AMX instructions, so they are written as
// bytes (as GNU as encodes them; objdump -d names them back); each line
// names the instruction, and amx_amd64_test.go holds them to the reference.
//
// Tile registers: tmm0-3 accumulate a 32-row x 32-token block of C (f32 or
// int32), tmm4-5 hold two 16-row slices of the weights (A), tmm6-7 two
// 16-token slices of the packed activations (B). amxCfg and amxCfgQ8 in
// amx_amd64.go give their shapes.

#define LDTILECFG_AX   BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILERELEASE    BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0
#define TILEZERO_0     BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0
#define TILEZERO_1     BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8
#define TILEZERO_2     BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0
#define TILEZERO_3     BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd8
// tileloadd tmmN, [r10 + r11*1] and tilestored [r10 + r11*1], tmmN
#define LOADC_0        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x1a
#define LOADC_1        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x1a
#define LOADC_2        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x14; BYTE $0x1a
#define LOADC_3        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x1c; BYTE $0x1a
#define STOREC_0       BYTE $0xc4; BYTE $0x82; BYTE $0x7a; BYTE $0x4b; BYTE $0x04; BYTE $0x1a
#define STOREC_1       BYTE $0xc4; BYTE $0x82; BYTE $0x7a; BYTE $0x4b; BYTE $0x0c; BYTE $0x1a
#define STOREC_2       BYTE $0xc4; BYTE $0x82; BYTE $0x7a; BYTE $0x4b; BYTE $0x14; BYTE $0x1a
#define STOREC_3       BYTE $0xc4; BYTE $0x82; BYTE $0x7a; BYTE $0x4b; BYTE $0x1c; BYTE $0x1a
// tileloadd tmm4, [rsi + rdx*1]; tileloadd tmm5, [rdi + rdx*1]
#define LOADA_4        BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x16
#define LOADA_5        BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x2c; BYTE $0x17
// tileloadd tmm6, [r8 + r9*1]; tileloadd tmm7, [r10 + r9*1]
#define LOADB_6        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x08
#define LOADB_7        BYTE $0xc4; BYTE $0x82; BYTE $0x7b; BYTE $0x4b; BYTE $0x3c; BYTE $0x0a
// tdpbf16ps tmm0, tmm4, tmm6 (tmm0 += tmm4 . tmm6) and so on
#define DP_0_4_6       BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xc4
#define DP_1_4_7       BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xcc
#define DP_2_5_6       BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xd5
#define DP_3_5_7       BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xdd

// C tile n sits at c + (n>>1)*16*ldc + (n&1)*64 bytes: rows of the weights
// down, tokens across.
#define EACH_C(op0, op1, op2, op3) \
	MOVQ c+8(FP), R10 \
	MOVQ ldc+16(FP), R11 \
	op0 \
	ADDQ $64, R10 \
	op1 \
	MOVQ R11, AX \
	SHLQ $4, AX \
	ADDQ AX, R10 \
	op3 \
	SUBQ $64, R10 \
	op2

// func amxBF16(cfg, c unsafe.Pointer, ldc, acc int, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb, ksteps, parts, ldp int, pf unsafe.Pointer, pfrows int)
//
// C[32 rows][32 tokens] (+)= A[32 rows][32*ksteps] . B, where A is bf16
// weights with row stride lda bytes and B is parts planes, ldp bytes apart,
// of bf16 pairs: plane p's row j (stride ldb bytes) holds, for each token,
// activations 2j and 2j+1. acc != 0 adds to the C in memory (row stride
// ldc bytes) rather than starting from zero. Unless pfrows is 0, each k
// step also asks L2 for the same columns of pfrows rows from pf (row
// stride lda): the weights that a later call will multiply.
TEXT ·amxBF16(SB), NOSPLIT, $0-104
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ acc+24(FP), AX
	TESTQ AX, AX
	JNZ  load
	TILEZERO_0
	TILEZERO_1
	TILEZERO_2
	TILEZERO_3
	JMP  start

load:
	EACH_C(LOADC_0, LOADC_1, LOADC_2, LOADC_3)

start:
	MOVQ a+32(FP), SI
	MOVQ lda+40(FP), DX
	MOVQ DX, DI
	SHLQ $4, DI
	ADDQ SI, DI           // DI: row 16 of A
	MOVQ b+48(FP), R11    // B at this k step, plane 0
	MOVQ ldb+56(FP), R9
	MOVQ ksteps+64(FP), CX
	MOVQ ldp+80(FP), R12
	MOVQ R9, R13
	SHLQ $4, R13          // 16 rows of B per k step

kloop:
	LOADA_4
	LOADA_5
	MOVQ pfrows+96(FP), BX
	TESTQ BX, BX
	JZ   parts
	MOVQ pf+88(FP), AX
	ADDQ $64, pf+88(FP)

pfloop:
	PREFETCHT1 (AX)
	ADDQ DX, AX
	DECQ BX
	JNZ  pfloop

parts:
	MOVQ R11, R8
	MOVQ parts+72(FP), BX

ploop:
	LEAQ 64(R8), R10      // tokens 16-31
	LOADB_6
	LOADB_7
	DP_0_4_6
	DP_1_4_7
	DP_2_5_6
	DP_3_5_7
	ADDQ R12, R8
	DECQ BX
	JNZ  ploop

	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ R13, R11
	DECQ CX
	JNZ  kloop

	EACH_C(STOREC_0, STOREC_1, STOREC_2, STOREC_3)
	TILERELEASE
	RET

// Z31: the byte offsets of 16 rows ld apart (for gathers); Z30 is clobbered.
#define ROW_OFFSETS(ld) \
	VPBROADCASTD ld, Z31 \
	VMOVDQU32 amxIota<>(SB), Z30 \
	VPMULLD Z30, Z31, Z31

// K3: the first count of 16 lanes (count in CX, 0-16); BX is clobbered.
#define COUNT_MASK \
	MOVL $1, BX \
	SHLL CX, BX \
	DECL BX \
	KMOVW BX, K3

// func amxPack512(b, x unsafe.Pointer, ldx, count, pairs, ldb, plane, parts int)
//
// amxPack for 16 tokens, count of them real (0-16; the others are written
// as zeros), split into parts parts (at least 1): token t's row of x is at
// x + t*ldx bytes; pair j of part s goes to b + s*plane + j*ldb + 4*t. The
// pairs are gathered column by column, cut to bf16 over and over the
// remainders, and stored 16 tokens at a time.
TEXT ·amxPack512(SB), NOSPLIT, $0-64
	MOVQ b+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ ldx+16(FP), AX
	MOVQ count+24(FP), CX
	MOVQ pairs+32(FP), DX
	MOVQ ldb+40(FP), R8
	MOVQ plane+48(FP), R9
	COUNT_MASK                   // the real tokens
	ROW_OFFSETS(AX)              // token t's row
	VPBROADCASTD amxHigh<>(SB), Z27
	TESTQ DX, DX
	JZ   done

loop:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	KMOVW K3, K1
	KMOVW K3, K2
	VPGATHERDD 0(SI)(Z31*1), K1, Z0 // even columns
	VPGATHERDD 4(SI)(Z31*1), K2, Z1 // odd columns
	MOVQ DI, R10
	MOVQ parts+56(FP), R11

part:
	// Z2, Z3: the upper halves of Z0, Z1, a bf16 each
	VPANDD Z27, Z0, Z2
	VPANDD Z27, Z1, Z3
	VSUBPS Z2, Z0, Z0            // the remainders, exact
	VSUBPS Z3, Z1, Z1
	VPSRLD $16, Z2, Z2
	VPORD  Z3, Z2, Z2
	VMOVDQU32 Z2, (R10)
	ADDQ R9, R10
	DECQ R11
	JNZ  part

	ADDQ $8, SI
	ADDQ R8, DI
	DECQ DX
	JNZ  loop

done:
	VZEROUPPER
	RET

// func amxUnpack512(dst, c unsafe.Pointer, ldc, rows, count, ldd int)
//
// Writes the transpose of c (rows x count floats, row stride ldc bytes;
// rows a multiple of 16) to dst (row stride ldd bytes), gathering each
// token's column 16 rows at a time.
TEXT ·amxUnpack512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ c+8(FP), SI
	MOVQ ldc+16(FP), AX
	MOVQ rows+24(FP), DX
	MOVQ count+32(FP), CX
	MOVQ ldd+40(FP), R8
	ROW_OFFSETS(AX)              // row i of c
	SHLQ $4, AX                  // 16 rows of c
	TESTQ CX, CX
	JZ   udone

tok:
	MOVQ SI, R9
	MOVQ DI, R10
	MOVQ DX, R11

rows16:
	KXNORW K1, K1, K1
	VPGATHERDD 0(R9)(Z31*1), K1, Z0
	VMOVDQU32 Z0, (R10)
	ADDQ AX, R9
	ADDQ $64, R10
	SUBQ $16, R11
	JNZ  rows16

	ADDQ $4, SI
	ADDQ R8, DI
	DECQ CX
	JNZ  tok

udone:
	VZEROUPPER
	RET

DATA amxIota<>+0(SB)/4, $0
DATA amxIota<>+4(SB)/4, $1
DATA amxIota<>+8(SB)/4, $2
DATA amxIota<>+12(SB)/4, $3
DATA amxIota<>+16(SB)/4, $4
DATA amxIota<>+20(SB)/4, $5
DATA amxIota<>+24(SB)/4, $6
DATA amxIota<>+28(SB)/4, $7
DATA amxIota<>+32(SB)/4, $8
DATA amxIota<>+36(SB)/4, $9
DATA amxIota<>+40(SB)/4, $10
DATA amxIota<>+44(SB)/4, $11
DATA amxIota<>+48(SB)/4, $12
DATA amxIota<>+52(SB)/4, $13
DATA amxIota<>+56(SB)/4, $14
DATA amxIota<>+60(SB)/4, $15
GLOBL amxIota<>(SB), RODATA|NOPTR, $64
DATA amxHigh<>+0(SB)/4, $0xffff0000
GLOBL amxHigh<>(SB), RODATA|NOPTR, $4

// tdpbssd tmm0, tmm4, tmm6 (int8 x int8 -> int32) and so on
#define DPQ_0_4_6      BYTE $0xc4; BYTE $0xe2; BYTE $0x4b; BYTE $0x5e; BYTE $0xc4
#define DPQ_1_4_7      BYTE $0xc4; BYTE $0xe2; BYTE $0x43; BYTE $0x5e; BYTE $0xcc
#define DPQ_2_5_6      BYTE $0xc4; BYTE $0xe2; BYTE $0x4b; BYTE $0x5e; BYTE $0xd5
#define DPQ_3_5_7      BYTE $0xc4; BYTE $0xe2; BYTE $0x43; BYTE $0x5e; BYTE $0xdd

// func amxQ8(cfg, c, tmp, a unsafe.Pointer, lda int, ws, b unsafe.Pointer, ldb int, xs unsafe.Pointer, nb int)
//
// C[32 rows][32 tokens] = sum over blocks k of (float(Aq_k . Bq_k) * xs_k) * ws_k,
// for Q8_0 weights and activations: A is int8 weights (row stride lda
// bytes), ws their scales laid out block by block, 32 rows each; b is the
// activations' int8 values as dwords of 4 columns (row stride ldb bytes,
// tokens across) and xs their scales, one row of tokens per block (stride
// ldb). Each block's 32x32 integer dots come from four tile products into
// tmp (4 KiB), and are scaled and added to c (32 rows of 32 floats).
TEXT ·amxQ8(SB), NOSPLIT, $0-80
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ c+8(FP), R13
	VPXORD Z0, Z0, Z0
	MOVQ $32, CX

zero:
	VMOVUPS Z0, (R13)
	VMOVUPS Z0, 64(R13)
	ADDQ $128, R13
	DECQ CX
	JNZ  zero

	MOVQ a+24(FP), SI
	MOVQ lda+32(FP), DX
	MOVQ DX, DI
	SHLQ $4, DI
	ADDQ SI, DI           // DI: row 16 of A
	MOVQ ws+40(FP), BX
	MOVQ b+48(FP), R8
	MOVQ ldb+56(FP), R9
	MOVQ xs+64(FP), R12
	MOVQ nb+72(FP), CX

block:
	TILEZERO_0
	TILEZERO_1
	TILEZERO_2
	TILEZERO_3
	LOADA_4
	LOADA_5
	LEAQ 64(R8), R10
	LOADB_6
	LOADB_7
	DPQ_0_4_6
	DPQ_1_4_7
	DPQ_2_5_6
	DPQ_3_5_7
	MOVQ tmp+16(FP), R10
	MOVQ $64, R11
	STOREC_0
	ADDQ $1024, R10
	STOREC_1
	ADDQ $1024, R10
	STOREC_2
	ADDQ $1024, R10
	STOREC_3

	VMOVUPS (R12), Z30    // the tokens' scales for this block
	VMOVUPS 64(R12), Z31
	MOVQ tmp+16(FP), AX
	MOVQ c+8(FP), R13
	MOVQ BX, R10
	MOVQ $16, R11

row:	// rows i and i+16 of C
	VBROADCASTSS (R10), Z1
	VBROADCASTSS 64(R10), Z5
	VCVTDQ2PS (AX), Z0
	VCVTDQ2PS 1024(AX), Z2
	VCVTDQ2PS 2048(AX), Z3
	VCVTDQ2PS 3072(AX), Z4
	VMULPS Z30, Z0, Z0
	VMULPS Z31, Z2, Z2
	VMULPS Z30, Z3, Z3
	VMULPS Z31, Z4, Z4
	VFMADD213PS (R13), Z1, Z0
	VFMADD213PS 64(R13), Z1, Z2
	VFMADD213PS 2048(R13), Z5, Z3
	VFMADD213PS 2112(R13), Z5, Z4
	VMOVUPS Z0, (R13)
	VMOVUPS Z2, 64(R13)
	VMOVUPS Z3, 2048(R13)
	VMOVUPS Z4, 2112(R13)
	ADDQ $4, R10
	ADDQ $64, AX
	ADDQ $128, R13
	DECQ R11
	JNZ  row

	ADDQ $32, SI
	ADDQ $32, DI
	LEAQ (R8)(R9*8), R8   // 8 rows of dwords: 32 columns
	ADDQ R9, R12
	ADDQ $128, BX
	DECQ CX
	JNZ  block

	TILERELEASE
	VZEROUPPER
	RET

// func amxTrans512(dst, src unsafe.Pointer, lds, count, cols, ldd int)
//
// Transposes 16 rows of dwords (row stride lds bytes; count of them real,
// the others read as zeros) into cols rows of 16 (stride ldd bytes).
TEXT ·amxTrans512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), AX
	MOVQ count+24(FP), CX
	MOVQ cols+32(FP), DX
	MOVQ ldd+40(FP), R8
	COUNT_MASK
	ROW_OFFSETS(AX)
	TESTQ DX, DX
	JZ   tdone

tloop:
	VPXORD Z0, Z0, Z0
	KMOVW K3, K1
	VPGATHERDD 0(SI)(Z31*1), K1, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ $4, SI
	ADDQ R8, DI
	DECQ DX
	JNZ  tloop

tdone:
	VZEROUPPER
	RET
