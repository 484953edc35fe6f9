package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestDPOMatchesPyTorch compares the DPO loss, the log-probabilities and
// the LoRA gradients on skills-base with PyTorch autograd's (float64),
// produced once by testdata/torch_dpo_reference.py for the pairs it lists
// and torch_reference.py's deterministic adapters, rebuilt here.
func TestDPOMatchesPyTorch(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	var ref struct {
		Beta, Loss, Alpha float64
		R                 int
		Pairs             []struct {
			Prompt, Chosen, Rejected string
			LC                       float64 `json:"logp_chosen"`
			LR                       float64 `json:"logp_rejected"`
			RefChosen                float64 `json:"ref_chosen"`
			RefRejected              float64 `json:"ref_rejected"`
		}
		Grads map[string]struct {
			Norm  float64
			First []float64
		}
	}
	b, err := os.ReadFile("testdata/torch_dpo_grads.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.LoRA, m.Frozen = torchLoRA(m, ref.R, ref.Alpha), true

	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: %.8g, PyTorch %.8g", what, got, want)
		}
	}
	grads := map[string][]float32{}
	var loss float64
	w := 1 / float64(len(ref.Pairs))
	for _, p := range ref.Pairs {
		var c, r Seq
		if c.Tokens, c.Targets, err = Tokenize(tok, Example{Prompt: p.Prompt, Completion: p.Chosen}); err != nil {
			t.Fatal(err)
		}
		if r.Tokens, r.Targets, err = Tokenize(tok, Example{Prompt: p.Prompt, Completion: p.Rejected}); err != nil {
			t.Fatal(err)
		}
		refC, refR := m.RefLogProb(c), m.RefLogProb(r)
		near(p.Chosen+" reference log-prob", refC, p.RefChosen, 1e-5)
		near(p.Rejected+" reference log-prob", refR, p.RefRejected, 1e-5)
		st := m.DPOPair(c, r, refC, refR, ref.Beta, w, 0, grads)
		near(p.Chosen+" policy log-prob", st.LogpChosen, p.LC, 1e-5)
		near(p.Rejected+" policy log-prob", st.LogpRejected, p.LR, 1e-5)
		loss += w * st.Loss
	}
	near("loss", loss, ref.Loss, 1e-6)
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
		for i, v := range want.First {
			d := math.Abs(float64(g[i])-v) / want.Norm
			worst = math.Max(worst, d)
			if d > 1e-4 {
				t.Errorf("%s[%d]: %.8g, PyTorch %.8g", name, i, g[i], v)
			}
		}
	}
	t.Logf("loss %.10g (PyTorch %.10g); worst element error %.3g of its tensor's norm", loss, ref.Loss, worst)
}
