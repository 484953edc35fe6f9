package merge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// The assembly must compute what the Go code computes, bit for bit. These
// tests run both on the same inputs (on machines without the assembly they
// compare the Go code with itself and pass trivially).

func TestSumChunkAssemblyMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	// Values that exercise ties (equal inputs, exact zeros), signs, drops
	// and the normalization guard.
	val := func() float32 {
		switch r.IntN(8) {
		case 0:
			return 0
		case 1:
			return 0.5
		case 2, 3: // deltas of equal weights that cancel: sign ties
			return 0.25
		case 4:
			return -0.25
		}
		return float32(r.NormFloat64() * 0.02)
	}
	for _, n := range []int{1, 15, 16, 17, 33, 100, 1000, chunk} {
		for models := 1; models <= 4; models++ {
			for _, o := range []TaskOptions{
				{Sparsify: SparsifyRandom, Density: []float64{0.5, 0.3, 1, 0.9}, Consensus: "sum", Normalize: true, Rescale: true, Seed: 3},
				{Sparsify: SparsifyRandom, Density: []float64{0, 0.7, 0.5, 1e-9}, Consensus: "sum", Normalize: false, Seed: 4},
				{Consensus: "sum", Density: []float64{1, 1, 1, 1}, Normalize: true},
			} {
				base := make([]float32, n)
				xs := make([][]float32, models)
				for j := range base {
					base[j] = val()
				}
				for i := range xs {
					xs[i] = make([]float32, n)
					for j := range xs[i] {
						if r.IntN(4) == 0 {
							xs[i][j] = base[j] // a zero delta
						} else {
							xs[i][j] = base[j] + val()
						}
					}
				}
				for _, w := range [][]float64{{0.5, -0.25, 1.0 / 3, 1e-9}, {0.5, 0.5, 0.5, 0.5}} {
					w := w[:models]
					run := func(simd bool) []float32 {
						useSIMD(simd)
						defer useSIMD(true)
						dst := make([]float32, n)
						sumChunk(dst, base, xs, w, o, 0.7, 5, scratch(models+1, chunk))
						return dst
					}
					want, got := run(false), run(true)
					for j := range want {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("n=%d models=%d %+v: element %d: assembly %g, Go %g", n, models, o, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

func TestBF16ConversionAssemblyMatchesGo(t *testing.T) {
	specials := []uint32{
		0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff,
		0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x7f7fffff, 0x00000001, 0x807fffff,
	}
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 1000)
	for i := range src {
		if i < len(specials) {
			src[i] = math.Float32frombits(specials[i])
		} else {
			src[i] = math.Float32frombits(r.Uint32())
		}
	}
	got := make([]uint16, len(src))
	narrowBF16(got, src)
	for i, v := range src {
		if want := safetensors.F32ToBF16(v); got[i] != want {
			t.Fatalf("narrow %#08x: got %#04x, want %#04x", math.Float32bits(v), got[i], want)
		}
	}
	back := make([]float32, len(got))
	widenBF16(back, got)
	for i, h := range got {
		if math.Float32bits(back[i]) != uint32(h)<<16 {
			t.Fatalf("widen %#04x: got %#08x", h, math.Float32bits(back[i]))
		}
	}
}

// TestBandSumAssemblyMatchesGo: the fused TIES/breadcrumbs steps keep the
// same entries and sums them as the Go code, on bands that cut through
// tied magnitudes, take everything or nothing.
func TestBandSumAssemblyMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	vals := []float32{0, 0.25, -0.25, 0.5, float32(math.Inf(1)), float32(math.NaN())}
	for _, n := range []int{1, 15, 16, 17, 100, 1000} {
		for models := 1; models <= 4; models++ {
			base := make([]float32, n)
			xs := make([][]float32, models)
			for j := range base {
				base[j] = float32(r.NormFloat64())
			}
			for i := range xs {
				xs[i] = make([]float32, n)
				for j := range xs[i] {
					if r.IntN(3) == 0 {
						xs[i][j] = base[j] + vals[r.IntN(len(vals))]
					} else {
						xs[i][j] = base[j] + float32(r.NormFloat64()*0.1)
					}
				}
			}
			bits := func(v float32) uint32 { return math.Float32bits(v) &^ (1 << 31) }
			lo, hi := make([]uint32, models), make([]uint32, models)
			for i := range lo {
				choices := []uint32{0, bits(0.25), bits(0.25) + 1, bits(0.05), 1 << 31}
				lo[i] = choices[r.IntN(len(choices))]
				hi[i] = []uint32{1 << 31, bits(0.5), bits(0.25), bits(float32(math.Inf(1))) + 1}[r.IntN(4)]
			}
			w := []float64{0.5, -0.25, 1.0 / 3, 0.7}[:models]
			for _, norm := range []bool{false, true} {
				run := func(simd bool) []float32 {
					useSIMD(simd)
					defer useSIMD(true)
					dst := make([]float32, n)
					bandSum(dst, base, xs, w, lo, hi, norm, 0.9, scratch(models, n), make([][]float32, models), make([]float32, 16*models))
					return dst
				}
				lin := func(simd bool) []float32 {
					useSIMD(simd)
					defer useSIMD(true)
					dst := make([]float32, n)
					bandLinear(dst, base, xs, w, lo, hi, 0.9/1.7)
					return dst
				}
				for _, f := range []func(bool) []float32{run, lin} {
					want, got := f(false), f(true)
					for j := range want {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("n=%d models=%d lo=%x hi=%x: element %d: assembly %g, Go %g", n, models, lo, hi, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestCollectAssemblyMatchesGo: the bracket's collecting pass keeps the
// same magnitudes in the same order and counts the same entries above.
func TestCollectAssemblyMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 15, 16, 17, 31, 100, 1000} {
		base, x := make([]float32, n), make([]float32, n)
		for j := range base {
			base[j] = float32(r.NormFloat64())
			x[j] = base[j] + []float32{0, 0.25, -0.25, float32(math.NaN()), float32(r.NormFloat64())}[r.IntN(5)]
		}
		bits := func(v float32) uint32 { return math.Float32bits(v) &^ (1 << 31) }
		for _, b := range [][2]uint32{{0, math.MaxUint32}, {bits(0.25), bits(0.25)}, {bits(0.1), bits(1)}, {0, 0}, {bits(2), math.MaxUint32}} {
			run := func(simd bool) ([]uint32, int64) {
				useSIMD(simd)
				defer useSIMD(true)
				buf := make([]uint32, n+16)
				c, above := collectDelta(buf, x, base, b[0], b[1])
				return buf[:c], above
			}
			wc, wa := run(false)
			gc, ga := run(true)
			// bf16 inputs read in place: the same as their widened values.
			xb, bb := make([]uint16, n), make([]uint16, n)
			xw, bw := make([]float32, n), make([]float32, n)
			for j := range xb {
				xb[j], bb[j] = safetensors.F32ToBF16(x[j]), safetensors.F32ToBF16(base[j])
				xw[j], bw[j] = math.Float32frombits(uint32(xb[j])<<16), math.Float32frombits(uint32(bb[j])<<16)
			}
			bfRun := func(simd, wide bool) ([]uint32, int64) {
				useSIMD(simd)
				defer useSIMD(true)
				buf := make([]uint32, n+16)
				var c int
				var above int64
				if wide {
					c, above = collectDelta(buf, xw, bw, b[0], b[1])
				} else {
					c, above = collectBF16(buf, xb, bb, b[0], b[1])
				}
				return buf[:c], above
			}
			bwc, bwa := bfRun(false, true)
			for _, simd := range []bool{false, true} {
				bgc, bga := bfRun(simd, false)
				if bga != bwa || len(bgc) != len(bwc) {
					t.Fatalf("bf16 n=%d bracket %x simd=%v: %d in, %d above; widened %d, %d", n, b, simd, len(bgc), bga, len(bwc), bwa)
				}
				for j := range bwc {
					if bgc[j] != bwc[j] {
						t.Fatalf("bf16 n=%d bracket %x simd=%v: [%d] = %x, widened %x", n, b, simd, j, bgc[j], bwc[j])
					}
				}
			}
			if ga != wa || len(gc) != len(wc) {
				t.Fatalf("n=%d bracket %x: assembly %d in, %d above; Go %d, %d", n, b, len(gc), ga, len(wc), wa)
			}
			for j := range wc {
				if gc[j] != wc[j] {
					t.Fatalf("n=%d bracket %x: [%d] = %x, Go %x", n, b, j, gc[j], wc[j])
				}
			}
		}
	}
}

// TestPrefixSums holds prefixSums (with its assembly) to the running sum,
// on lengths around the vector width and counts up to large ones.
func TestPrefixSums(t *testing.T) {
	r := rng{s: 11}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1024} {
		for _, simd := range []bool{true, false} {
			useSIMD(simd)
			c := make([]int32, n)
			for i := range c {
				c[i] = int32(r.next() % 1000)
				if r.next()%4 == 0 {
					c[i] = 0
				}
			}
			start := int32(r.next() % 50)
			want, sum := make([]int32, n), start
			for i, k := range c {
				want[i], sum = sum, sum+k
			}
			got := prefixSums(c, start)
			useSIMD(true)
			if got != sum || !slices.Equal(c, want) {
				t.Fatalf("n %d simd %v: total %d (want %d), sums %v, want %v", n, simd, got, sum, c, want)
			}
		}
	}
}

// TestTopDigitsMatchGo holds topDigits (its assembly) to topDigit on
// every length up to past two vectors and a row's, with keys below, at and
// above lo16 and at both ends of the key range.
func TestTopDigitsMatchGo(t *testing.T) {
	if digitsFast == nil {
		t.Skip("no top-digit kernel on this CPU")
	}
	r := rng{s: 13}
	st := &keyStats{dg: make([]uint16, 1000)}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 47, 896, 1000} {
		for _, lo16 := range []uint32{0, 1, 0x3c00, 0x7fff} {
			a := make([]uint64, n)
			for j := range a {
				var k uint32
				switch r.next() % 4 {
				case 0:
					k = uint32(r.next()) &^ signBit // anywhere
				case 1:
					k = lo16<<16 | uint32(r.next()&0xffff) // at lo16
				case 2:
					k = (lo16 + uint32(r.next()%2048)) << 16 // in the window
				case 3:
					k = []uint32{0, 0x7fffffff, 0xffff, 0x10000}[r.next()%4]
				}
				k &^= signBit
				a[j] = uint64(k)<<32 | r.next()&0xffffffff
			}
			got := st.topDigits(a, lo16)
			for j, v := range a {
				if want := uint16(topDigit(v, lo16)); got[j] != want {
					t.Fatalf("n %d lo16 %#x: entry %d (key %#x) digit %d, want %d", n, lo16, j, uint32(v>>32), got[j], want)
				}
			}
		}
	}
}

// TestDropRandomAssemblyMatchesGo: DARE's drops keep the same entries,
// scaled by the same factor, and leave the generator where the Go loop
// does, whatever the length (the assembly takes multiples of 8).
func TestDropRandomAssemblyMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1001, chunk} {
		for _, density := range []float64{0.5, 0.3, 0.999999, 1e-9, 0} {
			x := make([]float32, n)
			for j := range x {
				x[j] = float32(r.NormFloat64())
			}
			seed := r.Uint64()
			scale := float32(1 / math.Max(density, 0.1))
			run := func(simd bool) ([]float32, uint64) {
				useSIMD(simd)
				defer useSIMD(true)
				d := slices.Clone(x)
				g := rng{s: seed}
				dropRandom(d, density, scale, &g)
				return d, g.next()
			}
			want, wnext := run(false)
			got, gnext := run(true)
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("n %d density %v: [%d] = %v, Go %v", n, density, j, got[j], want[j])
				}
			}
			if gnext != wnext {
				t.Fatalf("n %d density %v: the generator's next draw %x, Go %x", n, density, gnext, wnext)
			}
		}
	}
}

// TestLinearAssemblyMatchesDefinition holds linearInto, with and without
// the assembly, to the linear merge's definition (a float64 sum from
// zero of weight times entry, in the models' order, divided, rounded to
// float32) bit for bit, on special values and on every number of models
// the assembly takes and one more.
func TestLinearAssemblyMatchesDefinition(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, -3e-39, 3.4e38, -3.4e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0.1, 1.5}
	r := rand.New(rand.NewPCG(4, 11))
	for _, n := range []int{0, 1, 7, 8, 9, 17, 100, 1003} {
		for _, models := range []int{1, 2, 3, 16, 17} {
			for _, div := range []float64{1, 2, 3, 0.7, -1.3, 1e-300} {
				xs := make([][]float32, models)
				w := make([]float64, models)
				for i := range xs {
					w[i] = r.NormFloat64()
					if i == 1 {
						w[i] = 0
					}
					xs[i] = make([]float32, n)
					for j := range xs[i] {
						if r.IntN(4) == 0 {
							xs[i][j] = special[r.IntN(len(special))]
						} else {
							xs[i][j] = float32(r.NormFloat64())
						}
					}
				}
				want := make([]float32, n)
				for j := range want {
					acc := 0.0
					for i := range xs {
						p := w[i] * float64(xs[i][j])
						acc += p
					}
					want[j] = float32(acc / div)
				}
				for _, simd := range []bool{false, true} {
					useSIMD(simd)
					got := make([]float32, n)
					linearInto(got, xs, w, div)
					useSIMD(true)
					for j := range want {
						g, e := got[j], want[j]
						if math.Float32bits(g) != math.Float32bits(e) && !(g != g && e != e) {
							t.Fatalf("simd %v, n %d, %d models, div %v: [%d] = %v (%#x), want %v (%#x)", simd, n, models, div, j, g, math.Float32bits(g), e, math.Float32bits(e))
						}
					}
				}
			}
		}
	}
	// By hand: halves of 1 and 3, divided by 1; two negative zeros sum to
	// a positive zero from the sum's start.
	got := make([]float32, 8)
	one, three := make([]float32, 8), make([]float32, 8)
	for j := range one {
		one[j], three[j] = 1, 3
	}
	nz := float32(math.Copysign(0, -1))
	one[7], three[7] = nz, nz
	linearInto(got, [][]float32{one, three}, []float64{0.5, 0.5}, 1)
	for j, g := range got[:7] {
		if g != 2 {
			t.Fatalf("[%d] = %v, want 2", j, g)
		}
	}
	if math.Float32bits(got[7]) != 0 {
		t.Fatalf("negative zeros summed to %v (%#x), want +0", got[7], math.Float32bits(got[7]))
	}
	// The product is rounded before it is added: 3 times float64(1/3) is
	// 1 - 2^-54 exactly, a tie that rounds to 1, so -1 + 3*(1/3) is +0
	// (a fused multiply-add would give -2^-54).
	minus, threes := make([]float32, 8), make([]float32, 8)
	for j := range minus {
		minus[j], threes[j] = -1, 3
	}
	linearInto(got, [][]float32{minus, threes}, []float64{1, 1.0 / 3}, 1)
	for j, g := range got {
		if math.Float32bits(g) != 0 {
			t.Fatalf("-1 + 3*(1/3): [%d] = %v, want +0", j, g)
		}
	}
}

// TestCollectHeavyMatchesDefinition holds collectHeavy and
// collectBF16Heavy, with and without the assembly, to their definition:
// the magnitude bits of the deltas in [lo, hi] in order, less those equal
// to a heavy value, which are counted per value; and the count above hi.
// A sixteenth of the inputs are zeros of either sign, infinities, NaNs
// or subnormals, whose magnitude bits the bracket compares as integers.
func TestCollectHeavyMatchesDefinition(t *testing.T) {
	special := []uint16{0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0x0001, 0x8001}
	r := rand.New(rand.NewPCG(3, 17))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 100, 1001} {
		for nh := range maxHeavy + 1 {
			// Weights of a few bf16 values apart, so magnitudes repeat.
			xb, bb := make([]uint16, n), make([]uint16, n)
			x, base := make([]float32, n), make([]float32, n)
			for j := range x {
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
			lo, hi := uint32(0), uint32(math.MaxUint32>>1)
			if n > 2 {
				s := slices.Clone(mags)
				slices.Sort(s)
				lo, hi = s[n/4], s[3*n/4]
			}
			var heavy []uint32
			for try := 0; try < 100 && len(heavy) < nh && n > 0; try++ {
				v := mags[r.IntN(n)]
				if v >= lo && v <= hi && !slices.Contains(heavy, v) {
					heavy = append(heavy, v)
				}
			}
			var want []uint32
			wantEq := [maxHeavy]int32{5, 6, 7, 8}
			var wantAbove int64
			for _, a := range mags {
				if a > hi {
					wantAbove++
				}
				if a < lo || a > hi {
					continue
				}
				if j := slices.Index(heavy, a); j >= 0 {
					wantEq[j]++
					continue
				}
				want = append(want, a)
			}
			for _, simd := range []bool{false, true} {
				for _, bf16 := range []bool{false, true} {
					useSIMD(simd)
					buf := make([]uint32, n+16)
					eq := [maxHeavy]int32{5, 6, 7, 8} // counted into
					var c int
					var above int64
					if bf16 {
						c, above = collectBF16Heavy(buf, xb, bb, lo, hi, heavy, &eq)
					} else {
						c, above = collectHeavy(buf, x, base, lo, hi, heavy, &eq)
					}
					useSIMD(true)
					if !slices.Equal(buf[:c], want) || eq != wantEq || above != wantAbove {
						t.Fatalf("n %d, %d heavy, simd %v, bf16 %v: %d kept, eq %v, above %d; want %d, %v, %d",
							n, len(heavy), simd, bf16, c, eq, above, len(want), wantEq, wantAbove)
					}
				}
			}
		}
	}
}

// TestGramAssemblyMatchesGo holds dot64, dotDelta, combineRun and
// stockRun with the assembly to their Go loops bit for bit (NaNs as
// NaNs), on special values, tails, offsets and every order of summation,
// and to hand-derived values that a fused multiply-add or another order
// of summation would miss. (A fused multiply-add in stockRun's last step
// changes the float64 sum by an ulp at most, which the rounding to
// float32 hides on these inputs.)
func TestGramAssemblyMatchesGo(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, 3.4e38, -3.4e38,
		float32(math.Inf(1)), float32(math.NaN()), 1.5}
	r := rand.New(rand.NewPCG(8, 21))
	vec := func(n int) []float32 {
		x := make([]float32, n)
		for j := range x {
			if r.IntN(5) == 0 {
				x[j] = special[r.IntN(len(special))]
			} else {
				x[j] = float32(r.NormFloat64())
			}
		}
		return x
	}
	same64 := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) || (a != a && b != b) }
	same32 := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b) }
	run := func(simd bool, f func()) {
		useSIMD(simd)
		defer useSIMD(true)
		f()
	}
	normal := func(n int) []float32 { // special values would swamp the sums
		x := make([]float32, n)
		for j := range x {
			x[j] = float32(r.NormFloat64())
		}
		return x
	}
	for _, n := range []int{0, 1, 3, 4, 5, 8, 9, 15, 16, 17, 100, 1001} {
		// dot64's products of two float32 are exact in float64, so a
		// fused multiply-add would not change it; dotDelta's are not.
		x, y, b := normal(n), normal(n), normal(n)
		var sp [2]float64
		xv, yv, bv := vec(n), vec(n), vec(n)
		for k, simd := range []bool{false, true} {
			run(simd, func() { sp[k] = dot64(xv, yv) + dotDelta(xv, yv, bv) })
		}
		if !same64(sp[0], sp[1]) {
			t.Fatalf("n %d, special values: %v, Go %v", n, sp[1], sp[0])
		}
		// A base 2^12 times smaller: differences of about 36 bits, whose
		// products are rounded.
		small := make([]float32, n)
		for j, v := range b {
			small[j] = v / 4096
		}
		var d, dd, ds [2]float64
		for k, simd := range []bool{false, true} {
			run(simd, func() { d[k], dd[k], ds[k] = dot64(x, y), dotDelta(x, y, b), dotDelta(x, y, small) })
		}
		if !same64(d[0], d[1]) || !same64(dd[0], dd[1]) || !same64(ds[0], ds[1]) {
			t.Fatalf("n %d: dot64 %v, Go %v; dotDelta %v, Go %v; on a small base %v, Go %v", n, d[1], d[0], dd[1], dd[0], ds[1], ds[0])
		}
		// gramAdd on two vectors takes its three pairs in one kernel.
		for bi, base := range [][]float32{nil, b, small, bv} {
			for vi, in := range [][2][]float32{{x, y}, {xv, yv}} {
				for _, a := range []int{0, 3} {
					if a > n {
						continue
					}
					var g [2][3]float64
					for k, simd := range []bool{false, true} {
						run(simd, func() { gramAdd(g[k][:], [][]float32{in[0], in[1]}, base, a, n) })
					}
					for p := range g[0] {
						if !same64(g[0][p], g[1][p]) {
							t.Fatalf("n %d, base %d, vectors %d, from %d: gramAdd pair %d %v, Go %v", n, bi, vi, a, p, g[1][p], g[0][p])
						}
					}
				}
			}
		}
		for _, models := range []int{1, 2, 3, 16, 17} {
			for _, withBase := range []bool{false, true} {
				for _, a := range []int{0, 3} {
					if a > n {
						continue
					}
					xs := make([][]float32, models)
					c := make([]float64, models)
					for i := range xs {
						xs[i], c[i] = vec(n), r.NormFloat64()
					}
					var base []float32
					if withBase {
						base = vec(n)
					}
					var out [2][]float32
					for k, simd := range []bool{false, true} {
						out[k] = make([]float32, n-a)
						run(simd, func() { combineRun(out[k], xs, base, c, a) })
					}
					for j := range out[0] {
						if !same32(out[0][j], out[1][j]) {
							t.Fatalf("n %d, %d models, base %v, a %d: [%d] = %v, Go %v", n, models, withBase, a, j, out[1][j], out[0][j])
						}
					}
					if !withBase || models < 2 {
						continue
					}
					tt := r.Float64()*2 - 0.5
					for k, simd := range []bool{false, true} {
						run(simd, func() { stockRun(out[k], xs, base, tt, a) })
					}
					for j := range out[0] {
						if !same32(out[0][j], out[1][j]) {
							t.Fatalf("stockRun: n %d, %d models, a %d: [%d] = %v, Go %v", n, models, a, j, out[1][j], out[0][j])
						}
					}
				}
			}
		}
	}
	fill := func(v float32) []float32 {
		x := make([]float32, 8)
		for j := range x {
			x[j] = v
		}
		return x
	}
	// By hand: 3*float64(1/3) rounds to 1 (a tie to even), so the sum
	// -1 + 3*(1/3) is +0 where a fused multiply-add gives -2^-54.
	got := make([]float32, 8)
	combineRun(got, [][]float32{fill(-1), fill(3)}, nil, []float64{1, 1.0 / 3}, 0)
	if math.Float32bits(got[0]) != 0 {
		t.Fatalf("-1 + 3*(1/3) = %v, want +0", got[0])
	}
	// Products of -0 (negative coefficients on zero differences from a
	// base of -0): two models sum from the first product, -0 + -0 + -0 =
	// -0; three sum from zero, and +0 + -0 ... + -0 = +0.
	nz := float32(math.Copysign(0, -1))
	combineRun(got, [][]float32{fill(0), fill(0)}, fill(nz), []float64{-1, -2}, 0)
	if math.Float32bits(got[0]) != 1<<31 {
		t.Fatalf("two models: %v (%#x), want -0", got[0], math.Float32bits(got[0]))
	}
	combineRun(got, [][]float32{fill(0), fill(0), fill(0)}, fill(nz), []float64{-1, -2, -3}, 0)
	if math.Float32bits(got[0]) != 0 {
		t.Fatalf("three models: %v (%#x), want +0", got[0], math.Float32bits(got[0]))
	}
	// model_stock's mean of -0s: from the first model for two, -0, so
	// 0.5*-0 + 0.5*-0 = -0; from zero for three, +0 + 0.5*-0 = +0.
	stockRun(got, [][]float32{fill(nz), fill(nz)}, fill(nz), 0.5, 0)
	if math.Float32bits(got[0]) != 1<<31 {
		t.Fatalf("model_stock, two models: %v (%#x), want -0", got[0], math.Float32bits(got[0]))
	}
	stockRun(got, [][]float32{fill(nz), fill(nz), fill(nz)}, fill(nz), 0.5, 0)
	if math.Float32bits(got[0]) != 0 {
		t.Fatalf("model_stock, three models: %v (%#x), want +0", got[0], math.Float32bits(got[0]))
	}
	// By hand: the mean of 1 and 2 is 1.5; t = 0.25: 0.375 + 0.75*4 = 3.375.
	stockRun(got, [][]float32{fill(1), fill(2)}, fill(4), 0.25, 0)
	if got[0] != 3.375 || got[7] != 3.375 {
		t.Fatalf("model_stock by hand: %v, want 3.375", got)
	}
}

