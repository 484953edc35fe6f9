package merge

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// magPruneRowSort is DELLA's MagPrune on one row as first written: a stable
// sort by magnitude, then one draw per rank with p > 0, in rank order, from
// a generator walked step by step. The radix-ranked magPruner must match it.
func magPruneRowSort(row []float32, density, epsilon float64, rescale bool, r *rng) {
	cols := len(row)
	idx := make([]int, cols)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return abs32(row[idx[a]]) < abs32(row[idx[b]]) })
	for rank, i := range idx {
		p := magPruneP(rank, cols, density, epsilon)
		if p > 0 && r.float64() < p {
			if rescale {
				row[i] = float32(float64(row[i]) / p)
			}
		} else {
			row[i] = 0
		}
	}
}

// randomRows draws n values: coarse ones (few magnitudes, ties everywhere)
// or spread over many octaves (so every byte of the bits varies).
func randomRows(r *rng, n int, coarse bool) []float32 {
	x := make([]float32, n)
	for i := range x {
		if coarse {
			x[i] = float32(int(r.next()%7)-3) * 0.25
		} else {
			x[i] = float32((r.float64()*2 - 1) * math.Exp2(float64(int(r.next()%40)-30)))
		}
	}
	return x
}

func TestMagPruneAgainstSort(t *testing.T) {
	r := rng{s: 17}
	for trial := 0; trial < 300; trial++ {
		cols := 1 + int(r.next()%97)
		rows := 1 + int(r.next()%5)
		coarse := trial%2 == 0
		x := randomRows(&r, rows*cols, coarse)
		density := r.float64()
		eps := []float64{0, 0.15, 0.5, -0.2, 2}[trial%5]
		rescale := trial%3 != 0
		seed := r.next()
		if trial%4 == 1 { // signed zeros and infinities among the magnitudes
			for j := range x {
				switch r.next() % 16 {
				case 0:
					x[j] = float32(math.Copysign(0, -1))
				case 1:
					x[j] = float32(math.Inf(-1))
				}
			}
		}
		want := slices.Clone(x)
		w := rng{s: seed}
		for off := 0; off < len(want); off += cols {
			magPruneRowSort(want[off:off+cols], density, eps, rescale, &w)
		}
		for _, simd := range []bool{true, false} {
			useSIMD(simd)
			got := slices.Clone(x)
			g := rng{s: seed}
			magPrune(got, cols, density, eps, rescale, &g)
			useSIMD(true)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("trial %d (cols %d, density %v, eps %v, rescale %v, simd %v): [%d] = %v, sort-based %v", trial, cols, density, eps, rescale, simd, j, got[j], want[j])
				}
			}
			if g.s != w.s {
				t.Fatalf("trial %d: generator left at %x, sort-based at %x", trial, g.s, w.s)
			}
		}
	}
}

