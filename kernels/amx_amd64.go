//go:build !purego

package kernels

import (
	"math"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Prefill with AMX tiles: BF16 weights on CPUs with AMX-BF16, Q8_0 weights
// on CPUs with AMX-INT8.
//
// A bf16 tile multiply takes bf16 on both sides, and moco keeps its
// activations in f32. So each activation is split into three bf16 parts,
// hi + mid + lo, which together hold all 24 significant bits of the f32
// exactly, and the weights (already bf16) are multiplied by each part.
// Every product is exact and the sums are f32, as in the other kernels: the
// result differs from theirs only in the order of the additions. Three
// passes still leave AMX 2-4x faster than f32 FMAs. (F32 weights split the
// same way need six products of parts, twice the tile work, plus the split:
// no faster than the FMA kernels, so they stay there.)
//
// The weights are read in place, 16 rows by 32 columns per tile; the
// activations are packed once per product into the layout that the tile
// instruction expects (bf16 pairs, tokens across). The work is cut in row
// blocks of 32 over the threads; each output element is summed in an order
// that depends only on the number of tokens, never on the thread count.
//
// Q8_0 products quantize the activations to int8 as every Q8_0 path does
// (q8.go), so each block's dot product is exact in int32 tiles; AVX-512
// then scales it by the weight's and the token's block scales.

//go:noescape
func amxBF16(cfg, c unsafe.Pointer, ldc, acc int, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb, ksteps, parts, ldp int, pf unsafe.Pointer, pfrows int)

//go:noescape
func amxQ8(cfg, c, tmp, a unsafe.Pointer, lda int, ws, b unsafe.Pointer, ldb int, xs unsafe.Pointer, nb int)

//go:noescape
func amxTrans512(dst, src unsafe.Pointer, lds, count, cols, ldd int)

//go:noescape
func amxPack512(b, x unsafe.Pointer, ldx, count, pairs, ldb, plane, parts int)

//go:noescape
func amxUnpack512(dst, c unsafe.Pointer, ldc, rows, count, ldd int)

const (
	// amxParts is the number of bf16 parts an f32 activation is split into.
	amxParts = 3
	// amxMinTokens is the fewest tokens for which MatMul uses AMX: fewer
	// leave most of a 32-token tile empty (and decoding a token or
	// verifying a few drafts keeps the f32 kernels' exact agreement with
	// MatVec).
	amxMinTokens = 16
	// amxMaxTokens tokens are packed and multiplied at a time.
	amxMaxTokens = 256
	// amxChunkRows rows of the result are gathered in a thread's scratch
	// before they are written out token by token.
	amxChunkRows = 128
	// amxBlockBytes bounds one column block of packed activations, which
	// stays in L2 while the rows of a chunk sweep over it.
	amxBlockBytes = 768 << 10
)

var (
	// amxAvailable: the CPU has AMX-BF16 and the OS lets this process use
	// the tile registers. MOCO_AMX=0 in the environment turns it off.
	amxAvailable = amxInit()
	amxOn        bool // AMX is in use (see useSIMD)
	// amxInt8: AMX-INT8 too, for Q8_0 weights.
	amxInt8 = amxAvailable && cpu.X86.HasAMXInt8

	// amxCfg is the tile configuration: palette 1, all eight tiles 16 rows
	// of 64 bytes.
	amxCfg = func() (c [64]byte) {
		c[0] = 1
		for i := 0; i < 8; i++ {
			c[16+2*i] = 64
			c[48+i] = 16
		}
		return c
	}()

	// amxCfgQ8 is the configuration for Q8_0: C tiles of 16 rows of 16
	// int32, A tiles of 16 rows of one block (32 bytes), B tiles of 8 rows
	// of 16 tokens' dwords.
	amxCfgQ8 = func() (c [64]byte) {
		c[0] = 1
		for i := 0; i < 8; i++ {
			c[16+2*i], c[48+i] = 64, 16
		}
		c[16+2*4], c[16+2*5] = 32, 32
		c[48+6], c[48+7] = 8, 8
		return c
	}()

	amxPackScratch sync.Pool // packed activations
	amxOutScratch  sync.Pool // a chunk of results, rows x tokens
)

// amxInit reports whether AMX-BF16 can be used, asking the OS for the
// tile state first (amxPermit).
func amxInit() bool {
	if os.Getenv("MOCO_AMX") == "0" || !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 || !hasAVX512() {
		return false
	}
	return amxPermit()
}

// amxMatMul computes MatMul with AMX tiles and reports whether it did;
// it declines (leaving dst alone) where AMX does not apply.
// amxTakes reports whether amxMatMul computes n tokens of m.
func amxTakes(m *Mat, n int) bool {
	return amxOn && m.Type == BF16 && n >= amxMinTokens && m.Cols%32 == 0 && m.Rows >= 32
}

func amxMatMul(dst []float32, m *Mat, x []float32, n int) bool {
	R, C := m.Rows, m.Cols
	if !amxTakes(m, n) {
		return false
	}
	rows := R &^ 31
	for t0 := 0; t0 < n; t0 += amxMaxTokens {
		cnt := min(n-t0, amxMaxTokens)
		np := (cnt + 31) &^ 31
		size := amxParts * C / 2 * np
		b, bp := getScratch[uint32](&amxPackScratch, size)
		xs := x[t0*C:]
		parallel(np/16, np*C*amxParts, 1, func(g0, g1 int) {
			for g := g0; g < g1; g++ { // 16 tokens; those past cnt are zeros
				real := min(16, max(0, cnt-16*g))
				xg := unsafe.Pointer(&xs[0])
				if real > 0 {
					xg = unsafe.Pointer(&xs[16*g*C])
				}
				amxPack512(unsafe.Pointer(&b[16*g]), xg, 4*C, real, C/2, 4*np, 4*C/2*np, amxParts)
			}
		})
		kc := min(C, max(32, amxBlockBytes/(amxParts*2*np)&^31))
		parallel(rows/32, rows*C*cnt, 1, func(b0, b1 int) {
			amxRows(dst[t0*R:], m, b, cnt, np, kc, b0*32, b1*32)
		})
		amxPackScratch.Put(bp)
	}
	if rows < R {
		matMulRows(dst, m, x, n, rows, R)
	}
	return true
}

// amxRows computes rows [r0, r1) (multiples of 32) of the result for cnt
// tokens whose activations b holds packed for np tokens, with column
// blocks of kc.
func amxRows(dst []float32, m *Mat, b []uint32, cnt, np, kc, r0, r1 int) {
	R, C := m.Rows, m.Cols
	size := amxChunkRows * np
	ct, ctp := getScratch[float32](&amxOutScratch, size)
	defer amxOutScratch.Put(ctp)
	ldp := 4 * C / 2 * np // bytes from one part's plane to the next
	// While the token blocks of one row block run, the next row block's
	// weights (the same columns) are prefetched, pfRows rows per call.
	pfRows := (32 + np/32 - 1) / (np / 32)
	for c0 := r0; c0 < r1; c0 += amxChunkRows {
		c1 := min(r1, c0+amxChunkRows)
		for k0 := 0; k0 < C; k0 += kc {
			k1 := min(C, k0+kc)
			acc := 0
			if k0 > 0 {
				acc = 1
			}
			for r := c0; r < c1; r += 32 {
				a := unsafe.Pointer(&m.Half[r*C+k0])
				next := -1 // the next row block's first weight at these columns
				if r+32 < r1 {
					next = (r+32)*C + k0
				}
				for t := 0; t < np; t += 32 {
					var pf unsafe.Pointer
					n := 0
					if p0 := t / 32 * pfRows; next >= 0 && p0 < 32 {
						pf, n = unsafe.Pointer(&m.Half[next+p0*C]), min(pfRows, 32-p0)
					}
					amxBF16(unsafe.Pointer(&amxCfg), unsafe.Pointer(&ct[(r-c0)*np+t]), 4*np, acc,
						a, 2*C, unsafe.Pointer(&b[k0/2*np+t]), 4*np, (k1-k0)/32, amxParts, ldp, pf, n)
				}
			}
		}
		amxUnpack512(unsafe.Pointer(&dst[c0]), unsafe.Pointer(&ct[0]), 4*np, c1-c0, cnt, 4*R)
	}
}

// amxPack is the reference for amxPack512: it splits tokens [ta, tb) of x
// (rows of C floats) into amxParts bf16 parts and stores them in b: part s,
// column pair j, token t at b[(s*C/2+j)*np+t], the pair's even column in
// the low half.
func amxPack(b []uint32, x []float32, C, np, ta, tb int) {
	plane := C / 2 * np
	for t := ta; t < tb; t++ {
		row := x[t*C : (t+1)*C]
		for j := 0; j < C/2; j++ {
			e, o := row[2*j], row[2*j+1]
			i := j*np + t
			for s := 0; s < amxParts; s++ {
				he, ho := bf16Cut(e), bf16Cut(o)
				b[i] = he>>16 | ho
				e -= math.Float32frombits(he)
				o -= math.Float32frombits(ho)
				i += plane
			}
		}
	}
}

// bf16Cut returns the bits of f's upper half, a bf16 (f rounded toward
// zero), in the upper half of a float32's. Cutting rather than rounding
// splits exactly all the same: each part takes the next 8 of the 24
// significant bits, so the third remainder fits a bf16 whole.
func bf16Cut(f float32) uint32 { return math.Float32bits(f) &^ 0xffff }

// amxQ8Applies reports whether amxQ8MatMul takes the product of m with n
// tokens.
func amxQ8Applies(m *Mat, n int) bool {
	return amxOn && amxInt8 && n >= amxMinTokens && m.Rows >= 32
}

// amxQ8MatMul computes the Q8_0 MatMul of m with the n quantized tokens
// of a with AMX-INT8 tiles, where amxQ8Applies. Each block's integer dots
// are exact, as in every Q8_0 path; only the order of the float additions
// differs. The rows past the last multiple of 32 need a's records.
func amxQ8MatMul(dst []float32, m *Mat, a *q8Acts, n int) {
	R, C := m.Rows, m.Cols
	nb := C / BlockSize
	rows := R &^ 31
	for t0 := 0; t0 < n; t0 += amxMaxTokens {
		cnt := min(n-t0, amxMaxTokens)
		np := (cnt + 31) &^ 31
		size := (C/4 + nb) * np
		b, bp := getScratch[uint32](&amxPackScratch, size)
		// Values as dwords of four columns, then scales, tokens across.
		bq, bs := b[:C/4*np], b[C/4*np:]
		parallel(np/16, np*C, 1, func(g0, g1 int) {
			for g := g0; g < g1; g++ { // 16 tokens; those past cnt are zeros
				real := min(16, max(0, cnt-16*g))
				t := t0
				if real > 0 {
					t += 16 * g
				}
				amxTrans512(unsafe.Pointer(&bq[16*g]), unsafe.Pointer(&a.q[t*C]), C, real, C/4, 4*np)
				amxTrans512(unsafe.Pointer(&bs[16*g]), unsafe.Pointer(&a.s[t*nb]), 4*nb, real, nb, 4*np)
			}
		})
		parallel(rows/32, rows*C*cnt, 1, func(b0, b1 int) {
			// ct: 32x32 results; tmp: a block's integer dots; ws: the
			// row block's scales, 32 rows per block.
			size := 2*1024 + 32*nb
			f, fp := getScratch[float32](&amxOutScratch, size)
			defer amxOutScratch.Put(fp)
			ct, tmp, ws := f[:1024], f[1024:2048], f[2048:]
			for blk := b0; blk < b1; blk++ {
				r := 32 * blk
				for i := 0; i < 32; i++ {
					for k, s := range m.Scales[(r+i)*nb : (r+i+1)*nb] {
						ws[k*32+i] = F16ToF32(s)
					}
				}
				for t := 0; t < np; t += 32 {
					amxQ8(unsafe.Pointer(&amxCfgQ8), unsafe.Pointer(&ct[0]), unsafe.Pointer(&tmp[0]),
						unsafe.Pointer(&m.Q[r*C]), C, unsafe.Pointer(&ws[0]),
						unsafe.Pointer(&bq[t]), 4*np, unsafe.Pointer(&bs[t]), nb)
					amxUnpack512(unsafe.Pointer(&dst[(t0+t)*R+r]), unsafe.Pointer(&ct[0]), 128, 32, min(32, cnt-t), 4*R)
				}
			}
		})
		amxPackScratch.Put(bp)
	}
	if rows < R {
		q8MatMulRows(dst, m, a, n, rows, R)
	}
}
