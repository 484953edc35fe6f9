//go:build !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestAMXPackExact checks that the three bf16 parts of every activation add
// up to it exactly, and where amxPack puts them.
func TestAMXPackExact(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const C, np, n = 64, 32, 5
	x := make([]float32, n*C)
	for i := range x {
		// Full 24-bit significands over a wide range of exponents.
		x[i] = float32(r.NormFloat64() * math.Ldexp(1, r.IntN(120)-60))
	}
	x[0], x[1], x[2] = 1+0x1p-23, -(1 - 0x1p-24), 0
	b := make([]uint32, amxParts*C/2*np)
	amxPack(b, x, C, np, 0, n)
	for tok := 0; tok < n; tok++ {
		for c := 0; c < C; c++ {
			var sum float64
			for s := 0; s < amxParts; s++ {
				w := b[(s*C/2+c/2)*np+tok]
				h := uint16(w >> (16 * (c % 2)))
				sum += float64(BF16ToF32(h))
			}
			if want := float64(x[tok*C+c]); sum != want {
				t.Fatalf("token %d column %d: parts add up to %g, want %g", tok, c, sum, want)
			}
		}
	}
	if !hasAVX512() {
		return
	}
	// The assembly packs 16 tokens at a time and zeros the missing ones.
	got := make([]uint32, len(b))
	for i := range got {
		got[i] = 0xdeadbeef
	}
	for g := 0; g < np/16; g++ {
		real := min(16, max(0, n-16*g))
		amxPack512(unsafe.Pointer(&got[16*g]), unsafe.Pointer(&x[0]), 4*C, real, C/2, 4*np, 4*C/2*np, amxParts)
	}
	for i := range b {
		if got[i] != b[i] {
			t.Fatalf("amxPack512 word %d (part %d, pair %d, token %d) = %#x, amxPack %#x",
				i, i/(C/2*np), i/np%(C/2), i%np, got[i], b[i])
		}
	}
}

// TestAMXMatMul holds the AMX products (BF16 and Q8_0 weights) to the
// reference, over row and token counts that leave partial tiles, column
// counts that take several column blocks, and more tokens than one packing
// holds, and checks that the thread count changes no bit.
func TestAMXMatMul(t *testing.T) {
	if !amxAvailable {
		t.Skip("this CPU (or OS) offers no AMX-BF16")
	}
	defer selectPath(Impl())
	defer SetThreads(0)
	selectPath("avx512+amx")
	r := rand.New(rand.NewPCG(13, 14))
	for _, typ := range []Type{BF16, Q8_0} {
		if typ == Q8_0 && !amxInt8 {
			t.Log("no AMX-INT8: Q8_0 not tested")
			continue
		}
		for _, c := range []struct{ rows, cols, n int }{
			{32, 32, 16}, {45, 96, 17}, {96, 4096, 40}, {200, 160, 300}, {64, 2048, 257}, {33, 608, 33},
		} {
			m := randMat(r, typ, c.rows, c.cols)
			x := randVec(r, c.n*c.cols)
			want := make([]float32, c.n*c.rows)
			refMatMul(want, m, x, c.n)
			var first []float32
			for _, threads := range []int{1, 2, 3} {
				SetThreads(threads)
				got := make([]float32, c.n*c.rows)
				var used bool
				if typ != Q8_0 {
					used = amxMatMul(got, m, x, c.n)
				} else if used = amxQ8Applies(m, c.n); used {
					a := quantizeActs(x, c.n, c.cols, true)
					amxQ8MatMul(got, m, a, c.n)
					putActs(a)
				}
				if !used {
					t.Fatalf("%v %dx%d n=%d: AMX declined", typ, c.rows, c.cols, c.n)
				}
				if first == nil {
					first = got
					// MatMul must take the same path (and quantize what
					// the rows past the tiles need).
					viaMatMul := make([]float32, c.n*c.rows)
					MatMul(viaMatMul, m, x, c.n)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(viaMatMul[i]) {
							t.Fatalf("%v %dx%d n=%d: MatMul output %d is %g, AMX %g", typ, c.rows, c.cols, c.n, i, viaMatMul[i], got[i])
						}
					}
					for tok := 0; tok < c.n; tok++ {
						mag := absMatVec(m, x[tok*c.cols:(tok+1)*c.cols])
						for i := 0; i < c.rows; i++ {
							g, w := got[tok*c.rows+i], want[tok*c.rows+i]
							// BF16 is as exact as the FMA kernels: hold it
							// to 1e-6 rather than closeDot's 1e-5.
							if d := math.Abs(float64(g - w)); !closeDot(g, w, mag[i]) || typ != Q8_0 && d > 1e-6*float64(mag[i]) {
								t.Fatalf("%v %dx%d n=%d token %d row %d: got %g, reference %g", typ, c.rows, c.cols, c.n, tok, i, g, w)
							}
						}
					}
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%v %dx%d n=%d: output %d is %g with %d threads, %g with 1", typ, c.rows, c.cols, c.n, i, got[i], threads, first[i])
					}
				}
			}
		}
	}
}
