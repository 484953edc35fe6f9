package engine

import (
	"unsafe"

	"github.com/mocolab/moco/internal/hugemem"
	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// quantizeAll replaces every matrix the forward pass multiplies by its
// form in to (kernels.Q8_0 or Q4_0). The embedding table stays as stored:
// it is only read a row at a time.
//
// With arena the quantized matrices are written straight into one region
// backed by huge pages, where stored weights live too (every generated
// token reads them all), and quantizeAll returns the function that frees
// it; without, or when the region cannot be had, they go to the Go heap
// and it returns nil. Each matrix's stored form is released from the
// source as soon as it is quantized (safetensors.Release), so that a
// load's peak memory is the quantized model and one stored matrix, not
// both models whole.
func (m *Model) quantizeAll(to kernels.Type, arena bool) (free func() error) {
	slots := m.matrixSlots()
	const align = 64 // each slice starts on a cache line
	var buf []byte
	if arena {
		size := 0
		for _, p := range slots {
			if kernels.Quantizes(*p, to) {
				w, s := quantBytes(*p, to)
				size += roundUp(w, align) + roundUp(s, align)
			}
		}
		if size > 0 {
			if b, f, err := hugemem.Alloc(size); err == nil {
				buf, free = b, f
			}
		}
	}
	take := func(n int) []byte {
		b := buf[:n:n]
		buf = buf[roundUp(n, align):]
		return b
	}
	for _, p := range slots {
		src := *p
		if !kernels.Quantizes(src, to) {
			continue
		}
		switch w, s := quantBytes(src, to); {
		case free != nil && to == kernels.Q8_0:
			*p = kernels.QuantizeQ8Into(src, bytesAs[int8](take(w)), bytesAs[uint16](take(s)))
		case free != nil:
			*p = kernels.QuantizeQ4Into(src, take(w), bytesAs[uint16](take(s)))
		case to == kernels.Q8_0:
			*p = kernels.QuantizeQ8(src)
		default:
			*p = kernels.QuantizeQ4(src)
		}
		for _, b := range matData(src) {
			safetensors.Release(m.src, b)
		}
	}
	return free
}

// quantBytes is the size of m's weights and of its scales in format to.
func quantBytes(m *kernels.Mat, to kernels.Type) (weights, scales int) {
	n := m.Rows * m.Cols
	if to == kernels.Q4_0 {
		return n / 2, 2 * n / kernels.BlockSize
	}
	return n, 2 * n / kernels.BlockSize
}

// bytesAs views b as a slice of T (b's length a multiple of T's size, its
// start aligned for T).
func bytesAs[T int8 | uint16](b []byte) []T {
	var z T
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(z)))
}

// matData returns the memory holding m's values (empty slices for the
// fields its type leaves unset).
func matData(m *kernels.Mat) [][]byte {
	return [][]byte{asBytes(m.F32), asBytes(m.Half), asBytes(m.Q), m.Q4, asBytes(m.Scales)}
}

// asBytes views s's memory as bytes (bytesAs's inverse).
func asBytes[T float32 | int8 | uint16](s []T) []byte {
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
