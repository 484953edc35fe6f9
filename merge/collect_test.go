package merge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// TestCollectHeavySpecialValues holds collectHeavy and collectBF16Heavy
// with the assembly to the Go loops on few-ulp deltas among which some
// inputs are zeros of either sign, infinities, NaNs and subnormals (whose
// magnitude bits the bracket compares as integers), with tails: the same
// candidates in order, the same counts.
func TestCollectHeavySpecialValues(t *testing.T) {
	special := []uint16{0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0x0001, 0x8001}
	r := rand.New(rand.NewPCG(9, 31))
	for _, n := range []int{1, 8, 15, 16, 17, 31, 64, 250, 1024} {
		for nh := 1; nh <= maxHeavy; nh++ {
			xb, bb := make([]uint16, n), make([]uint16, n)
			x, base := make([]float32, n), make([]float32, n)
			for j := range xb {
				bb[j] = safetensors.F32ToBF16(float32(r.NormFloat64() * 0.02))
				xb[j] = uint16(int(bb[j]) + r.IntN(9) - 4)
				if r.IntN(16) == 0 {
					xb[j] = special[r.IntN(len(special))]
				}
				x[j], base[j] = safetensors.BF16ToF32(xb[j]), safetensors.BF16ToF32(bb[j])
			}
			mags := make([]uint32, n)
			for j := range mags {
				mags[j] = magBits(x[j] - base[j])
			}
			s := slices.Clone(mags)
			slices.Sort(s)
			lo, hi := s[n/5], s[4*n/5]
			if n < 4 {
				lo, hi = 0, math.MaxUint32
			}
			var heavy []uint32
			for try := 0; try < 50 && len(heavy) < nh; try++ {
				if v := mags[r.IntN(n)]; v >= lo && v <= hi && !slices.Contains(heavy, v) {
					heavy = append(heavy, v)
				}
			}
			for _, bf16 := range []bool{false, true} {
				run := func(simd bool) ([]uint32, [maxHeavy]int32, int64) {
					useSIMD(simd)
					defer useSIMD(true)
					buf := make([]uint32, n+16)
					eq := [maxHeavy]int32{1, 2, 3, 4}
					var c int
					var above int64
					if bf16 {
						c, above = collectBF16Heavy(buf, xb, bb, lo, hi, heavy, &eq)
					} else {
						c, above = collectHeavy(buf, x, base, lo, hi, heavy, &eq)
					}
					return buf[:c], eq, above
				}
				want, wantEq, wantAbove := run(false)
				got, eq, above := run(true)
				if !slices.Equal(got, want) || eq != wantEq || above != wantAbove {
					t.Fatalf("n %d, heavy %x, bf16 %v: %d kept, eq %v, above %d; want %d, %v, %d",
						n, heavy, bf16, len(got), eq, above, len(want), wantEq, wantAbove)
				}
			}
		}
	}
}
