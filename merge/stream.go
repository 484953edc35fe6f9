package merge

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// view reads ranges of a floating-point tensor as float32 without widening
// the whole tensor: streaming merges hold only a chunk of each input.
type view struct {
	dt  safetensors.DType
	f32 []float32
	u16 []uint16
	loc *fileLoc // for data left in its mapping: where it lies in its file (block, read)
}

func newView(t *safetensors.Tensor) (view, error) {
	v := view{dt: t.DType}
	var err error
	switch t.DType {
	case safetensors.F32:
		v.f32, err = t.F32()
	case safetensors.BF16, safetensors.F16:
		v.u16, err = t.U16()
	default:
		err = fmt.Errorf("dtype %s is not F32, F16 or BF16", t.DType)
	}
	return v, err
}

// block returns the 16-bit entries [lo, hi) of v: in place, or, where v
// knows where they lie in their file (a tensor left in its mapping, the
// embeddings of a 0.5B model), read with pread into buf (at least hi-lo
// entries). A first pass over a mapping takes a page fault per 64 KB, and
// on a virtual machine each costs an exit; a buffer that holds the whole
// tensor costs as much in fresh pages (see outBuf). A failed read falls
// back on the mapping, which holds the same bytes.
func (v view) block(buf []uint16, lo, hi int) []uint16 {
	if v.loc == nil || hi <= lo {
		return v.u16[lo:hi]
	}
	b := buf[:hi-lo]
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), 2*len(b))
	if n, _ := v.loc.f.ReadAt(raw, v.loc.off+2*int64(lo)); n < len(raw) {
		return v.u16[lo:hi]
	}
	return b
}

// read is get, with v's entries read from their file where v knows where
// they lie: 16-bit ones by block (into raw), float32 ones into buf.
func (v view) read(buf []float32, raw []uint16, lo, n int) []float32 {
	switch {
	case v.loc == nil || n <= 0:
		return v.get(buf, lo, n)
	case v.dt == safetensors.F32: // straight into buf
		b := buf[:n]
		bytes := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), 4*n)
		if k, _ := v.loc.f.ReadAt(bytes, v.loc.off+4*int64(lo)); k < len(bytes) {
			return v.get(buf, lo, n)
		}
		return b
	}
	return view{dt: v.dt, u16: v.block(raw, lo, lo+n)}.get(buf, 0, n)
}

// blockBufs returns a buffer of n entries for view.block for each of vs
// whose blocks are read from its file (nil for those read in place).
func (s *scratchSet) blockBufs(vs []view, n int) [][]uint16 {
	raws := make([][]uint16, len(vs))
	for i, v := range vs {
		if v.loc != nil && v.u16 != nil {
			raws[i] = s.u16(n)
		}
	}
	return raws
}

// u16 returns n entries of 16-bit scratch (contents undefined), from the
// set's uint32 slabs.
func (s *scratchSet) u16(n int) []uint16 {
	w := s.u32(n/2 + 1)
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(w[:1]))), n)
}

// get returns elements [lo, lo+n) as float32, in buf unless they can be
// returned in place.
func (v view) get(buf []float32, lo, n int) []float32 {
	switch v.dt {
	case safetensors.F32:
		return v.f32[lo : lo+n]
	case safetensors.BF16:
		buf = buf[:n]
		widenBF16(buf, v.u16[lo:lo+n])
		return buf
	}
	src := v.u16[lo : lo+n]
	buf = buf[:n]
	for j, h := range src {
		buf[j] = safetensors.F16ToF32(h)
	}
	return buf
}

// bits returns the bits of element j as stored (for touching its line).
func (v view) bits(j int) uint32 {
	if v.dt == safetensors.F32 {
		return math.Float32bits(v.f32[j])
	}
	return uint32(v.u16[j])
}

