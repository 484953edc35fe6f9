package merge

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mocolab/moco/kernels"
)

// This file holds the per-tensor arithmetic of every method, on plain
// float32 slices. The streaming merger (merger.go) feeds it one tensor of
// each input at a time.

// Linear writes the weighted sum of xs into dst, divided by the sum of the
// weights when normalize is set (mergekit's default for linear).
func Linear(dst []float32, xs [][]float32, w []float64, normalize bool) error {
	if err := checkInputs(dst, xs, w); err != nil {
		return err
	}
	div := 1.0
	if normalize {
		div = sum(w)
		if math.Abs(div) < 1e-12 {
			return fmt.Errorf("linear: weights sum to zero, cannot normalize")
		}
	}
	parallel(len(dst), func(lo, hi int) {
		for j := lo; j < hi; j++ {
			var s float64
			for i, x := range xs {
				s += w[i] * float64(x[j])
			}
			dst[j] = float32(s / div)
		}
	})
	return nil
}

// TaskOptions configures the task-vector family (task_arithmetic, ties,
// dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della,
// della_linear): each model's delta from the base is sparsified, weighted,
// optionally filtered by sign consensus, summed, optionally normalized by
// the participating weights, scaled by Lambda and added to the base.
type TaskOptions struct {
	Sparsify  string    // one of the Sparsify* constants
	Density   []float64 // per model; fraction of each delta kept (1 = all)
	Gamma     float64   // breadcrumbs: fraction of largest entries dropped
	Epsilon   float64   // della: spread of keep probabilities around density
	Consensus string    // "" (none), "sum" (TIES) or "count"
	Normalize bool      // divide by the sum of the weights that took part
	Rescale   bool      // random: divide survivors by density; magprune: by their keep probability; magnitude, outliers: as RescaleL1 (withL1)
	RescaleL1 bool      // instead of Rescale: restore each delta's L1 norm (mergekit's rescale_norm: l1)
	Lambda    float64   // scale of the merged delta (0 means 1)
	Cols      int       // row length, for della's per-row ranks (0: the whole tensor is one row)
	Seed      uint64    // seed of the random drops; the merger mixes in tensor and model
}

// minWeightSum is the smallest sum of participating weights that a
// normalizing merge divides by; below it the sum is left undivided.
const minWeightSum = 1e-8

// chunk is the unit of parallel work and of DARE's random streams.
const chunk = 1 << 15

// TaskMerge merges the task vectors xs[i]-base into dst = base + lambda *
// merged delta. w holds one weight per model.
func TaskMerge(dst, base []float32, xs [][]float32, w []float64, o TaskOptions) error {
	if err := checkInputs(dst, plus(xs, base), append(append([]float64(nil), w...), 0)); err != nil {
		return err
	}
	if err := o.check(len(xs)); err != nil {
		return err
	}
	o = o.withL1()
	lambda := o.Lambda
	if lambda == 0 {
		lambda = 1
	}
	if !o.elementwise() {
		// Methods that rank or renormalize need each whole delta first.
		deltas := make([][]float32, len(xs))
		for i, x := range xs {
			d := make([]float32, len(x))
			for j := range d {
				d[j] = x[j] - base[j]
			}
			norm := l1Rows(d, o.Cols)
			r := rng{s: mix(o.Seed, uint64(i), 0)}
			sparsify(d, o, i, &r)
			if o.RescaleL1 {
				l1Rescale(d, norm, o.Cols)
			}
			deltas[i] = d
		}
		parallel(len(dst), func(lo, hi int) {
			ds := make([][]float32, len(xs))
			for i := range ds {
				ds[i] = deltas[i][lo:hi]
			}
			combine(dst[lo:hi], base[lo:hi], ds, w, o.Consensus, o.Normalize, lambda)
		})
		return nil
	}
	// Element-wise sparsification: independent chunks, each with its own
	// random stream, so threads never share state.
	parallelChunks(len(dst), func() func(lo, hi int) {
		ds := scratch(len(xs)+1, chunk)
		cs := make([][]float32, len(xs))
		return func(lo, hi int) {
			for i, x := range xs {
				cs[i] = x[lo:hi]
			}
			taskChunk(dst[lo:hi], base[lo:hi], cs, w, o, lambda, lo/chunk, ds)
		}
	})
	return nil
}

