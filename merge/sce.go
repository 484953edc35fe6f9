package merge

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mocolab/moco/safetensors"
)

// streamSCE merges a tensor with sce as SCE does, streaming its inputs (ts:
// the base first) block by block. The variances across the models are
// computed again in each pass and never stored. With select_topk below 1
// their top-k is selected as keepTopK selects it (ties in index order):
// by the sampled bracket of selectTopK in one pass (sceBracket), or when
// it misses by radix passes (sceSelect). Then one pass sums each model's
// squared kept task vector (per block, added in block order) and one
// writes the output chunk by chunk. Whole tensors widened to float32 took
// 28 s and 4.3 GB to merge two 0.5B models.
func (s *Spec) streamSCE(ctx context.Context, p *planned, ts []*safetensors.Tensor, n int) (*safetensors.Tensor, error) {
	vs, err := views(p, ts)
	if err != nil {
		return nil, err
	}
	nm := len(vs) - 1
	frac := s.value(p, -1, "select_topk", 1)
	bp := blockPlan{n: n, rowLen: 1, rowsPer: chunk, nBlocks: (n + chunk - 1) / chunk}
	bp.sc = new(scratchSet)
	defer bp.sc.release()
	inPlace := nm == 2 && sceInPlace(vs)
	var sel *topK // nil: every entry kept
	if frac < 1 {
		if sel, err = sceSelect(ctx, bp, vs, frac, inPlace); err != nil {
			return nil, err
		}
	}
	// Each model's weight: its mean squared kept task vector. With a
	// selection (in place), this pass keeps its masks, packed (n/8
	// bytes), for the output's pass, which then computes no variances.
	var bits []uint64
	if inPlace && sel != nil && sceOutBF16BitsFast != nil {
		bits = make([]uint64, (n+63)/64)
	}
	sums := make([]float64, bp.nBlocks*nm)
	// A block that keeps exactly the entries at or above a bound (all but
	// one block at most) takes one kernel for its variances, mask and
	// squares (sceWeighBF16), unless zero variances must be left out.
	weigh := bits != nil && sceWeighBF16Fast != nil && !sceKeepsZeros(sel)
	err = sceEach(ctx, bp, vs, inPlace, func() (func(b *sceBlock, lo int), func()) {
		v := bp.sc.floats(1, bp.size())[0]
		mask := u32s(bp.sc.floats(1, bp.size())[0])
		return func(b *sceBlock, lo int) {
			k := lo / chunk
			if weigh {
				if bound, ok := sel.bound(k); ok {
					sceWeighBF16(sums[k*nm:(k+1)*nm], bits[lo/64:], b.u[0], b.u[1], b.u[2], bound)
					return
				}
			}
			m := sceMask(mask, v, b, sel, k)
			b.squares(sums[k*nm:(k+1)*nm], m)
			if bits != nil {
				packMask(bits[lo/64:], m) // blocks start on whole words
			}
		}, nil
	})
	if err != nil {
		return nil, err
	}
	w := sceWeights(sums, nm, n)
	if inPlace {
		return streamChunks(p, n, func(sc *scratchSet) func(dst []float32, lo, hi int) {
			v := sc.floats(1, chunk)[0]
			mask := u32s(sc.floats(1, chunk)[0])
			var b sceBlock
			raws := sc.blockBufs(vs, chunk)
			return func(dst []float32, lo, hi int) {
				b.slice(vs, raws, lo, hi)
				if bits != nil {
					sceOut2BF16Bits(dst, b.u[0], b.u[1], b.u[2], bits[lo/64:], w[0], w[1])
					return
				}
				m := sceMask(mask, v, &b, sel, lo/chunk)
				sceOut2BF16(dst, b.u[0], b.u[1], b.u[2], m, w[0], w[1])
			}
		})
	}
	return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, k int, ds [][]float32) {
		m := sceMask(u32s(ds[1]), ds[0], &sceBlock{xs: xs}, sel, k)
		base, ms := xs[0], xs[1:]
		// The erasure has no branch: the signs agree at random, and a
		// branch on them mispredicted.
		if nm == 2 {
			sceOut2(dst, base, ms[0], ms[1], m, w[0], w[1])
			return
		}
		tv := append([][]float32{ds[0]}, ds[2:1+nm]...) // the variances are spent
		for i, x := range ms {
			for j := range dst {
				tv[i][j] = math.Float32frombits(math.Float32bits(x[j]-base[j]) & m[j])
			}
		}
		for j := range dst {
			var e float64
			for i := range tv {
				e += float64(tv[i][j])
			}
			up, down := b2i(e >= 0), b2i(e < 0) // neither for a NaN
			var num, den float64
			for i := range tv {
				t := float64(tv[i][j])
				// 1 when t has e's sign: adding t*w*0 leaves the sums as
				// the branch left them.
				a := float64(up&b2i(t > 0) | down&b2i(t < 0))
				num += t * w[i] * a
				den += w[i] * a
			}
			dst[j] = float32(float64(base[j]) + num/max(den, 1e-6))
		}
	})
}

