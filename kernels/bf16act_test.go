package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF32ToBF16(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0xbf808001, 0xbf81}, // negative
		{0x7f7fffff, 0x7f80}, // largest float rounds to +Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0x00000001, 0x0000}, // smallest subnormal
		{0x7fc00001, 0x7fc0}, // NaN stays NaN
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
	} {
		if got := F32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

// TestRoundBF16 holds the vector rounding of the mode to F32ToBF16 (held
// to hand-derived values above) on random and special values, in every
// position of the vector.
func TestRoundBF16(t *testing.T) {
	special := []uint32{0x3f808000, 0x3f818000, 0x3f807fff, 0x7f7fffff, 0xff7fffff, 0x7f800000,
		0xff800000, 0x00000001, 0x80000001, 0x007fffff, 0x7fc00001, 0x7f800001, 0xffc00000, 0, 0x80000000}
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 3))
		for _, n := range []int{1, 15, 16, 17, 48, 100} {
			src := make([]float32, n)
			for i := range src {
				if r.IntN(3) == 0 {
					src[i] = math.Float32frombits(special[r.IntN(len(special))])
				} else {
					src[i] = math.Float32frombits(r.Uint32())
				}
			}
			got := make([]uint16, n)
			roundBF16Impl(got, src)
			for i, v := range src {
				if want := F32ToBF16(v); got[i] != want {
					t.Fatalf("n=%d: %#08x rounds to %#04x, want %#04x", n, math.Float32bits(v), got[i], want)
				}
			}
		}
	})
}

// bf16ActWant is the mode's definition computed by the reference: round
// the activations to bf16, then the exact product.
func bf16ActWant(m *Mat, x []float32, n int) ([]float32, []float32) {
	xr := make([]float32, len(x))
	for i, v := range x {
		xr[i] = BF16ToF32(F32ToBF16(v))
	}
	want := make([]float32, n*m.Rows)
	refMatMul(want, m, xr, n)
	var mag []float32
	for t := 0; t < n; t++ {
		mag = append(mag, absMatVec(m, xr[t*m.Cols:(t+1)*m.Cols])...)
	}
	return want, mag
}

func TestBF16ActMatchesReference(t *testing.T) {
	defer SetBF16Activations(BF16Activations())
	SetBF16Activations(true)
	// Both kernel choices on every path: VDPBF16PS where the CPU has it,
	// whichever vendor, and the widening kernels.
	defer func(f func() bool) { preferDPBF16 = f }(preferDPBF16)
	for _, prefer := range []bool{true, false} {
		preferDPBF16 = func() bool { return prefer }
		t.Run(map[bool]string{true: "dp", false: "widen"}[prefer], testBF16ActMatchesReference)
	}
}

func testBF16ActMatchesReference(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, rows := range []int{1, 3, 5, 6, 7, 9, 13, 17, 31} {
			// 2100: six rows of it are cut into two column panels.
			for _, cols := range []int{1, 31, 32, 33, 64, 95, 100, 576, 1637, 2100} {
				if testing.Short() && (cols == 576 || cols == 1637) {
					continue // keeps the race run within its budget; 2100 has panels and a tail
				}
				for _, n := range []int{1, 2, 4, 5, 7, 8, 9, 12, 16, 17} {
					m := randMat(r, BF16, rows, cols)
					x := randVec(r, n*cols)
					want, mag := bf16ActWant(m, x, n)
					got := make([]float32, n*rows)
					MatMul(got, m, x, n)
					for i := range got {
						if !closeDot(got[i], want[i], mag[i]) {
							t.Fatalf("%dx%d, %d tokens, output %d: got %g, reference %g", rows, cols, n, i, got[i], want[i])
						}
					}
					// Prefill and decoding agree bit for bit in the mode too.
					if n == 1 || (Impl() == "avx512+amx" && n >= 16) {
						continue
					}
					one := make([]float32, rows)
					for tok := 0; tok < n; tok++ {
						MatVec(one, m, x[tok*cols:(tok+1)*cols])
						for i := range one {
							if one[i] != got[tok*rows+i] {
								t.Fatalf("%dx%d, %d tokens: MatMul token %d row %d = %g, MatVec %g", rows, cols, n, tok, i, got[tok*rows+i], one[i])
							}
						}
					}
				}
			}
		}
	})
}

// TestBF16ActError measures the mode's error against the exact product (in
// float64) on the products of the target models' shapes, and bounds it: the
// mode must round (an error well above float32's) but no worse than bf16
// activations can explain.
func TestBF16ActError(t *testing.T) {
	defer SetBF16Activations(BF16Activations())
	r := rand.New(rand.NewPCG(9, 9))
	for _, sh := range [][2]int{{256, 896}, {128, 4864}} {
		m := randMat(r, BF16, sh[0], sh[1])
		x := randVec(r, sh[1])
		var errF32, errAct float64
		for _, on := range []bool{false, true} {
			SetBF16Activations(on)
			got := make([]float32, sh[0])
			MatVec(got, m, x)
			var worst float64
			for i := range got {
				var exact, mag float64
				for j := 0; j < sh[1]; j++ {
					p := float64(BF16ToF32(m.Half[i*sh[1]+j])) * float64(x[j])
					exact += p
					mag += math.Abs(p)
				}
				worst = max(worst, math.Abs(float64(got[i])-exact)/mag)
			}
			if on {
				errAct = worst
			} else {
				errF32 = worst
			}
		}
		t.Logf("%dx%d: worst error / sum|w*x|: f32 activations %.2g, bf16 activations %.2g", sh[0], sh[1], errF32, errAct)
		if errF32 > 1e-5 || errAct > 4e-3 || errAct < 1e-5 {
			t.Errorf("%dx%d: errors %.2g (f32) and %.2g (bf16 activations) out of bounds", sh[0], sh[1], errF32, errAct)
		}
	}
}
