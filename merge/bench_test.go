package merge

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/mocolab/moco/safetensors"
)

// The merge benchmarks need real-sized checkpoints, which are not checked
// in: set MOCO_MERGE_BENCH to a comma-separated list of model folders (the
// first is the base), e.g. three written by
//
//	moco synth --shape qwen2.5-0.5b --dtype bf16 --seed N --out DIR
//
// and run
//
//	MOCO_MERGE_BENCH=a,b,c go test ./merge -run XXX -bench "IO$" -benchtime 3x (then one process per method: -bench "Ties$", "DareTies", "Breadcrumbs", "Della")
//
// BenchmarkIO is the floor: read every input byte once and write an
// output-sized checkpoint once. BenchmarkDareTies is the merge itself.
func benchDirs(b *testing.B) []string {
	env := os.Getenv("MOCO_MERGE_BENCH")
	if env == "" {
		b.Skip("set MOCO_MERGE_BENCH to model folders (base first)")
	}
	return strings.Split(env, ",")
}

func openAll(b *testing.B, dirs []string) []Input {
	var ins []Input
	for _, d := range dirs {
		in, err := OpenModel(d)
		if err != nil {
			b.Fatal(err)
		}
		ins = append(ins, in)
	}
	return ins
}

func BenchmarkIO(b *testing.B) {
	dirs := benchDirs(b)
	cpu0 := cpuSeconds()
	defer func() {
		b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
		b.ReportMetric(peakMiB(), "peak-MiB")
	}()
	var bytes int64
	for i := 0; i < b.N; i++ {
		ins := openAll(b, dirs)
		var sink uint64
		for _, in := range ins {
			for _, name := range in.Src.Names() {
				t, _ := in.Src.Tensor(name)
				sink += touch(t.Data)
				bytes += int64(len(t.Data))
			}
		}
		// Write a checkpoint of the output's size: the base's tensors.
		ref := ins[0].Src
		var hs []safetensors.Header
		names := append([]string(nil), ref.Names()...)
		for _, n := range names {
			t, _ := ref.Tensor(n)
			hs = append(hs, safetensors.Header{Name: n, DType: t.DType, Shape: t.Shape})
		}
		out := filepath.Join(b.TempDir(), "out")
		w, err := safetensors.CreateSharded(out, hs, 5e9, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range names {
			t, _ := ref.Tensor(n)
			if err := w.Write(n, t.Data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		for _, in := range ins {
			in.Src.Close()
		}
		if sink == 42 {
			b.Log("")
		}
	}
	b.SetBytes(bytes / int64(b.N))
}

// touch reads every 8-byte word of p.
func touch(p []byte) uint64 {
	var s uint64
	n := len(p) / 8
	if n > 0 {
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&p[0])), n)
		for _, v := range w {
			s += v
		}
	}
	return s
}

func BenchmarkDareTies(b *testing.B)    { benchMerge(b, "dare_ties") }
func BenchmarkTies(b *testing.B)        { benchMerge(b, "ties") }
func BenchmarkBreadcrumbs(b *testing.B) { benchMerge(b, "breadcrumbs_ties") }
func BenchmarkDella(b *testing.B)       { benchMerge(b, "della") }

// benchMerge merges the MOCO_MERGE_BENCH models with method (weights
// 1/N, density 0.5) into a model folder. Peak RSS is the process's: run
// one merge benchmark per process to read it.
func benchMerge(b *testing.B, method string) {
	dirs := benchDirs(b)
	cpu0 := cpuSeconds()
	defer func() {
		b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
		b.ReportMetric(peakMiB(), "peak-MiB")
	}()
	for i := 0; i < b.N; i++ {
		ins := openAll(b, dirs)
		models := ins[1:]
		for j := range models {
			models[j].Params = Params{"weight": Scalar(1 / float64(len(models))), "density": Scalar(0.5)}
		}
		s := &Spec{Method: method, Base: &ins[0], Models: models}
		out := filepath.Join(b.TempDir(), "out")
		if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: dirs, ShardSize: 5e9}); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkComputeMem times the merge arithmetic alone (no files): three