// TestSCEVarianceAssemblyMatchesDefinition holds sceVariance on two
// models, with and without the assembly, to the variance as SCE defines
// it (the mean of the task vectors, then the mean of their squared
// deviations, in float64), bit for bit, NaNs as NaNs. (With two models the
// deviations are each other's negation, so a fused multiply-add in the
// last sum would give the same bits.)
func TestSCEVarianceAssemblyMatchesDefinition(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, 3.4e38, -3.4e38,
		float32(math.Inf(1)), float32(math.NaN()), 1.5}
	r := rand.New(rand.NewPCG(12, 5))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 1000} {
		xs := make([][]float32, 3)
		for i := range xs {
			xs[i] = make([]float32, n)
			for j := range xs[i] {
				if r.IntN(6) == 0 {
					xs[i][j] = special[r.IntN(len(special))]
				} else {
					xs[i][j] = float32(r.NormFloat64() * 0.02)
				}
			}
		}
		want := make([]float32, n)
		for j := range want {
			b := float64(xs[0][j])
			d0, d1 := float64(xs[1][j])-b, float64(xs[2][j])-b
			m := (d0 + d1) / 2
			want[j] = float32(((d0-m)*(d0-m) + (d1-m)*(d1-m)) / 2)
		}
		for _, simd := range []bool{false, true} {
			useSIMD(simd)
			got := make([]float32, n)
			sceVariance(got, xs)
			useSIMD(true)
			for j := range want {
				if g, e := got[j], want[j]; math.Float32bits(g) != math.Float32bits(e) && !(g != g && e != e) {
					t.Fatalf("simd %v, n %d: [%d] = %v, want %v", simd, n, j, g, e)
				}
			}
		}
	}
}

