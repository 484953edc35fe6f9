package safetensors

import (
	"fmt"
	"unsafe"
)

// Tensor is one named tensor. For tensors of an open File, Data aliases the
// memory map: it is valid until the file is closed and must not be written to.
//
// The typed views (F32, U16, ...) reinterpret Data in the host's byte order,
// which the format's little-endian layout matches on every platform Go
// supports for this package (amd64, arm64, riscv64, ...).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32 returns the elements of an F32 tensor. The result aliases Data unless
// Data is not 4-byte aligned, in which case it is a copy.
func (t *Tensor) F32() ([]float32, error) { return view[float32](t, F32) }

// U16 returns the raw 16-bit words of an F16, BF16 or U16 tensor. The result
// aliases Data unless Data is not 2-byte aligned, in which case it is a copy.
func (t *Tensor) U16() ([]uint16, error) { return view[uint16](t, F16, BF16, U16) }

// F64 returns the elements of an F64 tensor (aliased when aligned).
func (t *Tensor) F64() ([]float64, error) { return view[float64](t, F64) }

// I64 returns the elements of an I64 tensor (aliased when aligned).
func (t *Tensor) I64() ([]int64, error) { return view[int64](t, I64) }

// I32 returns the elements of an I32 tensor (aliased when aligned).
func (t *Tensor) I32() ([]int32, error) { return view[int32](t, I32) }

// I16 returns the elements of an I16 tensor (aliased when aligned).
func (t *Tensor) I16() ([]int16, error) { return view[int16](t, I16) }

// I8 returns the elements of an I8 tensor (always aliased).
func (t *Tensor) I8() ([]int8, error) { return view[int8](t, I8) }

// U8 returns the elements of a U8 tensor (always aliased).
func (t *Tensor) U8() ([]uint8, error) { return view[uint8](t, U8) }

// U32 returns the elements of a U32 tensor (aliased when aligned).
func (t *Tensor) U32() ([]uint32, error) { return view[uint32](t, U32) }

// U64 returns the elements of a U64 tensor (aliased when aligned).
func (t *Tensor) U64() ([]uint64, error) { return view[uint64](t, U64) }

// Bool returns the elements of a BOOL tensor as a fresh slice. It fails if a
// byte is neither 0 nor 1, since such a byte is not a valid Go bool.
func (t *Tensor) Bool() ([]bool, error) {
	if err := t.check(BOOL); err != nil {
		return nil, err
	}
	out := make([]bool, len(t.Data))
	for i, b := range t.Data {
		if b > 1 {
			return nil, fmt.Errorf("tensor %s: element %d is %d, not a boolean", t.Name, i, b)
		}
		out[i] = b == 1
	}
	return out, nil
}

// check verifies that t has one of the wanted dtypes and that Data holds
// exactly NumElements elements (tensors built by hand may not).
func (t *Tensor) check(want ...DType) error {
	ok := false
	for _, d := range want {
		ok = ok || t.DType == d
	}
	if !ok {
		return fmt.Errorf("tensor %s: dtype %s, want %s", t.Name, t.DType, dtypeList(want))
	}
	if n := t.NumElements(); n < 0 || len(t.Data) != n*t.DType.Size() {
		return fmt.Errorf("tensor %s: %d bytes of data, but shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, n*t.DType.Size())
	}
	return nil
}

func dtypeList(ds []DType) string {
	s := ""
	for i, d := range ds {
		switch {
		case i == 0:
		case i == len(ds)-1:
			s += " or "
		default:
			s += ", "
		}
		s += string(d)
	}
	return s
}

// view reinterprets t.Data as []T after checking the dtype. It aliases Data
// when the address is suitably aligned and copies it otherwise: Go requires
// aligned values, and an in-memory image passed to Parse can start anywhere.
func view[T any](t *Tensor, want ...DType) ([]T, error) {
	if err := t.check(want...); err != nil {
		return nil, err
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	n := len(t.Data) / size
	if n == 0 {
		return []T{}, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%unsafe.Alignof(zero) == 0 {
		return unsafe.Slice((*T)(p), n), nil
	}
	out := make([]T, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(t.Data)), t.Data)
	return out, nil
}
