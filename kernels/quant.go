package kernels

import (
	"math"

	"github.com/x448/float16"
)

// F32ToF16 rounds v to the nearest IEEE half, ties to even (as F16C's
// VCVTPS2PH and llama.cpp's GGML_FP32_TO_FP16 do).
func F32ToF16(v float32) uint16 { return float16.Fromfloat32(v).Bits() }

// QuantizeQ8 returns m quantized to Q8_0 the way llama.cpp does it: each
// block of BlockSize consecutive weights of a row gets the scale
// d = max|x|/127 and the weights q = round(x/d) (computed as x * (1/d),
// halves rounded away from zero), and d is stored as f16 (rounded to
// nearest even), as llama.cpp stores it: 34 bytes per 32 weights.
//
// A matrix whose Cols is not a multiple of BlockSize cannot be split into
// blocks; QuantizeQ8 then returns m itself, unquantized, as it does for a
// matrix that is already Q8_0. Callers that must know can compare the
// result's Type.
func QuantizeQ8(m *Mat) *Mat {
	if !Quantizes(m, Q8_0) {
		return m
	}
	return QuantizeQ8Into(m, make([]int8, m.Rows*m.Cols), make([]uint16, m.Rows*m.Cols/BlockSize))
}

// Quantizes reports whether QuantizeQ8 (to Q8_0) or QuantizeQ4 (to Q4_0)
// quantizes m, rather than returning it as it is.
func Quantizes(m *Mat, to Type) bool {
	if m.Cols%BlockSize != 0 || m.Rows*m.Cols == 0 {
		return false
	}
	if to == Q8_0 {
		return m.Type != Q8_0
	}
	return !m.Type.quantized()
}

// QuantizeQ8Into is QuantizeQ8 with the result's weights in q (Rows*Cols
// values) and its scales in scales (Rows*Cols/BlockSize), memory the caller
// placed; when Quantizes(m, Q8_0) is false it returns m and leaves them
// untouched.
func QuantizeQ8Into(m *Mat, q []int8, scales []uint16) *Mat {
	if !Quantizes(m, Q8_0) {
		return m
	}
	q = q[:m.Rows*m.Cols]
	scales = scales[:m.Rows*m.Cols/BlockSize]
	parallel(m.Rows, m.Rows*m.Cols, rowGrain, func(r0, r1 int) {
		row := make([]float32, m.Cols)
		d := make([]float32, m.Cols/BlockSize)
		var rec []q8Rec
		if quantRecsFast {
			rec = make([]q8Rec, q8RecsPerRow(m.Cols))
		}
		for i := r0; i < r1; i++ {
			m.Row(row, i)
			off := i * m.Cols
			if rec != nil {
				// The activations' quantizer: q and d bit for bit as
				// quantizeRowQ8's (TestQuantRecs), records unused.
				quantRecsImpl(rec, q[off:off+m.Cols], d, row)
			} else {
				quantizeRowQ8(q[off:off+m.Cols], d, row)
			}
			for b, v := range d {
				scales[off/BlockSize+b] = F32ToF16(v)
			}
		}
	})
	return &Mat{Rows: m.Rows, Cols: m.Cols, Type: Q8_0, Q: q, Scales: scales}
}

// quantizeRowQ8 quantizes x (a multiple of BlockSize long) into q and scales.
func quantizeRowQ8(q []int8, scales []float32, x []float32) {
	for b := range scales {
		blk := x[b*BlockSize : (b+1)*BlockSize]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		scales[b] = d
		for j, v := range blk {
			q[b*BlockSize+j] = int8(math.Round(float64(v * id)))
		}
	}
}

