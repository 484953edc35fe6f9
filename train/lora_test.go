package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/merge"
	"github.com/mocolab/moco/safetensors"
)

// TestLoRAGradients checks the adapters' gradients against central
// finite differences on a frozen tiny model, with every target module
// adapted, and that a frozen base gets no gradients.
func TestLoRAGradients(t *testing.T) {
	for _, p := range []float64{0, 0.3} {
		t.Run(fmt.Sprintf("dropout%g", p), func(t *testing.T) { loraGradients(t, p) })
	}
}

// loraGradients runs TestLoRAGradients with LoRA dropout p: every Loss
// call starts the mask stream afresh, so the finite differences see the
// same masks as the analytic gradient.
func loraGradients(t *testing.T, p float64) {
	c := tinyConfig(t, false)
	r := rand.New(rand.NewPCG(5, 6))
	params := map[string][]float64{}
	sh := shapes(c)
	for _, name := range sortedKeys(sh) { // fixed order: fixed draws
		params[name] = randn(r, sh[name])
	}
	m, err := NewModel(c, params)
	if err != nil {
		t.Fatal(err)
	}
	const rank = 2
	lo := &LoRA[float64]{R: rank, Alpha: 3, Scale: 1.5, A: map[string][]float64{}, B: map[string][]float64{}}
	check := map[string][]float64{}
	for _, mod := range sortedKeys(modulePath) { // fixed order: fixed draws
		path := modulePath[mod]
		lo.Modules = append(lo.Modules, mod)
		for l := range c.NumLayers {
			base := LayerName(l, path)
			in, out := m.dims(path)
			// B random rather than PEFT's zero init, so A's gradient is
			// not trivially zero.
			lo.A[base], lo.B[base] = scaled(randn(r, rank*in), 0.5), scaled(randn(r, out*rank), 0.5)
			check[peftName(base, "A")], check[peftName(base, "B")] = lo.A[base], lo.B[base]
		}
	}
	m.LoRA, m.Frozen = lo, true
	tokens := []int{3, 1, 5, 2}
	targets := []int{-100, 5, 2, 6}
	lo.Dropout = p
	loss := func(grads map[string][]float64) float64 {
		if p > 0 {
			lo.DropRNG = rand.NewPCG(9, 10)
		}
		l, _ := m.Loss(tokens, targets, grads)
		return l
	}
	grads := map[string][]float64{}
	loss(grads)
	if len(grads) != len(check) {
		t.Fatalf("%d gradients, want the %d adapter tensors only", len(grads), len(check))
	}
	checkGrads(t, func() float64 { return loss(nil) }, check, grads)
	if p > 0 {
		// Dropout must change the loss (else the check above proves
		// nothing about it), and without DropRNG (evaluation) it is off.
		with := loss(nil)
		lo.DropRNG = nil
		without, _ := m.Loss(tokens, targets, nil)
		lo.Dropout = 0
		plain, _ := m.Loss(tokens, targets, nil)
		if with == without || without != plain {
			t.Fatalf("loss with dropout %v, evaluation mode %v, no dropout %v", with, without, plain)
		}
	}
}

// TestDropMask checks PEFT's (torch.nn.Dropout's) mask: zeros with
// probability p, 1/(1−p) elsewhere.
func TestDropMask(t *testing.T) {
	lo := &LoRA[float32]{Dropout: 0.25, DropRNG: rand.NewPCG(1, 2)}
	mask := lo.dropMask(40000)
	zeros := 0
	for _, v := range mask {
		switch v {
		case 0:
			zeros++
		case float32(1 / 0.75):
		default:
			t.Fatalf("mask value %v", v)
		}
	}
	if f := float64(zeros) / float64(len(mask)); math.Abs(f-0.25) > 0.01 {
		t.Fatalf("dropped %v, want 0.25", f)
	}
}