// sceSquares sets s[i] to the sum of the squares of model ms[i]'s kept
// task vector from base (the entries m keeps), in float64, in eight
// lanes: entry j's square goes to lane j%8, each lane adds in order, and
// the lanes are added as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)). One
// sequential sum was a chain of dependent additions through every entry,
// a quarter of an sce merge's CPU time. Each square of a float32 is exact
// in float64, so the lanes' sums depend only on the order of the
// additions, which the assembly keeps.
func sceSquares(s []float64, base []float32, ms [][]float32, m []uint32) {
	for i := 0; i < len(ms); i += 2 { // in pairs; an odd last model is its own pair
		x0, x1 := ms[i][:len(base)], ms[min(i+1, len(ms)-1)][:len(base)]
		var l [2][8]float64
		j0 := 0
		if squaresFast != nil {
			j0 = squaresFast(&l, base, x0, x1, m)
		}
		squaresGo(&l[0], base, x0, m, j0)
		s[i] = laneSum(&l[0])
		if i+1 < len(ms) {
			squaresGo(&l[1], base, x1, m, j0)
			s[i+1] = laneSum(&l[1])
		}
	}
}

// squaresFast, when set (assembly), is squaresGo for two models from
// entry 0, over the largest multiple of 8 entries, which it returns.
var squaresFast func(l *[2][8]float64, base, x0, x1 []float32, m []uint32) int

// squaresGo adds the squares of x's kept task vector from entry j0 on to
// the lanes l.
func squaresGo(l *[8]float64, base, x []float32, m []uint32, j0 int) {
	x, m = x[:len(base)], m[:len(base)]
	for j := j0; j < len(base); j++ {
		t := float64(math.Float32frombits(math.Float32bits(x[j]-base[j]) & m[j]))
		l[j%8] += t * t
	}
}

// squaresBF16Fast and sceOutBF16Fast, when set (assembly), are
// squaresFast and sceOutFast on bfloat16 inputs, each widened as it is
// loaded. With them (and sceVarBF16Fast), streamSCE reads two bfloat16
// models and their base in place: widening each block into float32
// scratch first took 15% of an sce merge's CPU, and the scratch (three
// times 256 KB) did not fit in L2.
var (
	squaresBF16Fast func(l *[2][8]float64, base, x0, x1 []uint16, m []uint32) int
	sceOutBF16Fast  func(dst []float32, base, x0, x1 []uint16, mask []uint32, w0, w1 float64) int
)

