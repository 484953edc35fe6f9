package kernels_test

import (
	"fmt"
	"math"

	"github.com/mocolab/moco/kernels"
)

func ExampleMatVec() {
	// A 2x3 bf16 matrix [[1 2 3] [4 5 6]] times x = (1 1 1).
	bf16 := func(v ...float32) []uint16 {
		h := make([]uint16, len(v))
		for i, f := range v {
			h[i] = uint16(math.Float32bits(f) >> 16) // exact for small integers
		}
		return h
	}
	m := &kernels.Mat{Rows: 2, Cols: 3, Type: kernels.BF16, Half: bf16(1, 2, 3, 4, 5, 6)}
	dst := make([]float32, 2)
	kernels.MatVec(dst, m, []float32{1, 1, 1})
	fmt.Println(dst)
	// Output: [6 15]
}

func ExampleQuantizeQ8() {
	// One block of 32 weights: the largest magnitude, 2.54, sets the scale
	// 2.54/127 = 0.02, and every weight becomes a multiple of it.
	w := make([]float32, 32)
	w[0], w[1], w[2] = 2.54, -1, 0.333
	q := kernels.QuantizeQ8(&kernels.Mat{Rows: 1, Cols: 32, Type: kernels.F32, F32: w})
	row := make([]float32, 32)
	q.Row(row, 0)
	fmt.Printf("%v scale %.2f q %v -> %.2f %.2f %.2f\n", q.Type, kernels.F16ToF32(q.Scales[0]), q.Q[:3], row[0], row[1], row[2])
	// Output: q8_0 scale 0.02 q [127 -50 17] -> 2.54 -1.00 0.34
}