// TestLoRAMatchesMerge checks the LoRA forward pass with the PyTorch-trained
// skills-lora-add adapter against merge's fold-in of the same adapter
// (W + scale·B·A, an independent implementation).
func TestLoRAMatchesMerge(t *testing.T) {
	baseDir := testutil.Shared(t, "models/skills-base")
	adDir := testutil.Shared(t, "models/skills-lora-add")
	m, err := Load(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	if m.LoRA, err = LoadLoRA(adDir, m); err != nil {
		t.Fatal(err)
	}
	if m.LoRA.R != 8 || m.LoRA.Scale != 2 || len(m.LoRA.A) != 3*m.Config.NumLayers {
		t.Fatalf("adapter r %d scale %g with %d matrices, want r 8, scale 2, 12", m.LoRA.R, m.LoRA.Scale, len(m.LoRA.A))
	}
	ad, err := merge.LoadAdapter(adDir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	merged, err := merge.ApplyLoRA(src, []*merge.Adapter{ad}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfig(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	folded, err := FromSource(cfg, merged)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int{256, 49, 50, 43, 51, 52, 61, 32, 55, 53, 10, 65, 66}
	got, want := m.Forward(tokens).Logits, folded.Forward(tokens).Logits
	base := 0.0
	var worst float64
	plain, _ := Load(baseDir)
	pl := plain.Forward(tokens).Logits
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		base = math.Max(base, math.Abs(float64(pl[i]-want[i])))
	}
	if worst > 1e-4 || base < 1e-2 {
		t.Fatalf("max |logit difference| %g vs fold-in (want ≤ 1e-4); base differs by %g", worst, base)
	}
	t.Logf("max |logit difference| vs merge fold-in: %g (the adapter moves logits by up to %g)", worst, base)
}

func scaled(x []float64, a float64) []float64 {
	for i := range x {
		x[i] *= a
	}
	return x
}

// TestLoadLoRARefuses: an adapter config asking for math LoadLoRA does not
// do is an error before any tensor is read, not an adapter at the wrong
// scale; PEFT's defaults (empty patterns, bias "none") are plain LoRA.
func TestLoadLoRARefuses(t *testing.T) {
	m, err := Load(testutil.Shared(t, "models/skills-base"))
	if err != nil {
		t.Fatal(err)
	}
	plain := `"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]`
	for _, c := range []struct{ extra, want string }{
		{`"use_dora": true`, "DoRA"},
		{`"bias": "all"`, "bias"},
		{`"rank_pattern": {"q_proj": 4}`, "rank_pattern"},
		{`"alpha_pattern": {"q_proj": 32}`, "alpha_pattern"},
		{`"bias": "none", "rank_pattern": {}, "alpha_pattern": {}`, "adapter_model.safetensors"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte("{"+plain+", "+c.extra+"}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLoRA(dir, m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.extra, err, c.want)
		}
	}
}

// TestLoadLoRAForms: target_modules as PEFT may write it, a list or a
// string (a regular expression, or "all-linear"), loads the same adapter;
// a tensor LoadLoRA cannot apply (a modules_to_save copy of a whole
// module) or a module outside target_modules is refused, not dropped.
func TestLoadLoRAForms(t *testing.T) {
	m, err := Load(testutil.Shared(t, "models/skills-base"))
	if err != nil {
		t.Fatal(err)
	}
	src := testutil.Shared(t, "models/skills-lora-add")
	want, err := LoadLoRA(src, m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(src, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []*safetensors.Tensor
	for _, name := range f.Names() {
		x, _ := f.Tensor(name)
		ts = append(ts, x)
	}
	head := &safetensors.Tensor{Name: "base_model.model.lm_head.weight", DType: safetensors.F32, Shape: []int{1, 1}, Data: make([]byte, 4)}
	plain := `"peft_type": "LORA", "r": 8, "lora_alpha": 16, `
	for _, c := range []struct {
		config string
		extra  *safetensors.Tensor
		want   string // "": loads as skills-lora-add
	}{
		{`"target_modules": ".*\\.(q_proj|v_proj|down_proj)"`, nil, ""},
		{`"target_modules": "all-linear"`, nil, ""},
		{`"target_modules": ["q_proj", "v_proj", "down_proj"], "modules_to_save": null`, nil, ""},
		{`"target_modules": ["q_proj", "v_proj", "down_proj"]`, head, "lm_head.weight is not the LoRA A or B matrix"},
		{`"target_modules": "all-linear"`, head, "lm_head.weight is not the LoRA A or B matrix"},
		{`"target_modules": ["q_proj", "v_proj", "down_proj"], "modules_to_save": ["lm_head"]`, head, "modules_to_save"},
		{`"target_modules": ["q_proj", "v_proj"]`, nil, "down_proj is not among target_modules"},
		{`"target_modules": 3`, nil, "target_modules: want a list of module names or a string"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte("{"+plain+c.config+"}"), 0o644); err != nil {
			t.Fatal(err)
		}
		all := ts
		if c.extra != nil {
			all = append(append([]*safetensors.Tensor(nil), ts...), c.extra)
		}
		if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), all, nil); err != nil {
			t.Fatal(err)
		}
		lo, err := LoadLoRA(dir, m)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.config, err)
		case c.want == "" && !reflect.DeepEqual(lo, want):
			t.Errorf("%s: loaded another adapter (modules %v)", c.config, lo.Modules)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s with %d tensors: err = %v, want %q", c.config, len(all), err, c.want)
		}
	}
}