// check validates the options for n models.
func (o TaskOptions) check(n int) error {
	if len(o.Density) != n {
		return fmt.Errorf("%d densities for %d models", len(o.Density), n)
	}
	for _, d := range o.Density {
		if d < 0 || d > 1 || math.IsNaN(d) {
			return fmt.Errorf("density %v is outside [0, 1]", d)
		}
	}
	switch o.Consensus {
	case "", "sum", "count":
	default:
		return fmt.Errorf("unknown consensus method %q (want sum or count)", o.Consensus)
	}
	switch o.Sparsify {
	case SparsifyNone, SparsifyRandom, SparsifyMagnitude, SparsifyOutliers, SparsifyMagPrune:
	default:
		return fmt.Errorf("unknown sparsification %q", o.Sparsify)
	}
	return nil
}

// withL1 returns o with RescaleL1 set where Rescale means it: for the
// selections by magnitude (TIES, breadcrumbs), which have no keep
// probability to divide by, mergekit's rescale has always restored each
// delta's L1 norm (rescale_sum before v0.1.0, rescale_norm: l1 since).
func (o TaskOptions) withL1() TaskOptions {
	if o.Rescale && (o.Sparsify == SparsifyMagnitude || o.Sparsify == SparsifyOutliers) {
		o.RescaleL1 = true
	}
	return o
}

// elementwise reports whether o's merge of one chunk depends only on that
// chunk (so tensors can be streamed through in chunks).
func (o TaskOptions) elementwise() bool {
	return !o.RescaleL1 && (o.Sparsify == SparsifyNone || o.Sparsify == SparsifyRandom)
}

func scratch(n, size int) [][]float32 {
	ds := make([][]float32, n)
	for i := range ds {
		ds[i] = make([]float32, size)
	}
	return ds
}

// taskChunk merges chunk number k (of length <= chunk) of an element-wise
// task merge; ds is scratch: len(xs)+1 slices of at least len(dst).
func taskChunk(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32) {
	n := len(dst)
	if o.Consensus == "sum" && len(xs) <= 16 {
		sumChunk(dst, base, xs, w, o, lambda, k, ds)
		return
	}
	if o.Consensus == "" && o.Sparsify == SparsifyNone && len(xs) <= 16 {
		// combine without a consensus on the deltas x - base is bandLinear
		// with bands that keep every magnitude, which has the assembly.
		var lo, hi [16]uint32
		for i := range xs {
			hi[i] = 1 << 31
		}
		bandLinear(dst, base, xs, w, lo[:len(xs)], hi[:len(xs)], linearScale(w, lambda, o.Normalize))
		return
	}
	cur := make([][]float32, len(xs))
	for i, x := range xs {
		d := ds[i][:n]
		// d = x - base with the vector kernels: -1*base is exact, so each
		// entry rounds as x - base does (the scalar loop was a third of a
		// dare_linear merge's CPU).
		copy(d, x[:n])
		kernels.Axpy(-1, base[:n], d)
		if o.Sparsify == SparsifyRandom {
			r := rng{s: mix(o.Seed, uint64(i), uint64(k)+1)}
			sparsify(d, o, i, &r)
		}
		cur[i] = d
	}
	// ds[len(xs)] is free here: combineAll's scratch.
	combineAll(dst, base, cur, w, o.Consensus, o.Normalize, lambda, zeroChunk[:n], ds[len(xs)])
}

// zeroChunk is the base of zeros that combineAll's assembly subtracts
// from deltas (never written).
var zeroChunk [chunk]float32

// sumChunk is taskChunk for sign election by sum (TIES, DARE-TIES), fused
// into two passes: the weighted, dropped deltas and their sum; then per
// position the agreeing deltas and weights, and the output. It computes what
// combine does, in the same float32 arithmetic.
func sumChunk(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32) {
	lo := 0
	if sumFast != nil {
		lo = sumFast(dst, base, xs, w, o, lambda, k, ds)
	}
	sumChunkGo(dst, base, xs, w, o, lambda, k, ds, lo)
}

// sumFast, when set (assembly), computes sumChunk for a prefix of the chunk
// (a multiple of 16 elements) exactly as sumChunkGo does, and returns its
// length.
var sumFast func(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32) int

