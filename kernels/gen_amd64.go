//go:build ignore

// This program writes simd_amd64.s, the AVX-512 and AVX2 assembly of the
// matrix kernels. The kernels differ only in how they load and widen a
// weight type, so they are generated rather than written out by hand.
//
//	go run gen_amd64.go
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"
)

// wtype describes how one weight type is loaded and widened to float32.
type wtype struct {
	name  string
	shift int // log2 of the bytes per weight
	// load512 widens 16 weights at byte offset off of row base into zmm d
	// (load256 8 into ymm d); the last argument is unused.
	load512 func(off int, base, d, _ string) string
	load256 func(off int, base, d, _ string) string
}

func lines(s ...string) string { return strings.Join(s, "\n\t") }

var types = []wtype{
	{"F32", 2,
		func(off int, b, d, _ string) string { return fmt.Sprintf("VMOVUPS %d(%s)(AX*4), %s", off, b, d) },
		func(off int, b, d, _ string) string { return fmt.Sprintf("VMOVUPS %d(%s)(AX*4), %s", off, b, d) }},
	{"BF16", 1,
		func(off int, b, d, _ string) string {
			return lines(fmt.Sprintf("VPMOVZXWD %d(%s)(AX*2), %s", off, b, d), fmt.Sprintf("VPSLLD $16, %s, %s", d, d))
		},
		func(off int, b, d, _ string) string {
			return lines(fmt.Sprintf("VPMOVZXWD %d(%s)(AX*2), %s", off, b, d), fmt.Sprintf("VPSLLD $16, %s, %s", d, d))
		}},
	{"F16", 1,
		func(off int, b, d, _ string) string { return fmt.Sprintf("VCVTPH2PS %d(%s)(AX*2), %s", off, b, d) },
		func(off int, b, d, _ string) string { return fmt.Sprintf("VCVTPH2PS %d(%s)(AX*2), %s", off, b, d) }},
}

var out bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

func z(i int) string { return fmt.Sprintf("Z%d", i) }
func y(i int) string { return fmt.Sprintf("Y%d", i) }
func x(i int) string { return fmt.Sprintf("X%d", i) }

// hsum512 reduces zmm i to its lane sum in X i, in a fixed order.
func hsum512(i int) {
	p("\tVEXTRACTF64X4 $1, Z%d, Y26", i)
	p("\tVADDPS Y26, Y%d, Y%d", i, i)
	p("\tVEXTRACTF32X4 $1, Y%d, X26", i)
	p("\tVADDPS X26, X%d, X%d", i, i)
	p("\tVMOVHLPS X%d, X%d, X26", i, i)
	p("\tVADDPS X26, X%d, X%d", i, i)
	p("\tVMOVSHDUP X%d, X26", i)
	p("\tVADDSS X26, X%d, X%d", i, i)
}

func hsum256(i int) {
	p("\tVEXTRACTF128 $1, Y%d, X13", i)
	p("\tVADDPS X13, X%d, X%d", i, i)
	p("\tVMOVHLPS X%d, X%d, X13", i, i)
	p("\tVADDPS X13, X%d, X%d", i, i)
	p("\tVMOVSHDUP X%d, X13", i)
	p("\tVADDSS X13, X%d, X%d", i, i)
}

// prefetchAhead is how many bytes ahead of the loads mv512 prefetches.
var prefetchAhead = 384

// streamAhead is how many bytes ahead of its loads each of the AVX2
// four-run loops (mvRuns with ymm, mv256Q8s) prefetches (STREAM_AHEAD; 0:
// none). Measured on Zen 5 (moco bench speed, Qwen2.5-0.5B bf16, alternated
// binaries under load): generation 1.10x at one thread and 1.19x at two
// against no prefetch, 1.27x in the bf16-activation mode, whose loop of one
// load and one VDPBF16PS a row gained most; 1024 bytes did as well, 4096
// worse (0.91x). The hardware prefetchers alone keep too few lines in
// flight for four streams.
var streamAhead = 2048

// streamAhead512 is the same for the AVX-512 four-run loops (mvRuns with
// zmm, mv512Q8s; STREAM_AHEAD512). On a later Zen 5 VM with faster memory
// (40-44 GB/s a thread), 2048 bytes left 2-4% on the table: the kernels-only
// 0.5B model, decoding steps alternated in one process between loops that
// differ only in this distance, 100 rounds, medians of the per-round
// ratios against 2048, two runs each at one and two threads: 1536 bytes
// 1.02-1.04x exact bf16, 1.01-1.04x bf16-activation, 1.02-1.04x Q8_0;
// 1024 bytes 0.995-1.06x. 1536 gains on that VM without going far from the
// 2048 the earlier VM preferred.
var streamAhead512 = 1536

// runAhead returns the prefetch distance of a four-run loop over vec registers.
func runAhead(vec string) int {
	if vec == "Z" {
		return streamAhead512
	}
	return streamAhead
}

var wregs = []string{"R10", "R11", "R12", "R13"}

// rowPointers sets R10-R13 to four consecutive weight rows from R10 and, for
// Q8_0, SI, R8, R9, R14 to their scale rows from SI. ldw is at ldwOff(FP).
func rowPointers(t wtype, ldwArg string) {
	p("\tMOVQ %s, BX", ldwArg)
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	p("\tLEAQ (R10)(BX*1), R11")
	p("\tLEAQ (R11)(BX*1), R12")
	p("\tLEAQ (R12)(BX*1), R13")
	if t.name == "Q8" {
		p("\tMOVQ %s, BX", ldwArg)
		p("\tSHRQ $4, BX")
		p("\tLEAQ (SI)(BX*1), R8")
		p("\tLEAQ (R8)(BX*1), R9")
		p("\tLEAQ (R9)(BX*1), R14")
	}
}

// loadRow512 widens 32 weights of row r (at column AX) into Z16+2r, Z17+2r.
func loadRow512(t wtype, r int) {
	bytes16 := 16 << t.shift
	p("\t%s", t.load512(0, wregs[r], z(16+2*r), ""))
	p("\t%s", t.load512(bytes16, wregs[r], z(17+2*r), ""))
}

