//go:build !linux

package hugemem

import (
	"fmt"
	"unsafe"
)

// PageSize is the alignment Alloc gives; without Linux's transparent huge
// pages that is only a cache line's.
const PageSize = 64

// Alloc returns n zeroed bytes from the Go heap where huge pages cannot be
// requested.
func Alloc(n int) (b []byte, free func() error, err error) {
	if n <= 0 {
		return nil, nil, fmt.Errorf("hugemem: allocate %d bytes", n)
	}
	buf := make([]byte, n+PageSize-1)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & (PageSize - 1))
	return buf[off : off+n : off+n], func() error { return nil }, nil
}

// ReadOnly does nothing where the memory is the Go heap's.
func ReadOnly(b []byte) error { return nil }

// ProcessHugeBytes is 0: no huge pages are requested here.
func ProcessHugeBytes() int64 { return 0 }
