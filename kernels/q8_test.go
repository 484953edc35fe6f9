package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeActs checks the activation quantization by hand: the scale is
// max|x|/127, halves round away from zero as in QuantizeQ8, an all-zero
// block gets scale 0, and the records the assembly reads carry each
// block's scale over eight lanes and -128 times its sum.
func TestQuantizeActs(t *testing.T) {
	x := make([]float32, 96)                                      // three blocks: the last record holds one
	x[0], x[1], x[2], x[3], x[4] = 2.54, -1.27, 0.01, -0.03, 0.05 // d = 0.02
	// block 1 is all zero
	x[64], x[65] = -1, 0.5 // d = 1/127; 0.5*127 = 63.5 rounds to 64
	a := quantizeActs(x, 1, 96, true)
	defer putActs(a)
	tests := []struct {
		i    int
		want int8
	}{
		{0, 127}, {1, -64}, {2, 1}, {3, -2}, {4, 3}, {5, 0}, // ±0.5, ±1.5, 2.5 away from zero
		{32, 0}, {63, 0},
		{64, -127}, {65, 64},
	}
	for _, tt := range tests {
		if a.q[tt.i] != tt.want {
			t.Errorf("q[%d] = %d, want %d", tt.i, a.q[tt.i], tt.want)
		}
	}
	wantS := []float32{2.54 / 127, 0, 1.0 / 127}
	for b, w := range wantS {
		if math.Abs(float64(a.s[b]-w)) > 1e-9 {
			t.Errorf("scale %d = %g, want %g", b, a.s[b], w)
		}
	}
	if len(a.rec) != 2 {
		t.Fatalf("%d records, want 2", len(a.rec))
	}
	r0, r1 := a.rec[0], a.rec[1]
	if sum := 127 - 64 + 1 - 2 + 3; r0.c[0] != -128*int32(sum) || r0.c[8] != 0 || r1.c[0] != -128*(-127+64) {
		t.Errorf("corrections %d %d %d, want %d 0 %d", r0.c[0], r0.c[8], r1.c[0], -128*int32(sum), -128*(-127+64))
	}
	for j := 0; j < 8; j++ {
		if r0.s[j] != a.s[0] || r0.s[8+j] != 0 || r1.s[j] != a.s[2] || r1.s[8+j] != 0 {
			t.Fatalf("record scales %v %v", r0.s, r1.s)
		}
	}
	for j := 32; j < 64; j++ {
		if r1.q[j] != 0 || r1.c[j%16] != 0 && j%16 != 0 {
			t.Fatalf("second half of the last record not zero")
		}
	}
}

// TestQ8HandValues checks a product whose quantization is exact: weights
// and activations on the int8 grid, with a value of magnitude 127 in
// every block.
func TestQ8HandValues(t *testing.T) {
	paths(t, func(t *testing.T) {
		const cols = 96
		f := make([]float32, 2*cols)
		x := make([]float32, cols)
		for j := 0; j < cols; j++ {
			f[j] = float32(j%127-63) / 64
			f[cols+j] = -127 / 8.0
			x[j] = float32((j*37)%255-127) / 4
		}
		for b := 0; b < cols/BlockSize; b++ {
			f[b*BlockSize] = 127.0 / 64
			x[b*BlockSize+1] = -127.0 / 4
		}
		var want [2]float64
		for j := 0; j < cols; j++ {
			want[0] += float64(f[j]) * float64(x[j])
			want[1] += float64(f[cols+j]) * float64(x[j])
		}
		m := QuantizeQ8(&Mat{Rows: 2, Cols: cols, Type: F32, F32: f})
		got := make([]float32, 2)
		MatVec(got, m, x)
		for i, w := range want {
			if math.Abs(float64(got[i])-w) > 1e-6*math.Abs(w) {
				t.Errorf("row %d = %g, want %g", i, got[i], w)
			}
		}
	})
}

// TestQ8Accuracy bounds the error of a Q8_0 product (weights and
// activations quantized) against the float32 one, on data shaped like a
// model's: weights of standard deviation 0.02, activations of about 1 with
// a few outliers. On random data the error is dominated by the weights'
// rounding (about 0.55% of a product, see TestQuantizeQ8Error); quantizing
// the activations the same way adds about as much again, in quadrature,
// and a little more in the blocks the outliers widen (about 0.85% in all).
func TestQ8Accuracy(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, sh := range [][2]int{{896, 896}, {256, 4864}, {576, 1536}} {
			rows, cols := sh[0], sh[1]
			f := make([]float32, rows*cols)
			for i := range f {
				f[i] = float32(0.02 * r.NormFloat64())
			}
			x := randVec(r, cols)
			for i := 0; i < cols/256; i++ { // a few outliers per token
				x[r.IntN(cols)] *= 8
			}
			m := &Mat{Rows: rows, Cols: cols, Type: F32, F32: f}
			q := QuantizeQ8(m)
			wq := &Mat{Rows: rows, Cols: cols, Type: F32, F32: make([]float32, rows*cols)}
			for i := 0; i < rows; i++ {
				q.Row(wq.F32[i*cols:(i+1)*cols], i)
			}
			want := make([]float32, rows)
			gotW := make([]float32, rows) // weights quantized, activations not
			got := make([]float32, rows)
			MatVec(want, m, x)
			MatVec(gotW, wq, x)
			MatVec(got, q, x)
			relW, rel := meanRelErr(gotW, want), meanRelErr(got, want)
			t.Logf("%dx%d: mean relative error %.2g (weights alone %.2g)", rows, cols, rel, relW)
			if rel > 2*relW || rel > 1.2e-2 {
				t.Errorf("%dx%d: mean relative error %.2g, weights alone %.2g", rows, cols, rel, relW)
			}
		}
	})
}

