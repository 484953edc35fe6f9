//go:build !purego

package merge

import "os"

// With MOCO_MERGE_SIMD=avx2 the tests run on the AVX2 kernels even on an
// AVX-512 machine, whose tests otherwise never reach the AVX2 siblings of
// the AVX-512 kernels (CI runs the package both ways).
func init() {
	if os.Getenv("MOCO_MERGE_SIMD") == "avx2" && hasAVX2 {
		hasAVX512 = false
		useSIMD(true)
	}
}