// sceSquaresBF16 is sceSquares for two bfloat16 models and base, read in
// place by the assembly; the entries past its last multiple of 8 are
// widened for the Go loop.
func sceSquaresBF16(s []float64, base, x0, x1 []uint16, m []uint32) {
	var l [2][8]float64
	j0 := squaresBF16Fast(&l, base, x0, x1, m)
	var t bf16Tail
	b, y0, y1 := t.widen(base, x0, x1, j0)
	// j0 is a multiple of 8: the tail's entry j goes to lane j.
	squaresGo(&l[0], b, y0, m[j0:], 0)
	squaresGo(&l[1], b, y1, m[j0:], 0)
	s[0], s[1] = laneSum(&l[0]), laneSum(&l[1])
}

// sceOut2BF16 is sceOut2 on bfloat16 models and base, read in place by
// the assembly; the entries past its last multiple of 4 (AVX2) or 8
// (AVX-512) are widened for the Go loop.
func sceOut2BF16(dst []float32, base, x0, x1 []uint16, m []uint32, w0, w1 float64) {
	j0 := sceOutBF16Fast(dst, base, x0, x1, m, w0, w1)
	var t bf16Tail
	b, y0, y1 := t.widen(base[:len(dst)], x0, x1, j0)
	sceOut2(dst[j0:], b, y0, y1, m[j0:], w0, w1)
}

// sceWeighBF16Fast, when set (assembly), is sceWeighBF16 over the
// largest multiple of 16 entries (AVX-512), which it returns:
// the lanes of the squares added to l, the mask's bits stored (its last
// word's bits past those entries are not).
var sceWeighBF16Fast func(l *[2][8]float64, bits []uint64, base, x0, x1 []uint16, bound uint32) int

// sceWeighBF16 is sce's weights pass on a block of two bfloat16 models
// and their base read in place, where the block keeps exactly the
// entries whose variance's magnitude bits are at least bound (sceMask
// with a selection whose bound the block has, and which needs no zero
// variances left out): s as sceSquaresBF16 sets it, and bits as packMask
// packs the mask. In one kernel, not four (the variances, the
// comparison, the squares and the packing), the inputs are read once
// and neither the variances nor the mask are written out.
func sceWeighBF16(s []float64, bits []uint64, base, x0, x1 []uint16, bound uint32) {
	var l [2][8]float64
	j0 := sceWeighBF16Fast(&l, bits, base, x0, x1, bound)
	n := len(base)
	if r := j0 % 64; r != 0 || j0 < n {
		bits[j0/64] &= 1<<r - 1 // the bits from j0 on, none of them stored
	}
	if j0 < n { // fewer than 16 entries, within the word of j0
		var t bf16Tail
		b, y0, y1 := t.widen(base, x0, x1, j0)
		var v [len(t[0])]float32
		var m [len(t[0])]uint32
		sceVariance(v[:len(b)], [][]float32{b, y0, y1})
		(&topK{th: bound}).keepMask(m[:len(b)], v[:len(b)], 0) // at least bound
		for j := range b {
			bits[j0/64] |= uint64(m[j]&1) << ((j0 + j) % 64)
		}
		// j0 is a multiple of 8: the tail's entry j goes to lane j.
		squaresGo(&l[0], b, y0, m[:len(b)], 0)
		squaresGo(&l[1], b, y1, m[:len(b)], 0)
	}
	s[0], s[1] = laneSum(&l[0]), laneSum(&l[1])
}

// packMask packs the mask m (entries all ones or zero) into bits, entry
// j to bit j%64 of word j/64; the last word's bits past m are zero.
func packMask(bits []uint64, m []uint32) {
	j0 := 0
	if packMaskFast != nil {
		j0 = packMaskFast(bits, m)
	}
	for j := j0; j < len(m); j++ {
		if j%64 == 0 {
			bits[j/64] = 0
		}
		bits[j/64] |= uint64(m[j]&1) << (j % 64)
	}
}

