package merge

import (
	"math"
	"math/bits"
	"sync"
)

// Sparsification methods applied to task vectors (deltas from the base).
const (
	SparsifyNone      = ""
	SparsifyMagnitude = "magnitude"          // TIES: keep the top density fraction by |x|
	SparsifyRandom    = "random"             // DARE: keep each entry with probability density
	SparsifyOutliers  = "magnitude_outliers" // breadcrumbs: drop the top gamma, keep the next density
	SparsifyMagPrune  = "magprune"           // DELLA: keep probability rises with the rank of |x| in its row
)

// rng is a small, fast, seedable generator (SplitMix64). DARE draws one
// number per weight, so the generator's cost matters; its stream depends only
// on the seed, which the merger derives from (seed, tensor, model, chunk) so
// that results do not depend on the number of threads.
type rng struct{ s uint64 }

// rngGamma is the step of the generator's state (splitmix64's): draw q of
// a stream that starts at state s is the mix of s + (q+1)*rngGamma, which
// lets the assembly compute eight draws at once.
const rngGamma = 0x9e3779b97f4a7c15

// rngMul1 and rngMul2 are splitmix64's mixing multipliers.
const (
	rngMul1 = 0xbf58476d1ce4e5b9
	rngMul2 = 0x94d049bb133111eb
)

func (r *rng) next() uint64 {
	r.s += rngGamma
	z := r.s
	z = (z ^ (z >> 30)) * rngMul1
	z = (z ^ (z >> 27)) * rngMul2
	return z ^ (z >> 31)
}

