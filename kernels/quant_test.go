package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantizeQ8HandValues(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3] = 2.54, -1.27, 0.01, 0.03 // d = 2.54/127 = 0.02
	m := QuantizeQ8(&Mat{Rows: 1, Cols: 32, Type: F32, F32: x})
	if m.Type != Q8_0 {
		t.Fatalf("Type = %v, want q8_0", m.Type)
	}
	// 0.02 = 1.28 * 2^-6; as f16, 0.28*1024 = 286.72 rounds to 287:
	// sign 0, exponent 9, mantissa 0x11f.
	if d := m.Scales[0]; d != 0x251f {
		t.Errorf("scale = %#04x (%g), want 0x251f (0.02 as f16)", d, F16ToF32(d))
	}
	// 0.01/0.02 = 0.5 rounds away from zero to 1; 0.03/0.02 = 1.5 to 2.
	want := []int8{127, -64, 1, 2, 0}
	for i, w := range want {
		if m.Q[i] != w {
			t.Errorf("q[%d] = %d, want %d", i, m.Q[i], w)
		}
	}
}

func TestQuantizeQ8ZeroBlock(t *testing.T) {
	m := QuantizeQ8(&Mat{Rows: 1, Cols: 32, Type: F32, F32: make([]float32, 32)})
	if m.Scales[0] != 0 || m.Q[0] != 0 {
		t.Errorf("zero block: scale %#04x q %d, want 0 0", m.Scales[0], m.Q[0])
	}
}

func TestQuantizeQ8Fallback(t *testing.T) {
	m := &Mat{Rows: 2, Cols: 33, Type: F32, F32: make([]float32, 66)}
	if q := QuantizeQ8(m); q != m {
		t.Errorf("Cols 33: got a new matrix of type %v, want m itself", q.Type)
	}
}

// TestQuantizeQ8Error checks the defining bound |q*d - x| <= d/2 for every
// weight (up to the rounding of x * (1/d)), widened by the f16 rounding of
// the stored scale (|q| <= 127 times at most 2^-11 d), for each source type,
// and the size of the error of a product.
func TestQuantizeQ8Error(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const rows, cols = 64, 576
	for _, typ := range []Type{F32, BF16, F16} {
		m := randMat(r, typ, rows, cols)
		q := QuantizeQ8(m)
		want := make([]float32, cols)
		got := make([]float32, cols)
		for i := 0; i < rows; i++ {
			m.Row(want, i)
			q.Row(got, i)
			for j := range got {
				d := F16ToF32(q.Scales[(i*cols+j)/BlockSize])
				if e := math.Abs(float64(got[j] - want[j])); e > float64(d)*(0.5+127.0/2048)*(1+1e-4) {
					t.Fatalf("%v [%d,%d]: %g quantized to %g, error above d/2 = %g", typ, i, j, want[j], got[j], d/2)
				}
			}
		}
		x := randVec(r, cols)
		yf := make([]float32, rows)
		yq := make([]float32, rows)
		MatVec(yf, m, x)
		MatVec(yq, q, x)
		var num, den float64
		for i := range yf {
			num += float64((yq[i] - yf[i]) * (yq[i] - yf[i]))
			den += float64(yf[i] * yf[i])
		}
		// Uniform rounding error of d/2 ~ amax/254 on Gaussian weights gives
		// about 0.6% relative error on a random product.
		if rel := math.Sqrt(num / den); rel > 1e-2 {
			t.Errorf("%v: relative error of a Q8_0 product %g, want < 1e-2", typ, rel)
		}
	}
}

// TestQuantizeInto: QuantizeQ8Into and QuantizeQ4Into write into the
// caller's memory the values of the Go reference quantizers, and leave it
// untouched for a matrix they do not quantize.
func TestQuantizeInto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := randMat(r, BF16, 5, 64)
	n := m.Rows * m.Cols
	// The references, row by row: the Go quantizers as llama.cpp writes them.
	x := make([]float32, n)
	wq8, wd8 := make([]int8, n), make([]float32, n/BlockSize)
	wq4, ws4 := make([]uint8, n/2), make([]uint16, n/BlockSize)
	for i := 0; i < m.Rows; i++ {
		m.Row(x[i*m.Cols:(i+1)*m.Cols], i)
	}
	quantizeRowQ8(wq8, wd8, x)
	quantizeRowQ4Loop(wq4, ws4, x)
	q8, s8 := make([]int8, n+7), make([]uint16, n/BlockSize+3) // longer than needed
	got := QuantizeQ8Into(m, q8, s8)
	if got.Type != Q8_0 || &got.Q[0] != &q8[0] || &got.Scales[0] != &s8[0] || len(got.Q) != n || len(got.Scales) != n/BlockSize {
		t.Fatalf("Q8 result does not use the given memory: %v", got.Type)
	}
	for i := range wq8 {
		if got.Q[i] != wq8[i] || i < len(wd8) && got.Scales[i] != F32ToF16(wd8[i]) {
			t.Fatalf("Q8 differs at %d", i)
		}
	}
	q4, s4 := make([]uint8, n/2), make([]uint16, n/BlockSize)
	got = QuantizeQ4Into(m, q4, s4)
	if got.Type != Q4_0 || &got.Q4[0] != &q4[0] || &got.Scales[0] != &s4[0] {
		t.Fatalf("Q4 result does not use the given memory: %v", got.Type)
	}
	for i := range wq4 {
		if got.Q4[i] != wq4[i] || i < len(ws4) && got.Scales[i] != ws4[i] {
			t.Fatalf("Q4 differs at %d", i)
		}
	}
	odd := &Mat{Rows: 2, Cols: 33, Type: F32, F32: make([]float32, 66)}
	q8[0] = 9
	if QuantizeQ8Into(odd, q8, s8) != odd || QuantizeQ4Into(got, q4, s4) != got || q8[0] != 9 {
		t.Error("a matrix that is not quantized was, or its memory was written")
	}
	if Quantizes(odd, Q8_0) || Quantizes(got, Q4_0) || !Quantizes(got, Q8_0) || !Quantizes(m, Q4_0) {
		t.Error("Quantizes")
	}
}

