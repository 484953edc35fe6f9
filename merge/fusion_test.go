package merge

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// fusionRef is arcee_fusion by its definition: every importance, sorted,
// for the quantiles; the same float32 importances as moco's.
func fusionRef(base, x []float32, cols int) (dst []float32, th float32, kept int) {
	imp := make([]float32, len(x))
	for off := 0; off < len(x); off += cols {
		kl := float32(rowKL(x[off:off+cols], base[off:off+cols], nil))
		for j := off; j < off+cols; j++ {
			imp[j] = abs32(x[j]-base[j]) * kl
		}
	}
	s := slices.Clone(imp)
	slices.Sort(s)
	m := len(s) - 1
	th = s[m/2] + float32(float32(1.5)*(s[3*m/4]-s[m/4]))
	dst = make([]float32, len(x))
	for j := range dst {
		var mask float32
		if imp[j] >= th {
			mask = 1
			kept++
		}
		dst[j] = base[j] + (x[j]-base[j])*mask // mergekit's: a base of -0 gives +0
	}
	return dst, th, kept
}

// fusionInputs returns a base and a model of n entries with a heavy tail
// of deltas, a fifth of them zero (ties of importance 0); grid values
// (ties among the rest too) or not.
func fusionInputs(n int, seed uint64, grid bool) (base, x []float32) {
	r := rng{s: seed}
	base, x = make([]float32, n), make([]float32, n)
	for j := range base {
		b := r.float64()*2 - 1
		d := -math.Log(r.float64()+1e-12) / 4 // exponential
		if r.float64() < 0.5 {
			d = -d
		}
		if r.float64() < 0.2 {
			d = 0
		}
		if grid {
			b, d = math.Round(b*64)/64, math.Round(d*16)/16
		}
		base[j] = float32(b)
		x[j] = base[j] + float32(d)
	}
	return base, x
}

// TestArceeFusionExactQuantiles: above 1e6 entries, where mergekit takes
// the quantiles of a random sample, moco's are those of every importance,
// as sorting them all gives; below, the same rule.
func TestArceeFusionExactQuantiles(t *testing.T) {
	for _, c := range []struct {
		name       string
		rows, cols int
		grid       bool
	}{
		{"over 1e6 entries", 1031, 1000, false},
		{"over 1e6 entries, ties", 1031, 1000, true},
		{"a vector", 1, 4099, false},
		{"a small matrix, sorted", 3, 1000, true},
		{"one entry", 1, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.rows * c.cols
			base, x := fusionInputs(n, uint64(n), c.grid)
			want, th, kept := fusionRef(base, x, c.cols)
			var sc scratchSet
			defer sc.release()
			f, err := newFusion(context.Background(), []view{{dt: safetensors.F32, f32: base}, {dt: safetensors.F32, f32: x}}, n, c.cols, &sc)
			if err != nil {
				t.Fatal(err)
			}
			if f.th != th {
				t.Errorf("threshold %v, want %v", f.th, th)
			}
			dst := make([]float32, n)
			if err := ArceeFusion(dst, base, x, c.cols); err != nil {
				t.Fatal(err)
			}
			for j := range dst {
				if math.Float32bits(dst[j]) != math.Float32bits(want[j]) {
					t.Fatalf("entry %d: %v, want %v", j, dst[j], want[j])
				}
			}
			t.Logf("keeps %d of %d", kept, n)
			if n > 1 && (kept == 0 || kept == n) {
				t.Errorf("keeps %d of %d: the threshold decides nothing", kept, n)
			}
		})
	}
}