// at returns element j as float32 (what get returns for it).
func (v view) at(j int) float32 {
	switch v.dt {
	case safetensors.F32:
		return v.f32[j]
	case safetensors.BF16:
		return math.Float32frombits(uint32(v.u16[j]) << 16)
	}
	return safetensors.F16ToF32(v.u16[j])
}

// widenBF16 converts bf16 to float32 exactly; narrowBF16 converts back,
// rounding to nearest even (the assembly replaces it where it can).
func widenBF16(dst []float32, src []uint16) { kernels.Widen(dst, src, kernels.BF16) }

var narrowBF16 = narrowBF16Go

func narrowBF16Go(dst []uint16, src []float32) {
	for j, v := range src {
		dst[j] = safetensors.F32ToBF16(v)
	}
}

// put stores x as elements [lo, lo+len(x)) of out, a tensor of dtype dt.
func put(out []byte, dt safetensors.DType, lo int, x []float32) {
	switch dt {
	case safetensors.F32:
		copy(unsafe.Slice((*float32)(unsafe.Pointer(&out[0])), len(out)/4)[lo:], x)
	case safetensors.BF16:
		narrowBF16(unsafe.Slice((*uint16)(unsafe.Pointer(&out[0])), len(out)/2)[lo:lo+len(x)], x)
	case safetensors.F16:
		o := unsafe.Slice((*uint16)(unsafe.Pointer(&out[0])), len(out)/2)[lo:]
		for j, v := range x {
			o[j] = safetensors.F32ToF16(v)
		}
	}
}

// chunkFunc merges chunk number k: dst from the inputs' chunks (the base
// first when there is one); ds is per-worker scratch of chunk floats per model.
type chunkFunc func(dst []float32, xs [][]float32, k int, ds [][]float32)

// streamTensor merges an element-wise method chunk by chunk, in parallel,
// reading the inputs in place and writing the output dtype directly.
func streamTensor(p *planned, ts []*safetensors.Tensor, n int, f chunkFunc) (*safetensors.Tensor, error) {
	vs, err := views(p, ts)
	if err != nil {
		return nil, err
	}
	return streamChunks(p, n, func(sc *scratchSet) func(dst []float32, lo, hi int) {
		bufs := sc.floats(len(vs), chunk)
		raws := sc.blockBufs(vs, chunk)
		ds := sc.floats(len(vs), chunk) // taskChunk's: one per model and one more (vs has the base too)
		xs := make([][]float32, len(vs))
		return func(dst []float32, lo, hi int) {
			m := hi - lo
			for i, v := range vs {
				xs[i] = v.read(bufs[i], raws[i], lo, m)
			}
			f(dst, xs, lo/chunk, ds)
		}
	})
}

// streamChunks computes the n entries of p's tensor chunk by chunk on
// all cores, each worker's function (from mk, which takes its scratch
// from sc) writing entries [lo, hi) to dst, and returns the tensor.
func streamChunks(p *planned, n int, mk func(sc *scratchSet) func(dst []float32, lo, hi int)) (*safetensors.Tensor, error) {
	out := newOutBuf(p, n)
	var sc scratchSet
	defer sc.release() // after parallelChunks: its workers are done
	parallelChunks(n, func() func(lo, hi int) {
		dst := sc.floats(1, chunk)[0]
		f := mk(&sc)
		return func(lo, hi int) {
			f(dst[:hi-lo], lo, hi)
			out.put(lo, dst[:hi-lo])
		}
	})
	return out.tensor()
}

// pieceBytes is the size of the pieces in which a merged tensor of more
// than twice as many bytes goes to the writer when there is one
// (Spec.part): about the size of a layer's largest matrix in a 0.5B
// model, and a quarter of the writer's writeback step.
var pieceBytes = 8 << 20 // a variable for the tests

// piecesSent counts the pieces outBuf sent, and pieceDone, when set, is
// called as each piece is complete, before it is sent (tests).
var (
	piecesSent atomic.Int64
	pieceDone  func()
)

