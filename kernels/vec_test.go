package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// closeRel reports whether got is within rel of want, relative to
// max(|want|, floor): elementwise results are compared with the reference
// that computes in float64.
func closeRel(got, want, rel, floor float32) bool {
	d := math.Abs(float64(got - want))
	return d <= float64(rel)*math.Max(math.Abs(float64(want)), float64(floor))
}

var vecLengths = []int{0, 1, 5, 15, 16, 17, 31, 32, 100, 576, 4864}

// testInput has a few extreme values besides Gaussian ones, to cover the
// ends of exp's range.
func testInput(r *rand.Rand, n int, scale float32) []float32 {
	x := randVec(r, n)
	for i := range x {
		x[i] *= scale
	}
	extremes := []float32{0, -0.5, 1e-7, -20, 20, -100, 100, 88, -88}
	for i := 0; i < n && i < len(extremes); i++ {
		x[(i*7)%n] = extremes[i]
	}
	return x
}

func TestElementwise(t *testing.T) {
	ops := []struct {
		name     string
		fn, ref  func([]float32)
		scale    float32
		rel, flo float32
	}{
		{"SiLU", SiLU, refSiLU, 4, 2e-6, 1e-6},
		{"GELUTanh", GELUTanh, refGELUTanh, 4, 2e-6, 1e-6},
		{"Softmax", Softmax, refSoftmax, 8, 1e-5, 1e-30},
	}
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, op := range ops {
			for _, n := range vecLengths {
				x := testInput(r, n, op.scale)
				if op.name == "Softmax" {
					for i := range x {
						x[i] = max(-30, min(30, x[i]))
					}
				}
				want := append([]float32(nil), x...)
				op.ref(want)
				op.fn(x)
				for i := range x {
					if !closeRel(x[i], want[i], op.rel, op.flo) {
						t.Fatalf("%s n=%d [%d]: got %g, reference %g", op.name, n, i, x[i], want[i])
					}
				}
			}
		}
	})
}

func TestHandElementwise(t *testing.T) {
	paths(t, func(t *testing.T) {
		x := make([]float32, 16)
		x[0], x[1] = 1, -1
		SiLU(x)
		// silu(1) = 1/(1+e^-1) = 0.7310586, silu(-1) = -0.2689414
		if !closeRel(x[0], 0.7310586, 1e-6, 0) || !closeRel(x[1], -0.2689414, 1e-6, 0) || x[2] != 0 {
			t.Errorf("SiLU(1, -1, 0) = %v", x[:3])
		}
		p := []float32{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, float32(math.Log(3))}
		Softmax(p)
		// sixteen weights 1 and one weight 3: 1/19 and 3/19
		if !closeRel(p[0], 1.0/19, 1e-6, 0) || !closeRel(p[16], 3.0/19, 1e-6, 0) {
			t.Errorf("Softmax = %v, want 1/19 ... 3/19", p)
		}
	})
}

func TestRMSNorm(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(23, 24))
		for _, n := range vecLengths[1:] {
			for _, offset := range []float32{0, 1} {
				x, w := randVec(r, n), randVec(r, n)
				want := make([]float32, n)
				refRMSNorm(want, x, w, 1e-6, offset)
				got := append([]float32(nil), x...)
				RMSNorm(got, got, w, 1e-6, offset) // in place
				for i := range got {
					if !closeRel(got[i], want[i], 2e-6, 1e-6) {
						t.Fatalf("n=%d offset %g [%d]: got %g, reference %g", n, offset, i, got[i], want[i])
					}
				}
			}
		}
		// rms of (3, 4) with w = 1 is sqrt(12.5): (3, 4)/3.5355339
		x := []float32{3, 4}
		RMSNorm(x, x, []float32{1, 1}, 0, 0)
		if !closeRel(x[0], 0.8485281, 1e-6, 0) || !closeRel(x[1], 1.1313709, 1e-6, 0) {
			t.Errorf("RMSNorm(3, 4) = %v", x)
		}
	})
}

func TestAxpyVec(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, n := range vecLengths {
			x, y := randVec(r, n), randVec(r, n)
			want := append([]float32(nil), y...)
			refAxpy(0.3, x, want)
			Axpy(0.3, x, y)
			for i := range y {
				if !closeRel(y[i], want[i], 1e-6, 1) {
					t.Fatalf("n=%d [%d]: got %g, reference %g", n, i, y[i], want[i])
				}
			}
		}
	})
}

// TestWiden converts every half-precision bit pattern but zero (an odd
// count, so that the assembly's tail is used too) and checks each against
// the scalar conversion.
func TestWiden(t *testing.T) {
	paths(t, func(t *testing.T) {
		src := make([]uint16, 65535)
		for i := range src {
			src[i] = uint16(i + 1)
		}
		for _, typ := range []Type{BF16, F16} {
			dst := make([]float32, len(src))
			Widen(dst, src, typ)
			for i, h := range src {
				want := BF16ToF32(h)
				if typ == F16 {
					want = F16ToF32(h)
				}
				// F16C quiets signalling NaNs; any NaN is as good.
				nan := want != want && dst[i] != dst[i]
				if math.Float32bits(dst[i]) != math.Float32bits(want) && !nan {
					t.Fatalf("%v %#04x: got %#08x, want %#08x", typ, h, math.Float32bits(dst[i]), math.Float32bits(want))
				}
			}
		}
	})
}
