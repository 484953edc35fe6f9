//go:build !purego

package kernels

import (
	"math/rand/v2"
	"strings"

	"golang.org/x/sys/cpu"
)

// archKnobs lists the choices calibration may settle with the current
// selection. On AVX-512 without AMX:
//
//   - "bf16 prefill (exact)": widen each block of six rows to f32 once and
//     run the f32 tile over it, in column panels ("widen"), or widen only
//     rows short enough for one panel ("widen-short"), or run the bf16
//     tile, which widens in registers for every 4 tokens ("direct"); bit
//     for bit the same. (Zen 5 measured direct 10% faster on 4864-column rows,
//     2-5% slower on 896-column ones.)
//   - "bf16 activation mode", where the CPU has AVX512-BF16: VDPBF16PS, or
//     the exact kernels on the rounded activations ("widen"). Only the
//     opt-in mode uses them, and its tests hold both to its reference.
//
// With AMX, prefill runs on the tiles (whose sums are ordered differently
// from the other kernels', so no calibration may swap them in or out);
// AVX2 and the reference have a single path per kernel.
func archKnobs() []*knob {
	if simdName != "avx512" {
		return nil
	}
	ks := []*knob{{
		kernel: "bf16 prefill (exact)",
		cands:  []string{"widen", "widen-short", "direct"},
		exact:  true,
		use:    func(i int) { widenMode = []int{widenAll, widenShort, widenNone}[i] },
		bench:  benchPrefill,
	}}
	if cpu.X86.HasAVX512BF16 {
		cands := []string{"vdpbf16ps", "widen"}
		if !preferDPBF16() {
			cands[0], cands[1] = cands[1], cands[0]
		}
		ks = append(ks, &knob{
			kernel: "bf16 activation mode",
			cands:  cands,
			use:    func(i int) { useDPBF16(cands[i] == "vdpbf16ps") },
			bench:  benchBF16Act,
		})
	}
	return ks
}

// calibProduct returns a product calibration times: a random rows x cols
// BF16 matrix, n tokens of activations and room for the result.
func calibProduct(rows, cols, n int) (m *Mat, x, dst []float32) {
	r := rand.New(rand.NewPCG(1, 2))
	m = &Mat{Rows: rows, Cols: cols, Type: BF16, Half: make([]uint16, rows*cols)}
	for i := range m.Half {
		m.Half[i] = F32ToBF16(float32(r.NormFloat64()))
	}
	x = make([]float32, n*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return m, x, make([]float32, n*rows)
}

// benchPrefill is the bench of the exact prefill's knob: 64 tokens through
// two matrices of Qwen2.5-0.5B's row lengths, 768 x 896 and 192 x 4864
// (1.4 and 1.9 MB: past a 1 MiB L2, in L3), as MatMul computes them.
func benchPrefill() func() {
	const n = 64
	a, xa, da := calibProduct(768, 896, n)
	b, xb, db := calibProduct(192, 4864, n)
	return func() {
		for _, p := range []struct {
			m      *Mat
			x, dst []float32
		}{{a, xa, da}, {b, xb, db}} {
			xp, xpp := packPanels(p.m, p.x, n)
			matMulRowsP(p.dst, p.m, p.x, xp, n, 0, p.m.Rows)
			if xp != nil {
				panelScratch.Put(xpp)
			}
		}
	}
}

// benchBF16Act is the bench of the bf16-activation mode's knob: a 32-token
// prefill and 8 single-token products of a 384 x 896 matrix (688 KB, in a
// 1 MiB L2: the kernels' arithmetic is what differs), on activations
// rounded beforehand.
func benchBF16Act() func() {
	const n = 32
	m, x, dst := calibProduct(384, 896, n)
	C := m.Cols
	xh := make([]uint16, len(x))
	roundBF16Impl(xh, x)
	xr := make([]float32, len(x))
	for i, h := range xh {
		xr[i] = BF16ToF32(h)
	}
	return func() {
		if bf16dMV != nil {
			bf16ActRows(dst, m, xr, xh, nil, n, 0, m.Rows, C)
			for t := range 8 {
				bf16ActRows(dst, m, xr[t*C:], xh[t*C:], nil, 1, 0, m.Rows, C)
			}
			return
		}
		matMulRows(dst, m, xr, n, 0, m.Rows)
		for t := range 8 {
			matVecRows(dst, m, xr[t*C:], 0, m.Rows)
		}
	}
}

// cpuFeatures lists the instruction sets that the kernels' selection
// depends on, for the calibration cache's key.
func cpuFeatures() string {
	x := &cpu.X86
	var f []string
	for _, h := range []struct {
		name string
		has  bool
	}{
		{"avx2", x.HasAVX2}, {"fma", x.HasFMA}, {"avx512f", x.HasAVX512F}, {"avx512bw", x.HasAVX512BW},
		{"avx512dq", x.HasAVX512DQ}, {"avx512vl", x.HasAVX512VL}, {"avx512vnni", x.HasAVX512VNNI},
		{"avx512bf16", x.HasAVX512BF16}, {"amx", amxAvailable},
	} {
		if h.has {
			f = append(f, h.name)
		}
	}
	return strings.Join(f, ",")
}
