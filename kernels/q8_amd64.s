//go:build !purego

#include "textflag.h"

// func quantQ8x512(rec *q8Rec, q *int8, s *float32, x *float32, nb int)
//
// Quantizes nb blocks of 32 floats at x as quantizeRowQ8 does (same
// float32 operations, halves rounded away from zero): values to q, scales
// to s, and the records of q8Rec to rec; a last odd block leaves the second
// half of its record zero.
TEXT ·quantQ8x512(SB), NOSPLIT, $0-40
	MOVQ rec+0(FP), DI
	MOVQ q+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ x+24(FP), SI
	MOVQ nb+32(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31 // |x| mask
	MOVL $0x42fe0000, AX // 127
	VMOVD AX, X14
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X13
	VXORPS X15, X15, X15
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1

	// amax, then d = amax/127 and id = 1/d (0 when d is 0)
	VANDPS        Z31, Z0, Z2
	VANDPS        Z31, Z1, Z3
	VMAXPS        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VMAXPS        X3, X2, X2
	VPERMILPS     $0x4e, X2, X3
	VMAXPS        X3, X2, X2
	VPERMILPS     $0xb1, X2, X3
	VMAXPS        X3, X2, X2
	VDIVSS        X14, X2, X4
	VDIVSS        X4, X13, X5
	VCMPSS        $4, X15, X4, X6
	VANDPS        X6, X5, X5
	VMOVSS        X4, (R9)(BX*4)
	VBROADCASTSS  X5, Z5

	// y = x*id; q = trunc(y) + trunc(2*(y - trunc(y))), which rounds
	// halves away from zero (y - trunc(y) and its double are exact).
	VMULPS      Z5, Z0, Z0
	VMULPS      Z5, Z1, Z1
	VRNDSCALEPS $3, Z0, Z2
	VRNDSCALEPS $3, Z1, Z3
	VSUBPS      Z2, Z0, Z0
	VSUBPS      Z3, Z1, Z1
	VADDPS      Z0, Z0, Z0
	VADDPS      Z1, Z1, Z1
	VRNDSCALEPS $3, Z0, Z0
	VRNDSCALEPS $3, Z1, Z1
	VADDPS      Z2, Z0, Z0
	VADDPS      Z3, Z1, Z1
	VCVTTPS2DQ  Z0, Z0
	VCVTTPS2DQ  Z1, Z1
	VPMOVSDB    Z0, X8
	VPMOVSDB    Z1, X9
	VMOVDQU     X8, (R8)
	VMOVDQU     X9, 16(R8)
	VMOVDQU     X8, (DI)
	VMOVDQU     X9, 16(DI)
	VBROADCASTSS X4, Y10
	VMOVUPS     Y10, 64(DI)

	// correction -128*sum(q) in lane 0 of the block's half
	VPADDD        Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD        Y1, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0x4e, X0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0xb1, X0, X1
	VPADDD        X1, X0, X0
	VMOVD         X0, AX
	SHLL          $7, AX
	NEGL          AX
	VMOVD         AX, X11
	VMOVDQU       Y11, 128(DI)

	ADDQ $128, SI
	ADDQ $32, R8
	INCQ BX
	ADDQ $32, DI
	TESTQ $1, BX
	JNZ  loop
	ADDQ $128, DI // next record
	JMP  loop

done:
	TESTQ $1, CX
	JZ    ret
	VXORPS  Y0, Y0, Y0
	VMOVDQU Y0, (DI)
	VMOVDQU Y0, 64(DI)
	VMOVDQU Y0, 128(DI)

ret:
	VZEROUPPER
	RET

// func quantQ8x256(rec *q8Rec, q *int8, s *float32, x *float32, nb int)
//
// quantQ8x512 for AVX2 (the same float32 operations, so the same values):
// a block's 32 floats are four ymm registers, and the int32 values are
// packed to bytes with VPACKSSDW/VPACKSSWB (exact: |q| <= 127), whose
// in-lane order VPERMD with quantPerm256 puts back.
TEXT ·quantQ8x256(SB), NOSPLIT, $0-40
	MOVQ rec+0(FP), DI
	MOVQ q+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ x+24(FP), SI
	MOVQ nb+32(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // |x| mask
	MOVL $0x42fe0000, AX // 127
	VMOVD AX, X14
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X13
	VXORPS X12, X12, X12
	VMOVDQU quantPerm256<>(SB), Y11
	XORQ BX, BX

loop256:
	CMPQ BX, CX
	JGE  done256
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3

	// amax, then d = amax/127 and id = 1/d (0 when d is 0)
	VANDPS       Y15, Y0, Y4
	VANDPS       Y15, Y1, Y5
	VMAXPS       Y5, Y4, Y4
	VANDPS       Y15, Y2, Y5
	VMAXPS       Y5, Y4, Y4
	VANDPS       Y15, Y3, Y5
	VMAXPS       Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0x4e, X4, X5
	VMAXPS       X5, X4, X4
	VPERMILPS    $0xb1, X4, X5
	VMAXPS       X5, X4, X4
	VDIVSS       X14, X4, X4
	VDIVSS       X4, X13, X5
	VCMPSS       $4, X12, X4, X6
	VANDPS       X6, X5, X5
	VMOVSS       X4, (R9)(BX*4)
	VBROADCASTSS X4, Y4
	VMOVUPS      Y4, 64(DI)
	VBROADCASTSS X5, Y5

	// y = x*id; q = trunc(y) + trunc(2*(y - trunc(y))), which rounds
	// halves away from zero (y - trunc(y) and its double are exact).
	VMULPS    Y5, Y0, Y0
	VMULPS    Y5, Y1, Y1
	VMULPS    Y5, Y2, Y2
	VMULPS    Y5, Y3, Y3
	VROUNDPS  $3, Y0, Y6
	VROUNDPS  $3, Y1, Y7
	VROUNDPS  $3, Y2, Y8
	VROUNDPS  $3, Y3, Y9
	VSUBPS    Y6, Y0, Y0
	VSUBPS    Y7, Y1, Y1
	VSUBPS    Y8, Y2, Y2
	VSUBPS    Y9, Y3, Y3
	VADDPS    Y0, Y0, Y0
	VADDPS    Y1, Y1, Y1
	VADDPS    Y2, Y2, Y2
	VADDPS    Y3, Y3, Y3
	VROUNDPS  $3, Y0, Y0
	VROUNDPS  $3, Y1, Y1
	VROUNDPS  $3, Y2, Y2
	VROUNDPS  $3, Y3, Y3
	VADDPS    Y6, Y0, Y0
	VADDPS    Y7, Y1, Y1
	VADDPS    Y8, Y2, Y2
	VADDPS    Y9, Y3, Y3
	VCVTTPS2DQ Y0, Y0
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y2, Y2
	VCVTTPS2DQ Y3, Y3
	VPACKSSDW Y1, Y0, Y6
	VPACKSSDW Y3, Y2, Y7
	VPACKSSWB Y7, Y6, Y6
	VPERMD    Y6, Y11, Y6
	VMOVDQU   Y6, (R8)
	VMOVDQU   Y6, (DI)

	// correction -128*sum(q) in lane 0 of the block's half
	VPADDD       Y1, Y0, Y0
	VPADDD       Y3, Y2, Y2
	VPADDD       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, AX
	SHLL         $7, AX
	NEGL         AX
	VMOVD        AX, X10
	VMOVDQU      Y10, 128(DI)

	ADDQ  $128, SI
	ADDQ  $32, R8
	INCQ  BX
	ADDQ  $32, DI
	TESTQ $1, BX
	JNZ   loop256
	ADDQ  $128, DI // next record
	JMP   loop256

done256:
	TESTQ $1, CX
	JZ    ret256
	VXORPS  Y0, Y0, Y0
	VMOVDQU Y0, (DI)
	VMOVDQU Y0, 64(DI)
	VMOVDQU Y0, 128(DI)

ret256:
	VZEROUPPER
	RET

// quantPerm256 puts the dwords of VPACKSSWB's two lanes back in order.
DATA quantPerm256<>+0(SB)/4, $0
DATA quantPerm256<>+4(SB)/4, $4
DATA quantPerm256<>+8(SB)/4, $1
DATA quantPerm256<>+12(SB)/4, $5
DATA quantPerm256<>+16(SB)/4, $2
DATA quantPerm256<>+20(SB)/4, $6
DATA quantPerm256<>+24(SB)/4, $3
DATA quantPerm256<>+28(SB)/4, $7
GLOBL quantPerm256<>(SB), RODATA|NOPTR, $32

// func quantQ4x256(q *uint8, d *float32, x *float32, nb int)
//
// Quantizes nb blocks of 32 floats at x to Q4_0 as quantizeRowQ4 does
// (the same float32 operations): each block's 16 bytes to q and its scale
// d (float32; the caller rounds it to f16). The weight of largest
// magnitude, the first of equals with NaN counted as 0, is found as the
// lowest lane whose magnitude equals the block's largest.
TEXT ·quantQ4x256(SB), NOSPLIT, $0-32
	MOVQ q+0(FP), R8
	MOVQ d+8(FP), R9
	MOVQ x+16(FP), SI
	MOVQ nb+24(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // |x| mask
	MOVL $0xc1000000, AX // -8
	VMOVD AX, X14
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X13
	VXORPS X12, X12, X12
	MOVL $0x41080000, AX // 8.5
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	MOVL $15, AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10 // 15, and the nibble mask
	XORQ BX, BX

loopq4:
	CMPQ BX, CX
	JGE  doneq4
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3

	// magnitudes, NaN as 0 (VCMPPS $7: ordered), and their maximum
	VANDPS  Y15, Y0, Y4
	VCMPPS  $7, Y0, Y0, Y8
	VANDPS  Y8, Y4, Y4
	VANDPS  Y15, Y1, Y5
	VCMPPS  $7, Y1, Y1, Y8
	VANDPS  Y8, Y5, Y5
	VANDPS  Y15, Y2, Y6
	VCMPPS  $7, Y2, Y2, Y8
	VANDPS  Y8, Y6, Y6
	VANDPS  Y15, Y3, Y7
	VCMPPS  $7, Y3, Y3, Y8
	VANDPS  Y8, Y7, Y7
	VMAXPS  Y5, Y4, Y8
	VMAXPS  Y6, Y8, Y8
	VMAXPS  Y7, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VMAXPS       X9, X8, X8
	VPERMILPS    $0x4e, X8, X9
	VMAXPS       X9, X8, X8
	VPERMILPS    $0xb1, X8, X9
	VMAXPS       X9, X8, X8
	VBROADCASTSS X8, Y9

	// the first lane holding it: a 32-bit mask of equal lanes, its lowest bit
	VCMPPS    $0, Y9, Y4, Y4
	VCMPPS    $0, Y9, Y5, Y5
	VCMPPS    $0, Y9, Y6, Y6
	VCMPPS    $0, Y9, Y7, Y7
	VMOVMSKPS Y4, AX
	VMOVMSKPS Y5, DX
	SHLL      $8, DX
	ORL       DX, AX
	VMOVMSKPS Y6, DX
	SHLL      $16, DX
	ORL       DX, AX
	VMOVMSKPS Y7, DX
	SHLL      $24, DX
	ORL       DX, AX
	BSFL      AX, AX
	VMOVSS    (SI)(AX*4), X5 // mx (0 below when the maximum is 0)
	VCMPSS    $4, X12, X8, X6
	VANDPS    X6, X5, X5

	// d = mx / -8, id = 1/d (0 when d is 0)
	VDIVSS       X14, X5, X5
	VDIVSS       X5, X13, X6
	VCMPSS       $4, X12, X5, X7
	VANDPS       X7, X6, X6
	VMOVSS       X5, (R9)(BX*4)
	VBROADCASTSS X6, Y6

	// u = min(15, trunc(x*id + 8.5)), low nibble
	VMULPS     Y6, Y0, Y0
	VMULPS     Y6, Y1, Y1
	VMULPS     Y6, Y2, Y2
	VMULPS     Y6, Y3, Y3
	VADDPS     Y11, Y0, Y0
	VADDPS     Y11, Y1, Y1
	VADDPS     Y11, Y2, Y2
	VADDPS     Y11, Y3, Y3
	VCVTTPS2DQ Y0, Y0
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y2, Y2
	VCVTTPS2DQ Y3, Y3
	VPMINSD    Y10, Y0, Y0
	VPMINSD    Y10, Y1, Y1
	VPMINSD    Y10, Y2, Y2
	VPMINSD    Y10, Y3, Y3
	VPAND      Y10, Y0, Y0
	VPAND      Y10, Y1, Y1
	VPAND      Y10, Y2, Y2
	VPAND      Y10, Y3, Y3

	// byte j = u[j] | u[j+16]<<4, packed in order
	VPSLLD    $4, Y2, Y2
	VPSLLD    $4, Y3, Y3
	VPOR      Y2, Y0, Y0
	VPOR      Y3, Y1, Y1
	VPACKUSDW Y1, Y0, Y0
	VPERMQ    $0xd8, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKUSWB X1, X0, X0
	VMOVDQU   X0, (R8)

	ADDQ $128, SI
	ADDQ $16, R8
	INCQ BX
	JMP  loopq4

doneq4:
	VZEROUPPER
	RET
