package engine

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// TestQuantizeCheckpoint stores fixtures of several families as Q8_0 and
// checks that the stored model loads with no re-quantization into the
// model that quantizing at load gives: the same logits bit for bit, the
// same bytes per token, the layout documented in quantize.go.
func TestQuantizeCheckpoint(t *testing.T) {
	root := testutil.Shared(t, "fixtures/arch")
	for _, c := range []struct{ name, typ string }{
		{"llama-bf16", "q8_0"}, {"qwen2", "q8_0"}, {"phi3", "q8_0"}, {"gemma3", "q8_0"},
		{"llama-bf16", "q4_0"}, {"qwen2", "q4_0"}, {"phi3", "q4_0"},
	} {
		name, typ := c.name, c.typ
		qdt, qtype := safetensors.I8, kernels.Q8_0
		if typ == "q4_0" {
			qdt, qtype = safetensors.U8, kernels.Q4_0
		}
		t.Run(name+"/"+typ, func(t *testing.T) {
			in := filepath.Join(root, name)
			out := filepath.Join(t.TempDir(), typ)
			res, err := QuantizeCheckpoint(context.Background(), in, out, typ, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(filepath.Join(out, safetensors.SingleName))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Metadata["moco.quantization"] != typ || f.Metadata["moco.block_size"] != "32" {
				t.Errorf("metadata %v", f.Metadata)
			}
			var i8 int
			for _, n := range f.Names() {
				tn, _ := f.Tensor(n)
				if tn.DType != qdt {
					continue
				}
				i8++
				cols := tn.Shape[1]
				if qdt == safetensors.U8 {
					cols *= 2
				}
				s, ok := f.Tensor(n + ScalesSuffix)
				if !ok || s.DType != safetensors.F16 || s.Shape[0] != tn.Shape[0] || s.Shape[1]*32 != cols {
					t.Errorf("%s: scales %v", n, s)
				}
			}
			if i8 != res.Quantized || i8 == 0 {
				t.Errorf("%d I8 tensors, result says %d quantized", i8, res.Quantized)
			}
			for _, file := range []string{"config.json", "tokenizer.json"} {
				a, _ := os.ReadFile(filepath.Join(in, file))
				b, err := os.ReadFile(filepath.Join(out, file))
				if err != nil || string(a) != string(b) {
					t.Errorf("%s not copied: %v", file, err)
				}
			}

			stored := loadModel(t, out, Options{})
			atLoad := loadModel(t, in, Options{Quant: typ})
			if stored.lmHead.Type != qtype || stored.layers[0].wq.Type != qtype {
				t.Fatalf("stored model not Q8_0: head %v, wq %v", stored.lmHead.Type, stored.layers[0].wq.Type)
			}
			// Matrices whose rows cannot be cut into blocks stay as stored
			// in both.
			for i := range stored.layers {
				a, b := &stored.layers[i], &atLoad.layers[i]
				for j, p := range []*kernels.Mat{a.wq, a.wk, a.wv, a.wo, a.gate, a.up, a.down} {
					if q := []*kernels.Mat{b.wq, b.wk, b.wv, b.wo, b.gate, b.up, b.down}[j]; p.Type != q.Type {
						t.Errorf("layer %d matrix %d: stored %v, quantized at load %v", i, j, p.Type, q.Type)
					}
				}
			}
			if stored.embed.Type == qtype {
				t.Errorf("embeddings quantized; they stay as stored")
			}
			if a, b := stored.WeightBytes(), atLoad.WeightBytes(); a != b {
				t.Errorf("stored model reads %d bytes per token, quantized at load %d", a, b)
			}
			var tokens []int
			readJSON(t, filepath.Join(in, "tokens.json"), &tokens)
			got, err := stored.NewSession(0).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			want, err := atLoad.NewSession(0).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("logit %d: stored %g, quantized at load %g", i, got[i], want[i])
				}
			}
		})
	}
}