// TestFusionOrderStats: the radix selection of the importances matches
// their sorted order at every rank asked, with negative importances (a
// KL divergence rounded below 0), -0, +0, ties and infinities.
func TestFusionOrderStats(t *testing.T) {
	const rows, cols = 40, 997
	base, x := fusionInputs(rows*cols, 7, true)
	f := &fusion{cols: cols, kl: make([]float32, rows)}
	for r := range f.kl {
		f.kl[r] = float32(r%5-2) * 0.01 // -0.02 .. 0.02, and 0
	}
	f.kl[3] = float32(math.Copysign(0, -1))
	f.kl[7] = float32(math.Inf(1))
	imp := make([]float32, len(x))
	f.importance(imp, base, x, 0)
	s := slices.Clone(imp)
	slices.SortFunc(s, func(a, b float32) int { return int(int64(orderKey(a)) - int64(orderKey(b))) })
	n := int64(len(s))
	hi := make([]int64, 1<<16) // the first pass's histogram, which newFusion counts
	for _, v := range imp {
		hi[orderKey(v)>>16]++
	}
	ranks := []int64{0, 1, n / 4, n / 2, 3 * n / 4, n - 2, n - 1}
	var sc scratchSet
	defer sc.release()
	// Blocks of four rows, so that each worker takes several.
	bp := blockPlan{n: len(x), rowLen: cols, rowsPer: 4, nBlocks: rows / 4, sc: &sc}
	// Workers list the keys in the bins, or count them in histograms
	// from the first block on, or switch from one to the other.
	defer func(m int) { maxListed = m }(maxListed)
	for _, listed := range []int{1 << 30, 0, 300, 1500} {
		maxListed = listed
		got, err := f.orderStats(context.Background(), bp, []view{{dt: safetensors.F32, f32: base}, {dt: safetensors.F32, f32: x}}, hi, ranks)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range ranks {
			if math.Float32bits(got[i]) != math.Float32bits(s[r]) {
				t.Errorf("listing up to %d keys: rank %d: %v, want %v", listed, r, got[i], s[r])
			}
		}
	}
}

// importance, for the tests, writes the importances of b and x, entries [lo, lo+len(b))
// of the tensor, into imp: |x - b| * KL of the row, in float32.
func (f *fusion) importance(imp, b, x []float32, lo int) {
	for j := 0; j < len(b); {
		r := (lo + j) / f.cols
		end := min(len(b), (r+1)*f.cols-lo)
		kl := f.kl[r]
		for ; j < end; j++ {
			imp[j] = abs32(x[j]-b[j]) * kl
		}
	}
}

func TestOrderKey(t *testing.T) {
	inf := float32(math.Inf(1))
	vs := []float32{-inf, -3, -1e-30, float32(math.Copysign(0, -1)), 0, 1e-30, 1, 2.5, inf}
	for i, v := range vs {
		if fromOrderKey(orderKey(v)) != v || math.Signbit(float64(fromOrderKey(orderKey(v)))) != math.Signbit(float64(v)) {
			t.Errorf("%v does not come back from its key", v)
		}
		if i > 0 && orderKey(vs[i-1]) >= orderKey(v) {
			t.Errorf("key of %v is not below that of %v", vs[i-1], v)
		}
	}
}

// TestRowMaxMatchesSequential holds rowMax to max taken entry by entry,
// bit for bit: signed zeros, infinities and NaNs (two payloads) included,
// on every length to past two groups of four, and around the kernel's
// groups of sixteen.
func TestRowMaxMatchesSequential(t *testing.T) {
	r := rng{s: 23}
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2.5, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0xffc00001), 1e-45}
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 16, 17, 31, 32, 33, 47, 896} {
		for trial := range 300 {
			x := make([]float32, n)
			special := []uint64{2, 40, 1 << 62}[trial%3] // one entry in that many is special
			for j := range x {
				x[j] = float32(r.float64()*4 - 2)
				if r.next()%special == 0 {
					x[j] = vals[r.next()%uint64(len(vals))]
				}
			}
			want := math.Inf(-1)
			for _, v := range x {
				want = max(want, float64(v))
			}
			if got := rowMax(x); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("%v: rowMax %v (%#x), in order %v (%#x)", x, got, math.Float64bits(got), want, math.Float64bits(want))
			}
		}
	}
}