// outBuf holds a merged tensor's output as its chunks are computed, in
// any order: whole, in a buffer of the pool; or, when the merge writes a
// folder and the tensor is large, in pieces of pieceBytes, each sent to
// the writer (p.part) once complete, in order, and its buffer reused
// once written. Whole, a 0.5B model's embeddings (272 MB) took that much
// of the pool's region more, and on a VM that backs fresh memory lazily
// its first touch cost about 2.5 CPU seconds per GB in page zeroing
// (0.5-0.9 s of a 2-5 s merge); in pieces the region's touched part is
// what waits for the writer.
type outBuf struct {
	p     *planned
	n     int // entries
	size  int // bytes per entry
	whole []byte
	per   int // entries per piece (0: whole)
	mu    sync.Mutex
	bufs  [][]byte   // each piece's buffer, from its first put until sent
	left  []int      // entries of each piece not yet put
	next  int        // the first piece not yet sent
	send  sync.Mutex // held while sending, so that pieces go in order
	err   error      // the first error of p.part; guarded by send
}

// newOutBuf returns the output of p's tensor of n entries.
func newOutBuf(p *planned, n int) *outBuf {
	o := &outBuf{p: p, n: n, size: p.dtype.Size()}
	if p.part == nil || n*o.size <= 2*pieceBytes {
		o.whole = p.pool.get(n * o.size)
		return o
	}
	o.per = max(1, pieceBytes/o.size)
	k := (n + o.per - 1) / o.per
	o.bufs, o.left = make([][]byte, k), make([]int, k)
	for i := range o.left {
		o.left[i] = min(o.per, n-i*o.per)
	}
	return o
}

// put stores x as entries [lo, lo+len(x)) of the output.
func (o *outBuf) put(lo int, x []float32) {
	if o.per == 0 {
		put(o.whole, o.p.dtype, lo, x)
		return
	}
	for len(x) > 0 {
		i := lo / o.per
		m := min(len(x), (i+1)*o.per-lo)
		o.mu.Lock()
		b := o.bufs[i]
		if b == nil {
			b = o.p.pool.get(min(o.per, o.n-i*o.per) * o.size)
			o.bufs[i] = b
		}
		o.mu.Unlock()
		put(b, o.p.dtype, lo-i*o.per, x[:m])
		o.mu.Lock()
		o.left[i] -= m
		done := o.left[i] == 0
		o.mu.Unlock()
		if done {
			if pieceDone != nil {
				pieceDone()
			}
			o.sendReady()
		}
		lo, x = lo+m, x[m:]
	}
}

// sendReady sends the complete pieces from the first one not yet sent,
// in order, to p.part, which gives their buffers back to the pool once
// written (and takes none when it fails).
func (o *outBuf) sendReady() {
	o.send.Lock()
	defer o.send.Unlock()
	for {
		o.mu.Lock()
		if o.next == len(o.bufs) || o.left[o.next] != 0 {
			o.mu.Unlock()
			return
		}
		b := o.bufs[o.next]
		o.bufs[o.next] = nil
		o.next++
		o.mu.Unlock()
		if o.err == nil {
			o.err = o.p.part(o.p.name, b)
			piecesSent.Add(1)
		} else {
			o.p.pool.put(b) // the writer failed: nothing takes it
		}
	}
}

// tensor returns the merged tensor: its data, or, sent in pieces, none
// (p.sent is set); an error when a piece could not be sent.
func (o *outBuf) tensor() (*safetensors.Tensor, error) {
	t := &safetensors.Tensor{Name: o.p.name, DType: o.p.dtype, Shape: o.p.shape, Data: o.whole}
	if o.per == 0 {
		return t, nil
	}
	o.send.Lock()
	defer o.send.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	if o.next != len(o.bufs) {
		return nil, fmt.Errorf("internal error: %d of %d pieces sent", o.next, len(o.bufs))
	}
	o.p.sent = true
	return t, nil
}