// TestKeepMaskThresholds holds keepMask's comparison, with and without
// the assembly, to its definition (kept when the magnitude's bits are at
// least the threshold) at thresholds from zero to past every magnitude,
// on special values.
func TestKeepMaskThresholds(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1, -1, 3.4e38,
		float32(math.Inf(-1)), float32(math.NaN()), float32(-math.NaN())}
	r := rand.New(rand.NewPCG(2, 40))
	d := make([]float32, 1003)
	for j := range d {
		if r.IntN(4) == 0 {
			d[j] = special[r.IntN(len(special))]
		} else {
			d[j] = float32(r.NormFloat64())
		}
	}
	for _, th := range []uint32{0, 1, 0x3f800000, 0x3f800001, 0x7f800000, 0x7fc00000, 0x7fffffff} {
		for _, q := range []int64{-1, 0} { // -1: at least th; a quota of 0: strictly above
			sel := &topK{th: th}
			if q >= 0 {
				sel.quota, sel.eqs = []int32{int32(q)}, []int32{1}
			}
			for _, simd := range []bool{false, true} {
				useSIMD(simd)
				m := make([]uint32, len(d))
				sel.keepMask(m, d, 0)
				useSIMD(true)
				lim := int64(th)
				if q >= 0 {
					lim++
				}
				for j, v := range d {
					want := int64(math.Float32bits(v)&^(1<<31)) >= lim
					if (m[j] == ^uint32(0)) != want || (m[j] != 0 && m[j] != ^uint32(0)) {
						t.Fatalf("simd %v, th %#x, quota %d: [%d] = %v (%#x): mask %#x", simd, th, q, j, v, math.Float32bits(v), m[j])
					}
				}
			}
		}
	}
}