// combineSumFast, when set (assembly), computes combine with consensus
// "sum" for a prefix of dst (a multiple of 16 elements) exactly as combine
// does, and returns its length; zero and scratch are as combineSum512's.
var combineSumFast func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero, scratch []float32) int

// sumScale returns the factor model i's deltas are multiplied by in
// sumChunk, and whether its entries are dropped at random.
func sumScale(w []float64, o TaskOptions, i int) (sc float32, drop bool) {
	sc = float32(w[i])
	if o.Sparsify == SparsifyRandom && o.Density[i] < 1 {
		if o.Rescale && o.Density[i] > 0 {
			sc = float32(float64(sc) / o.Density[i])
		}
		return sc, true
	}
	return sc, false
}

// sumChunkGo is sumChunk in Go, for the elements from lo (even) on; the
// random streams start where element lo's draw is.
func sumChunkGo(dst, base []float32, xs [][]float32, w []float64, o TaskOptions, lambda float64, k int, ds [][]float32, lo int) {
	n := len(dst)
	if lo >= n {
		return
	}
	var cur [16][]float32
	e := ds[len(xs)][:n]
	clear(e[lo:])
	for i, x := range xs {
		d := ds[i][:n]
		x := x[:n]
		b := base[:n]
		wi := float32(w[i])
		if sc, drop := sumScale(w, o, i); drop {
			th := int64(keepThreshold(o.Density[i]))
			r := rng{s: mix(o.Seed, uint64(i), uint64(k)+1) + uint64(lo/2)*rngGamma}
			j := lo
			for ; j+1 < n; j += 2 {
				u := r.next()
				m0 := uint32((int64(u&0xffffffff) - th) >> 63)
				m1 := uint32((int64(u>>32) - th) >> 63)
				d0 := math.Float32frombits(math.Float32bits((x[j]-b[j])*sc) & m0)
				d1 := math.Float32frombits(math.Float32bits((x[j+1]-b[j+1])*sc) & m1)
				d[j], d[j+1] = d0, d1
				e[j] += d0
				e[j+1] += d1
			}
			if j < n {
				u := r.next()
				m0 := uint32((int64(u&0xffffffff) - th) >> 63)
				d0 := math.Float32frombits(math.Float32bits((x[j]-b[j])*sc) & m0)
				d[j] = d0
				e[j] += d0
			}
		} else {
			for j := lo; j < n; j++ {
				v := (x[j] - b[j]) * wi
				d[j] = v
				e[j] += v
			}
		}
		cur[i] = d
	}
	// A tie elects +: turn zero sums into 1, branch-free (after DARE's drops
	// zero sums are common and unpredictable).
	for j := lo; j < n; j++ {
		x := e[j]
		z := uint32((int64(math.Float32bits(x)&0x7fffffff) - 1) >> 63)
		e[j] = x + math.Float32frombits(0x3f800000&z)
	}
	// Agreeing deltas and their weights, summed per position in registers.
	var wb [16]uint32
	for i := range xs {
		wb[i] = math.Float32bits(float32(w[i]))
	}
	ms := cur[:len(xs)]
	lam := float32(lambda)
	b := base[:n]
	for j := lo; j < n; j++ {
		ej := e[j]
		var a, v float32
		for i, d := range ms {
			x := d[j]
			m := agree(x * ej)
			a += math.Float32frombits(math.Float32bits(x) & m)
			v += math.Float32frombits(wb[i] & m)
		}
		if o.Normalize && (v > minWeightSum || v < -minWeightSum) {
			a /= v
		}
		dst[j] = b[j] + lam*a
	}
}

// sparsify applies o's sparsification with model i's density to d.
func sparsify(d []float32, o TaskOptions, i int, r *rng) {
	den := o.Density[i]
	scale := float32(1)
	if o.Rescale && !o.RescaleL1 && den > 0 {
		scale = float32(1 / den)
	}
	switch o.Sparsify {
	case SparsifyRandom:
		dropRandom(d, den, scale, r)
	case SparsifyMagnitude: // rescaled by RescaleL1 (withL1)
		keepTopK(d, magnitudeCount(den, len(d)))
	case SparsifyOutliers:
		keepBand(d, den, o.Gamma)
	case SparsifyMagPrune:
		magPrune(d, o.Cols, den, o.Epsilon, o.Rescale && !o.RescaleL1, r)
	}
}

