package merge

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

func f32t(name string, shape []int, v ...float32) *safetensors.Tensor {
	return &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: f32Bytes(append([]float32(nil), v...))}
}

func mem(name string, ts ...*safetensors.Tensor) Input {
	return Input{Name: name, Src: safetensors.NewMemSource(ts)}
}

func values(t *testing.T, src safetensors.Source, name string) []float32 {
	t.Helper()
	x, ok := src.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	v, err := safetensors.ToF32(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParamAt(t *testing.T) {
	g := Param{Values: []float64{0, 1, 0}}
	cases := []struct {
		name  string
		layer int
		want  float64
	}{
		{"model.layers.0.mlp.up_proj.weight", 0, 0},
		{"model.layers.1.mlp.up_proj.weight", 1, 0.5},
		{"model.layers.2.mlp.up_proj.weight", 2, 1},
		{"model.layers.4.mlp.up_proj.weight", 4, 0},
		{"model.embed_tokens.weight", -1, 0},
		{"model.norm.weight", -1, 0},
	}
	for _, c := range cases {
		if got, _ := g.At(c.name, c.layer, 5); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	f := Param{Filters: []FilteredParam{{"self_attn", []float64{0.2}}, {"", []float64{0.7}}}}
	if v, _ := f.At("model.layers.0.self_attn.q_proj.weight", 0, 2); v != 0.2 {
		t.Errorf("filter: %v", v)
	}
	if v, _ := f.At("model.layers.0.mlp.up_proj.weight", 0, 2); v != 0.7 {
		t.Errorf("default: %v", v)
	}
	if layerOf("model.layers.12.mlp.up_proj.weight") != 12 || layerOf("lm_head.weight") != -1 {
		t.Error("layerOf")
	}
}

func TestSpecMerge(t *testing.T) {
	base := mem("base", f32t("model.layers.0.w", []int{2}, 1, 1), f32t("model.embed_tokens.weight", []int{2, 1}, 0, 0))
	a := mem("a", f32t("model.layers.0.w", []int{2}, 3, 1), f32t("model.embed_tokens.weight", []int{2, 1}, 2, 4))
	b := mem("b", f32t("model.layers.0.w", []int{2}, 1, 5), f32t("model.embed_tokens.weight", []int{2, 1}, 4, 0))
	a.Params = Params{"weight": Scalar(1)}
	b.Params = Params{"weight": Scalar(3)}
	s := &Spec{Method: "linear", Models: []Input{a, b}}
	out, err := s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	near(t, "linear w", values(t, out, "model.layers.0.w"), []float32{1.5, 4}, 1e-6) // (3+3)/4, (1+15)/4
	near(t, "linear e", values(t, out, "model.embed_tokens.weight"), []float32{3.5, 1}, 1e-6)

	s = &Spec{Method: "task_arithmetic", Base: &base, Models: []Input{a, b}, Params: Params{"lambda": Scalar(0.5)}}
	out, err = s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// deltas a: 2 0, b: 0 4 (weight 3) -> 1 + 0.5*(2), 1 + 0.5*(12)
	near(t, "task arithmetic", values(t, out, "model.layers.0.w"), []float32{2, 7}, 1e-6)

	s = &Spec{Method: "slerp", Base: &base, Models: []Input{a}, Params: Params{"t": Scalar(0)}, OutDType: safetensors.BF16}
	out, err = s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	x, _ := out.Tensor("model.layers.0.w")
	if x.DType != safetensors.BF16 {
		t.Fatalf("dtype %s", x.DType)
	}
	near(t, "slerp t=0 is base", values(t, out, "model.layers.0.w"), []float32{1, 1}, 0)
}

func TestSpecErrors(t *testing.T) {
	a := mem("a", f32t("model.layers.0.w", []int{2}, 1, 1))
	b := mem("b", f32t("model.layers.0.w", []int{3}, 1, 1, 1))
	c := mem("c", f32t("model.layers.0.v", []int{2}, 1, 1))
	big := mem("big", f32t("model.embed_tokens.weight", []int{3, 2}, 1, 2, 3, 4, 5, 6))
	small := mem("small", f32t("model.embed_tokens.weight", []int{2, 2}, 3, 4, 5, 6))
	cases := []struct {
		s    Spec
		want string
	}{
		{Spec{Method: "nope", Models: []Input{a}}, "unknown merge method"},
		{Spec{Method: "ties", Models: []Input{a}}, "needs a base"},
		{Spec{Method: "linear", Models: []Input{a, b}}, "tensor model.layers.0.w: shape"},
		{Spec{Method: "linear", Models: []Input{a, c}}, "tensor model.layers.0.w: missing from c"},
		{Spec{Method: "slerp", Base: &a, Models: []Input{a, a}}, "exactly 1"},
		{Spec{Method: "linear", Models: []Input{big, small}}, "vocabulary rows"},
		// mergekit's counts: arcee_fusion and nearswap merge one model
		// into a base, ram and ramplus_tl any number.
		{Spec{Method: "arcee_fusion", Models: []Input{a}}, "arcee_fusion needs a base model"},
		{Spec{Method: "arcee_fusion", Base: &a, Models: []Input{a, a}}, "arcee_fusion takes exactly 1 model(s) besides the base, got 2"},
		{Spec{Method: "nearswap", Models: []Input{a}, Params: Params{"t": Scalar(0.1)}}, "nearswap needs a base model"},
		{Spec{Method: "nearswap", Base: &a, Models: []Input{a, a}, Params: Params{"t": Scalar(0.1)}}, "nearswap takes exactly 1 model(s) besides the base, got 2"},
		{Spec{Method: "nearswap", Base: &a}, "nearswap takes exactly 1 model(s) besides the base, got 0"},
		// mergekit requires t and moco has no default for it either.
		{Spec{Method: "nearswap", Base: &a, Models: []Input{a}}, "missing required parameter t for nearswap: no level sets it (--param t=VALUE"},
		// Set for some tensors only: the first without it is named.
		{Spec{Method: "nearswap", Base: &a, Models: []Input{a}, Params: Params{"t": {Filters: []FilteredParam{{Filter: "nothing", Values: []float64{0.1}}}}}}, "tensor model.layers.0.w: missing required parameter t"},
		{Spec{Method: "ram", Models: []Input{a, a}}, "ram needs a base model"},
		{Spec{Method: "ramplus_tl", Models: []Input{a}}, "ramplus_tl needs a base model"},
		{Spec{Method: "ram", Base: &a}, "ram needs at least 1 model(s) besides the base, got 0"},
	}
	for _, c := range cases {
		_, err := c.s.MergeToMemory(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.s.Method, err, c.want)
		}
	}
	s := Spec{Method: "linear", Models: []Input{big, small}, TruncateVocab: true}
	out, err := s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	near(t, "truncated", values(t, out, "model.embed_tokens.weight"), []float32{2, 3, 4, 5}, 1e-6)
}

func TestWriteFolder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(in, "config.json"), []byte(`{"vocab_size": 3, "torch_dtype": "float32", "model_type": "llama"}`), 0o644)
	os.WriteFile(filepath.Join(in, "tokenizer_config.json"), []byte(`{}`), 0o644)
	a := mem("a", f32t("model.embed_tokens.weight", []int{3, 2}, 1, 2, 3, 4, 5, 6), f32t("model.layers.0.w", []int{4}, 1, 2, 3, 4))
	b := mem("b", f32t("model.embed_tokens.weight", []int{2, 2}, 3, 4, 5, 6), f32t("model.layers.0.w", []int{4}, 3, 2, 1, 0))
	s := &Spec{Method: "linear", Models: []Input{a, b}, TruncateVocab: true, OutDType: safetensors.BF16}
	out := filepath.Join(dir, "out")
	if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: []string{in}, ShardSize: 8}); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	near(t, "written", values(t, src, "model.layers.0.w"), []float32{2, 2, 2, 2}, 0)
	if _, err := os.Stat(filepath.Join(out, safetensors.IndexName)); err != nil {
		t.Errorf("no index past the shard size: %v", err)
	}
	var cfg map[string]any
	b2, _ := os.ReadFile(filepath.Join(out, "config.json"))
	json.Unmarshal(b2, &cfg)
	if cfg["torch_dtype"] != "bfloat16" || cfg["vocab_size"] != 2.0 {
		t.Errorf("config %v", cfg)
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer_config.json")); err != nil {
		t.Error("tokenizer files not copied")
	}
	if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: []string{in}}); err == nil {
		t.Error("overwrote a non-empty folder")
	}
	// A failing merge leaves nothing behind.
	bad := &Spec{Method: "linear", Models: []Input{a, mem("c", f32t("x", []int{1}, 1))}}
	out2 := filepath.Join(dir, "out2")
	if err := WriteFolder(context.Background(), bad, out2, FolderOptions{Dirs: []string{in}}); err == nil {
		t.Error("no error")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "tmp") || e.Name() == "out2" {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

// TestStreamMatchesWhole checks the chunked streaming path (used for
// element-wise methods) against the whole-tensor functions, on BF16 inputs
// spanning several chunks, DARE's random drops included.
func TestStreamMatchesWhole(t *testing.T) {
	const n = 3*chunk + 100
	mk := func(name string, seed uint64) (Input, []float32) {
		r := rng{s: seed}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.float64()*2 - 1)
		}
		bt, err := safetensors.Convert(f32t("model.layers.0.w", []int{n}, x...), safetensors.BF16)
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := safetensors.ToF32(bt)
		return mem(name, bt), wide
	}
	base, bx := mk("base", 1)
	a, ax := mk("a", 2)
	b, bxx := mk("b", 3)
	a.Params = Params{"weight": Scalar(0.7), "density": Scalar(0.4)}
	b.Params = Params{"weight": Scalar(0.5), "density": Scalar(0.6)}
	s := &Spec{Method: "dare_ties", Base: &base, Models: []Input{a, b}, Seed: 9, OutDType: safetensors.F32}
	out, err := s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n)
	o := TaskOptions{Sparsify: SparsifyRandom, Consensus: "sum", Rescale: true, Density: []float64{0.4, 0.6}, Seed: 9 ^ hashName("model.layers.0.w")}
	if err := TaskMerge(want, bx, [][]float32{ax, bxx}, []float64{0.7, 0.5}, o); err != nil {
		t.Fatal(err)
	}
	near(t, "dare_ties streamed", values(t, out, "model.layers.0.w"), want, 1e-6)

	s = &Spec{Method: "linear", Models: []Input{a, b}, OutDType: safetensors.F32}
	if out, err = s.MergeToMemory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := Linear(want, [][]float32{ax, bxx}, []float64{0.7, 0.5}, true); err != nil {
		t.Fatal(err)
	}
	near(t, "linear streamed", values(t, out, "model.layers.0.w"), want, 1e-6)
}

