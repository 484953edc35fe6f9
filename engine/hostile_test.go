package engine

import (
	"encoding/binary"
	"errors"
	"math"
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

// TestNonFiniteLogits: a NaN or Inf in a weight fails Forward and
// ForwardAll with the layer where the activations first went non-finite
// (before: garbage logits, exit 0), and leaves the session as before.
func TestNonFiniteLogits(t *testing.T) {
	c := synthConfig(t, map[string]any{"model_type": "llama"})
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name   string
		tensor string
		at     int
		v      float32
		layer  int
	}{
		{"nan in layer 1 mlp", "model.layers.1.mlp.down_proj.weight", 5, nan, 1},
		{"inf in layer 0 attention", "model.layers.0.self_attn.v_proj.weight", 0, inf, 0},
		{"inf in lm_head", "lm_head.weight", 3*32 + 1, inf, 2},
		{"nan in every embedding", "model.embed_tokens.weight", -1, nan, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := synthModel(t, c, safetensors.F32, 1)
			ref, _ := synthModel(t, c, safetensors.F32, 1)
			w, ok := m.src.Tensor(tc.tensor)
			if !ok {
				t.Fatal("no tensor", tc.tensor)
			}
			poison := func(i int) { binary.LittleEndian.PutUint32(w.Data[4*i:], math.Float32bits(tc.v)) }
			if tc.at >= 0 {
				poison(tc.at)
			} else {
				for i := 0; i < len(w.Data)/4; i++ {
					poison(i)
				}
			}
			tokens := []int{3, 1, 4, 1, 5}
			s := m.NewSession(0)
			_, err := s.Forward(tokens)
			var nf *NonFiniteError
			if !errors.As(err, &nf) || nf.Layer != tc.layer || nf.Pos != 0 {
				t.Fatalf("Forward: err = %v, want a NonFiniteError at layer %d", err, tc.layer)
			}
			if s.Pos() != 0 {
				t.Errorf("after the error the session holds %d positions, want 0", s.Pos())
			}
			if _, err := m.NewSession(0).ForwardAll(tokens); !errors.As(err, &nf) || nf.Layer != tc.layer {
				t.Errorf("ForwardAll: err = %v, want layer %d", err, tc.layer)
			}
			// The batch names the same layer for each of its sequences,
			// one prefilled over two steps.
			b := m.NewBatch(BatchOptions{StepTokens: 4})
			s1, err := b.Add(tokens, 10)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := b.Add([]int{2, 7}, 10)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				b.Step()
			}
			for i, s := range []*Seq{s1, s2} {
				if !errors.As(s.Err(), &nf) || nf.Layer != tc.layer || nf.Pos != 0 {
					t.Errorf("batch sequence %d: Err() = %v, want a NonFiniteError at layer %d, position 0", i, s.Err(), tc.layer)
				}
			}
			// The clean model is unaffected by the check.
			if _, err := ref.NewSession(0).Forward(tokens); err != nil {
				t.Fatal(err)
			}
			rb := ref.NewBatch(BatchOptions{})
			rs, err := rb.Add(tokens, 10)
			if err != nil {
				t.Fatal(err)
			}
			if rb.Step(); rs.Err() != nil || rs.Logits() == nil {
				t.Errorf("clean batch: %v", rs.Err())
			}
		})
	}
}