// TestBandLinearBF16MatchesWidened holds bandLinearBF16, with and without
// the assembly, with the base float32 or bfloat16 (read in place too), to
// bandLinear's Go loop on the same bfloat16 models widened to float32
// first, bit for bit, on bands that keep all, none or some entries.
func TestBandLinearBF16MatchesWidened(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{0, 1, 7, 8, 9, 100, 1001} {
		for _, models := range []int{1, 2, 3, 16, 17} {
			base := make([]float32, n)
			for j := range base {
				base[j] = safetensors.BF16ToF32(safetensors.F32ToBF16(float32(r.NormFloat64() * 0.02)))
			}
			xb, xf := make([][]uint16, models), make([][]float32, models)
			w := make([]float64, models)
			lo, hi := make([]uint32, models), make([]uint32, models)
			for i := range xb {
				xb[i], xf[i] = make([]uint16, n), make([]float32, n)
				for j := range xb[i] {
					xb[i][j] = uint16(int(safetensors.F32ToBF16(base[j])) + r.IntN(9) - 4)
					if r.IntN(50) == 0 {
						xb[i][j] = safetensors.F32ToBF16(float32(math.Inf(1 - 2*r.IntN(2))))
					}
					xf[i][j] = safetensors.BF16ToF32(xb[i][j])
				}
				w[i] = r.NormFloat64()
				switch i % 3 {
				case 0:
					lo[i], hi[i] = 0, 1<<31 // all
				case 1:
					lo[i], hi[i] = 0x30000000, 0x3c000000
				case 2:
					lo[i], hi[i] = 0x7f800001, 0x7f800001 // none
				}
			}
			scale := r.Float64() + 0.5
			want := make([]float32, n)
			useSIMD(false) // the Go loop, not the float32 assembly
			bandLinear(want, base, xf, w, lo, hi, scale)
			useSIMD(true)
			bb := make([]uint16, n)
			for j := range bb {
				bb[j] = safetensors.F32ToBF16(base[j])
			}
			for _, simd := range []bool{false, true} {
				for _, inPlace := range []bool{false, true} { // the base too
					useSIMD(simd)
					got := make([]float32, n)
					if inPlace {
						bandLinearBF16(got, nil, bb, xb, w, lo, hi, scale)
					} else {
						bandLinearBF16(got, base, nil, xb, w, lo, hi, scale)
					}
					useSIMD(true)
					for j := range want {
						if g, e := got[j], want[j]; math.Float32bits(g) != math.Float32bits(e) && !(g != g && e != e) {
							t.Fatalf("simd %v, n %d, %d models, bf16 base %v: [%d] = %v, want %v", simd, n, models, inPlace, j, g, e)
						}
					}
				}
			}
		}
	}
}