// bf16 models of one 4864x896 tensor (Qwen2.5-0.5B's MLP shape) in memory,
// base first, weights 1/2, density 0.5, the output kept in a recycled
// buffer as WriteFolder does. Compare each method with linear, which is a
// single pass that reads every input once, and each set of kernels the
// CPU runs (avx512, avx2) with the Go loops (go).
func BenchmarkComputeMem(b *testing.B) {
	const rows, cols = 4864, 896
	name := "model.layers.0.mlp.up_proj.weight"
	mk := func(nm string, seed uint64) Input {
		r := rng{s: seed}
		u := make([]uint16, rows*cols)
		for i := range u {
			u[i] = safetensors.F32ToBF16(float32((r.float64()*2 - 1) * 0.03))
		}
		data := unsafe.Slice((*byte)(unsafe.Pointer(&u[0])), 2*len(u))
		return mem(nm, &safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: []int{rows, cols}, Data: data})
	}
	base, x, y := mk("base", 1), mk("a", 2), mk("b", 3)
	for _, method := range []string{"linear", "task_arithmetic", "dare_ties", "dare_linear", "ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"} {
		for _, p := range simdPaths() {
			b.Run(method+"/"+p.name, func(b *testing.B) {
				p.use()
				defer useSIMD(true)
				benchComputeMem(b, method, base, x, y, rows, cols)
			})
		}
	}
}

