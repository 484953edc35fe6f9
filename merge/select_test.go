package merge

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// TestStreamSelectMatchesWhole: the streaming merges of the ranking
// methods (TIES, breadcrumbs, DELLA, L1 rescaling) give the same bits as
// TaskMerge on whole tensors, also with many tied magnitudes (bf16 inputs)
// and on any number of threads: small tensors (every entry a candidate),
// the radix passes alone, and large ones (the sampled bracket; coarse
// inputs put too many entries in it and take the passes).
func TestStreamSelectMatchesWhole(t *testing.T) {
	if !testing.Short() { // the bracket's code, taking every entry
		testStreamSelect(t, 45, 1000, true)
	}
	collectOff = true
	testStreamSelect(t, 45, 1000, true)
	collectOff = false
	testStreamSelect(t, 141, 997, false)
	if !testing.Short() { // the collecting pass on widened inputs
		collectWiden = true
		testStreamSelect(t, 141, 997, false)
		collectWiden = false
	}
}

// testStreamSelect checks every method and setting; under -short only
// those on 3 threads with coarse (shortCoarse) or fine inputs.
func testStreamSelect(t *testing.T, rows, cols int, shortCoarse bool) {
	n := rows * cols
	mk := func(name string, seed uint64, coarse bool) (Input, []float32) {
		r := rng{s: seed}
		x := make([]float32, n)
		for i := range x {
			v := float32(r.float64()*2 - 1)
			if coarse {
				v = float32(math.Round(float64(v)*8) / 8) // few distinct values: ties everywhere
			}
			x[i] = v
		}
		bt, err := safetensors.Convert(f32t("model.layers.0.mlp.up_proj.weight", []int{rows, cols}, x...), safetensors.BF16)
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := safetensors.ToF32(bt)
		return mem(name, bt), append([]float32(nil), wide...)
	}
	for _, coarse := range []bool{false, true} {
		base, bx := mk("base", 1, coarse)
		a, ax := mk("a", 2, coarse)
		b, bbx := mk("b", 3, coarse)
		c, cx := mk("c", 4, coarse)
		for _, method := range []string{"ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "dare_ties"} {
			// l1 2: the method's own rescale parameter, which for the
			// selections by magnitude restores the L1 norm too.
			for _, l1 := range []float64{0, 1, 2} {
				if method == "dare_ties" && l1 == 0 {
					continue // element-wise: streamed elsewhere
				}
				for _, procs := range []int{1, 3} {
					if testing.Short() && (procs == 1 || coarse != shortCoarse) {
						continue // the hardest case only
					}
					name := fmt.Sprintf("%s coarse=%v l1=%v procs=%d", method, coarse, l1, procs)
					a.Params = Params{"weight": Scalar(0.7), "density": Scalar(0.3)}
					b.Params = Params{"weight": Scalar(0.5), "density": Scalar(0.6)}
					c.Params = Params{"weight": Scalar(-0.4), "density": Scalar(0.5)}
					params := Params{"rescale_l1": Scalar(l1), "gamma": Scalar(0.05)}
					m := methods[method]
					rescale := m.rescale
					if l1 == 2 {
						params = Params{"rescale": Scalar(1), "gamma": Scalar(0.05)}
						rescale = true
					}
					s := &Spec{Method: method, Base: &base, Models: []Input{a, b, c}, Seed: 5, OutDType: safetensors.F32, Params: params}
					old := runtime.GOMAXPROCS(procs)
					out, err := s.MergeToMemory(context.Background())
					runtime.GOMAXPROCS(old)
					if err != nil {
						t.Fatal(err)
					}
					o := TaskOptions{Sparsify: m.sparsify, Consensus: m.consensus, Density: []float64{0.3, 0.6, 0.5}, Gamma: 0.05, Epsilon: 0.15,
						Normalize: m.normalize, Rescale: rescale, RescaleL1: l1 == 1, Lambda: 1, Cols: cols, Seed: 5 ^ hashName("model.layers.0.mlp.up_proj.weight")}
					want := make([]float32, n)
					if err := TaskMerge(want, bx, [][]float32{ax, bbx, cx}, []float64{0.7, 0.5, -0.4}, o); err != nil {
						t.Fatal(err)
					}
					got := values(t, out, "model.layers.0.mlp.up_proj.weight")
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("%s: [%d] = %v, whole-tensor %v", name, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestSelectTopKCancelled: a cancelled merge stops.
func TestMergeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	base := vec("base", 1, 2)
	s := &Spec{Method: "ties", Base: &base, Models: []Input{vec("a", 2, 3)}}
	if _, err := s.MergeToMemory(ctx); err != context.Canceled {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	calls := 0
	score := func(safetensors.Source) (float64, error) { calls++; return 0, nil }
	if _, err := GreedySoup(ctx, []Input{vec("a", 1), vec("b", 2)}, score, nil); err == nil || calls != 0 {
		t.Fatalf("greedy soup after cancel: %v, %d scores", err, calls)
	}
}