// float64 returns a uniform number in [0, 1).
func (r *rng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// keepThreshold converts a keep probability to a threshold on 32-bit draws.
func keepThreshold(p float64) uint64 {
	if p >= 1 {
		return 1 << 32
	}
	if p <= 0 {
		return 0
	}
	return uint64(p * (1 << 32))
}

// dropRandom zeroes each entry of x with probability 1-density, drawing from
// r, and scales the survivors by scale (1/density for DARE's rescaling, 1 for
// none). density >= 1 leaves x unchanged; density <= 0 zeroes it.
func dropRandom(x []float32, density float64, scale float32, r *rng) {
	if density >= 1 {
		if scale != 1 {
			scaleBy(x, scale)
		}
		return
	}
	th := int64(keepThreshold(density))
	// Branch-free: a draw below the threshold keeps the entry (mask of
	// ones), otherwise the mask clears it.
	i := 0
	if dropFast != nil {
		i = dropFast(x, scale, uint32(th), r) // th < 1<<32: density < 1
	}
	for ; i+1 < len(x); i += 2 {
		u := r.next()
		m0 := uint32((int64(u&0xffffffff) - th) >> 63)
		m1 := uint32((int64(u>>32) - th) >> 63)
		x[i] = math.Float32frombits(math.Float32bits(x[i]*scale) & m0)
		x[i+1] = math.Float32frombits(math.Float32bits(x[i+1]*scale) & m1)
	}
	if i < len(x) {
		u := r.next()
		m0 := uint32((int64(u&0xffffffff) - th) >> 63)
		x[i] = math.Float32frombits(math.Float32bits(x[i]*scale) & m0)
	}
}

// dropFast, when set (assembly), is dropRandom's loop over the largest
// multiple of 8 entries of x, which it returns, with r advanced past its
// draws.
var dropFast func(x []float32, scale float32, th uint32, r *rng) int

// kthLargestAbs returns the k-th largest |x| (1-based) by quickselect on a
// copy, in expected linear time.
func kthLargestAbs(x []float32, k int) float32 {
	a := make([]float32, len(x))
	for i, v := range x {
		a[i] = abs32(v)
	}
	return kthLargest(a, k)
}

// keepTopK zeroes all but the k entries of largest magnitude. Entries equal
// to the threshold are kept in index order until k are kept, so exactly
// min(k, len(x)) entries survive (fewer only if x has zeros among them).
func keepTopK(x []float32, k int) {
	if k >= len(x) {
		return
	}
	if k <= 0 {
		clear(x)
		return
	}
	th := kthLargestAbs(x, k)
	above := 0
	for _, v := range x {
		if abs32(v) > th {
			above++
		}
	}
	eq := k - above // entries equal to th still to keep
	for i, v := range x {
		a := abs32(v)
		switch {
		case a > th:
		case a == th && eq > 0:
			eq--
		default:
			x[i] = 0
		}
	}
}

// magnitudeCount is TIES's number of kept entries: int(density * n).
func magnitudeCount(density float64, n int) int {
	if density >= 1 {
		return n
	}
	if density <= 0 {
		return 0
	}
	return int(density * float64(n))
}

// keepBand implements breadcrumbs: ranking entries by magnitude (ties in
// index order, as keepTopK), it drops the largest int(gamma*n) outliers and
// keeps the next int(density*n), zeroing the rest (the small ones); when
// the two overlap, fewer outliers are dropped. The two
// top-k sets are nested, so the band is their difference.
func keepBand(x []float32, density, gamma float64) {
	n := len(x)
	nTop := int(gamma * float64(n))
	nKeep := magnitudeCount(density, n)
	if nTop+nKeep > n {
		nTop = n - nKeep // density wins over gamma, as in mergekit
	}
	top := append([]float32(nil), x...)
	keepTopK(top, nTop)
	keepTopK(x, nTop+nKeep)
	for i, v := range top {
		if v != 0 {
			x[i] = 0
		}
	}
}

// magPrune implements DELLA's MagPrune on each row of length cols: within a
// row, the entry of rank r (0 = smallest |x|, ties in index order) is kept
// with probability p_r = density - epsilon + 2*epsilon*r/(cols-1), clamped
// to [0, 1] (1 at density 1, 0 at density 0), and scaled by 1/p_r when
// rescale is set. One draw is taken for each rank with p_r > 0, in rank
// order, row after row.
func magPrune(x []float32, cols int, density, epsilon float64, rescale bool, r *rng) {
	if cols <= 0 {
		cols = len(x)
	}
	mp := newMagPruner(cols, density, epsilon, rescale)
	for off := 0; off+cols <= len(x); off += cols {
		mp.row(x[off:off+cols], r.s)
		r.s += uint64(mp.draws) * rngGamma
	}
}

// magPruner prunes rows of one length for one density: the keep
// probability and draw number of each rank are computed once, the ranks of
// a row by a stable radix sort of its magnitudes (linear time), and each
// entry's draw straight from the stream's counter, so no sort by
// comparison and no sequential walk of the generator are needed.
type magPruner struct {
	p       []float64 // keep probability of each rank
	th      []uint64  // ceil(p * 2^53): a draw keeps when its top 53 bits are below
	q       []int32   // the draw of each rank (-1: none, p = 0)
	qg      []uint64  // (q+1)*rngGamma: the stream's step to each rank's draw
	draws   int       // draws per row
	rescale bool
	a, b    []uint64 // scratch: (magnitude bits << 32 | sign bit << 31 | index)
	cnt     []int32  // scratch: rankSort's counters
	st      keyStats // scratch: the row's keys
	key     prunerKey
}

// prunerKey is what a magPruner's tables depend on.
type prunerKey struct {
	cols             int
	density, epsilon float64
	rescale          bool
}

// magPruners keeps magPruners for reuse, a pool per key. DELLA's streaming
// merge builds one per worker, model and tensor: its tables and scratch
// (about 40 KB for rows of 896), which the runtime zeroed and the per-rank
// probabilities filled, took 5% of a DELLA merge's CPU on the 0.5B pair.
var magPruners struct {
	sync.Mutex
	pools map[prunerKey]*sync.Pool
}

// getMagPruner returns a pruner for rows of cols (newMagPruner's), from
// magPruners when one is free.
func getMagPruner(cols int, density, epsilon float64, rescale bool) *magPruner {
	k := prunerKey{cols, density, epsilon, rescale}
	if k.pooled() {
		if m, _ := prunerPool(k).Get().(*magPruner); m != nil {
			return m
		}
	}
	return newMagPruner(cols, density, epsilon, rescale)
}

// putMagPruner gives m back to magPruners; its caller no longer uses it.
func putMagPruner(m *magPruner) {
	if m.key.pooled() {
		prunerPool(m.key).Put(m)
	}
}

// pooled reports whether pruners of k can be found again: a NaN in a key
// matches no key, and would add a pool per call.
func (k prunerKey) pooled() bool { return k.density == k.density && k.epsilon == k.epsilon }

func prunerPool(k prunerKey) *sync.Pool {
	magPruners.Lock()
	defer magPruners.Unlock()
	p := magPruners.pools[k]
	if p == nil {
		if magPruners.pools == nil {
			magPruners.pools = make(map[prunerKey]*sync.Pool)
		}
		p = new(sync.Pool)
		magPruners.pools[k] = p
	}
	return p
}

// keysBF16Fast, when set (assembly), builds sortRowBF16's entries and
// statistics for the largest multiple of 16 entries n, which it returns;
// zl (the entries with bits 8-15 zero) holds len(base) entries.
var keysBF16Fast func(st *keyStats, a, zl []uint64, x []uint16, base []float32) (n int)

// pruneRanksFast, when set (assembly), computes row's per-rank step for a
// prefix of the ranks (a multiple of 8, or of 4 on AVX2) into row, exactly
// as row does, and returns its length.
var pruneRanksFast func(m *magPruner, row []float32, ord []uint64, s uint64) int

func newMagPruner(cols int, density, epsilon float64, rescale bool) *magPruner {
	m := &magPruner{p: make([]float64, cols), th: make([]uint64, cols), q: make([]int32, cols), qg: make([]uint64, cols), rescale: rescale,
		a: make([]uint64, cols), b: make([]uint64, cols), cnt: make([]int32, topBins), key: prunerKey{cols, density, epsilon, rescale}}
	m.st.s8, m.st.s16, m.st.l = make([]uint64, cols+16), make([]uint64, cols+16), make([]uint64, cols+16)
	m.st.dg = make([]uint16, cols+16)
	for r := range cols {
		m.p[r] = magPruneP(r, cols, density, epsilon)
		// u = (z>>11) / 2^53 < p exactly when the integer z>>11 is below
		// the ceiling of the real p * 2^53 (0 for p = 0: never).
		m.th[r] = uint64(math.Ceil(m.p[r] * (1 << 53)))
		m.q[r] = -1
		if m.p[r] > 0 {
			m.q[r] = int32(m.draws)
			m.draws++
		}
		m.qg[r] = uint64(m.q[r]+1) * rngGamma
	}
	return m
}

// sortRow returns the entries of row (|x| bits << 32 | sign bit << 31 |
// index) sorted by magnitude, ties in index order, in m's scratch.
func (m *magPruner) sortRow(row []float32) []uint64 {
	return rankSort(m.keys(row), m.b[:len(row)], m.cnt, &m.st)
}

// sortRowBF16 is sortRow on the deltas x - base (x in bfloat16), each
// computed as its key is built.
func (m *magPruner) sortRowBF16(x []uint16, base []float32) []uint64 {
	return rankSort(m.keysBF16(x, base), m.b[:len(base)], m.cnt, &m.st)
}

// keys builds the entries of row in index order in m.a, and m.st.
func (m *magPruner) keys(row []float32) []uint64 {
	n := len(row)
	a := m.a[:n]
	st := &m.st
	st.reset()
	kmax, kmin := uint32(0), ^uint32(0)
	var n8, n16 uint32
	for j, v := range row {
		b := math.Float32bits(v)
		k := b &^ signBit
		a[j] = uint64(k)<<32 | uint64(b&signBit) | uint64(j)
		kmax, kmin = max(kmax, k), min(kmin, k)
		// Keys with low bits set, counted branch-free.
		n8 += (k&0xff + 0xff) >> 8
		n16 += (k&0xffff + 0xffff) >> 16
	}
	st.max, st.min, st.low8, st.low16 = kmax, kmin, n8, n16
	return a
}

// keysBF16 is keys on the deltas x - base; the loop is keys'.
func (m *magPruner) keysBF16(x []uint16, base []float32) []uint64 {
	n := len(base)
	a := m.a[:n]
	st := &m.st
	st.reset()
	j0 := 0
	if keysBF16Fast != nil {
		j0 = keysBF16Fast(st, a, m.b[:n], x, base)
	}
	kmax, kmin, n8, n16 := st.max, st.min, st.low8, st.low16
	x = x[:n]
	for j := j0; j < n; j++ {
		b := math.Float32bits(math.Float32frombits(uint32(x[j])<<16) - base[j])
		k := b &^ signBit
		a[j] = uint64(k)<<32 | uint64(b&signBit) | uint64(j)
		kmax, kmin = max(kmax, k), min(kmin, k)
		n8 += (k&0xff + 0xff) >> 8
		n16 += (k&0xffff + 0xffff) >> 16
	}
	st.max, st.min, st.low8, st.low16 = kmax, kmin, n8, n16
	return a
}

// row prunes one row (of the pruner's length), drawing from the stream
// whose state is s at the row's start: draw q is the mix of s+(q+1)*gamma,
// what the q+1-th rng.next from state s returns.
func (m *magPruner) row(row []float32, s uint64) { m.prune(row, m.sortRow(row), s) }

// rowBF16 is row on the deltas x - base of a bfloat16 row x, computed as
// the keys are built (no widened copy of x, no delta array); the pruned
// deltas are written to row, whose contents are not read.
func (m *magPruner) rowBF16(row []float32, x []uint16, base []float32, s uint64) {
	m.prune(row, m.sortRowBF16(x, base), s)
}

// prune is row's per-rank step on the row's entries sorted by magnitude
// (ord), writing every entry of row.
func (m *magPruner) prune(row []float32, ord []uint64, s uint64) {
	n := len(row)
	r0 := 0
	if pruneRanksFast != nil {
		r0 = pruneRanksFast(m, row, ord, s) // ranks [0, r0)
	}
	for rank := r0; rank < n; rank++ {
		v := ord[rank]
		j := uint32(v) &^ signBit
		q := m.q[rank]
		if q < 0 {
			row[j] = 0
			continue
		}
		z := s + uint64(q+1)*rngGamma
		z = (z ^ (z >> 30)) * rngMul1
		z = (z ^ (z >> 27)) * rngMul2
		z ^= z >> 31
		x := math.Float32frombits(uint32(v>>32) | uint32(v)&signBit)
		if m.rescale {
			x = float32(float64(x) / m.p[rank])
		}
		// The draw u = (z>>11) / 2^53 keeps when u < p, that is when z>>11
		// is below th; compared as integers, without a branch (p is near
		// one half for most ranks: a branch would go either way at random).
		keep := uint32(int64((z>>11)-m.th[rank]) >> 63)
		row[j] = math.Float32frombits(math.Float32bits(x) & keep)
	}
}

// keyStats describes the keys of a row for rankSort: their largest and
// least, and how many have bits set in their low byte and in their low 16
// bits. The lists rankSort reads on some rows are built only then (list):
// the entries with bits set in the low byte (s8, n8 of them) and in the
// low 16 bits (s16, n16), and the entries split by whether bits 8-15 are
// zero (the nz that are in rankSort's b, in index order, the others in
// l). Each list holds at least the row's length. A row of a fine-tune's
// deltas needs none of them, and building them took as long as building
// its keys. (A kernel that built them on the way, with AVX-512's
// VPCOMPRESSQ, cost DELLA 7% more CPU on such deltas on Zen 5 than
// building them when asked, and no less on random ones.) The entries
// before listed are in the lists.
type keyStats struct {
	max, min    uint32
	low8, low16 uint32
	listed      int
	n8, n16, nz uint32
	s8, s16, l  []uint64
	dg          []uint16 // topDigits' scratch
	// c8 is rankSort's counters of bits 8-15, kept here: on its stack
	// they escaped (prefixSums passes them to the assembly), a 1 KB heap
	// allocation per row (1.1 GB in all for two 0.5B task vectors).
	c8 [256]int32
}

// reset readies st for a new row.
func (st *keyStats) reset() {
	st.max, st.min, st.low8, st.low16 = 0, ^uint32(0), 0, 0
	st.listed, st.n8, st.n16, st.nz = 0, 0, 0, 0
}

// listFast, when set (assembly), is list over the largest multiple of 4
// entries of a row none of whose entries are listed yet.
var listFast func(st *keyStats, a, b []uint64)

// list builds st's lists for the entries of a (the row's keys) from
// st.listed on, branch-free; b is rankSort's.
func (st *keyStats) list(a, b []uint64) {
	if listFast != nil && st.listed == 0 {
		listFast(st, a, b)
	}
	n8, n16, nz := st.n8, st.n16, st.nz
	s8, s16, l := st.s8[:len(a)], st.s16[:len(a)], st.l[:len(a)]
	for j := st.listed; j < len(a); j++ {
		e := a[j]
		k := uint32(e >> 32)
		s8[n8] = e
		n8 += (k&0xff + 0xff) >> 8
		s16[n16] = e
		n16 += (k&0xffff + 0xffff) >> 16
		zero := (k>>8&0xff - 1) >> 31
		b[nz] = e
		l[uint32(j)-nz] = e
		nz += zero
	}
	st.listed, st.n8, st.n16, st.nz = len(a), n8, n16, nz
}

// topBins is the most counters rankSort's top digit takes: 2048 steps of
// 1/128 octave (the key's upper 16 bits are its exponent and the first 7
// bits of its mantissa), 16 octaves below the row's largest magnitude.
// With 8 octaves, the deltas of a real model's small weights fell below
// the window into the first bin, which sortFirstBin sorts by whole keys
// (7.6% of a DELLA merge's samples against 2% now); the prefix sums over
// twice the counters cost 2.5% more.
const topBins = 1 << 11

// rankSortOff makes rankSort take radixByKey always (tests, benchmarks).
var rankSortOff bool

// stragglers is the most keys with bits below rankSort's digits that it
// leaves to its insertion pass.
const stragglers = 16

// rankSort sorts a (key << 32 | payload, the payload's low 31 bits the
// entry's index, in increasing order in a) by key, stably, as radixByKey
// does, into a or b (returned), in fewer passes on the keys of a row of
// deltas: their low bits are mostly zero (differences of bfloat16 weights
// have few significant bits) and their upper 16 bits span a few octaves.
// Two counting passes, on bits 8-15 (skipped when few keys have bits set
// below 16) and on the upper 16 bits within topBins steps of the largest
// (keys below share the first bin), leave entries ordered by their digits
// and index; then the bins holding a key with bits set below the digits
// (the few stragglers) and the first bin, when keys fell below the
// window, are sorted by whole keys and indices. Other rows take
// radixByKey. cnt holds topBins counters; st describes a's keys (its
// lists are built here when a row has stragglers).
func rankSort(a, b []uint64, cnt []int32, st *keyStats) []uint64 {
	n := len(a)
	if n < 64 || st.low8 > stragglers || rankSortOff {
		return radixByKey(a, b)
	}
	// The top digit: the upper 16 bits, less lo16, clamped to [0, bins).
	hi16, lo16 := st.max>>16, st.min>>16
	lo16 = max(lo16, hi16-min(hi16, topBins-1))
	bins := int(hi16-lo16) + 1
	c := cnt[:bins]
	clear(c)
	cd := (*[topBins]int32)(cnt) // c, for loops indexed by a digit
	var strag []uint64           // the entries with bits set below the digits
	var dg []uint16              // the entries' top digits
	if st.low16 > 0 {
		st.list(a, b)
	}
	if st.low16 > stragglers { // one pass on bits 8-15 first
		// The entries of digit 0 are in b already, in index order
		// (list put them there): only the others are counted and
		// placed, so that no run of one counter waits on memory.
		strag = st.s8[:st.low8]
		// The top digit's counts are taken on the way.
		l := st.l[:n-int(st.nz)]
		c8 := &st.c8
		*c8 = [256]int32{}
		for _, v := range l {
			c8[uint8(v>>40)]++
			c[topDigit(v, lo16)]++
		}
		for _, v := range b[:st.nz] {
			c[topDigit(v, lo16)]++
		}
		prefixSums(c8[:], int32(st.nz)) // c8[0] is 0
		for _, v := range l {
			x := uint8(v >> 40)
			b[c8[x]] = v
			c8[x]++
		}
		a, b = b, a
	} else {
		strag = st.s16[:st.low16]
		dg = st.topDigits(a, lo16)
		for _, x := range dg {
			cd[x&(topBins-1)]++
		}
	}
	first := int(c[0]) // entries in the first bin
	prefixSums(c, 0)
	if dg == nil {
		dg = st.topDigits(a, lo16) // a reordered by bits 8-15
	}
	for j, v := range a {
		x := dg[j] & (topBins - 1)
		b[cd[x]] = v
		cd[x]++
	}
	// c[x] is now the end of bin x. The first bin holds the keys below
	// the window (and those at its bottom), in digit and index order:
	// sort them by whole keys (equal keys are in index order, so
	// radixByKey stays stable).
	if st.min>>16 < lo16 {
		sortFirstBin(b[:first], a[:first], st.min == 0)
	}
	for _, v := range strag {
		x := topDigit(v, lo16)
		lo := 0
		if x > 0 {
			lo = int(c[x-1])
		}
		insertionByKey(b[lo:c[x]])
	}
	return b
}

// topDigit is rankSort's top digit of entry v: its key's upper 16 bits
// less lo16, or 0 below lo16. It has no branch: in a fine-tune's rows the
// keys below the window (the zero deltas among them) come at random, and
// a branch on them costs more than the rest of a counting pass.
func topDigit(v uint64, lo16 uint32) int {
	d := int(v>>48) - int(lo16)
	return d &^ (d >> (bits.UintSize - 1))
}

// digitsFast, when set (assembly), stores topDigit(a[j], lo16) into
// dg[j] for the largest multiple of 16 entries of a, which it returns.
var digitsFast func(dg []uint16, a []uint64, lo16 uint32) int

// topDigits returns the top digits of a's entries in st's scratch.
// Computed sixteen at a time (AVX-512 or AVX2), they spare rankSort's
// counting and placing loops topDigit's arithmetic on each 64-bit entry:
// DELLA's whole row step ran 1.14-1.25x as fast on a fine-tune's rows and
// 1.06-1.13x on random deltas with the AVX-512 kernel, 1.20x and 1.11x
// with the AVX2 one (Zen 5, alternated in one process). Computed one at a
// time in Go, as where no kernel does, they gained 3% on the first and
// lost 2% on the second against loops on topDigit. (The digits are below
// rankSort's bins, at most topBins: the loops' masks only spare them a
// bounds check.)
func (st *keyStats) topDigits(a []uint64, lo16 uint32) []uint16 {
	dg := st.dg[:len(a)]
	j := 0
	if digitsFast != nil {
		j = digitsFast(dg, a, lo16)
	}
	for ; j < len(a); j++ {
		dg[j] = uint16(topDigit(a[j], lo16))
	}
	return dg
}

// sortFirstBin sorts rankSort's first bin b by whole keys and indices,
// stably, with scratch a of b's length. When zeros is set some keys are
// zero (weights a fine-tune left unchanged, often a tenth of a row or
// more): those are the least and equal, so they are moved to the front in
// their order and only the others are sorted.
func sortFirstBin(b, a []uint64, zeros bool) {
	if zeros {
		z, o := 0, 0
		for _, v := range b {
			if v>>32 == 0 {
				b[z] = v // z <= the read position: in place, in order
				z++
			} else {
				a[o] = v
				o++
			}
		}
		copy(b[z:], a[:o])
		b, a = b[z:], a[z:]
	}
	if len(b) > 32 {
		if r := radixByKey(b, a); &r[0] != &b[0] {
			copy(b, r)
		}
	} else {
		insertionByKey(b)
	}
}

// insertionByKey sorts a (key << 32 | sign bit << 31 | index) by key and
// index.
func insertionByKey(a []uint64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		k := v &^ signBit
		j := i
		for j > 0 && a[j-1]&^signBit > k {
			a[j] = a[j-1]
			j--
		}
		a[j] = v
	}
}

