package merge

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

func TestRAM(t *testing.T) {
	base := []float32{0, 0, 0, 0, 1}
	m1 := []float32{1, 1, 0, 1e-6, 1}
	m2 := []float32{0, 3, -2, 0, 1}
	for _, c := range []struct {
		name string
		xs   [][]float32
		o    RAMOptions
		want []float32
	}{
		// unique kept, shared averaged, below epsilon and unchanged: base
		{"ram", [][]float32{m1, m2}, RAMOptions{Epsilon: 1e-5}, []float32{1, 2, -2, 0, 1}},
		{"epsilon", [][]float32{m1, m2}, RAMOptions{Epsilon: 1}, []float32{0, 3, -2, 0, 1}},
		// m1: 1 shared, 1 unique: 1 + 0.5*min(1, 0.2); m2: 1 and 1 too
		{"ramplus_tl", [][]float32{m1, m2}, RAMOptions{Epsilon: 1e-5, Plus: true, R: 0.5, Alpha: 0.2}, []float32{1.1, 2, -2.2, 0, 1}},
		{"ramplus_tl unclamped", [][]float32{m1, m2}, RAMOptions{Epsilon: 1e-5, Plus: true, R: 0.5, Alpha: 4}, []float32{1.5, 2, -3, 0, 1}},
		// one model: nothing shared, every ratio 0
		{"ramplus_tl one model", [][]float32{m2}, RAMOptions{Epsilon: 1e-5, Plus: true, R: 0.5, Alpha: 0.2}, []float32{0, 3, -2, 0, 1}},
		// A model equal to the base has no unique entry to scale; with
		// epsilon 0 mergekit's ratio is 0/0 and its output NaN.
		{"ramplus_tl epsilon 0", [][]float32{m1, base}, RAMOptions{Plus: true, R: 0.5, Alpha: 0.2}, []float32{1, 1, 0, 1e-6, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := make([]float32, len(base))
			if err := RAM(dst, base, c.xs, c.o); err != nil {
				t.Fatal(err)
			}
			near(t, c.name, dst, c.want, 1e-6)
		})
	}
}

// TestNewMethodsStreamMatchWhole: Spec.Merge streams nearswap, ram and
// ramplus_tl in chunks and arcee_fusion in blocks of rows, reading bf16
// in place; its outputs are those of the functions on whole widened
// tensors, bit for bit, with rows that straddle the chunks.
func TestNewMethodsStreamMatchWhole(t *testing.T) {
	const rows, cols = 101, 1000 // 3 chunks and a part
	n := rows * cols
	mk := func(name string, base []float32, seed uint64) (Input, []float32) {
		r := rng{s: seed}
		x := make([]float32, n)
		for j := range x {
			switch {
			case base == nil:
				x[j] = float32(r.float64()*2 - 1)
			case r.float64() < 0.5: // unchanged: RAM's unique and shared entries
				x[j] = base[j]
			default:
				x[j] = base[j] + float32((r.float64()*2-1)*0.1)
			}
		}
		bt, err := safetensors.Convert(f32t("model.layers.0.w", []int{rows, cols}, x...), safetensors.BF16)
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := safetensors.ToF32(bt)
		return mem(name, bt), wide
	}
	base, bx := mk("base", nil, 1)
	a, ax := mk("a", bx, 2)
	b, bbx := mk("b", bx, 3)
	for _, c := range []struct {
		method string
		params Params
		models []Input
		whole  func(dst []float32) error
	}{
		{"nearswap", Params{"t": Scalar(0.02)}, []Input{a}, func(dst []float32) error { return NearSwap(dst, bx, ax, 0.02) }},
		{"ram", Params{"epsilon": Scalar(0.01)}, []Input{a, b}, func(dst []float32) error {
			return RAM(dst, bx, [][]float32{ax, bbx}, RAMOptions{Epsilon: 0.01})
		}},
		{"ramplus_tl", Params{"r": Scalar(0.5), "alpha": Scalar(2)}, []Input{a, b}, func(dst []float32) error {
			return RAM(dst, bx, [][]float32{ax, bbx}, RAMOptions{Epsilon: 1e-5, Plus: true, R: 0.5, Alpha: 2})
		}},
		{"arcee_fusion", nil, []Input{b}, func(dst []float32) error { return ArceeFusion(dst, bx, bbx, cols) }},
	} {
		t.Run(c.method, func(t *testing.T) {
			s := &Spec{Method: c.method, Base: &base, Models: c.models, Params: c.params, OutDType: safetensors.F32}
			out, err := s.MergeToMemory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := values(t, out, "model.layers.0.w")
			want := make([]float32, n)
			if err := c.whole(want); err != nil {
				t.Fatal(err)
			}
			changed := 0
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("entry %d: streamed %v, whole %v", j, got[j], want[j])
				}
				if got[j] != bx[j] {
					changed++
				}
			}
			if changed == 0 {
				t.Error("the merge is the base: the test compares nothing")
			}
		})
	}
}

