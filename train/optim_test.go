package train

import (
	"math"
	"reflect"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/merge"
)

// TestAdamWMatchesPyTorch checks three steps against torch.optim.AdamW
// (lr 0.1, weight_decay 0.01, float64), values printed by PyTorch 1.13.
func TestAdamWMatchesPyTorch(t *testing.T) {
	p := map[string][]float32{"w": {0.5, -1, 2}}
	o := NewAdamW(0.01)
	for _, g := range [][]float32{{0.1, -0.2, 0.3}, {-0.05, 0.4, 0}, {0.2, 0.2, -1}} {
		o.Update(p, map[string][]float32{"w": g}, 0.1)
	}
	want := []float64{0.306283187531988, -0.9857007249701213, 1.8735896521554782}
	for i, w := range want {
		if math.Abs(float64(p["w"][i])-w) > 1e-6 {
			t.Errorf("w[%d] = %.9g, PyTorch %.9g", i, p["w"][i], w)
		}
	}
}

// TestAdamWDecayGroups: with a zero gradient AdamW's step is the decay
// alone, θ·(1 − lr·wd) = 2·(1 − 0.1·0.5) = 1.9, which Hugging Face's
// Trainer (TRL's) applies to the projections, embeddings, head and LoRA
// matrices but not to the RMSNorm weights (get_decay_parameter_names).
func TestAdamWDecayGroups(t *testing.T) {
	want := map[string]float32{
		"model.layers.0.input_layernorm.weight":                          2,
		"model.layers.0.post_attention_layernorm.weight":                 2,
		"model.norm.weight":                                              2,
		"model.layers.0.self_attn.q_proj.weight":                         1.9,
		"model.embed_tokens.weight":                                      1.9,
		"lm_head.weight":                                                 1.9,
		"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight":    1.9,
		"base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight": 1.9,
	}
	p, g := map[string][]float32{}, map[string][]float32{}
	for name := range want {
		p[name], g[name] = []float32{2}, []float32{0}
	}
	NewAdamW(0.5).Update(p, g, 0.1)
	for name, w := range want {
		if math.Abs(float64(p[name][0]-w)) > 1e-6 {
			t.Errorf("%s: %v after one step, want %v", name, p[name][0], w)
		}
	}
}

// TestCosineLR checks the schedule against hand-derived values.
func TestCosineLR(t *testing.T) {
	for _, c := range []struct {
		step, warmup, total int
		want                float64
	}{
		{0, 10, 110, 0}, {5, 10, 110, 0.5}, {10, 10, 110, 1}, {60, 10, 110, 0.5}, {110, 10, 110, 0}, {0, 0, 4, 1}, {2, 0, 4, 0.5},
	} {
		if got := CosineLR(1, c.step, c.warmup, c.total); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("CosineLR(step %d, warm-up %d, total %d) = %g, want %g", c.step, c.warmup, c.total, got, c.want)
		}
	}
}

// TestClipGradNorm: gradients (3, 4) have norm 5; clipped to 1 they are
// (0.6, 0.8) up to torch's 1e-6 guard; under the limit they are kept, and
// a limit of 0 clips nothing (Hugging Face's max_grad_norm 0).
func TestClipGradNorm(t *testing.T) {
	g := map[string][]float32{"a": {3}, "b": {4}}
	if n := ClipGradNorm(g, 1); n != 5 || math.Abs(float64(g["a"][0])-0.6) > 1e-6 || math.Abs(float64(g["b"][0])-0.8) > 1e-6 {
		t.Fatalf("norm %g, clipped %v", n, g)
	}
	ClipGradNorm(g, 10)
	if math.Abs(float64(g["a"][0])-0.6) > 1e-6 {
		t.Fatalf("clipped under the limit: %v", g)
	}
	if n := ClipGradNorm(g, 0); math.Abs(n-1) > 1e-6 || math.Abs(float64(g["a"][0])-0.6) > 1e-6 {
		t.Fatalf("a limit of 0: norm %g, gradients %v; want them kept", n, g)
	}
}

// TestSaveLoRARoundTrip saves skills-lora-add as loaded and reads it back
// with LoadLoRA and with merge's independent PEFT loader.
func TestSaveLoRARoundTrip(t *testing.T) {
	m, err := Load(testutil.Shared(t, "models/skills-base"))
	if err != nil {
		t.Fatal(err)
	}
	lo, err := LoadLoRA(testutil.Shared(t, "models/skills-lora-add"), m)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveLoRA(dir, lo, m, "../skills-base"); err != nil {
		t.Fatal(err)
	}
	back, err := LoadLoRA(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, lo) {
		t.Fatal("adapter changed across save and load")
	}
	ad, err := merge.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ad.R != 8 || ad.Scale != 2 || len(ad.Targets) != len(lo.A) {
		t.Fatalf("merge reads r %d scale %g with %d targets", ad.R, ad.Scale, len(ad.Targets))
	}
	for _, name := range ad.Targets {
		if !reflect.DeepEqual(ad.A[name], lo.A[name]) || !reflect.DeepEqual(ad.B[name], lo.B[name]) {
			t.Fatalf("%s differs as merge reads it", name)
		}
	}
}