// TestCollectBitsMatchesDefinition holds collectBits, with and without
// the assembly, to its definition on raw bits compared as unsigned
// integers (sign bits included, so a negative NaN is above any positive
// hi), on brackets from empty to everything; and collectBitsHeavy, which
// also counts and leaves out one to four heavy values.
func TestCollectBitsMatchesDefinition(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-45, 1, 2, float32(math.Inf(1)),
		float32(math.NaN()), float32(-math.NaN()), -1}
	r := rand.New(rand.NewPCG(31, 7))
	for _, n := range []int{0, 1, 7, 8, 9, 100, 1001} {
		v := make([]float32, n)
		for j := range v {
			if r.IntN(3) == 0 {
				v[j] = special[r.IntN(len(special))]
			} else {
				v[j] = float32(r.ExpFloat64())
			}
		}
		for _, br := range [][2]uint32{{0, math.MaxUint32}, {0, 0}, {0x3f800000, 0x40000000}, {1, 0x7f800000}, {0x7f800001, math.MaxUint32}, {5, 5}} {
			lo, hi := br[0], br[1]
			var want []uint32
			var wantAbove, wantNZ int64
			for _, x := range v {
				a := math.Float32bits(x)
				if a >= lo && a <= hi {
					want = append(want, a)
				}
				if a > hi {
					wantAbove++
				}
				if a != 0 {
					wantNZ++
				}
			}
			for _, simd := range []bool{false, true} {
				useSIMD(simd)
				buf := make([]uint32, n+8)
				c, above, nz := collectBits(buf, v, lo, hi)
				useSIMD(true)
				if !slices.Equal(buf[:c], want) || above != wantAbove || nz != wantNZ {
					t.Fatalf("simd %v, n %d, [%#x, %#x]: %d kept, %d above, %d non-zero; want %d, %d, %d", simd, n, lo, hi, c, above, nz, len(want), wantAbove, wantNZ)
				}
			}
			// With one to four heavy values (from the kept ones, as a
			// bracket's are): those are counted and left out.
			for k := 1; k <= maxHeavy && k <= len(want); k++ {
				heavy := make([]uint32, k)
				for j := range heavy {
					heavy[j] = want[r.IntN(len(want))]
				}
				var rest []uint32
				var wantEq [maxHeavy]int32
				for _, a := range want {
					hit := false
					for j, h := range heavy {
						if a == h {
							wantEq[j]++
							hit = true
						}
					}
					if !hit {
						rest = append(rest, a)
					}
				}
				for _, simd := range []bool{false, true} {
					useSIMD(simd)
					buf := make([]uint32, n+8)
					var eq [maxHeavy]int32
					c, above, nz := collectBitsHeavy(buf, v, lo, hi, heavy, &eq)
					useSIMD(true)
					if !slices.Equal(buf[:c], rest) || above != wantAbove || nz != wantNZ || eq != wantEq {
						t.Fatalf("simd %v, n %d, [%#x, %#x], heavy %x: %d kept, %d above, %d non-zero, counts %v; want %d, %d, %d, %v", simd, n, lo, hi, heavy, c, above, nz, eq, len(rest), wantAbove, wantNZ, wantEq)
					}
				}
			}
		}
	}
}

