package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// convertDir writes a copy of the model folder src into a temporary folder
// with every tensor converted to dtype by the safetensors writer.
func convertDir(t *testing.T, src string, dtype safetensors.DType) string {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*safetensors.Tensor
	for _, name := range f.Names() {
		tn, _ := f.Tensor(name)
		c, err := safetensors.Convert(tn, dtype)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	dir := t.TempDir()
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), out, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHalfCopies loads stories260K converted to bf16 and f16: the weights
// are used in place as 16-bit matrices, read into private memory or from
// the file's map, and the greedy continuation stays the reference's.
func TestHalfCopies(t *testing.T) {
	src := testutil.Shared(t, "models/stories260K")
	var ref greedyRef
	readJSON(t, filepath.Join(src, "reference_greedy.json"), &ref)
	for _, tc := range []struct {
		dtype safetensors.DType
		typ   kernels.Type
	}{{safetensors.BF16, kernels.BF16}, {safetensors.F16, kernels.F16}} {
		dir := convertDir(t, src, tc.dtype)
		for _, mapped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/mapped=%v", tc.dtype, mapped), func(t *testing.T) {
				m := loadModel(t, dir, Options{Mapped: mapped})
				if m.layers[0].wq.Type != tc.typ || m.lmHead.Type != tc.typ {
					t.Fatalf("weights loaded as %v, want %v", m.layers[0].wq.Type, tc.typ)
				}
				if m.Resident() == mapped {
					t.Fatalf("Resident() = %v with Mapped %v", m.Resident(), mapped)
				}
				got := greedy(t, m.NewSession(0), ref.Prompt, len(ref.Greedy))
				for i := range ref.Greedy {
					if got[i] != ref.Greedy[i] {
						t.Fatalf("greedy ids differ at %d:\n got %v\nwant %v", i, got, ref.Greedy)
					}
				}
			})
		}
	}
}