func TestKthLargestBitsAgainstSort(t *testing.T) {
	r := rng{s: 23}
	for trial := 0; trial < 400; trial++ {
		n := 1 + int(r.next()%1001)
		a := make([]uint32, n)
		for i := range a {
			if trial%2 == 0 {
				a[i] = uint32(r.next() % 5) // ties
			} else {
				a[i] = uint32(r.next())
			}
		}
		k := 1 + int(r.next()%uint64(n))
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		b := slices.Clone(a)
		if got, want := kthLargest(b, k), sorted[n-k]; got != want {
			t.Fatalf("trial %d: %d-th largest of %d = %d, want %d", trial, k, n, got, want)
		}
		// Partitioned there (bracket's second order statistic counts on
		// it): nothing larger before n-k, nothing smaller from it on.
		if slices.Max(b[:n-k+1]) != sorted[n-k] || slices.Min(b[n-k:]) != sorted[n-k] {
			t.Fatalf("trial %d: not partitioned at the %d-th largest", trial, k)
		}
	}
	// Adversarial for the pivot: all equal, sorted, reversed.
	for _, mk := range []func(i int) uint32{func(int) uint32 { return 7 }, func(i int) uint32 { return uint32(i) }, func(i int) uint32 { return uint32(1<<20 - i) }} {
		a := make([]uint32, 5000)
		for i := range a {
			a[i] = mk(i)
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		for _, k := range []int{1, 2, 2500, 4999, 5000} {
			if got := kthLargest(slices.Clone(a), k); got != sorted[5000-k] {
				t.Fatalf("%d-th largest = %d, want %d", k, got, sorted[5000-k])
			}
		}
	}
}

// checkKeepMask fails the test unless tk keeps of d, block by block of
// bp, what keepTopK kept in ref.
func checkKeepMask(t *testing.T, name string, bp blockPlan, tk *topK, d, ref []float32) {
	t.Helper()
	m := make([]uint32, len(d))
	for b := range bp.nBlocks {
		lo, hi := bp.span(b)
		tk.keepMask(m[lo:hi], d[lo:hi], b)
	}
	for j, v := range d {
		if got := math.Float32frombits(math.Float32bits(v) & m[j]); got != ref[j] {
			t.Fatalf("%s: [%d] = %v, keepTopK %v", name, j, got, ref[j])
		}
	}
}

// TestSelectBracketMiss: a bracket that does not hold the k-th largest is
// detected (the radix passes then decide), one that does gives keepTopK's
// selection, and the radix passes alone give it too.
func TestSelectBracketMiss(t *testing.T) {
	r := rng{s: 29}
	const n = 5003
	x := randomRows(&r, n, false)
	base := make([]float32, n)
	vs := []view{{dt: safetensors.F32, f32: base}, {dt: safetensors.F32, f32: x}}
	bp := blockPlan{n: n, rowLen: 1, rowsPer: 1000, nBlocks: (n + 999) / 1000} // several blocks
	const k = 1234
	ref := slices.Clone(x)
	keepTopK(ref, k)
	check := func(name string, tk *topK) { checkKeepMask(t, name, bp, tk, x, ref) }
	sorted := make([]uint32, n)
	for i, v := range x {
		sorted[i] = magBits(v)
	}
	slices.Sort(sorted)
	th := sorted[n-k]
	for _, br := range [][2]uint32{{th + 1, math.MaxUint32}, {0, th - 1}} {
		tk := &topK{k: k, collect: true, lo: br[0], hi: br[1], above: make([]int64, bp.nBlocks), cands: make([][]uint32, bp.nBlocks)}
		if err := collectPass(context.Background(), bp, vs, []*topK{tk}); err != nil {
			t.Fatal(err)
		}
		if fromCandidates(bp, tk) {
			t.Fatalf("bracket %v around %d: taken as holding the %d-th largest", br, th, k)
		}
	}
	tk := &topK{k: k, collect: true, lo: th - 3, hi: th + 3, above: make([]int64, bp.nBlocks), cands: make([][]uint32, bp.nBlocks)}
	if err := collectPass(context.Background(), bp, vs, []*topK{tk}); err != nil {
		t.Fatal(err)
	}
	if !fromCandidates(bp, tk) {
		t.Fatal("a bracket holding the threshold missed")
	}
	check("bracket", tk)
	collectOff = true
	defer func() { collectOff = false }()
	tk = &topK{k: k}
	if err := selectTopK(context.Background(), bp, vs, []*topK{tk}); err != nil {
		t.Fatal(err)
	}
	check("radix passes", tk)
}

// TestSelectHeavyTies: when many entries share a magnitude around the
// k-th largest (a fine-tune's bf16 deltas, a few ulps of the base), the
// bracket counts those values per block instead of keeping them, and the
// selection is keepTopK's whether the k-th largest is one of them or a
// value between them, in f32 and bf16, on one block or several.
func TestSelectHeavyTies(t *testing.T) {
	const n = 150_001 // above guessRange's smallest sampled tensor
	r := rng{s: 31}
	// A third of the magnitudes are 0.5, a fifth 0.5 + 2^-7 (its bf16
	// value but one above), a tenth 0.25; the rest spread over [0.2, 0.8].
	heavy := []float32{0.5, 0.5 + 1.0/128, 0.25}
	share := []float64{0.33, 0.2, 0.1}
	x := make([]float32, n)
	for i := range x {
		u, v := r.float64(), float32(0.2+0.6*r.float64())
		for j, p := range share {
			if u < p {
				v = heavy[j]
				break
			}
			u -= p
		}
		if r.next()&1 == 1 {
			v = -v
		}
		x[i] = v
	}
	// Three entries a float32 ulp below each heavy value and three above,
	// in its bin of the candidates' histogram.
	for j, h := range heavy {
		for i := range 3 {
			x[1000*j+2*i] = math.Nextafter32(h, 0)
			x[1000*j+2*i+1] = -math.Nextafter32(h, 1)
		}
	}
	xb := make([]uint16, n)
	for i, v := range x {
		xb[i] = safetensors.F32ToBF16(v)
	}
	xw := make([]float32, n) // the bf16 inputs widened: their deltas
	for i, v := range xb {
		xw[i] = math.Float32frombits(uint32(v) << 16)
	}
	var heavyTh, lightTh, bf16Heavy int
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
		vs := []view{{dt: dt, f32: make([]float32, n)}, {dt: dt, f32: x}}
		d := x
		if dt == safetensors.BF16 {
			vs = []view{{dt: dt, u16: make([]uint16, n)}, {dt: dt, u16: xb}}
			d = xw
		}
		for _, rowsPer := range []int{9001, n} {
			if testing.Short() && rowsPer == n {
				continue // several blocks are the harder case
			}
			bp := blockPlan{n: n, rowLen: 1, rowsPer: rowsPer, nBlocks: (n + rowsPer - 1) / rowsPer}
			// k at spread densities, and around each heavy group: above
			// it, at its ends, inside it, and below it (the bracket then
			// holds it though the k-th largest is not one of its values).
			var ks []int
			for _, density := range []float64{0.05, 0.2, 0.5, 0.7, 0.95} {
				ks = append(ks, int(density*n))
			}
			for _, h := range heavy {
				hb, above, eq := math.Float32bits(h), 0, 0
				for _, v := range d {
					above += b2i(magBits(v) > hb)
					eq += b2i(magBits(v) == hb)
				}
				ks = append(ks, above-300, above, above+1, above+eq/2, above+eq, above+eq+1, above+eq+300)
			}
			for _, k := range ks {
				name := fmt.Sprintf("%v, %d blocks, k %d", dt, bp.nBlocks, k)
				// The bracket's steps one by one: the radix passes,
				// which selectTopK takes when the bracket misses, must
				// not hide a miss.
				tk := &topK{k: k}
				if !guessRange(bp, vs, tk) {
					t.Fatalf("%s: no bracket", name)
				}
				heavyHere := slices.Clone(tk.heavy)
				if err := collectPass(context.Background(), bp, vs, []*topK{tk}); err != nil {
					t.Fatal(err)
				}
				if !fromCandidates(bp, tk) {
					t.Fatalf("%s: the bracket (heavy values %v) missed", name, heavyHere)
				}
				if len(heavyHere) > 0 {
					if dt == safetensors.BF16 {
						bf16Heavy++
					}
					if slices.Contains(heavyHere, tk.th) {
						heavyTh++
					} else {
						lightTh++
					}
				}
				ref := slices.Clone(d)
				keepTopK(ref, k)
				checkKeepMask(t, name, bp, tk, d, ref)
			}
		}
	}
	// The cases above must reach both answers of the heavy bracket.
	if heavyTh == 0 || lightTh == 0 || bf16Heavy == 0 {
		t.Fatalf("heavy brackets whose k-th largest was heavy: %d, not heavy: %d, in bf16: %d; want each > 0", heavyTh, lightTh, bf16Heavy)
	}
}

