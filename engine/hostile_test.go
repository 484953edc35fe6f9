package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

// zeroCheckpoint is an all-zero F32 checkpoint with the tensors c needs,
// edited by edit.
func zeroCheckpoint(c *Config, edit func(map[string]*safetensors.Tensor)) safetensors.Source {
	ts := map[string]*safetensors.Tensor{}
	for name, shape := range synthShapes(c) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		ts[name] = &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: make([]byte, 4*n)}
	}
	if edit != nil {
		edit(ts)
	}
	var list []*safetensors.Tensor
	for name, tn := range ts {
		tn.Name = name
		list = append(list, tn)
	}
	return safetensors.NewMemSource(list)
}

// TestCheckpointTensorsAllConsumed: tensors the architecture does not use
// are an error (layers beyond num_hidden_layers were silently ignored),
// except known optional ones, which come back as a warning.
func TestCheckpointTensorsAllConsumed(t *testing.T) {
	c := synthConfig(t, map[string]any{"model_type": "llama"})
	vec := func(n int) *safetensors.Tensor {
		return &safetensors.Tensor{DType: safetensors.F32, Shape: []int{n}, Data: make([]byte, 4*n)}
	}
	for _, tc := range []struct {
		name, add, want string
	}{
		{"extra layer", "model.layers.7.input_layernorm.weight", "the checkpoint has layers up to model.layers.7, but config.json's num_hidden_layers is 2"},
		{"unknown", "model.vision_tower.proj.weight", "1 tensors that model_type llama does not use: model.vision_tower.proj.weight"},
	} {
		src := zeroCheckpoint(c, func(ts map[string]*safetensors.Tensor) { ts[tc.add] = vec(4) })
		if _, err := New(c, src, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	src := zeroCheckpoint(c, func(ts map[string]*safetensors.Tensor) {
		ts["model.layers.0.self_attn.rotary_emb.inv_freq"] = vec(4)
		ts["model.layers.1.self_attn.rotary_emb.inv_freq"] = vec(4)
	})
	m, err := New(c, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "ignoring 2 checkpoint tensors") || !strings.Contains(m.Warnings[0], "model.layers.1.self_attn.rotary_emb.inv_freq") {
		t.Errorf("warnings %q", m.Warnings)
	}
	if m, err := New(c, zeroCheckpoint(c, nil), Options{}); err != nil || len(m.Warnings) != 0 {
		t.Errorf("clean checkpoint: %v, warnings %q", err, m.Warnings)
	}
}

// TestHugeConfigBounded: a config claiming far more layers than the
// checkpoint holds fails on the first missing tensor, within bounded memory
// (num_hidden_layers 1e7 allocated 7.3 GB before an error; 1e9 died of OOM).
func TestHugeConfigBounded(t *testing.T) {
	small := synthConfig(t, map[string]any{"model_type": "llama"})
	src := zeroCheckpoint(small, nil)
	for _, layers := range []int{1000, 10000000, 1000000000} {
		big := synthConfig(t, map[string]any{"model_type": "llama"})
		big.NumLayers = layers
		big.Sliding = make([]bool, min(layers, 1000))
		err := testutil.Bounded(t, 64<<20, 5*time.Second, func() error {
			_, err := New(big, src, Options{})
			return err
		})
		if err == nil {
			t.Fatalf("%d layers: loaded", layers)
		}
		t.Logf("%d layers: %v", layers, err)
	}
	data := []byte(`{"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1000000000, "num_attention_heads": 4, "vocab_size": 64}`)
	err := testutil.Bounded(t, 64<<20, 5*time.Second, func() error { _, err := ParseConfig(data); return err })
	if err == nil || !strings.Contains(err.Error(), "num_hidden_layers 1000000000 exceeds") {
		t.Fatalf("ParseConfig: %v", err)
	}
}