// benchComputeMem is one of BenchmarkComputeMem's runs.
func benchComputeMem(b *testing.B, method string, base, x, y Input, rows, cols int) {
	ms := []Input{x, y}
	for j := range ms {
		ms[j].Params = Params{"weight": Scalar(0.5), "density": Scalar(0.5)}
	}
	s := &Spec{Method: method, Models: ms, pool: newBufPool(2 * 2 * rows * cols)}
	defer s.pool.release()
	if method != "linear" {
		s.Base = &base
	}
	b.SetBytes(int64(3 * 2 * rows * cols))
	cpu0 := cpuSeconds()
	defer func() { b.ReportMetric((cpuSeconds()-cpu0)*1e3/float64(b.N), "cpu-ms/op") }()
	for b.Loop() {
		err := s.Merge(context.Background(), func(t *safetensors.Tensor) error { s.pool.put(t.Data); return nil }, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMagPruneRow times DELLA's per-row step (ranks, draws, keep
// tests, rescaling) on rows of 896 deltas of bf16 weights, with rankSort
// and with radixByKey alone, and as the streaming merge runs it (bf16: the
// deltas computed from bf16 weights and a widened base as the keys are
// built; bf16-finetune: the same on weights a fine-tune moved by a few
// ulps, -4 to 4, so a ninth of the deltas are zero and the rest take few
// distinct magnitudes per octave); those two on each set of kernels the
// CPU runs and on the Go loops.
func BenchmarkMagPruneRow(b *testing.B) {
	const rows, cols = 64, 896
	r := rng{s: 5}
	x := make([]float32, rows*cols)
	xb, base := make([]uint16, rows*cols), make([]float32, rows*cols)
	for i := range x {
		w := func() float32 { return safetensors.BF16ToF32(safetensors.F32ToBF16(float32(r.float64()*2-1) * 0.03)) }
		base[i] = w()
		xb[i] = safetensors.F32ToBF16(w())
		x[i] = safetensors.BF16ToF32(xb[i]) - base[i]
	}
	xf := make([]uint16, len(xb))
	for i, w := range base {
		xf[i] = uint16(int(safetensors.F32ToBF16(w)) + int(r.next()%9) - 4)
	}
	// run times pass (every row, into y, with pruner m) per entry, in CPU
	// time.
	run := func(b *testing.B, pass func(m *magPruner, y []float32)) {
		m := newMagPruner(cols, 0.5, 0.1, true)
		y := make([]float32, len(x))
		b.SetBytes(4 * int64(len(x)))
		cpu0 := cpuSeconds()
		defer func() { b.ReportMetric((cpuSeconds()-cpu0)*1e9/float64(b.N*len(x)), "cpu-ns/entry") }()
		for b.Loop() {
			pass(m, y)
		}
	}
	for _, in := range []struct {
		name string
		x    []uint16
	}{{"bf16", xb}, {"bf16-finetune", xf}} {
		for _, p := range simdPaths() {
			b.Run(in.name+"/"+p.name, func(b *testing.B) {
				p.use()
				defer useSIMD(true)
				run(b, func(m *magPruner, y []float32) {
					for off := 0; off < len(y); off += cols {
						m.rowBF16(y[off:off+cols], in.x[off:off+cols], base[off:off+cols], 1)
					}
				})
			})
		}
	}
	for _, radix := range []bool{false, true} {
		b.Run(map[bool]string{false: "ranksort", true: "radix"}[radix], func(b *testing.B) {
			rankSortOff = radix
			defer func() { rankSortOff = false }()
			run(b, func(m *magPruner, y []float32) {
				copy(y, x)
				for off := 0; off < len(y); off += cols {
					m.row(y[off:off+cols], 1)
				}
			})
		})
	}
}

// BenchmarkFusionKL times arcee_fusion's KL divergences of rows of 896
// entries (a fine-tune's few-ulp moves of bf16 weights), per entry, on
// each set of kernels the CPU runs and on the Go loops; then its three
// loops over the importances: their upper 16 bits' histogram, the keys in
// three bins, the output.
func BenchmarkFusionKL(b *testing.B) {
	const rows, cols = 64, 896
	base, xs := fineTunedBF16(rows*cols, 1, 9)
	x := xs[0]
	kl := make([]float32, rows)
	ex := make([]float64, 2*cols*klRows(cols))
	for _, p := range simdPaths() {
		b.Run(p.name, func(b *testing.B) {
			p.use()
			defer useSIMD(true)
			cpu0 := cpuSeconds()
			defer func() { b.ReportMetric((cpuSeconds()-cpu0)*1e9/float64(b.N*len(x)), "cpu-ns/entry") }()
			for b.Loop() {
				rowsKL(kl, x, base, cols, ex)
			}
		})
	}
	f := &fusion{cols: cols, kl: kl}
	rowsKL(kl, x, base, cols, ex)
	imp := make([]float32, len(x))
	f.importance(imp, base, x, 0)
	f.th = imp[len(imp)/3]
	bins := [4]uint32{orderKey(imp[1]) >> 16, orderKey(imp[2]) >> 16, orderKey(imp[3]) >> 16, orderKey(imp[3]) >> 16}
	h, top := new([1 << 16]uint32), make([]uint16, len(x))
	keys, dst := make([]uint32, len(x)+15), make([]float32, len(x))
	benchPaths(b, "top", len(x), func() { f.countTop(h, top, base, x, 0) }, nil)
	benchPaths(b, "bins", len(x), func() { f.collectBins(keys, &bins, base, x, 0) }, nil)
	benchPaths(b, "apply", len(x), func() { f.apply(dst, base, x, 0) }, nil)
}

// fineTunedBF16 returns n bfloat16 weights (widened) and models of them
// that a fine-tune moved by -4 to 4 ulps each, from seed.
func fineTunedBF16(n, models int, seed uint64) (base []float32, xs [][]float32) {
	r := rng{s: seed}
	base, xs = make([]float32, n), make([][]float32, models)
	for i := range xs {
		xs[i] = make([]float32, n)
	}
	for j := range base {
		w := safetensors.F32ToBF16(float32(r.float64()*2-1) * 0.03)
		base[j] = safetensors.BF16ToF32(w)
		for _, x := range xs {
			x[j] = safetensors.BF16ToF32(uint16(int(w) + int(r.next()%9) - 4))
		}
	}
	return base, xs
}

// simdPath is one set of kernels (simdPaths): its name and the function
// that selects it.
type simdPath struct {
	name string
	use  func()
}

// benchPaths runs f as sub-benchmarks name/PATH, one for each set of
// kernels the CPU runs (avx512, avx2) and one for the Go loops (go),
// reporting the time per entry of the entries f takes; where can is set
// and reports false once a path is selected, f has no such path (skip).
func benchPaths(b *testing.B, name string, entries int, f func(), can func() bool) {
	for _, p := range simdPaths() {
		b.Run(name+"/"+p.name, func(b *testing.B) {
			p.use()
			defer useSIMD(true)
			if can != nil && !can() {
				b.Skip("no such kernel on this path")
			}
			for b.Loop() {
				f()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries), "ns/entry")
		})
	}
}

// BenchmarkElementwise times the elementwise merges' loops per entry on
// a fine-tune's few-ulp moves of bf16 weights: ram's on two and three
// models, ramplus_tl's counting pass on as many, nearswap's, and DARE's
// random drops (with the copy they start from), with the assembly where the
// CPU has it and with the Go loops.
func BenchmarkElementwise(b *testing.B) {
	const n = 1 << 15
	base, xs := fineTunedBF16(n, 3, 13)
	x0, x1, x2 := xs[0], xs[1], xs[2]
	dst := make([]float32, n)
	loops := []struct {
		name string
		f    func()
	}{
		{"ram", func() { ramChunk(dst, base, [][]float32{x0, x1}, 1e-5, nil) }},
		{"ramcount", func() { ramCount(base, [][]float32{x0, x1}, 1e-5, make([]int64, 2), make([]int64, 2)) }},
		{"ram3", func() { ramChunk(dst, base, [][]float32{x0, x1, x2}, 1e-5, nil) }},
		{"ramcount3", func() { ramCount(base, [][]float32{x0, x1, x2}, 1e-5, make([]int64, 3), make([]int64, 3)) }},
		{"nearswap", func() { nearSwap(dst, base, x0, 1e-3) }},
		{"dare-drop", func() { copy(dst, x0); dropRandom(dst, 0.3, 1/0.3, &rng{s: 7}) }},
	}
	for _, l := range loops {
		benchPaths(b, l.name, n, l.f, nil)
	}
}

// BenchmarkKernels times each merge kernel, through the function the
// merges call, on one block of a fine-tune's few-ulp moves of two bf16
// models, per entry, on each set of kernels the CPU runs and on the Go
// loops (sub-benchmarks KERNEL/avx512, /avx2, /go; a kernel that reads
// bfloat16 in place has no Go loop of its own and skips /go). The
// selections keep the upper half of the entries, as TIES's and sce's at
// density 0.5 do, and the brackets hold the middle half.
func BenchmarkKernels(b *testing.B) {
	const n = chunk
	base, xs := fineTunedBF16(n, 2, 21)
	x0, x1 := xs[0], xs[1]
	bf := func(x []float32) []uint16 {
		u := make([]uint16, len(x))
		for j, v := range x {
			u[j] = safetensors.F32ToBF16(v)
		}
		return u
	}
	bb, b0, b1 := bf(base), bf(x0), bf(x1)
	// The median of a list of bits, a bracket of its middle half, and
	// its most common value (a heavy one).
	bracket := func(bits []uint32) (mid, lo, hi uint32, heavy []uint32) {
		s := slices.Sorted(slices.Values(bits))
		most, run := s[0], 0
		for i := 0; i < len(s); {
			j := i
			for j < len(s) && s[j] == s[i] {
				j++
			}
			if j-i > run {
				most, run = s[i], j-i
			}
			i = j
		}
		return s[len(s)/2], s[len(s)/4], s[3*len(s)/4], []uint32{most}
	}
	mags := make([]uint32, n)
	for j := range mags {
		mags[j] = magBits(x0[j] - base[j])
	}
	mid, lo, hi, heavy := bracket(mags)
	v := make([]float32, n)
	useSIMD(false)
	sceVariance(v, [][]float32{base, x0, x1})
	useSIMD(true)
	vbits := make([]uint32, n)
	for j, x := range v {
		vbits[j] = math.Float32bits(x)
	}
	vmid, vlo, vhi, vheavy := bracket(vbits)
	sel := &topK{th: vmid}
	mask := make([]uint32, n)
	sel.keepMask(mask, v, 0)
	bits := make([]uint64, n/64)
	packMask(bits, mask)
	dropped := [][]float32{make([]float32, n), make([]float32, n)}
	for i, x := range xs {
		for j := range x {
			if (j*7+i)%2 == 0 {
				dropped[i][j] = 2 * (x[j] - base[j])
			}
		}
	}
	w := []float64{0.5, 0.5}
	top, tie := []uint32{mid, mid}, []uint32{1 << 31, 1 << 31}
	band := []uint32{hi, hi} // breadcrumbs: [mid, hi)
	dst, dst16 := make([]float32, n), make([]uint16, n)
	buf := make([]uint32, n+16)
	ds, cur := [][]float32{make([]float32, n), make([]float32, n)}, make([][]float32, 2)
	scratch, zero := make([]float32, 64), make([]float32, n)
	var eq [maxHeavy]int32
	var s2 [2]float64
	g := make([]float64, 3)
	kernels := []struct {
		name string
		f    func()
		can  func() bool // nil: every path
	}{
		{"narrow", func() { narrowBF16(dst16, x0) }, nil},
		{"collect", func() { collectDelta(buf, x0, base, lo, hi) }, nil},
		{"collect-heavy", func() { collectHeavy(buf, x0, base, lo, hi, heavy, &eq) }, nil},
		{"collect-heavy-bf16", func() { collectBF16Heavy(buf, b0, bb, lo, hi, heavy, &eq) }, nil},
		{"ties-band", func() { bandSum(dst, base, xs, w, top, tie, true, 1, ds, cur, scratch) }, nil},
		{"ties-band-bf16", func() { bandSum2BF16(dst, nil, bb, b0, b1, w, top, tie, true, 1, ds, cur, scratch) },
			func() bool { return bandSum2BF16Fast != nil }},
		{"breadcrumbs-band", func() { bandLinear(dst, base, xs, w, top, band, 1) }, nil},
		{"breadcrumbs-band-bf16", func() { bandLinearBF16(dst, nil, bb, [][]uint16{b0, b1}, w, top, band, 1) }, nil},
		{"dare-combine", func() { combineAll(dst, base, dropped, w, "sum", true, 1, zero, scratch) }, nil},
		{"linear", func() { linearInto(dst, xs, w, 1) }, nil},
		{"sce-variance", func() { sceVariance(v, [][]float32{base, x0, x1}) }, nil},
		{"sce-variance-bf16", func() { sceVarianceBF16(v, bb, b0, b1) }, func() bool { return sceVarBF16Fast != nil }},
		{"sce-collect-heavy", func() { collectBitsHeavy(buf, v, vlo, vhi, vheavy, &eq) }, nil},
		{"sce-mask", func() { sel.keepMask(mask, v, 0) }, nil},
		{"sce-squares", func() { sceSquares(s2[:], base, xs, mask) }, nil},
		{"sce-squares-bf16", func() { sceSquaresBF16(s2[:], bb, b0, b1, mask) }, func() bool { return squaresBF16Fast != nil }},
		{"sce-pack", func() { packMask(bits, mask) }, nil},
		{"sce-weigh-bf16", func() { sceWeighBF16(s2[:], bits, bb, b0, b1, vmid) }, func() bool { return sceWeighBF16Fast != nil }},
		{"sce-out", func() { sceOut2(dst, base, x0, x1, mask, 0.4, 0.6) }, nil},
		{"sce-out-bf16", func() { sceOut2BF16(dst, bb, b0, b1, mask, 0.4, 0.6) }, func() bool { return sceOutBF16Fast != nil }},
		{"sce-out-bf16-bits", func() { sceOut2BF16Bits(dst, bb, b0, b1, bits, 0.4, 0.6) }, func() bool { return sceOutBF16BitsFast != nil }},
		{"gram2", func() { clear(g); gramAdd(g, xs, base, 0, n) }, nil},
		{"slerp-combine", func() { combineRun(dst, xs, base, []float64{0.3, 0.7}, 0) }, nil},
		{"model-stock", func() { stockRun(dst, xs, base, 0.6, 0) }, nil},
	}
	for _, k := range kernels {
		benchPaths(b, k.name, n, k.f, k.can)
	}
}
