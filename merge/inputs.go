package merge

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mocolab/moco/safetensors"
)

// inputReader reads the tensors of memory-mapped inputs with pread into
// buffers it reuses, for WriteFolder, instead of letting the merge touch
// the mappings. The first touch of each 4 KB page of a mapping costs a
// fault (and, in a virtual machine, often an exit): about 0.4 CPU seconds
// per GB of input where a pread from the page cache into warm memory costs
// 0.1 (a 0.5B model's three inputs: 3 GB). Only tensors whose inputs
// together fit in the largest tensor's bytes are read so (for a 0.5B
// model all but the embeddings), so the buffers add at most the largest
// tensor to the memory taken. The passes over the others read them block
// by block with pread into small buffers where they go in order
// (view.block, by where), and through the mapping only where they sample
// it: a buffer for all of them would be fresh memory, which on a virtual
// machine costs as much as the faults (see outBuf), and the mapped pages
// they would touch were most of the peak resident set (TIES on the 0.5B
// shape: 0.92 GB, with block reads 0.13-0.16 GB). The data is the same
// bytes, so merges are unchanged.
type inputReader struct {
	locs  map[*safetensors.Tensor]fileLoc
	files []*os.File
	limit int // the most bytes of one tensor's inputs read so
	pool  *bufPool
}

// fileLoc is where a tensor's data lies in an open file.
type fileLoc struct {
	f   *os.File
	off int64
}

// readOff makes WriteFolder read every tensor in place (tests).
var readOff bool

// newInputReader indexes the tensors of the inputs that are files mapped
// by safetensors.Open (single or sharded); budget is the most bytes the
// inputs of one tensor may take.
func newInputReader(ins []*Input, budget int) *inputReader {
	r := &inputReader{locs: map[*safetensors.Tensor]fileLoc{}, limit: budget}
	for _, in := range ins {
		switch src := in.Src.(type) {
		case *safetensors.File:
			r.index(src)
		case *safetensors.Sharded:
			for _, f := range src.Files() {
				r.index(f)
			}
		}
	}
	if len(r.locs) > 0 {
		r.pool = newBufPool(budget + len(ins)*bufAlign)
	}
	return r
}

// index opens f's file and records where each of its tensors lies: the
// data section follows the 8-byte length and the header, and the tensors
// cover it in order without gaps (safetensors.parse checks this). The
// file is left out unless its size and the bytes at both ends of its data
// agree with the mapping.
func (r *inputReader) index(f *safetensors.File) {
	if f.Path == "" {
		return
	}
	var ts []*safetensors.Tensor
	size := 8 + f.HeaderSize
	for _, name := range f.Order() {
		t, _ := f.Tensor(name)
		if len(t.Data) > 0 {
			ts = append(ts, t)
			size += int64(len(t.Data))
		}
	}
	if len(ts) == 0 {
		return
	}
	fd, err := os.Open(f.Path)
	if err != nil {
		return
	}
	body := uintptr(unsafe.Pointer(unsafe.SliceData(ts[0].Data)))
	loc := func(t *safetensors.Tensor) int64 {
		return 8 + f.HeaderSize + int64(uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))-body)
	}
	same := func(t *safetensors.Tensor, at int) bool {
		n := min(64, len(t.Data)-at)
		b := make([]byte, n)
		k, _ := fd.ReadAt(b, loc(t)+int64(at))
		return k == n && bytes.Equal(b, t.Data[at:at+n])
	}
	last := ts[len(ts)-1]
	st, err := fd.Stat()
	if err != nil || st.Size() != size || !same(ts[0], 0) || !same(last, len(last.Data)-min(64, len(last.Data))) {
		fd.Close()
		return
	}
	r.files = append(r.files, fd)
	for _, t := range ts {
		r.locs[t] = fileLoc{fd, loc(t)}
	}
}

// load returns ts with the tensors it can read replaced by copies in the
// reader's buffers, and the function that gives the buffers back (once
// nothing refers to them).
func (r *inputReader) load(ts []*safetensors.Tensor) ([]*safetensors.Tensor, func(), error) {
	if r == nil || r.pool == nil || readOff {
		return ts, func() {}, nil
	}
	total := 0
	for _, t := range ts {
		if _, ok := r.locs[t]; !ok {
			return ts, func() {}, nil
		}
		total += len(t.Data)
	}
	if total > r.limit {
		return ts, func() {}, nil
	}
	out := make([]*safetensors.Tensor, len(ts))
	bufs := make([][]byte, len(ts))
	release := func() {
		for _, b := range bufs {
			r.pool.put(b)
		}
	}
	// The reads, in pieces of up to readPiece bytes, on every core.
	type piece struct {
		loc fileLoc
		dst []byte
	}
	var ps []piece
	for i, t := range ts {
		bufs[i] = r.pool.get(len(t.Data))
		c := *t
		c.Data = bufs[i]
		out[i] = &c
		l := r.locs[t]
		for at := 0; at < len(t.Data); at += readPiece {
			ps = append(ps, piece{fileLoc{l.f, l.off + int64(at)}, bufs[i][at:min(at+readPiece, len(t.Data))]})
		}
	}
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(ps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < len(ps); k = int(next.Add(1) - 1) {
				p := ps[k]
				if n, err := p.loc.f.ReadAt(p.dst, p.loc.off); n < len(p.dst) {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: read at %d: %v", p.loc.f.Name(), p.loc.off, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		release()
		return nil, nil, first
	}
	return out, release, nil
}

// where returns where t's data lies in its file, for a tensor of a
// mapped input that load left in place.
func (r *inputReader) where(t *safetensors.Tensor) (fileLoc, bool) {
	if r == nil || readOff {
		return fileLoc{}, false
	}
	l, ok := r.locs[t]
	return l, ok
}

// readPiece is the unit of load's parallel reads.
const readPiece = 1 << 20

// close closes the files and unmaps the buffers.
func (r *inputReader) close() {
	if r == nil {
		return
	}
	for _, f := range r.files {
		f.Close()
	}
	r.pool.release()
	r.files, r.locs = nil, nil
}
