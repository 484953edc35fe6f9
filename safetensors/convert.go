package safetensors

import (
	"fmt"
	"math"
	"unsafe"
)

// Convert returns a copy of t with its elements converted to the dtype to.
// F32, F16 and BF16 convert among each other, rounding to nearest even;
// values too large for F16 become infinities, NaNs stay NaNs (quiet, with
// the sign kept). Converting to the same dtype copies the data.
func Convert(t *Tensor, to DType) (*Tensor, error) {
	if !isFloat(to) {
		return nil, fmt.Errorf("tensor %s: cannot convert to %s (only F32, F16 and BF16)", t.Name, to)
	}
	src, err := ToF32(t)
	if err != nil {
		return nil, err
	}
	out := &Tensor{Name: t.Name, DType: to, Shape: append([]int(nil), t.Shape...)}
	switch to {
	case F32:
		dst := make([]float32, len(src))
		copy(dst, src)
		out.Data = asBytes(dst)
	case BF16:
		if t.DType == BF16 {
			out.Data = append([]byte(nil), t.Data...)
			break
		}
		dst := make([]uint16, len(src))
		for i, x := range src {
			dst[i] = F32ToBF16(x)
		}
		out.Data = asBytes(dst)
	case F16:
		if t.DType == F16 {
			out.Data = append([]byte(nil), t.Data...)
			break
		}
		dst := make([]uint16, len(src))
		for i, x := range src {
			dst[i] = F32ToF16(x)
		}
		out.Data = asBytes(dst)
	}
	return out, nil
}

// ToF32 returns the elements of an F32, F16 or BF16 tensor as float32. For
// F32 the result aliases t.Data when it is aligned (see Tensor.F32);
// otherwise it is a fresh slice. Widening is exact.
func ToF32(t *Tensor) ([]float32, error) {
	switch t.DType {
	case F32:
		return t.F32()
	case F16, BF16:
		words, err := t.U16()
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(words))
		conv := F16ToF32
		if t.DType == BF16 {
			conv = BF16ToF32
		}
		for i, w := range words {
			out[i] = conv(w)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %s: cannot widen %s to F32 (only F32, F16 and BF16)", t.Name, t.DType)
}

func isFloat(d DType) bool { return d == F32 || d == F16 || d == BF16 }

// asBytes reinterprets a slice of fixed-size numbers as its bytes.
func asBytes[T uint16 | float32](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// BF16ToF32 widens a bfloat16 (the top half of a float32) exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 rounds a float32 to the nearest bfloat16, ties to even.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: truncating could turn it into Inf
		return uint16(b>>16) | 0x0040
	}
	// Adding 0x7fff plus the lowest kept bit rounds half to even; a carry
	// out of the mantissa correctly bumps the exponent (up to Inf).
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToF32 widens an IEEE 754 half-precision value exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f && man == 0: // Inf
		return math.Float32frombits(sign | 0x7f800000)
	case exp == 0x1f: // NaN: keep the payload, make it quiet as hardware does
		return math.Float32frombits(sign | 0x7fc00000 | man<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: man * 2^-24, exact in float32.
	v := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// F32ToF16 rounds a float32 to the nearest half-precision value, ties to
// even. Values beyond the f16 range become infinities; tiny values become
// subnormals or zero.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 { // NaN: keep the top payload bits, force quiet
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // the f16 biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal result: the value is m * 2^(e-25) with the implicit
		// bit restored, and an f16 subnormal counts units of 2^-24.
		if e < -10 {
			return sign // below half the smallest subnormal
		}
		m := man | 0x800000
		shift := uint(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	// Normal: keep 10 mantissa bits; a rounding carry bumps the exponent,
	// possibly to Inf (0x7c00), which is the right answer.
	return sign | uint16(roundShift(uint32(e)<<23|man, 13))
}

// roundShift returns x >> s rounded to nearest, ties to even.
func roundShift(x uint32, s uint) uint32 {
	r := x >> s
	rem := x & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return r
}
