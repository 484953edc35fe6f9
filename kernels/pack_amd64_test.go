//go:build !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// BenchmarkPackRows8 times the AVX2 packers of the Q8_0 and Q4_0 prefill
// tiles alone (kern.pack: packQ8x8, packQ4x8) on the target models' row
// lengths, the packed groups going round a 64 KiB buffer: bytes are the
// weights read.
func BenchmarkPackRows8(b *testing.B) {
	if !hasAVX2() {
		b.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		typ  Type
		pack func(dst, w, s unsafe.Pointer, ldw, nb int)
	}{{Q8_0, packQ8x8}, {Q4_0, packQ4x8}} {
		for _, cols := range []int{576, 896, 4864} {
			const rows = 64
			m := randMat(r, c.typ, rows, cols)
			nb := cols / BlockSize
			gb := nb * q8PackedBytes
			buf := make([]byte, max(64<<10, gb))
			per := len(buf) / gb
			b.Run(fmt.Sprintf("%v/%d", c.typ, cols), func(b *testing.B) {
				b.SetBytes(weightBytes(m) - int64(rows*nb*2)) // less the scales
				for b.Loop() {
					for g := 0; g < rows/8; g++ {
						c.pack(unsafe.Pointer(&buf[(g%per)*gb]), m.wptr(8*g), m.sptr(8*g), cols, nb)
					}
				}
			})
		}
	}
}