func scaleBy(d []float32, s float32) {
	if s == 1 {
		return
	}
	for j := range d {
		d[j] *= s
	}
}

// combine sums the weighted deltas ds into dst = base + lambda * merged. With
// a consensus method, each position elects a sign (the sign of the sum of the
// weighted deltas, or of the count of their signs; a tie elects +) and only
// deltas of that sign take part, in the sum and in the normalizing divisor.
// Zero deltas have no sign and never take part. The sign tests are
// branch-free: deltas after DARE's drops have random signs and zeros, which
// would defeat branch prediction.
func combine(dst, base []float32, ds [][]float32, w []float64, consensus string, normalize bool, lambda float64) {
	if consensus == "" {
		// Every model takes part everywhere: one divisor for the tensor.
		scale := linearScale(w, lambda, normalize)
		for j := range dst {
			var s float64
			for i, d := range ds {
				s += w[i] * float64(d[j])
			}
			dst[j] = float32(float64(base[j]) + scale*s)
		}
		return
	}
	const block = 512
	var elect, acc, div [block]float32
	lam := float32(lambda)
	for lo := 0; lo < len(dst); lo += block {
		n := min(block, len(dst)-lo)
		e, a, v := elect[:n], acc[:n], div[:n]
		clear(e)
		clear(a)
		clear(v)
		for i, d := range ds {
			wi := float32(w[i])
			d := d[lo : lo+n]
			if consensus == "count" {
				for j, x := range d {
					e[j] += signBits(wi * x)
				}
			} else {
				for j, x := range d {
					e[j] += wi * x
				}
			}
		}
		electPlus(e)
		for i, d := range ds {
			addAgreeing(a, v, d[lo:lo+n], e, float32(w[i]))
		}
		out, b := dst[lo:lo+n], base[lo:lo+n]
		if normalize {
			divideBy(a, v)
		}
		for j := range out {
			out[j] = b[j] + lam*a[j]
		}
	}
}

// electPlus makes the zero elections of e (±0) +1: a tie elects +, and
// nudged so, positive deltas agree with it. Without a branch: after DARE
// or TIES many positions have no delta at all.
func electPlus(e []float32) {
	for j, x := range e {
		zero := uint32(int64(uint64(math.Float32bits(x)&^signBit)-1) >> 63) // all ones for ±0
		e[j] = x + math.Float32frombits(0x3f800000&zero)                    // ±0 + 1 is 1
	}
}

// addAgreeing adds to a the weighted deltas wi*d that agree with the
// elections e (agree) and to v their weight wi.
func addAgreeing(a, v, d, e []float32, wi float32) {
	wb := math.Float32bits(wi)
	a, v = a[:len(d)], v[:len(d)]
	e = e[:len(d)]
	for j, x := range d {
		x *= wi
		m := agree(x * e[j])
		a[j] += math.Float32frombits(math.Float32bits(x) & m)
		v[j] += math.Float32frombits(wb & m)
	}
}

// divideBy divides each a[j] by v[j] where |v[j]| > minWeightSum, and by 1
// elsewhere (NaN included), which leaves it as it is.
func divideBy(a, v []float32) {
	const eps = float32(minWeightSum)
	eb := math.Float32bits(eps)
	v = v[:len(a)]
	for j, x := range v {
		b := math.Float32bits(x)
		// all ones when eps < |v| <= Inf, by bits
		big := uint32(int64(uint64((b&^signBit)-eb-1)-uint64(0x7f800000-eb)) >> 63)
		a[j] /= math.Float32frombits(b&big | 0x3f800000&^big)
	}
}

// linearScale is the factor of combine without a consensus: lambda,
// divided by the weights' sum when normalizing (unless it is near zero).
func linearScale(w []float64, lambda float64, normalize bool) float64 {
	scale := lambda
	if normalize {
		div := sum(w)
		if math.Abs(div) < minWeightSum {
			div = 1
		}
		scale /= div
	}
	return scale
}

// agree returns all ones when p is positive, finite and not zero (the
// delta's sign matches the elected one), else zero, without a branch.
func agree(p float32) uint32 {
	b := int64(math.Float32bits(p))
	return uint32(^((b - 1) | (0x7f7fffff - b)) >> 63)
}

