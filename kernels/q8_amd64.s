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
