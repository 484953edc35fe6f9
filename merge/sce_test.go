package merge

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"unsafe"

	"github.com/mocolab/moco/safetensors"
)

// TestStreamSCEMatchesWhole: the streamed sce (variances recomputed in
// each pass, radix passes for the top-k, tie quotas per block) keeps the
// entries SCE keeps on whole tensors and gives its result to rounding (the
// weights' sums are taken per block), for every select_topk from none to
// all, with variances tied at the threshold across blocks and zero
// variances, f32 and bf16 inputs, one thread and three.
func TestStreamSCEMatchesWhole(t *testing.T) {
	const rows, cols = 67, 1999 // five chunks, enough to sample
	n := rows * cols
	mk := func(name string, seed uint64, dt safetensors.DType, coarse bool) (Input, []float32) {
		r := rng{s: seed}
		x := make([]float32, n)
		for j := range x {
			v := float32(r.float64()*2 - 1)
			if coarse { // few values: variances tie everywhere
				v = float32(math.Round(float64(v)*2)) / 4
			}
			if j%7 == 0 {
				v = 0.125 // every model agrees: variance zero
			}
			x[j] = v
		}
		tn, err := safetensors.Convert(f32t("w", []int{rows, cols}, x...), dt)
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := safetensors.ToF32(tn)
		return mem(name, tn), append([]float32(nil), wide...)
	}
	for _, nm := range []int{2, 3} { // two models take a path of their own
		for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
			for _, coarse := range []bool{true, false} {
				base, bx := mk("base", 1, dt, false)
				var models []Input
				var xs [][]float32
				for i := range nm {
					in, x := mk(fmt.Sprintf("m%d", i), uint64(2+i), dt, coarse)
					models, xs = append(models, in), append(xs, x)
				}
				for _, frac := range []float64{1, 0.999, 0.5, 0.3, 0.01, 1e-9, 0} {
					for _, procs := range []int{1, 3} {
						if testing.Short() && (procs == 1 || !coarse || frac == 0.999 || frac == 0.5 || frac == 0.01 || frac == 0) {
							continue // the race detector's share: one of each kind
						}
						name := fmt.Sprintf("%d models %v coarse=%v select_topk=%v procs=%d", nm, dt, coarse, frac, procs)
						s := &Spec{Method: "sce", Base: &base, Models: models, Params: Params{"select_topk": Scalar(frac)}, OutDType: safetensors.F32}
						old := runtime.GOMAXPROCS(procs)
						out, err := s.MergeToMemory(context.Background())
						runtime.GOMAXPROCS(old)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						want := make([]float32, n)
						if err := SCE(want, bx, xs, frac); err != nil {
							t.Fatal(err)
						}
						got := values(t, out, "w")
						var most float64
						for _, v := range want {
							most = math.Max(most, math.Abs(float64(v)))
						}
						for j := range got {
							if d := math.Abs(float64(got[j]) - float64(want[j])); !(d <= 1e-6*most) {
								t.Fatalf("%s: [%d] = %v, whole-tensor %v", name, j, got[j], want[j])
							}
						}
					}
				}
			}
		}
	}
}

// TestSCEBracketMatchesRadix: sce's sampled bracket (one collecting pass)
// selects the variances its radix passes select, with and without
// heavily tied variances, and is taken (not missed) on such tensors.
func TestSCEBracketMatchesRadix(t *testing.T) {
	const n = 5*chunk + 123
	r := rng{s: 41}
	for _, coarse := range []bool{false, true} {
		xs := make([][]float32, 3) // the base, two models
		vs := make([]view, 3)
		for i := range xs {
			xs[i] = make([]float32, n)
			for j := range xs[i] {
				v := float32(r.float64()*2 - 1)
				if coarse {
					v = float32(math.Round(float64(v)*2)) / 4
				}
				xs[i][j] = v
			}
			vs[i] = view{dt: safetensors.F32, f32: xs[i]}
		}
		bp := blockPlan{n: n, rowLen: 1, rowsPer: chunk, nBlocks: (n + chunk - 1) / chunk}
		bp.sc = new(scratchSet)
		v := make([]float32, n)
		sceVariance(v, xs)
		for _, frac := range []float64{0.9, 0.5, 0.25, 0.05} {
			name := fmt.Sprintf("coarse=%v select_topk=%v", coarse, frac)
			got, ok, err := sceBracket(context.Background(), bp, vs, frac, false)
			if err != nil || !ok {
				t.Fatalf("%s: bracket taken %v, err %v", name, ok, err)
			}
			collectOff = true
			want, err := sceSelect(context.Background(), bp, vs, frac, false)
			collectOff = false
			if err != nil {
				t.Fatal(err)
			}
			gm, wm := make([]uint32, n), make([]uint32, n)
			for b := range bp.nBlocks {
				lo, hi := bp.span(b)
				got.keepMask(gm[lo:hi], v[lo:hi], b)
				want.keepMask(wm[lo:hi], v[lo:hi], b)
			}
			for j := range gm {
				if gm[j] != wm[j] {
					t.Fatalf("%s: [%d] (variance %v) kept %v by the bracket, %v by the radix passes", name, j, v[j], gm[j] != 0, wm[j] != 0)
				}
			}
		}
		bp.sc.release()
	}
}