// abandon gives the buffers of the pieces not sent back to the pool (a
// merge that failed part way).
func (o *outBuf) abandon() {
	if o.per == 0 {
		o.p.pool.put(o.whole)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, b := range o.bufs {
		if b != nil {
			o.p.pool.put(b)
			o.bufs[i] = nil
		}
	}
}

// eachBlock runs a pass over the inputs vs (views of tensors of bp.n
// elements) block by block on all cores, with no output: mk makes a
// worker's f, which gets the inputs' values over the block that starts at
// element lo, and its finish (called once when the worker is done; may be
// nil). Blocks hold whole rows of bp.rowLen; bp.sc must be set.
func eachBlock(ctx context.Context, bp blockPlan, vs []view, mk func() (f func(xs [][]float32, lo int), finish func())) error {
	return bp.run(ctx, func() (func(k, lo, hi int), func()) {
		bufs := bp.sc.floats(len(vs), bp.size())
		raws := bp.sc.blockBufs(vs, bp.size())
		xs := make([][]float32, len(vs))
		f, finish := mk()
		return func(_, lo, hi int) {
			for i, v := range vs {
				xs[i] = v.read(bufs[i], raws[i], lo, hi-lo)
			}
			f(xs, lo)
		}, finish
	})
}

// views returns a view of each tensor, which knows where its data lies in
// its file when p's reader left it in place (view.block and view.read
// read it from there).
func views(p *planned, ts []*safetensors.Tensor) ([]view, error) {
	vs := make([]view, len(ts))
	for i, t := range ts {
		v, err := newView(t)
		if err != nil {
			return nil, err
		}
		if l, ok := p.in.where(t); ok {
			v.loc = &l
		}
		vs[i] = v
	}
	return vs, nil
}

// scratchSet hands out the streaming merges' float32 scratch of up to
// chunk floats, zeroed, from a pool shared by the tensors, and takes it
// all back at once when the workers that use it are done. Fresh scratch
// for every tensor and worker (about 1 MB) made the Go heap collect
// every few tensors (87 to 150 collections in a merge of a 0.5B model),
// each one preempting the workers, and the heap hand memory back to the
// kernel only to fault it in again.
type scratchSet struct {
	mu    sync.Mutex
	held  []*[]float32
	slabs []*[]uint32
}

// slabSize is the least capacity of the uint32 slabs of scratchSet.u32.
const slabSize = 1 << 18

// slabPool holds uint32 slabs of slabSize entries.
var slabPool sync.Pool

// u32 returns an empty slice of capacity at least n (contents undefined
// past its length); a nil set allocates it.
func (s *scratchSet) u32(n int) []uint32 {
	if s == nil || n > slabSize {
		return make([]uint32, 0, max(n, slabSize))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := slabPool.Get().(*[]uint32)
	if p == nil {
		b := make([]uint32, slabSize)
		p = &b
	}
	s.slabs = append(s.slabs, p)
	return (*p)[:0]
}

// floatPool holds scratch slices of chunk floats.
var floatPool sync.Pool

// floats returns n zeroed slices of size floats (capacity size); a nil
// set, or a size over chunk, allocates them.
func (s *scratchSet) floats(n, size int) [][]float32 {
	if s == nil || size > chunk {
		return scratch(n, size)
	}
	ds := make([][]float32, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ds {
		p, _ := floatPool.Get().(*[]float32)
		if p == nil {
			b := make([]float32, chunk)
			p = &b
		}
		d := (*p)[:size:size]
		clear(d)
		s.held = append(s.held, p)
		ds[i] = d
	}
	return ds
}

// release returns the set's scratch to the pool: none of it may be used
// afterwards.
func (s *scratchSet) release() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.held {
		floatPool.Put(p)
	}
	for _, p := range s.slabs {
		slabPool.Put(p)
	}
	s.held, s.slabs = nil, nil
}
