package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// tinyConfig is a two-layer Llama with grouped-query attention small
// enough for a finite-difference check of every weight.
func tinyConfig(t *testing.T, tied bool) *engine.Config {
	t.Helper()
	c, err := engine.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama",
		"vocab_size":7,"hidden_size":4,"intermediate_size":6,"num_hidden_layers":2,
		"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":16,
		"rms_norm_eps":1e-5,"rope_theta":10000.0,"hidden_act":"silu","tie_word_embeddings":%v}`, tied)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestModelGradients checks the whole model's gradient of the masked
// cross-entropy against central finite differences, every weight, tied
// and untied heads.
func TestModelGradients(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) {
			c := tinyConfig(t, tied)
			r := rand.New(rand.NewPCG(3, 4))
			params := map[string][]float64{}
			sh := shapes(c)
			for _, name := range sortedKeys(sh) { // fixed order: fixed draws
				params[name] = randn(r, sh[name])
			}
			m, err := NewModel(c, params)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []int{1, 4, 4, 0, 6}
			targets := []int{-100, 4, 0, -100, 2} // prompt positions ignored
			grads := map[string][]float64{}
			m.Loss(tokens, targets, grads)
			loss := func() float64 { l, _ := m.Loss(tokens, targets, nil); return l }
			checkGrads(t, loss, params, grads)
		})
	}
}

// TestConfigRefused checks that a family feature the backward pass lacks
// is named rather than silently trained wrong.
func TestConfigRefused(t *testing.T) {
	c := tinyConfig(t, false)
	c.QKNorm = "head"
	if _, err := NewModel(c, map[string][]float64{}); err == nil {
		t.Fatal("q/k norm accepted")
	}
}

// TestForwardMatchesEngine checks the training forward pass, an
// independent implementation, against the engine's logits on skills-base.
func TestForwardMatchesEngine(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-base")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	em, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	tokens := []int{256, 49, 50, 43, 51, 52, 61, 32, 55, 53, 10, 65, 66}
	want, err := em.NewSession(len(tokens)).ForwardAll(tokens)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Forward(tokens).Logits
	var worst float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-3 {
		t.Fatalf("max |logit difference| %g, want ≤ 1e-3", worst)
	}
	t.Logf("max |logit difference| vs engine: %g over %d logits", worst, len(want))
}