// packMaskFast and sceOutBF16BitsFast, when set (assembly), are packMask
// over the largest multiple of 64 entries, and sceOutBF16Fast with the
// mask packed (packMask's bits); each returns the entries it did.
var (
	packMaskFast       func(bits []uint64, m []uint32) int
	sceOutBF16BitsFast func(dst []float32, base, x0, x1 []uint16, bits []uint64, w0, w1 float64) int
)

// sceOut2BF16Bits is sceOut2BF16 with the mask packed (packMask's bits,
// from the block's first entry).
func sceOut2BF16Bits(dst []float32, base, x0, x1 []uint16, bits []uint64, w0, w1 float64) {
	j0 := sceOutBF16BitsFast(dst, base, x0, x1, bits, w0, w1)
	var t bf16Tail
	b, y0, y1 := t.widen(base[:len(dst)], x0, x1, j0)
	var m [len(t[0])]uint32
	for j := range b {
		m[j] = -uint32(bits[(j0+j)/64] >> ((j0 + j) % 64) & 1)
	}
	sceOut2(dst[j0:], b, y0, y1, m[:len(b)], w0, w1)
}

// bf16Tail holds the widened tails of a base and two models that the Go
// loops take after an assembly kernel's prefix (of a multiple of 4, 8 or
// 16 entries).
type bf16Tail [3][16]float32

// widen widens entries j0 to len(base) of base, x0 and x1 into t.
func (t *bf16Tail) widen(base, x0, x1 []uint16, j0 int) (b, y0, y1 []float32) {
	n := len(base) - j0
	for j := range n {
		t[0][j], t[1][j], t[2][j] = safetensors.BF16ToF32(base[j0+j]), safetensors.BF16ToF32(x0[j0+j]), safetensors.BF16ToF32(x1[j0+j])
	}
	return t[0][:n], t[1][:n], t[2][:n]
}

