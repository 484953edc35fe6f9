package merge

import (
	"cmp"
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
//   - Top-k by magnitude is exact and linear-time, on the bits of |delta|
//     (for non-negative floats the bit patterns order as the values). A
//     sample of the tensor (runs of adjacent entries, two quickselects)
//     brackets the k-th largest magnitude in [lo, hi]; one pass counts the
//     entries above hi and keeps those in [lo, hi] (AVX-512 compress, per
//     block in index order) into a histogram of 4096 bins over [lo, hi];
//     the histogram gives the bin of the k-th largest, a quickselect among
//     that bin's candidates the k-th largest itself, and the candidates
//     equal to it, counted per block, say which ties keepTopK would keep
//     (index order).
//     A value that many entries share within the bracket (a fine-tune's
//     bf16 deltas are a few ulps of the base: a sixth of a tensor can tie
//     at the median magnitude) is counted per block instead of kept; up
//     to four such values, found in the sample, take part in the
//     histogram and the selection with their counts.
//     Small tensors take every entry as a candidate. When the bracket
//     misses (or would hold too many entries), radix passes over the full
//     range decide instead: a histogram of the upper 16 bits finds the bin
//     of the k-th largest, a second of the lower 16 bits its value, a third
//     counts the ties per block. All models' selections share the passes;
//     their serial steps (sample, quickselect) run one selection per core.
//   - Once the thresholds are known, TIES and breadcrumbs merge a block in
//     one fused step (bandSum, bandLinear: AVX-512 or AVX2) that keeps
//     each model's |delta| bits in a band [lo, hi) and combines, unless a
//     selection keeps only some of its ties at the threshold in that block
//     (at most one block per selection), which takes the keep-mask path.
//   - DELLA's ranks are per row, so each block prunes its rows alone (a
//     stable sort of the row's magnitudes: the keys built 16 at a time in
//     AVX-512 (8 in AVX2) from bf16 inputs read in place, two counting
//     passes, on bits 8-15 and on the upper 16 bits within 16 octaves of
//     the row's largest (those digits computed 16 at a time in AVX-512 or
//     AVX2 first), then the few bins holding keys with lower bits set
//     sorted whole; a full radix sort for other rows; the draws, keep tests
//     and rescaling then run 8 ranks at a time in AVX-512, 4 in AVX2); the
//     random stream of row q starts where the whole-tensor stream would be
//     (every row takes the same number of draws).
//   - L1 rescaling sums |delta| row by row (l1Rows), so the sums are the
//     same bits as the whole-tensor path.
//
// The result is identical, bit for bit, to TaskMerge on whole tensors.

// blockPlan splits n elements into blocks of whole rows of rowLen entries;
// sc, when set, holds the scratch of its passes (released by its owner).
type blockPlan struct {
	n, rowLen, rowsPer, nBlocks int
	sc                          *scratchSet
}

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
	raws [][]uint16 // for blocks read from the files (view.block)
	base []float32
}

// deltaReader returns a worker's deltaReader of blocks of b, its scratch
// from b.sc.
func (b blockPlan) deltaReader(vs []view) *deltaReader {
	return &deltaReader{vs: vs, bufs: b.sc.floats(len(vs), b.size()), raws: b.sc.blockBufs(vs, b.size())}
}

// load reads the base's block [lo, lo+m).
func (r *deltaReader) load(lo, m int) { r.base = r.vs[0].read(r.bufs[0], r.raws[0], lo, m) }

// model returns model i's block [lo, lo+m).
func (r *deltaReader) model(i, lo, m int) []float32 {
	return r.vs[i+1].read(r.bufs[i+1], r.raws[i+1], lo, m)
}

// delta writes model i's delta over the loaded block into d.
func (r *deltaReader) delta(d []float32, i, lo int) []float32 {
	m := len(r.base)
	x := r.model(i, lo, m)
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
	eqs       []int32 // per block: entries equal to th there (with quota)
	need      int64   // entries equal to th to keep
	eq        int64   // entries equal to th
	// The bracket: collect says the k-th largest is thought to lie in
	// [lo, hi]; the collecting pass counts the entries above hi per block
	// and keeps those in [lo, hi] per block, in index order.
	collect bool
	lo, hi  uint32
	above   []int64
	cands   [][]uint32
	// The candidates' histogram: candBins bins over [lo, hi], bin
	// (a-lo)>>shift, counted by the collecting pass.
	shift uint
	hist  []int64
	// heavy are values that many entries of the bracket share (a
	// fine-tune's bf16 deltas are a few ulps of the base: a tenth of a
	// tensor or more can tie at one magnitude). The collecting pass
	// counts those per block, heavyEq[k*len(heavy)+j] for heavy[j] in
	// block k, instead of keeping them among the candidates.
	heavy   []uint32
	heavyEq []int32
}

// maxHeavy is the most heavy values a bracket counts instead of keeping.
const maxHeavy = 4

// blockQuota is the starting quota of ties for block k (-1: unlimited).
func (t *topK) blockQuota(k int) int32 {
	if t.quota == nil {
		return -1
	}
	return t.quota[k]
}

// bound returns the least magnitude bits t keeps in block b, so that t
// keeps exactly the entries of the block at or above it, or false when the
// block keeps some of its ties at the threshold but not all.
func (t *topK) bound(b int) (uint32, bool) {
	switch {
	case t.all:
		return 0, true
	case t.none:
		return 1 << 31, true // above every magnitude, NaNs included
	case t.quota == nil || t.quota[b] == t.eqs[b]:
		return t.th, true
	case t.quota[b] == 0:
		return t.th + 1, true
	}
	return 0, false
}

