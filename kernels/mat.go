package kernels

import (
	"fmt"
	"math"
)

// Type is the storage type of a weight matrix.
type Type uint8

// Weight storage types.
const (
	F32  Type = iota // float32
	BF16             // bfloat16, the high half of a float32
	F16              // IEEE 754 half precision
	Q8_0             // blocks of 32 int8 weights with one f16 scale (llama.cpp's Q8_0)
	Q4_0             // blocks of 32 4-bit weights with one f16 scale (llama.cpp's Q4_0)
)

func (t Type) String() string {
	switch t {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	case Q8_0:
		return "q8_0"
	case Q4_0:
		return "q4_0"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// quantized reports a block type (Q8_0, Q4_0): Cols must be a multiple of
// BlockSize.
func (t Type) quantized() bool { return t == Q8_0 || t == Q4_0 }

// size returns the bytes per weight (Q8_0: the int8 weights alone; Q4_0,
// which packs two weights a byte, also 1).
func (t Type) size() int {
	switch t {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 1
}

// BlockSize is the number of weights that share one scale in Q8_0.
const BlockSize = 32

// Mat is a row-major Rows x Cols weight matrix. Exactly one of the storage
// slices is set, according to Type. F32 and Half may alias a memory map.
type Mat struct {
	Rows, Cols int
	Type       Type
	F32        []float32 // F32: Rows*Cols values
	Half       []uint16  // BF16, F16: Rows*Cols values
	Q          []int8    // Q8_0: Rows*Cols quantized values
	Q4         []uint8   // Q4_0: Rows*Cols/2 bytes, 16 per block: byte j holds weight j+8 in its low nibble, weight j+16 (+8) in its high one
	Scales     []uint16  // Q8_0, Q4_0: Rows*Cols/BlockSize scales (IEEE half bits), block-major along each row
}

// Row returns row i widened to float32 in dst (len Cols).
func (m *Mat) Row(dst []float32, i int) {
	off := i * m.Cols
	switch m.Type {
	case F32:
		copy(dst, m.F32[off:off+m.Cols])
	case BF16, F16:
		Widen(dst[:m.Cols], m.Half[off:off+m.Cols], m.Type)
	case Q8_0:
		for j := 0; j < m.Cols; j++ {
			dst[j] = float32(m.Q[off+j]) * F16ToF32(m.Scales[(off+j)/BlockSize])
		}
	case Q4_0:
		for j := 0; j < m.Cols; j++ {
			dst[j] = float32(q4At(m.Q4, off+j)) * F16ToF32(m.Scales[(off+j)/BlockSize])
		}
	}
}

// BF16ToF32 widens a bfloat16 by a shift.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F16ToF32 widens an IEEE half (through a table built at start-up).
func F16ToF32(h uint16) float32 { return f16Table[h] }

var f16Table = func() *[65536]float32 {
	var t [65536]float32
	for i := range t {
		t[i] = f16ToF32Slow(uint16(i))
	}
	return &t
}()

func f16ToF32Slow(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(frac) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}