// meanRelErr returns sum|got-want| / sum|want|.
func meanRelErr(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		num += math.Abs(float64(got[i] - want[i]))
		den += math.Abs(float64(want[i]))
	}
	return num / den
}

// TestQ8NoAllocs checks that the activation scratch is reused.
func TestQ8NoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	defer SetThreads(0)
	SetThreads(1)
	r := rand.New(rand.NewPCG(15, 16))
	m := randMat(r, Q8_0, 64, 896)
	x := randVec(r, 4*896)
	dst := make([]float32, 4*64)
	for _, n := range []int{1, 4} {
		if a := testing.AllocsPerRun(100, func() { MatMul(dst, m, x, n) }); a > 1 {
			t.Errorf("n=%d: %g allocations per call", n, a)
		}
	}
}

// TestQuantRecs checks that the assembly quantizer matches quantRecsRef bit
// for bit, on random blocks, blocks of exact halves, zero blocks and an
// odd number of blocks.
func TestQuantRecs(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, cols := range []int{32, 64, 96, 896, 4864} {
			for trial := 0; trial < 20; trial++ {
				x := randVec(r, cols)
				switch trial % 4 {
				case 1: // multiples of d/2, so that many values are halves
					for i := range x {
						x[i] = float32(r.IntN(509)-254) / 2 * 0.01
					}
				case 2:
					clear(x[:BlockSize])
				case 3:
					for i := range x {
						x[i] *= float32(math.Pow(10, float64(r.IntN(20)-10)))
					}
				}
				nr := q8RecsPerRow(cols)
				want, got := make([]q8Rec, nr), make([]q8Rec, nr)
				for i := range got { // stale contents must be overwritten
					got[i].c[3], got[i].q[63] = 7, 7
				}
				wq, gq := make([]int8, cols), make([]int8, cols)
				ws, gs := make([]float32, cols/BlockSize), make([]float32, cols/BlockSize)
				quantRecsRef(want, wq, ws, x)
				quantRecsImpl(got, gq, gs, x)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("cols %d trial %d: record %d differs:\n got %v\nwant %v", cols, trial, i, got[i], want[i])
					}
				}
				for i := range wq {
					if gq[i] != wq[i] {
						t.Fatalf("cols %d trial %d: q[%d] = %d, want %d", cols, trial, i, gq[i], wq[i])
					}
				}
				for i := range ws {
					if math.Float32bits(gs[i]) != math.Float32bits(ws[i]) {
						t.Fatalf("cols %d trial %d: s[%d] = %g, want %g", cols, trial, i, gs[i], ws[i])
					}
				}
			}
		}
	})
}

// TestQ8TileShapes holds the Q8_0 prefill tiles on shapes that leave every
// kind of remainder: groups of eight rows (the AVX2 packed tile), a group
// of four, single rows, tokens beyond a multiple of four, an odd last
// block, and, at 2 threads, row ranges cut by the thread split. Each
// token's rows must equal MatVec's bit for bit and stay close to the
// pure-Go reference.
func TestQ8TileShapes(t *testing.T) {
	defer SetThreads(0)
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(41, 42))
		shapes := [][3]int{{8, 64, 4}, {12, 96, 5}, {21, 160, 8}, {30, 896, 11}, {100, 896, 9}, {203, 1600, 6}}
		for _, threads := range []int{1, 2} {
			SetThreads(threads)
			for _, sh := range shapes {
				rows, cols, n := sh[0], sh[1], sh[2]
				m := randMat(r, Q8_0, rows, cols)
				x := randVec(r, n*cols)
				got := make([]float32, n*rows)
				MatMul(got, m, x, n)
				want := make([]float32, rows)
				ref := make([]float32, rows)
				for tok := 0; tok < n; tok++ {
					xt := x[tok*cols : (tok+1)*cols]
					MatVec(want, m, xt)
					refMatVecRows(ref, m, xt, 0, rows)
					mag := absMatVec(m, xt)
					for i := range want {
						g := got[tok*rows+i]
						if math.Float32bits(g) != math.Float32bits(want[i]) {
							t.Fatalf("threads %d %dx%d n=%d token %d row %d: MatMul %g, MatVec %g", threads, rows, cols, n, tok, i, g, want[i])
						}
						if !closeDot(g, ref[i], mag[i]) {
							t.Fatalf("threads %d %dx%d n=%d token %d row %d: %g, reference %g", threads, rows, cols, n, tok, i, g, ref[i])
						}
					}
				}
			}
		}
	})
}