// TestMagPrunerPoolKeepsKeysApart: pruners given back and taken again
// prune as a new pruner of the key asked for, whichever pruner of another
// density, epsilon or rescaling was given back last.
func TestMagPrunerPoolKeepsKeysApart(t *testing.T) {
	r := rng{s: 41}
	const cols = 96
	row := deltaRow(&r, cols, 1)
	keys := []prunerKey{{cols, 0.3, 0.1, true}, {cols, 0.7, 0.1, true}, {cols, 0.3, 0.2, true}, {cols, 0.3, 0.1, false}, {cols + 1, 0.3, 0.1, true}}
	for round := range 3 {
		for i, k := range keys {
			want := append(slices.Clone(row), 0.125)[:k.cols]
			got := slices.Clone(want)
			newMagPruner(k.cols, k.density, k.epsilon, k.rescale).row(want, 99)
			m := getMagPruner(k.cols, k.density, k.epsilon, k.rescale)
			m.row(got, 99)
			putMagPruner(m)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("round %d, key %d %+v: entry %d %g, a new pruner's %g", round, i, k, j, got[j], want[j])
				}
			}
		}
	}
}

// TestSelectHeavyNearTheTop: a bracket that holds only a few percent of
// the tensor, most of it three shared magnitudes (the top of a fine-tune's
// few-ulp deltas, where breadcrumbs cuts its top gamma fraction), counts
// those values instead of keeping them as candidates (it kept them when it
// held less than an eighth of the sample), and the selection is still
// keepTopK's, at k inside each group and between groups.
func TestSelectHeavyNearTheTop(t *testing.T) {
	const n = 200_003
	r := rng{s: 37}
	// 1% of the magnitudes are 4, 1% are 3, 0.5% are 2; the rest spread
	// over [0, 1).
	x := make([]float32, n)
	for i := range x {
		u := r.float64()
		switch {
		case u < 0.01:
			x[i] = 4
		case u < 0.02:
			x[i] = -3
		case u < 0.025:
			x[i] = 2
		default:
			x[i] = float32(r.float64())
		}
	}
	count := func(v float32) (above, eq int) {
		for _, a := range x {
			above += b2i(abs32(a) > v)
			eq += b2i(abs32(a) == v)
		}
		return above, eq
	}
	var ks []int
	for _, v := range []float32{4, 3, 2} {
		above, eq := count(v)
		ks = append(ks, above+1, above+eq/2, above+eq)
	}
	ks = append(ks, ks[len(ks)-1]+50) // just below the groups, in the spread
	vs := []view{{dt: safetensors.F32, f32: make([]float32, n)}, {dt: safetensors.F32, f32: x}}
	bp := blockPlan{n: n, rowLen: 1, rowsPer: 20011, nBlocks: (n + 20010) / 20011}
	for _, k := range ks {
		name := fmt.Sprintf("k %d", k)
		tk := &topK{k: k}
		if !guessRange(bp, vs, tk) {
			t.Fatalf("%s: no bracket", name)
		}
		if err := collectPass(context.Background(), bp, vs, []*topK{tk}); err != nil {
			t.Fatal(err)
		}
		for _, c := range tk.cands {
			for _, a := range c {
				if a == magBits(4) || a == magBits(3) || a == magBits(2) {
					t.Fatalf("%s: a shared magnitude (%#x) kept as a candidate; heavy values %v", name, a, tk.heavy)
				}
			}
		}
		if !fromCandidates(bp, tk) {
			t.Fatalf("%s: the bracket missed", name)
		}
		ref := slices.Clone(x)
		keepTopK(ref, k)
		checkKeepMask(t, name, bp, tk, x, ref)
	}
}