// TestQuantizeQ8Paths: on every path QuantizeQ8 gives the values of
// quantizeRowQ8, the Go reference (the SIMD paths go through the
// activations' quantizer), on rows of several lengths and magnitudes.
func TestQuantizeQ8Paths(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, cols := range []int{32, 96, 896} {
			m := randMat(r, BF16, 7, cols)
			for i := range m.Half { // magnitudes over many octaves, some exact halves
				if i%5 == 0 {
					m.Half[i] = F32ToBF16(float32(r.IntN(509)-254) / 2 * float32(math.Pow(2, float64(r.IntN(20)-10))))
				}
			}
			q := QuantizeQ8(m)
			row, d := make([]float32, cols), make([]float32, cols/BlockSize)
			want := make([]int8, cols)
			for i := 0; i < m.Rows; i++ {
				m.Row(row, i)
				quantizeRowQ8(want, d, row)
				for j := range want {
					if q.Q[i*cols+j] != want[j] {
						t.Fatalf("cols %d row %d: q[%d] = %d, want %d", cols, i, j, q.Q[i*cols+j], want[j])
					}
				}
				for b := range d {
					if q.Scales[i*cols/BlockSize+b] != F32ToF16(d[b]) {
						t.Fatalf("cols %d row %d: scale %d differs", cols, i, b)
					}
				}
			}
		}
	})
}

// BenchmarkQuantize times quantizing a bf16 4864x896 matrix (an MLP
// projection of Qwen2.5-0.5B) at load, on one thread.
func BenchmarkQuantize(b *testing.B) {
	SetThreads(1)
	defer SetThreads(0)
	m := randMat(rand.New(rand.NewPCG(1, 2)), BF16, 4864, 896)
	for _, c := range []struct {
		name string
		f    func(*Mat) *Mat
	}{{"q8_0", QuantizeQ8}, {"q4_0", QuantizeQ4}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(2 * m.Rows * m.Cols))
			for b.Loop() {
				c.f(m)
			}
		})
	}
}

// quantizeRowQ4Loop is quantize_row_q4_0_ref written as llama.cpp writes
// it, a comparison per weight: quantizeRowQ4 is held to it.
func quantizeRowQ4Loop(q []uint8, scales []uint16, x []float32) {
	for b := range scales {
		blk := x[b*BlockSize : (b+1)*BlockSize]
		var amax, mx float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); amax < a {
				amax, mx = a, v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		scales[b] = F32ToF16(d)
		u := func(v float32) uint8 { return uint8(min(15, int8(float32(v*id)+8.5))) }
		for j := 0; j < BlockSize/2; j++ {
			q[b*BlockSize/2+j] = u(blk[j]) | u(blk[j+BlockSize/2])<<4
		}
	}
}

// TestQuantizeRowQ4: on every path, the same bytes and scales as the
// comparison loop (quantizeRowQ4, and the assembly where there is one) on
// random blocks, blocks whose largest magnitude appears twice with either
// sign, zeros, negative zeros, infinities, NaNs and tiny (subnormal)
// weights.
func TestQuantizeRowQ4(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(31, 32))
		for trial := range 3000 {
			x := randVec(r, (1+trial%5)*BlockSize)
			switch trial % 7 {
			case 1: // ties for the largest magnitude, of both signs
				for i := range x {
					x[i] = float32(r.IntN(7) - 3)
				}
			case 2:
				clear(x[:BlockSize])
				x[5] = float32(math.Copysign(0, -1))
			case 3:
				x[r.IntN(len(x))] = float32(math.NaN())
				x[r.IntN(BlockSize)] = float32(math.NaN())
			case 4:
				x[r.IntN(len(x))] = float32(math.Inf(1 - 2*r.IntN(2)))
			case 5:
				for i := range BlockSize {
					x[i] = float32(math.NaN())
				}
			case 6:
				for i := range x {
					x[i] *= 1e-40
				}
			}
			wq := make([]uint8, len(x)/2)
			ws := make([]uint16, len(x)/BlockSize)
			quantizeRowQ4Loop(wq, ws, x)
			gq, gs := make([]uint8, len(x)/2), make([]uint16, len(x)/BlockSize)
			quantizeRowQ4(gq, gs, x)
			if !slices.Equal(gq, wq) || !slices.Equal(gs, ws) {
				t.Fatalf("trial %d: got %v %v, want %v %v (x %v)", trial, gq, gs, wq, ws, x)
			}
			if quantQ4Impl == nil {
				continue
			}
			aq, d := make([]uint8, len(x)/2), make([]float32, len(x)/BlockSize)
			quantQ4Impl(aq, d, x)
			for b, v := range d {
				gs[b] = F32ToF16(v)
			}
			if !slices.Equal(aq, wq) || !slices.Equal(gs, ws) {
				t.Fatalf("trial %d: assembly %v %v, want %v %v (x %v)", trial, aq, gs, wq, ws, x)
			}
		}
	})
}