// TestSCESquaresMatchDefinition holds sceSquares, with and without the
// assembly, to its definition bit for bit: each model's masked task
// vector squared, entry j to lane j%8, the lanes added as documented; on
// one to three models (the third alone in a pair), lengths around the
// assembly's step, masks that keep or drop at random, and special values
// (signed zeros, the largest and least floats, which square to values a
// float32 cannot hold).
func TestSCESquaresMatchDefinition(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, 3.4e38, -3.4e38, 1.5, 0.1}
	r := rand.New(rand.NewPCG(8, 31))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 1000, 4099} {
		for trial := range 6 {
			nm := 1 + trial%3
			odd := trial >= 3 // special values, which swamp the sums
			base := make([]float32, n)
			m := make([]uint32, n)
			ms := make([][]float32, nm)
			for i := range ms {
				ms[i] = make([]float32, n)
			}
			for j := range base {
				base[j] = float32(r.NormFloat64() * 0.02)
				if r.IntN(3) > 0 {
					m[j] = ^uint32(0)
				}
				for i := range ms {
					if odd && r.IntN(8) == 0 {
						ms[i][j] = special[r.IntN(len(special))]
					} else {
						ms[i][j] = base[j] + float32(r.NormFloat64()*1e-3)
					}
				}
			}
			want := make([]float64, nm)
			for i, x := range ms {
				var l [8]float64
				for j := range base {
					d := x[j] - base[j]
					if m[j] == 0 {
						d = 0
					}
					l[j%8] += float64(d) * float64(d)
				}
				want[i] = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
			}
			for _, simd := range []bool{false, true} {
				useSIMD(simd)
				got := make([]float64, nm)
				sceSquares(got, base, ms, m)
				useSIMD(true)
				for i := range want {
					if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
						t.Fatalf("simd %v, n %d, %d models: model %d: %v, want %v", simd, n, nm, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestKeepMaskQuotaTies holds keepMask with a quota of ties, with and
// without the assembly, to its definition: the magnitudes above the
// threshold, and the first q entries (in index order) whose magnitude is
// the threshold, on blocks where ties are dense or sparse, of either
// sign, and quotas around the assembly's step of eight, up to past every
// tie.
func TestKeepMaskQuotaTies(t *testing.T) {
	const th = 0x3c000000 // 2^-7
	tie := math.Float32frombits(th)
	r := rand.New(rand.NewPCG(3, 77))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1003} {
		for _, dense := range []int{1, 2, 9} { // one in dense is a tie
			d := make([]float32, n)
			ties := 0
			for j := range d {
				switch {
				case r.IntN(dense) == 0:
					d[j] = tie * float32(1-2*r.IntN(2))
					ties++
				case r.IntN(5) == 0:
					d[j] = math.Float32frombits(th + 1)
				case r.IntN(5) == 0:
					d[j] = float32(math.NaN())
				default:
					d[j] = float32(r.NormFloat64() * 0.01)
				}
			}
			for _, q := range []int{1, 7, 8, 9, 15, 16, 17, ties / 2, ties - 1, ties, ties + 5} {
				if q < 1 {
					continue
				}
				sel := &topK{th: th, quota: []int32{int32(q)}, eqs: []int32{int32(ties)}}
				for _, simd := range []bool{false, true} {
					useSIMD(simd)
					m := make([]uint32, n)
					sel.keepMask(m, d, 0)
					useSIMD(true)
					left := q
					for j, v := range d {
						mag := math.Float32bits(v) &^ (1 << 31)
						want := mag > th
						if mag == th && left > 0 {
							want = true
							left--
						}
						if (m[j] == ^uint32(0)) != want || (m[j] != 0 && m[j] != ^uint32(0)) {
							t.Fatalf("simd %v, n %d, one tie in %d, quota %d of %d: [%d] = %v: mask %#x", simd, n, dense, q, ties, j, v, m[j])
						}
					}
				}
			}
		}
	}
}

// TestSCESquaresBF16MatchDefinition holds sceSquaresBF16 (the assembly
// that reads bfloat16 in place, and its tail) to the definition: model
// i's entry j, masked, squared in float64 and added to lane j%8 in order,
// the lanes then summed as laneSum does. The models' weights are near 1
// and the base's near 2^-16, so each delta has about 24 significant bits
// and its square about 48, and a sixteenth of the deltas are 2^10 to 2^20
// times larger: the float64 sums round, and a change in the order of
// additions shows.
func TestSCESquaresBF16MatchDefinition(t *testing.T) {
	if squaresBF16Fast == nil {
		t.Skip("no bfloat16 sce kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(4, 44))
	bf := func(e int) uint16 {
		v := math.Ldexp(1+r.Float64(), e)
		if r.IntN(2) == 0 {
			v = -v
		}
		return safetensors.F32ToBF16(float32(v))
	}
	for _, n := range []int{8, 15, 16, 17, 33, 1001, 4099} {
		u := [3][]uint16{make([]uint16, n), make([]uint16, n), make([]uint16, n)}
		m := make([]uint32, n)
		for j := range n {
			u[0][j], u[1][j], u[2][j] = bf(-16), bf(r.IntN(2)), bf(r.IntN(2))
			if r.IntN(16) == 0 { // a large delta, whose place in the order of additions matters
				u[1+r.IntN(2)][j] = bf(10 + r.IntN(10))
			}
			if r.IntN(4) > 0 {
				m[j] = ^uint32(0)
			}
		}
		var want [2]float64
		for i := range want {
			var l [8]float64
			for j := range n {
				d := safetensors.BF16ToF32(u[i+1][j]) - safetensors.BF16ToF32(u[0][j])
				if m[j] == 0 {
					d = 0
				}
				l[j%8] += float64(d) * float64(d)
			}
			want[i] = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
		}
		var got [2]float64
		sceSquaresBF16(got[:], u[0], u[1], u[2], m)
		if got != want {
			t.Fatalf("n %d: sums of squares %v, want %v", n, got, want)
		}
	}
}

// TestSCEBF16InPlaceMatchesWidened holds sce's kernels that read
// bfloat16 models in place (the variances, the weights' sums of squares
// and the output, with the mask as it is or packed)
// to the float32 ones on the same values widened, bit for bit (NaNs as
// NaNs), on lengths around their steps of 8 and 4, random masks and
// special values. The float32 kernels are held to SCE's definition by
// TestSCEVarianceAssemblyMatchesDefinition, TestSCESquaresMatchDefinition
// and TestSCEOutputMatchesDefinition.
func TestSCEBF16InPlaceMatchesWidened(t *testing.T) {
	if squaresBF16Fast == nil || sceOutBF16Fast == nil || sceVarBF16Fast == nil || sceOutBF16BitsFast == nil {
		t.Skip("no bfloat16 sce kernels on this CPU")
	}
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -3, 3e38}
	r := rand.New(rand.NewPCG(9, 9))
	bf := func() uint16 {
		if r.IntN(5) == 0 {
			return safetensors.F32ToBF16(special[r.IntN(len(special))])
		}
		return safetensors.F32ToBF16(float32(r.NormFloat64() * 0.02))
	}
	for _, n := range []int{0, 1, 3, 4, 5, 7, 8, 9, 15, 1001} {
		u := [3][]uint16{make([]uint16, n), make([]uint16, n), make([]uint16, n)}
		f := [3][]float32{make([]float32, n), make([]float32, n), make([]float32, n)}
		m := make([]uint32, n)
		for j := range n {
			for i := range u {
				u[i][j] = bf()
				if i > 0 && r.IntN(3) == 0 { // a fine-tune's few ulps
					u[i][j] = u[0][j] + uint16(r.IntN(9)) - 4
				}
				f[i][j] = safetensors.BF16ToF32(u[i][j])
			}
			if r.IntN(4) > 0 {
				m[j] = ^uint32(0)
			}
		}
		wv, gv := make([]float32, n), make([]float32, n)
		sceVariance(wv, f[:])
		sceVarianceBF16(gv, u[0], u[1], u[2])
		for j := range wv {
			if math.Float32bits(gv[j]) != math.Float32bits(wv[j]) && !(gv[j] != gv[j] && wv[j] != wv[j]) {
				t.Fatalf("n %d: variance [%d] in place %v, widened %v", n, j, gv[j], wv[j])
			}
		}
		var want, got [2]float64
		sceSquares(want[:], f[0], [][]float32{f[1], f[2]}, m)
		sceSquaresBF16(got[:], u[0], u[1], u[2], m)
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("n %d: model %d's sum of squares in place %v, widened %v", n, i, got[i], want[i])
			}
		}
		bits := make([]uint64, (n+63)/64)
		packMask(bits, m)
		for _, w := range [][2]float64{{0.3, 0.7}, {0, 1}} {
			wo, go_, gb := make([]float32, n), make([]float32, n), make([]float32, n)
			sceOut2(wo, f[0], f[1], f[2], m, w[0], w[1])
			sceOut2BF16(go_, u[0], u[1], u[2], m, w[0], w[1])
			sceOut2BF16Bits(gb, u[0], u[1], u[2], bits, w[0], w[1])
			for j := range wo {
				if math.Float32bits(go_[j]) != math.Float32bits(wo[j]) && !(go_[j] != go_[j] && wo[j] != wo[j]) {
					t.Fatalf("n %d, weights %v: [%d] in place %v, widened %v", n, w, j, go_[j], wo[j])
				}
				if math.Float32bits(gb[j]) != math.Float32bits(wo[j]) && !(gb[j] != gb[j] && wo[j] != wo[j]) {
					t.Fatalf("n %d, weights %v: [%d] in place with packed mask %v, widened %v", n, w, j, gb[j], wo[j])
				}
			}
		}
	}
}

// TestSCEWeighBF16MatchesDefinition holds sceWeighBF16 (the kernel
// that computes a block's variances, mask and squares at once, and its
// tail) to SCE's definition on two bfloat16 models: each entry's variance
// in float64, rounded to float32, kept when its magnitude bits are at
// least the bound; the kept task vectors' squares added to lane j%8 in
// order; the mask packed, entry j to bit j%64 of word j/64, the last
// word's bits past the block zero. Bit for bit, NaNs as NaNs, on lengths
// around the kernels' steps of 8, 16 and 64 and bounds from zero to past
// every magnitude, over words that held other bits.
func TestSCEWeighBF16MatchesDefinition(t *testing.T) {
	if sceWeighBF16Fast == nil {
		t.Skip("no fused sce weights kernel on this CPU")
	}
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -3, 3e38}
	r := rand.New(rand.NewPCG(12, 5))
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 33, 63, 64, 65, 100, 1001, 4099} {
		u := [3][]uint16{make([]uint16, n), make([]uint16, n), make([]uint16, n)}
		for j := range n {
			for i := range u {
				switch {
				case r.IntN(6) == 0:
					u[i][j] = safetensors.F32ToBF16(special[r.IntN(len(special))])
				case i > 0 && r.IntN(2) == 0: // a fine-tune's few ulps
					u[i][j] = u[0][j] + uint16(r.IntN(9)) - 4
				default:
					u[i][j] = safetensors.F32ToBF16(float32(r.NormFloat64() * 0.02))
				}
			}
		}
		v := make([]float32, n)
		for j := range v {
			b := float64(safetensors.BF16ToF32(u[0][j]))
			d0, d1 := float64(safetensors.BF16ToF32(u[1][j]))-b, float64(safetensors.BF16ToF32(u[2][j]))-b
			m := (d0 + d1) * 0.5
			e0, e1 := d0-m, d1-m
			v[j] = float32((e0*e0 + e1*e1) * 0.5)
		}
		bounds := []uint32{0, 1, 0x3f800000, 0x7f800000, 0x7fc00000, 1 << 31}
		if n > 0 {
			bounds = append(bounds, magBits(v[r.IntN(n)]), magBits(v[r.IntN(n)]))
		}
		for _, bound := range bounds {
			var l [2][8]float64
			want := make([]uint64, (n+63)/64)
			for j, x := range v {
				if magBits(x) < bound {
					continue
				}
				want[j/64] |= 1 << (j % 64)
				for i := range l {
					d := safetensors.BF16ToF32(u[i+1][j]) - safetensors.BF16ToF32(u[0][j])
					l[i][j%8] += float64(d) * float64(d)
				}
			}
			wantS := [2]float64{laneSum(&l[0]), laneSum(&l[1])}
			got := make([]uint64, len(want))
			for w := range got {
				got[w] = ^uint64(0) >> (w % 2) // what another block's mask left
			}
			var gotS [2]float64
			sceWeighBF16(gotS[:], got, u[0], u[1], u[2], bound)
			for i := range wantS {
				if math.Float64bits(gotS[i]) != math.Float64bits(wantS[i]) && !(gotS[i] != gotS[i] && wantS[i] != wantS[i]) {
					t.Fatalf("n %d, bound %#x: model %d's sum of squares %v, want %v", n, bound, i, gotS[i], wantS[i])
				}
			}
			for w := range want {
				if got[w] != want[w] {
					t.Fatalf("n %d, bound %#x: mask word %d %#x, want %#x", n, bound, w, got[w], want[w])
				}
			}
		}
	}
}

// TestBandSum2BF16MatchesGo holds TIES's band sum on two bfloat16 models
// read in place (the base float32, or bfloat16 and read in place too) to
// bandSum's Go loops on the models widened, bit for bit
// (NaNs included: the kernel keeps sumCore256's operand order), on bands
// that cut through tied magnitudes or take everything or nothing, with
// and without normalizing, on lengths around the step of 8.
func TestBandSum2BF16MatchesGo(t *testing.T) {
	if bandSum2BF16Fast == nil {
		t.Skip("no bfloat16 band sum on this CPU")
	}
	r := rand.New(rand.NewPCG(17, 3))
	vals := []float32{0, 0.25, -0.25, 0.5, float32(math.Inf(1)), float32(math.NaN()), float32(math.Copysign(0, -1))}
	bf := safetensors.F32ToBF16
	bits := func(v float32) uint32 { return math.Float32bits(v) &^ (1 << 31) }
	for _, n := range []int{1, 7, 8, 9, 16, 17, 100, 1003} {
		for trial := range 12 {
			base := make([]float32, n)
			xb := [2][]uint16{make([]uint16, n), make([]uint16, n)}
			xs := [][]float32{make([]float32, n), make([]float32, n)}
			for j := range base {
				base[j] = safetensors.BF16ToF32(bf(float32(r.NormFloat64())))
				for i := range xb {
					switch r.IntN(4) {
					case 0:
						xb[i][j] = bf(base[j] + vals[r.IntN(len(vals))])
					case 1: // a fine-tune's few ulps: ties
						xb[i][j] = bf(base[j]) + uint16(r.IntN(9)) - 4
					default:
						xb[i][j] = bf(base[j] + float32(r.NormFloat64()*0.1))
					}
					xs[i][j] = safetensors.BF16ToF32(xb[i][j])
				}
			}
			lo, hi := make([]uint32, 2), make([]uint32, 2)
			for i := range lo {
				lo[i] = []uint32{0, bits(0.25), bits(0.25) + 1, bits(0.05), 1 << 31}[r.IntN(5)]
				hi[i] = []uint32{1 << 31, bits(0.5), bits(0.25), bits(float32(math.Inf(1))) + 1}[r.IntN(4)]
			}
			w := [][]float64{{0.5, -0.25}, {1.0 / 3, 0.7}, {0, 1}}[trial%3]
			norm := trial%2 == 0
			useSIMD(false)
			want := make([]float32, n)
			bandSum(want, base, xs, w, lo, hi, norm, 0.9, scratch(2, n), make([][]float32, 2), make([]float32, 32))
			useSIMD(true)
			bb := make([]uint16, n) // the base as bfloat16, read in place too
			for j := range bb {
				bb[j] = bf(base[j])
			}
			for _, inPlace := range []bool{false, true} {
				got := make([]float32, n)
				if inPlace {
					bandSum2BF16(got, nil, bb, xb[0], xb[1], w, lo, hi, norm, 0.9, scratch(2, n), make([][]float32, 2), make([]float32, 32))
				} else {
					bandSum2BF16(got, base, nil, xb[0], xb[1], w, lo, hi, norm, 0.9, scratch(2, n), make([][]float32, 2), make([]float32, 32))
				}
				for j := range want {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("n=%d trial %d lo=%x hi=%x w=%v norm=%v, bf16 base %v: [%d] (base %v, x %v %v) = %v (%#x), Go %v (%#x)", n, trial, lo, hi, w, norm, inPlace, j, base[j], xs[0][j], xs[1][j], got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
					}
				}
			}
		}
	}
}

// TestPackMask holds packMask, with and without the assembly, to its
// definition (entry j's mask to bit j%64 of word j/64, the last word's
// bits past the mask zero, whatever the words held), on lengths around
// a word and a step of eight.
func TestPackMask(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 55))
	for _, n := range []int{0, 1, 8, 63, 64, 65, 127, 128, 200, 1000} {
		m := make([]uint32, n)
		for j := range m {
			if r.IntN(2) == 0 {
				m[j] = ^uint32(0)
			}
		}
		want := make([]uint64, (n+63)/64)
		for j, x := range m {
			if x != 0 {
				want[j/64] |= 1 << (j % 64)
			}
		}
		for _, simd := range []bool{false, true} {
			useSIMD(simd)
			got := make([]uint64, len(want))
			for i := range got {
				got[i] = ^uint64(0) // stale bits must go
			}
			packMask(got, m)
			useSIMD(true)
			if !slices.Equal(got, want) {
				t.Fatalf("simd %v, n %d: %x, want %x", simd, n, got, want)
			}
		}
	}
}

