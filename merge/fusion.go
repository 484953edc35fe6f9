package merge

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/mocolab/moco/safetensors"
)

// arcee_fusion (mergekit's ArceeFusionMerge) keeps a model's delta from
// the base only where it is important: entry j of row r has importance
// |x_j - base_j| * KL_r, with KL_r the KL divergence of softmax(x_r) +
// 1e-8 from softmax(base_r) + 1e-8 (rows along the last dimension; a
// vector is one row), and the delta is kept where its importance is at
// least median + 1.5*IQR of the tensor's importances. Each quantile q is
// the sorted importances' entry at index int(q*(n-1)), as mergekit's.
//
// Two deliberate differences. mergekit takes the quantiles of tensors of
// more than 1e6 entries from a random sample of 1e6 (torch.randperm), so
// its mask there varies from run to run; moco takes them exactly, over
// every entry. And moco sums the KL divergence in float64 where mergekit
// sums float32: where the deltas are near float32's resolution of the
// softmax (fine-tune-sized deltas of norm-like vectors), mergekit's sum
// is mostly rounding, and its mask follows the rounding. The importances
// themselves are float32 (the KL divergence rounded, times |delta|), as
// mergekit's.
//
// The passes stream the two inputs in blocks of whole rows: the KL
// divergence of each row and a histogram of the upper 16 bits of its
// importances' order keys; a histogram of the lower 16 bits within the
// three quantiles' bins (the quantiles exactly, without holding the
// importances); then the output.

// fusion is what arcee_fusion's mask needs of one tensor.
type fusion struct {
	cols int       // row length
	kl   []float32 // each row's KL divergence, rounded to float32
	th   float32   // importances at or above it keep their delta
}

// ArceeFusion writes to dst the base plus the important part of the
// delta x - base (arcee_fusion), with rows of cols entries along the last
// dimension (cols <= 0: one row).
func ArceeFusion(dst, base, x []float32, cols int) error {
	if err := checkInputs(dst, [][]float32{base, x}, []float64{0, 0}); err != nil {
		return err
	}
	if cols > 0 && len(dst)%cols != 0 {
		return fmt.Errorf("arcee_fusion: %d entries are not rows of %d", len(dst), cols)
	}
	var sc scratchSet
	defer sc.release()
	vs := []view{{dt: safetensors.F32, f32: base}, {dt: safetensors.F32, f32: x}}
	f, err := newFusion(context.Background(), vs, len(dst), cols, &sc)
	if err != nil {
		return err
	}
	parallel(len(dst), func(lo, hi int) { f.apply(dst[lo:hi], base[lo:hi], x[lo:hi], lo) })
	return nil
}

// streamFusion merges one tensor by arcee_fusion; ts are the base's and
// the model's.
func streamFusion(ctx context.Context, p *planned, ts []*safetensors.Tensor, n, cols int) (*safetensors.Tensor, error) {
	vs, err := views(p, ts)
	if err != nil {
		return nil, err
	}
	var sc scratchSet
	defer sc.release()
	f, err := newFusion(ctx, vs, n, cols, &sc)
	if err != nil {
		return nil, err
	}
	return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, k int, _ [][]float32) {
		f.apply(dst, xs[0], xs[1], k*chunk)
	})
}

