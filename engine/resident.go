package engine

import (
	"unsafe"

	"github.com/mocolab/moco/internal/hugemem"
	"github.com/mocolab/moco/kernels"
)

// packQuantized moves the matrices that quantization made (Go heap memory,
// in small pages) into one region backed by huge pages, where stored
// weights live too (safetensors.Resident): every generated token reads
// them all. It returns the function that frees the region; on failure the
// matrices stay where they are.
func (m *Model) packQuantized() (free func() error) {
	var mats []*kernels.Mat
	for _, slot := range m.matrixSlots() {
		if p := *slot; p != nil && (p.Type == kernels.Q8_0 || p.Type == kernels.Q4_0) {
			mats = append(mats, p)
		}
	}
	const align = 64 // each slice starts on a cache line
	size := 0
	for _, p := range mats {
		size += roundUp(len(p.Q), align) + roundUp(len(p.Q4), align) + roundUp(2*len(p.Scales), align)
	}
	if size == 0 {
		return nil
	}
	buf, free, err := hugemem.Alloc(size)
	if err != nil {
		return nil
	}
	off := 0
	take := func(n int) []byte {
		b := buf[off : off+n : off+n]
		off += roundUp(n, align)
		return b
	}
	for _, p := range mats {
		if p.Q != nil {
			q := take(len(p.Q))
			copy(q, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(p.Q))), len(p.Q)))
			p.Q = unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(q))), len(p.Q))
		}
		if p.Q4 != nil {
			q := take(len(p.Q4))
			copy(q, p.Q4)
			p.Q4 = q
		}
		s := take(2 * len(p.Scales))
		copy(s, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(p.Scales))), 2*len(p.Scales)))
		p.Scales = unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), len(p.Scales))
	}
	return free
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
