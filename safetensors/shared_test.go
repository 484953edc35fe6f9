package safetensors

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestStories260K reads a real checkpoint. The expected values were read
// with a one-off Python script that parses the file with struct and json
// only (no safetensors or numpy library).
func TestStories260K(t *testing.T) {
	path := testutil.Shared(t, "models/stories260K/model.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != 47 || f.HeaderSize != 4848 || f.Metadata["format"] != "pt" {
		t.Fatalf("%d tensors, header %d bytes, metadata %v; want 47, 4848, format=pt", len(f.Names()), f.HeaderSize, f.Metadata)
	}
	params := 0
	for _, n := range f.Names() {
		x, _ := f.Tensor(n)
		params += x.NumElements()
	}
	if params != 260032 {
		t.Errorf("%d parameters, want 260032", params)
	}
	values := []struct {
		name  string
		shape []int
		index int
		bits  uint32
	}{
		{"model.embed_tokens.weight", []int{512, 64}, 0, 0xbe96e950},
		{"model.embed_tokens.weight", []int{512, 64}, 1, 0x3f0fd864},
		{"model.embed_tokens.weight", []int{512, 64}, 511*64 + 63, 0xbed91acd},
		{"model.norm.weight", []int{64}, 0, 0x401d54ef},
		{"model.norm.weight", []int{64}, 63, 0x3fda986f},
		{"model.layers.4.mlp.down_proj.weight", []int{64, 172}, 172*64 - 1, 0xbb65d38b},
		{"model.layers.2.self_attn.k_proj.weight", []int{32, 64}, 100, 0x3ebe2f14},
	}
	for _, v := range values {
		x, ok := f.Tensor(v.name)
		if !ok {
			t.Fatalf("tensor %s missing", v.name)
		}
		if x.DType != F32 || !equalInts(x.Shape, v.shape) {
			t.Errorf("%s: %s %v, want F32 %v", v.name, x.DType, x.Shape, v.shape)
		}
		w, err := x.F32()
		if err != nil {
			t.Fatal(err)
		}
		if got := math.Float32bits(w[v.index]); got != v.bits {
			t.Errorf("%s[%d] = %#08x (%g), want %#08x", v.name, v.index, got, w[v.index], v.bits)
		}
	}
	norm, _ := f.Tensor("model.norm.weight")
	w, _ := norm.F32()
	sum := 0.0
	for _, x := range w {
		sum += float64(x)
	}
	if math.Abs(sum-115.95276230573654) > 1e-9 {
		t.Errorf("sum of model.norm.weight = %.14g, want 115.95276230573654", sum)
	}

	// Rewrite it whole and in shards: the same tensors come back.
	var all []*Tensor
	for _, n := range f.Order() {
		x, _ := f.Tensor(n)
		all = append(all, x)
	}
	dir := t.TempDir()
	one := filepath.Join(dir, "one.safetensors")
	if err := WriteFile(one, all, f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := Open(one)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	checkSame(t, g, all)
	writeSharded(t, filepath.Join(dir, "sharded"), all, 300_000, f.Metadata)
	s, err := OpenDir(filepath.Join(dir, "sharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSame(t, s, all)
	if n := len(s.(*Sharded).Files()); n != 4 {
		t.Errorf("%d shards of at most 300000 bytes, want 4", n)
	}
}

// TestConvertMatchesBF16Checkpoint converts the f32 skills-base checkpoint
// to bf16 and compares it bit for bit with skills-base-bf16, which the
// training framework produced with its own round-to-nearest-even (plain
// truncation would differ in about half of the 853888 values).
func TestConvertMatchesBF16Checkpoint(t *testing.T) {
	src, err := OpenDir(testutil.Shared(t, "models/skills-base"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ref, err := OpenDir(testutil.Shared(t, "models/skills-base-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if len(src.Names()) != len(ref.Names()) {
		t.Fatalf("%d tensors vs %d", len(src.Names()), len(ref.Names()))
	}
	for _, n := range src.Names() {
		x, _ := src.Tensor(n)
		want, ok := ref.Tensor(n)
		if !ok {
			t.Fatalf("%s missing from the bf16 checkpoint", n)
		}
		got, err := Convert(x, BF16)
		if err != nil {
			t.Fatal(err)
		}
		if want.DType != BF16 || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: converted bytes differ from the bf16 checkpoint", n)
		}
		back, err := ToF32(want)
		if err != nil {
			t.Fatal(err)
		}
		orig, _ := x.F32()
		for i := range back {
			if d := math.Abs(float64(back[i] - orig[i])); d > math.Abs(float64(orig[i]))/256 {
				t.Fatalf("%s[%d]: bf16 %g vs f32 %g", n, i, back[i], orig[i])
			}
		}
	}
}