func TestQuantizeCheckpointErrors(t *testing.T) {
	in := filepath.Join(testutil.Shared(t, "fixtures/arch"), "qwen2")
	ctx := context.Background()
	tmp := t.TempDir()
	q8 := filepath.Join(tmp, "q8")
	if _, err := QuantizeCheckpoint(ctx, in, q8, "q8_0", false, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in, out, typ string
		force              bool
		want               string
	}{
		{"type", in, filepath.Join(tmp, "a"), "q4_k", false, "unknown quantization type"},
		{"same folder", in, in, "q8_0", true, "is the input folder"},
		{"already quantized", q8, filepath.Join(tmp, "b"), "q8_0", false, "already I8"},
		{"exists", in, q8, "q8_0", false, ""},
		{"missing input", filepath.Join(tmp, "none"), filepath.Join(tmp, "c"), "q8_0", false, ""},
	} {
		_, err := QuantizeCheckpoint(ctx, c.in, c.out, c.typ, c.force, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// A canceled context leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	out := filepath.Join(tmp, "canceled")
	if _, err := QuantizeCheckpoint(cctx, in, out, "q8_0", false, nil); err == nil {
		t.Error("canceled: no error")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("canceled run left %s: %v", out, err)
	}
	// The stored model refuses a lost scale tensor with a clear error.
	f, err := safetensors.Open(filepath.Join(q8, safetensors.SingleName))
	if err != nil {
		t.Fatal(err)
	}
	var kept []*safetensors.Tensor
	for _, n := range f.Names() {
		if !strings.HasSuffix(n, "q_proj.weight"+ScalesSuffix) {
			tn, _ := f.Tensor(n)
			kept = append(kept, tn)
		}
	}
	cfg, err := LoadConfig(q8)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, safetensors.NewMemSource(kept), Options{})
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "q_proj.weight.scales is missing") {
		t.Errorf("missing scales: error %v", err)
	}
}

// TestQ4 is TestQ8 for Q4_0 at load: the logits' NMSE against f32 (the
// measure llama.cpp's test-backend-ops reports), beside Q8_0's.
func TestQ4(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	var ref greedyRef
	readJSON(t, filepath.Join(dir, "reference_greedy.json"), &ref)
	want, err := loadModel(t, dir, Options{}).NewSession(0).ForwardAll(ref.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	nmse := map[string]float64{}
	for _, q := range []string{"q8_0", "q4_0"} {
		m := loadModel(t, dir, Options{Quant: q})
		got, err := m.NewSession(0).ForwardAll(ref.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		var se, ss float64
		for i, w := range want {
			d := float64(got[i] - w)
			se += d * d
			ss += float64(w) * float64(w)
		}
		nmse[q] = se / ss
		t.Logf("%s: logits NMSE against f32 %.3g, %d weight bytes per token", q, nmse[q], m.WeightBytes())
		checkPacked(t, dir, m, q, ref.Prompt, got)
	}
	if m := loadModel(t, dir, Options{Quant: "q4_0"}); m.layers[0].wq.Type != kernels.Q4_0 || m.lmHead.Type != kernels.Q4_0 {
		t.Errorf("q4_0: weights not quantized: %v", m.layers[0].wq.Type)
	}
	// 4 bits carry about 16x the rounding error of 8 in amplitude.
	if nmse["q4_0"] > 5e-2 || nmse["q4_0"] < nmse["q8_0"] {
		t.Errorf("q4_0 logits NMSE %.3g (q8_0 %.3g)", nmse["q4_0"], nmse["q8_0"])
	}
}

// checkPacked holds a model quantized by Load, whose matrices were moved
// into huge pages (packQuantized), to the same model quantized by New on
// the Go heap: the logits must be bit-identical.
func checkPacked(t *testing.T, dir string, m *Model, quant string, prompt []int, got []float32) {
	t.Helper()
	if runtime.GOOS == "linux" && m.freeQuant == nil {
		t.Errorf("%s: Load left the quantized matrices on the Go heap", quant)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	heap, err := New(cfg, src, Options{Quant: quant})
	if err != nil {
		t.Fatal(err)
	}
	if heap.freeQuant != nil {
		t.Fatalf("%s: New packed its matrices; only Load, whose Close frees them, may", quant)
	}
	want, err := heap.NewSession(0).ForwardAll(prompt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: packed logit %d = %v, heap %v", quant, i, got[i], want[i])
		}
	}
}