// deltaRow draws n deltas of one kind for rankSort's tests: differences of
// bfloat16 weights (few significant bits), the same with exact zeros or
// with some keys of full precision (the low byte set: stragglers, up to
// a count around rankSort's limit; kind 7: one bit of the low 16 set in
// each), with many keys far below the largest (below the top digit's
// window; kind 6: differing in one byte),
// coarse values (ties), signed zeros, infinities and NaNs (kind 5).
func deltaRow(r *rng, n, kind int) []float32 {
	bf := func(v float64) float32 { return safetensors.BF16ToF32(safetensors.F32ToBF16(float32(v))) }
	x := make([]float32, n)
	odd := int(r.next() % (2*stragglers + 4)) // full-precision keys (kind 2)
	for j := range x {
		d := bf((r.float64()*2-1)*0.03) - bf((r.float64()*2-1)*0.03)
		switch kind {
		case 1: // exact zeros, and deltas of nearby weights
			switch r.next() % 4 {
			case 0:
				d = 0
			case 1:
				w := bf((r.float64()*2 - 1) * 0.03)
				d = bf(float64(w)*(1+(r.float64()-0.5)/32)) - w
			}
		case 2:
			if j < odd {
				d = float32((r.float64()*2 - 1) * 0.03)
			}
		case 3: // a tail spread over many octaves
			if r.next()%3 == 0 {
				d *= float32(math.Exp2(-float64(r.next() % 40)))
			}
		case 4:
			d = float32(int(r.next()%7)-3) * 0.25
		case 7: // up to about rankSort's limit of stragglers, one low bit set in each
			if j < odd {
				d = math.Float32frombits(math.Float32bits(d) | 1<<(r.next()%16))
			}
		case 6: // many keys below the window that differ in one byte only
			if r.next()%8 == 0 {
				d = math.Float32frombits(0x20000000 | uint32(r.next()%256)<<16 | uint32(r.next()%2)<<31)
			}
		case 5:
			switch r.next() % 8 {
			case 0:
				d = float32(math.Copysign(0, -1))
			case 1:
				d = float32(math.Inf(1 - 2*int(r.next()%2)))
			case 2:
				d = float32(math.NaN())
			case 3:
				d = -d
			}
		}
		x[j] = d
	}
	if kind == 2 || kind == 7 { // the stragglers anywhere in the row
		r.shuffle(x)
	}
	return x
}

func (r *rng) shuffle(x []float32) {
	for i := len(x) - 1; i > 0; i-- {
		j := int(r.next() % uint64(i+1))
		x[i], x[j] = x[j], x[i]
	}
}

