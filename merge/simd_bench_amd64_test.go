//go:build !purego

package merge

import (
	"math"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// bandSumInputs is a block of a fine-tune pair (weights moved by -4 to 4
// ulps) over a bfloat16 base.
func bandSumInputs() (base, x0, x1 []uint16) {
	const n = 64 * 896
	r := rng{s: 9}
	base, x0, x1 = make([]uint16, n), make([]uint16, n), make([]uint16, n)
	for i := range base {
		base[i] = safetensors.F32ToBF16(float32(r.float64()*2-1) * 0.03)
		x0[i] = uint16(int(base[i]) + int(r.next()%9) - 4)
		x1[i] = uint16(int(base[i]) + int(r.next()%9) - 4)
	}
	return base, x0, x1
}

// BenchmarkBandSum2BF16 runs TIES's band sum for two bfloat16 models
// read in place at each width the CPU has, on a block of a fine-tune
// pair (bandSumInputs), the bands keeping about half of each model's
// deltas.
func BenchmarkBandSum2BF16(b *testing.B) {
	base, x0, x1 := bandSumInputs()
	lo := []uint32{0x38000000, 0x38000000} // |delta| >= 2^-15
	hi := []uint32{1 << 31, 1 << 31}
	w := []float64{0.5, 0.5}
	dst := make([]float32, len(base))
	benchWidths(b, len(base),
		func() { bandSum2BF16Fast256(dst, nil, base, x0, x1, w, lo, hi, true, 1) },
		func() { bandSum2BF16Fast512(dst, nil, base, x0, x1, w, lo, hi, true, 1) })
}

// BenchmarkBandLinearBF16 runs breadcrumbs' linear band sum for two
// bfloat16 models read in place at each width the CPU has, on
// bandSumInputs, the bands keeping about half of each model's deltas.
func BenchmarkBandLinearBF16(b *testing.B) {
	base, x0, x1 := bandSumInputs()
	xs := [][]uint16{x0, x1}
	lo := []uint32{0x38000000, 0x38000000}
	hi := []uint32{1 << 31, 1 << 31}
	w := []float64{0.5, 0.5}
	dst := make([]float32, len(base))
	benchWidths(b, len(base),
		func() { bandLinearBF16Fast256(dst, nil, base, xs, w, lo, hi, 1) },
		func() { bandLinearBF16Fast512(dst, nil, base, xs, w, lo, hi, 1) })
}

// benchWidths runs a kernel's AVX2 and AVX-512 versions (over n entries
// of bfloat16 inputs, counted as three) as sub-benchmarks, skipping those the CPU
// lacks.
func benchWidths(b *testing.B, n int, avx2, avx512 func()) {
	for _, k := range []struct {
		name string
		on   bool
		run  func()
	}{{"avx2", hasAVX2 || hasAVX512, avx2}, {"avx512", hasAVX512, avx512}} {
		b.Run(k.name, func(b *testing.B) {
			if !k.on {
				b.Skip("not on this CPU")
			}
			b.SetBytes(3 * 2 * int64(n))
			for b.Loop() {
				k.run()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}

// BenchmarkCollectBF16Heavy runs TIES's collecting pass with heavy values
// at each width the CPU has, on bandSumInputs, the bracket and the heavy
// value those of the block's most common magnitude.
func BenchmarkCollectBF16Heavy(b *testing.B) {
	base, x0, _ := bandSumInputs()
	counts := map[uint32]int{}
	for j := range base {
		counts[math.Float32bits(safetensors.BF16ToF32(x0[j])-safetensors.BF16ToF32(base[j]))&^signBit]++
	}
	var heavy uint32
	for v, c := range counts {
		if c > counts[heavy] || c == counts[heavy] && v < heavy {
			heavy = v
		}
	}
	lo, hi := heavy>>1, heavy+heavy/2 // a bracket around it
	buf := make([]uint32, len(base)+16)
	var eq [maxHeavy]int32
	hv := []uint32{heavy}
	benchWidths(b, len(base),
		func() { collectBF16HeavyFast256(buf, x0, base, lo, hi, hv, &eq) },
		func() { collectBF16HeavyFast512(buf, x0, base, lo, hi, hv, &eq) })
}

// BenchmarkSquaresBF16 runs sce's masked sums of squares of two bfloat16
// models' deltas at each width the CPU has, on bandSumInputs, every
// other entry masked.
func BenchmarkSquaresBF16(b *testing.B) {
	base, x0, x1 := bandSumInputs()
	m := make([]uint32, len(base))
	for j := range m {
		m[j] = uint32(j%2) * ^uint32(0)
	}
	var l [2][8]float64
	benchWidths(b, len(base),
		func() { squaresBF16Fast256(&l, base, x0, x1, m) },
		func() { squaresBF16Fast512(&l, base, x0, x1, m) })
}
