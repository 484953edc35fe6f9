package merge

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

func writeAdapter(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	cfg := `{"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["q_proj"]}`
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), []*safetensors.Tensor{
		f32t("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", []int{1, 2}, 1, 2),
		f32t("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", []int{2, 1}, 1, 3),
	}, nil)
	if err != nil {
		t.Fatal(err)
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
}