// newFusion computes the rows' KL divergences and the threshold of the
// tensors vs (the base, the model) of n entries in rows of cols. The pass
// that computes a block's divergences counts its importances' upper 16
// bits too, so the order statistics read the inputs once more, not twice.
func newFusion(ctx context.Context, vs []view, n, cols int, sc *scratchSet) (*fusion, error) {
	bp := newBlockPlan(n, cols)
	bp.sc = sc
	f := &fusion{cols: bp.rowLen}
	if n == 0 {
		return f, nil
	}
	f.kl = make([]float32, n/f.cols)
	// A small tensor keeps its importances' keys and sorts them: the
	// histograms' 1<<16 bins per worker, cleared and summed, cost more.
	var keys []uint32
	if n <= sortFusion {
		keys = make([]uint32, n)
	}
	var hi []int64
	var mu sync.Mutex
	err := eachBlock(ctx, bp, vs, func() (func([][]float32, int), func()) {
		var ex []float64
		if f.cols <= maxCachedRow {
			ex = make([]float64, 2*f.cols*klRows(f.cols))
		}
		if keys != nil {
			return func(xs [][]float32, lo int) {
				b, x := xs[0], xs[1]
				rowsKL(f.kl[lo/f.cols:(lo+len(b))/f.cols], x, b, f.cols, ex)
				f.orderKeys(keys[lo:lo+len(b)], b, x, lo)
			}, nil
		}
		h := new([1 << 16]uint32) // see orderStats on uint32 counts
		top := bp.sc.u16(bp.size())
		return func(xs [][]float32, lo int) {
				b, x := xs[0], xs[1]
				rowsKL(f.kl[lo/f.cols:(lo+len(b))/f.cols], x, b, f.cols, ex)
				f.countTop(h, top, b, x, lo)
			}, func() {
				mu.Lock()
				defer mu.Unlock()
				if hi == nil {
					hi = make([]int64, 1<<16)
				}
				for b, c := range h {
					hi[b] += int64(c)
				}
			}
	})
	if err != nil {
		return nil, err
	}
	// mergekit's quantile indices: int(q*(n-1)) for q = 0.5, 0.25, 0.75.
	m := int64(n - 1)
	ranks := []int64{m / 2, m / 4, 3 * m / 4}
	var qs []float32
	if keys != nil {
		slices.Sort(keys)
		for _, r := range ranks {
			qs = append(qs, fromOrderKey(keys[r]))
		}
	} else if qs, err = f.orderStats(ctx, bp, vs, hi, ranks); err != nil {
		return nil, err
	}
	med, q1, q3 := qs[0], qs[1], qs[2]
	// float32 steps, each rounded, as mergekit's tensors (the conversion
	// keeps the compiler from fusing them).
	f.th = med + float32(float32(1.5)*(q3-q1))
	return f, nil
}

// maxListed is the most keys in the quantiles' bins a worker of
// orderStats lists before it counts them in histograms (a variable for
// the tests).
var maxListed = 1 << 16

// sortFusion is the most entries of a tensor whose arcee_fusion quantiles
// are taken by sorting its importances' keys.
const sortFusion = 1 << 12

// klRows is how many rows of cols entries rowsKL takes at once with
// cached exponentials: their sums are separate chains of float64
// additions, each in its row's order, and one chain alone ran at a third
// of the additions' throughput; rows so long that four would not fit a
// core's cache go one at a time.
func klRows(cols int) int {
	if cols > 1<<14 {
		return 1
	}
	return 4
}

// rowsKL sets kl[i] = float32(rowKL(row i of x, row i of b)) for the rows
// of cols entries of x and b, bit for bit, four at a time where ex holds
// their exponentials (2*cols*klRows(cols) entries).
func rowsKL(kl []float32, x, b []float32, cols int, ex []float64) {
	r := 0
	if len(ex) >= 8*cols { // room for four rows: klRows(cols) is 4
		for ; r+4 <= len(kl); r += 4 {
			var s [8]float64
			for i := range 4 {
				xr, br := x[(r+i)*cols:(r+i+1)*cols], b[(r+i)*cols:(r+i+1)*cols]
				expRow(ex[2*i*cols:(2*i+1)*cols], xr, rowMax(xr))
				expRow(ex[(2*i+1)*cols:(2*i+2)*cols], br, rowMax(br))
			}
			sum8(&s, ex, cols)
			for i := range 4 {
				u, v := ex[2*i*cols:(2*i+1)*cols], ex[(2*i+1)*cols:(2*i+2)*cols]
				klTerms(u, u, v, s[2*i], s[2*i+1]) // each term replaces the u it reads
			}
			sum4(&s, ex, cols)
			for i := range 4 {
				kl[r+i] = float32(s[i])
			}
		}
	}
	for ; r < len(kl); r++ {
		kl[r] = float32(rowKL(x[r*cols:(r+1)*cols], b[r*cols:(r+1)*cols], ex))
	}
}

