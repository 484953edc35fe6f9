package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/engine"
)

// TestSynthFamiliesLoad writes a tiny checkpoint of each family and runs it
// through the engine: the tensor list must be exactly what the engine reads.
func TestSynthFamiliesLoad(t *testing.T) {
	base := `"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
 "max_position_embeddings": 128`
	for _, tc := range []struct{ name, extra string }{
		{"llama", `"model_type": "llama", "tie_word_embeddings": true`},
		{"qwen2", `"model_type": "qwen2", "tie_word_embeddings": false`},
		{"qwen3", `"model_type": "qwen3", "head_dim": 16, "tie_word_embeddings": true`},
		{"gemma2", `"model_type": "gemma2", "head_dim": 16, "query_pre_attn_scalar": 16, "hidden_activation": "gelu_pytorch_tanh", "sliding_window": 64, "attn_logit_softcapping": 50, "final_logit_softcapping": 30`},
		{"phi3", `"model_type": "phi3", "tie_word_embeddings": false`},
		{"olmo2", `"model_type": "olmo2", "tie_word_embeddings": false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "in.json")
			os.WriteFile(cfg, []byte(fmt.Sprintf("{%s, %s}", base, tc.extra)), 0o644)
			out := filepath.Join(dir, "model")
			if msg, err := runSynthCLI(t, "--config", cfg, "--out", out); err != nil {
				t.Fatalf("synth failed: %s", msg)
			}
			m, err := engine.Load(out, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			logits, err := m.NewSession(16).Forward([]int{256, 'a', 'b'})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range logits {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("logit %d is %g", i, v)
				}
			}
		})
	}
}