// TestSCEOutputMatchesDefinition: the two-model output loop (assembly and
// Go) gives, bit for bit, SCE's per-entry rule written as SCE writes it,
// on ordinary values and on the awkward ones: signed zeros (in the base
// too), infinities and NaNs (a NaN sum of the task vectors keeps none),
// masked entries and a zero weight.
func TestSCEOutputMatchesDefinition(t *testing.T) {
	r := rng{s: 43}
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -3}
	pick := func() float32 {
		if r.next()%3 == 0 {
			return special[r.next()%uint64(len(special))]
		}
		return float32(r.float64()*2 - 1)
	}
	const n = 1001
	base, x0, x1 := make([]float32, n), make([]float32, n), make([]float32, n)
	m := make([]uint32, n)
	for j := range base {
		base[j], x0[j], x1[j] = pick(), pick(), pick()
		if r.next()%4 != 0 {
			m[j] = ^uint32(0)
		}
	}
	for _, w := range [][2]float64{{0.3, 0.7}, {0, 1}, {0.5, 0.5}} {
		want := make([]float32, n)
		for j := range want { // SCE's loop, for two models
			tv := func(x float32) float32 {
				if m[j] == 0 {
					return 0
				}
				return x - base[j]
			}
			ts := []float32{tv(x0[j]), tv(x1[j])}
			var e float64
			for _, v := range ts {
				e += float64(v)
			}
			var num, den float64
			for i, v := range ts {
				t := float64(v)
				if (e >= 0 && t > 0) || (e < 0 && t < 0) {
					num += t * w[i]
					den += w[i]
				}
			}
			want[j] = float32(float64(base[j]) + num/math.Max(den, 1e-6))
		}
		for _, simd := range []bool{false, true} {
			useSIMD(simd)
			got := make([]float32, n)
			sceOut2(got, base, x0, x1, m, w[0], w[1])
			useSIMD(true)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) && !(got[j] != got[j] && want[j] != want[j]) {
					t.Fatalf("weights %v, assembly %v: [%d] (base %v, x %v %v, mask %x) = %v, SCE %v", w, simd, j, base[j], x0[j], x1[j], m[j], got[j], want[j])
				}
			}
		}
	}
}

// TestSCEBF16InPlaceMerge: an sce merge of two bfloat16 models, which
// reads them in place, gives the bytes of the float32 path (the Go loops
// on widened blocks), keeping every entry or a top-k of variances (by
// the bracket, or by the radix passes), on a tensor of several blocks
// and a tail, whose deltas are a fine-tune's few ulps (variances tie).
func TestSCEBF16InPlaceMerge(t *testing.T) {
	if sceVarBF16Fast == nil {
		t.Skip("no bfloat16 sce kernels on this CPU")
	}
	const n = 5*chunk + 13
	r := rng{s: 4}
	base := make([]uint16, n)
	for j := range base {
		base[j] = safetensors.F32ToBF16(float32(r.float64()*2-1) * 0.02)
	}
	mk := func(name string) Input {
		x := make([]uint16, n)
		for j := range x {
			x[j] = base[j] + uint16(r.next()%9) - 4
		}
		return mem(name, &safetensors.Tensor{Name: "w", DType: safetensors.BF16, Shape: []int{n}, Data: unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 2*n)})
	}
	b := mem("base", &safetensors.Tensor{Name: "w", DType: safetensors.BF16, Shape: []int{n}, Data: unsafe.Slice((*byte)(unsafe.Pointer(&base[0])), 2*n)})
	models := []Input{mk("a"), mk("b")}
	for _, frac := range []float64{1, 0.5, 0.3} {
		for _, radix := range []bool{false, true} {
			if frac == 1 && radix {
				continue
			}
			s := &Spec{Method: "sce", Base: &b, Models: models, OutDType: safetensors.BF16, Params: Params{"select_topk": Scalar(frac)}}
			merge := func(simd bool) []byte {
				useSIMD(simd)
				collectOff = radix
				defer func() { useSIMD(true); collectOff = false }()
				before := sceInPlaceRuns.Load()
				out, err := s.MergeToMemory(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if inPlace := sceInPlaceRuns.Load() > before; inPlace != simd {
					t.Fatalf("select_topk %v radix %v simd %v: read in place %v", frac, radix, simd, inPlace)
				}
				x, _ := out.Tensor("w")
				return x.Data
			}
			if !bytes.Equal(merge(true), merge(false)) {
				t.Fatalf("select_topk %v radix %v: in place, sce's output differs from the float32 path's", frac, radix)
			}
		}
	}
}
