package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mocolab/moco/safetensors"
)

// gemma3TextDefaults are transformers' Gemma3TextConfig defaults. A
// multimodal Gemma 3 config.json (model_type "gemma3") writes only the
// text_config values that differ from them: Gemma 3 4B's omits the head
// counts, rope_theta and rms_norm_eps, among others.
var gemma3TextDefaults = map[string]any{
	"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
	"num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
	"head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
	"max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
	"eos_token_id": 1, "bos_token_id": 2, "tie_word_embeddings": true,
	"rope_theta": 1e6, "attention_bias": false, "query_pre_attn_scalar": 256,
	"sliding_window": 4096, "final_logit_softcapping": nil,
	"attn_logit_softcapping": nil, "rope_scaling": nil,
	"rope_local_base_freq": 10000.0, "sliding_window_pattern": 6,
}

// gemma3Text returns the config.json of the text model inside a multimodal
// Gemma 3 config (Gemma3ForConditionalGeneration): its text_config over
// Gemma3TextConfig's defaults, with the top level's token ids where given.
func gemma3Text(configJSON []byte) ([]byte, error) {
	var top struct {
		Architectures []string                   `json:"architectures"`
		Text          map[string]json.RawMessage `json:"text_config"`
		BOS           json.RawMessage            `json:"bos_token_id"`
		EOS           json.RawMessage            `json:"eos_token_id"`
	}
	if err := json.Unmarshal(configJSON, &top); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	for _, a := range top.Architectures {
		if a != "Gemma3ForConditionalGeneration" {
			return nil, fmt.Errorf(`config.json: architectures %q is not supported for model_type "gemma3" (want [Gemma3ForConditionalGeneration])`, a)
		}
	}
	text := map[string]any{}
	for k, v := range gemma3TextDefaults {
		text[k] = v
	}
	for k, v := range top.Text {
		text[k] = v
	}
	for k, v := range map[string]json.RawMessage{"bos_token_id": top.BOS, "eos_token_id": top.EOS} {
		if len(v) > 0 && string(v) != "null" {
			text[k] = v
		}
	}
	text["model_type"], text["architectures"] = "gemma3_text", []string{"Gemma3ForCausalLM"}
	return json.Marshal(text)
}

// visionPrefixes name the tensors of a multimodal checkpoint that the text
// model does not read, as transformers stores them before and since 4.52.
var visionPrefixes = []string{"vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector."}

// textModel is a multimodal checkpoint seen as its text model: each tensor
// of the language model under its text-only name ("model.layers.0..."
// for "language_model.model.layers.0..." or "model.language_model.layers.0..."),
// the vision tower's hidden. Other tensors keep their names, so that Load
// still reports what it does not use.
type textModel struct {
	safetensors.Source
	stored map[string]string // text-only name -> name in the checkpoint
	names  []string
}

func newTextModel(src safetensors.Source) (*textModel, error) {
	t := &textModel{Source: src, stored: map[string]string{}}
	for _, name := range src.Names() {
		if slices.ContainsFunc(visionPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		text := name
		if rest, ok := strings.CutPrefix(name, "language_model."); ok {
			text = rest
		} else if rest, ok := strings.CutPrefix(name, "model.language_model."); ok {
			text = "model." + rest
		}
		if prev, dup := t.stored[text]; dup {
			return nil, fmt.Errorf("the checkpoint has both %s and %s", prev, name)
		}
		t.stored[text] = name
		t.names = append(t.names, text)
	}
	slices.Sort(t.names)
	return t, nil
}

func (t *textModel) Tensor(name string) (*safetensors.Tensor, bool) {
	if s, ok := t.stored[name]; ok {
		return t.Source.Tensor(s)
	}
	return nil, false
}

func (t *textModel) Names() []string { return t.names }

// Release passes on to the checkpoint (see safetensors.Release).
func (t *textModel) Release(b []byte) { safetensors.Release(t.Source, b) }