// mv512 writes func mv512T(dst, w, s, x unsafe.Pointer, rows, k, ldw int).
func mv512(t wtype) {
	fn := "mv512" + t.name
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ k+40(FP), CX")
	if rows8 {
		mv512rows8(t, fn)
	}
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	rowPointers(t, "ldw+48(FP)")
	for r := 0; r < 4; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tVMOVUPS (DX)(AX*4), Z24")
	p("\tVMOVUPS 64(DX)(AX*4), Z25")
	for r := 0; r < 4; r++ {
		p("\tPREFETCHT0 %d(%s)(AX*%d)", prefetchAhead, wregs[r], 1<<t.shift)
	}
	for r := 0; r < 4; r++ {
		loadRow512(t, r)
	}
	for r := 0; r < 4; r++ {
		p("\tVFMADD231PS Z24, Z%d, Z%d", 16+2*r, r)
	}
	for r := 0; r < 4; r++ {
		p("\tVFMADD231PS Z25, Z%d, Z%d", 17+2*r, r)
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	for r := 0; r < 4; r++ {
		hsum512(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	mv512rows1(t, fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mv512rows1 emits mv512's one-row loop, which ends at fn_done: one
// accumulator, so each row's multiply-adds form a single chain.
func mv512rows1(t wtype, fn string) {
	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Z0, Z0, Z0")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	p("\tVMOVUPS (DX)(AX*4), Z24")
	p("\tVMOVUPS 64(DX)(AX*4), Z25")
	loadRow512(t, 0)
	p("\tVFMADD231PS Z24, Z16, Z0")
	p("\tVFMADD231PS Z25, Z17, Z0")
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	hsum512(0)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	p("\tADDQ BX, R10")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
}

// mv512s writes func mv512Ts(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// the rows cut into four equal runs, one row of each run at a time (the
// rest, under four rows, by mv512's one-row loop). Each run is read as one
// sequential stream, far from the others, which the hardware prefetcher
// follows at full speed; mv512's eight-row loop reads eight neighbouring
// rows at once, which it follows less well, so that loop prefetches the next
// eight rows in software. The four runs also give four independent chains
// of multiply-adds where one row alone would wait on its own. Each row's
// sums are those of mv512 bit for bit: every loop gives a row the same
// multiply-adds in the same order.
func mv512s(t wtype) {
	fn := "mv512" + t.name + "s"
	mvRuns(fn, t.shift, "Z", hsum512, func() {
		p("\tVMOVUPS (DX)(AX*4), Z24")
		p("\tVMOVUPS 64(DX)(AX*4), Z25")
		for r := 0; r < 4; r++ {
			loadRow512(t, r)
		}
		for r := 0; r < 4; r++ {
			p("\tVFMADD231PS Z24, Z%d, Z%d", 16+2*r, r)
		}
		for r := 0; r < 4; r++ {
			p("\tVFMADD231PS Z25, Z%d, Z%d", 17+2*r, r)
		}
	}, func() { mv512rows1(t, fn) })
}

// mvRuns emits a function of the mv*s kind, func fn(dst, w, s, x
// unsafe.Pointer, rows, k, ldw int): the rows cut into four equal runs
// whose row pointers are R10-R13, each run's sums going to accumulator r
// (vector register kind "Z" or "Y"), over 32 columns (of 1<<shift bytes a
// weight) per iteration of body; hsum reduces an accumulator, rows1 emits
// the one-row loop that does the rest (it ends at fn_done).
func mvRuns(fn string, shift int, vec string, hsum func(int), body, rows1 func()) {
	runs := []string{"R10", "R11", "R12", "R13"}
	dsts := []string{"DI", "SI", "R9", "R14"}
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ k+40(FP), CX")
	p("\tMOVQ rows+32(FP), R8")
	p("\tSHRQ $2, R8") // rows per run
	p("\tJZ %s_rows1", fn)
	p("\tMOVQ ldw+48(FP), BX")
	if shift > 0 {
		p("\tSHLQ $%d, BX", shift)
	}
	p("\tMOVQ R8, AX")
	p("\tIMULQ BX, AX") // bytes per run
	for r := 1; r < 4; r++ {
		p("\tLEAQ (%s)(AX*1), %s", runs[r-1], runs[r])
		p("\tLEAQ (%s)(R8*4), %s", dsts[r-1], dsts[r])
	}
	p("%s_runs:", fn)
	for r := 0; r < 4; r++ {
		p("\tVXORPS %s%d, %s%d, %s%d", vec, r, vec, r, vec, r)
	}
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	// One prefetch per cache line of each run, runAhead(vec) bytes ahead.
	for off := 0; off < 32<<shift; off += 64 {
		for r := 0; r < 4 && runAhead(vec) > 0; r++ {
			p("\tPREFETCHT0 %d(%s)(AX*%d)", runAhead(vec)+off, runs[r], 1<<shift)
		}
	}
	body()
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	for r := 0; r < 4; r++ {
		hsum(r)
		p("\tVMOVSS X%d, (%s)", r, dsts[r])
		p("\tADDQ $4, %s", dsts[r])
		p("\tADDQ BX, %s", runs[r])
	}
	p("\tDECQ R8")
	p("\tJNZ %s_runs", fn)
	// The last run ends where the rest begins.
	p("\tMOVQ R13, R10")
	p("\tMOVQ R14, DI")
	p("\tANDQ $3, rows+32(FP)")
	rows1()
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// rows8 makes mv512 stream eight rows at once: more loads in flight per
// core.
var rows8 = true

var prefetch8 = true

// prefetchSpread interleaves mv512's prefetches with the row loads
// instead of issuing them together at the top of each iteration
// (PREFETCH_SPREAD=1). It made no measurable difference to the widening
// kernels, whose longer loop spaces the prefetches out anyway, unlike
// mv512BF16d's (Zen 5, alternated runs over the Qwen2.5-0.5B matrices).
var prefetchSpread bool

var wregs8 = []string{"R10", "R11", "R12", "R13", "SI", "R8", "R9", "R14"}

// mv512rows8 emits the eight-row loop of mv512; each accumulator sees the
// same sequence of multiply-adds as in the four- and one-row loops.
func mv512rows8(t wtype, fn string) {
	p("%s_rows8:", fn)
	p("\tCMPQ rows+32(FP), $8")
	p("\tJLT %s_rows4", fn)
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	for r := 1; r < 8; r++ {
		p("\tLEAQ (%s)(BX*1), %s", wregs8[r-1], wregs8[r])
	}
	for r := 0; r < 8; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	if prefetch8 {
		p("\tMOVQ DI, dst+0(FP)") // DI walks the next group until the stores
		p("\tLEAQ (R14)(BX*1), DI")
	}
	p("\tXORQ AX, AX")
	p("%s_loop8:", fn)
	p("\tVMOVUPS (DX)(AX*4), Z24")
	p("\tVMOVUPS 64(DX)(AX*4), Z25")
	bytes16 := 16 << t.shift
	if prefetch8 {
		// The rows are contiguous, so the next group of eight rows is one
		// block right after this one: fetch as much of it per iteration
		// as this iteration reads, and it is in cache when its turn comes.
		if !prefetchSpread {
			for l := 0; l < 4<<t.shift; l++ {
				p("\tPREFETCHT0 %d(DI)", 64*l)
			}
			p("\tADDQ $%d, DI", 256<<t.shift)
		}
	}
	for r := 0; r < 8; r++ {
		d0, d1 := z(8+2*r), z(9+2*r)
		if prefetch8 && prefetchSpread {
			for l := r * (4 << t.shift) / 8; l < (r+1)*(4<<t.shift)/8; l++ {
				p("\tPREFETCHT0 %d(DI)", 64*l)
			}
		}
		p("\t%s", t.load512(0, wregs8[r], d0, ""))
		p("\t%s", t.load512(bytes16, wregs8[r], d1, ""))
		p("\tVFMADD231PS Z24, %s, Z%d", d0, r)
		p("\tVFMADD231PS Z25, %s, Z%d", d1, r)
	}
	if prefetch8 && prefetchSpread {
		p("\tADDQ $%d, DI", 256<<t.shift)
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop8", fn)
	if prefetch8 {
		p("\tMOVQ dst+0(FP), DI")
	}
	p("\tVMOVDQU32 sumidx<>(SB), Z26")
	hsumTree([]int{0, 1, 2, 3, 4, 5, 6, 7})
	p("\tVMOVUPS Y24, (DI)") // eight sums
	p("\tADDQ $32, DI")
	p("\tLEAQ (R14)(BX*1), R10")
	p("\tSUBQ $8, rows+32(FP)")
	p("\tJMP %s_rows8", fn)
}

// mm512 writes func mm512T(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// a tile of 4 weight rows x 4 tokens, accumulator Z(4t+r) for row r, token t.
func mm512(t wtype) {
	fn := "mm512" + t.name
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	rowPointers(t, "ldw+40(FP)")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tSHLQ $2, DI")
	p("\tLEAQ (DI)(DI*2), CX")
	for i := 0; i < 16; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	for r := 0; r < 4; r++ {
		loadRow512(t, r)
	}
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for tok := 0; tok < 4; tok++ {
		p("\tVMOVUPS %s, Z24", xaddr[tok])
		p("\tVMOVUPS 64%s, Z25", xaddr[tok])
		for r := 0; r < 4; r++ {
			p("\tVFMADD231PS Z24, Z%d, Z%d", 16+2*r, 4*tok+r)
		}
		for r := 0; r < 4; r++ {
			p("\tVFMADD231PS Z25, Z%d, Z%d", 17+2*r, 4*tok+r)
		}
	}
	p("\tADDQ $128, DX")
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	storeTile4x4()
}

// sixRowsHeader starts a six-row tile function fn(dst, w, s, x
// unsafe.Pointer, ldd, ldw, ldx, k int): its header, and the six weight
// rows' pointers in rows from w with stride ldw.
func sixRowsHeader(t wtype, fn string, rows []string) {
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ ldw+40(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	for r := 1; r < 6; r++ {
		p("\tLEAQ (%s)(BX*1), %s", rows[r-1], rows[r])
	}
}

// mm6x4 writes func mm6x4T(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// a tile of 6 weight rows x 4 tokens (accumulator Z(4r+t)), for the types
// without scales. Against the 4x4 tile it loads each token's activations
// once for six rows instead of four, which is what limits the 4x4 tile on
// long rows (the activations stream from L2).
func mm6x4(t wtype) {
	fn := "mm6x4" + t.name
	rows := []string{"R10", "R11", "R12", "R13", "SI", "R8"}
	bytes16 := 16 << t.shift
	sixRowsHeader(t, fn, rows)
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tSHLQ $2, DI")
	p("\tLEAQ (DI)(DI*2), CX")
	for i := 0; i < 24; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for h := 0; h < 2; h++ {
		for tok := 0; tok < 4; tok++ {
			p("\tVMOVUPS %d%s, Z%d", 64*h, xaddr[tok], 24+tok)
		}
		for r := 0; r < 6; r++ {
			w := z(28 + r%2)
			p("\t%s", t.load512(h*bytes16, rows[r], w, ""))
			for tok := 0; tok < 4; tok++ {
				p("\tVFMADD231PS Z%d, %s, Z%d", 24+tok, w, 4*r+tok)
			}
		}
	}
	p("\tADDQ $128, DX")
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+32(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tVMOVDQU32 sumidx<>(SB), Z26")
	p("\tMOVL $0x3f, AX")
	p("\tKMOVW AX, K1")
	for tok := 0; tok < 4; tok++ {
		hsumTree([]int{tok, 4 + tok, 8 + tok, 12 + tok, 16 + tok, 20 + tok})
		p("\tVMOVUPS Z24, K1, (DI)") // six sums
		if tok < 3 {
			p("\tADDQ CX, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// hsumTree leaves the lane sums of six or eight accumulators (registers
// accs) in lanes 0.. of Z24, in order, by a transposing tree: the pairs it
// adds are the pairs hsum512 adds (lanes i and i+8, then i and i+4, i and
// i+2, i and i+1), so each sum equals hsum512's bit for bit, in about half
// the instructions. The accumulators are overwritten; Z25 is scratch and
// Z26 must hold sumidx.
func hsumTree(accs []int) {
	// Level 1: accumulators 2k and 2k+1 into one register, 8 lanes each.
	for k := 0; 2*k < len(accs); k++ {
		a, b := accs[2*k], accs[2*k+1]
		p("\tVSHUFF32X4 $0x44, Z%d, Z%d, Z24", b, a)
		p("\tVSHUFF32X4 $0xee, Z%d, Z%d, Z25", b, a)
		p("\tVADDPS Z25, Z24, Z%d", a)
	}
	// Level 2: 4 lanes per accumulator; accumulators 0-3 in the 128-bit
	// lanes of accs[0], 4-7 in those of accs[4] (with six: 4, 5, 4, 5).
	p0, p1, p2, p3 := accs[0], accs[2], accs[4], accs[4]
	if len(accs) == 8 {
		p3 = accs[6]
	}
	for _, q := range [][2]int{{p0, p1}, {p2, p3}} {
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z24", q[1], q[0])
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z25", q[1], q[0])
		p("\tVADDPS Z25, Z24, Z%d", q[0])
	}
	// Level 3: 2 lanes per accumulator.
	p("\tVSHUFPS $0x44, Z%d, Z%d, Z24", p2, p0)
	p("\tVSHUFPS $0xee, Z%d, Z%d, Z25", p2, p0)
	p("\tVADDPS Z25, Z24, Z%d", p0)
	// Level 4: one lane each; accumulator r < 4 in lane 4r, r >= 4 in
	// lane 4(r-4)+1. sumidx gathers them in order.
	p("\tVSHUFPS $0x88, Z%d, Z%d, Z24", p0, p0)
	p("\tVSHUFPS $0xdd, Z%d, Z%d, Z25", p0, p0)
	p("\tVADDPS Z25, Z24, Z24")
	p("\tVPERMPS Z24, Z26, Z24")
}

// mv256 is mv512 for AVX2: 8 lanes, four quarter-steps per 32 columns,
// eight rows at a time (mv256rows8), then four, then one, each row summed
// in the same order whichever loop takes it. The next group of rows is
// prefetched while one group is read: without that, Zen 5 streamed a
// model's rows from memory at 60-70% of the rate it does with it.
// mv256Row widens 32 weights of row r (wregs[r], column AX) into Y8-Y11 and
// adds their products with the activations in Y4-Y7 to Y(r).
func mv256Row(t wtype, r int) {
	bytes8 := 8 << t.shift
	for q := 0; q < 4; q++ {
		p("\t%s", t.load256(q*bytes8, wregs[r], y(8+q), ""))
	}
	for q := 0; q < 4; q++ {
		p("\tVFMADD231PS Y%d, Y%d, Y%d", 4+q, 8+q, r)
	}
}

func mv256(t wtype) {
	fn := "mv256" + t.name
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ k+40(FP), CX")
	mv256rows8(t, fn)
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	rowPointers(t, "ldw+48(FP)")
	p("\tLEAQ (R13)(BX*1), R8")
	for r := 0; r < 4; r++ {
		p("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	for q := 0; q < 4; q++ {
		p("\tVMOVUPS %d(DX)(AX*4), Y%d", 32*q, 4+q)
	}
	// The rows are contiguous: fetch as much of the next group of four
	// rows (from R8) per iteration as this iteration reads, as mv512's
	// rows8 does.
	for l := 0; l < 2<<t.shift; l++ {
		p("\tPREFETCHT0 %d(R8)", 64*l)
	}
	p("\tADDQ $%d, R8", 128<<t.shift)
	for r := 0; r < 4; r++ {
		mv256Row(t, r)
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	for r := 0; r < 4; r++ {
		hsum256(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	mv256rows1(t, fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mv256rows1 emits mv256's one-row loop, which ends at fn_done.
func mv256rows1(t wtype, fn string) {
	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Y0, Y0, Y0")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	for q := 0; q < 4; q++ {
		p("\tVMOVUPS %d(DX)(AX*4), Y%d", 32*q, 4+q)
	}
	mv256Row(t, 0)
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	hsum256(0)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	p("\tADDQ BX, R10")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
}

// mv256s writes func mv256Ts(dst, w, s, x unsafe.Pointer, rows, k, ldw int),
// mv512s for AVX2: four runs of rows far apart, a row of each at a time,
// the rest by mv256's one-row loop; each row's sums bit for bit mv256's.
func mv256s(t wtype) {
	fn := "mv256" + t.name + "s"
	mvRuns(fn, t.shift, "Y", hsum256, func() {
		for q := 0; q < 4; q++ {
			p("\tVMOVUPS %d(DX)(AX*4), Y%d", 32*q, 4+q)
		}
		for r := 0; r < 4; r++ {
			mv256Row(t, r)
		}
	}, func() { mv256rows1(t, fn) })
}

// mv256rows8 is mv256's loop over eight rows: accumulators Y0-Y7, the
// activations in Y8-Y11, each row's four quarter-steps widened into
// Y12-Y15 and summed in mv256's order.
func mv256rows8(t wtype, fn string) {
	bytes8 := 8 << t.shift
	p("%s_rows8:", fn)
	p("\tCMPQ rows+32(FP), $8")
	p("\tJLT %s_rows4", fn)
	p("\tMOVQ ldw+48(FP), BX")
	if t.shift > 0 {
		p("\tSHLQ $%d, BX", t.shift)
	}
	for r := 1; r < 8; r++ {
		p("\tLEAQ (%s)(BX*1), %s", wregs8[r-1], wregs8[r])
	}
	p("\tMOVQ DI, dst+0(FP)") // DI walks the next group until the stores
	p("\tLEAQ (R14)(BX*1), DI")
	for r := 0; r < 8; r++ {
		p("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	p("\tXORQ AX, AX")
	p("%s_loop8:", fn)
	for q := 0; q < 4; q++ {
		p("\tVMOVUPS %d(DX)(AX*4), Y%d", 32*q, 8+q)
	}
	for l := 0; l < 4<<t.shift; l++ {
		p("\tPREFETCHT0 %d(DI)", 64*l)
	}
	p("\tADDQ $%d, DI", 256<<t.shift)
	for r := 0; r < 8; r++ {
		for q := 0; q < 4; q++ {
			p("\t%s", t.load256(q*bytes8, wregs8[r], y(12+q), ""))
		}
		for q := 0; q < 4; q++ {
			p("\tVFMADD231PS Y%d, Y%d, Y%d", 8+q, 12+q, r)
		}
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop8", fn)
	p("\tMOVQ dst+0(FP), DI")
	for r := 0; r < 8; r++ {
		hsum256(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $32, DI")
	p("\tLEAQ (R14)(BX*1), R10")
	p("\tSUBQ $8, rows+32(FP)")
	p("\tJMP %s_rows8", fn)
}

func main() {
	if os.Getenv("ROWS8") == "0" {
		rows8 = false
	}
	if os.Getenv("PREFETCH8") == "0" {
		prefetch8 = false
	}
	if v := os.Getenv("PREFETCH_INSN"); v != "" {
		prefetchInsn = v
	}
	if v := os.Getenv("PREFETCH_PAIRS"); v != "" {
		fmt.Sscan(v, &prefetchPairs)
	}
	if os.Getenv("PREFETCH_SPREAD") == "1" {
		prefetchSpread = true
	}
	if v := os.Getenv("STREAM_AHEAD"); v != "" {
		fmt.Sscan(v, &streamAhead)
	}
	if v := os.Getenv("STREAM_AHEAD512"); v != "" {
		fmt.Sscan(v, &streamAhead512)
	}
	if v := os.Getenv("PREFETCH"); v != "" {
		fmt.Sscan(v, &prefetchAhead)
	}
	p("// Code generated by gen_amd64.go; DO NOT EDIT.")
	p("")
	p("//go:build !purego")
	p("")
	p("#include \"textflag.h\"")
	p("")
	// Where hsumTree's last level leaves accumulators 0-7.
	for i, v := range []int{0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0} {
		p("DATA sumidx<>+%d(SB)/4, $%d", 4*i, v)
	}
	p("GLOBL sumidx<>(SB), RODATA|NOPTR, $64")
	p("")
	for _, t := range types {
		mv512(t)
		mv512s(t)
		mm512(t)
		mm6x4(t)
		mv256(t)
		mv256s(t)
		mm256(t)
		mm256x6(t)
	}
	mv512Q8()
	mv512Q8s()
	mm512Q8()
	mv256Q8()
	mv256Q8s()
	mm256Q8()
	packRows8(false)
	mm8x4Q8p()
	mv512BF16d()
	mv512BF16ds()
	mm6x4BF16d()
	mm6x4Panel("mm6x4F32p", false)
	mm6x4Panel("mm6x4BF16dp", true)
	mv512Q4()
	mm512Q4()
	mv256Q4()
	packRows8(true)
	mm8x4Q4p()
	for T := 1; T <= 8; T++ {
		mm2xT(types[1], T, false) // BF16
		mm2xT(types[2], T, false) // F16
		mm2xT(types[1], T, true)  // BF16 weights, bf16 activations
	}
	if err := os.WriteFile("simd_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// The Q8_0 kernels multiply int8 weights by activations quantized to Q8_0
// (see q8Acts in q8.go), with AVX512-VNNI. The activations of one token
// come as one 192-byte record per 64 columns: 64 bytes of quantized values,
// then 16 float32 scales (the first block's scale in lanes 0-7, the
// second's in lanes 8-15), then 16 int32 corrections (-128 times the sum
// of each block's values, in lanes 0 and 8).
//
// VPDPBUSD multiplies unsigned by signed bytes, so the weights are made
// unsigned by flipping their sign bit (w+128) and the correction, which
// starts each integer accumulator, takes the 128*sum(x) back out: the
// integer dot of each 4-byte lane is exact. Each lane is then converted,
// scaled by its block's activation scale and weight scale, and added to a
// float32 accumulator; the tile and the single-row loops do the same
// operations in the same order, so MatMul's rows equal MatVec's.

var q8w = []string{"R10", "R11", "R12", "R13"}
var q8s = []string{"SI", "R8", "R9", "R14"}

// q8Consts loads the sign-flip bytes into Z30 and into Z31 the VPERMPS
// indices that spread two block scales over lanes 0-7 and 8-15.
func q8Consts() {
	p("\tMOVL $0x80808080, AX")
	p("\tVPBROADCASTD AX, Z30")
	p("\tVPXORD Z31, Z31, Z31")
	p("\tMOVL $0xff00, AX")
	p("\tKMOVW AX, K1")
	p("\tMOVL $1, AX")
	p("\tVPBROADCASTD AX, K1, Z31")
}

// q8LoadX loads the activation record at xa: values into Z(x), scales
// into Z(x+1), corrections into Z(x+2).
func q8LoadX(xa string, x int) {
	p("\tVMOVDQU32 %s, Z%d", xa, x)
	p("\tVMOVUPS 64%s, Z%d", xa, x+1)
	p("\tVMOVDQU32 128%s, Z%d", xa, x+2)
}

// q8LoadW loads row r's 64 weights at column AX, made unsigned, into Z(w)
// and its two f16 scales at BX, widened and spread over lanes 0-7 and 8-15,
// into Z(sw).
func q8LoadW(r, w, sw int) {
	p("\tVPXORD (%s)(AX*1), Z30, Z%d", q8w[r], w)
	p("\tVMOVD (%s)(BX*1), X%d", q8s[r], sw)
	p("\tVCVTPH2PS X%d, X%d", sw, sw)
	p("\tVPERMPS Z%d, Z31, Z%d", sw, sw)
}

// q8Step adds the product of the weights in Z(w) (scales Z(sw)) and the
// activations in Z(x) (see q8LoadX) to Z(acc); Z(d) is scratch.
func q8Step(x, w, sw, d, acc int) {
	p("\tVMOVDQA64 Z%d, Z%d", x+2, d)
	p("\tVPDPBUSD Z%d, Z%d, Z%d", x, w, d)
	p("\tVCVTDQ2PS Z%d, Z%d", d, d)
	p("\tVMULPS Z%d, Z%d, Z%d", x+1, d, d)
	p("\tVFMADD231PS Z%d, Z%d, Z%d", sw, d, acc)
}

// mv512Q8 writes func mv512Q8(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// k (a multiple of 64) columns of rows rows against one token's records at x.
func mv512Q8() {
	const fn = "mv512Q8"
	q8 := wtype{name: "Q8"}
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q8Consts()
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ k+40(FP), CX")
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	rowPointers(q8, "ldw+48(FP)")
	for r := 0; r < 4; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	// DI walks the next group of four rows, right after this one, so that
	// it is in cache when its turn comes.
	p("\tMOVQ DI, dst+0(FP)")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tLEAQ (R13)(BX*1), DI")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for l := 0; l < 4; l++ {
		p("\tPREFETCHT0 %d(DI)", 64*l)
	}
	p("\tADDQ $256, DI")
	q8LoadX("(DX)", 16)
	for r := 0; r < 4; r++ {
		q8LoadW(r, 4+r, 8+r)
		q8Step(16, 4+r, 8+r, 12+r, r)
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	p("\tMOVQ dst+0(FP), DI")
	for r := 0; r < 4; r++ {
		hsum512(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSHRQ $4, BX")
	p("\tLEAQ (R14)(BX*1), SI")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	mv512Q8rows1(fn, 0)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mv512Q8rows1 emits mv512Q8's one-row loop, which ends at fn_done.
func mv512Q8rows1(fn string, ahead int) {
	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Z0, Z0, Z0")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	if ahead > 0 {
		p("\tPREFETCHT0 %d(R10)(AX*1)", ahead)
	}
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	q8LoadX("(DX)", 16)
	q8LoadW(0, 4, 8)
	q8Step(16, 4, 8, 12, 0)
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	hsum512(0)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tADDQ BX, R10")
	p("\tSHRQ $4, BX")
	p("\tADDQ BX, SI")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
}

// mv512Q8s writes func mv512Q8s(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// mv512Q8 over four runs of rows far apart (see mvRuns), each run's row
// prefetched streamAhead512 bytes ahead, the rest by mv512Q8's one-row loop;
// each row gets the one-row loop's steps in its order, so the sums are bit
// for bit mv512Q8's. The runs' scale pointers are SI, R9, R14 and CX, so k
// is read from the frame; the rows per run are kept in s's slot once s is
// loaded.
func mv512Q8s() {
	const fn = "mv512Q8s"
	wr := []string{"R10", "R11", "R12", "R13"}
	sr := []string{"SI", "R9", "R14", "CX"}
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q8Consts()
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ rows+32(FP), R8")
	p("\tSHRQ $2, R8") // rows per run
	p("\tJZ %s_rest", fn)
	p("\tMOVQ R8, s+16(FP)")
	qRunsStart(wr, sr, "R8")
	p("%s_runs:", fn)
	for r := 0; r < 4; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	for r := 0; r < 4 && streamAhead512 > 0; r++ {
		p("\tPREFETCHT0 %d(%s)(AX*1)", streamAhead512, wr[r])
	}
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	q8LoadX("(DX)", 16)
	for r := 0; r < 4; r++ {
		p("\tVPXORD (%s)(AX*1), Z30, Z%d", wr[r], 4+r)
		p("\tVMOVD (%s)(BX*1), X%d", sr[r], 8+r)
		p("\tVCVTPH2PS X%d, X%d", 8+r, 8+r)
		p("\tVPERMPS Z%d, Z31, Z%d", 8+r, 8+r)
		q8Step(16, 4+r, 8+r, 12+r, r)
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, k+40(FP)")
	p("\tJLT %s_loop4", fn)
	p("\tMOVQ s+16(FP), AX")
	p("\tSHLQ $2, AX") // bytes of sums per run
	p("\tLEAQ (AX)(AX*2), BX")
	dst := []string{"(DI)", "(DI)(AX*1)", "(DI)(AX*2)", "(DI)(BX*1)"}
	for r := 0; r < 4; r++ {
		hsum512(r)
		p("\tVMOVSS X%d, %s", r, dst[r])
	}
	qRunsNext(fn, wr, sr, "R8")
	p("%s_rest:", fn)
	p("\tMOVQ k+40(FP), CX")
	mv512Q8rows1(fn, streamAhead512)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mm512Q8 writes func mm512Q8(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// a tile of 4 rows x 4 tokens (ldx is the distance between the tokens'
// records in bytes), accumulator Z(4t+r) for row r, token t.
func mm512Q8() {
	const fn = "mm512Q8"
	q8 := wtype{name: "Q8"}
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	q8Consts()
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	rowPointers(q8, "ldw+40(FP)")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tLEAQ (DI)(DI*2), CX")
	for i := 0; i < 16; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for r := 0; r < 4; r++ {
		q8LoadW(r, 16+r, 20+r)
	}
	// Each token's record is loaded once for the four rows.
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for tok := 0; tok < 4; tok++ {
		q8LoadX(xaddr[tok], 24)
		for r := 0; r < 4; r++ {
			q8Step(24, 16+r, 20+r, 27+r%3, 4*tok+r)
		}
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	storeTile4x4()
}

// mv256Q8 is mv512Q8 for AVX2, one block (one ymm) at a time, reading the
// same records. Without VNNI the integer dot is VPMADDUBSW, unsigned by
// signed bytes into int16 pairs, then VPMADDWD into int32 lanes; the
// weights are made unsigned by taking their magnitude and giving their
// sign to the activations (|w| <= 128 and |x| <= 127, so the pairs do not
// saturate). There is no bias, so the corrections go unused.
//
// The float work is done on whole-block sums rather than on the eight
// int32 lanes of each (row, token, block): each (row, token) keeps one
// float32 accumulator, acc = fma(float(sum), sw*sx, acc) block after block,
// where sum is the block's exact integer dot (exact in float32 too:
// |sum| <= 32*128*127 < 2^24). Every kernel below (the matvec's four rows
// or one row of a token, mm256Q8's four rows x four tokens, mm8x4Q8p's
// eight packed rows x four tokens) does exactly these operations for every
// (row, token), only in different lanes, so MatMul's rows equal MatVec's
// bit for bit. The matvec and mm256Q8 get the sums by adding lanes with
// VPHADDD; mm8x4Q8p reads rows packed so that a lane is a row (packQ8x8)
// and needs no horizontal additions.

// q8Reduce4 adds the int32 lanes of Y(a)..Y(a+3) into Y(a): lane i (i < 4)
// gets the first 16 bytes' sum of Y(a+i), lane 4+i its second 16 bytes'.
func q8Reduce4(a int) {
	p("\tVPHADDD Y%d, Y%d, Y%d", a+1, a, a)
	p("\tVPHADDD Y%d, Y%d, Y%d", a+3, a+2, a+2)
	p("\tVPHADDD Y%d, Y%d, Y%d", a+2, a, a)
}

// mm256Q8 writes func mm256Q8(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// mm512Q8's 4-row x 4-token tile for AVX2 in one pass (see mv256Q8): per
// block, the four tokens' values in Y4-Y7 and their scales in Y14 (lanes
// 0-3, again in 4-7); per row, |w| in Y8, the four products in Y9-Y12,
// reduced into Y9 (lane t: token t's low half, lane 4+t its high half),
// d = sw*sx in Y13 and the row's accumulator in Y(r).
func mm256Q8() {
	const fn = "mm256Q8"
	q8 := wtype{name: "Q8"}
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	q8Ones256()
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	rowPointers(q8, "ldw+40(FP)")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tLEAQ (DI)(DI*2), CX")
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for r := 0; r < 4; r++ {
		p("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for h := 0; h < 2; h++ {
		p("\tVMOVSS %d%s, X14", 64+32*h, xaddr[0])
		for t := 1; t < 4; t++ {
			p("\tVINSERTPS $0x%x, %d%s, X14, X14", t<<4, 64+32*h, xaddr[t])
		}
		for t := 0; t < 4; t++ {
			p("\tVMOVDQU %d%s, Y%d", 32*h, xaddr[t], 4+t)
		}
		for r := 0; r < 4; r++ {
			p("\tVPABSB %d(%s)(AX*1), Y8", 32*h, q8w[r])
			for t := 0; t < 4; t++ {
				p("\tVPSIGNB %d(%s)(AX*1), Y%d, Y%d", 32*h, q8w[r], 4+t, 9+t)
				p("\tVPMADDUBSW Y%d, Y8, Y%d", 9+t, 9+t)
				p("\tVPMADDWD Y15, Y%d, Y%d", 9+t, 9+t)
			}
			q8Reduce4(9)
			p("\tVEXTRACTI128 $1, Y9, X10")
			p("\tVPADDD X10, X9, X9")
			p("\tVCVTDQ2PS X9, X9")
			p("\tVPBROADCASTW %d(%s)(BX*1), X13", 2*h, q8s[r])
			p("\tVCVTPH2PS X13, X13")
			p("\tVMULPS X14, X13, X13")
			p("\tVFMADD231PS X13, X9, X%d", r)
		}
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	// X(r) holds row r's four results; transposed, token t's four rows go
	// to dst + t*ldd.
	p("\tVUNPCKLPS X1, X0, X4")
	p("\tVUNPCKHPS X1, X0, X5")
	p("\tVUNPCKLPS X3, X2, X6")
	p("\tVUNPCKHPS X3, X2, X7")
	p("\tMOVQ dst+0(FP), BX")
	p("\tMOVQ ldd+32(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tVMOVLHPS X6, X4, X0")
	p("\tVMOVUPS X0, (BX)")
	p("\tADDQ DX, BX")
	p("\tVMOVHLPS X4, X6, X0")
	p("\tVMOVUPS X0, (BX)")
	p("\tADDQ DX, BX")
	p("\tVMOVLHPS X7, X5, X0")
	p("\tVMOVUPS X0, (BX)")
	p("\tADDQ DX, BX")
	p("\tVMOVHLPS X5, X7, X0")
	p("\tVMOVUPS X0, (BX)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// q8Packed is the bytes per block of a packRows8 group: eight rows' 32
// values as eight 32-byte steps (step j: bytes 4j..4j+3 of rows 0-7), then
// the eight rows' scales as float32.
const q8Packed = 288

// packRows8 writes func packQ8x8(dst, w, s unsafe.Pointer, ldw, nb int)
// (q4 false) or packQ4x8: nb blocks of eight rows from w (rows ldw
// weights apart: ldw bytes of Q8_0, ldw/2 of Q4_0; their scales ldw/16
// bytes apart at s) packed for mm8x4Q8p or mm8x4Q4p, each block's 8x8
// dwords transposed (q8x8Transpose). Q4_0's nibbles are unpacked first,
// each value as its unsigned nibble (0..15, standing for u-8).
func packRows8(q4 bool) {
	fn, block := "packQ8x8", 32 // bytes of a row's block
	if q4 {
		fn, block = "packQ4x8", 16
	}
	p("// func %s(dst, w, s unsafe.Pointer, ldw, nb int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-40", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ ldw+24(FP), BX")
	p("\tMOVQ BX, R8")
	p("\tSHRQ $4, R8") // scale bytes per row
	if q4 {
		p("\tSHRQ $1, BX") // row bytes
	}
	p("\tMOVQ nb+32(FP), DX")
	p("\tLEAQ (BX)(BX*2), CX")
	p("\tLEAQ (R10)(BX*4), R11")
	p("\tLEAQ (R8)(R8*2), R9")
	p("\tLEAQ (SI)(R8*4), R12")
	waddr := []string{"(R10)", "(R10)(BX*1)", "(R10)(BX*2)", "(R10)(CX*1)", "(R11)", "(R11)(BX*1)", "(R11)(BX*2)", "(R11)(CX*1)"}
	saddr := []string{"(SI)", "(SI)(R8*1)", "(SI)(R8*2)", "(SI)(R9*1)", "(R12)", "(R12)(R8*1)", "(R12)(R8*2)", "(R12)(R9*1)"}
	p("%s_loop:", fn)
	if q4 {
		// Reset every block: the transpose uses Y9. Here, with Y9's
		// upper half live, a legacy MOVD cost this loop 14x on a Zen 3.
		broadcast256(0x0f0f0f0f, 9)
	}
	for r := 0; r < 8; r++ {
		if !q4 {
			p("\tVMOVDQU %s, Y%d", waddr[r], r)
			continue
		}
		p("\tVMOVDQU %s, X%d", waddr[r], r)
		p("\tVPSRLW $4, X%d, X8", r)
		p("\tVINSERTI128 $1, X8, Y%d, Y%d", r, r)
		p("\tVPAND Y9, Y%d, Y%d", r, r)
	}
	q8x8Transpose()
	for r := 0; r < 8; r++ {
		p("\tVPINSRW $%d, %s, X10, X10", r, saddr[r])
	}
	p("\tVCVTPH2PS X10, Y10")
	p("\tVMOVUPS Y10, 256(DI)")
	p("\tADDQ $%d, R10", block)
	p("\tADDQ $%d, R11", block)
	p("\tADDQ $2, SI")
	p("\tADDQ $2, R12")
	p("\tADDQ $%d, DI", q8Packed)
	p("\tDECQ DX")
	p("\tJNZ %s_loop", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// q8x8Transpose stores the blocks of eight rows in Y0-Y7 (32 values each)
// at DI in packQ8x8's layout: the 8x8 dwords transposed with unpacks and
// lane permutes (step j: bytes 4j..4j+3 of rows 0-7).
func q8x8Transpose() {
	for i := 0; i < 8; i += 2 {
		p("\tVPUNPCKLDQ Y%d, Y%d, Y%d", i+1, i, 8+i)
		p("\tVPUNPCKHDQ Y%d, Y%d, Y%d", i+1, i, 9+i)
	}
	// Y8..Y15: t0 t1 (rows 0,1) t2 t3 (rows 2,3) ...; then qwords.
	for g := 0; g < 2; g++ {
		a, b := 8+4*g, 10+4*g                             // rows 4g,4g+1 and 4g+2,4g+3
		p("\tVPUNPCKLQDQ Y%d, Y%d, Y%d", b, a, 4*g+0)     // step 0 | 4
		p("\tVPUNPCKHQDQ Y%d, Y%d, Y%d", b, a, 4*g+1)     // step 1 | 5
		p("\tVPUNPCKLQDQ Y%d, Y%d, Y%d", b+1, a+1, 4*g+2) // step 2 | 6
		p("\tVPUNPCKHQDQ Y%d, Y%d, Y%d", b+1, a+1, 4*g+3) // step 3 | 7
	}
	for j := 0; j < 4; j++ {
		p("\tVPERM2I128 $0x20, Y%d, Y%d, Y8", 4+j, j)
		p("\tVMOVDQU Y8, %d(DI)", 32*j)
		p("\tVPERM2I128 $0x31, Y%d, Y%d, Y9", 4+j, j)
		p("\tVMOVDQU Y9, %d(DI)", 32*(j+4))
	}
}

// packedTileStart begins the packed tile fn (mm8x4Q8p, mm8x4Q4p): the
// int16 ones in Y15, the packed rows at SI, the tokens' records at DX (ldx
// bytes apart; their addresses returned), the records to go in BX, acc
// accumulators Y0.. zeroed; then the loop's label.
func packedTileStart(fn string, acc int) []string {
	p("// func %s(dst, wp, x unsafe.Pointer, ldd, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-48", fn)
	q8Ones256()
	p("\tMOVQ wp+8(FP), SI")
	p("\tMOVQ x+16(FP), DX")
	p("\tMOVQ ldx+32(FP), DI")
	p("\tLEAQ (DI)(DI*2), CX")
	p("\tMOVQ k+40(FP), BX")
	p("\tSHRQ $6, BX")
	for i := 0; i < acc; i++ {
		p("\tVXORPS Y%d, Y%d, Y%d", i, i, i)
	}
	p("%s_loop:", fn)
	return []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
}

// mm8x4Q8p writes func mm8x4Q8p(dst, wp, x unsafe.Pointer, ldd, ldx, k int):
// eight packed rows (packQ8x8) x four tokens; lane r is row r. Per step of
// four columns, |w| of the eight rows goes to Y8 and each token's four
// activations, broadcast, through Y9 into its block sum Y(4+t); per block,
// d = sx*sw (the packed scales) and the float accumulator Y(t).
func mm8x4Q8p() {
	const fn = "mm8x4Q8p"
	xaddr := packedTileStart(fn, 4)
	for h := 0; h < 2; h++ {
		wb := h * q8Packed
		for j := 0; j < 8; j++ {
			p("\tVPABSB %d(SI), Y8", wb+32*j)
			for t := 0; t < 4; t++ {
				d := 9
				if j == 0 {
					d = 4 + t
				}
				p("\tVPBROADCASTD %d%s, Y%d", 32*h+4*j, xaddr[t], d)
				p("\tVPSIGNB %d(SI), Y%d, Y%d", wb+32*j, d, d)
				p("\tVPMADDUBSW Y%d, Y8, Y%d", d, d)
				p("\tVPMADDWD Y15, Y%d, Y%d", d, d)
				if j > 0 {
					p("\tVPADDD Y9, Y%d, Y%d", 4+t, 4+t)
				}
			}
		}
		for t := 0; t < 4; t++ {
			p("\tVCVTDQ2PS Y%d, Y%d", 4+t, 4+t)
			p("\tVBROADCASTSS %d%s, Y10", 64+32*h, xaddr[t])
			p("\tVMULPS %d(SI), Y10, Y10", wb+256)
			p("\tVFMADD231PS Y10, Y%d, Y%d", 4+t, t)
		}
	}
	p("\tADDQ $%d, SI", 2*q8Packed)
	p("\tADDQ $192, DX")
	p("\tDECQ BX")
	p("\tJNZ %s_loop", fn)
	p("\tMOVQ dst+0(FP), BX")
	p("\tMOVQ ldd+24(FP), DX")
	p("\tSHLQ $2, DX")
	for t := 0; t < 4; t++ {
		p("\tVMOVUPS Y%d, (BX)", t)
		if t < 3 {
			p("\tADDQ DX, BX")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// store2x4 writes the 2-row x 4-token pass of an AVX2 quantized tile:
// accumulator Y(2t+r) summed into dst's token t, row 2*pass+r (BX and DX
// are free once the pass's loop is done).
func store2x4(pass int) {
	p("\tMOVQ dst+0(FP), BX")
	p("\tMOVQ ldd+32(FP), DX")
	p("\tSHLQ $2, DX")
	for tok := 0; tok < 4; tok++ {
		for r := 0; r < 2; r++ {
			hsum256(2*tok + r)
			p("\tVMOVSS X%d, %d(BX)", 2*tok+r, 4*(2*pass+r))
		}
		if tok < 3 {
			p("\tADDQ DX, BX")
		}
	}
}

func mv256Q8() {
	const fn = "mv256Q8"
	q8 := wtype{name: "Q8"}
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q8Ones256()
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ k+40(FP), CX")
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	rowPointers(q8, "ldw+48(FP)")
	// X0 holds the four rows' accumulators.
	p("\tVXORPS Y0, Y0, Y0")
	// DI walks the next group of four rows until the stores, fetching as
	// much of it per iteration as this one reads (mv256's rows8).
	p("\tMOVQ DI, dst+0(FP)")
	p("\tMOVQ ldw+48(FP), DI")
	p("\tLEAQ (R13)(DI*1), DI")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for l := 0; l < 4; l++ {
		p("\tPREFETCHT0 %d(DI)", 64*l)
	}
	p("\tADDQ $256, DI")
	mv256Q8step4()
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tVMOVUPS X0, (DI)")
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSHRQ $4, BX")
	p("\tLEAQ (R14)(BX*1), SI")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)
	mv256Q8rows1(fn)
}

// q8Ones256 puts the int16 ones VPMADDWD sums pairs with in Y15.
func q8Ones256() { broadcast256(0x00010001, 15) }

// broadcast256 puts c in every dword of Y(y), through AX. The move is
// VMOVD, never the legacy SSE MOVD, which costs a stall wherever an
// upper half is live (TestVEXOnly).
func broadcast256(c uint32, y int) {
	p("\tMOVL $0x%08x, AX", c)
	p("\tVMOVD AX, X%d", y)
	p("\tVPBROADCASTD X%d, Y%d", y, y)
}

// q8Prod256 leaves in Y(t) the int32 lanes of row r's half h (block 2i+h
// of record i) times the token's values in Y4, with scratch Y8.
func q8Prod256(r, h, t int) {
	p("\tVMOVDQU %d(%s)(AX*1), Y8", 32*h, q8w[r])
	p("\tVPSIGNB Y8, Y4, Y%d", t)
	p("\tVPABSB Y8, Y8")
	p("\tVPMADDUBSW Y%d, Y8, Y%d", t, t)
	p("\tVPMADDWD Y15, Y%d, Y%d", t, t)
}

// mv256Q8step4 adds a record (64 columns at AX, scales at BX, the token's
// record at DX) of the rows at q8w/q8s to the lanes 0-3 of X0.
func mv256Q8step4() {
	for h := 0; h < 2; h++ {
		p("\tVMOVDQU %d(DX), Y4", 32*h)
		for r := 0; r < 4; r++ {
			q8Prod256(r, h, 9+r)
		}
		q8Reduce4(9)
		p("\tVEXTRACTI128 $1, Y9, X10")
		p("\tVPADDD X10, X9, X9")
		p("\tVCVTDQ2PS X9, X9")
		// the four rows' scales
		for r := 0; r < 4; r++ {
			p("\tVPINSRW $%d, %d(%s)(BX*1), X13, X13", r, 2*h, q8s[r])
		}
		p("\tVCVTPH2PS X13, X13")
		p("\tVMULPS %d(DX), X13, X13", 64+32*h)
		p("\tVFMADD231PS X13, X9, X0")
	}
}

// mv256Q8rows1 emits mv256Q8's one-row loop and the function's end: a row
// on its own, in lane 0 (the other lanes repeat it), with the same
// operations per lane.
func mv256Q8rows1(fn string) {
	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Y0, Y0, Y0")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for h := 0; h < 2; h++ {
		p("\tVMOVDQU %d(DX), Y4", 32*h)
		q8Prod256(0, h, 9)
		p("\tVPHADDD Y9, Y9, Y9")
		p("\tVPHADDD Y9, Y9, Y9")
		p("\tVEXTRACTI128 $1, Y9, X10")
		p("\tVPADDD X10, X9, X9")
		p("\tVCVTDQ2PS X9, X9")
		p("\tVPBROADCASTW %d(%s)(BX*1), X13", 2*h, q8s[0])
		p("\tVCVTPH2PS X13, X13")
		p("\tVMULPS %d(DX), X13, X13", 64+32*h)
		p("\tVFMADD231PS X13, X9, X0")
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tADDQ BX, R10")
	p("\tSHRQ $4, BX")
	p("\tADDQ BX, SI")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// qRunsStart points the weight registers wr[1:] and the scale registers
// sr[1:] at the starts of runs 1-3, from run 0's at wr[0] and sr[0], for
// perRun rows a run (a register).
func qRunsStart(wr, sr []string, perRun string) {
	p("\tMOVQ ldw+48(FP), BX")
	p("\tIMULQ %s, BX", perRun) // weight bytes per run
	for r := 1; r < 4; r++ {
		p("\tLEAQ (%s)(BX*1), %s", wr[r-1], wr[r])
	}
	p("\tSHRQ $4, BX") // scale bytes per run
	for r := 1; r < 4; r++ {
		p("\tLEAQ (%s)(BX*1), %s", sr[r-1], sr[r])
	}
}

// qRunsNext ends an iteration of a quantized four-run loop (mv512Q8s,
// mv256Q8s): the next row of each run (weights at wr, scales at sr, rows
// ldw bytes and ldw/16 bytes apart), counting down the rows per run in
// count; after the last, the rest of the rows begin where the last run
// ends (R10, SI, and DI past three runs' sums, the rows per run being in
// s's slot) and rows keeps the remainder.
func qRunsNext(fn string, wr, sr []string, count string) {
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	for r := 0; r < 4; r++ {
		p("\tADDQ BX, %s", wr[r])
	}
	p("\tSHRQ $4, BX")
	for r := 0; r < 4; r++ {
		p("\tADDQ BX, %s", sr[r])
	}
	p("\tDECQ %s", count)
	p("\tJNZ %s_runs", fn)
	p("\tMOVQ %s, R10", wr[3])
	p("\tMOVQ %s, SI", sr[3])
	p("\tMOVQ s+16(FP), AX")
	p("\tSHLQ $2, AX")
	p("\tLEAQ (AX)(AX*2), AX")
	p("\tADDQ AX, DI")
	p("\tANDQ $3, rows+32(FP)")
}

// mv256Q8s writes func mv256Q8s(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// mv256Q8 over four runs of rows far apart (see mvRuns), a row of each in
// lanes 0-3 of X0, each run prefetched streamAhead bytes ahead, the rest
// by mv256Q8's one-row loop. Each row gets the four-row loop's steps in its
// own lane, so the sums are bit for bit mv256Q8's. The rows per run are
// kept in s's slot and the runs left in w's once both are loaded.
func mv256Q8s() {
	const fn = "mv256Q8s"
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q8Ones256()
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ k+40(FP), CX")
	p("\tMOVQ rows+32(FP), AX")
	p("\tSHRQ $2, AX") // rows per run
	p("\tJZ %s_rows1", fn)
	p("\tMOVQ AX, s+16(FP)")
	p("\tMOVQ AX, w+8(FP)")
	qRunsStart(q8w, q8s, "AX")
	p("%s_runs:", fn)
	p("\tVXORPS Y0, Y0, Y0")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for r := 0; r < 4 && streamAhead > 0; r++ {
		p("\tPREFETCHT0 %d(%s)(AX*1)", streamAhead, q8w[r])
	}
	mv256Q8step4()
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	p("\tMOVQ s+16(FP), AX")
	p("\tSHLQ $2, AX") // bytes of sums per run
	p("\tLEAQ (AX)(AX*2), BX")
	p("\tVMOVSS X0, (DI)")
	p("\tVEXTRACTPS $1, X0, (DI)(AX*1)")
	p("\tVEXTRACTPS $2, X0, (DI)(AX*2)")
	p("\tVEXTRACTPS $3, X0, (DI)(BX*1)")
	qRunsNext(fn, q8w, q8s, "w+8(FP)")
	mv256Q8rows1(fn)
}

// storeTile4x4 ends a 4-row x 4-token tile: the lane sums of accumulator
// Z(4t+r) go to dst[t*ldd + r].
// mm256 writes func mm256T(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// mm512's 4-row x 4-token tile for AVX2, as two passes of 2 rows x 4
// tokens (accumulators Y0-Y7, the widened weights in Y8-Y9, the
// activations as memory operands: 16 ymm registers cannot hold 16
// accumulators). Each weight is widened once for the four tokens, and each
// (row, token) sum takes mv256's steps in mv256's order, so the tile equals
// the matvec bit for bit.
func mm256(t wtype) {
	fn := "mm256" + t.name
	bytes8 := 8 << t.shift
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	p("\tMOVQ w+8(FP), R10")
	rowPointers(t, "ldw+40(FP)")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tSHLQ $2, DI")
	p("\tLEAQ (DI)(DI*2), CX")
	p("\tMOVQ dst+0(FP), R8")
	p("\tMOVQ ldd+32(FP), R9")
	p("\tSHLQ $2, R9")
	p("\tLEAQ (R9)(R9*2), R14")
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	daddr := []string{"(R8)", "(R8)(R9*1)", "(R8)(R9*2)", "(R8)(R14*1)"}
	for pass := 0; pass < 2; pass++ {
		rows := []string{wregs[2*pass], wregs[2*pass+1]}
		for i := 0; i < 8; i++ {
			p("\tVXORPS Y%d, Y%d, Y%d", i, i, i)
		}
		p("\tMOVQ x+24(FP), DX")
		p("\tXORQ AX, AX")
		p("%s_loop%d:", fn, pass)
		for q := 0; q < 4; q++ {
			for rr := 0; rr < 2; rr++ {
				p("\t%s", t.load256(q*bytes8, rows[rr], y(8+rr), ""))
			}
			for tok := 0; tok < 4; tok++ {
				for rr := 0; rr < 2; rr++ {
					p("\tVFMADD231PS %d%s, Y%d, Y%d", 32*q, xaddr[tok], 8+rr, 2*tok+rr)
				}
			}
		}
		p("\tADDQ $128, DX")
		p("\tADDQ $32, AX")
		p("\tCMPQ AX, k+56(FP)")
		p("\tJLT %s_loop%d", fn, pass)
		for tok := 0; tok < 4; tok++ {
			for rr := 0; rr < 2; rr++ {
				hsum256(2*tok + rr)
				p("\tVMOVSS X%d, %d%s", 2*tok+rr, 4*(2*pass+rr), daddr[tok])
			}
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mm256x6 writes func mm256x6T(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// mm6x4's 6-row x 4-token tile for AVX2, as two passes of 3 rows x 4
// tokens (accumulators Y0-Y11, the widened weights in Y12-Y14, each
// token's activations loaded once into Y15 for the three rows). Against
// mm256's 2-row passes with activations as memory operands it keeps twelve
// FMA chains in flight instead of eight and issues 7 loads per 12 FMAs
// instead of 10 per 8: on Zen 5 the loads, not the FMAs, limited the
// 2-row tile (bf16 pp128, 0.5B: 94 -> 102-109 tokens per CPU-second
// against the memory-operand 3-row passes). Each (row, token)
// sum takes mv256's steps in mv256's order, so the tile equals the matvec
// bit for bit.
func mm256x6(t wtype) {
	fn := "mm256x6" + t.name
	rows := []string{"R10", "R11", "R12", "R13", "SI", "R8"}
	bytes8 := 8 << t.shift
	sixRowsHeader(t, fn, rows)
	p("\tMOVQ ldx+48(FP), DI")
	p("\tSHLQ $2, DI")
	p("\tLEAQ (DI)(DI*2), CX")
	p("\tMOVQ ldd+32(FP), R9")
	p("\tSHLQ $2, R9")
	p("\tLEAQ (R9)(R9*2), R14")
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	daddr := []string{"(BX)", "(BX)(R9*1)", "(BX)(R9*2)", "(BX)(R14*1)"}
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < 12; i++ {
			p("\tVXORPS Y%d, Y%d, Y%d", i, i, i)
		}
		p("\tMOVQ x+24(FP), DX")
		p("\tXORQ AX, AX")
		p("%s_loop%d:", fn, pass)
		for q := 0; q < 4; q++ {
			for rr := 0; rr < 3; rr++ {
				p("\t%s", t.load256(q*bytes8, rows[3*pass+rr], y(12+rr), ""))
			}
			for tok := 0; tok < 4; tok++ {
				p("\tVMOVUPS %d%s, Y15", 32*q, xaddr[tok])
				for rr := 0; rr < 3; rr++ {
					p("\tVFMADD231PS Y15, Y%d, Y%d", 12+rr, 3*tok+rr)
				}
			}
		}
		p("\tADDQ $128, DX")
		p("\tADDQ $32, AX")
		p("\tCMPQ AX, k+56(FP)")
		p("\tJLT %s_loop%d", fn, pass)
		p("\tMOVQ dst+0(FP), BX")
		for tok := 0; tok < 4; tok++ {
			for rr := 0; rr < 3; rr++ {
				hsum256(3*tok + rr)
				p("\tVMOVSS X%d, %d%s", 3*tok+rr, 4*(3*pass+rr), daddr[tok])
			}
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func storeTile4x4() {
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+32(FP), CX")
	p("\tSHLQ $2, CX")
	for tok := 0; tok < 4; tok++ {
		for r := 0; r < 4; r++ {
			hsum512(4*tok + r)
			p("\tVMOVSS X%d, %d(DI)", 4*tok+r, 4*r)
		}
		if tok < 3 {
			p("\tADDQ CX, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// The "d" kernels serve the bf16-activation mode (SetBF16Activations): x
// holds the activations already rounded to bf16, and VDPBF16PS (AVX512-BF16)
// multiplies 32 weights by 32 activations per instruction, adding the
// products pairwise to 16 float32 lanes. Each (row, token) accumulator gets
// one VDPBF16PS per 32 columns, in column order, in the tile and in the
// row loops alike, and the lane sums follow hsumTree or hsum512 (the same
// pairs), so MatMul's rows equal MatVec's bit for bit in this mode too.

// dpbf16 emits VDPBF16PS Z(w), Z(x), Z(acc): acc += pairwise(w*x). Go's
// assembler does not know the instruction; the EVEX encoding
// (EVEX.512.F3.0F38.W0 52 /r) is spelled as bytes, as GNU as writes it.
func dpbf16(w, x, acc int) {
	inv := func(b int) int { return ^b & 1 }
	p0 := inv(acc>>3)<<7 | inv(w>>4)<<6 | inv(w>>3)<<5 | inv(acc>>4)<<4 | 2
	p1 := (^x&15)<<3 | 4 | 2
	p2 := 2<<5 | inv(x>>4)<<3
	modrm := 0xC0 | (acc&7)<<3 | w&7
	p("\tBYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x52; BYTE $0x%02x // VDPBF16PS Z%d, Z%d, Z%d",
		p0, p1, p2, modrm, w, x, acc)
}

// mv512BF16d writes func mv512BF16d(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// bf16 weights times bf16 activations; rows of eight (prefetching the next
// eight as mv512 does), four, then one. The eight-row loop is short (one
// load and one VDPBF16PS a row), so its eight prefetches go one before
// each row's load rather than all at the top: issued back to back they
// streamed 2-4% slower on Zen 5 (alternated runs over the Qwen2.5-0.5B
// matrices, one thread), below the widening kernel mv512BF16.
func mv512BF16d() {
	fn := "mv512BF16d"
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ k+40(FP), CX")
	p("%s_rows8:", fn)
	p("\tCMPQ rows+32(FP), $8")
	p("\tJLT %s_rows4", fn)
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHLQ $1, BX")
	for r := 1; r < 8; r++ {
		p("\tLEAQ (%s)(BX*1), %s", wregs8[r-1], wregs8[r])
	}
	for r := 0; r < 8; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tMOVQ DI, dst+0(FP)")
	p("\tLEAQ (R14)(BX*1), DI")
	p("\tXORQ AX, AX")
	p("%s_loop8:", fn)
	p("\tVMOVDQU32 (DX)(AX*2), Z24")
	for r := 0; r < 8; r++ {
		p("\tPREFETCHT0 %d(DI)", 64*r)
		p("\tVMOVDQU32 (%s)(AX*2), Z%d", wregs8[r], 8+r)
		dpbf16(8+r, 24, r)
	}
	p("\tADDQ $512, DI")
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop8", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tVMOVDQU32 sumidx<>(SB), Z26")
	hsumTree([]int{0, 1, 2, 3, 4, 5, 6, 7})
	p("\tVMOVUPS Y24, (DI)")
	p("\tADDQ $32, DI")
	p("\tLEAQ (R14)(BX*1), R10")
	p("\tSUBQ $8, rows+32(FP)")
	p("\tJMP %s_rows8", fn)

	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	rowPointers(types[1], "ldw+48(FP)")
	for r := 0; r < 4; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tVMOVDQU32 (DX)(AX*2), Z24")
	for r := 0; r < 4; r++ {
		p("\tVMOVDQU32 (%s)(AX*2), Z%d", wregs[r], 16+r)
		dpbf16(16+r, 24, r)
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	for r := 0; r < 4; r++ {
		hsum512(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHLQ $1, BX")
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	mv512BF16drows1(fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mv512BF16drows1 emits mv512BF16d's one-row loop, which ends at fn_done.
func mv512BF16drows1(fn string) {
	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Z0, Z0, Z0")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	p("\tVMOVDQU32 (DX)(AX*2), Z24")
	p("\tVMOVDQU32 (R10)(AX*2), Z16")
	dpbf16(16, 24, 0)
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	hsum512(0)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHLQ $1, BX")
	p("\tADDQ BX, R10")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
}

// mv512BF16ds writes func mv512BF16ds(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// mv512BF16d over four runs of rows far apart (see mv512s), the rest by its
// one-row loop; bit for bit mv512BF16d's sums.
func mv512BF16ds() {
	fn := "mv512BF16ds"
	mvRuns(fn, 1, "Z", hsum512, func() {
		p("\tVMOVDQU32 (DX)(AX*2), Z24")
		for r := 0; r < 4; r++ {
			p("\tVMOVDQU32 (%s)(AX*2), Z%d", wregs[r], 16+r)
		}
		for r := 0; r < 4; r++ {
			dpbf16(16+r, 24, r)
		}
	}, func() { mv512BF16drows1(fn) })
}

// mm6x4BF16d writes func mm6x4BF16d(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// a tile of 6 weight rows x 4 tokens of bf16 activations (ldx in
// elements), accumulator Z(4r+t), stored as mm6x4 stores.
func mm6x4BF16d() {
	fn := "mm6x4BF16d"
	rows := []string{"R10", "R11", "R12", "R13", "SI", "R8"}
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ ldw+40(FP), BX")
	p("\tSHLQ $1, BX")
	for r := 1; r < 6; r++ {
		p("\tLEAQ (%s)(BX*1), %s", rows[r-1], rows[r])
	}
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tSHLQ $1, DI")
	p("\tLEAQ (DI)(DI*2), CX")
	for i := 0; i < 24; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for tok := 0; tok < 4; tok++ {
		p("\tVMOVDQU32 %s, Z%d", xaddr[tok], 24+tok)
	}
	for r := 0; r < 6; r++ {
		w := 28 + r%2
		p("\tVMOVDQU32 (%s)(AX*2), Z%d", rows[r], w)
		for tok := 0; tok < 4; tok++ {
			dpbf16(w, 24+tok, 4*r+tok)
		}
	}
	p("\tADDQ $64, DX")
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+32(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tVMOVDQU32 sumidx<>(SB), Z26")
	p("\tMOVL $0x3f, AX")
	p("\tKMOVW AX, K1")
	for tok := 0; tok < 4; tok++ {
		hsumTree([]int{tok, 4 + tok, 8 + tok, 12 + tok, 16 + tok, 20 + tok})
		p("\tVMOVUPS Z24, K1, (DI)")
		if tok < 3 {
			p("\tADDQ CX, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mm6x4Panel writes func fn(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx,
// k, mode int): the 6-row x 4-token tile of mm6x4F32 (dp false: f32
// weights and activations) or mm6x4BF16d (dp true: bf16 weights and
// activations, ldx in elements) over one panel of k columns of a longer row,
// so that a panel of six weight rows stays in L1 while the tokens are swept
// over it. The 24 accumulators start at zero (mode bit 0 clear) or from the
// 1536 bytes at acc (bit 0 set); at the end of the panel they are stored
// back to acc (bit 1 clear), or, after the last panel (bit 1 set), summed
// and stored to dst as mm6x4 stores them. Each lane therefore sees the same
// multiply-adds in the same order as in one call over the whole row, and
// the sums equal mm6x4's and mv512's bit for bit.
func mm6x4Panel(fn string, dp bool) {
	rows := []string{"R10", "R11", "R12", "R13", "SI", "R8"}
	esize, xsize := 4, 4
	if dp {
		esize, xsize = 2, 2
	}
	p("// func %s(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-72", fn)
	p("	MOVQ w+8(FP), R10")
	p("	MOVQ ldw+40(FP), BX")
	p("	SHLQ $%d, BX", map[int]int{2: 1, 4: 2}[esize])
	for r := 1; r < 6; r++ {
		p("	LEAQ (%s)(BX*1), %s", rows[r-1], rows[r])
	}
	p("	MOVQ x+24(FP), DX")
	p("	MOVQ ldx+48(FP), DI")
	p("	SHLQ $%d, DI", map[int]int{2: 1, 4: 2}[xsize])
	p("	LEAQ (DI)(DI*2), CX")
	p("	MOVQ acc+16(FP), R9")
	p("	MOVQ mode+64(FP), R14")
	p("	TESTQ $1, R14")
	p("	JNZ %s_load", fn)
	for i := 0; i < 24; i++ {
		p("	VXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("	JMP %s_start", fn)
	p("%s_load:", fn)
	for i := 0; i < 24; i++ {
		p("	VMOVUPS %d(R9), Z%d", 64*i, i)
	}
	p("%s_start:", fn)
	p("	XORQ AX, AX")
	p("%s_loop:", fn)
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	if dp {
		for tok := 0; tok < 4; tok++ {
			p("	VMOVDQU32 %s, Z%d", xaddr[tok], 24+tok)
		}
		for r := 0; r < 6; r++ {
			w := 28 + r%2
			p("	VMOVDQU32 (%s)(AX*2), Z%d", rows[r], w)
			for tok := 0; tok < 4; tok++ {
				dpbf16(w, 24+tok, 4*r+tok)
			}
		}
		p("	ADDQ $64, DX")
	} else {
		for h := 0; h < 2; h++ {
			for tok := 0; tok < 4; tok++ {
				p("	VMOVUPS %d%s, Z%d", 64*h, xaddr[tok], 24+tok)
			}
			for r := 0; r < 6; r++ {
				w := z(28 + r%2)
				p("	VMOVUPS %d(%s)(AX*4), %s", 64*h, rows[r], w)
				for tok := 0; tok < 4; tok++ {
					p("	VFMADD231PS Z%d, %s, Z%d", 24+tok, w, 4*r+tok)
				}
			}
		}
		p("	ADDQ $128, DX")
	}
	p("	ADDQ $32, AX")
	p("	CMPQ AX, k+56(FP)")
	p("	JLT %s_loop", fn)
	p("	TESTQ $2, R14")
	p("	JNZ %s_final", fn)
	for i := 0; i < 24; i++ {
		p("	VMOVUPS Z%d, %d(R9)", i, 64*i)
	}
	p("	VZEROUPPER")
	p("	RET")
	p("%s_final:", fn)
	p("	MOVQ dst+0(FP), DI")
	p("	MOVQ ldd+32(FP), CX")
	p("	SHLQ $2, CX")
	p("	VMOVDQU32 sumidx<>(SB), Z26")
	p("	MOVL $0x3f, AX")
	p("	KMOVW AX, K1")
	for tok := 0; tok < 4; tok++ {
		hsumTree([]int{tok, 4 + tok, 8 + tok, 12 + tok, 16 + tok, 20 + tok})
		p("	VMOVUPS Z24, K1, (DI)")
		if tok < 3 {
			p("	ADDQ CX, DI")
		}
	}
	p("	VZEROUPPER")
	p("	RET")
	p("")
}

// q4GroupsAhead is how many groups of four rows beyond the next one
// mv512Q4's four-row loop prefetches. Fetching the next group only left
// the stream short of lines in flight on Zen 5: 4 groups further
// (Qwen2.5-0.5B, 448-byte rows: 7.6 KB ahead) gave generation 1.09x at
// one thread and SmolLM2-135M 1.36x (alternated binaries, quiet); 1 group
// further 1.11x on 0.5B. Four runs of rows far apart, as Q8_0 reads,
// gave 0.84x.
const q4GroupsAhead = 4

// mv512Q4 writes func mv512Q4(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// Q4_0 weights (llama.cpp's blocks: 16 bytes per 32 weights, weight j in
// the low nibble of byte j, weight j+16 in its high nibble; f16 scales as
// Q8_0's) against one token's Q8_0 records, k a multiple of 64. The
// nibbles u (0..15) stand for u-8: VPDPBUSD takes them unsigned and the
// record's correction, -128*sum(x) per block, shifted right by 4 gives the
// -8*sum(x) that takes the 8 back out, so each block's integer dot is
// exact; it is then scaled as in the Q8_0 kernels.
func mv512Q4() {
	const fn = "mv512Q4"
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q4Consts()
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ k+40(FP), CX")
	// step: row r's 64 weights at BX*8 and two scales at BX into the
	// accumulator Z(r); scratch Z(4+r), Z(8+r), Z(12+r).
	step := func(r int) {
		w, sw, d := 4+r, 8+r, 12+r
		q4LoadW(r, w, sw)
		q4Step(16, 19, w, sw, d, r)
	}
	loadX := func() {
		q8LoadX("(DX)", 16)
		p("\tVPSRAD $4, Z18, Z19")
	}
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tLEAQ (R10)(BX*1), R11")
	p("\tLEAQ (R11)(BX*1), R12")
	p("\tLEAQ (R12)(BX*1), R13")
	p("\tSHRQ $3, BX")
	p("\tLEAQ (SI)(BX*1), R8")
	p("\tLEAQ (R8)(BX*1), R9")
	p("\tLEAQ (R9)(BX*1), R14")
	for r := 0; r < 4; r++ {
		p("\tVXORPS Z%d, Z%d, Z%d", r, r, r)
	}
	// DI walks the group of four rows q4GroupsAhead groups after the
	// next, fetching as much of it per iteration as this one reads.
	p("\tMOVQ DI, dst+0(FP)")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tIMUL3Q $%d, BX, DI", 1+4*q4GroupsAhead)
	p("\tADDQ R13, DI")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop4:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	p("\tPREFETCHT0 (DI)")
	p("\tPREFETCHT0 64(DI)")
	p("\tADDQ $128, DI")
	loadX()
	for r := 0; r < 4; r++ {
		step(r)
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop4", fn)
	p("\tMOVQ dst+0(FP), DI")
	for r := 0; r < 4; r++ {
		hsum512(r)
		p("\tVMOVSS X%d, %d(DI)", r, 4*r)
	}
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSHRQ $3, BX")
	p("\tLEAQ (R14)(BX*1), SI")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	p("\tVXORPS Z0, Z0, Z0")
	p("\tMOVQ x+24(FP), DX")
	p("\tXORQ AX, AX")
	p("%s_loop1:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	loadX()
	step(0)
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, CX")
	p("\tJLT %s_loop1", fn)
	hsum512(0)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tADDQ BX, R10")
	p("\tSHRQ $3, BX")
	p("\tADDQ BX, SI")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mm2xT writes func mm2x<T><type>(dst, w, acc, x unsafe.Pointer, ldd, ldw,
// ldx, k, mode, rows int): tiles of 2 weight rows x T tokens (T <= 8) for
// decode batches, where the weights come from memory and each one must be
// loaded and widened once for every token of the batch. For each 16
// columns the T tokens' activations are loaded into Z16.. once, and each
// row's weights are widened into one register (Z28, Z29) and multiplied
// into the T accumulators Z(2t+r) (row r, token t). rows (even) rows are
// done two at a time, each pair over the k columns of one panel, as
// mm6x4Panel does: the accumulators start at zero (mode bit 0 clear) or
// from acc (2T registers per row pair, bit 0 set) and are stored back to
// acc (bit 1 clear) or summed and stored to dst (bit 1 set). dp selects
// bf16 activations (ldx in elements) and VDPBF16PS, one per 32 columns, as
// mv512BF16d. Each accumulator sees the multiply-adds of mv512 (or
// mv512BF16d) in their order, and the sums follow hsumTree, so the
// results equal MatVec's bit for bit.
// prefetchPairs is how many pairs of rows ahead mm2xT prefetches.
var prefetchPairs = 3

// prefetchInsn is the instruction mm2xT prefetches with.
var prefetchInsn = "PREFETCHT0"

func mm2xT(t wtype, T int, dp bool) {
	fn := fmt.Sprintf("mm2x%d%s", T, t.name)
	if dp {
		fn += "d"
	}
	p("// func %s(dst, w, acc, x unsafe.Pointer, ldd, ldw, ldx, k, mode, rows int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", fn)
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ ldw+40(FP), BX")
	p("\tSHLQ $%d, BX", t.shift)
	p("\tMOVQ x+24(FP), R13")
	p("%s_pair:", fn)
	p("\tCMPQ rows+72(FP), $2")
	p("\tJLT %s_done", fn)
	p("\tLEAQ (R10)(BX*1), R11")
	p("\tMOVQ R13, DX")
	p("\tMOVQ ldx+48(FP), DI")
	if dp {
		p("\tSHLQ $1, DI")
	} else {
		p("\tSHLQ $2, DI")
	}
	p("\tLEAQ (DI)(DI*2), CX")
	p("\tLEAQ (DX)(DI*4), R12")
	// R14 and SI: the rows of the pair prefetchAhead2 pairs ahead.
	p("\tIMUL3Q $%d, BX, SI", 2*prefetchPairs)
	p("\tLEAQ (R10)(SI*1), R14")
	p("\tLEAQ (R14)(BX*1), SI")
	p("\tMOVQ acc+16(FP), R9")
	p("\tTESTQ $1, mode+64(FP)")
	p("\tJNZ %s_load", fn)
	for i := 0; i < 2*T; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tJMP %s_start", fn)
	p("%s_load:", fn)
	for i := 0; i < 2*T; i++ {
		p("\tVMOVUPS %d(R9), Z%d", 64*i, i)
	}
	p("%s_start:", fn)
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	// Fetch the columns of this panel of the rows prefetchPairs pairs
	// ahead as fast as this pair reads its own.
	p("\t%s (R14)(AX*2)", prefetchInsn)
	p("\t%s (SI)(AX*2)", prefetchInsn)
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)", "(R12)", "(R12)(DI*1)", "(R12)(DI*2)", "(R12)(CX*1)"}
	rows := []string{"R10", "R11"}
	if dp {
		for tok := 0; tok < T; tok++ {
			p("\tVMOVDQU32 %s, Z%d", xaddr[tok], 16+tok)
		}
		for r := 0; r < 2; r++ {
			p("\tVMOVDQU32 (%s)(AX*2), Z%d", rows[r], 28+r)
			for tok := 0; tok < T; tok++ {
				dpbf16(28+r, 16+tok, 2*tok+r)
			}
		}
		p("\tADDQ $64, DX")
		p("\tADDQ $64, R12")
	} else {
		bytes16 := 16 << t.shift
		for h := 0; h < 2; h++ {
			for tok := 0; tok < T; tok++ {
				p("\tVMOVUPS %d%s, Z%d", 64*h, xaddr[tok], 16+tok)
			}
			for r := 0; r < 2; r++ {
				p("\t%s", t.load512(h*bytes16, rows[r], z(28+r), ""))
				for tok := 0; tok < T; tok++ {
					p("\tVFMADD231PS Z%d, Z%d, Z%d", 16+tok, 28+r, 2*tok+r)
				}
			}
		}
		p("\tADDQ $128, DX")
		p("\tADDQ $128, R12")
	}
	p("\tADDQ $32, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	p("\tTESTQ $2, mode+64(FP)")
	p("\tJNZ %s_final", fn)
	for i := 0; i < 2*T; i++ {
		p("\tVMOVUPS Z%d, %d(R9)", i, 64*i)
	}
	p("\tJMP %s_next", fn)
	p("%s_final:", fn)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+32(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tVMOVDQU32 sumidx<>(SB), Z26")
	for g := 0; g < T; g += 4 {
		var accs []int
		for tok := g; tok < min(T, g+4); tok++ {
			accs = append(accs, 2*tok, 2*tok+1)
		}
		// hsumTree takes six or eight registers: pad with the free
		// activation registers, whose sums are not stored.
		for pad := 16; len(accs) != 6 && len(accs) != 8; pad++ {
			accs = append(accs, pad)
		}
		hsumTree(accs)
		// Lanes 2j and 2j+1 hold token g+j's two rows.
		for j := 0; j < 4 && g+j < T; j++ {
			switch j {
			case 0:
				p("\tVMOVLPS X24, (DI)")
			case 1:
				p("\tVMOVHPS X24, (DI)")
			case 2:
				p("\tVEXTRACTF32X4 $1, Z24, X25")
				p("\tVMOVLPS X25, (DI)")
			case 3:
				p("\tVMOVHPS X25, (DI)")
			}
			if g+j < T-1 {
				p("\tADDQ CX, DI")
			}
		}
	}
	p("%s_next:", fn)
	p("\tADDQ $%d, acc+16(FP)", 2*T*64)
	p("\tLEAQ (R10)(BX*2), R10")
	p("\tADDQ $8, dst+0(FP)")
	p("\tSUBQ $2, rows+72(FP)")
	p("\tJMP %s_pair", fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// q4Consts loads the constants of the Q4_0 kernels: Z30 the 0x0f bytes,
// Z29 the qword shifts 0,0,4,4,0,0,4,4 (the high nibbles of a block come
// down in its 128-bit lane copy), Z31 and K1 the scale spread of q8Consts.
func q4Consts() {
	p("\tMOVL $0x0f0f0f0f, AX")
	p("\tVPBROADCASTD AX, Z30")
	p("\tVPXORQ Z29, Z29, Z29")
	p("\tMOVL $0xcc, AX")
	p("\tKMOVB AX, K2")
	p("\tMOVL $4, AX")
	p("\tVPBROADCASTQ AX, K2, Z29")
	p("\tVPXORD Z31, Z31, Z31")
	p("\tMOVL $0xff00, AX")
	p("\tKMOVW AX, K1")
	p("\tMOVL $1, AX")
	p("\tVPBROADCASTD AX, K1, Z31")
}

// q4LoadW unpacks row r's 64 weights at byte BX*8 (two blocks) into Z(w),
// one unsigned nibble per byte in the order of the record's values, and
// its two f16 scales at BX, widened and spread over lanes 0-7 and 8-15,
// into Z(sw).
func q4LoadW(r, w, sw int) {
	mov := "VMOVDQU"
	if w >= 16 {
		mov = "VMOVDQU32" // Y16-Y31 need the EVEX form
	}
	p("\t%s (%s)(BX*8), Y%d", mov, q8w[r], w)
	p("\tVSHUFI64X2 $0x50, Z%d, Z%d, Z%d", w, w, w)
	p("\tVPSRLVQ Z29, Z%d, Z%d", w, w)
	p("\tVPANDD Z30, Z%d, Z%d", w, w)
	p("\tVMOVD (%s)(BX*1), X%d", q8s[r], sw)
	p("\tVCVTPH2PS X%d, X%d", sw, sw)
	p("\tVPERMPS Z%d, Z31, Z%d", sw, sw)
}

// q4Step adds the product of the unpacked weights in Z(w) (scales Z(sw))
// and a token's record (values Z(x), scales Z(x+1), the correction
// shifted right by 4 in Z(c)) to Z(acc); Z(d) is scratch. It is q8Step
// with the -8*sum(x) correction.
func q4Step(x, c, w, sw, d, acc int) {
	p("\tVMOVDQA64 Z%d, Z%d", c, d)
	p("\tVPDPBUSD Z%d, Z%d, Z%d", x, w, d)
	p("\tVCVTDQ2PS Z%d, Z%d", d, d)
	p("\tVMULPS Z%d, Z%d, Z%d", x+1, d, d)
	p("\tVFMADD231PS Z%d, Z%d, Z%d", sw, d, acc)
}

// mm512Q4 writes func mm512Q4(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int):
// mm512Q8's tile of 4 rows x 4 tokens for Q4_0 weights (ldw in weights, ldx
// the distance between the tokens' records in bytes, k a multiple of 64).
// Each row's nibbles are unpacked once per record and used for the four
// tokens; every accumulator sees mv512Q4's operations in mv512Q4's order,
// so MatMul's rows equal MatVec's bit for bit. Accumulator Z(4t+r) for row
// r, token t; Z16-19 the unpacked weights, Z20-23 their scales, Z24-26 a
// token's record (values, scales, shifted correction), Z27-28 scratch.
func mm512Q4() {
	const fn = "mm512Q4"
	p("// func %s(dst, w, s, x unsafe.Pointer, ldd, ldw, ldx, k int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", fn)
	q4Consts()
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ ldw+40(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tLEAQ (R10)(BX*1), R11")
	p("\tLEAQ (R11)(BX*1), R12")
	p("\tLEAQ (R12)(BX*1), R13")
	p("\tSHRQ $3, BX")
	p("\tLEAQ (SI)(BX*1), R8")
	p("\tLEAQ (R8)(BX*1), R9")
	p("\tLEAQ (R9)(BX*1), R14")
	p("\tMOVQ x+24(FP), DX")
	p("\tMOVQ ldx+48(FP), DI")
	p("\tLEAQ (DI)(DI*2), CX")
	for i := 0; i < 16; i++ {
		p("\tVXORPS Z%d, Z%d, Z%d", i, i, i)
	}
	p("\tXORQ AX, AX")
	p("%s_loop:", fn)
	p("\tMOVQ AX, BX")
	p("\tSHRQ $4, BX")
	for r := 0; r < 4; r++ {
		q4LoadW(r, 16+r, 20+r)
	}
	xaddr := []string{"(DX)", "(DX)(DI*1)", "(DX)(DI*2)", "(DX)(CX*1)"}
	for tok := 0; tok < 4; tok++ {
		q8LoadX(xaddr[tok], 24)
		p("\tVPSRAD $4, Z26, Z26")
		for r := 0; r < 4; r++ {
			q4Step(24, 26, 16+r, 20+r, 27+r%2, 4*tok+r)
		}
	}
	p("\tADDQ $192, DX")
	p("\tADDQ $64, AX")
	p("\tCMPQ AX, k+56(FP)")
	p("\tJLT %s_loop", fn)
	storeTile4x4()
}

// The AVX2 Q4_0 kernels read the same weights and records as mv512Q4 and
// do the float work of the AVX2 Q8_0 kernels (see mv256Q8): each (row,
// token, block) gets the block's exact integer dot d, and the float
// accumulator acc = fma(float(d), sw*sx, acc), except that even and odd
// blocks keep accumulators of their own, added at the end (a record's two
// blocks are worked on side by side, one in each 128-bit half). mv256Q4's
// four rows or one row of a token and mm8x4Q4p's eight packed rows x four
// tokens do exactly these operations for every (row, token), only in
// other lanes, so MatMul's rows equal MatVec's bit for bit.
//
// The integer dots: the nibbles u (0..15) stand for u-8. VPMADDUBSW takes
// them unsigned against the signed activations into int16 pairs of at
// most 2*15*128 in magnitude, so two pairs (mv256Q4's low and high
// nibbles) or a block's eight steps (mm8x4Q4p: 16 products, at most
// 30720) add in int16 without overflow before VPMADDWD widens them; the
// record's correction, -128*sum(x) per block shifted right by 4, takes
// the 8 back out. A four-row x four-token tile of the former layout
// (nibbles unpacked per block and row, the float work on all eight int32
// lanes of each block) ran prefill at 0.56-0.63x llama.cpp's on a Zen 3
// AVX2-only machine; this one does about a third of its operations.

// q4Consts256 puts the 0x0f bytes in Y14 and the int16 ones in Y15.
func q4Consts256() {
	broadcast256(0x0f0f0f0f, 14)
	q8Ones256()
}

// q4RowPointers sets R10-R13 to four Q4_0 rows from R10 (ldw weights
// apart) and SI, R8, R9, R14 to their scales from SI.
func q4RowPointers(ldwArg string) {
	p("\tMOVQ %s, BX", ldwArg)
	p("\tSHRQ $1, BX")
	p("\tLEAQ (R10)(BX*1), R11")
	p("\tLEAQ (R11)(BX*1), R12")
	p("\tLEAQ (R12)(BX*1), R13")
	p("\tSHRQ $3, BX")
	p("\tLEAQ (SI)(BX*1), R8")
	p("\tLEAQ (R8)(BX*1), R9")
	p("\tLEAQ (R9)(BX*1), R14")
}

// mv256Q4 writes func mv256Q4(dst, w, s, x unsafe.Pointer, rows, k, ldw int):
// Q4_0 rows against one token's records, four rows at a time, k a
// multiple of 64. Per record, a row's low nibbles (block 0's values 0-15
// in the low half, block 1's in the high) and high nibbles (values 16-31)
// multiply the token's values rearranged to match (Y4: values 0-15 and
// 32-47, Y5: 16-31 and 48-63); the two products add in int16, VPMADDWD
// widens them, and VPHADDD reduces the four rows into Y8 = [the rows'
// block-0 dots | their block-1 dots], which get the corrections, the
// scales (gathered, reordered by VPSHUFB, widened) and the accumulator Y0
// lane for lane. A row left over runs the same loop with the four row
// pointers on it and keeps lane 0.
func mv256Q4() {
	const fn = "mv256Q4"
	loop := func(label string, prefetch bool) {
		p("\tVXORPS Y0, Y0, Y0")
		p("\tMOVQ x+24(FP), DX")
		p("\tXORQ AX, AX")
		p("%s:", label)
		p("\tMOVQ AX, BX")
		p("\tSHRQ $4, BX")
		if prefetch {
			p("\tPREFETCHT0 (DI)")
			p("\tPREFETCHT0 64(DI)")
			p("\tADDQ $128, DI")
		}
		p("\tVMOVDQU (DX), Y2")
		p("\tVPERM2I128 $0x20, 32(DX), Y2, Y4")
		p("\tVPERM2I128 $0x31, 32(DX), Y2, Y5")
		for r := 0; r < 4; r++ {
			a := 8 + r
			p("\tVMOVDQU (%s)(BX*8), Y%d", q8w[r], a)
			p("\tVPSRLW $4, Y%d, Y12", a)
			p("\tVPAND Y14, Y%d, Y%d", a, a)
			p("\tVPAND Y14, Y12, Y12")
			p("\tVPMADDUBSW Y4, Y%d, Y%d", a, a)
			p("\tVPMADDUBSW Y5, Y12, Y12")
			p("\tVPADDW Y12, Y%d, Y%d", a, a)
			p("\tVPMADDWD Y15, Y%d, Y%d", a, a)
		}
		q8Reduce4(8)
		// The corrections, block 0's in the low half, block 1's in the high.
		p("\tVPBROADCASTD 128(DX), X7")
		p("\tVPBROADCASTD 160(DX), X3")
		p("\tVINSERTI128 $1, X3, Y7, Y7")
		p("\tVPSRAD $4, Y7, Y7")
		p("\tVPADDD Y7, Y8, Y8")
		p("\tVCVTDQ2PS Y8, Y8")
		// The four rows' two scales each, in Y8's order, times the
		// token's (s[4:12]: block 0's four times, block 1's four times).
		p("\tVMOVD (%s)(BX*1), X13", q8s[0])
		for r := 1; r < 4; r++ {
			p("\tVPINSRD $%d, (%s)(BX*1), X13, X13", r, q8s[r])
		}
		p("\tVPSHUFB X6, X13, X13")
		p("\tVCVTPH2PS X13, Y13")
		p("\tVMULPS 80(DX), Y13, Y13")
		p("\tVFMADD231PS Y13, Y8, Y0")
		p("\tADDQ $192, DX")
		p("\tADDQ $64, AX")
		p("\tCMPQ AX, CX")
		p("\tJLT %s", label)
		p("\tVEXTRACTF128 $1, Y0, X1")
		p("\tVADDPS X1, X0, X0")
	}
	p("// func %s(dst, w, s, x unsafe.Pointer, rows, k, ldw int)", fn)
	p("TEXT ·%s(SB), NOSPLIT, $0-56", fn)
	q4Consts256()
	// X6: the gathered scale words r0b0 r0b1 r1b0 r1b1 ... reordered to
	// r0b0 r1b0 r2b0 r3b0 r0b1 r1b1 r2b1 r3b1.
	p("\tMOVQ $0x0d0c090805040100, AX")
	p("\tVMOVQ AX, X6")
	p("\tMOVQ $0x0f0e0b0a07060302, AX")
	p("\tVPINSRQ $1, AX, X6, X6")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ w+8(FP), R10")
	p("\tMOVQ s+16(FP), SI")
	p("\tMOVQ k+40(FP), CX")
	p("%s_rows4:", fn)
	p("\tCMPQ rows+32(FP), $4")
	p("\tJLT %s_rows1", fn)
	q4RowPointers("ldw+48(FP)")
	// DI walks the group of four rows q4GroupsAhead groups after the
	// next, as in mv512Q4.
	p("\tMOVQ DI, dst+0(FP)")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tIMUL3Q $%d, BX, DI", 1+4*q4GroupsAhead)
	p("\tADDQ R13, DI")
	loop(fn+"_loop4", true)
	p("\tMOVQ dst+0(FP), DI")
	p("\tVMOVUPS X0, (DI)")
	p("\tADDQ $16, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tLEAQ (R13)(BX*1), R10")
	p("\tSHRQ $3, BX")
	p("\tLEAQ (R14)(BX*1), SI")
	p("\tSUBQ $4, rows+32(FP)")
	p("\tJMP %s_rows4", fn)

	p("%s_rows1:", fn)
	p("\tCMPQ rows+32(FP), $0")
	p("\tJLE %s_done", fn)
	for r := 1; r < 4; r++ {
		p("\tMOVQ R10, %s", q8w[r])
		p("\tMOVQ SI, %s", q8s[r])
	}
	loop(fn+"_loop1", false)
	p("\tVMOVSS X0, (DI)")
	p("\tADDQ $4, DI")
	p("\tMOVQ ldw+48(FP), BX")
	p("\tSHRQ $1, BX")
	p("\tADDQ BX, R10")
	p("\tSHRQ $3, BX")
	p("\tADDQ BX, SI")
	p("\tDECQ rows+32(FP)")
	p("\tJMP %s_rows1", fn)
	p("%s_done:", fn)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mm8x4Q4p writes func mm8x4Q4p(dst, wp, x unsafe.Pointer, ldd, ldx, k int):
// eight packed rows (packQ4x8) x four tokens; lane r is row r. Per step of
// four columns, the eight rows' nibbles go to Y12 and each token's four
// activations, broadcast, through Y13 into its block's int16 sums Y(8+t);
// per block, VPMADDWD widens them, the correction comes in, and d = sx*sw
// (the packed scales) goes into the even (Y0-Y3) or odd (Y4-Y7) block
// accumulator of the token.
func mm8x4Q4p() {
	const fn = "mm8x4Q4p"
	xaddr := packedTileStart(fn, 8)
	for h := 0; h < 2; h++ {
		wb := h * q8Packed
		for j := 0; j < 8; j++ {
			p("\tVMOVDQU %d(SI), Y12", wb+32*j)
			for t := 0; t < 4; t++ {
				if j == 0 {
					p("\tVPBROADCASTD %d%s, Y%d", 32*h, xaddr[t], 8+t)
					p("\tVPMADDUBSW Y%d, Y12, Y%d", 8+t, 8+t)
					continue
				}
				p("\tVPBROADCASTD %d%s, Y13", 32*h+4*j, xaddr[t])
				p("\tVPMADDUBSW Y13, Y12, Y13")
				p("\tVPADDW Y13, Y%d, Y%d", 8+t, 8+t)
			}
		}
		for t := 0; t < 4; t++ {
			a := 8 + t
			p("\tVPMADDWD Y15, Y%d, Y%d", a, a)
			p("\tVPBROADCASTD %d%s, Y13", 128+32*h, xaddr[t])
			p("\tVPSRAD $4, Y13, Y13")
			p("\tVPADDD Y13, Y%d, Y%d", a, a)
			p("\tVCVTDQ2PS Y%d, Y%d", a, a)
			p("\tVBROADCASTSS %d%s, Y14", 64+32*h, xaddr[t])
			p("\tVMULPS %d(SI), Y14, Y14", wb+256)
			p("\tVFMADD231PS Y14, Y%d, Y%d", a, 4*h+t)
		}
	}
	p("\tADDQ $%d, SI", 2*q8Packed)
	p("\tADDQ $192, DX")
	p("\tDECQ BX")
	p("\tJNZ %s_loop", fn)
	p("\tMOVQ dst+0(FP), BX")
	p("\tMOVQ ldd+24(FP), DX")
	p("\tSHLQ $2, DX")
	for t := 0; t < 4; t++ {
		p("\tVADDPS Y%d, Y%d, Y%d", 4+t, t, t)
		p("\tVMOVUPS Y%d, (BX)", t)
		if t < 3 {
			p("\tADDQ DX, BX")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}