// QuantizeQ4 returns m quantized to Q4_0 exactly as llama.cpp's
// quantize_row_q4_0_ref does: each block of BlockSize weights takes the
// weight of largest magnitude, m (with its sign), the scale d = m/-8
// (stored as f16) and the values u = min(15, trunc(x/d + 8.5)), so that
// x ~ (u-8)*d; byte j of a block holds u[j] in its low nibble and u[j+16]
// in its high nibble. Like QuantizeQ8, it returns m itself when m is
// already quantized or Cols is not a multiple of BlockSize.
func QuantizeQ4(m *Mat) *Mat {
	if !Quantizes(m, Q4_0) {
		return m
	}
	return QuantizeQ4Into(m, make([]uint8, m.Rows*m.Cols/2), make([]uint16, m.Rows*m.Cols/BlockSize))
}

// QuantizeQ4Into is QuantizeQ4 with the result's packed weights in q
// (Rows*Cols/2 bytes) and its scales in scales (Rows*Cols/BlockSize),
// memory the caller placed; when Quantizes(m, Q4_0) is false it returns m
// and leaves them untouched.
func QuantizeQ4Into(m *Mat, q []uint8, scales []uint16) *Mat {
	if !Quantizes(m, Q4_0) {
		return m
	}
	q = q[:m.Rows*m.Cols/2]
	scales = scales[:m.Rows*m.Cols/BlockSize]
	parallel(m.Rows, m.Rows*m.Cols, rowGrain, func(r0, r1 int) {
		row := make([]float32, m.Cols)
		var d []float32
		if quantQ4Impl != nil {
			d = make([]float32, m.Cols/BlockSize)
		}
		for i := r0; i < r1; i++ {
			m.Row(row, i)
			off := i * m.Cols
			rq, rs := q[off/2:(off+m.Cols)/2], scales[off/BlockSize:(off+m.Cols)/BlockSize]
			if d == nil {
				quantizeRowQ4(rq, rs, row)
				continue
			}
			quantQ4Impl(rq, d, row)
			for b, v := range d {
				rs[b] = F32ToF16(v)
			}
		}
	})
	return &Mat{Rows: m.Rows, Cols: m.Cols, Type: Q4_0, Q4: q, Scales: scales}
}

// quantQ4Impl, when set (assembly), quantizes a row as quantizeRowQ4 does,
// with the scales as float32 (d, one a block) for the caller to round.
var quantQ4Impl func(q []uint8, d []float32, x []float32)

func quantizeRowQ4(q []uint8, scales []uint16, x []float32) {
	for b := range scales {
		blk := x[b*BlockSize : (b+1)*BlockSize]
		// The weight of largest magnitude, the first of equals, found as
		// the largest magnitude's bits (for floats that are not NaN, the
		// order of |v| is that of its bits; NaN counts as 0, as it never
		// wins a comparison), then its first place: no branch on the data
		// in the first loop, where most are mispredicted.
		var top uint32
		for _, v := range blk {
			a := math.Float32bits(v) &^ (1 << 31)
			a &^= uint32(int32(0x7f800000-a) >> 31) // NaN -> 0
			top = max(top, a)
		}
		var mx float32
		if top != 0 {
			for _, v := range blk {
				if math.Float32bits(v)&^(1<<31) == top {
					mx = v
					break
				}
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		scales[b] = F32ToF16(d)
		qb := q[b*BlockSize/2 : (b+1)*BlockSize/2]
		for j := range qb {
			// float32(...) rounds the product: no fused multiply-add.
			lo := min(15, int8(float32(blk[j]*id)+8.5))
			hi := min(15, int8(float32(blk[j+BlockSize/2]*id)+8.5))
			qb[j] = uint8(lo) | uint8(hi)<<4
		}
	}
}

// q4At returns weight i (counted over the whole matrix) of Q4_0 data as
// the signed value u-8.
func q4At(q []uint8, i int) int8 {
	blk, j := i/BlockSize, i%BlockSize
	b := q[blk*BlockSize/2+j%(BlockSize/2)]
	if j >= BlockSize/2 {
		b >>= 4
	}
	return int8(b&15) - 8
}