// TestQ8 quantizes at load: every matrix becomes Q8_0, and the mean NLL
// and the logits move by no more than int8 rounding explains.
func TestQ8(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	var ref greedyRef
	readJSON(t, filepath.Join(dir, "reference_greedy.json"), &ref)
	m := loadModel(t, dir, Options{Quant: "q8_0"})
	if m.layers[0].wq.Type != kernels.Q8_0 || m.lmHead.Type != kernels.Q8_0 {
		t.Fatalf("weights not quantized: %v", m.layers[0].wq.Type)
	}
	all, err := m.NewSession(0).ForwardAll(ref.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	var sum float64
	for i := range ref.NLL {
		sum += nll(all[i*V:(i+1)*V], ref.Prompt[i+1])
	}
	if mean := sum / float64(len(ref.NLL)); math.Abs(mean-ref.Mean) > 0.02 {
		t.Errorf("q8_0 mean NLL %.5f, f32 reference %.5f", mean, ref.Mean)
	}
	f32 := loadModel(t, dir, Options{})
	// The logits' normalized mean squared error against f32, the measure
	// llama.cpp's test-backend-ops reports (its Q8_0 shows about 1e-3 on
	// real shapes); this small model sees about 1e-4.
	want, err := f32.NewSession(0).ForwardAll(ref.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	var se, ss float64
	for i, w := range want {
		d := float64(all[i] - w)
		se += d * d
		ss += float64(w) * float64(w)
	}
	if nmse := se / ss; nmse > 1e-3 {
		t.Errorf("q8_0 logits NMSE %.2e against f32, want <= 1e-3", nmse)
	}
	// down_proj (172 columns) cannot be split into blocks of 32 and stays f32.
	if q, f := m.WeightBytes(), f32.WeightBytes(); q >= f/2 {
		t.Errorf("q8_0 reads %d weight bytes per token, f32 %d", q, f)
	}
}

func TestLoadErrors(t *testing.T) {
	c := synthConfig(t, map[string]any{"model_type": "llama"})
	build := func(edit func(map[string]*safetensors.Tensor)) error {
		ts := map[string]*safetensors.Tensor{}
		for name, shape := range synthShapes(c) {
			n := 1
			for _, d := range shape {
				n *= d
			}
			ts[name] = &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: make([]byte, 4*n)}
		}
		edit(ts)
		var list []*safetensors.Tensor
		for _, tn := range ts {
			list = append(list, tn)
		}
		_, err := New(c, safetensors.NewMemSource(list), Options{})
		return err
	}
	for _, tc := range []struct {
		name string
		edit func(map[string]*safetensors.Tensor)
		want string
	}{
		{"missing", func(ts map[string]*safetensors.Tensor) { delete(ts, "model.layers.1.mlp.up_proj.weight") },
			"tensor model.layers.1.mlp.up_proj.weight is missing"},
		{"shape", func(ts map[string]*safetensors.Tensor) { ts["model.norm.weight"].Shape = []int{16, 2} },
			"tensor model.norm.weight has shape [16 2], the config implies [32]"},
		{"dtype", func(ts map[string]*safetensors.Tensor) {
			ts["model.layers.0.self_attn.q_proj.weight"].DType = safetensors.I32
		},
			"dtype I32 is not supported"},
		{"nan norm", func(ts map[string]*safetensors.Tensor) {
			ts["model.norm.weight"].Data = f32Bytes(append(make([]float32, 31), float32(math.NaN())))
		}, "model.norm.weight holds NaN"},
	} {
		if err := build(tc.edit); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(c, nil, Options{Quant: "q4_k"}); err == nil || !strings.Contains(err.Error(), `"q4_k"`) {
		t.Errorf("unknown quant: %v", err)
	}
	if _, err := Load(t.TempDir(), Options{}); err == nil {
		t.Error("Load of an empty folder succeeded")
	}
}

func TestForwardErrors(t *testing.T) {
	c := synthConfig(t, map[string]any{"model_type": "llama"})
	m, _ := synthModel(t, c, safetensors.F32, 1)
	s := m.NewSession(8)
	for _, tc := range []struct {
		tokens []int
		want   string
	}{
		{nil, "no tokens"},
		{[]int{1, 40}, "token id 40 is outside the vocabulary [0, 40)"},
		{[]int{-1}, "token id -1"},
		{make([]int, 9), "9 tokens after 0 cached exceed the session's context size of 8 positions"},
	} {
		if _, err := s.Forward(tc.tokens); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Forward(%v): got %v, want %q", tc.tokens, err, tc.want)
		}
		if _, err := s.ForwardAll(tc.tokens); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ForwardAll(%v): got %v, want %q", tc.tokens, err, tc.want)
		}
	}
	if s.Pos() != 0 {
		t.Errorf("failed calls moved Pos to %d", s.Pos())
	}
	if _, err := s.Forward(make([]int, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Forward([]int{0}); err == nil {
		t.Error("feeding past maxSeq succeeded")
	}
	if got := m.NewSession(0).MaxSeq(); got != 256 {
		t.Errorf("default MaxSeq %d, want max_position_embeddings 256", got)
	}
}

// TestContextSize checks the context a default session holds: the model's
// max_position_embeddings (not a fixed cap), or Options.ContextSize, with
// nothing allocated per position before tokens arrive, and an error that
// names the real limit.
func TestContextSize(t *testing.T) {
	c := synthConfig(t, map[string]any{"model_type": "llama", "max_position_embeddings": 131072})
	m, _ := synthModel(t, c, safetensors.F32, 1)
	s := m.NewSession(0)
	if got := s.MaxSeq(); got != 131072 {
		t.Errorf("default MaxSeq %d, want max_position_embeddings 131072", got)
	}
	if len(s.scores) != 0 || len(s.kc[0]) != 0 {
		t.Errorf("a fresh session allocated %d attention scores and %d cache floats per layer", len(s.scores), len(s.kc[0]))
	}
	if _, err := s.Forward([]int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got, limit := len(s.scores), c.NumHeads*chunk; got > limit {
		t.Errorf("3 tokens grew the attention rows to %d floats, want <= %d", got, limit)
	}

	for _, tc := range []struct {
		opt, want int
	}{{0, 131072}, {16, 16}, {200000, 200000}} {
		m2, err := New(c, m.src, Options{ContextSize: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		if m2.ContextSize() != tc.want || m2.NewSession(0).MaxSeq() != tc.want {
			t.Errorf("ContextSize %d: model says %d, session holds %d, want %d", tc.opt, m2.ContextSize(), m2.NewSession(0).MaxSeq(), tc.want)
		}
	}
	if _, err := New(c, m.src, Options{ContextSize: -1}); err == nil {
		t.Error("a negative context size was accepted")
	}
	m3, _ := New(c, m.src, Options{ContextSize: 16})
	_, err := m3.NewSession(0).Forward(make([]int, 17))
	if !errors.Is(err, ErrContextFull) || !strings.Contains(err.Error(), "context size of 16 positions") ||
		!strings.Contains(err.Error(), "max_position_embeddings: 131072") {
		t.Errorf("overflow error %v: want ErrContextFull naming the context size 16 and the model's 131072", err)
	}

	none := synthConfig(t, map[string]any{"model_type": "llama", "max_position_embeddings": nil}) // null: absent (0 is refused)
	m4, err := New(none, m.src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m4.ContextSize() != DefaultContextSize {
		t.Errorf("no max_position_embeddings: context %d, want %d", m4.ContextSize(), DefaultContextSize)
	}
}

// TestResidentEmbeddings loads checkpoints into private memory (the
// default) and finds, in /proc/self/maps, the embedding table left in the
// file's mapping exactly when it is not also the output head (untied, or
// tied with a stored quantized head), and the head and the layers' matrices
// in private memory. TestQuantizeCheckpoint holds the stored model's
// logits to those of quantizing at load.
func TestResidentEmbeddings(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Resident copies only on Linux")
	}
	root := testutil.Shared(t, "fixtures/arch")
	q8 := filepath.Join(t.TempDir(), "qwen2-q8_0")
	if _, err := QuantizeCheckpoint(context.Background(), filepath.Join(root, "qwen2"), q8, "q8_0", false, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir         string
		embedMapped bool
	}{
		{filepath.Join(root, "llama-bf16"), true}, // untied
		{filepath.Join(root, "qwen2"), false},     // tied: the table is the head
		{q8, true},                                // tied, with a stored Q8_0 head
	} {
		m := loadModel(t, c.dir, Options{})
		where := func(x *kernels.Mat) string {
			var p unsafe.Pointer
			switch x.Type {
			case kernels.F32:
				p = unsafe.Pointer(&x.F32[0])
			case kernels.BF16, kernels.F16:
				p = unsafe.Pointer(&x.Half[0])
			case kernels.Q8_0:
				p = unsafe.Pointer(&x.Q[0])
			case kernels.Q4_0:
				p = unsafe.Pointer(&x.Q4[0])
			}
			return testutil.MappingOf(t, p)
		}
		if got := where(m.embed); (got != "") != c.embedMapped {
			t.Errorf("%s: embeddings in %q, want mapped %v", c.dir, got, c.embedMapped)
		}
		for name, x := range map[string]*kernels.Mat{"head": m.lmHead, "wq": m.layers[0].wq, "down": m.layers[len(m.layers)-1].down} {
			if got := where(x); got != "" {
				t.Errorf("%s: %s in %q, want private memory", c.dir, name, got)
			}
		}
	}
}

// TestQuantReleasesStored quantizes at load and finds, in /proc/self/smaps,
// that the stored matrices' pages of the file's map left the process as
// each was quantized: what stays resident of the map is under half the
// file (the norms, biases and header read, and the kernel's fault-around
// maps up to 64 KiB beside each; on these small files about a third),
// where reading every matrix left 80-100% of it. TestQ8 and TestQ4 hold
// the logits to quantizing on the heap.
func TestQuantReleasesStored(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pages are released only on Linux")
	}
	root := testutil.Shared(t, "fixtures/arch")
	for _, name := range []string{"llama", "qwen2", "phi3"} {
		for _, q := range []string{"q8_0", "q4_0"} {
			dir := filepath.Join(root, name)
			m := loadModel(t, dir, Options{Quant: q})
			if m.layers[0].wq.Type == kernels.F32 || m.lmHead.Type == kernels.F32 {
				t.Fatalf("%s %s: not quantized", name, q)
			}
			st, err := os.Stat(filepath.Join(dir, safetensors.SingleName))
			if err != nil {
				t.Fatal(err)
			}
			tn, _ := m.src.Tensor(m.src.Names()[0])
			if kb := testutil.ResidentKB(t, unsafe.Pointer(&tn.Data[0])); kb > int(st.Size()/1024/2) {
				t.Errorf("%s %s: %d KiB of the %d KiB file's map resident after load", name, q, kb, st.Size()/1024)
			}
		}
	}
}