// TestRAMPatternsMatchLoops: ramCount's and ramChunk's pattern tables
// (no branch on the data) give the counts and the bits of the loops with
// branches, for 1 to 10 models, epsilons around the deltas (0, -0, a
// negative one, +Inf, NaN), and deltas that are zeros of either sign,
// infinities, NaNs, subnormals and exactly epsilon.
func TestRAMPatternsMatchLoops(t *testing.T) {
	r := rng{s: 11}
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-45, -1e-45, 1e-5, -1e-5, 2e-5}
	for _, eps := range []float32{1e-5, 0, float32(math.Copysign(0, -1)), -1, float32(math.Inf(1)), float32(math.NaN())} {
		for models := 1; models <= ramMaxPattern; models++ {
			const n = 997
			base := make([]float32, n)
			xs := make([][]float32, models)
			for j := range base {
				base[j] = float32(r.float64()*2-1) * 0.03
			}
			for i := range xs {
				xs[i] = make([]float32, n)
				for j := range xs[i] {
					switch k := r.next() % 8; {
					case k == 0: // unchanged
						xs[i][j] = base[j]
					case k == 1:
						xs[i][j] = base[j] + special[r.next()%uint64(len(special))]
					case k == 2:
						base[j] = 0
						xs[i][j] = special[r.next()%uint64(len(special))]
					default:
						xs[i][j] = base[j] + float32(r.float64()*2-1)*3e-5
					}
				}
			}
			lambda := make([]float64, models)
			for i := range lambda {
				lambda[i] = 1 + r.float64()
			}
			for _, l := range [][]float64{nil, lambda} {
				want, got := make([]float32, n), make([]float32, n)
				ws, wu := make([]int64, models), make([]int64, models)
				gs, gu := make([]int64, models), make([]int64, models)
				ramPatternsOff = true
				ramChunk(want, base, xs, eps, l)
				ramCount(base, xs, eps, ws, wu)
				ramPatternsOff = false
				ramChunk(got, base, xs, eps, l)
				ramCount(base, xs, eps, gs, gu)
				if !slices.Equal(gs, ws) || !slices.Equal(gu, wu) {
					t.Fatalf("eps %v, %d models: shared %v unique %v, the loops' %v %v", eps, models, gs, gu, ws, wu)
				}
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) && !(got[j] != got[j] && want[j] != want[j]) {
						t.Fatalf("eps %v, %d models, lambda %v: [%d] = %v, the loops' %v", eps, models, l != nil, j, got[j], want[j])
					}
				}
			}
		}
	}
}

// TestNearSwapKernelMatchesGo holds nearSwap's assembly to its Go loop bit
// for bit (a NaN for a NaN), with special values among the weights and t
// of either sign, zero of both signs and beyond every difference.
func TestNearSwapKernelMatchesGo(t *testing.T) {
	r := rng{s: 5}
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-45, 5e-7, -1e-6, 3e38}
	const n = 203
	base, x := make([]float32, n), make([]float32, n)
	for j := range base {
		base[j] = float32(r.float64()*2-1) * 0.03
		x[j] = base[j] + float32(r.float64()*2-1)*2e-5
		switch r.next() % 6 {
		case 0:
			x[j] = special[r.next()%uint64(len(special))]
		case 1:
			base[j] = special[r.next()%uint64(len(special))]
		}
	}
	for _, tt := range []float64{1e-5, 3e-6, 0, math.Copysign(0, -1), -1e-5, 1e30, math.Inf(1)} {
		run := func(simd bool) []float32 {
			useSIMD(simd)
			defer useSIMD(true)
			dst := make([]float32, n)
			nearSwap(dst, base, x, tt)
			return dst
		}
		got, want := run(true), run(false)
		for j := range want {
			if math.Float32bits(got[j]) != math.Float32bits(want[j]) && !(got[j] != got[j] && want[j] != want[j]) {
				t.Fatalf("t %v: [%d] (base %v, x %v) = %v (%#x), want %v (%#x)", tt, j, base[j], x[j], got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
			}
		}
	}
}

// TestRAMNoModel: with no model, ram and ramplus_tl leave the base, on
// enough entries for the kernels (which read model 0 first) to run.
func TestRAMNoModel(t *testing.T) {
	base := make([]float32, 100)
	for j := range base {
		base[j] = float32(j) - 49.5
	}
	for _, o := range []RAMOptions{{Epsilon: 1e-5}, {Epsilon: 1e-5, Plus: true, R: 0.5, Alpha: 0.2}} {
		dst := make([]float32, len(base))
		if err := RAM(dst, base, nil, o); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dst, base) {
			t.Errorf("plus %v: %v, want the base", o.Plus, dst)
		}
	}
}
