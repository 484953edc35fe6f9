package kernels

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Benchmarks on the weight shapes of the target models. Each reports GB/s
// (weight bytes read per product) and GFLOP/s, for the assembly chosen at
// start-up ("simd"), for AVX-512 without AMX where the CPU has AMX
// ("noamx"), for the pure-Go reference ("ref"), for the AVX2 kernels of
// the AVX2-only machines where the CPU has a faster path ("avx2"), with
// BF16 weights for
// the bf16-activation mode ("bf16act", SetBF16Activations), and with BF16
// and F16 weights for the candidates calibration may pick instead of the
// family rule's where their results are identical (named after them:
// "widen-short", "direct"; see Calibrate), and, for one token where the
// decode reads rows far apart (decodeStream, on AMD), with the eight-row
// loops it replaces ("rows", and "bf16act-rows" in the bf16-activation
// mode), in the same run:
//
//	go test -run - -bench 'MatVec/bf16/896x896/' ./kernels/
var benchShapes = [][2]int{
	{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}, // SmolLM2-135M
	{896, 896}, {4864, 896}, {896, 4864}, {151936, 896}, // Qwen2.5-0.5B
	{4096, 4096},
}

func weightBytes(m *Mat) int64 {
	n := int64(m.Rows) * int64(m.Cols)
	switch m.Type {
	case F32:
		return 4 * n
	case BF16, F16:
		return 2 * n
	}
	if m.Type == Q4_0 {
		return n/2 + n/BlockSize*2
	}
	return n + n/BlockSize*2
}

func benchProduct(b *testing.B, n int) {
	r := rand.New(rand.NewPCG(1, 1))
	start := Impl()
	defer selectPath(start)
	defer SetThreads(0)
	for _, typ := range types {
		b.Run(typ.String(), func(b *testing.B) {
			for _, sh := range benchShapes {
				b.Run(fmt.Sprintf("%dx%d", sh[0], sh[1]), func(b *testing.B) {
					var m *Mat // built on first use: the big shapes take a while
					for _, threads := range []int{1, 2} {
						impls := []string{"simd", "ref"}
						if start == "avx512+amx" {
							impls = []string{"simd", "noamx", "ref"}
						}
						if typ == BF16 {
							impls = append(impls, "bf16act") // SetBF16Activations
						}
						if start != "avx2" && slices.Contains(simdPaths(), "avx2") {
							impls = append(impls, "avx2") // the AVX2-only machines' kernels
						}
						if typ == BF16 || typ == F16 {
							impls = append(impls, knobCands()...)
						}
						if n == 1 && decodeStream && simd[typ].mvs != nil {
							impls = append(impls, "rows") // the several-row loops decodeStream replaces
							if typ == BF16 && bf16dMVs != nil {
								impls = append(impls, "bf16act-rows")
							}
						}
						for _, impl := range impls {
							b.Run(fmt.Sprintf("t%d/%s", threads, impl), func(b *testing.B) {
								if m == nil {
									m = randMat(r, typ, sh[0], sh[1])
								}
								x := randVec(r, n*sh[1])
								dst := make([]float32, n*sh[0])
								switch impl {
								case "ref":
									selectPath("purego")
								case "noamx":
									selectPath("avx512")
								case "avx2":
									selectPath("avx2")
								default:
									selectPath(start)
									useKnobCand(impl)
								}
								if impl == "rows" || impl == "bf16act-rows" {
									decodeStream = false
									defer func() { decodeStream = true }()
								}
								SetThreads(threads)
								SetBF16Activations(impl == "bf16act" || impl == "bf16act-rows")
								defer SetBF16Activations(false)
								b.SetBytes(weightBytes(m))
								b.ResetTimer()
								for range b.N {
									MatMul(dst, m, x, n)
								}
								sec := b.Elapsed().Seconds() / float64(b.N)
								b.ReportMetric(2*float64(n)*float64(sh[0])*float64(sh[1])/sec/1e9, "GFLOP/s")
							})
						}
					}
				})
			}
		})
	}
}

func BenchmarkMatVec(b *testing.B) { benchProduct(b, 1) }

func BenchmarkMatMul128(b *testing.B) { benchProduct(b, 128) }

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{64, 896, 4096} {
		x, y := randVec(r, n), randVec(r, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			var s float32
			for range b.N {
				s += Dot(x, y)
			}
			b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkVec measures the vector operations on one token's activations
// (4864 is Qwen2.5-0.5B's MLP width); GB/s counts the floats read.
func BenchmarkVec(b *testing.B) {
	const n = 4864
	r := rand.New(rand.NewPCG(3, 3))
	x, w := randVec(r, n), randVec(r, n)
	buf := make([]float32, n)
	start := Impl()
	defer selectPath(start)
	ops := []struct {
		name string
		fn   func()
	}{
		{"SiLU", func() { copy(buf, x); SiLU(buf) }},
		{"GELUTanh", func() { copy(buf, x); GELUTanh(buf) }},
		{"Softmax", func() { copy(buf, x); Softmax(buf) }},
		{"RMSNorm", func() { RMSNorm(buf, x, w, 1e-6, 0) }},
		{"Axpy", func() { Axpy(0.5, x, buf) }},
	}
	impls := []string{"simd", "ref"}
	if start != "avx2" && slices.Contains(simdPaths(), "avx2") {
		impls = append(impls, "avx2") // the AVX2-only machines' kernels
	}
	for _, op := range ops {
		for _, impl := range impls {
			b.Run(op.name+"/"+impl, func(b *testing.B) {
				switch impl {
				case "ref":
					selectPath("purego")
				case "avx2":
					selectPath("avx2")
				default:
					selectPath(start)
				}
				b.SetBytes(4 * n)
				for range b.N {
					op.fn()
				}
			})
		}
	}
}

// BenchmarkMatMul8 is a decode batch: 8 sequences' tokens.
func BenchmarkMatMul8(b *testing.B) { benchProduct(b, 8) }

// knobCands names the candidates of this CPU's exact knobs other than the
// family rule's (each knob's first).
func knobCands() []string {
	var c []string
	for _, k := range knobs() {
		if k.exact {
			c = append(c, k.cands[1:]...)
		}
	}
	return c
}

// useKnobCand selects the exact knobs' candidate named name, if any.
func useKnobCand(name string) {
	for _, k := range knobs() {
		if i := slices.Index(k.cands, name); k.exact && i >= 0 {
			k.use(i)
		}
	}
}

// BenchmarkCalibrate measures the start-up calibration: "all" is one
// whole Calibrate with nothing cached (ms/op: what a first start pays),
// and each knob's sub-benchmark reports its candidates' times as
// calibration measures them (the fastest of its rounds), e.g.
//
//	go test -run - -bench Calibrate -count 5 ./kernels/
func BenchmarkCalibrate(b *testing.B) {
	defer selectPath(Impl())
	defer func(d func() (string, error)) { cacheDir = d }(cacheDir)
	cacheDir = func() (string, error) { return "", errors.New("no cache in the benchmark") }
	b.Setenv("MOCO_CALIBRATE", "force")
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if err := Calibrate(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, k := range knobs() {
		b.Run(strings.ReplaceAll(k.kernel, " ", "_"), func(b *testing.B) {
			sum := make([]time.Duration, len(k.cands))
			for b.Loop() {
				d, err := measureKnob(context.Background(), k)
				if err != nil {
					b.Fatal(err)
				}
				for i := range d {
					sum[i] += d[i]
				}
			}
			k.use(0)
			for i, c := range k.cands {
				b.ReportMetric(float64(sum[i].Nanoseconds())/float64(b.N), c+"-ns")
			}
		})
	}
}