// signBits is the sign of x as -1, 0 or 1.
func signBits(x float32) float32 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// slerpDotThreshold: above this |cos|, SLERP falls back to linear
// interpolation (as mergekit does), where sin(theta) is too small to divide by.
const slerpDotThreshold = 0.9995

// Slerp interpolates spherically between a (t=0) and b (t=1), treating each
// tensor as one vector: the angle comes from the normalized vectors, the
// coefficients are applied to the originals. As in mergekit, a vector of
// norm at most 1e-8 is not normalized, so a zero tensor counts as
// orthogonal to the other (a zero a gives sin(t*pi/2)*b).
func Slerp(dst, a, b []float32, t float64) error {
	if err := checkInputs(dst, [][]float32{a, b}, []float64{0, 0}); err != nil {
		return err
	}
	var dot, na, nb float64
	for j := range a {
		x, y := float64(a[j]), float64(b[j])
		dot += x * y
		na += x * x
		nb += y * y
	}
	cos := dot
	if na = math.Sqrt(na); na > 1e-8 {
		cos /= na
	}
	if nb = math.Sqrt(nb); nb > 1e-8 {
		cos /= nb
	}
	c0, c1 := 1-t, t
	if math.Abs(cos) <= slerpDotThreshold {
		theta := math.Acos(cos)
		s := math.Sin(theta)
		c0 = math.Sin((1-t)*theta) / s
		c1 = math.Sin(t*theta) / s
	}
	for j := range dst {
		dst[j] = float32(c0*float64(a[j]) + c1*float64(b[j]))
	}
	return nil
}

// ModelStock merges fine-tunes xs of base (at least two) as in Model Stock:
// with cos the mean pairwise cosine between their deltas, the interpolation
// ratio is t = N*cos / (1 + (N-1)*cos), and dst = t*mean(xs) + (1-t)*base.
// cols > 0 computes a ratio per row of that length (mergekit's filter_wise).
func ModelStock(dst, base []float32, xs [][]float32, cols int) error {
	if len(xs) < 2 {
		return fmt.Errorf("model_stock needs at least two models besides the base, got %d", len(xs))
	}
	if err := checkInputs(dst, plus(xs, base), make([]float64, len(xs)+1)); err != nil {
		return err
	}
	if cols <= 0 {
		cols = len(dst)
	}
	n := float64(len(xs))
	for off := 0; off < len(dst); off += cols {
		e := min(off+cols, len(dst))
		var cs float64
		pairs := 0
		for i := range xs {
			for k := i + 1; k < len(xs); k++ {
				cs += cosDelta(xs[i][off:e], xs[k][off:e], base[off:e])
				pairs++
			}
		}
		c := cs / float64(pairs)
		t := n * c / (1 + (n-1)*c)
		for j := off; j < e; j++ {
			var m float64
			for _, x := range xs {
				m += float64(x[j])
			}
			m /= n
			dst[j] = float32(t*m + (1-t)*float64(base[j]))
		}
	}
	return nil
}

// cosDelta is the cosine between a-base and b-base as mergekit's
// model_stock computes it: the product of the norms taken as at least 1e-6
// (0 when either delta is zero; smaller than the true cosine for deltas
// whose norms multiply to less, such as a fine-tune's of a norm vector),
// clamped to [-1, 1].
func cosDelta(a, b, base []float32) float64 {
	var dot, na, nb float64
	for j := range a {
		x := float64(a[j]) - float64(base[j])
		y := float64(b[j]) - float64(base[j])
		dot += x * y
		na += x * x
		nb += y * y
	}
	c := dot / math.Max(math.Sqrt(na)*math.Sqrt(nb), 1e-6)
	return math.Max(-1, math.Min(1, c))
}

// Extrapolate is ExPO: dst = target + alpha*(target - source).
func Extrapolate(dst, source, target []float32, alpha float64) error {
	if err := checkInputs(dst, [][]float32{source, target}, []float64{0, 0}); err != nil {
		return err
	}
	parallel(len(dst), func(lo, hi int) {
		for j := lo; j < hi; j++ {
			t := float64(target[j])
			dst[j] = float32(t + alpha*(t-float64(source[j])))
		}
	})
	return nil
}

