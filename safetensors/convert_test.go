package safetensors

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// Expected bit patterns below are worked out by hand from the IEEE 754
// layouts: f32 = 1+8+23 bits (bias 127), f16 = 1+5+10 (bias 15), bf16 = the
// top 16 bits of f32.

func TestF32ToBF16(t *testing.T) {
	tests := []struct {
		in   uint32
		want uint16
		what string
	}{
		{0x3f800000, 0x3f80, "1"},
		{0x80000000, 0x8000, "-0"},
		{0x3f808000, 0x3f80, "tie, kept bit even: down"},
		{0x3f818000, 0x3f82, "tie, kept bit odd: up"},
		{0x3f808001, 0x3f81, "just above the tie: up"},
		{0x3f807fff, 0x3f80, "just below the tie: down"},
		{0xbf80c000, 0xbf81, "negative rounds by magnitude"},
		{0x7f7fffff, 0x7f80, "max float32 overflows to +Inf"},
		{0x7f7f7fff, 0x7f7f, "largest value that stays finite"},
		{0x7f800000, 0x7f80, "+Inf"},
		{0xff800000, 0xff80, "-Inf"},
		{0x7fc00000, 0x7fc0, "quiet NaN"},
		{0x7f800001, 0x7fc0, "NaN with only low payload stays NaN"},
		{0xff800001, 0xffc0, "negative NaN"},
		{0x00000001, 0x0000, "smallest subnormal rounds to 0"},
		{0x00018000, 0x0002, "subnormal tie to even"},
		{0x007fffff, 0x0080, "largest subnormal rounds up to smallest normal"},
	}
	for _, tt := range tests {
		if got := F32ToBF16(math.Float32frombits(tt.in)); got != tt.want {
			t.Errorf("F32ToBF16(%#08x) (%s) = %#04x, want %#04x", tt.in, tt.what, got, tt.want)
		}
	}
}

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		in   uint32
		want uint16
		what string
	}{
		{0x3f800000, 0x3c00, "1"},
		{0xc0000000, 0xc000, "-2"},
		{0x80000000, 0x8000, "-0"},
		{0x3eaaaaab, 0x3555, "1/3"},
		{0x477fe000, 0x7bff, "65504, the largest f16"},
		{0x477fefff, 0x7bff, "just below 65520: stays finite"},
		{0x477ff000, 0x7c00, "65520: tie between 65504 (odd) and 65536 rounds to Inf"},
		{0x49742400, 0x7c00, "1e6 overflows"},
		{0x3f801000, 0x3c00, "1 + 2^-11: tie, even: down"},
		{0x3f803000, 0x3c02, "1 + 3*2^-11: tie, odd: up"},
		{0x3f801001, 0x3c01, "just above a tie"},
		{0x38800000, 0x0400, "2^-14, smallest normal"},
		{0x387fc000, 0x03ff, "largest subnormal"},
		{0x33800000, 0x0001, "2^-24, smallest subnormal"},
		{0x33000000, 0x0000, "2^-25: tie between 0 and 1: even, 0"},
		{0x33000001, 0x0001, "just above 2^-25: up"},
		{0x33400000, 0x0001, "0.75*2^-24: nearest is 1"},
		{0x33c00000, 0x0002, "1.5*2^-24: tie between 1 and 2: even, 2"},
		{0x34200000, 0x0002, "2.5*2^-24: tie between 2 and 3: even, 2"},
		{0x32ffffff, 0x0000, "below half the smallest subnormal"},
		{0xb3800000, 0x8001, "-2^-24"},
		{0x387fe000, 0x0400, "rounds up from subnormal to normal"},
		{0x00000001, 0x0000, "f32 subnormal"},
		{0x7f800000, 0x7c00, "+Inf"},
		{0xff800000, 0xfc00, "-Inf"},
		{0x7fc00000, 0x7e00, "quiet NaN"},
		{0x7f800001, 0x7e00, "NaN with only low payload stays NaN"},
		{0xffc02000, 0xfe01, "negative NaN keeps top payload bits"},
	}
	for _, tt := range tests {
		if got := F32ToF16(math.Float32frombits(tt.in)); got != tt.want {
			t.Errorf("F32ToF16(%#08x) (%s) = %#04x, want %#04x", tt.in, tt.what, got, tt.want)
		}
	}
}

func TestF16ToF32(t *testing.T) {
	tests := []struct {
		in   uint16
		want uint32
	}{
		{0x3c00, 0x3f800000},
		{0x8000, 0x80000000},
		{0x0001, 0x33800000},
		{0x8001, 0xb3800000},
		{0x03ff, 0x387fc000},
		{0x0400, 0x38800000},
		{0x3555, 0x3eaaa000},
		{0x7bff, 0x477fe000},
		{0x7c00, 0x7f800000},
		{0xfc00, 0xff800000},
		{0x7e00, 0x7fc00000},
		{0x7c01, 0x7fc02000}, // signalling NaN comes back quiet, as F16C does
	}
	for _, tt := range tests {
		if got := math.Float32bits(F16ToF32(tt.in)); got != tt.want {
			t.Errorf("F16ToF32(%#04x) = %#08x, want %#08x", tt.in, got, tt.want)
		}
	}
	if got := math.Float32bits(BF16ToF32(0xbf81)); got != 0xbf810000 {
		t.Errorf("BF16ToF32(0xbf81) = %#08x", got)
	}
}

