//go:build !purego

package kernels

import (
	"fmt"
	"testing"
	"unsafe"
)

// BenchmarkPackRows8 times the AVX2 packers of the Q8_0 and Q4_0 prefill
// tiles alone (packQ8x8, packQ4x8) on the target models' row lengths, the
// packed groups going round a 64 KiB buffer: bytes are the weights read.
func BenchmarkPackRows8(b *testing.B) {
	if !hasAVX2() {
		b.Skip("no AVX2")
	}
	for _, q4 := range []bool{false, true} {
		for _, cols := range []int{576, 896, 4864} {
			const rows = 64
			nb := cols / BlockSize
			w := make([]byte, rows*cols)
			for i := range w {
				w[i] = byte(i * 7)
			}
			s := make([]uint16, rows*nb)
			ldw, name, pack := cols, "q8_0", packQ8x8
			if q4 {
				name, pack = "q4_0", packQ4x8
			}
			gb := nb * q8PackedBytes
			buf := make([]byte, max(64<<10, gb))
			per := len(buf) / gb
			b.Run(fmt.Sprintf("%s/%d", name, cols), func(b *testing.B) {
				b.SetBytes(int64(rows * cols))
				if q4 {
					b.SetBytes(int64(rows * cols / 2))
				}
				for b.Loop() {
					for g := 0; g < rows/8; g++ {
						wp := unsafe.Pointer(&w[g*8*cols])
						if q4 {
							wp = unsafe.Pointer(&w[g*8*cols/2])
						}
						pack(unsafe.Pointer(&buf[(g%per)*gb]), wp, unsafe.Pointer(&s[g*8*nb]), ldw, nb)
					}
				}
			})
		}
	}
}