// TestFusionKernelsMatchGo holds the importance kernels (the upper 16
// bits' histogram, the keys in given bins, the output's mask) to the Go
// loops bit for bit, on rows of odd length, blocks that start mid-row, and
// special values among the weights (NaN, infinities, zeros of both signs,
// subnormals) and among the rows' divergences.
func TestFusionKernelsMatchGo(t *testing.T) {
	const rows, cols = 29, 53
	r := rng{s: 11}
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1e-40, -3e-39}
	b, x := make([]float32, rows*cols), make([]float32, rows*cols)
	for j := range b {
		b[j] = float32(r.float64()*2 - 1)
		x[j] = b[j] + float32(r.float64()-0.5)*0.01
		if r.next()%13 == 0 {
			x[j] = special[r.next()%uint64(len(special))]
		}
		if r.next()%17 == 0 {
			b[j] = special[r.next()%uint64(len(special))]
		}
	}
	f := &fusion{cols: cols, kl: make([]float32, rows)}
	for i := range f.kl {
		f.kl[i] = float32(r.float64() * 0.1)
	}
	f.kl[2], f.kl[5], f.kl[6], f.kl[9], f.kl[11] = float32(math.Copysign(0, -1)), float32(math.Inf(1)), -0.01, 0, float32(math.NaN())
	imp := make([]float32, len(b))
	f.importance(imp, b, x, 0)
	f.th = imp[len(imp)/2] // some finite importance
	for i := 0; !(f.th > 0) || math.IsInf(float64(f.th), 0); i++ {
		f.th = imp[i]
	}
	// Four bins that hold entries.
	var bins [4]uint32
	for i := range bins {
		bins[i] = orderKey(imp[(i+1)*len(imp)/5]) >> 16
	}
	for _, lo := range []int{0, cols, 7, 2*cols + 30} { // the block's first entry
		n := len(b) - lo - 11 // and its end, mid-row
		bb, xx := b[lo:lo+n], x[lo:lo+n]
		type result struct {
			top  *[1 << 16]uint32
			tops []uint16 // countTop's scratch: each entry's upper 16 bits
			hits []uint32
			out  []float32
		}
		run := func(simd bool) result {
			useSIMD(simd)
			defer useSIMD(true)
			var res result
			res.top, res.tops = new([1 << 16]uint32), make([]uint16, n)
			f.countTop(res.top, res.tops, bb, xx, lo)
			res.hits = slices.Clone(f.collectBins(make([]uint32, n+15), &bins, bb, xx, lo))
			res.out = make([]float32, n)
			f.apply(res.out, bb, xx, lo)
			return res
		}
		got, want := run(true), run(false)
		if *got.top != *want.top {
			for k := range want.top {
				if got.top[k] != want.top[k] {
					t.Errorf("lo %d: top bin %#x counts %d, want %d", lo, k, got.top[k], want.top[k])
				}
			}
		}
		if !slices.Equal(got.hits, want.hits) {
			i := 0
			for i < min(len(got.hits), len(want.hits)) && got.hits[i] == want.hits[i] {
				i++
			}
			t.Errorf("lo %d: %d keys in the bins, want %d; the first difference at %d", lo, len(got.hits), len(want.hits), i)
		}
		if !slices.Equal(got.tops, want.tops) {
			t.Errorf("lo %d: the upper 16 bits differ", lo)
		}
		if len(want.hits) == 0 {
			t.Errorf("lo %d: no key in the bins: the test tests nothing", lo)
		}
		for j := range want.out {
			if math.Float32bits(got.out[j]) != math.Float32bits(want.out[j]) {
				t.Errorf("lo %d: out[%d] = %v (%#x), want %v (%#x)", lo, j, got.out[j], math.Float32bits(got.out[j]), want.out[j], math.Float32bits(want.out[j]))
			}
		}
	}
}
