package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeQ4HandValues follows llama.cpp's quantize_row_q4_0_ref by
// hand: the largest magnitude is -1.6, so d = -1.6/-8 = 0.2 (f16: exponent
// -3, mantissa 0.6*1024 = 614.4 -> 614: 0x3266) and u = min(15,
// trunc(x*5 + 8.5)).
func TestQuantizeQ4HandValues(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[2], x[16], x[17] = -1.6, 0.8, 1.5, 0.4, -0.1
	m := QuantizeQ4(&Mat{Rows: 1, Cols: 32, Type: F32, F32: x})
	if m.Type != Q4_0 || len(m.Q4) != 16 || len(m.Scales) != 1 {
		t.Fatalf("got %v with %d bytes and %d scales", m.Type, len(m.Q4), len(m.Scales))
	}
	if m.Scales[0] != 0x3266 {
		t.Errorf("scale %#04x, want 0x3266", m.Scales[0])
	}
	// u: x[0] 0.5 -> 0, x[1] 12.5 -> 12, x[2] 16 -> 15 (clamped),
	// x[16] 10.5 -> 10, x[17] 8 -> 8, zeros 8.5 -> 8.
	want := []uint8{0 | 10<<4, 12 | 8<<4, 15 | 8<<4, 0x88}
	for i, w := range want {
		if m.Q4[i] != w {
			t.Errorf("byte %d = %#02x, want %#02x", i, m.Q4[i], w)
		}
	}
	row := make([]float32, 32)
	m.Row(row, 0)
	d := F16ToF32(0x3266)
	for i, u := range map[int]float32{0: 0, 1: 12, 2: 15, 16: 10, 17: 8, 5: 8} {
		if row[i] != (u-8)*d {
			t.Errorf("Row[%d] = %g, want %g", i, row[i], (u-8)*d)
		}
	}
	if q := QuantizeQ4(m); q != m {
		t.Error("quantizing Q4_0 again made a new matrix")
	}
}

// TestQ4Error measures a Q4_0 product's error against float32 (the
// weights' 4-bit rounding and the activations' 8-bit one), as TestQ8 does
// for Q8_0, and bounds it.
func TestQ4Error(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const rows, cols = 256, 896
	m := randMat(r, F32, rows, cols)
	x := randVec(r, cols)
	yf := make([]float32, rows)
	MatVec(yf, m, x)
	for _, typ := range []Type{Q8_0, Q4_0} {
		q := QuantizeQ8(m)
		if typ == Q4_0 {
			q = QuantizeQ4(m)
		}
		yq := make([]float32, rows)
		MatVec(yq, q, x)
		var se, ss float64
		for i := range yf {
			se += float64((yq[i] - yf[i]) * (yq[i] - yf[i]))
			ss += float64(yf[i] * yf[i])
		}
		nmse := se / ss
		t.Logf("%v: NMSE of a random product against f32 %.3g", typ, nmse)
		if lim := map[Type]float64{Q8_0: 3e-4, Q4_0: 2e-2}[typ]; nmse > lim || math.IsNaN(nmse) {
			t.Errorf("%v: NMSE %.3g above %g", typ, nmse, lim)
		}
	}
}
