package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

const minimal = `"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100`

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"model_type": "gpt2", ` + minimal + `}`, `model_type "gpt2" is not supported`},
		{`{"model_type": "llama", "architectures": ["LlamaForSequenceClassification"], ` + minimal + `}`, `architectures "LlamaForSequenceClassification"`},
		{`{"model_type": "gemma3", "architectures": ["Gemma3ForCausalLM"], ` + minimal + `}`, `architectures "Gemma3ForCausalLM" is not supported for model_type "gemma3"`},
		{`{"model_type": "gemma3", "text_config": {"head_dim": 7}}`, `head_dim 7 must be positive and even (in text_config)`},
		{`{"model_type": "llama", "hidden_act": "gelu", ` + minimal + `}`, `hidden_act "gelu" is not supported`},
		{`{"model_type": "gemma2", "hidden_activation": "relu", ` + minimal + `}`, `hidden_activation "relu"`},
		{`{"model_type": "phi3", "rope_scaling": {"type": "ntk", "factor": 2}, ` + minimal + `}`, `rope_scaling type "ntk"`},
		{`{"model_type": "phi3", "rope_scaling": {"type": "longrope", "factor": 2}, ` + minimal + `}`, `short_factor and long_factor`},
		{`{"model_type": "phi3", "max_position_embeddings": 64, "rope_scaling": {"type": "su", "short_factor": [1, 1, 1, 1, 1, 1, 1], "long_factor": [1, 1, 1, 1, 1, 1, 1]}, ` + minimal + `}`, `has 7 short and long factors, want one per rotated pair (8)`},
		{`{"model_type": "phi3", "max_position_embeddings": 64, "rope_scaling": {"type": "longrope", "short_factor": [1, 1], "long_factor": [1]}, ` + minimal + `}`, `(got 2 and 1)`},
		{`{"model_type": "phi3", "max_position_embeddings": 64, "rope_scaling": {"type": "longrope", "short_factor": [1, 0], "long_factor": [1, 1]}, ` + minimal + `}`, `positive and finite, got 0`},
		{`{"model_type": "phi3", "rope_scaling": {"type": "longrope", "short_factor": [1], "long_factor": [1]}, ` + minimal + `}`, `longrope needs max_position_embeddings`},
		{`{"model_type": "phi3", "max_position_embeddings": 64, "original_max_position_embeddings": -2, "rope_scaling": {"type": "longrope", "short_factor": [1], "long_factor": [1]}, ` + minimal + `}`, `must be positive, got -2`},
		{`{"model_type": "phi3", "max_position_embeddings": 64, "original_max_position_embeddings": 1, "rope_scaling": {"type": "longrope", "short_factor": [1], "long_factor": [1]}, ` + minimal + `}`, `original_max_position_embeddings 1 is too small`},
		{`{"model_type": "llama", "rope_scaling": {"rope_type": "linear"}, ` + minimal + `}`, `needs a positive factor`},
		{`{"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8}, ` + minimal + `}`, `low_freq_factor`},
		{`{"model_type": "llama", "num_key_value_heads": 3, ` + minimal + `}`, `num_key_value_heads 3`},
		{`{"model_type": "llama", "head_dim": 7, ` + minimal + `}`, `head_dim 7`},
		{`{"model_type": "llama", "hidden_size": 0, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 1}`, `hidden_size must be positive`},
		{`{"model_type": "olmo3", "layer_types": ["full_attention"], ` + minimal + `}`, `layer_types has 1 entries for 2 layers`},
		{`{"model_type": "olmo3", "layer_types": ["full_attention", "chunked_attention"], ` + minimal + `}`, `layer_types[1] "chunked_attention"`},
		{`{"model_type": "llama", "eos_token_id": "x", ` + minimal + `}`, `eos_token_id must be an integer or a list`},
		{`{"model_type": "phi3", "partial_rotary_factor": 0.1, ` + minimal + `}`, `partial_rotary_factor`},
		{`{"model_type": "llama", ` + minimal, `config.json`},
		// Issue 17: values that size allocations or break the arithmetic.
		{`{"model_type": "llama", "max_position_embeddings": 0, ` + minimal + `}`, `max_position_embeddings must be positive, got 0`},
		{`{"model_type": "llama", "max_position_embeddings": -4, ` + minimal + `}`, `max_position_embeddings must be positive, got -4`},
		{`{"model_type": "llama", "rms_norm_eps": 0, ` + minimal + `}`, `rms_norm_eps 0 must be positive`},
		{`{"model_type": "llama", "rms_norm_eps": -1e-6, ` + minimal + `}`, `rms_norm_eps -1e-06 must be positive`},
		{`{"model_type": "llama", "eos_token_id": 100, ` + minimal + `}`, `eos_token_id 100 is outside the vocabulary (vocab_size 100)`},
		{`{"model_type": "llama", "eos_token_id": [1, 2000], ` + minimal + `}`, `eos_token_id 2000 is outside`},
		{`{"model_type": "llama", "bos_token_id": 100, ` + minimal + `}`, `bos_token_id 100 is outside`},
		{`{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1000000000, "num_attention_heads": 4, "vocab_size": 100}`, `num_hidden_layers 1000000000 exceeds the limit of 1024`},
		{`{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000000000}`, `vocab_size 1000000000 exceeds`},
		{`{"model_type": "llama", "head_dim": 1048576, ` + minimal + `}`, `head_dim 1048576 exceeds`},
		{`{"model_type": "llama", "hidden_size": 64, "intermediate_size": 100000000, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100}`, `intermediate_size 100000000 exceeds`},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", tc.json, err, tc.want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type": "llama", "bos_token_id": null, "eos_token_id": [128001, 128008, 128009], ` + strings.Replace(minimal, `"vocab_size": 100`, `"vocab_size": 128256`, 1) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BOS != -1 || !slices.Equal(c.EOS, []int{128001, 128008, 128009}) {
		t.Errorf("BOS %d EOS %v", c.BOS, c.EOS)
	}
	if c.NumKVHeads != 4 || c.HeadDim != 16 || c.RotaryDim != 16 || c.TieEmbeddings || c.Activation != "silu" || c.Norms != "pre" {
		t.Errorf("defaults: %+v", c)
	}
}

// TestFixtureConfigs checks the family switches read from the real
// configs of the architecture fixtures.
func TestFixtureConfigs(t *testing.T) {
	root := testutil.Shared(t, "fixtures/arch")
	load := func(name string) *Config {
		c, err := LoadConfig(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	g2 := load("gemma2")
	if !g2.TieEmbeddings || g2.NormOffset != 1 || g2.Norms != "sandwich" || g2.AttnSoftcap != 0.5 || g2.FinalSoftcap != 1 ||
		g2.QueryScale != 0.5 || g2.SlidingWindow != 16 || !slices.Equal(g2.Sliding, []bool{true, false, true, false}) ||
		g2.Activation != "gelu_pytorch_tanh" || g2.EmbedScale != 8 {
		t.Errorf("gemma2: %+v", g2)
	}
	g3 := load("gemma3")
	if g3.QKNorm != "head" || g3.RopeLocalTheta != 10000 || g3.RopeTheta != 1e6 || g3.RopeScaling == nil || g3.RopeScaling.Factor != 8 ||
		!slices.Equal(g3.Sliding, []bool{true, true, true, true, true, false}) || g3.AttnSoftcap != 0 {
		t.Errorf("gemma3: %+v", g3)
	}
	if c := load("phi3"); !c.FusedQKV || !c.FusedGateUp || c.RotaryDim != 12 || c.SlidingWindow != 0 || slices.Contains(c.Sliding, true) {
		t.Errorf("phi3: %+v", c)
	}
	if c := load("qwen2"); !c.QKVBias || c.OBias || !c.TieEmbeddings || c.VocabSize != 800 {
		t.Errorf("qwen2: %+v", c)
	}
	if c := load("olmo2"); c.QKNorm != "full" || c.Norms != "post" {
		t.Errorf("olmo2: %+v", c)
	}
	if c := load("llama-rope-llama3"); c.RopeScaling == nil || c.RopeScaling.Type != "llama3" || c.RopeScaling.OriginalMaxPositions != 8192 {
		t.Errorf("llama3 rope: %+v", c.RopeScaling)
	}
}

func TestGenerationConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "qwen2", "eos_token_id": 5, `+minimal+`}`), 0o644)
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"bos_token_id": 3, "eos_token_id": [5, 7],
		"do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05}`), 0o644)
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Generation{DoSample: true, Temperature: 0.7, TopK: 20, TopP: 0.8, RepetitionPenalty: 1.05}
	if !slices.Equal(c.EOS, []int{5, 7}) || c.BOS != 3 || c.Generation != want {
		t.Errorf("EOS %v BOS %d Generation %+v", c.EOS, c.BOS, c.Generation)
	}
	// Counts written as floats (transformers writes what it was given)
	// load; moco only reports them.
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"top_k": 20.0, "max_new_tokens": 256.0}`), 0o644)
	if c, err := LoadConfig(dir); err != nil || c.Generation.TopK != 20 || c.Generation.MaxNewTokens != 256 {
		t.Errorf("float counts: %v %+v", err, c)
	}
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [5, -1]}`), 0o644)
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "generation_config.json: eos_token_id -1 is negative") ||
		strings.Contains(err.Error(), "json: config.json") {
		t.Errorf("bad generation_config.json: %v (want it blamed, not config.json)", err)
	}
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [5, 100]}`), 0o644)
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "generation_config.json: eos_token_id 100 is outside the vocabulary") {
		t.Errorf("generation_config.json eos outside the vocabulary: %v", err)
	}
}
