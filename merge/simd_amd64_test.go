//go:build !purego

package merge

import (
	"os"
	"testing"

	"golang.org/x/sys/cpu"
)

// With MOCO_MERGE_SIMD=avx2 the tests run on the AVX2 kernels even on an
// AVX-512 machine, whose tests otherwise never reach the AVX2 siblings of
// the AVX-512 kernels (CI runs the package both ways).
func init() {
	if os.Getenv("MOCO_MERGE_SIMD") == "avx2" && hasAVX2 {
		hasAVX512 = false
		useSIMD(true)
	}
}

// TestMathAgrees: on a machine with the exp and log kernels, math.Exp and
// math.Log compute what they do. The kernels' wrappers stand aside when
// math disagrees, which would hide a broken kernel (or a Go release whose
// math the kernels no longer copy) from every other test.
func TestMathAgrees(t *testing.T) {
	if !cpu.X86.HasFMA || !hasAVX2 && !hasAVX512 {
		t.Skip("no exp and log kernels on this CPU")
	}
	if hasAVX512 && !agrees512() {
		t.Error("exp512 or klTerms512 differs from math.Exp or math.Log on mathAgrees' arguments")
	}
	if !agrees256() {
		t.Error("exp256 or klTerms256 differs from math.Exp or math.Log on mathAgrees' arguments")
	}
}

// simdPaths are the kernel sets this CPU runs, widest first, then the Go
// loops; each selects its set. The caller selects the package's own set
// again when done (useSIMD(true)).
func simdPaths() []simdPath {
	var ps []simdPath
	if hasAVX512 {
		ps = append(ps, simdPath{"avx512", func() { useSIMD(true) }})
	}
	if hasAVX2 {
		ps = append(ps, simdPath{"avx2", func() {
			wide := hasAVX512
			hasAVX512 = false
			useSIMD(true)
			hasAVX512 = wide
		}})
	}
	return append(ps, simdPath{"go", func() { useSIMD(false) }})
}
