package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

// TestGemma3MultimodalConfig reads a config.json laid out as Gemma 3 4B's
// (the text_config holds only what differs from Gemma3TextConfig's
// defaults, the top level the end-of-turn id): the omitted values must be
// transformers' defaults.
func TestGemma3MultimodalConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{
  "architectures": ["Gemma3ForConditionalGeneration"],
  "boi_token_index": 255999, "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
  "mm_tokens_per_image": 256, "model_type": "gemma3",
  "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
  "torch_dtype": "bfloat16",
  "vision_config": {"hidden_size": 1152, "image_size": 896, "model_type": "siglip_vision_model", "num_hidden_layers": 27}
}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Multimodal || c.ModelType != "gemma3_text" || c.HiddenSize != 2560 || c.NumLayers != 34 || c.NumHeads != 8 || c.NumKVHeads != 4 ||
		c.HeadDim != 256 || c.VocabSize != 262208 || c.RopeTheta != 1e6 || c.RMSNormEps != 1e-6 || c.RopeLocalTheta != 10000 ||
		c.SlidingWindow != 1024 || !c.TieEmbeddings || c.BOS != 2 || !slices.Equal(c.EOS, []int{1, 106}) || c.Activation != "gelu_pytorch_tanh" ||
		math.Abs(c.QueryScale-1.0/16) > 1e-15 || c.RopeScaling == nil || c.RopeScaling.Factor != 8 || c.AttnSoftcap != 0 || c.FinalSoftcap != 0 {
		t.Errorf("config %+v", c)
	}
	for l, s := range c.Sliding {
		if s != ((l+1)%6 != 0) {
			t.Errorf("layer %d sliding %v, want every sixth layer global", l, s)
		}
	}
	for _, bad := range []string{
		`{"model_type": "gemma3", "architectures": ["Gemma3ForCausalLM"]}`,
		`{"model_type": "gemma3", "text_config": {"num_key_value_heads": 3}}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestGemma3MultimodalMatchesLlamaCpp stores the shared gemma3 fixture as
// a multimodal checkpoint would (the config as transformers writes a
// Gemma3Config, the language model's tensors under both prefixes
// transformers has used, a vision tensor beside them): the logits must be
// llama.cpp's for the text model.
func TestGemma3MultimodalMatchesLlamaCpp(t *testing.T) {
	fixture := filepath.Join(testutil.Shared(t, "fixtures/arch"), "gemma3")
	var text map[string]any
	readJSON(t, filepath.Join(fixture, "config.json"), &text)
	// Only what differs from the defaults, as transformers writes it.
	for k, v := range text {
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(gemma3TextDefaults[k])
		if _, isDefault := gemma3TextDefaults[k]; isDefault && bytes.Equal(a, b) || k == "architectures" {
			delete(text, k)
		}
	}
	if _, ok := text["rope_theta"]; ok {
		t.Fatal("the fixture's rope_theta is not the default: the test would not read the defaults")
	}
	cfg, err := json.Marshal(map[string]any{"architectures": []string{"Gemma3ForConditionalGeneration"}, "model_type": "gemma3",
		"text_config": text, "vision_config": map[string]any{"model_type": "siglip_vision_model"}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.Open(filepath.Join(fixture, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var tokens []int
	readJSON(t, filepath.Join(fixture, "tokens.json"), &tokens)
	want := readF32(t, filepath.Join(fixture, "logits.f32"))
	for _, layout := range []struct{ name, prefix, vision string }{
		{"transformers 4.50", "language_model.", "vision_tower.vision_model.post_layernorm.weight"},
		{"transformers 4.52", "model.language_model.", "model.vision_tower.vision_model.post_layernorm.weight"},
	} {
		t.Run(layout.name, func(t *testing.T) {
			var ts []*safetensors.Tensor
			for _, name := range src.Names() {
				x, _ := src.Tensor(name)
				renamed := layout.prefix + name
				if layout.prefix == "model.language_model." {
					renamed = layout.prefix + strings.TrimPrefix(name, "model.")
				}
				ts = append(ts, &safetensors.Tensor{Name: renamed, DType: x.DType, Shape: x.Shape, Data: x.Data})
			}
			ts = append(ts, &safetensors.Tensor{Name: layout.vision, DType: safetensors.F32, Shape: []int{2}, Data: make([]byte, 8)})
			dir := t.TempDir()
			if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			m := loadModel(t, dir, Options{})
			got, err := m.NewSession(0).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, got, want, m.Config.VocabSize, 1e-3, true)
		})
	}
}