// laneSum adds sceSquares' lanes.
func laneSum(l *[8]float64) float64 {
	return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

// sceBlock is a block of sce's inputs, the base first: widened to
// float32 (xs), or two bfloat16 models and their base read in place (u).
type sceBlock struct {
	xs [][]float32
	u  [3][]uint16
}

// sceInPlaceRuns counts sceEach's passes in place (for the tests).
var sceInPlaceRuns atomic.Int64

// sceInPlace reports whether sce reads vs (two models and their base)
// in place: all bfloat16, with the assembly that reads them.
func sceInPlace(vs []view) bool {
	for _, v := range vs {
		if v.dt != safetensors.BF16 {
			return false
		}
	}
	return len(vs) == 3 && sceVarBF16Fast != nil && squaresBF16Fast != nil && sceOutBF16Fast != nil
}

// slice sets b to entries [lo, hi) of vs in place, or read into raws
// (view.block).
func (b *sceBlock) slice(vs []view, raws [][]uint16, lo, hi int) {
	b.xs = nil
	for i := range b.u {
		b.u[i] = vs[i].block(raws[i], lo, hi)
	}
}

func (b *sceBlock) len() int {
	if b.xs != nil {
		return len(b.xs[0])
	}
	return len(b.u[0])
}

// variance writes the block's variances to v (sceVariance).
func (b *sceBlock) variance(v []float32) {
	if b.xs != nil {
		sceVariance(v, b.xs)
		return
	}
	sceVarianceBF16(v, b.u[0], b.u[1], b.u[2])
}

// squares sets s to the block's sums of squares (sceSquares).
func (b *sceBlock) squares(s []float64, m []uint32) {
	if b.xs != nil {
		sceSquares(s, b.xs[0], b.xs[1:], m)
		return
	}
	sceSquaresBF16(s, b.u[0], b.u[1], b.u[2], m)
}

// sceEach runs the functions mk makes (one per worker) on the blocks of
// bp: widened (eachBlock) or in place.
func sceEach(ctx context.Context, bp blockPlan, vs []view, inPlace bool, mk func() (f func(b *sceBlock, lo int), finish func())) error {
	if !inPlace {
		return eachBlock(ctx, bp, vs, func() (func(xs [][]float32, lo int), func()) {
			f, finish := mk()
			var b sceBlock
			return func(xs [][]float32, lo int) {
				b.xs = xs
				f(&b, lo)
			}, finish
		})
	}
	sceInPlaceRuns.Add(1)
	return bp.run(ctx, func() (func(k, lo, hi int), func()) {
		f, finish := mk()
		var b sceBlock
		raws := bp.sc.blockBufs(vs, bp.size())
		return func(_, lo, hi int) {
			b.slice(vs, raws, lo, hi)
			f(&b, lo)
		}, finish
	})
}

// sceWeights returns the models' weights from their blocks' sums of
// squares: the means over the n entries, normalized.
func sceWeights(sums []float64, nm, n int) []float64 {
	w := make([]float64, nm)
	for k := range len(sums) / nm {
		for i := range w {
			w[i] += sums[k*nm+i]
		}
	}
	for i := range w {
		w[i] /= float64(n)
	}
	sceNormalize(w)
	return w
}

// sceOut2 is streamSCE's output loop for two models, unrolled: dst from
// the base, the models x0 and x1, the mask m of the kept entries and the
// models' weights.
func sceOut2(dst, base, x0, x1 []float32, m []uint32, w0, w1 float64) {
	x0, x1, base, m = x0[:len(dst)], x1[:len(dst)], base[:len(dst)], m[:len(dst)]
	j0 := 0
	if sceOutFast != nil {
		j0 = sceOutFast(dst, base, x0, x1, m, w0, w1)
	}
	for j := j0; j < len(dst); j++ {
		t0 := float64(math.Float32frombits(math.Float32bits(x0[j]-base[j]) & m[j]))
		t1 := float64(math.Float32frombits(math.Float32bits(x1[j]-base[j]) & m[j]))
		up := b2i(t0+t1 >= 0)
		down := b2i(t0+t1 < 0) // neither for a NaN
		a0 := -uint64(up&b2i(t0 > 0) | down&b2i(t0 < 0))
		a1 := -uint64(up&b2i(t1 > 0) | down&b2i(t1 < 0))
		// The kept terms added to zero, as SCE adds them.
		var num, den float64
		num += math.Float64frombits(math.Float64bits(t0*w0) & a0)
		num += math.Float64frombits(math.Float64bits(t1*w1) & a1)
		den += math.Float64frombits(math.Float64bits(w0) & a0)
		den += math.Float64frombits(math.Float64bits(w1) & a1)
		dst[j] = float32(float64(base[j]) + num/max(den, 1e-6))
	}
}

// sceOutFast, when set (assembly), is streamSCE's output loop for two
// models over the largest multiple of 4 entries, which it returns.
var sceOutFast func(dst, base, x0, x1 []float32, mask []uint32, w0, w1 float64) int

// u32s is the memory of x as uint32s.
func u32s(x []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
}

// collectBitsFast, when set (assembly), is collectBits over the largest
// multiple of 8 entries n, which it returns with c, above and nz; buf
// holds at least n+8 entries.
var collectBitsFast func(buf []uint32, v []float32, lo, hi uint32) (n, c int, above, nz int64)

// collectBits writes the bits of the entries of v that lie in [lo, hi]
// (lo <= hi, compared as unsigned integers: the variances are never
// negative) to buf (of at least len(v)+8), in order, and returns their
// number, the number above hi and the number not zero. It has no branch
// on the data.
func collectBits(buf []uint32, v []float32, lo, hi uint32) (int, int64, int64) {
	j0, c, above, nz := 0, 0, int64(0), int64(0)
	if collectBitsFast != nil {
		j0, c, above, nz = collectBitsFast(buf, v, lo, hi)
	}
	w, top := uint64(hi-lo), uint64(hi)
	for _, x := range v[j0:] {
		a := math.Float32bits(x)
		buf[c] = a
		c += int((uint64(a-lo) - w - 1) >> 63)  // in [lo, hi]
		above += int64((top - uint64(a)) >> 63) // above hi
		nz += int64(b2i(a != 0))
	}
	return c, above, nz
}

// collectBitsHeavy is collectBits that counts the entries equal to each
// of the heavy values into eq and leaves them out of buf (filterHeavy).
func collectBitsHeavy(buf []uint32, v []float32, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (int, int64, int64) {
	j0, c, above, nz := 0, 0, int64(0), int64(0)
	if len(heavy) > 0 && collectBitsHeavyFast != nil {
		j0, c, above, nz = collectBitsHeavyFast(buf, v, lo, hi, heavy, eq)
	}
	tc, ta, tn := collectBits(buf[c:], v[j0:], lo, hi)
	return c + len(filterHeavy(buf[c:c+tc], heavy, eq)), above + ta, nz + tn
}

// collectBitsHeavyFast, when set (assembly), is collectBitsHeavy over the
// largest multiple of 8 entries, which it returns with c, above and nz;
// heavy holds one to four values, and buf at least 8 entries more.
var collectBitsHeavyFast func(buf []uint32, v []float32, lo, hi uint32, heavy []uint32, eq *[maxHeavy]int32) (n, c int, above, nz int64)

// sceVarFast, when set (assembly), is sceVariance's loop for two models
// over a prefix of v (a multiple of 8 entries), exactly as the loop
// computes it, and returns its length.
var sceVarFast func(v, base, x0, x1 []float32) int

// sceVariance writes to v the variance across the models xs[1:] of their
// task vectors from xs[0], as SCE computes each (float64, then float32).
func sceVariance(v []float32, xs [][]float32) {
	base, ms := xs[0], xs[1:]
	nm := float64(len(ms))
	if len(ms) == 2 { // the loops below, unrolled; x/2 is x*0.5, exactly
		x0, x1, base := ms[0][:len(v)], ms[1][:len(v)], base[:len(v)]
		j0 := 0
		if sceVarFast != nil {
			j0 = sceVarFast(v, base, x0, x1)
		}
		for j := j0; j < len(v); j++ {
			b := float64(base[j])
			m := ((float64(x0[j]) - b) + (float64(x1[j]) - b)) * 0.5
			e0, e1 := float64(x0[j])-b-m, float64(x1[j])-b-m
			v[j] = float32((e0*e0 + e1*e1) * 0.5)
		}
		return
	}
	for j := range v {
		b := float64(base[j])
		var m float64
		for _, x := range ms {
			m += float64(x[j]) - b
		}
		m /= nm
		var s float64
		for _, x := range ms {
			e := float64(x[j]) - b - m
			s += e * e
		}
		v[j] = float32(s / nm)
	}
}

// sceVarFast's bfloat16 twin, when set (assembly): sceVariance for two
// bfloat16 models and base read in place, over the largest multiple of 8
// (AVX2) or 16 (AVX-512) entries, which it returns.
var sceVarBF16Fast func(v []float32, base, x0, x1 []uint16) int

// sceVarianceBF16 is sceVariance for two bfloat16 models and base, read
// in place by the assembly; the entries past its last multiple of 8 or 16
// are widened for the Go loop.
func sceVarianceBF16(v []float32, base, x0, x1 []uint16) {
	j0 := sceVarBF16Fast(v, base, x0, x1)
	var t bf16Tail
	b, y0, y1 := t.widen(base[:len(v)], x0, x1, j0)
	sceVariance(v[j0:], [][]float32{b, y0, y1})
}

// allKept is a mask of chunk entries that keeps them all, read only.
var allKept = sync.OnceValue(func() []uint32 {
	m := make([]uint32, chunk)
	for j := range m {
		m[j] = ^uint32(0)
	}
	return m
})

// sceMask returns the mask (all ones: kept) of the entries of block k,
// b, in mask (or, when every entry is kept, in a
// shared mask that must not be written); v is scratch for their
// variances.
func sceMask(mask []uint32, v []float32, b *sceBlock, sel *topK, k int) []uint32 {
	n := b.len()
	if sel == nil {
		return allKept()[:n] // blocks hold chunk entries at most; filling mask took 15% of an sce merge
	}
	mask = mask[:n]
	v = v[:n]
	b.variance(v)
	sel.keepMask(mask, v, k)
	if sceKeepsZeros(sel) {
		for j, x := range v {
			mask[j] &= uint32(int32(-int32(b2i(x != 0))))
		}
	}
	return mask
}

// sceKeepsZeros reports whether selection sel can keep a zero variance,
// which sceMask then leaves out: a zero variance counts as not kept, even
// among the k largest. A selection that keeps the entries at or above a
// threshold of non-zero magnitude keeps no zero, so only all, or a
// threshold of zero, can: with select_topk below 1, k is below the number
// of non-zero variances and the k-th largest is not zero, so the pass
// that leaves them out (9.7% of such a merge) no longer runs.
func sceKeepsZeros(sel *topK) bool {
	return sel.all || (!sel.none && sel.th == 0)
}

// sceSelect returns the selection of keepTopK(variances,
// int(nonzero*frac)) over the blocks of bp: by sceBracket, or when that
// misses by the radix passes of selectTopK on the variances (one counts
// the non-zero ones and the upper 16 bits of all, a second the lower 16
// bits of those in the k-th largest's bin, a third, when only some of
// the ties at that value are kept, the ties per block).
func sceSelect(ctx context.Context, bp blockPlan, vs []view, frac float64, inPlace bool) (*topK, error) {
	sel := &topK{}
	if frac <= 0 {
		sel.none = true
		return sel, nil
	}
	if t, ok, err := sceBracket(ctx, bp, vs, frac, inPlace); ok || err != nil {
		return t, err
	}
	// pass counts the variances whose bits a have a&match == want into a
	// histogram of 1<<16 bins, bin a>>shift (16 bits), and returns it, the
	// number of non-zero variances, and with count >= 0 each block's
	// entries in bin count.
	pass := func(match, want uint32, shift uint, count int) ([]int64, int64, []int32, error) {
		hist := make([]int64, 1<<16)
		var nonzero int64
		var per []int32
		if count >= 0 {
			per = make([]int32, bp.nBlocks)
		}
		var mu sync.Mutex
		err := sceEach(ctx, bp, vs, inPlace, func() (func(b *sceBlock, lo int), func()) {
			v := bp.sc.floats(1, bp.size())[0]
			local := make([]uint32, 1<<16)
			var nz int64
			return func(b *sceBlock, lo int) {
					v := v[:b.len()]
					b.variance(v)
					var c int32
					for _, x := range v {
						a := math.Float32bits(x)
						nz += int64(b2i(a != 0))
						if a&match == want {
							b := int(a>>shift) & 0xffff
							local[b]++
							c += int32(b2i(b == count))
						}
					}
					if per != nil {
						per[lo/chunk] = c
					}
				}, func() {
					mu.Lock()
					defer mu.Unlock()
					nonzero += nz
					for b, c := range local {
						hist[b] += int64(c)
					}
				}
		})
		return hist, nonzero, per, err
	}
	// Pass 1: the upper 16 bits.
	h1, nonzero, _, err := pass(0, 0, 16, -1)
	if err != nil {
		return nil, err
	}
	k := int64(float64(nonzero) * frac)
	sel.k = int(k)
	switch {
	case k >= int64(bp.n):
		sel.all = true
		return sel, nil
	case k <= 0:
		sel.none = true
		return sel, nil
	}
	hi, above := kthBin(h1, k, 0)
	// Pass 2: the lower 16 bits within the bin of the k-th largest.
	h2, _, _, err := pass(0xffff0000, uint32(hi)<<16, 0, -1)
	if err != nil {
		return nil, err
	}
	lo, greater := kthBin(h2, k, above)
	sel.th = uint32(hi)<<16 | uint32(lo)
	sel.eq, sel.need = h2[lo], k-greater
	if sel.need < sel.eq {
		// Pass 3: the ties at the threshold per block.
		_, _, per, err := pass(^uint32(0), sel.th, 0, int(sel.th&0xffff))
		if err != nil {
			return nil, err
		}
		sel.quota, sel.eqs = make([]int32, bp.nBlocks), per
		left := sel.need
		for b, c := range per {
			q := min(int64(c), left)
			sel.quota[b], left = int32(q), left-q
		}
	}
	return sel, nil
}

// sceBracket is sceSelect by the bracket of selectTopK (a sample of the
// variances; one pass that counts the non-zero ones and those above the
// bracket and keeps those in it; the selection among them): one pass
// where the radix passes take two or three. It reports false when the
// tensor is too small to sample or the bracket is too wide or misses.
func sceBracket(ctx context.Context, bp blockPlan, vs []view, frac float64, inPlace bool) (*topK, bool, error) {
	const m = sampleSize
	n := bp.n
	if n < 4*m || collectOff {
		return nil, false, nil
	}
	runs := m / sampleRun
	stride := n / runs
	sample := make([]uint32, m)
	bufs := make([][]float32, len(vs))
	xs := make([][]float32, len(vs))
	for i := range bufs {
		bufs[i] = make([]float32, sampleRun)
	}
	var v [sampleRun]float32
	nz := 0
	touchSample(vs, runs, stride)
	for r := range runs {
		j := r*stride + (stride-sampleRun)/2
		for i, vw := range vs {
			xs[i] = vw.get(bufs[i], j, sampleRun)
		}
		sceVariance(v[:], xs)
		for e, x := range v {
			sample[r*sampleRun+e] = math.Float32bits(x)
			nz += b2i(x != 0)
		}
	}
	// The k-th largest is a fraction frac of the non-zero ones, whose
	// share is itself sampled: its deviation widens the bracket.
	pnz := float64(nz) / m
	t := &topK{collect: true, hi: math.MaxUint32, above: make([]int64, bp.nBlocks), cands: make([][]uint32, bp.nBlocks)}
	if !t.bracket(sample, frac*pnz, int(6*frac*math.Sqrt(m*pnz*(1-pnz)))) {
		return nil, false, nil
	}
	t.hist = make([]int64, candBins)
	t.heavyEq = make([]int32, bp.nBlocks*len(t.heavy))
	var nonzero int64
	var mu sync.Mutex
	err := sceEach(ctx, bp, vs, inPlace, func() (func(b *sceBlock, lo int), func()) {
		v := bp.sc.floats(1, bp.size())[0]
		buf := make([]uint32, bp.size()+8) // collectBits stores eight at a time
		h := make([]uint32, candBins)
		var slab []uint32
		var nzw int64
		return func(b *sceBlock, lo int) {
				v := v[:b.len()]
				b.variance(v)
				var eq [maxHeavy]int32
				c, above, nz := collectBitsHeavy(buf, v, t.lo, t.hi, t.heavy, &eq)
				nzw += nz
				slab = t.keepCands(lo/chunk, buf[:c], above, h, slab, bp.sc, &eq)
			}, func() {
				mu.Lock()
				defer mu.Unlock()
				nonzero += nzw
				for b, c := range h {
					t.hist[b] += int64(c)
				}
			}
	})
	if err != nil {
		return nil, false, err
	}
	k := int64(float64(nonzero) * frac)
	switch {
	case k >= int64(n):
		return &topK{all: true}, true, nil
	case k <= 0:
		return &topK{none: true}, true, nil
	}
	t.k = int(k)
	if !fromCandidates(bp, t) {
		return nil, false, nil
	}
	return t, true, nil
}
