package merge

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mocolab/moco/safetensors"
)

// Streaming merges for the task-vector methods that rank deltas (TIES's
// top-k, breadcrumbs' band, DELLA's per-row ranks) or rescale them to their
// L1 norm. No delta is ever held whole: each pass streams the inputs in
// blocks of whole rows on all cores, recomputing the deltas.
//
//   - Top-k by magnitude is an exact radix selection on the bits of |delta|
//     (for non-negative floats the bit patterns order as the values): a
//     histogram of the upper 16 bits finds the bin of the k-th largest, a
//     second of the lower 16 bits within that bin finds its value. When the
//     k-th value is tied, a third pass counts the ties per block, so that
//     they are kept in index order exactly as keepTopK keeps them. All
//     models' selections share the passes.
//   - DELLA's ranks are per row, so each block prunes its rows alone; the
//     random stream of row q starts where the whole-tensor stream would be
//     (every row takes the same number of draws).
//   - L1 rescaling sums |delta| row by row (l1Rows), so the sums are the
//     same bits as the whole-tensor path.
//
// The result is identical, bit for bit, to TaskMerge on whole tensors.

// blockPlan splits n elements into blocks of whole rows of rowLen entries.
type blockPlan struct{ n, rowLen, rowsPer, nBlocks int }

func newBlockPlan(n, cols int) blockPlan {
	rl := cols
	if rl <= 0 || rl > n {
		rl = n
	}
	rl = max(rl, 1)
	rp := max(1, chunk/rl)
	return blockPlan{n: n, rowLen: rl, rowsPer: rp, nBlocks: (n + rp*rl - 1) / (rp * rl)}
}

func (b blockPlan) span(k int) (int, int) {
	lo := k * b.rowsPer * b.rowLen
	return lo, min(lo+b.rowsPer*b.rowLen, b.n)
}

func (b blockPlan) size() int { return min(b.n, b.rowsPer*b.rowLen) }