// prefixFast, when set (assembly), is prefixSums over the largest
// multiple of 16 counters n, returning n and the running total.
var prefixFast func(c []int32, start int32) (int, int32)

// prefixSums replaces each counter of c by start plus the sum of those
// before it and returns start plus the sum of all.
func prefixSums(c []int32, start int32) int32 {
	i, sum := 0, start
	if prefixFast != nil {
		i, sum = prefixFast(c, start)
	}
	for ; i < len(c); i++ {
		c[i], sum = sum, sum+c[i]
	}
	return sum
}

// radixByKey sorts a (key << 32 | payload) by key, stably (equal keys keep
// their order in a), by a least-significant-digit radix sort on the key's
// bytes that skips the bytes every key shares; b is scratch of a's length.
// It returns the sorted slice (a or b).
func radixByKey(a, b []uint64) []uint64 {
	if len(a) < 2 {
		return a
	}
	var cnt [4][256]int32
	for _, v := range a {
		cnt[0][uint8(v>>32)]++
		cnt[1][uint8(v>>40)]++
		cnt[2][uint8(v>>48)]++
		cnt[3][uint8(v>>56)]++
	}
	n := int32(len(a))
	for d := range 4 {
		c := &cnt[d]
		shift := 32 + 8*d
		if c[uint8(a[0]>>shift)] == n {
			continue // every key has this byte
		}
		var sum int32
		for i, k := range c {
			c[i], sum = sum, sum+k
		}
		// Two entries a step: both counters are read before either is
		// written (the second reads one more when both keys share the
		// digit), so runs of one digit wait on memory half as often.
		i := 0
		for ; i+1 < len(a); i += 2 {
			v0, v1 := a[i], a[i+1]
			x0, x1 := uint8(v0>>shift), uint8(v1>>shift)
			p0, p1 := c[x0], c[x1]
			if x0 == x1 {
				p1++
			}
			b[p0], b[p1] = v0, v1
			c[x0] = p0 + 1
			c[x1] = p1 + 1
		}
		if i < len(a) {
			v := a[i]
			x := uint8(v >> shift)
			b[c[x]] = v
			c[x]++
		}
		a, b = b, a
	}
	return a
}

