package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestLoRAGradientsMatchPyTorch compares the LoRA gradients on skills-base
// with PyTorch autograd's (float64), produced once by
// testdata/torch_reference.py from the batch in testdata/torch_batch.json
// and the deterministic adapter initialisation rebuilt here.
func TestLoRAGradientsMatchPyTorch(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	var ref struct {
		Loss  float64
		R     int
		Alpha float64
		Grads map[string]struct {
			Norm  float64
			First []float64
		}
	}
	var batch []struct{ Tokens, Targets []int }
	for file, v := range map[string]any{"testdata/torch_lora_grads.json": &ref, "testdata/torch_batch.json": &batch} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.LoRA, m.Frozen = torchLoRA(m, ref.R, ref.Alpha), true

	// PyTorch's loss is the mean over every scored token of the batch:
	// weight each sequence's mean by its share of the tokens.
	total := 0
	for _, ex := range batch {
		for _, y := range ex.Targets {
			if y >= 0 {
				total++
			}
		}
	}
	grads := map[string][]float32{}
	var loss float64
	for _, ex := range batch {
		g := map[string][]float32{}
		l, n := m.Loss(ex.Tokens, ex.Targets, g)
		w := float64(n) / float64(total)
		loss += l * w
		for name, v := range g {
			if grads[name] == nil {
				grads[name] = make([]float32, len(v))
			}
			for i, x := range v {
				grads[name][i] += float32(w) * x
			}
		}
	}
	if d := math.Abs(loss-ref.Loss) / ref.Loss; d > 1e-5 {
		t.Errorf("loss %.8g, PyTorch %.8g", loss, ref.Loss)
	}
	if len(grads) != len(ref.Grads) {
		t.Fatalf("%d gradient tensors, PyTorch %d", len(grads), len(ref.Grads))
	}
	var worst float64
	for name, want := range ref.Grads {
		g := grads[name]
		var ss float64
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
		if d := math.Abs(math.Sqrt(ss)-want.Norm) / want.Norm; d > 1e-4 {
			t.Errorf("%s: norm %.8g, PyTorch %.8g", name, math.Sqrt(ss), want.Norm)
		}
		for i, w := range want.First {
			// Relative to the tensor's scale: single small entries are
			// not meaningful relative to themselves in float32.
			d := math.Abs(float64(g[i])-w) / want.Norm
			worst = math.Max(worst, d)
			if d > 1e-4 {
				t.Errorf("%s[%d]: %.8g, PyTorch %.8g", name, i, g[i], w)
			}
		}
	}
	t.Logf("loss %.8g (PyTorch %.8g); worst element error %.3g of its tensor's norm", loss, ref.Loss, worst)
}

// torchLoRA is the adapter the PyTorch reference scripts build
// (testdata/torch_reference.py, torch_dpo_reference.py): rank r on q_proj,
// v_proj and down_proj, A and B filled from fixed sine and cosine formulas
// so both sides start from the same weights without sharing a file.
func torchLoRA(m *Model[float32], r int, alpha float64) *LoRA[float32] {
	lo := &LoRA[float32]{R: r, Alpha: alpha, Scale: float32(alpha / float64(r)),
		Modules: []string{"q_proj", "v_proj", "down_proj"}, A: map[string][]float32{}, B: map[string][]float32{}}
	for l := range m.Config.NumLayers {
		for _, mod := range lo.Modules {
			base := LayerName(l, modulePath[mod])
			in, out := m.dims(modulePath[mod])
			a, b := make([]float32, r*in), make([]float32, out*r)
			for i := range r {
				for j := range in {
					a[i*in+j] = float32(0.02 * math.Sin(1+0.7*float64(i)+0.3*float64(j)+float64(l)))
				}
			}
			for i := range out {
				for j := range r {
					b[i*r+j] = float32(0.02 * math.Cos(2+0.5*float64(j)+0.11*float64(i)+float64(l)))
				}
			}
			lo.A[base], lo.B[base] = a, b
		}
	}
	return lo
}
