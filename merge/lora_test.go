package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

const loraA, loraB = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"

func writeAdapter(t *testing.T, dir string) {
	t.Helper()
	writeAdapterWith(t, dir, `{"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["q_proj"]}`,
		f32t(loraA, []int{1, 2}, 1, 2), f32t(loraB, []int{2, 1}, 1, 3))
}

func writeAdapterWith(t *testing.T, dir, cfg string, tensors ...*safetensors.Tensor) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLoadAdapterRefuses: adapters whose math LoadAdapter does not do
// (DoRA, trained biases, per-module ranks or alphas) and tensors whose rank
// is not the config's are errors, not a merge at the wrong scale.
func TestLoadAdapterRefuses(t *testing.T) {
	a12, b21 := f32t(loraA, []int{1, 2}, 1, 2), f32t(loraB, []int{2, 1}, 1, 3)
	for _, c := range []struct {
		name, cfg string
		tensors   []*safetensors.Tensor
		want      string
	}{
		{"dora", `{"r": 1, "lora_alpha": 2, "use_dora": true}`, nil, "DoRA"},
		{"bias", `{"r": 1, "lora_alpha": 2, "bias": "lora_only"}`, nil, "biases"},
		{"rank pattern", `{"r": 1, "lora_alpha": 2, "rank_pattern": {"q_proj": 4}}`, nil, "rank_pattern"},
		{"alpha pattern", `{"r": 1, "lora_alpha": 2, "alpha_pattern": {"model.layers.0.self_attn.q_proj": 8}}`, nil, "alpha_pattern"},
		{"A of another rank", `{"r": 2, "lora_alpha": 2}`, []*safetensors.Tensor{a12, f32t(loraB, []int{1, 2}, 1, 3)}, "lora_A.weight has shape [1 2], want a matrix of rank r = 2"},
		{"B of another rank", `{"r": 1, "lora_alpha": 2}`, []*safetensors.Tensor{a12, f32t(loraB, []int{1, 2}, 1, 3)}, "lora_B.weight has shape [1 2]"},
	} {
		dir := filepath.Join(t.TempDir(), "lora")
		ts := c.tensors
		if ts == nil {
			ts = []*safetensors.Tensor{a12, b21}
		}
		writeAdapterWith(t, dir, c.cfg, ts...)
		if _, err := LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// Empty patterns, as PEFT writes them, and bias "none" are plain LoRA.
	dir := filepath.Join(t.TempDir(), "plain")
	writeAdapterWith(t, dir, `{"peft_type": "LORA", "r": 1, "lora_alpha": 2, "bias": "none", "use_dora": false, "rank_pattern": {}, "alpha_pattern": {}}`, a12, b21)
	if _, err := LoadAdapter(dir); err != nil {
		t.Error(err)
	}
}

func TestLoRA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lora")
	writeAdapter(t, dir)
	a, err := LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Scale != 2 || len(a.Targets) != 1 || a.Targets[0] != "model.layers.0.self_attn.q_proj.weight" {
		t.Fatalf("adapter %+v", a)
	}
	base := safetensors.NewMemSource([]*safetensors.Tensor{
		f32t("model.layers.0.self_attn.q_proj.weight", []int{2, 2}, 1, 0, 0, 1),
		f32t("model.norm.weight", []int{2}, 5, 5),
	})
	// B@A = [[1,2],[3,6]], scale 2.
	out, err := ApplyLoRA(base, []*Adapter{a}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "merged", values(t, out, "model.layers.0.self_attn.q_proj.weight"), []float32{3, 4, 6, 13}, 1e-6)
	near(t, "untouched", values(t, out, "model.norm.weight"), []float32{5, 5}, 0)
	// LoraHub composition: A and B both doubled, so B@A is four times larger.
	out, err = ApplyLoRA(base, []*Adapter{a, a}, []float64{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "composed", values(t, out, "model.layers.0.self_attn.q_proj.weight"), []float32{9, 16, 24, 49}, 1e-6)
	if _, err := ApplyLoRA(safetensors.NewMemSource(nil), []*Adapter{a}, []float64{1}); err == nil {
		t.Error("missing target: no error")
	}
	// An adapter of the same rank and modules made for a wider model is
	// refused, whichever comes first (second, it indexed past the sum or
	// summed into part of it).
	wide := filepath.Join(t.TempDir(), "wide")
	writeAdapterWith(t, wide, `{"peft_type": "LORA", "r": 1, "lora_alpha": 2}`, f32t(loraA, []int{1, 3}, 1, 2, 3), f32t(loraB, []int{2, 1}, 1, 3))
	w, err := LoadAdapter(wide)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][]*Adapter{{a, w}, {w, a}} {
		if _, err := ApplyLoRA(base, pair, []float64{1, 1}); err == nil || !strings.Contains(err.Error(), "differ in the shape") && !strings.Contains(err.Error(), "does not fit the adapter") {
			t.Errorf("adapters %s, %s: err = %v", pair[0].Dir, pair[1].Dir, err)
		}
	}
}

// releaseCounter is a Source that counts the bytes released to it.
type releaseCounter struct {
	safetensors.Source
	n int
}

func (r *releaseCounter) Release(b []byte) { r.n += len(b) }

// TestOverlayRelease: a merged adapter's source passes releases on to its
// base, whose tensors it serves (a merge's inputs release what they read).
func TestOverlayRelease(t *testing.T) {
	base := &releaseCounter{Source: safetensors.NewMemSource([]*safetensors.Tensor{
		f32t("model.layers.0.self_attn.q_proj.weight", []int{2, 2}, 1, 0, 0, 1)})}
	dir := filepath.Join(t.TempDir(), "lora")
	writeAdapter(t, dir)
	a, err := LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ApplyLoRA(base, []*Adapter{a}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	safetensors.Release(out, make([]byte, 7))
	if base.n != 7 {
		t.Errorf("base heard of %d bytes, want 7", base.n)
	}
}
