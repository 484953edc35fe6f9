package engine

import (
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// benchModel is a small random Llama-shaped model: big enough that the
// matrix products dominate, small enough for a quick run.
func benchModel(b *testing.B, dtype safetensors.DType) *Model {
	c := synthConfig(b, map[string]any{"model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
		"num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 4, "vocab_size": 2048, "max_position_embeddings": 1024})
	m, _ := synthModel(b, c, dtype, 1)
	return m
}

// BenchmarkPrefill feeds a 128-token prompt as one batch.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b, safetensors.BF16)
	s := m.NewSession(256)
	tokens := synthTokens(128, m.Config.VocabSize, 3)
	b.ResetTimer()
	for b.Loop() {
		s.Reset()
		if _, err := s.Forward(tokens); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(tokens))/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode feeds one token at a time after a 128-token prompt.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b, safetensors.BF16)
	s := m.NewSession(1024)
	tokens := synthTokens(128, m.Config.VocabSize, 3)
	b.ResetTimer()
	for b.Loop() {
		if s.Pos() == s.MaxSeq() {
			s.Truncate(128)
		}
		if s.Pos() == 0 {
			s.Forward(tokens)
		}
		if _, err := s.Forward(tokens[:1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