// TestExpLogKernelsMatchMath holds arcee_fusion's kernels to math.Exp and
// math.Log bit for bit: the exponentials of float64(x) - m over the whole
// range (down to underflow, infinities and NaNs among them, which the
// kernel leaves to math.Exp), rowKL's terms, and rowKL with the kernels
// against rowKL without them, on rows of every length to past two groups.
func TestExpLogKernelsMatchMath(t *testing.T) {
	if expFast == nil {
		t.Skip("no exp kernel on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 17))
	same := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) || (a != a && b != b) }
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 31, 896, 1000} {
		for _, scale := range []float64{1e-3, 1, 30, 400, 3e38} {
			x := make([]float32, n)
			for j := range x {
				x[j] = float32(r.NormFloat64() * scale)
				switch r.IntN(50) {
				case 0:
					x[j] = float32(math.Inf(-1))
				case 1:
					x[j] = float32(math.NaN())
				case 2:
					x[j] = -745.5 // Exp's denormal and underflow steps
				}
			}
			m := float64(r.NormFloat64())
			got := make([]float64, n)
			expRow(got, x, m)
			for j, v := range x {
				if want := math.Exp(float64(v) - m); !same(got[j], want) {
					t.Fatalf("n %d scale %g: exp(%g - %g) = %v, math.Exp %v", n, scale, v, m, got[j], want)
				}
			}
			// rowKL's terms on exponentials of a row of this scale.
			u, v := make([]float64, n), make([]float64, n)
			y := make([]float32, n)
			for j := range y {
				y[j] = float32(r.NormFloat64() * min(scale, 50))
				u[j], v[j] = math.Exp(float64(x[j])/scale-2), math.Exp(float64(y[j])/50-2)
			}
			sx, sb := 1+r.Float64(), 1+r.Float64()
			tm := make([]float64, n)
			klTerms(tm, u, v, sx, sb)
			for j := range tm {
				p, q := u[j]/sx+1e-8, v[j]/sb+1e-8
				if want := p * math.Log(p/q); !same(tm[j], want) {
					t.Fatalf("n %d scale %g: term %d %v, want %v", n, scale, j, tm[j], want)
				}
			}
			if scale > 1e3 {
				continue // rows of such values are NaN's business
			}
			for j := range x {
				if x[j] != x[j] || math.IsInf(float64(x[j]), 0) {
					x[j] = 0
				}
			}
			ex := make([]float64, 2*n)
			if a, b := rowKL(x, y, ex), rowKL(x, y, nil); !same(a, b) {
				t.Fatalf("n %d scale %g: rowKL %v with the kernels, %v without", n, scale, a, b)
			}
		}
	}
}
