package safetensors

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/mocolab/moco/internal/hugemem"
)

// readChunk is the unit of readResident's parallel read.
var readChunk = 32 << 20

// residentCopies says whether Resident copies the file (it does here).
const residentCopies = true

// readResident reads size bytes of fd into read-only memory backed by huge
// pages and returns it with the function that frees it; the byte ranges in
// skip (sorted, apart) are not read, and their pages, never touched, take
// no memory. The read runs on
// every core: most of its time is the kernel zeroing and mapping fresh
// pages, which parallelises.
//
// The file is placed so that its data section (after the 8-byte length
// and the header) starts on a cache line: writers pad the header only to
// 8 bytes, so in the file a tensor can start anywhere in a line, and then
// every 64-byte load of a kernel reading a row spans two lines (on Zen 5
// a decode loop of such loads streamed 0.81x as fast; docs/speed.md).
func readResident(fd *os.File, size int, skip [][2]int) ([]byte, func() error, error) {
	var n [8]byte
	if _, err := fd.ReadAt(n[:], 0); err != nil {
		return nil, nil, fmt.Errorf("read header length: %w", err)
	}
	skew := int(-(8 + binary.LittleEndian.Uint64(n[:])) % lineSize)
	whole, free, err := hugemem.Alloc(skew + size)
	if err != nil {
		return nil, nil, err
	}
	b := whole[skew : skew+size : skew+size]
	parts := readParts(size, readChunk, skip)
	offs := make(chan [2]int, len(parts))
	for _, p := range parts {
		offs <- p
	}
	close(offs)
	errs := make([]error, min(runtime.GOMAXPROCS(0), len(offs)))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range offs {
				if errs[w] != nil {
					continue
				}
				off, end := p[0], p[1]
				if n, err := fd.ReadAt(b[off:end], int64(off)); n < end-off {
					errs[w] = fmt.Errorf("read at %d: %w", off, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			free()
			return nil, nil, err
		}
	}
	if err := hugemem.ReadOnly(whole); err != nil {
		free()
		return nil, nil, err
	}
	return b, free, nil
}

// readParts splits [0, size) less the ranges in skip (sorted, apart) into
// pieces of at most chunk bytes.
func readParts(size, chunk int, skip [][2]int) [][2]int {
	var parts [][2]int
	add := func(a, b int) {
		for ; a < b; a += chunk {
			parts = append(parts, [2]int{a, min(a+chunk, b)})
		}
	}
	at := 0
	for _, s := range skip {
		add(at, s[0])
		at = max(at, s[1])
	}
	add(at, size)
	return parts
}
