package engine

import (
	"math"
	"testing"
)

// FuzzParseConfig feeds arbitrary config.json and generation_config.json
// to the parser: no panic, and whatever it accepts is within the bounds
// that size allocations, with ids inside the vocabulary.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "eos_token_id": [1, 2], "max_position_embeddings": 256}`), []byte(`{"eos_token_id": 3, "temperature": 0.7}`))
	f.Add([]byte(`{"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 100, "sliding_window": 16, "rope_scaling": {"rope_type": "linear", "factor": 8}}`), []byte(nil))
	f.Add([]byte(`{"model_type": "phi3", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 1000000000, "num_attention_heads": 4, "vocab_size": 100, "partial_rotary_factor": 0.5}`), []byte(`{}`))
	f.Add([]byte(`{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "rms_norm_eps": 0, "layer_types": ["sliding_attention", "full_attention"], "use_sliding_window": true}`), []byte(`{"bos_token_id": 99}`))
	f.Add([]byte(`{"model_type": "phi3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "partial_rotary_factor": 0.75, "max_position_embeddings": 512, "original_max_position_embeddings": 16, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1, 1, 1, 1], "long_factor": [2, 3, 4, 5, 6, 7]}}`), []byte(nil))
	f.Add([]byte(`{"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "eos_token_id": [1, 106], "text_config": {"hidden_size": 64, "num_hidden_layers": 2, "sliding_window": 16}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, cfg, gen []byte) {
		c, err := ParseConfig(cfg)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(gen) > 0 {
			if err := c.mergeGeneration(gen); err != nil {
				return
			}
		}
		if c.NumLayers <= 0 || c.NumLayers > maxLayers || c.HiddenSize > maxHidden || c.IntermediateSize > maxIntermediate ||
			c.NumHeads > maxHeads || c.HeadDim > maxHeadDim || c.VocabSize > maxVocab || c.NumKVHeads <= 0 || c.HeadDim <= 0 {
			t.Fatalf("accepted dimensions out of bounds: %+v", c)
		}
		if !(c.RMSNormEps > 0) || c.MaxPositions < 0 || len(c.Sliding) != c.NumLayers || c.RotaryDim <= 0 || c.RotaryDim > c.HeadDim {
			t.Fatalf("accepted an unusable config: %+v", c)
		}
		if s := c.RopeScaling; s != nil && s.Type == "longrope" && (len(s.ShortFactor) != c.RotaryDim/2 || len(s.LongFactor) != c.RotaryDim/2 ||
			!(s.AttentionFactor > 0) || math.IsInf(s.AttentionFactor, 0) || s.OriginalMaxPositions <= 0) {
			t.Fatalf("accepted an unusable longrope: %+v", s)
		}
		if c.BOS >= c.VocabSize {
			t.Fatalf("BOS %d outside vocab %d", c.BOS, c.VocabSize)
		}
		for _, id := range c.EOS {
			if id < 0 || id >= c.VocabSize {
				t.Fatalf("EOS %d outside vocab %d", id, c.VocabSize)
			}
		}
	})
}
