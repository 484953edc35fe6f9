package merge

import (
	"fmt"
	"math"
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
	vs := make([]view, len(ts))
	for i, t := range ts {
		v, err := newView(t)
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	out := p.pool.get(n * p.dtype.Size())
	parallelChunks(n, func() func(lo, hi int) {
		bufs := scratch(len(vs), chunk)
		ds := scratch(len(vs), chunk) // taskChunk's: one per model and one more (vs has the base too)
		dst := make([]float32, chunk)
		xs := make([][]float32, len(vs))
		return func(lo, hi int) {
			m := hi - lo
			for i, v := range vs {
				xs[i] = v.get(bufs[i], lo, m)
			}
			f(dst[:m], xs, lo/chunk, ds)
			put(out, p.dtype, lo, dst[:m])
		}
	})
	return &safetensors.Tensor{Name: p.name, DType: p.dtype, Shape: p.shape, Data: out}, nil
}
