package merge

import (
	"context"
	"math"
	"math/bits"
	"sync"

	"github.com/mocolab/moco/safetensors"
)

// Reinforced Agent Merging (arXiv 2601.13572), as mergekit's ram and
// ramplus_tl: an entry of a model's delta from the base takes part when
// |delta| > epsilon. Where one model's does (unique), it is kept whole;
// where several do (shared), they are averaged; elsewhere the base stays.
// ramplus_tl scales each model's unique entries by
// 1 + r*clamp(shared/unique, 0, alpha), its counts of shared and unique
// entries in the tensor. Deltas and the test against epsilon are in
// float32, as mergekit's on float32 tensors; the sums in float64.

// RAMOptions are ram's and ramplus_tl's parameters.
type RAMOptions struct {
	Epsilon float64 // entries of |delta| <= Epsilon take no part (mergekit's default 1e-5)
	Plus    bool    // ramplus_tl: rescale unique entries by R and Alpha
	R       float64 // ramplus_tl's rescaling strength (default 0.1)
	Alpha   float64 // ramplus_tl's bound on shared/unique (default 0.2)
}

// RAM merges the task vectors xs[i]-base into dst by Reinforced Agent
// Merging (ram, or ramplus_tl with o.Plus).
func RAM(dst, base []float32, xs [][]float32, o RAMOptions) error {
	if err := checkInputs(dst, plus(xs, base), make([]float64, len(xs)+1)); err != nil {
		return err
	}
	eps := float32(o.Epsilon)
	var lambda []float64
	if o.Plus {
		shared, unique := make([]int64, len(xs)), make([]int64, len(xs))
		ramCount(base, xs, eps, shared, unique)
		lambda = o.lambdas(shared, unique)
	}
	parallel(len(dst), func(lo, hi int) {
		cs := make([][]float32, len(xs))
		for i, x := range xs {
			cs[i] = x[lo:hi]
		}
		ramChunk(dst[lo:hi], base[lo:hi], cs, eps, lambda)
	})
	return nil
}

// lambdas returns ramplus_tl's scale of each model's unique entries.
func (o RAMOptions) lambdas(shared, unique []int64) []float64 {
	l := make([]float64, len(shared))
	for i := range l {
		l[i] = 1
		if unique[i] == 0 {
			// No unique entry to scale. (mergekit divides by
			// max(unique, epsilon): 0/0 when epsilon <= 0 and the model
			// has no entry above it, a NaN that its sum then spreads
			// over the tensor.)
			continue
		}
		rho := float64(shared[i]) / math.Max(float64(unique[i]), float64(float32(o.Epsilon)))
		l[i] = 1 + o.R*math.Min(math.Max(rho, 0), o.Alpha)
	}
	return l
}

// ramCount adds to shared[i] and unique[i] the entries of model i that
// take part, where others' do too and where none's does.
func ramCount(base []float32, xs [][]float32, eps float32, shared, unique []int64) {
	if len(xs) <= ramMaxPattern && !ramPatternsOff {
		// A histogram of the entries' patterns (which models take
		// part), without a branch on the data, folded into the counts.
		counts := make([]int64, 1<<len(xs))
		key := ramEpsKey(eps)
		j0 := 0
		if len(xs) >= 1 && len(xs) <= ramMaxFast && ramCountNFast != nil {
			j0 = ramCountNFast(counts, base, xs, key)
		}
		for j := j0; j < len(base); j++ {
			b := base[j]
			var mask uint
			for i, x := range xs {
				mask |= takesPart(x[j]-b, key) << i
			}
			counts[mask]++
		}
		for mask, c := range counts {
			switch bits.OnesCount(uint(mask)) {
			case 0:
			case 1:
				unique[bits.TrailingZeros(uint(mask))] += c
			default:
				for i := range xs {
					if mask>>i&1 != 0 {
						shared[i] += c
					}
				}
			}
		}
		return
	}
	for j, b := range base {
		n, last := 0, 0
		for i, x := range xs {
			if abs32(x[j]-b) > eps {
				n, last = n+1, i
			}
		}
		switch {
		case n == 1:
			unique[last]++
		case n > 1:
			for i, x := range xs {
				if abs32(x[j]-b) > eps {
					shared[i]++
				}
			}
		}
	}
}

// ramMaxPattern is the most models whose patterns of taking part (one
// bit a model) ramCount and ramChunk index tables by; more take the
// loops with branches.
const ramMaxPattern = 10

// ramPatternsOff makes ramCount and ramChunk take the loops with
// branches (tests hold the two to each other).
var ramPatternsOff bool

// ramMaxFast is the most models ramNFast and ramCountNFast take.
const ramMaxFast = 4

// ramNFast and ramCountNFast, when set (assembly), are ramChunk's pattern
// loop and ramCount's pattern histogram on one to ramMaxFast models (they
// read model 0 before they test the count) over a
// prefix of base (a multiple of the kernel's width, which they return);
// mul and div are the patterns' tables, zero past 1<<len(xs).
var (
	ramNFast      func(dst, base []float32, xs [][]float32, key int64, mul, div *[1 << ramMaxFast]float64) int
	ramCountNFast func(counts []int64, base []float32, xs [][]float32, key int64) int
)