// TestRankSortAgainstStableSort holds rankSort (through magPruner.row's
// keys and statistics) to a stable sort of the entries by their magnitude
// bits, on row lengths around its limits and every kind of deltaRow.
func TestRankSortAgainstStableSort(t *testing.T) {
	r := rng{s: 99}
	for _, cols := range []int{1, 2, 63, 64, 65, 97, 896, 1001, 4864} {
		m := newMagPruner(cols, 0.5, 0.1, true)
		for kind := range 8 {
			for trial := 0; trial < 8; trial++ {
				x := deltaRow(&r, cols, kind)
				want := make([]uint64, cols)
				for j, v := range x {
					b := math.Float32bits(v)
					want[j] = uint64(b&^signBit)<<32 | uint64(b&signBit) | uint64(j)
				}
				slices.SortStableFunc(want, func(a, b uint64) int { return cmp.Compare(a>>32, b>>32) })
				got := m.sortRow(x)
				if !slices.Equal(got, want) {
					t.Fatalf("cols %d kind %d trial %d: rankSort differs from a stable sort", cols, kind, trial)
				}
			}
		}
	}
}

// TestMagPruneWideRows: magPrune on rows of deltaRow kinds (NaN aside,
// which the sort-based definition cannot order) matches the sort-based
// definition, on the SIMD and Go per-rank steps, with rankSort and with
// radixByKey alone.
func TestMagPruneWideRows(t *testing.T) {
	r := rng{s: 7}
	for _, cols := range []int{65, 896, 1003} {
		for _, kind := range []int{0, 1, 2, 3, 4, 6, 7} {
			rows := 3
			var x []float32
			for range rows {
				x = append(x, deltaRow(&r, cols, kind)...)
			}
			density, eps, seed := 0.2+0.6*r.float64(), []float64{0.1, 0.3, 0.6}[kind%3], r.next()
			rescale := kind%2 == 0
			want := slices.Clone(x)
			w := rng{s: seed}
			for off := 0; off < len(want); off += cols {
				magPruneRowSort(want[off:off+cols], density, eps, rescale, &w)
			}
			for _, simd := range []bool{true, false} {
				for _, off := range []bool{false, true} {
					useSIMD(simd)
					rankSortOff = off
					got := slices.Clone(x)
					g := rng{s: seed}
					magPrune(got, cols, density, eps, rescale, &g)
					useSIMD(true)
					rankSortOff = false
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("cols %d kind %d (simd %v, radix only %v): [%d] = %v, sort-based %v", cols, kind, simd, off, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestSortRowBF16Paths: sortRowBF16's assembly loop builds the same entries
// and statistics as its Go loop, and sorts them as sortRow sorts the
// widened deltas, on odd lengths and every deltaRow kind (NaNs, infinities
// and signed zeros among the weights too).
func TestSortRowBF16Paths(t *testing.T) {
	r := rng{s: 3}
	for _, n := range []int{1, 15, 16, 17, 63, 64, 100, 896, 1001} {
		for kind := range 8 {
			d := deltaRow(&r, n, kind)
			x, base := make([]uint16, n), make([]float32, n)
			for j := range x {
				w := safetensors.F32ToBF16(float32((r.float64()*2 - 1) * 0.03))
				switch r.next() % 32 {
				case 0:
					w = 0x7fc1 // NaN
				case 1:
					w = 0xff80 // -Inf
				case 2:
					w = 0x8000 // -0
				case 3:
					w = 0x0003 // subnormal
				}
				x[j] = w
				base[j] = safetensors.BF16ToF32(w) - d[j] // x - base near d
			}
			wide := make([]float32, n)
			for j := range wide {
				wide[j] = math.Float32frombits(uint32(x[j])<<16) - base[j]
			}
			ref := newMagPruner(n, 0.5, 0.1, true)
			useSIMD(false)
			want := slices.Clone(ref.sortRow(wide))
			ref.st.list(ref.keys(wide), ref.b[:n])
			useSIMD(true)
			for _, simd := range []bool{true, false} {
				useSIMD(simd)
				m := newMagPruner(n, 0.5, 0.1, true)
				got := m.sortRowBF16(x, base)
				if !slices.Equal(got, want) {
					t.Fatalf("n %d kind %d simd %v: sorted entries differ from sortRow's", n, kind, simd)
				}
				// The lists, built whether the row needs them or not.
				m.st.list(m.keysBF16(x, base), m.b[:n])
				useSIMD(true)
				st, rs := m.st, ref.st
				if st.max != rs.max || st.min != rs.min || st.low8 != rs.low8 || st.low16 != rs.low16 || st.nz != rs.nz ||
					st.n8 != st.low8 || st.n16 != st.low16 || !slices.Equal(m.b[:st.nz], ref.b[:rs.nz]) ||
					!slices.Equal(st.l[:n-int(st.nz)], rs.l[:n-int(rs.nz)]) ||
					!slices.Equal(st.s8[:st.low8], rs.s8[:rs.low8]) || !slices.Equal(st.s16[:st.low16], rs.s16[:rs.low16]) {
					t.Fatalf("n %d kind %d simd %v: statistics %x %x %d %d, sortRow's %x %x %d %d", n, kind, simd, st.max, st.min, st.low8, st.low16, rs.max, rs.min, rs.low8, rs.low16)
				}
			}
		}
	}
}

// TestStreamDellaBF16AgainstSort: DELLA and DELLA-linear streamed over
// bf16 tensors (the deltas computed as the rows' keys are built, ranked by
// rankSort's counting passes) give the bits of the sort-based definition
// (magPruneRowSort on each row of the float32 deltas, then combine), with
// the assembly and without. The inputs are like the benchmark's: models of
// independent weights (most deltas have bits set below the bfloat16
// mantissa, so rankSort takes its pass on bits 8-15), and a model close to
// the base (few such deltas, its other path, where they are sorted within
// their bins); rows of 896 and 4864.
func TestStreamDellaBF16AgainstSort(t *testing.T) {
	const name = "model.layers.0.mlp.down_proj.weight"
	for _, shape := range [][2]int{{9, 896}, {3, 4864}} {
		rows, cols := shape[0], shape[1]
		n := rows * cols
		r := rng{s: uint64(cols)}
		w := func() float32 { return float32((r.float64()*2 - 1) * 0.03) }
		bf := func(x []float32) (Input, []float32) {
			bt, err := safetensors.Convert(f32t(name, []int{rows, cols}, x...), safetensors.BF16)
			if err != nil {
				t.Fatal(err)
			}
			wide, _ := safetensors.ToF32(bt)
			return mem("m", bt), slices.Clone(wide)
		}
		xb, xa, xc := make([]float32, n), make([]float32, n), make([]float32, n)
		for j := range xb {
			xb[j], xa[j] = w(), w()
			xc[j] = xb[j] * (1 + w()/8) // close to the base
		}
		for off := 0; off < n; off += cols {
			// A delta with bits set below the bfloat16 mantissa (4 -
			// 1.0078125) after two in its bin without (3.984375 - 1):
			// it ranks above them.
			for k, p := range [][2]float32{{1.0078125, 4}, {1, 3.984375}, {1, 3.984375}} {
				xb[off+10*k+10], xc[off+10*k+10] = p[0], p[1]
			}
		}
		base, bw := bf(xb)
		a, aw := bf(xa)
		c, cw := bf(xc)
		for _, method := range []string{"della", "della_linear"} {
			m := methods[method]
			ws, dens := []float64{0.6, 0.5}, []float64{0.5, 0.3}
			a.Params = Params{"weight": Scalar(ws[0]), "density": Scalar(dens[0])}
			c.Params = Params{"weight": Scalar(ws[1]), "density": Scalar(dens[1])}
			s := &Spec{Method: method, Base: &base, Models: []Input{a, c}, Seed: 11, OutDType: safetensors.F32}
			// The definition: each row of each delta pruned by a stable
			// sort of its magnitudes, the draws walked in rank order.
			ds := make([][]float32, 2)
			for i, x := range [][]float32{aw, cw} {
				d := make([]float32, n)
				for j := range d {
					d[j] = x[j] - bw[j]
				}
				g := rng{s: mix(11^hashName(name), uint64(i), 0)}
				for off := 0; off < n; off += cols {
					magPruneRowSort(d[off:off+cols], dens[i], 0.15, m.rescale, &g)
				}
				ds[i] = d
			}
			want := make([]float32, n)
			combine(want, bw, ds, ws, m.consensus, m.normalize, 1)
			for _, simd := range []bool{true, false} {
				useSIMD(simd)
				out, err := s.MergeToMemory(context.Background())
				useSIMD(true)
				if err != nil {
					t.Fatal(err)
				}
				got := values(t, out, name)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%s cols %d simd %v: [%d] = %v, sort-based %v", method, cols, simd, j, got[j], want[j])
					}
				}
			}
		}
	}
}