// TestF16Exhaustive checks every half value against a second, independent
// implementation (x448/float16) and that narrowing undoes widening.
func TestF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		x := F16ToF32(uint16(h))
		if ref := float16.Frombits(uint16(h)).Float32(); math.Float32bits(x) != math.Float32bits(ref) {
			t.Fatalf("F16ToF32(%#04x) = %#08x, x448/float16 says %#08x", h, math.Float32bits(x), math.Float32bits(ref))
		}
		if x != x {
			continue
		}
		if back := F32ToF16(x); back != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back)
		}
	}
	// Random float32 values, including the neighbourhood of each f16
	// midpoint, against x448/float16 (which rounds to nearest even).
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		var b uint32
		if i%2 == 0 {
			b = r.Uint32()
		} else { // an f16 midpoint, +-1 ulp of f32
			h := uint32(r.IntN(0x7bff))
			b = math.Float32bits(F16ToF32(uint16(h)))&^0x1fff | 0x1000
			b += uint32(r.IntN(3)) - 1
			b |= r.Uint32() & 0x80000000
		}
		x := math.Float32frombits(b)
		if x != x {
			continue
		}
		if got, want := F32ToF16(x), float16.Fromfloat32(x).Bits(); got != want {
			t.Fatalf("F32ToF16(%#08x) = %#04x, x448/float16 says %#04x", b, got, want)
		}
	}
}

func TestConvert(t *testing.T) {
	le := binary.LittleEndian
	words := func(ws ...uint16) []byte {
		var b []byte
		for _, w := range ws {
			b = le.AppendUint16(b, w)
		}
		return b
	}
	f32 := &Tensor{Name: "w", DType: F32, Shape: []int{1, 3}, Data: f32bytes(1, float32(math.Inf(-1)), math.Float32frombits(0x3eaaaaab))}
	tests := []struct {
		in   *Tensor
		to   DType
		want []byte
	}{
		{f32, BF16, words(0x3f80, 0xff80, 0x3eab)},
		{f32, F16, words(0x3c00, 0xfc00, 0x3555)},
		{f32, F32, f32.Data},
		// f16 1/3 widens exactly to 0x3eaaa000 and rounds up to bf16 0x3eab.
		{&Tensor{Name: "h", DType: F16, Shape: []int{2}, Data: words(0x3555, 0x0001)}, BF16, words(0x3eab, 0x3380)},
		// bf16 0x4780 = 65536 overflows f16; 0x3f81 = 1.0078125 is exact.
		{&Tensor{Name: "b", DType: BF16, Shape: []int{2}, Data: words(0x4780, 0x3f81)}, F16, words(0x7c00, 0x3c08)},
		{&Tensor{Name: "b", DType: BF16, Shape: []int{1}, Data: words(0x3f81)}, F32, le.AppendUint32(nil, 0x3f810000)},
		{&Tensor{Name: "b", DType: BF16, Shape: []int{1}, Data: words(0x3f81)}, BF16, words(0x3f81)},
	}
	for _, tt := range tests {
		got, err := Convert(tt.in, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != tt.to || !equalInts(got.Shape, tt.in.Shape) || string(got.Data) != string(tt.want) || got.Name != tt.in.Name {
			t.Errorf("Convert(%s %s, %s) = %s %v % x, want % x", tt.in.Name, tt.in.DType, tt.to, got.DType, got.Shape, got.Data, tt.want)
		}
		if len(got.Data) > 0 && len(tt.in.Data) > 0 && &got.Data[0] == &tt.in.Data[0] {
			t.Errorf("Convert(%s, %s) aliases its input", tt.in.DType, tt.to)
		}
	}
	if _, err := Convert(&Tensor{Name: "i", DType: I32, Shape: []int{1}, Data: make([]byte, 4)}, F32); err == nil || err.Error() != "tensor i: cannot widen I32 to F32 (only F32, F16 and BF16)" {
		t.Errorf("Convert from I32: %v", err)
	}
	if _, err := Convert(f32, I8); err == nil || err.Error() != "tensor w: cannot convert to I8 (only F32, F16 and BF16)" {
		t.Errorf("Convert to I8: %v", err)
	}
	if _, err := ToF32(&Tensor{Name: "s", DType: F16, Shape: []int{2}, Data: make([]byte, 2)}); err == nil {
		t.Error("ToF32 of a tensor with short data succeeded")
	}
}