// magPruneP is the keep probability of rank r in a row of cols entries.
// Whatever epsilon, density 1 keeps every entry and density 0 none, as
// mergekit's della_magprune (density 1 is its default: no pruning).
func magPruneP(rank, cols int, density, epsilon float64) float64 {
	if density >= 1 || density <= 0 {
		return math.Min(1, math.Max(0, density))
	}
	p := density
	if cols > 1 {
		p = density - epsilon + 2*epsilon*float64(rank)/float64(cols-1)
	}
	return math.Min(1, math.Max(0, p))
}

// l1Rescale scales x so that its L1 norm (l1Rows with row length cols)
// equals want (mergekit's rescale_norm: l1); a zero vector stays zero.
func l1Rescale(x []float32, want float64, cols int) {
	have := l1Rows(x, cols)
	if have == 0 {
		return
	}
	scaleBy(x, float32(want/have))
}

// l1Rows is the L1 norm of x summed row by row (rows of cols entries, the
// whole of x when cols <= 0): each row in order, then the rows in order, so
// a streaming merge that sums rows on several threads gets the same bits.
func l1Rows(x []float32, cols int) float64 {
	rl := cols
	if rl <= 0 || rl > len(x) {
		rl = len(x)
	}
	var s float64
	for off := 0; off < len(x); off += rl {
		s += l1(x[off:min(off+rl, len(x))])
	}
	return s
}

func l1(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return s
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
