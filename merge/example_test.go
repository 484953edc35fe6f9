package merge_test

import (
	"fmt"

	"github.com/mocolab/moco/merge"
)

// TIES on three weights: each delta keeps its larger half by magnitude, the
// sign is elected by the weighted sum, and agreeing deltas are averaged.
func ExampleTaskMerge() {
	base := []float32{1, 1, 1, 1}
	a := []float32{4, 0, 3, -3}   // delta  3 -1  2 -4 -> trimmed 3 0 0 -4
	b := []float32{5, 1.5, -2, 2} // delta  4 .5 -3  1 -> trimmed 4 0 -3 0
	dst := make([]float32, 4)
	err := merge.TaskMerge(dst, base, [][]float32{a, b}, []float64{1, 1}, merge.TaskOptions{
		Sparsify: merge.SparsifyMagnitude, Density: []float64{0.5, 0.5}, Consensus: "sum", Normalize: true,
	})
	fmt.Println(dst, err)
	// Output: [4.5 1 -2 -3] <nil>
}