// run calls a worker's f for every block, on GOMAXPROCS goroutines taking
// the next block as they finish one; mk makes each worker's f and finish
// (called once when the worker is done; may be nil). It stops early with
// ctx's error when ctx is cancelled.
func (b blockPlan) run(ctx context.Context, mk func() (f func(k, lo, hi int), finish func())) error {
	workers := min(runtime.GOMAXPROCS(0), b.nBlocks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, finish := mk()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= b.nBlocks {
					break
				}
				lo, hi := b.span(k)
				f(k, lo, hi)
			}
			if finish != nil {
				finish()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// deltaReader computes the deltas of a block: one per worker.
type deltaReader struct {
	vs   []view // the base first
	bufs [][]float32
	base []float32
}

func newDeltaReader(vs []view, size int) *deltaReader {
	return &deltaReader{vs: vs, bufs: scratch(len(vs), size)}
}

// load reads the base's block [lo, lo+m).
func (r *deltaReader) load(lo, m int) { r.base = r.vs[0].get(r.bufs[0], lo, m) }

// delta writes model i's delta over the loaded block into d.
func (r *deltaReader) delta(d []float32, i, lo int) []float32 {
	m := len(r.base)
	x := r.vs[i+1].get(r.bufs[i+1], lo, m)
	d = d[:m]
	for j := range d {
		d[j] = x[j] - r.base[j]
	}
	return d
}

const signBit = 1 << 31

func magBits(v float32) uint32 { return math.Float32bits(v) &^ signBit }

// topK says which entries are among the k of largest |delta| of one model
// in one tensor, as keepTopK picks them: those above the k-th largest
// magnitude, and those equal to it in index order until k are kept.
type topK struct {
	model     int
	k         int
	all, none bool
	th        uint32  // bits of the k-th largest |delta|
	quota     []int32 // per block: entries equal to th kept there (nil: all)
	need      int64   // entries equal to th to keep
	eq        int64   // entries equal to th
	// The fast path: a sample guesses the bins [rlo, rhi] of the upper 16
	// bits that hold the k-th largest, and the first pass keeps every entry
	// in them (per block, in index order), so that no second pass is
	// needed when the guess holds (the full histogram tells exactly).
	collect  bool
	rlo, rhi uint32
	cands    [][]cand
}

// cand is an entry of a block within the guessed bins.
type cand struct {
	j    int32 // index within the block
	bits uint32
}

// has reports whether an entry of magnitude bits a is kept; q counts down
// the block's quota of ties (-1: unlimited).
func (t *topK) has(a uint32, q *int32) bool {
	switch {
	case t.all:
		return true
	case t.none:
		return false
	case a > t.th:
		return true
	case a < t.th:
		return false
	case *q < 0:
		return true
	case *q > 0:
		*q--
		return true
	}
	return false
}

// blockQuota is the starting quota of ties for block k (-1: unlimited).
func (t *topK) blockQuota(k int) int32 {
	if t.quota == nil {
		return -1
	}
	return t.quota[k]
}

// histPass runs one pass counting, for each selection in ts, the magnitude
// bits of its model's deltas into 1<<16 bins: bin(a) returns the bin of a
// for selection i, or -1 to skip it.
func histPass(ctx context.Context, bp blockPlan, vs []view, ts []*topK, bin func(i int, a uint32) int) ([][]int64, error) {
	hist := make([][]int64, len(ts))
	for i := range hist {
		hist[i] = make([]int64, 1<<16)
	}
	var mu sync.Mutex
	err := bp.run(ctx, func() (func(k, lo, hi int), func()) {
		rd := newDeltaReader(vs, bp.size())
		d := make([]float32, bp.size())
		local := make([][]uint32, len(ts))
		for i := range local {
			local[i] = make([]uint32, 1<<16)
		}
		f := func(k, lo, hi int) {
			rd.load(lo, hi-lo)
			prev := -1
			var dm []float32
			for i, t := range ts {
				if t.model != prev { // selections of one model are adjacent
					dm, prev = rd.delta(d, t.model, lo), t.model
				}
				h := local[i]
				if t.collect {
					var cs []cand
					for j, v := range dm {
						a := magBits(v)
						b := a >> 16
						h[b]++
						if b-t.rlo <= t.rhi-t.rlo {
							cs = append(cs, cand{int32(j), a})
						}
					}
					t.cands[k] = cs
					continue
				}
				for _, v := range dm {
					if b := bin(i, magBits(v)); b >= 0 {
						h[b]++
					}
				}
			}
		}
		finish := func() {
			mu.Lock()
			defer mu.Unlock()
			for i, l := range local {
				for b, c := range l {
					hist[i][b] += int64(c)
				}
			}
		}
		return f, finish
	})
	return hist, err
}

// selectTopK computes the selections ts (each naming a model and k; those
// of one model adjacent) in two or three passes shared by all of them.
func selectTopK(ctx context.Context, bp blockPlan, vs []view, ts []*topK) error {
	var pend []*topK
	for _, t := range ts {
		switch {
		case t.k >= bp.n:
			t.all = true
		case t.k <= 0:
			t.none = true
		default:
			pend = append(pend, t)
		}
	}
	if len(pend) == 0 {
		return nil
	}
	// Guess from a sample where the k-th largest lies.
	for _, t := range pend {
		guessRange(bp, vs, t)
	}
	// Pass 1: the upper 16 bits (and the entries in the guessed bins).
	h1, err := histPass(ctx, bp, vs, pend, func(_ int, a uint32) int { return int(a >> 16) })
	if err != nil {
		return err
	}
	his := make([]uint32, len(pend))
	above := make([]int64, len(pend))
	var slow []*topK
	var slowIdx []int
	for i, t := range pend {
		var cum int64
		for b := 1<<16 - 1; b >= 0; b-- {
			if cum+h1[i][b] >= int64(t.k) {
				his[i], above[i] = uint32(b), cum
				break
			}
			cum += h1[i][b]
		}
		if t.collect && his[i] >= t.rlo && his[i] <= t.rhi {
			fromCandidates(bp, t, h1[i])
			continue
		}
		t.collect, t.cands = false, nil
		slow = append(slow, t)
		slowIdx = append(slowIdx, i)
	}
	if len(slow) == 0 {
		return nil
	}
	pend, his, above = slow, pick(his, slowIdx), pick(above, slowIdx)
	// Pass 2: the lower 16 bits within the bin of the k-th largest.
	h2, err := histPass(ctx, bp, vs, pend, func(i int, a uint32) int {
		if a>>16 != his[i] {
			return -1
		}
		return int(a & 0xffff)
	})
	if err != nil {
		return err
	}
	var tied []*topK
	for i, t := range pend {
		cum := above[i]
		for b := 1<<16 - 1; b >= 0; b-- {
			if cum+h2[i][b] >= int64(t.k) {
				t.th = his[i]<<16 | uint32(b)
				t.eq, t.need = h2[i][b], int64(t.k)-cum
				break
			}
			cum += h2[i][b]
		}
		if t.need < t.eq {
			tied = append(tied, t)
		}
	}
	if len(tied) == 0 {
		return nil
	}
	// Pass 3: ties at the threshold per block, kept in index order.
	counts := make([][]int32, len(tied))
	for i := range counts {
		counts[i] = make([]int32, bp.nBlocks)
	}
	err = bp.run(ctx, func() (func(k, lo, hi int), func()) {
		rd := newDeltaReader(vs, bp.size())
		d := make([]float32, bp.size())
		return func(k, lo, hi int) {
			rd.load(lo, hi-lo)
			for i, t := range tied {
				var c int32
				for _, v := range rd.delta(d, t.model, lo) {
					if magBits(v) == t.th {
						c++
					}
				}
				counts[i][k] = c
			}
		}, nil
	})
	if err != nil {
		return err
	}
	for i, t := range tied {
		t.quota = make([]int32, bp.nBlocks)
		left := t.need
		for k, c := range counts[i] {
			q := min(int64(c), left)
			t.quota[k], left = int32(q), left-q
		}
	}
	return nil
}

// streamSelect merges a task-vector method that ranks or renormalizes whole
// deltas (TIES, breadcrumbs, DELLA, rescale_l1), streaming as described
// above: the output and per-worker blocks are the only memory it takes.
func streamSelect(ctx context.Context, p *planned, ts []*safetensors.Tensor, n int, w []float64, o TaskOptions) (*safetensors.Tensor, error) {
	vs := make([]view, len(ts))
	for i, t := range ts {
		v, err := newView(t)
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	nm := len(ts) - 1
	bp := newBlockPlan(n, o.Cols)
	lambda := o.Lambda
	if lambda == 0 {
		lambda = 1
	}
	scales := make([]float32, nm)
	for i := range scales {
		scales[i] = 1
		if den := o.Density[i]; o.Rescale && !o.RescaleL1 && den > 0 {
			scales[i] = float32(1 / den)
		}
	}
	// Selections: TIES one per model; breadcrumbs the band's two ends.
	var sel, top []*topK
	switch o.Sparsify {
	case SparsifyMagnitude:
		for i := range nm {
			sel = append(sel, &topK{model: i, k: magnitudeCount(o.Density[i], n)})
		}
	case SparsifyOutliers:
		for i := range nm {
			nTop := int(o.Gamma * float64(n))
			nKeep := magnitudeCount(o.Density[i], n)
			if nTop+nKeep > n {
				nTop = n - nKeep
			}
			sel = append(sel, &topK{model: i, k: nTop + nKeep})
			top = append(top, &topK{model: i, k: nTop})
		}
	}
	var all []*topK
	for i := range sel {
		all = append(all, sel[i])
		if top != nil {
			all = append(all, top[i])
		}
	}
	if err := selectTopK(ctx, bp, vs, all); err != nil {
		return nil, err
	}
	// sparsify writes model i's sparsified delta of block k into d.
	type worker struct {
		rd  *deltaReader
		idx []int
	}
	sparsifyBlock := func(wk *worker, d []float32, i, k, lo int) []float32 {
		d = wk.rd.delta(d, i, lo)
		switch o.Sparsify {
		case SparsifyMagnitude:
			t, q := sel[i], sel[i].blockQuota(k)
			for j, v := range d {
				if !t.has(magBits(v), &q) {
					d[j] = 0
				}
			}
			scaleBy(d, scales[i])
		case SparsifyOutliers:
			t, u := sel[i], top[i]
			q, qu := t.blockQuota(k), u.blockQuota(k)
			for j, v := range d {
				a := magBits(v)
				in, out := t.has(a, &q), u.has(a, &qu)
				if !in || out {
					d[j] = 0
				}
			}
			scaleBy(d, scales[i])
		case SparsifyRandom:
			dropRandomAt(d, lo, o.Density[i], scales[i], mix(o.Seed, uint64(i), 0))
		case SparsifyMagPrune:
			den := o.Density[i]
			per := uint64(magPruneDraws(bp.rowLen, den, o.Epsilon))
			s0 := mix(o.Seed, uint64(i), 0)
			for off := 0; off+bp.rowLen <= len(d); off += bp.rowLen {
				row := (lo + off) / bp.rowLen
				r := rng{s: s0 + uint64(row)*per*rngGamma}
				magPruneRow(d[off:off+bp.rowLen], wk.idx, den, o.Epsilon, o.Rescale && !o.RescaleL1, &r)
			}
		}
		return d
	}
	newWorker := func() *worker {
		return &worker{rd: newDeltaReader(vs, bp.size()), idx: make([]int, bp.rowLen)}
	}
	// L1 rescaling: the norms before and after sparsification, by rows.
	factor := make([]float32, nm)
	for i := range factor {
		factor[i] = 1
	}
	if o.RescaleL1 {
		rows := (n + bp.rowLen - 1) / bp.rowLen
		want, have := make([][]float64, nm), make([][]float64, nm)
		for i := range want {
			want[i], have[i] = make([]float64, rows), make([]float64, rows)
		}
		err := bp.run(ctx, func() (func(k, lo, hi int), func()) {
			wk := newWorker()
			d := make([]float32, bp.size())
			return func(k, lo, hi int) {
				wk.rd.load(lo, hi-lo)
				for i := range nm {
					raw := wk.rd.delta(d, i, lo)
					for off := 0; off < len(raw); off += bp.rowLen {
						want[i][(lo+off)/bp.rowLen] = l1(raw[off:min(off+bp.rowLen, len(raw))])
					}
					sp := sparsifyBlock(wk, d, i, k, lo)
					for off := 0; off < len(sp); off += bp.rowLen {
						have[i][(lo+off)/bp.rowLen] = l1(sp[off:min(off+bp.rowLen, len(sp))])
					}
				}
			}, nil
		})
		if err != nil {
			return nil, err
		}
		for i := range nm {
			var wt, hv float64
			for r := range want[i] {
				wt += want[i][r]
				hv += have[i][r]
			}
			if hv != 0 {
				factor[i] = float32(wt / hv)
			}
		}
	}
	out := make([]byte, n*p.dtype.Size())
	err := bp.run(ctx, func() (func(k, lo, hi int), func()) {
		wk := newWorker()
		ds := scratch(nm, bp.size())
		cur := make([][]float32, nm)
		dst := make([]float32, bp.size())
		return func(k, lo, hi int) {
			m := hi - lo
			wk.rd.load(lo, m)
			for i := range nm {
				cur[i] = sparsifyBlock(wk, ds[i], i, k, lo)
				if o.RescaleL1 {
					scaleBy(cur[i], factor[i])
				}
			}
			combine(dst[:m], wk.rd.base, cur, w, o.Consensus, o.Normalize, lambda)
			put(out, p.dtype, lo, dst[:m])
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return &safetensors.Tensor{Name: p.name, DType: p.dtype, Shape: p.shape, Data: out}, nil
}

// dropRandomAt is dropRandom on the block of a delta that starts at element
// lo, drawing from the stream that dropRandom over the whole delta, seeded
// with s0, draws from: element j takes half of draw j/2 (the low half for
// even j).
func dropRandomAt(x []float32, lo int, density float64, scale float32, s0 uint64) {
	if density >= 1 {
		scaleBy(x, scale)
		return
	}
	th := int64(keepThreshold(density))
	for j := range x {
		g := lo + j
		r := rng{s: s0 + uint64(g/2)*rngGamma}
		u := r.next()
		if g%2 == 1 {
			u >>= 32
		}
		m := uint32((int64(u&0xffffffff) - th) >> 63)
		x[j] = math.Float32frombits(math.Float32bits(x[j]*scale) & m)
	}
}

func pick[T any](xs []T, idx []int) []T {
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = xs[j]
	}
	return out
}

// guessRange samples t's magnitudes evenly and sets the bins [rlo, rhi]
// that hold the k-th largest with a wide margin; it leaves collect off
// when the bins would hold more than an eighth of the entries.
func guessRange(bp blockPlan, vs []view, t *topK) {
	const m = 1 << 14
	n := bp.n
	if n < 4*m {
		return // small tensors: the passes are cheap
	}
	stride := n / m
	var bx, bb [1]float32
	sample := make([]uint32, m)
	for i := range sample {
		j := i * stride
		x := vs[t.model+1].get(bx[:], j, 1)[0]
		b := vs[0].get(bb[:], j, 1)[0]
		sample[i] = magBits(x - b)
	}
	slices.Sort(sample) // ascending
	q := float64(t.k) / float64(n)
	margin := int(6*math.Sqrt(m*q*(1-q))) + 64
	pos := m - int(q*m) // index of the k-th largest in ascending order
	lo, hi := max(0, pos-margin), min(m-1, pos+margin)
	in := 0
	t.rlo, t.rhi = sample[lo]>>16, sample[hi]>>16
	for _, a := range sample {
		if b := a >> 16; b >= t.rlo && b <= t.rhi {
			in++
		}
	}
	if in > m/8 {
		return
	}
	t.collect = true
	t.cands = make([][]cand, bp.nBlocks)
}

// fromCandidates finishes t's selection from the entries kept in its
// guessed bins, which hold the k-th largest (hist: the full histogram).
func fromCandidates(bp blockPlan, t *topK, hist []int64) {
	var aboveRange int64
	for b := int(t.rhi) + 1; b < 1<<16; b++ {
		aboveRange += hist[b]
	}
	var bits []uint32
	for _, cs := range t.cands {
		for _, c := range cs {
			bits = append(bits, c.bits)
		}
	}
	slices.Sort(bits)
	r := int64(t.k) - aboveRange // rank (1-based, from the top) among the candidates
	t.th = bits[int64(len(bits))-r]
	var greater, eq int64
	for _, a := range bits {
		switch {
		case a > t.th:
			greater++
		case a == t.th:
			eq++
		}
	}
	t.eq, t.need = eq, int64(t.k)-aboveRange-greater
	if t.need < t.eq {
		t.quota = make([]int32, bp.nBlocks)
		left := t.need
		for k, cs := range t.cands {
			var c int64
			for _, x := range cs {
				if x.bits == t.th {
					c++
				}
			}
			q := min(c, left)
			t.quota[k], left = int32(q), left-q
		}
	}
	t.cands = nil
}
