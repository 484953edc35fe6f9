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

// q4TestMat returns a rows x cols Q4_0 matrix with random bytes (nibbles
// 0..15, or all 0 or all 15 in extreme rows) and scales drawn from scales
// (f16 bits).
func q4TestMat(r *rand.Rand, rows, cols int, scales []uint16) *Mat {
	m := &Mat{Rows: rows, Cols: cols, Type: Q4_0, Q4: make([]uint8, rows*cols/2), Scales: make([]uint16, rows*cols/BlockSize)}
	for i := 0; i < rows; i++ {
		row := m.Q4[i*cols/2 : (i+1)*cols/2]
		for j := range row {
			switch i % 3 {
			case 0:
				row[j] = uint8(r.Uint32())
			case 1: // nibbles 0 and 15 only
				row[j] = []uint8{0x00, 0xff, 0x0f, 0xf0}[r.IntN(4)]
			default:
				row[j] = uint8(r.Uint32()) | 0x88 // u >= 8: a weight >= 0
			}
		}
	}
	for i := range m.Scales {
		m.Scales[i] = scales[r.IntN(len(scales))]
	}
	return m
}

// q4TestActs returns n tokens of cols activations already quantized, with
// the records the assembly reads (packRecs): values random or at the
// extremes -128 and 127 (which the activation quantizer never makes, but
// the kernels must take), scales drawn from scales.
func q4TestActs(r *rand.Rand, n, cols int, scales []float32) *q8Acts {
	nb, nr := cols/BlockSize, q8RecsPerRow(cols)
	a := &q8Acts{n: n, cols: cols, q: make([]int8, n*cols), s: make([]float32, n*nb), rec: make([]q8Rec, n*nr)}
	for t := 0; t < n; t++ {
		q := a.q[t*cols : (t+1)*cols]
		for j := range q {
			switch t % 3 {
			case 0:
				q[j] = int8(r.Uint32())
			case 1:
				q[j] = []int8{-128, 127}[r.IntN(2)]
			default:
				q[j] = -128
			}
		}
		for b := 0; b < nb; b++ {
			a.s[t*nb+b] = scales[r.IntN(len(scales))]
		}
		packRecs(a.rec[t*nr:(t+1)*nr], q, a.s[t*nb:(t+1)*nb])
	}
	return a
}

var q4Shapes = struct{ rows, ns, cols []int }{
	rows: []int{1, 3, 4, 5, 7, 9, 13},
	ns:   []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17},
	cols: []int{32, 64, 96, 160, 896, 4864},
}

// q4TestRows returns the row counts to test: under -short (the race run) a
// few that still leave rows to the row kernel after whole tiles.
func q4TestRows() []int {
	if testing.Short() {
		return []int{1, 5, 13}
	}
	return q4Shapes.rows
}

// TestQ4MatMulExact holds every path's Q4_0 product (the 4x4 tile, the
// row kernel over the rows and tokens the tiles leave, the Go tail of an
// odd last block) to refQ4Rows bit for bit, on values whose float
// arithmetic is exact in any order: weight scales 0 and ±1, activation
// scales 0, 1 and 2, so that every partial sum is an integer below 2^24
// (at most 152 blocks of |dot| <= 32*8*128, times 2). A wrong nibble,
// offset, correction, block scale or tail changes the result.
func TestQ4MatMulExact(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(41, 42))
		for _, cols := range q4Shapes.cols {
			for _, rows := range q4TestRows() {
				m := q4TestMat(r, rows, cols, []uint16{0x0000, 0x3c00, 0xbc00, 0x3c00})
				ns := q4Shapes.ns
				if cols == 4864 && rows == 13 {
					ns = append(ns, 36) // two token blocks of the tile
				}
				for _, n := range ns {
					a := q4TestActs(r, n, cols, []float32{0, 1, 2, 1})
					want := make([]float32, n*rows)
					for tok := 0; tok < n; tok++ {
						refQ4Rows(want[tok*rows:(tok+1)*rows], m, a, tok, 0, rows)
					}
					got := make([]float32, n*rows)
					for i := range got {
						got[i] = float32(math.NaN()) // every output must be written
					}
					q4MatMulRows(got, m, a, n, 0, rows)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%dx%d n=%d: token %d row %d = %g, reference %g", rows, cols, n, i/rows, i%rows, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestQ4MatMulRandom checks the Q4_0 product of random weights and
// activations on every path: MatMul (the tiles) equals MatVec (the row
// kernel) token by token bit for bit, as prefill and decoding must agree,
// and both are within float rounding of refQ4Rows.
func TestQ4MatMulRandom(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(43, 44))
		for _, cols := range q4Shapes.cols {
			if testing.Short() && cols > 896 {
				continue // TestQ4MatMulExact has the long rows
			}
			for _, rows := range q4TestRows() {
				m := randMat(r, Q4_0, rows, cols)
				for i := 0; i < rows; i += 3 {
					m.Scales[i*cols/BlockSize] = 0 // a zero block scale
				}
				for _, n := range q4Shapes.ns {
					x := randVec(r, n*cols)
					got := make([]float32, n*rows)
					MatMul(got, m, x, n)
					a := quantizeActs(x, n, cols, false)
					want := make([]float32, n*rows)
					for tok := 0; tok < n; tok++ {
						refQ4Rows(want[tok*rows:(tok+1)*rows], m, a, tok, 0, rows)
					}
					putActs(a)
					one := make([]float32, rows)
					for tok := 0; tok < n; tok++ {
						xt := x[tok*cols : (tok+1)*cols]
						MatVec(one, m, xt)
						mag := absMatVec(m, xt)
						for i := 0; i < rows; i++ {
							g := got[tok*rows+i]
							if math.Float32bits(g) != math.Float32bits(one[i]) {
								t.Fatalf("%dx%d n=%d token %d row %d: MatMul %g, MatVec %g", rows, cols, n, tok, i, g, one[i])
							}
							// mag bounds the products with the unquantized
							// activations; quantized ones are within 1%.
							if w := want[tok*rows+i]; !closeDot(g, w, 1.01*mag[i]) {
								t.Fatalf("%dx%d n=%d token %d row %d: got %g, refQ4Rows %g", rows, cols, n, tok, i, g, w)
							}
						}
					}
				}
			}
		}
	})
}