func TestWriteFolderMode(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(in, "config.json"), []byte(`{}`), 0o644)
	s := &Spec{Method: "linear", Models: []Input{mem("a", f32t("w", []int{1}, 1))}}
	out := filepath.Join(dir, "out")
	if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: []string{in}}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
}

// TestWriteFolderPoolMatchesMemory: a merge written to disk, whose output
// buffers are recycled once written, holds the same bits as the same merge
// in memory (no buffer reused before it was written).
func TestWriteFolderPoolMatchesMemory(t *testing.T) {
	models := testutil.Shared(t, "models")
	dirs := []string{filepath.Join(models, "skills-base"), filepath.Join(models, "skills-add"), filepath.Join(models, "skills-rev")}
	for _, method := range []string{"ties", "dare_ties"} {
		spec := func() *Spec {
			var ins []Input
			for _, d := range dirs {
				in, err := OpenModel(d)
				if err != nil {
					t.Fatal(err)
				}
				in.Params = Params{"weight": Scalar(0.5), "density": Scalar(0.4)}
				ins = append(ins, in)
			}
			return &Spec{Method: method, Base: &ins[0], Models: ins[1:], Seed: 3}
		}
		out := filepath.Join(t.TempDir(), "out")
		s := spec()
		if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: dirs}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = spec()
		want, err := s.MergeToMemory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got, err := safetensors.OpenDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range want.Names() {
			a, _ := got.Tensor(name)
			b, _ := want.Tensor(name)
			if a == nil || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("%s: tensor %s differs between the written folder and the in-memory merge", method, name)
			}
		}
		got.Close()
		s.Close()
	}
}