// ram2Fast, when set (assembly), is ramChunk's pattern loop on two models
// over a prefix of dst (a multiple of the kernel's width, which it
// returns), f[mask] the pattern's factor mul[mask]/div[mask]. ramNFast
// takes two models too, but divides: per entry on Zen 5, 0.45 ns against
// 0.33 (AVX-512), 1.7 against 0.67 (AVX2). The counting pass has no
// two-model kernel: ramCountNFast took 0.22 ns an entry against 0.14.
var ram2Fast func(dst, base, x0, x1 []float32, key int64, f *[4]float64) int

// ramEpsKey is the key takesPart compares magnitudes' bits with: for
// non-negative floats the bit patterns order as the values, and a
// negative epsilon lets every delta but NaN take part.
func ramEpsKey(eps float32) int64 {
	if eps < 0 {
		return -1
	}
	return int64(math.Float32bits(eps) &^ signBit)
}

// takesPart is 1 when |d| > eps (key from ramEpsKey) and 0 otherwise,
// NaN included (as the comparison), without a branch: at a fine-tune's
// deltas the test goes either way at random.
func takesPart(d float32, key int64) uint {
	m := int64(math.Float32bits(d) &^ signBit)
	gt := uint64(key-m) >> 63         // m > key
	num := uint64(m-0x7f800001) >> 63 // m <= +Inf: not NaN
	return uint(gt & num)
}

// ramChunk merges one chunk: lambda, when not nil, scales each model's
// unique entries.
func ramChunk(dst, base []float32, xs [][]float32, eps float32, lambda []float64) {
	if len(xs) <= ramMaxPattern && !ramPatternsOff {
		// Each entry's sum of the deltas that take part, times its
		// pattern's factor (lambda for one model) and divided by its
		// count (n for n > 1), as below but without a branch on the data.
		mul, div := make([]float64, 1<<len(xs)), make([]float64, 1<<len(xs))
		for mask := range mul {
			mul[mask], div[mask] = 1, 1
			switch n := bits.OnesCount(uint(mask)); {
			case n == 1 && lambda != nil:
				mul[mask] = lambda[bits.TrailingZeros(uint(mask))]
			case n > 1:
				div[mask] = float64(n)
			}
		}
		key := ramEpsKey(eps)
		j0 := 0
		switch {
		case len(xs) == 2 && ram2Fast != nil:
			// Two models: mul[mask]/div[mask] is a factor that s*mul/div
			// rounds as (one of them is 1, or div is 2 and mul 1).
			f := [4]float64{mul[0] / div[0], mul[1] / div[1], mul[2] / div[2], mul[3] / div[3]}
			j0 = ram2Fast(dst, base, xs[0], xs[1], key, &f)
		case len(xs) >= 1 && len(xs) <= ramMaxFast && ramNFast != nil:
			var m, d [1 << ramMaxFast]float64
			copy(m[:], mul)
			copy(d[:], div)
			j0 = ramNFast(dst, base, xs, key, &m, &d)
		}
		for j := j0; j < len(base); j++ {
			b := base[j]
			var s float64
			var mask uint
			for i, x := range xs {
				d := x[j] - b
				t := takesPart(d, key)
				s += float64(math.Float32frombits(math.Float32bits(d) & -uint32(t)))
				mask |= t << i
			}
			dst[j] = float32(float64(b) + s*mul[mask]/div[mask])
		}
		return
	}
	for j, b := range base {
		var s float64
		n, last := 0, 0
		for i, x := range xs {
			if d := x[j] - b; abs32(d) > eps {
				s += float64(d)
				n, last = n+1, i
			}
		}
		switch {
		case n == 1 && lambda != nil:
			s *= lambda[last]
		case n > 1:
			s /= float64(n)
		}
		dst[j] = float32(float64(b) + s)
	}
}

// streamRAM merges one tensor by RAM: ramplus_tl first counts the shared
// and unique entries of each model in a pass over the inputs (ts, the
// base first).
func streamRAM(ctx context.Context, p *planned, ts []*safetensors.Tensor, n int, o RAMOptions) (*safetensors.Tensor, error) {
	eps := float32(o.Epsilon)
	var lambda []float64
	if o.Plus {
		vs, err := views(p, ts)
		if err != nil {
			return nil, err
		}
		var sc scratchSet
		defer sc.release()
		bp := newBlockPlan(n, 1)
		bp.sc = &sc
		shared, unique := make([]int64, len(ts)-1), make([]int64, len(ts)-1)
		var mu sync.Mutex
		err = eachBlock(ctx, bp, vs, func() (func([][]float32, int), func()) {
			sh, un := make([]int64, len(shared)), make([]int64, len(unique))
			return func(xs [][]float32, _ int) {
					ramCount(xs[0], xs[1:], eps, sh, un)
				}, func() {
					mu.Lock()
					defer mu.Unlock()
					for i := range sh {
						shared[i] += sh[i]
						unique[i] += un[i]
					}
				}
		})
		if err != nil {
			return nil, err
		}
		lambda = o.lambdas(shared, unique)
	}
	return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
		ramChunk(dst, xs[0], xs[1:], eps, lambda)
	})
}

// ramOptions reads ram's or ramplus_tl's parameters for p, with
// mergekit's defaults.
func (s *Spec) ramOptions(p *planned) RAMOptions {
	return RAMOptions{
		Epsilon: s.value(p, -1, "epsilon", 1e-5),
		Plus:    s.Method == "ramplus_tl",
		R:       s.value(p, -1, "r", 0.1),
		Alpha:   s.value(p, -1, "alpha", 0.2),
	}
}