// NearSwap is mergekit's nearswap: the base moves toward the model by
// weight t/|base - x|, clamped to [0, 1], so fully where the two are
// within t of each other and less the farther apart they are. As in
// mergekit, the difference is taken in float32 and as 1e-6 at least.
func NearSwap(dst, base, x []float32, t float64) error {
	if err := checkInputs(dst, [][]float32{base, x}, []float64{0, 0}); err != nil {
		return err
	}
	parallel(len(dst), func(lo, hi int) { nearSwap(dst[lo:hi], base[lo:hi], x[lo:hi], t) })
	return nil
}

// nearSwapMinDiff is nearswap's least |base - x|, in float32 as torch
// clamps a float32 tensor.
const nearSwapMinDiff = float32(1e-6)

// nearSwapFast, when set (assembly), is nearSwap over a prefix of dst (a
// multiple of the kernel's width, which it returns); a NaN it computes may
// carry another payload than Go's min and max give.
var nearSwapFast func(dst, base, x []float32, t float64) int

func nearSwap(dst, base, x []float32, t float64) {
	j0 := 0
	if nearSwapFast != nil {
		j0 = nearSwapFast(dst, base, x, t)
	}
	for j := j0; j < len(dst); j++ {
		d := float64(max(abs32(base[j]-x[j]), nearSwapMinDiff))
		w := min(max(t/d, 0), 1)
		dst[j] = float32(w*float64(x[j]) + (1-w)*float64(base[j]))
	}
}

func checkInputs(dst []float32, xs [][]float32, w []float64) error {
	if len(xs) == 0 {
		return fmt.Errorf("no models to merge")
	}
	if len(w) != len(xs) {
		return fmt.Errorf("%d weights for %d models", len(w), len(xs))
	}
	for i, x := range xs {
		if len(x) != len(dst) {
			return fmt.Errorf("input %d has %d elements, want %d", i, len(x), len(dst))
		}
	}
	for _, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("weight %v is not finite", v)
		}
	}
	return nil
}

// plus returns a new slice of xs followed by x (never aliasing xs).
func plus(xs [][]float32, x []float32) [][]float32 {
	return append(append(make([][]float32, 0, len(xs)+1), xs...), x)
}

// linearFast, when set (assembly), computes linearInto for a prefix of dst
// (a multiple of 8 entries) exactly as linearInto does, and returns its
// length.
var linearFast func(dst []float32, xs [][]float32, w []float64, div float64) int

// linearInto sets dst to the linear merge of xs: each entry the sum of
// w[i] times xs[i]'s, in float64 from zero in the models' order, divided
// by div, rounded to float32.
func linearInto(dst []float32, xs [][]float32, w []float64, div float64) {
	j0 := 0
	if linearFast != nil {
		j0 = linearFast(dst, xs, w, div)
	}
	for j := j0; j < len(dst); j++ {
		var acc float64
		for i, x := range xs {
			acc += w[i] * float64(x[j])
		}
		dst[j] = float32(acc / div)
	}
}

func sum(w []float64) float64 {
	var s float64
	for _, v := range w {
		s += v
	}
	return s
}

// mix derives an independent seed from a seed and two indexes.
func mix(seed, a, b uint64) uint64 {
	r := rng{s: seed ^ 0x6a09e667f3bcc909}
	r.s ^= r.next() + a*0x9e3779b97f4a7c15
	r.s ^= r.next() + b*0xc2b2ae3d27d4eb4f
	return r.next()
}

// parallelChunks runs [0, n) chunk by chunk on GOMAXPROCS goroutines that
// take the next chunk as they finish one, so a worker slowed by other load
// does not hold up the rest. Each goroutine calls mk once for its own
// chunk function (and scratch); chunk boundaries are fixed multiples of
// chunk, whoever runs them.
func parallelChunks(n int, mk func() func(lo, hi int)) {
	chunks := (n + chunk - 1) / chunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		f := mk()
		for lo := 0; lo < n; lo += chunk {
			f(lo, min(lo+chunk, n))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := mk()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				f(c*chunk, min((c+1)*chunk, n))
			}
		}()
	}
	wg.Wait()
}

// parallel splits [0, n) into chunk-aligned ranges over GOMAXPROCS goroutines.
func parallel(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	chunks := (n + chunk - 1) / chunk
	if workers > chunks {
		workers = chunks
	}
	if workers <= 1 {
		f(0, n)
		return
	}
	per := (chunks + workers - 1) / workers * chunk
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}