// TestBufPool: buffers come from the region at the lowest offset where
// they fit, a buffer's offset is handed out again only after it was put
// back, a request that fits nowhere comes from the heap, and slices the
// pool did not hand out are ignored.
func TestBufPool(t *testing.T) {
	bp := newBufPool(4096)
	defer bp.release()
	in := func(b []byte) int { // offset in the region, or -1
		for off := range bp.mem {
			if &bp.mem[off] == &b[0] {
				return off
			}
		}
		return -1
	}
	a := bp.get(1000)
	b := bp.get(1000)
	if in(a) != 0 || in(b) != 1024 || cap(a) != 1000 {
		t.Fatalf("offsets %d and %d (cap %d), want 0 and 1024", in(a), in(b), cap(a))
	}
	if c := bp.get(3000); in(c) >= 0 || len(c) != 3000 {
		t.Fatal("a buffer that fits nowhere in the region was not taken from the heap")
	}
	bp.put(a)
	bp.put(make([]byte, 1000)) // not the pool's
	if c := bp.get(800); in(c) != 0 || len(c) != 800 {
		t.Fatal("a returned buffer's place was not reused for a smaller tensor")
	}
	if c := bp.get(300); in(c) != 2048 {
		t.Fatalf("offset %d, want 2048 (the gap before the live buffer at 1024 is too small)", in(c))
	}
	bp.put(b)
	if c := bp.get(1100); in(c) != 832 {
		t.Fatalf("offset %d, want 832 (first fit)", in(c))
	}
	var nilPool *bufPool
	if c := nilPool.get(10); len(c) != 10 {
		t.Fatal("nil pool")
	}
	if c := newBufPool(0).get(10); len(c) != 10 {
		t.Fatal("pool without a region")
	}
}

