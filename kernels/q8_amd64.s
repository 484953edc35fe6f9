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
