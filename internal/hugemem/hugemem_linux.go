package hugemem

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the size of a transparent huge page on x86-64 and arm64
// (with 4 KiB base pages).
const PageSize = 2 << 20

// Alloc returns n zeroed, writable bytes (n > 0) at a PageSize-aligned
// address, advised for huge pages, and the function that frees them. The
// advice is only advice: without transparent huge pages the memory is
// still usable, in small pages.
func Alloc(n int) (b []byte, free func() error, err error) {
	if n <= 0 {
		return nil, nil, fmt.Errorf("hugemem: allocate %d bytes", n)
	}
	size := uintptr(n+PageSize-1) &^ (PageSize - 1)
	// Map one page more than needed and give back what lies outside the
	// aligned size bytes. The pointer forms of mmap and munmap keep no
	// record of the mapping, so the pieces can be unmapped apart.
	raw, err := unix.MmapPtr(-1, 0, nil, size+PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, fmt.Errorf("hugemem: allocate %d bytes: %w", size, err)
	}
	start := uintptr(raw)
	aligned := (start + PageSize - 1) &^ (PageSize - 1)
	if head := aligned - start; head > 0 {
		unix.MunmapPtr(raw, head)
	}
	if tail := start + size + PageSize - (aligned + size); tail > 0 {
		unix.MunmapPtr(unsafe.Add(raw, aligned+size-start), tail)
	}
	p := unsafe.Add(raw, aligned-start)
	region := unsafe.Slice((*byte)(p), size)
	unix.Madvise(region, unix.MADV_HUGEPAGE)
	return region[:n:n], func() error { return unix.MunmapPtr(p, size) }, nil
}

// ReadOnly makes b, which Alloc returned, read-only, so that a stray write
// faults as it would on a read-only file mapping.
func ReadOnly(b []byte) error {
	size := (len(b) + PageSize - 1) &^ (PageSize - 1)
	return unix.Mprotect(unsafe.Slice(unsafe.SliceData(b), size), unix.PROT_READ)
}

// ProcessHugeBytes is how many bytes of this process's anonymous memory
// the kernel backs with huge pages now (AnonHugePages), or 0 if unknown.
func ProcessHugeBytes() int64 {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0
	}
	return parseHugeBytes(string(b))
}