// TestBufPoolFirstFit holds the pool to a map of the region's 64-byte
// granules over random requests and returns: each buffer at the lowest
// granule where it fits, else from the heap, and no buffer overwritten
// while it is out.
func TestBufPoolFirstFit(t *testing.T) {
	const size = 1 << 16
	bp := newBufPool(size)
	defer bp.release()
	used := make([]bool, size/bufAlign)
	type out struct {
		b        []byte
		off, tag int
	}
	var live []out
	r := rng{s: 7}
	for step := range 5000 {
		if len(live) > 0 && r.next()%3 == 0 {
			k := int(r.next() % uint64(len(live)))
			o := live[k]
			for j, v := range o.b {
				if v != byte(o.tag+j) {
					t.Fatalf("step %d: buffer at %d overwritten while out", step, o.off)
				}
			}
			if o.off >= 0 {
				for g := o.off / bufAlign; g < (o.off+len(o.b)+bufAlign-1)/bufAlign; g++ {
					used[g] = false
				}
			}
			bp.put(o.b)
			live = slices.Delete(live, k, k+1)
			continue
		}
		n := 1 + int(r.next()%(size/4))
		want, ng := -1, (n+bufAlign-1)/bufAlign
		for g := 0; g+ng <= len(used) && want < 0; g++ {
			if !slices.Contains(used[g:g+ng], true) {
				want = g * bufAlign
			}
		}
		b := bp.get(n)
		got := -1
		if base := unsafe.SliceData(bp.mem); uintptr(unsafe.Pointer(&b[0]))-uintptr(unsafe.Pointer(base)) < size {
			got = int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(base)))
		}
		if got != want || len(b) != n {
			t.Fatalf("step %d: %d bytes at offset %d, want %d", step, n, got, want)
		}
		if got >= 0 {
			for g := got / bufAlign; g < got/bufAlign+ng; g++ {
				used[g] = true
			}
		}
		for j := range b {
			b[j] = byte(step + j)
		}
		live = append(live, out{b, got, step})
	}
}

// TestScratchSet: pooled scratch comes zeroed and capped at the size
// asked for, also after a release handed dirty scratch back to the pool,
// and slabs hold at least what was asked for.
func TestScratchSet(t *testing.T) {
	for round := range 3 {
		var sc scratchSet
		ds := sc.floats(3, 1000)
		for _, d := range ds {
			if len(d) != 1000 || cap(d) != 1000 {
				t.Fatalf("round %d: len %d cap %d", round, len(d), cap(d))
			}
			for j, v := range d {
				if v != 0 {
					t.Fatalf("round %d: scratch not zeroed at %d", round, j)
				}
			}
			for j := range d {
				d[j] = 1
			}
		}
		if &ds[0][0] == &ds[1][0] {
			t.Fatal("one scratch slice handed out twice")
		}
		if big := sc.floats(1, chunk+1)[0]; len(big) != chunk+1 {
			t.Fatal("oversized scratch")
		}
		for _, n := range []int{10, slabSize, slabSize + 1} {
			if s := sc.u32(n); len(s) != 0 || cap(s) < n {
				t.Fatalf("slab of %d: len %d cap %d", n, len(s), cap(s))
			}
		}
		sc.release()
	}
	var nilSet *scratchSet
	if d := nilSet.floats(2, 5); len(d) != 2 || len(d[1]) != 5 {
		t.Fatal("nil set")
	}
	nilSet.release()
}

// TestMinInputs: the fewest pool members a method takes, its base
// included, as mergekit's methods need them.
func TestMinInputs(t *testing.T) {
	for name, want := range map[string]int{"linear": 1, "passthrough": 1, "karcher": 1, "ties": 2, "slerp": 2, "expo": 2,
		"arcee_fusion": 2, "nearswap": 2, "ram": 2, "model_stock": 3, "no-such-method": 0} {
		if got := MinInputs(name); got != want {
			t.Errorf("MinInputs(%q) = %d, want %d", name, got, want)
		}
	}
}
