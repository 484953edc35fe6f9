package safetensors

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/x448/float16"
)

// TestNonFinite checks the bit tests against math.IsNaN/IsInf of the
// widened values, for every float dtype and for values next to the limits.
func TestNonFinite(t *testing.T) {
	vals := []float64{0, 1, -2.5, math.MaxFloat32, -math.SmallestNonzeroFloat32, 65504, math.Inf(1), math.NaN(), math.Inf(-1), 3}
	for _, dt := range []DType{F64, F32, F16, BF16} {
		data := make([]byte, dt.Size()*len(vals))
		var want int64
		wantFirst := int64(-1)
		for i, v := range vals {
			var back float64
			switch dt {
			case F64:
				binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
				back = v
			case F32:
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(v)))
				back = float64(float32(v))
			case F16:
				h := float16.Fromfloat32(float32(v))
				binary.LittleEndian.PutUint16(data[2*i:], h.Bits())
				back = float64(h.Float32())
			case BF16:
				b := uint16(math.Float32bits(float32(v)) >> 16)
				binary.LittleEndian.PutUint16(data[2*i:], b)
				back = float64(math.Float32frombits(uint32(b) << 16))
			}
			if math.IsNaN(back) || math.IsInf(back, 0) {
				want++
				if wantFirst < 0 {
					wantFirst = int64(i)
				}
			}
		}
		got, first := NonFinite(&Tensor{DType: dt, Shape: []int{len(vals)}, Data: data})
		if got != want || first != wantFirst {
			t.Errorf("%s: %d non-finite, first %d; want %d, first %d", dt, got, first, want, wantFirst)
		}
	}
	// A tensor large enough to be split over goroutines.
	big := make([]byte, 4*(3<<20))
	binary.LittleEndian.PutUint32(big[4*(2<<20+5):], math.Float32bits(float32(math.NaN())))
	binary.LittleEndian.PutUint32(big[4*(3<<20-1):], math.Float32bits(float32(math.Inf(-1))))
	if n, first := NonFinite(&Tensor{DType: F32, Shape: []int{3 << 20}, Data: big}); n != 2 || first != 2<<20+5 {
		t.Errorf("large tensor: %d non-finite, first %d", n, first)
	}
	if n, first := NonFinite(&Tensor{DType: I32, Shape: []int{1}, Data: []byte{0xff, 0xff, 0xff, 0x7f}}); n != 0 || first != -1 {
		t.Errorf("I32: %d, %d", n, first)
	}
}

func BenchmarkNonFinite(b *testing.B) {
	data := make([]byte, 256<<20)
	tn := &Tensor{DType: BF16, Shape: []int{len(data) / 2}, Data: data}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		NonFinite(tn)
	}
}

// BenchmarkReadBaseline reads the same bytes doing the least work (an XOR
// of 8-byte words): the memory-bandwidth baseline for BenchmarkNonFinite.
func BenchmarkReadBaseline(b *testing.B) {
	data := make([]byte, 256<<20)
	b.SetBytes(int64(len(data)))
	var sink uint64
	for b.Loop() {
		for j := 0; j+8 <= len(data); j += 8 {
			sink ^= binary.LittleEndian.Uint64(data[j : j+8])
		}
	}
	_ = sink
}
