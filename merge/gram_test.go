package merge

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// TestStreamSphericalMatchesWhole: the streamed spherical merges and
// model_stock (a Gram pass, then the combination chunk by chunk) give the
// whole-tensor functions' results, to rounding, for every variant: with
// and without a base, whole tensors, rows (nuslerp without flattening,
// model_stock filter_wise) and columns (nuslerp_row_wise), f32 and bf16
// inputs, tensors of one Gram block and of several, one thread and three;
// and the edge cases: a zero tensor, near-parallel tensors, antipodal ones.
func TestStreamSphericalMatchesWhole(t *testing.T) {
	type input struct {
		in Input
		x  []float32 // its values as float32
	}
	mk := func(name string, shape []int, dt safetensors.DType, f func(j int) float32) input {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := make([]float32, n)
		for j := range x {
			x[j] = f(j)
		}
		tn, err := safetensors.Convert(f32t("w", shape, x...), dt)
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := safetensors.ToF32(tn)
		return input{mem(name, tn), append([]float32(nil), wide...)}
	}
	// Values are functions of the index alone, so that one tensor can be
	// built from another's (near, antipodal).
	random := func(seed uint64, scale float32) func(int) float32 {
		return func(j int) float32 {
			r := rng{s: seed<<32 ^ uint64(j)}
			return scale * float32(r.float64()*2-1)
		}
	}
	near := func(seed uint64, of func(int) float32, by float32) func(int) float32 {
		return func(j int) float32 { return of(j) * (1 + by*random(seed, 1)(j)) }
	}
	zero := func(int) float32 { return 0 }
	type tc struct {
		method string
		params Params
		ws     []float64 // per-model weights (nil: none)
		shape  []int
		base   func(int) float32
		models []func(int) float32
		// want is the whole-tensor result from the inputs' values.
		want func(base []float32, xs [][]float32, shape []int) ([]float32, error)
		err  string // the merge's error, when it must fail
	}
	// Blocks of 4096 entries: several Gram blocks; one; three dimensions;
	// columns longer than a chunk (nuslerp_row_wise only).
	defer func(old int) { gramBlock = old }(gramBlock)
	gramBlock = 4096
	big, small, cube, wide := []int{30, 1001}, []int{37, 53}, []int{6, 7, 40}, []int{3, 40001}
	var cases []tc
	for _, shape := range [][]int{big, small, cube, wide} {
		cases = append(cases,
			tc{method: "slerp", params: Params{"t": Scalar(0.3)}, shape: shape, base: random(1, 1), models: []func(int) float32{random(2, 1)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, Slerp(d, b, xs[0], 0.3)
				}},
			tc{method: "slerp", params: Params{"t": Scalar(0.7)}, shape: shape, base: zero, models: []func(int) float32{random(2, 1)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, Slerp(d, b, xs[0], 0.7)
				}},
			tc{method: "slerp", params: Params{"t": Scalar(0.4)}, shape: shape, base: random(3, 1), models: []func(int) float32{near(4, random(3, 1), 1e-5)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, Slerp(d, b, xs[0], 0.4)
				}},
			// cos about 0.9998: slerp still, not the linear fallback.
			tc{method: "slerp", params: Params{"t": Scalar(0.4)}, shape: shape, base: random(3, 1), models: []func(int) float32{near(4, random(3, 1), 0.035)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, Slerp(d, b, xs[0], 0.4)
				}},
			tc{method: "model_stock", shape: shape, base: random(5, 1), models: []func(int) float32{random(6, 1), random(7, 1), random(8, 1)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, ModelStock(d, b, xs, 0)
				}},
			tc{method: "model_stock", params: Params{"filter_wise": Scalar(1)}, shape: shape, base: random(5, 1), models: []func(int) float32{random(6, 1), random(7, 1)},
				want: func(b []float32, xs [][]float32, sh []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, ModelStock(d, b, xs, sh[len(sh)-1])
				}},
			tc{method: "karcher", shape: shape, models: []func(int) float32{random(9, 1), random(10, 2), near(11, random(9, 1), 1e-5)},
				want: func(_ []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(xs[0]))
					return d, Karcher(d, xs, 10, 1e-5)
				}},
			tc{method: "karcher", params: Params{"max_iter": Scalar(3)}, shape: shape, base: random(12, 1), models: []func(int) float32{zero, random(13, 1)},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, Karcher(d, append([][]float32{b}, xs...), 3, 1e-5)
				}},
			tc{method: "karcher", shape: shape, models: []func(int) float32{random(14, 1)},
				want: func(_ []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(xs[0]))
					return d, Karcher(d, xs, 10, 1e-5)
				}},
		)
		for _, base := range []func(int) float32{nil, random(15, 1)} {
			for _, w := range [][]float64{{0.3, 0.5, 0.9}, {1, -0.5, 2}} {
				for _, norm := range []float64{0, 1} {
					cases = append(cases, tc{method: "multislerp", params: Params{"normalize_weights": Scalar(norm)}, ws: w, shape: shape, base: base,
						models: []func(int) float32{random(16, 1), random(17, 3), random(18, 0.5)},
						want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
							d := make([]float32, len(xs[0]))
							return d, MultiSlerp(d, b, xs, w, norm != 0, 1e-8)
						}})
				}
			}
			for _, flat := range []float64{1, 0} {
				for _, rowWise := range []float64{0, 1} {
					cases = append(cases, tc{method: "nuslerp", params: Params{"nuslerp_flatten": Scalar(flat), "nuslerp_row_wise": Scalar(rowWise)}, ws: []float64{0.4, 0.9}, shape: shape, base: base,
						models: []func(int) float32{random(19, 1), random(20, 2)},
						want: func(b []float32, xs [][]float32, sh []int) ([]float32, error) {
							d := make([]float32, len(xs[0]))
							return d, NuSlerp(d, b, xs[0], xs[1], []float64{0.4, 0.9}, sh, rowWise != 0, flat != 0)
						}})
				}
			}
		}
		// Antipodal task vectors: two are combined by their weights, three fail.
		cases = append(cases,
			tc{method: "multislerp", ws: []float64{1, 1}, shape: shape, base: zero, models: []func(int) float32{random(22, 1), func(j int) float32 { return -random(22, 1)(j) }},
				want: func(b []float32, xs [][]float32, _ []int) ([]float32, error) {
					d := make([]float32, len(b))
					return d, MultiSlerp(d, b, xs, []float64{1, 1}, true, 1e-8)
				}},
			tc{method: "multislerp", ws: []float64{1, 1, 1}, shape: shape, base: zero, models: []func(int) float32{random(23, 1), func(j int) float32 { return -random(23, 1)(j) }, zero},
				err: "weighted sum of the unit tensors is zero"},
		)
	}
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
		for ci, c := range cases {
			if len(c.shape) == 2 && c.shape[1] == wide[1] && (c.method != "nuslerp" || c.params["nuslerp_row_wise"].Values[0] != 1) {
				continue
			}
			for _, procs := range []int{1, 3} {
				if testing.Short() && procs == 1 {
					continue
				}
				name := fmt.Sprintf("case %d: %s %v %v %v procs %d", ci, c.method, c.params, c.shape, dt, procs)
				s := &Spec{Method: c.method, Params: c.params, OutDType: safetensors.F32}
				var b input
				if c.base != nil {
					b = mk("base", c.shape, dt, c.base)
					s.Base = &b.in
				}
				var xs [][]float32
				for i, f := range c.models {
					in := mk(fmt.Sprintf("m%d", i), c.shape, dt, f)
					if c.ws != nil {
						in.in.Params = Params{"weight": Scalar(c.ws[i])}
					}
					s.Models = append(s.Models, in.in)
					xs = append(xs, in.x)
				}
				old := runtime.GOMAXPROCS(procs)
				out, err := s.MergeToMemory(context.Background())
				runtime.GOMAXPROCS(old)
				if c.err != "" {
					if err == nil || !strings.Contains(err.Error(), c.err) {
						t.Fatalf("%s: err %v, want one with %q", name, err, c.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want, err := c.want(b.x, xs, c.shape)
				if err != nil {
					t.Fatalf("%s: whole-tensor: %v", name, err)
				}
				got := values(t, out, "w")
				var most float64
				for _, v := range want {
					most = math.Max(most, math.Abs(float64(v)))
				}
				for j := range got {
					if d := math.Abs(float64(got[j]) - float64(want[j])); d > 1e-6*most || math.IsNaN(float64(got[j])) != math.IsNaN(float64(want[j])) {
						t.Fatalf("%s: [%d] = %v, whole-tensor %v", name, j, got[j], want[j])
					}
				}
			}
		}
	}
}
