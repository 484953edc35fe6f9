package kernels

import (
	"fmt"
	"math"
	"testing"
)

// Whole-model benchmarks built from the kernels alone: one decoding step
// (tg) and one 128-token prefill (pp) through every weight matrix of the
// target shapes, with the norms and activations in between but without
// attention (negligible at these context lengths). They bound what an
// engine on these kernels can reach and are comparable with llama-bench's
// tg and pp figures. Prefill also runs with the candidates calibration may
// pick instead of the family rule's (Calibrate), named after them, and
// every figure is also given per CPU-second of the process (tokens/cpu-s:
// at 1 thread, what other work on a shared machine does not change):
//
//	go test -run - -bench 'Model/qwen2.5-0.5b/bf16' -benchtime 10x ./kernels/

type benchShape struct {
	name                  string
	hidden, inter, layers int
	heads, kvHeads, vocab int
}

var modelShapes = []benchShape{
	{"smollm2-135m", 576, 1536, 30, 9, 3, 49152},
	{"qwen2.5-0.5b", 896, 4864, 24, 14, 2, 151936},
}

type benchLayer struct{ q, k, v, o, gate, up, down *Mat }

type benchModel struct {
	s      benchShape
	layers []benchLayer
	head   *Mat // tied: the embedding matrix
	norm   []float32
}

// fillMat makes a rows x cols matrix of type typ with cheap pseudo-random
// weights of about the size of real ones (speed does not depend on them).
func fillMat(typ Type, rows, cols int, seed uint32) *Mat {
	f := make([]float32, rows*cols)
	x := seed | 1
	for i := range f {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f[i] = (float32(x>>8)/(1<<24) - 0.5) * 0.07
	}
	m := &Mat{Rows: rows, Cols: cols, Type: F32, F32: f}
	switch typ {
	case BF16, F16:
		h := make([]uint16, len(f))
		for i, v := range f {
			if typ == BF16 {
				h[i] = uint16(f32bits(v) >> 16)
			} else {
				h[i] = f32ToF16Trunc(v)
			}
		}
		return &Mat{Rows: rows, Cols: cols, Type: typ, Half: h}
	case Q8_0:
		return QuantizeQ8(m)
	case Q4_0:
		return QuantizeQ4(m)
	}
	return m
}

// f32ToF16Trunc converts a small normal float32 to f16 by truncation; good
// enough for benchmark weights.
func f32ToF16Trunc(v float32) uint16 {
	b := f32bits(v)
	sign := uint16(b>>16) & 0x8000
	e := int(b>>23&0xff) - 127 + 15
	if e <= 0 {
		return sign
	}
	return sign | uint16(e)<<10 | uint16(b>>13&0x3ff)
}

func newBenchModel(s benchShape, typ Type) *benchModel {
	hd := s.hidden / s.heads
	m := &benchModel{s: s, norm: make([]float32, s.hidden)}
	for i := range m.norm {
		m.norm[i] = 1
	}
	seed := uint32(1)
	mat := func(r, c int) *Mat { seed++; return fillMat(typ, r, c, seed) }
	for l := 0; l < s.layers; l++ {
		m.layers = append(m.layers, benchLayer{
			q: mat(s.heads*hd, s.hidden), k: mat(s.kvHeads*hd, s.hidden), v: mat(s.kvHeads*hd, s.hidden),
			o: mat(s.hidden, s.heads*hd), gate: mat(s.inter, s.hidden), up: mat(s.inter, s.hidden), down: mat(s.hidden, s.inter),
		})
	}
	m.head = mat(s.vocab, s.hidden)
	return m
}

func (m *benchModel) weightBytes() int64 {
	var n int64
	for _, l := range m.layers {
		for _, w := range []*Mat{l.q, l.k, l.v, l.o, l.gate, l.up, l.down} {
			n += weightBytes(w)
		}
	}
	return n + weightBytes(m.head)
}

// forward runs n tokens through the layers; the head runs on the last one.
func (m *benchModel) forward(n int, x, buf []float32) []float32 {
	H, I := m.s.hidden, m.s.inter
	hd := H / m.s.heads
	q, k, v := buf[:n*H], buf[n*H:n*H+n*m.s.kvHeads*hd], buf[2*n*H:2*n*H+n*m.s.kvHeads*hd]
	xn, o := buf[3*n*H:4*n*H], buf[4*n*H:5*n*H]
	g, u := buf[5*n*H:5*n*H+n*I], buf[5*n*H+n*I:5*n*H+2*n*I]
	logits := buf[5*n*H+2*n*I:]
	for _, l := range m.layers {
		for t := 0; t < n; t++ {
			RMSNorm(xn[t*H:(t+1)*H], x[t*H:(t+1)*H], m.norm, 1e-6, 0)
		}
		MatMul(q, l.q, xn, n)
		MatMul(k, l.k, xn, n)
		MatMul(v, l.v, xn, n)
		MatMul(o, l.o, q, n) // attention would sit between q/k/v and o
		Axpy(1, o, x)
		for t := 0; t < n; t++ {
			RMSNorm(xn[t*H:(t+1)*H], x[t*H:(t+1)*H], m.norm, 1e-6, 0)
		}
		MatMul(g, l.gate, xn, n)
		MatMul(u, l.up, xn, n)
		SiLU(g)
		for i := range g {
			g[i] *= u[i]
		}
		MatMul(o, l.down, g, n)
		Axpy(1, o, x)
	}
	RMSNorm(xn[:H], x[(n-1)*H:n*H], m.norm, 1e-6, 0)
	MatVec(logits, m.head, xn[:H])
	return logits
}

func BenchmarkModel(b *testing.B) {
	start := Impl()
	defer selectPath(start)
	defer SetThreads(0)
	for _, s := range modelShapes {
		b.Run(s.name, func(b *testing.B) {
			for _, typ := range types {
				b.Run(typ.String(), func(b *testing.B) {
					var m *benchModel
					for _, test := range []struct {
						name string
						n    int
					}{{"tg", 1}, {"pp128", 128}} {
						cands := []string{""}
						if test.n > 1 && (typ == BF16 || typ == F16) {
							cands = append(cands, knobCands()...)
						}
						if typ == BF16 {
							cands = append(cands, "bf16act") // SetBF16Activations
						}
						for _, threads := range []int{1, 2} {
							for _, cand := range cands {
								name := fmt.Sprintf("%s/t%d", test.name, threads)
								if cand != "" {
									name += "/" + cand
								}
								b.Run(name, func(b *testing.B) {
									if m == nil {
										m = newBenchModel(s, typ)
									}
									selectPath(start)
									useKnobCand(cand)
									SetBF16Activations(cand == "bf16act")
									defer SetBF16Activations(false)
									SetThreads(threads)
									n := test.n
									x := make([]float32, n*s.hidden)
									for i := range x {
										x[i] = 0.01 * float32(i%17)
									}
									buf := make([]float32, 5*n*s.hidden+2*n*s.inter+s.vocab)
									m.forward(n, x, buf) // warm-up
									if n == 1 {
										b.SetBytes(m.weightBytes())
									}
									b.ResetTimer()
									cpu0 := cpuSeconds()
									for range b.N {
										m.forward(n, x, buf)
									}
									b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tokens/s")
									if cpu := cpuSeconds() - cpu0; cpu > 0 {
										b.ReportMetric(float64(n*b.N)/cpu, "tokens/cpu-s")
									}
								})
							}
						}
					}
				})
			}
		})
	}
}

func f32bits(v float32) uint32 { return math.Float32bits(v) }