// histPass runs one pass counting, for each selection i in ts, the
// magnitude bits a of its model's deltas into 1<<16 bins: those with
// a&match == want[i], into bin a>>shift (16 bits). Parameters rather than
// a function of a: a call per entry made these passes 5x the bracket's
// cost.
func histPass(ctx context.Context, bp blockPlan, vs []view, ts []*topK, match uint32, want []uint32, shift uint) ([][]int64, error) {
	hist := make([][]int64, len(ts))
	for i := range hist {
		hist[i] = make([]int64, 1<<16)
	}
	var mu sync.Mutex
	err := bp.run(ctx, func() (func(k, lo, hi int), func()) {
		rd := bp.deltaReader(vs)
		d := bp.sc.floats(1, bp.size())[0]
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
				h, wi := local[i], want[i]
				for _, v := range dm {
					if a := magBits(v); a&match == wi {
						h[(a>>shift)&0xffff]++
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

// eachSel calls f(0), ..., f(n-1) on up to GOMAXPROCS goroutines.
func eachSel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
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
	// Bracket the k-th largest from a sample; collect the bracket's entries.
	// Each selection's serial steps run on a core of its own.
	var coll, slow []*topK
	ok := make([]bool, len(pend))
	eachSel(len(pend), func(i int) { ok[i] = guessRange(bp, vs, pend[i]) })
	for i, t := range pend {
		if ok[i] {
			coll = append(coll, t)
		} else {
			slow = append(slow, t)
		}
	}
	if len(coll) > 0 {
		if err := collectPass(ctx, bp, vs, coll); err != nil {
			return err
		}
		ok = ok[:len(coll)]
		eachSel(len(coll), func(i int) { ok[i] = fromCandidates(bp, coll[i]) })
		for i, t := range coll {
			if !ok[i] {
				slow = append(slow, t) // the bracket missed
			}
		}
	}
	if len(slow) == 0 {
		return nil
	}
	// Selections of one model stay adjacent (histPass shares the deltas).
	slices.SortStableFunc(slow, func(a, b *topK) int { return a.model - b.model })
	pend = slow
	// Pass 1: the upper 16 bits.
	h1, err := histPass(ctx, bp, vs, pend, 0, make([]uint32, len(pend)), 16)
	if err != nil {
		return err
	}
	his := make([]uint32, len(pend))
	above := make([]int64, len(pend))
	for i, t := range pend {
		b, cum := kthBin(h1[i], int64(t.k), 0)
		his[i], above[i] = uint32(b), cum
	}
	// Pass 2: the lower 16 bits within the bin of the k-th largest.
	want := make([]uint32, len(pend))
	for i, hi := range his {
		want[i] = hi << 16
	}
	h2, err := histPass(ctx, bp, vs, pend, 0xffff0000, want, 0)
	if err != nil {
		return err
	}
	var tied []*topK
	for i, t := range pend {
		b, cum := kthBin(h2[i], int64(t.k), above[i])
		t.th = his[i]<<16 | uint32(b)
		t.eq, t.need = h2[i][b], int64(t.k)-cum
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
		rd := bp.deltaReader(vs)
		d := bp.sc.floats(1, bp.size())[0]
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
		t.quota, t.eqs = make([]int32, bp.nBlocks), counts[i]
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
	vs, err := views(p, ts)
	if err != nil {
		return nil, err
	}
	nm := len(ts) - 1
	bp := newBlockPlan(n, o.Cols)
	bp.sc = new(scratchSet)
	defer bp.sc.release() // after every pass: their workers are done
	lambda := o.Lambda
	if lambda == 0 {
		lambda = 1
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
		rd     *deltaReader
		m1, m2 []uint32
		mp     []*magPruner
	}
	// pruneBlock is sparsifyBlock for DELLA: row by row, each from the
	// random stream's position for that row; bf16 inputs are read in
	// place, the deltas computed as the rows' keys are built.
	pruneBlock := func(wk *worker, d []float32, i, lo int) []float32 {
		mp, rl := wk.mp[i], bp.rowLen
		per, s0 := uint64(mp.draws), mix(o.Seed, uint64(i), 0)
		base, v := wk.rd.base, wk.rd.vs[i+1]
		bf16 := v.dt == safetensors.BF16
		var x []uint16 // the block's bf16 entries
		if bf16 {
			d = d[:len(base)]
			x = v.block(wk.rd.raws[i+1], lo, lo+len(d))
		} else {
			d = wk.rd.delta(d, i, lo)
		}
		off := 0
		for ; off+rl <= len(d); off += rl {
			s := s0 + uint64((lo+off)/rl)*per*rngGamma
			if bf16 {
				mp.rowBF16(d[off:off+rl], x[off:off+rl], base[off:off+rl], s)
			} else {
				mp.row(d[off:off+rl], s)
			}
		}
		for j := off; bf16 && j < len(d); j++ { // a partial row stays whole
			d[j] = math.Float32frombits(uint32(x[j])<<16) - base[j]
		}
		return d
	}
	sparsifyBlock := func(wk *worker, d []float32, i, k, lo int) []float32 {
		if o.Sparsify == SparsifyMagPrune {
			return pruneBlock(wk, d, i, lo)
		}
		d = wk.rd.delta(d, i, lo)
		switch o.Sparsify {
		case SparsifyMagnitude:
			m := wk.m1[:len(d)]
			sel[i].keepMask(m, d, k)
			for j, v := range d {
				d[j] = math.Float32frombits(math.Float32bits(v) & m[j])
			}
		case SparsifyOutliers:
			in, out := wk.m1[:len(d)], wk.m2[:len(d)]
			sel[i].keepMask(in, d, k)
			top[i].keepMask(out, d, k)
			for j, v := range d {
				d[j] = math.Float32frombits(math.Float32bits(v) & in[j] &^ out[j])
			}
		case SparsifyRandom:
			dropRandomAt(d, lo, o.Density[i], 1, mix(o.Seed, uint64(i), 0)) // here only with RescaleL1
		}
		return d
	}
	newWorker := func() *worker {
		wk := &worker{rd: bp.deltaReader(vs)}
		switch o.Sparsify {
		case SparsifyMagnitude, SparsifyOutliers:
			wk.m1, wk.m2 = bp.sc.u32(bp.size())[:bp.size()], bp.sc.u32(bp.size())[:bp.size()]
		case SparsifyMagPrune:
			for i := range nm {
				wk.mp = append(wk.mp, getMagPruner(bp.rowLen, o.Density[i], o.Epsilon, o.Rescale && !o.RescaleL1))
			}
		}
		return wk
	}
	// release gives a worker's pruners back when it is done.
	release := func(wk *worker) func() {
		return func() {
			for _, mp := range wk.mp {
				putMagPruner(mp)
			}
		}
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
			d := bp.sc.floats(1, bp.size())[0]
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
			}, release(wk)
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
	// TIES and breadcrumbs_ties with no rescaling merge a block in one
	// fused step (bandSum) when every model keeps all or none of its ties
	// at the threshold there (all blocks but at most one per selection).
	band := (o.Consensus == "sum" || o.Consensus == "") && !o.RescaleL1 && nm <= 16 &&
		(o.Sparsify == SparsifyMagnitude || o.Sparsify == SparsifyOutliers)
	linScale := lambda // combine's without a consensus
	if o.Normalize {
		div := sum(w)
		if math.Abs(div) < minWeightSum {
			div = 1
		}
		linScale /= div
	}
	// With bf16 models (and the assembly for them) the linear band sum
	// reads them in place, widened in registers, not through the view's
	// widening copy.
	bf16Models := bandLinearBF16Fast != nil
	for _, v := range vs[1:] {
		bf16Models = bf16Models && v.dt == safetensors.BF16
	}
	// The band sums that read bf16 models in place: the linear one, and
	// the sign election's for two models.
	canInPlace := bf16Models && (o.Consensus == "" || (nm == 2 && bandSum2BF16Fast != nil))
	out := newOutBuf(p, n)
	err = bp.run(ctx, func() (func(k, lo, hi int), func()) {
		wk := newWorker()
		xb := make([][]uint16, nm)
		ds := bp.sc.floats(nm, bp.size())
		cur := make([][]float32, nm)
		xs := make([][]float32, nm)
		blo, bhi := make([]uint32, nm), make([]uint32, nm)
		dst := bp.sc.floats(1, bp.size())[0]
		zero, sc := bp.sc.floats(1, bp.size())[0], make([]float32, 32*nm)
		bands := func(k int) bool {
			for i := range nm {
				var ok bool
				if blo[i], ok = sel[i].bound(k); !ok {
					return false
				}
				bhi[i] = 1 << 31
				if top != nil {
					if bhi[i], ok = top[i].bound(k); !ok {
						return false
					}
				}
			}
			return true
		}
		// inPlace merges a block of bf16 models by the band sum reading
		// them where they lie, widened in registers, and the base too
		// when bbase is set (else the float32 base), and reports whether
		// it could: the linear band sum, or the sign election's for two
		// models.
		inPlace := func(dst, base []float32, bbase []uint16, lo, hi int) bool {
			if !canInPlace {
				return false
			}
			for i := range nm {
				xb[i] = vs[i+1].block(wk.rd.raws[i+1], lo, hi) // the reader's buffers: not in use here
			}
			if o.Consensus == "" {
				bandLinearBF16(dst, base, bbase, xb, w, blo, bhi, linScale)
			} else {
				bandSum2BF16(dst, base, bbase, xb[0], xb[1], w, blo, bhi, o.Normalize, lambda, ds, cur, sc)
			}
			out.put(lo, dst)
			return true
		}
		return func(k, lo, hi int) {
			m := hi - lo
			inBands := band && bands(k)
			// With a bf16 base too, nothing is widened.
			if inBands && vs[0].dt == safetensors.BF16 && canInPlace {
				inPlace(dst[:m], nil, vs[0].block(wk.rd.raws[0], lo, hi), lo, hi)
				return
			}
			wk.rd.load(lo, m)
			if inBands {
				if inPlace(dst[:m], wk.rd.base, nil, lo, hi) {
					return
				}
				for i := range nm {
					xs[i] = wk.rd.model(i, lo, m)
				}
				if o.Consensus == "" {
					bandLinear(dst[:m], wk.rd.base, xs, w, blo, bhi, linScale)
				} else {
					bandSum(dst[:m], wk.rd.base, xs, w, blo, bhi, o.Normalize, lambda, ds, cur, sc)
				}
				out.put(lo, dst[:m])
				return
			}
			for i := range nm {
				cur[i] = sparsifyBlock(wk, ds[i], i, k, lo)
				if o.RescaleL1 {
					scaleBy(cur[i], factor[i])
				}
			}
			combineAll(dst[:m], wk.rd.base, cur, w, o.Consensus, o.Normalize, lambda, zero, sc)
			out.put(lo, dst[:m])
		}, release(wk)
	})
	if err != nil {
		out.abandon()
		return nil, err
	}
	return out.tensor()
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

// collectOff makes every selection take the radix passes (tests);
// collectWiden makes bf16 inputs take the widening collect (tests).
var collectOff, collectWiden bool

// guessRange brackets t's k-th largest magnitude from an even sample of the
// tensor (runs of sampleRun entries, read cheaply), with a wide margin,
// and readies t for the collecting pass; it reports false (take the radix
// passes) when the bracket would hold more than an eighth of the sample.
// Small tensors are bracketed whole. The bracket is only a guess: the
// collecting pass's counts say whether it holds the k-th largest.
func guessRange(bp blockPlan, vs []view, t *topK) bool {
	if collectOff {
		return false
	}
	const m = sampleSize
	n := bp.n
	t.collect, t.lo, t.hi = true, 0, math.MaxUint32
	t.above, t.cands = make([]int64, bp.nBlocks), make([][]uint32, bp.nBlocks)
	if n < 4*m {
		t.setShift()
		return true // small tensors: every entry is a candidate
	}
	runs := m / sampleRun
	stride := n / runs
	sample := make([]uint32, m)
	var xb, bb [sampleRun]float32
	vx, vb := vs[t.model+1], vs[0]
	touchSample([]view{vx, vb}, runs, stride)
	for i := range runs {
		j := i*stride + (stride-sampleRun)/2
		x, b := vx.get(xb[:], j, sampleRun), vb.get(bb[:], j, sampleRun)
		for r := range sampleRun {
			sample[i*sampleRun+r] = magBits(x[r] - b[r])
		}
	}
	return t.bracket(sample, float64(t.k)/float64(n), 0)
}

// touchSample reads the first and last entries of every sample run of vs
// (runs of sampleRun entries every stride) in one loop of independent
// loads, so that their cache lines arrive together. The sampling loops,
// a call or two per run, had each run wait for its line from memory in
// turn (9% of a TIES merge's CPU on Zen 5).
func touchSample(vs []view, runs, stride int) {
	var s uint32
	for _, v := range vs {
		for i := range runs {
			j := i*stride + (stride-sampleRun)/2
			s += v.bits(j) ^ v.bits(j+sampleRun-1)
		}
	}
	sampleSink.Store(s)
}

// sampleSink keeps touchSample's loads from being optimized away.
var sampleSink atomic.Uint32

// bracket sets t's bracket [lo, hi] from sample (sampleSize magnitude
// bits, reordered) around the entry that a fraction q of the sample
// exceeds, 6 standard deviations of the binomial count and more entries
// either side, and t's heavy values: those that many of the bracket's
// sample entries share. It reports false (t's collecting state cleared)
// when the bracket holds more than an eighth of the sample without them.
//
// Heavy values are looked for whenever the bracket holds enough of the
// sample for one to qualify, not only when it holds too much: near the
// top of a fine-tune's few-ulp deltas (breadcrumbs' top gamma fraction) a
// bracket of 2.5% of a tensor held three or four values, all kept as
// candidates, copied and searched (a fifth of a breadcrumbs merge's CPU),
// where counting them per block costs a comparison.
func (t *topK) bracket(sample []uint32, q float64, more int) bool {
	m := len(sample)
	margin := int(6*math.Sqrt(float64(m)*q*(1-q))) + 64 + more
	pos := m - int(q*float64(m)) // index of the k-th largest in ascending order
	lo, hi := max(0, pos-margin), min(m-1, pos+margin)
	// Order statistics by quickselect (the sample reordered, not sorted).
	// The first leaves the sample partitioned at lo, so the second looks
	// among the entries from lo on only.
	if lo > 0 {
		t.lo = kthLargest(sample, m-lo)
	}
	if hi < m-1 {
		t.hi = kthLargest(sample[lo:], m-hi)
	}
	in := 0
	for _, a := range sample {
		in += int((uint64(a-t.lo) - uint64(t.hi-t.lo) - 1) >> 63)
	}
	if in >= m/256 { // findHeavy's least share
		in -= t.findHeavy(sample)
	}
	if in > m/8 {
		t.collect, t.above, t.cands, t.heavy = false, nil, nil, nil
		return false
	}
	t.setShift()
	return true
}

// findHeavy sets t.heavy to the values (at most maxHeavy, the most shared
// first) that at least 1/256 of sample's entries share within [lo, hi],
// and returns how many of sample's entries they take.
func (t *topK) findHeavy(sample []uint32) int {
	var in []uint32
	for _, a := range sample {
		if a-t.lo <= t.hi-t.lo {
			in = append(in, a)
		}
	}
	slices.Sort(in)
	type run struct {
		v uint32
		n int
	}
	var runs []run
	for i := 0; i < len(in); {
		j := i + 1
		for j < len(in) && in[j] == in[i] {
			j++
		}
		if j-i >= len(sample)/256 {
			runs = append(runs, run{in[i], j - i})
		}
		i = j
	}
	slices.SortStableFunc(runs, func(a, b run) int { return b.n - a.n })
	taken := 0
	for _, r := range runs[:min(len(runs), maxHeavy)] {
		t.heavy = append(t.heavy, r.v)
		taken += r.n
	}
	return taken
}

// filterHeavy adds the number of cs equal to each of hs to eq and returns
// the others, in order, in cs's memory. It has no branch on the data: the
// heavy values are most of cs.
func filterHeavy(cs, hs []uint32, eq *[maxHeavy]int32) []uint32 {
	n := 0
	for _, a := range cs {
		var hit uint64
		for j, h := range hs {
			e := (uint64(a^h) - 1) >> 63 // a == h
			eq[j] += int32(e)
			hit |= e
		}
		cs[n] = a
		n += int(1 - hit)
	}
	return cs[:n]
}

// bin is the bin of the candidates' histogram that magnitude bits a, in
// the bracket, fall in.
func (t *topK) bin(a uint32) uint32 { return ((a - t.lo) >> t.shift) & (candBins - 1) }

// setShift sets the shift that puts [lo, hi] in candBins bins.
func (t *topK) setShift() {
	t.shift = 0
	for uint64(t.hi-t.lo)>>t.shift >= candBins {
		t.shift++
	}
}

// sampleRun is the length of guessRange's runs of adjacent entries, and
// sampleSize the entries of its sample; tensors of fewer than 4*sampleSize
// entries take every entry as a candidate. Each run costs a page walk and
// a line from memory (the tensor is not read yet), so runs of 64 sample
// as many entries as runs of 16 did from a quarter of the pages. Half the
// sample of 2^15 entries widens the bracket by about two fifths (its
// margin goes as the square root) and cost sce with select_topk 10% less
// CPU on Zen 5. The sample only places the bracket, which the collecting
// pass checks: the selection is exact whatever it is.
const (
	sampleRun  = 64
	sampleSize = 1 << 14
)

// collectPass counts, for each selection in ts, the entries above its hi
// per block and keeps the bits of those in [lo, hi] per block.
func collectPass(ctx context.Context, bp blockPlan, vs []view, ts []*topK) error {
	bf16 := !collectWiden
	for _, v := range vs {
		bf16 = bf16 && v.dt == safetensors.BF16
	}
	for _, t := range ts {
		t.hist = histBuf()
		t.heavyEq = make([]int32, bp.nBlocks*len(t.heavy))
	}
	var mu sync.Mutex
	return bp.run(ctx, func() (func(k, lo, hi int), func()) {
		rd := bp.deltaReader(vs)
		// The worker's buffers come from bp.sc's slabs, not fresh for
		// every tensor (see binPool).
		buf := bp.sc.u32(bp.size() + 16)[:bp.size()+16]
		counts := bp.sc.u32(len(ts) * candBins)[:len(ts)*candBins]
		clear(counts)
		hists := make([][]uint32, len(ts))
		for i := range hists {
			hists[i] = counts[i*candBins : (i+1)*candBins]
		}
		var slab []uint32      // the candidates' memory, from bp.sc
		var eq [maxHeavy]int32 // the heavy values' counts of a selection's block
		keep := func(i, k, c int, above int64) {
			slab = ts[i].keepCands(k, buf[:c], above, hists[i], slab, bp.sc, &eq)
			eq = [maxHeavy]int32{}
		}
		f := func(k, lo, hi int) {
			m := hi - lo
			if bf16 { // in place, widened in registers
				base := vs[0].block(rd.raws[0], lo, hi) // the reader's buffers, unused on this path
				prev := -1
				var x []uint16
				for i, t := range ts {
					if t.model != prev {
						x, prev = vs[t.model+1].block(rd.raws[t.model+1], lo, hi), t.model
					}
					c, above := collectBF16Heavy(buf, x, base, t.lo, t.hi, t.heavy, &eq)
					keep(i, k, c, above)
				}
				return
			}
			rd.load(lo, m)
			prev := -1
			var x []float32
			for i, t := range ts {
				if t.model != prev {
					x, prev = rd.model(t.model, lo, m), t.model
				}
				c, above := collectHeavy(buf, x, rd.base, t.lo, t.hi, t.heavy, &eq)
				keep(i, k, c, above)
			}
		}
		finish := func() {
			mu.Lock()
			defer mu.Unlock()
			for i, t := range ts {
				for b, c := range hists[i] {
					t.hist[b] += int64(c)
				}
			}
		}
		return f, finish
	})
}

// candBins is the number of bins of the candidates' histogram.
const candBins = 1 << 12

// collectFast, when set (assembly), is collectDelta over the largest
// multiple of 16 entries n, which it returns with c and above; buf holds
// at least n+16 entries.
var collectFast func(buf []uint32, x, base []float32, lo, hi uint32) (n, c int, above int64)

// collectDelta writes the magnitude bits of the deltas x - base that lie in
// [lo, hi] (lo <= hi) to buf (of at least len(base)+16), in order, and returns their
// number and the number of deltas above hi. It has no branch on the data.
func collectDelta(buf []uint32, x, base []float32, lo, hi uint32) (int, int64) {
	j0, c, above := 0, 0, int64(0)
	if collectFast != nil {
		j0, c, above = collectFast(buf, x, base, lo, hi)
	}
	w := uint64(hi - lo)
	h := uint64(hi)
	x = x[:len(base)]
	for j := j0; j < len(base); j++ {
		a := magBits(x[j] - base[j])
		buf[c] = a
		c += int((uint64(a-lo) - w - 1) >> 63) // a-lo <= hi-lo (a < lo wraps)
		above += int64((h - uint64(a)) >> 63)  // a > hi
	}
	return c, above
}

// collectHeavyFast and collectBF16HeavyFast, when set (assembly), are
// collectHeavy and collectBF16Heavy over the largest multiple of 8
// entries n, which they return with c and above; buf holds at least n+8
// entries.
var (
	collectHeavyFast     func(buf []uint32, x, base []float32, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (n, c int, above int64)
	collectBF16HeavyFast func(buf []uint32, x, base []uint16, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (n, c int, above int64)
)

// collectHeavy is collectDelta that counts the magnitudes equal to each of
// heavy (at most maxHeavy; none: collectDelta) into eq instead of writing
// them to buf, as filterHeavy would after it.
func collectHeavy(buf []uint32, x, base []float32, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int64) {
	return collectHeavyBy(buf, x, base, lo, hi, heavy, eq, collectDelta, collectHeavyFast)
}

// collectBF16Heavy is collectHeavy on bfloat16 inputs, read in place.
func collectBF16Heavy(buf []uint32, x, base []uint16, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int64) {
	return collectHeavyBy(buf, x, base, lo, hi, heavy, eq, collectBF16, collectBF16HeavyFast)
}

// collectHeavyBy is collectHeavy's steps with the collecting pass plain
// and its assembly with heavy values fast (nil: none): fast over a
// prefix, plain over the rest, whose heavy values filterHeavy drops.
func collectHeavyBy[T float32 | uint16](buf []uint32, x, base []T, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32,
	plain func(buf []uint32, x, base []T, lo, hi uint32) (int, int64),
	fast func(buf []uint32, x, base []T, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (n, c int, above int64)) (int, int64) {
	if len(heavy) == 0 {
		return plain(buf, x, base, lo, hi)
	}
	j0, c, above := 0, 0, int64(0)
	if fast != nil {
		j0, c, above = fast(buf, x, base, lo, hi, heavy, eq)
	}
	tc, ta := plain(buf[c:], x[j0:], base[j0:], lo, hi)
	return c + len(filterHeavy(buf[c:c+tc], heavy, eq)), above + ta
}

// collectBF16Fast, when set (assembly), is collectBF16 over the largest
// multiple of 16 entries n, which it returns with c and above; buf holds
// at least n+16 entries.
var collectBF16Fast func(buf []uint32, x, base []uint16, lo, hi uint32) (n, c int, above int64)

// collectBF16 is collectDelta on bfloat16 inputs, read in place.
func collectBF16(buf []uint32, x, base []uint16, lo, hi uint32) (int, int64) {
	j0, c, above := 0, 0, int64(0)
	if collectBF16Fast != nil {
		j0, c, above = collectBF16Fast(buf, x, base, lo, hi)
	}
	w := uint64(hi - lo)
	h := uint64(hi)
	x = x[:len(base)]
	for j := j0; j < len(base); j++ {
		a := magBits(math.Float32frombits(uint32(x[j])<<16) - math.Float32frombits(uint32(base[j])<<16))
		buf[c] = a
		c += int((uint64(a-lo) - w - 1) >> 63)
		above += int64((h - uint64(a)) >> 63)
	}
	return c, above
}

// keepCands records block k's candidates cs (in index order; cs is then
// spent; the heavy values already left out and counted in eq) and its
// count of entries above the bracket: their histogram, into a worker's
// h; the heavy values' counts; the others, appended to slab (more from
// sc when it is full), which it returns.
func (t *topK) keepCands(k int, cs []uint32, above int64, h []uint32, slab []uint32, sc *scratchSet, eq *[maxHeavy]int32) []uint32 {
	t.above[k] = above
	for _, a := range cs {
		h[t.bin(a)]++
	}
	for j, v := range t.heavy {
		h[t.bin(v)] += uint32(eq[j])
	}
	copy(t.heavyEq[k*len(t.heavy):], eq[:len(t.heavy)])
	c := len(cs)
	if len(slab)+c > cap(slab) {
		slab = sc.u32(c)
	}
	slab = append(slab, cs...)
	t.cands[k] = slab[len(slab)-c : len(slab) : len(slab)]
	return slab
}

// binPool holds fromCandidates' buffers of one histogram bin's
// candidates. On few-ulp deltas a bin holds millions of them, and a fresh
// buffer per tensor and model had the runtime zero new pages: a tenth of a
// TIES merge's CPU on Zen 5.
var binPool sync.Pool

// histPool holds the candidates' histograms (candBins counts), taken for
// every selection of every tensor.
var histPool sync.Pool

// histBuf returns a zeroed histogram from histPool.
func histBuf() []int64 {
	if p, _ := histPool.Get().(*[]int64); p != nil {
		clear(*p)
		return *p
	}
	return make([]int64, candBins)
}

// binBuf returns an empty buffer of capacity at least n from binPool.
func binBuf(n int) *[]uint32 {
	p, _ := binPool.Get().(*[]uint32)
	if p == nil || cap(*p) < n {
		b := make([]uint32, 0, n)
		p = &b
	}
	*p = (*p)[:0]
	return p
}

// fromCandidates finishes t's selection from its bracket: it reports false
// when the k-th largest is not in the bracket.
func fromCandidates(bp blockPlan, t *topK) bool {
	defer func() {
		if h := t.hist; h != nil {
			histPool.Put(&h)
		}
		t.collect, t.above, t.cands, t.hist, t.heavy, t.heavyEq = false, nil, nil, nil, nil, nil
	}()
	var above, total int64
	for k := range t.cands {
		above += t.above[k]
		total += int64(len(t.cands[k]))
	}
	nh := len(t.heavy)
	heavyN := make([]int64, nh) // entries equal to each heavy value
	for k := range bp.nBlocks {
		for j := range nh {
			heavyN[j] += int64(t.heavyEq[k*nh+j])
		}
	}
	for _, c := range heavyN {
		total += c
	}
	k := int64(t.k)
	if above >= k || above+total < k {
		return false
	}
	// The histogram gives the bin of the k-th largest; a quickselect among
	// that bin's entries gives it.
	r := k - above                       // its rank among the candidates, from the top
	bin, greater := kthBin(t.hist, r, 0) // greater: candidates in the bins above
	inBin := func(a uint32) bool { return t.bin(a) == uint32(bin) }
	inp := binBuf(int(t.hist[bin]))
	defer binPool.Put(inp)
	in := *inp
	for _, cs := range t.cands {
		for _, a := range cs {
			if inBin(a) {
				in = append(in, a)
			}
		}
	}
	hj := -1 // the heavy value that is the threshold
	var hin []int
	for j, h := range t.heavy {
		if inBin(h) {
			hin = append(hin, j)
		}
	}
	if len(hin) == 0 {
		t.th = kthLargest(in, int(r-greater))
	} else {
		t.th, hj = t.kthWithHeavy(in, hin, heavyN, r-greater)
	}
	var eq int64
	for _, a := range in {
		if a > t.th {
			greater++
		} else if a == t.th {
			eq++
		}
	}
	for _, j := range hin {
		if t.heavy[j] > t.th {
			greater += heavyN[j]
		}
	}
	if hj >= 0 {
		eq += heavyN[hj]
	}
	t.eq, t.need = eq, k-above-greater
	if t.need < t.eq {
		t.quota, t.eqs = make([]int32, bp.nBlocks), make([]int32, bp.nBlocks)
		left := t.need
		for b, cs := range t.cands {
			var c int64
			for _, a := range cs {
				if a == t.th {
					c++
				}
			}
			if hj >= 0 {
				c += int64(t.heavyEq[b*nh+hj])
			}
			q := min(c, left)
			t.quota[b], t.eqs[b], left = int32(q), int32(c), left-q
		}
	}
	return true
}

// kthWithHeavy returns the r-th largest (1-based) of the candidates in
// and heavyN[j] copies of each heavy value t.heavy[j], j in hin (none of
// them in in), and the j of the heavy value it is (-1: it is in in).
func (t *topK) kthWithHeavy(in []uint32, hin []int, heavyN []int64, r int64) (uint32, int) {
	slices.Sort(in)
	slices.SortFunc(hin, func(a, b int) int { return cmp.Compare(t.heavy[b], t.heavy[a]) })
	i, h := len(in)-1, 0 // the next largest of in and of the heavy values
	for {
		if h < len(hin) && (i < 0 || t.heavy[hin[h]] > in[i]) {
			j := hin[h]
			if r <= heavyN[j] {
				return t.heavy[j], j
			}
			r -= heavyN[j]
			h++
			continue
		}
		if r <= 1 {
			return in[i], -1
		}
		r--
		i--
	}
}

// kthLargest returns the r-th largest (1-based) of a, reordering a: a
// quickselect with three-way partitions (expected linear time; ties cost
// nothing), which falls back to sorting what is left after 64 rounds. It
// leaves a partitioned at the r-th largest: no entry before it is
// larger, none after it smaller.
func kthLargest[T cmp.Ordered](a []T, r int) T {
	target := len(a) - r // index in ascending order
	lo, hi := 0, len(a)-1
	g := rng{s: uint64(len(a))}
	for round := 0; lo < hi; round++ {
		if round == 64 {
			slices.Sort(a[lo : hi+1])
			break
		}
		p := a[lo+int(g.next()%uint64(hi-lo+1))]
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch v := a[i]; {
			case v < p:
				a[lt], a[i] = v, a[lt]
				lt++
				i++
			case v > p:
				a[i], a[gt] = a[gt], v
				gt--
			default:
				i++
			}
		}
		switch {
		case target < lt:
			hi = lt - 1
		case target > gt:
			lo = gt + 1
		default:
			return p
		}
	}
	return a[target]
}

// keepAtLeastFast, when set (assembly), sets m[j] to all ones where
// magBits(d[j]) >= th and to zero where not, for a prefix of d (a multiple
// of 8 entries), and returns its length.
var keepAtLeastFast func(m []uint32, d []float32, th int64) int

// keepMask sets m[j] to all ones where the entry of magnitude bits ab[j]
// (block b) is kept and to zero where not, branch-free but for the ties
// at the threshold when the block keeps only some of them.
func (t *topK) keepMask(m []uint32, d []float32, b int) {
	m = m[:len(d)]
	switch {
	case t.all:
		for j := range m {
			m[j] = ^uint32(0)
		}
		return
	case t.none:
		clear(m)
		return
	}
	// Every tie or none: one comparison. (The ties' loop ran through
	// every block that keeps all of its ties, 2.5% of an sce merge with
	// select_topk on a fine-tune's deltas.) Else strictly above, and the
	// quota's ties below.
	th, q := int64(t.th)+1, t.blockQuota(b)
	if bd, ok := t.bound(b); ok {
		th, q = int64(bd), -1
	}
	j0 := 0
	if keepAtLeastFast != nil {
		j0 = keepAtLeastFast(m, d, th)
	}
	for j := j0; j < len(d); j++ {
		m[j] = ^uint32((int64(magBits(d[j])) - th) >> 63)
	}
	// The quota's ties, in index order. On a fine-tune's variances or
	// deltas most of a block can tie at the threshold, and this loop ran
	// through the block one entry at a time.
	j := 0
	if keepTiesFast != nil && q >= 8 {
		var left int
		j, left = keepTiesFast(m, d, t.th, int(q))
		q = int32(left)
	}
	for ; j < len(d) && q > 0; j++ {
		if magBits(d[j]) == t.th {
			m[j] = ^uint32(0)
			q--
		}
	}
}

// keepTiesFast, when set (assembly), is keepMask's loop over the ties,
// eight entries at a time while at least eight of the quota q are left:
// it returns the entry where it stopped and the quota left.
var keepTiesFast func(m []uint32, d []float32, th uint32, q int) (int, int)

// bandSum2BF16Fast, when set (assembly), is bandSum for two bfloat16
// models read in place (widened in registers), over the largest multiple
// of 16 or 8 entries (its width), which it returns.
var bandSum2BF16Fast func(dst, base []float32, bbase, x0, x1 []uint16, w []float64, lo, hi []uint32, normalize bool, lambda float64) int

// bandSum2BF16 is bandSum for two bfloat16 models, read in place: TIES's
// band sum on them widened each block into float32 scratch first (8% of
// a TIES merge) and went through sumCore's general loop over the models.
// The base is float32 (base) or, when base is nil, bfloat16 (bbase) and
// read in place too. The entries past the assembly's last multiple of its
// width are widened for bandSum.
func bandSum2BF16(dst, base []float32, bbase, x0, x1 []uint16, w []float64, lo, hi []uint32, normalize bool, lambda float64, ds, cur [][]float32, scratch []float32) {
	j0 := bandSum2BF16Fast(dst, base, bbase, x0, x1, w, lo, hi, normalize, lambda)
	var b, y0, y1 [16]float32 // the widest kernel's remainder
	n := len(dst) - j0
	for j := range n {
		y0[j], y1[j], b[j] = safetensors.BF16ToF32(x0[j0+j]), safetensors.BF16ToF32(x1[j0+j]), baseAt(base, bbase, j0+j)
	}
	bandSum(dst[j0:], b[:n], [][]float32{y0[:n], y1[:n]}, w, lo, hi, normalize, lambda, ds, cur, scratch)
}

// bandSumFast, when set (assembly), computes bandSum for a prefix of dst
// (a multiple of 16 elements) exactly as bandSum does and returns its
// length; scratch holds at least 16*len(xs) floats.
var bandSumFast func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, normalize bool, lambda float64, scratch []float32) int

// bandSum merges by combine's sign election by sum the deltas x_i - base,
// each kept where its magnitude bits lie in [lo[i], hi[i]) and zeroed
// elsewhere: TIES's top-k (hi = 1<<31) or breadcrumbs' band, for a block
// whose selections keep all or none of their ties. ds (len(xs) slices of
// at least len(dst)) and cur (len(xs)) are scratch; so is scratch, of at
// least 16*len(xs) floats.
func bandSum(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, normalize bool, lambda float64, ds, cur [][]float32, scratch []float32) {
	j0 := 0
	if bandSumFast != nil {
		j0 = bandSumFast(dst, base, xs, w, lo, hi, normalize, lambda, scratch)
	}
	if j0 == len(dst) {
		return
	}
	b := base[j0:len(dst)]
	for i, x := range xs {
		d := ds[i][:len(b)]
		bandDeltas(d, x[j0:j0+len(b)], b, lo[i], hi[i])
		cur[i] = d
	}
	combine(dst[j0:], b, cur, w, "sum", normalize, lambda)
}

// bandDeltas stores in d the deltas x - b whose magnitude bits lie in
// [lo, hi), and zero for the others (inBand).
func bandDeltas(d, x, b []float32, lo, hi uint32) {
	d, x = d[:len(b)], x[:len(b)]
	for j, bv := range b {
		d[j] = inBand(x[j]-bv, lo, hi)
	}
}

// inBand returns v when its magnitude bits lie in [lo, hi), else +0,
// without a branch: at TIES' densities the test goes either way at random.
func inBand(v float32, lo, hi uint32) float32 {
	b := math.Float32bits(v)
	width := uint64(max(hi, lo) - lo)                          // of the band; an empty one keeps nothing
	keep := uint32(int64(uint64((b&^signBit)-lo)-width) >> 63) // all ones when lo <= |v| < hi
	return math.Float32frombits(b & keep)
}

// baseAt is entry j of the base: float32 (base), or when base is nil
// bfloat16 (bbase).
func baseAt(base []float32, bbase []uint16, j int) float32 {
	if base != nil {
		return base[j]
	}
	return safetensors.BF16ToF32(bbase[j])
}

// bandLinearBF16Fast, when set (assembly), is bandLinearBF16 over a
// prefix of dst (a multiple of 16 or 8 entries, its width), which it
// returns.
var bandLinearBF16Fast func(dst, base []float32, bbase []uint16, xs [][]uint16, w []float64, lo, hi []uint32, scale float64) int

// bandLinearBF16 is bandLinear on bfloat16 models xs, read in place; the
// base is float32 (base) or, when base is nil, bfloat16 (bbase), read in
// place too.
func bandLinearBF16(dst, base []float32, bbase []uint16, xs [][]uint16, w []float64, lo, hi []uint32, scale float64) {
	j0 := 0
	if bandLinearBF16Fast != nil {
		j0 = bandLinearBF16Fast(dst, base, bbase, xs, w, lo, hi, scale)
	}
	for j := j0; j < len(dst); j++ {
		b := baseAt(base, bbase, j)
		var s float64
		for i, x := range xs {
			s += w[i] * float64(inBand(math.Float32frombits(uint32(x[j])<<16)-b, lo[i], hi[i]))
		}
		dst[j] = float32(float64(b) + scale*s)
	}
}

// bandLinearFast, when set (assembly), computes bandLinear for a prefix of
// dst (a multiple of 16 elements) exactly as bandLinear does and returns
// its length.
var bandLinearFast func(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, scale float64) int

// bandLinear is bandSum without a consensus (breadcrumbs): combine's
// weighted sum in float64 of the deltas kept in their bands, scale being
// lambda, divided by the weights' sum when normalizing.
func bandLinear(dst, base []float32, xs [][]float32, w []float64, lo, hi []uint32, scale float64) {
	j0 := 0
	if bandLinearFast != nil {
		j0 = bandLinearFast(dst, base, xs, w, lo, hi, scale)
	}
	for j := j0; j < len(dst); j++ {
		var s float64
		for i, x := range xs {
			s += w[i] * float64(inBand(x[j]-base[j], lo[i], hi[i]))
		}
		dst[j] = float32(float64(base[j]) + scale*s)
	}
}

// combineLinearFast, when set (assembly), computes combine without a
// consensus for a prefix of dst (a multiple of 16 elements) exactly as
// combine does, and returns its length; zero holds at least len(dst)
// zeros.
var combineLinearFast func(dst, base []float32, ds [][]float32, w []float64, normalize bool, lambda float64, zero []float32) int

// combineAll is combine, with the assembly for sum consensus and for none
// where it runs; zero and scratch are combineSumFast's.
func combineAll(dst, base []float32, ds [][]float32, w []float64, consensus string, normalize bool, lambda float64, zero, scratch []float32) {
	lo := 0
	switch {
	case consensus == "sum" && combineSumFast != nil:
		lo = combineSumFast(dst, base, ds, w, normalize, lambda, zero, scratch)
	case consensus == "" && combineLinearFast != nil:
		lo = combineLinearFast(dst, base, ds, w, normalize, lambda, zero)
	}
	if lo < len(dst) {
		tails := make([][]float32, len(ds))
		for i, d := range ds {
			tails[i] = d[lo:]
		}
		combine(dst[lo:], base[lo:], tails, w, consensus, normalize, lambda)
	}
}

// kthBin returns the bin of histogram h that holds the k-th largest of
// its entries, counting from the top bin down with cum entries above h's
// range, and the number of entries above that bin (cum included).
func kthBin(h []int64, k, cum int64) (int, int64) {
	for b := len(h) - 1; b >= 0; b-- {
		if cum+h[b] >= k {
			return b, cum
		}
		cum += h[b]
	}
	return 0, cum
}