// sum8 sets s[i] to the sum, in order, of ex[i*n:(i+1)*n] for i < 8:
// eight chains at once.
func sum8(s *[8]float64, ex []float64, n int) {
	e0, e1, e2, e3 := ex[:n], ex[n:2*n], ex[2*n:3*n], ex[3*n:4*n]
	e4, e5, e6, e7 := ex[4*n:5*n], ex[5*n:6*n], ex[6*n:7*n], ex[7*n:8*n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float64
	for j := range e0 {
		s0 += e0[j]
		s1 += e1[j]
		s2 += e2[j]
		s3 += e3[j]
		s4 += e4[j]
		s5 += e5[j]
		s6 += e6[j]
		s7 += e7[j]
	}
	*s = [8]float64{s0, s1, s2, s3, s4, s5, s6, s7}
}

// sum4 sets s[i] to the sum, in order, of ex[2*i*n:(2*i+1)*n] for i < 4
// (the terms rowsKL leaves in each row's u).
func sum4(s *[8]float64, ex []float64, n int) {
	e0, e1, e2, e3 := ex[:n], ex[2*n:3*n], ex[4*n:5*n], ex[6*n:7*n]
	var s0, s1, s2, s3 float64
	for j := range e0 {
		s0 += e0[j]
		s1 += e1[j]
		s2 += e2[j]
		s3 += e3[j]
	}
	s[0], s[1], s[2], s[3] = s0, s1, s2, s3
}

// maxCachedRow is the longest row whose exponentials rowKL keeps between
// its passes (they were most of arcee_fusion's time); longer rows, such
// as a large vector's, compute them twice rather than take 16 bytes an
// entry.
const maxCachedRow = 1 << 16

// rowKL is the KL divergence sum p*log(p/q) of p = softmax(x) + 1e-8
// from q = softmax(b) + 1e-8, in float64, its sums in the entries' order.
// ex, when at least 2*len(x) long, keeps the exponentials and then the
// terms between the passes, which expRow and klTerms compute eight at a
// time with the assembly, bit for bit as math.Exp and math.Log compute
// them (the scalar calls were nine tenths of an arcee_fusion merge's CPU);
// without it, each pass computes them again.
func rowKL(x, b []float32, ex []float64) float64 {
	mx, mb := rowMax(x), rowMax(b[:len(x)])
	n := len(x)
	if len(ex) >= 2*n {
		u, v := ex[:n], ex[n:2*n]
		expRow(u, x, mx)
		expRow(v, b, mb)
		var sx, sb float64
		for j := range u {
			sx += u[j]
			sb += v[j]
		}
		klTerms(u, u, v, sx, sb) // each term replaces the u it reads
		var kl float64
		for _, t := range u {
			kl += t
		}
		return kl
	}
	var sx, sb float64
	for j := range x {
		sx += math.Exp(float64(x[j]) - mx)
		sb += math.Exp(float64(b[j]) - mb)
	}
	var kl float64
	for j := range x {
		u, v := math.Exp(float64(x[j])-mx), math.Exp(float64(b[j])-mb)
		p, q := u/sx+1e-8, v/sb+1e-8
		kl += float64(p * math.Log(p/q)) // each term rounded, as klTerms's
	}
	return kl
}

// rowMax is the largest of x (from -Inf), as float64: max in entry order
// (a NaN among x makes it a NaN). Max is associative and commutative but
// for which NaN comes out, so it is taken out of order (by maxKeyFast's
// keys, or in four interleaved parts), and a row with a NaN is taken again
// in order. One chain through Go's float max, eight instructions an entry,
// was a sixth of an arcee_fusion merge's CPU.
func rowMax(x []float32) float64 {
	inf := math.Inf(-1)
	m0, m1, m2, m3 := inf, inf, inf, inf // not an array: the compiler keeps those in memory
	j := 0
	if maxKeyFast != nil {
		n, key, nan := maxKeyFast(x)
		if nan {
			return rowMaxInOrder(x)
		}
		if n > 0 {
			m0 = float64(fromOrderKey(key))
		}
		j = n
	}
	for ; j+4 <= len(x); j += 4 {
		m0 = max(m0, float64(x[j]))
		m1 = max(m1, float64(x[j+1]))
		m2 = max(m2, float64(x[j+2]))
		m3 = max(m3, float64(x[j+3]))
	}
	for ; j < len(x); j++ {
		m0 = max(m0, float64(x[j]))
	}
	if r := max(max(m0, m1), max(m2, m3)); r == r {
		return r
	}
	return rowMaxInOrder(x)
}

// rowMaxInOrder is rowMax by its definition.
func rowMaxInOrder(x []float32) float64 {
	r := math.Inf(-1)
	for _, v := range x {
		r = max(r, float64(v))
	}
	return r
}

// maxKeyFast, when set (assembly), returns the largest orderKey of a prefix
// of x (a multiple of 16; n, none when 0) and whether a NaN is among them.
var maxKeyFast func(x []float32) (n int, key uint32, nan bool)

// expFast, when set (assembly), sets dst[j] = math.Exp(float64(x[j]) - m),
// bit for bit, over a prefix of x (a multiple of 8), and returns its
// length: all its groups of eight, or those before one that Exp finishes
// by another path (underflow, overflow, not finite).
var expFast func(dst []float64, x []float32, m float64) int

// klTermsFast, when set (assembly), is klTerms's loop over a prefix of u
// (a multiple of 8), bit for bit, and returns its length: all its groups
// of eight, or those before one whose p/q is not a positive normal number.
var klTermsFast func(t, u, v []float64, sx, sb float64) int

// expRow sets dst[j] = math.Exp(float64(x[j]) - m).
func expRow(dst []float64, x []float32, m float64) {
	dst = dst[:len(x)]
	for j := 0; j < len(x); {
		if expFast != nil {
			j += expFast(dst[j:], x[j:], m)
		}
		end := min(j+8, len(x)) // the group the kernel left, or the tail
		for ; j < end; j++ {
			dst[j] = math.Exp(float64(x[j]) - m)
		}
	}
}

// klTerms sets t[j] = p*log(p/q) for p = u[j]/sx + 1e-8 and q = v[j]/sb +
// 1e-8, rowKL's terms; t may be u.
func klTerms(t, u, v []float64, sx, sb float64) {
	t, v = t[:len(u)], v[:len(u)]
	for j := 0; j < len(u); {
		if klTermsFast != nil {
			j += klTermsFast(t[j:], u[j:], v[j:], sx, sb)
		}
		end := min(j+8, len(u))
		for ; j < end; j++ {
			p, q := u[j]/sx+1e-8, v[j]/sb+1e-8
			t[j] = p * math.Log(p/q)
		}
	}
}

// impTopFast, when set (assembly), sets dst[j] to the upper 16 bits of
// orderKey(|x[j] - b[j]| * kl) over a prefix of b (a multiple of 16) and
// returns its length.
var impTopFast func(dst []uint16, b, x []float32, kl float32) int

// impHitsFast, when set (assembly), stores to dst in order the order keys
// of the importances |x[j] - b[j]| * kl, over a prefix of b (a multiple of
// 16: n), whose upper 16 bits are one of bins, and returns n and their
// count c; dst needs n+15 entries.
var impHitsFast func(dst []uint32, b, x []float32, kl float32, bins *[4]uint32) (n, c int)

// fusionApplyFast, when set (assembly), is apply's loop over a prefix of
// dst (a multiple of 16) with one row's kl, and returns its length.
var fusionApplyFast func(dst, b, x []float32, kl, th float32) int

// orderKeys sets dst to the order keys of the importances of b and x, entries
// [lo, lo+len(b)) of the tensor.
func (f *fusion) orderKeys(dst []uint32, b, x []float32, lo int) {
	for j := 0; j < len(b); {
		r := (lo + j) / f.cols
		end := min(len(b), (r+1)*f.cols-lo)
		kl := f.kl[r]
		for ; j < end; j++ {
			dst[j] = orderKey(abs32(x[j]-b[j]) * kl)
		}
	}
}

// countTop adds to h the upper 16 bits of the order keys of the
// importances of b and x, entries [lo, lo+len(b)) of the tensor; top is
// scratch of len(b) entries.
func (f *fusion) countTop(h *[1 << 16]uint32, top []uint16, b, x []float32, lo int) {
	top = top[:len(b)]
	for j := 0; j < len(b); {
		r := (lo + j) / f.cols
		end := min(len(b), (r+1)*f.cols-lo)
		kl := f.kl[r]
		if impTopFast != nil {
			j += impTopFast(top[j:end], b[j:end], x[j:end], kl)
		}
		for ; j < end; j++ {
			top[j] = uint16(orderKey(abs32(x[j]-b[j])*kl) >> 16)
		}
	}
	for _, t := range top {
		h[t]++
	}
}

// collectBins stores to keys the order keys of the importances of b and x,
// entries [lo, lo+len(b)) of the tensor, whose upper 16 bits are one of
// bins, and returns them (keys needs len(b)+15 entries).
func (f *fusion) collectBins(keys []uint32, bins *[4]uint32, b, x []float32, lo int) []uint32 {
	c := 0
	for j := 0; j < len(b); {
		r := (lo + j) / f.cols
		end := min(len(b), (r+1)*f.cols-lo)
		kl := f.kl[r]
		if impHitsFast != nil {
			n, m := impHitsFast(keys[c:], b[j:end], x[j:end], kl, bins)
			j, c = j+n, c+m
		}
		for ; j < end; j++ {
			k := orderKey(abs32(x[j]-b[j]) * kl)
			if t := k >> 16; t == bins[0] || t == bins[1] || t == bins[2] || t == bins[3] {
				keys[c] = k
				c++
			}
		}
	}
	return keys[:c]
}

// apply writes dst = b + (x - b)*mask over entries [lo, lo+len(dst)) of
// the tensor, mask being 1 where the importance is at least the
// threshold (mergekit's arithmetic, so that a kept entry is b + (x - b)
// in float32).
func (f *fusion) apply(dst, b, x []float32, lo int) {
	for j := 0; j < len(dst); {
		r := (lo + j) / f.cols
		end := min(len(dst), (r+1)*f.cols-lo)
		kl := f.kl[r]
		if fusionApplyFast != nil {
			j += fusionApplyFast(dst[j:end], b[j:end], x[j:end], kl, f.th)
		}
		for ; j < end; j++ {
			d := x[j] - b[j]
			// No branch: about a quarter of the entries are kept, at
			// random.
			m := float32(b2i(abs32(d)*kl >= f.th))
			dst[j] = b[j] + d*m
		}
	}
}

// orderKey maps a float32 to a key that orders as the values do,
// negative ones below positive ones (-0 just below +0).
func orderKey(v float32) uint32 {
	b := math.Float32bits(v)
	return b ^ (uint32(int32(b)>>31) | signBit) // ^b when negative, else b with its sign bit set
}

// fromOrderKey inverts orderKey.
func fromOrderKey(k uint32) float32 {
	if k&signBit != 0 {
		return math.Float32frombits(k &^ signBit)
	}
	return math.Float32frombits(^k)
}

// orderStats returns the importances at the given 0-based ranks of their
// ascending order: the second of two radix passes of 16 bits over the
// order keys, shared by all ranks, on all cores. hi is the first pass's
// histogram (of the keys' upper 16 bits), which newFusion counts with the
// KL divergences.
func (f *fusion) orderStats(ctx context.Context, bp blockPlan, vs []view, hi []int64, ranks []int64) ([]float32, error) {
	// pass runs over the importances' keys and returns a histogram of
	// 1<<16 bins per bin b of bins (one to four), of the lower 16 bits of
	// the keys whose upper 16 are b.
	pass := func(bins []uint32) ([][]int64, error) {
		total := make([][]int64, len(bins))
		for i := range total {
			total[i] = make([]int64, 1<<16)
		}
		set := [4]uint32{bins[0], bins[0], bins[0], bins[0]} // bins, the first repeated in the slots past them
		copy(set[:], bins)
		slot := func(k uint32) int { // the bin of a key collectBins returned
			s := 0
			for s < len(bins)-1 && k>>16 != bins[s] {
				s++
			}
			return s
		}
		var mu sync.Mutex
		err := eachBlock(ctx, bp, vs, func() (func([][]float32, int), func()) {
			// Per worker, histograms of uint32 counts (it sees fewer than
			// 2^32 entries of a tensor of any size one can hold), but only
			// once its keys outgrow a list: few entries fall in the
			// quantiles' bins, and clearing and summing 65536 counters per
			// bin and worker of every tensor cost more than counting them.
			var h []*[1 << 16]uint32
			keys := bp.sc.u32(bp.size() + 15)[:bp.size()+15]
			var listed []uint32
			return func(xs [][]float32, lo int) {
					ks := f.collectBins(keys, &set, xs[0], xs[1], lo)
					if h == nil && len(listed)+len(ks) <= maxListed {
						listed = append(listed, ks...)
						return
					}
					if h == nil {
						h = make([]*[1 << 16]uint32, len(bins))
						for i := range h {
							h[i] = new([1 << 16]uint32)
						}
						ks = append(listed, ks...)
						listed = nil
					}
					for _, k := range ks {
						h[slot(k)][k&0xffff]++
					}
				}, func() {
					mu.Lock()
					defer mu.Unlock()
					for _, k := range listed {
						total[slot(k)][k&0xffff]++
					}
					for i := range h {
						for b, c := range h[i] {
							total[i][b] += int64(c)
						}
					}
				}
		})
		return total, err
	}
	// The bin of the upper 16 bits of each rank's key, and its rank
	// within that bin.
	bins := make([]uint32, len(ranks))
	within := make([]int64, len(ranks))
	for i, r := range ranks {
		bins[i], within[i] = binOf(hi, r)
	}
	// The lower 16 bits, one histogram per distinct bin, up to four bins
	// a pass (the three quantiles take one).
	out := make([]float32, len(ranks))
	todo := make([]int, len(ranks)) // the ranks not yet found
	for i := range todo {
		todo[i] = i
	}
	for len(todo) > 0 {
		var distinct []uint32
		for _, i := range todo {
			if !slices.Contains(distinct, bins[i]) && len(distinct) < 4 {
				distinct = append(distinct, bins[i])
			}
		}
		lo, err := pass(distinct)
		if err != nil {
			return nil, err
		}
		next := todo[:0]
		for _, i := range todo {
			s := slices.Index(distinct, bins[i])
			if s < 0 {
				next = append(next, i)
				continue
			}
			low, _ := binOf(lo[s], within[i])
			out[i] = fromOrderKey(bins[i]<<16 | low)
		}
		todo = next
	}
	return out, nil
}

// binOf returns the bin of a histogram that holds the entry of rank r
// (0-based, ascending) and r's rank within that bin.
func binOf(h []int64, r int64) (uint32, int64) {
	for b, c := range h {
		if r < c {
			return uint32(b), r
		}
		r -= c
	}
	return uint32(len(h) - 1), r // unreachable for r < the total count
}
