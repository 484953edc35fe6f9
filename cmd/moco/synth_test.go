package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

const tinyQwen = `{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "vocab_size": 300, "tie_word_embeddings": false, "rms_norm_eps": 1e-6}`

func runSynthCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(append([]string{"synth"}, args...), nil, &out, &errb)
	if code != 0 {
		return errb.String(), os.ErrInvalid
	}
	return out.String(), nil
}

// synthTiny writes a tinyQwen model with `moco synth` (args added) into a
// temporary folder and returns the model folder.
func synthTiny(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "in.json")
	if err := os.WriteFile(cfg, []byte(tinyQwen), 0o644); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	if msg, err := runSynthCLI(t, append([]string{"--config", cfg, "--out", model}, args...)...); err != nil {
		t.Fatalf("synth failed: %s", msg)
	}
	return model
}

func TestSynthTinyQwen(t *testing.T) {
	out := synthTiny(t, "--dtype", "f32", "--seed", "7")
	src, err := safetensors.OpenDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Shapes by hand: head_dim 16, q 64, kv 32.
	want := map[string][]int{
		"model.embed_tokens.weight":                      {300, 64},
		"model.layers.1.self_attn.q_proj.weight":         {64, 64},
		"model.layers.1.self_attn.k_proj.weight":         {32, 64},
		"model.layers.1.self_attn.v_proj.bias":           {32},
		"model.layers.0.self_attn.o_proj.weight":         {64, 64},
		"model.layers.0.mlp.gate_proj.weight":            {96, 64},
		"model.layers.0.mlp.down_proj.weight":            {64, 96},
		"model.layers.0.post_attention_layernorm.weight": {64},
		"model.norm.weight":                              {64},
		"lm_head.weight":                                 {300, 64},
	}
	for name, shape := range want {
		tn, ok := src.Tensor(name)
		if !ok {
			t.Fatalf("missing %s", name)
		}
		if tn.DType != safetensors.F32 || len(tn.Shape) != len(shape) || tn.NumElements() != prod(shape) {
			t.Errorf("%s: %s %v, want F32 %v", name, tn.DType, tn.Shape, shape)
		}
	}
	// 2 layers x (2 norms + 4 projections + 3 biases + 3 MLP) + embed + norm + head
	if n := len(src.Names()); n != 2*12+3 {
		t.Errorf("%d tensors, want 27", n)
	}
	norm, _ := src.Tensor("model.norm.weight")
	for _, v := range mustF32(t, norm) {
		if v != 1 {
			t.Fatalf("norm weight %g, want 1", v)
		}
	}
	emb, _ := src.Tensor("model.embed_tokens.weight")
	var sum, sq float64
	vals := mustF32(t, emb)
	for _, v := range vals {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean, std := sum/float64(len(vals)), math.Sqrt(sq/float64(len(vals)))
	if math.Abs(mean) > 0.002 || math.Abs(std-0.02) > 0.001 {
		t.Errorf("embedding mean %g std %g, want about 0 and 0.02", mean, std)
	}

	var cfgOut map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if err := json.Unmarshal(b, &cfgOut); err != nil {
		t.Fatal(err)
	}
	if cfgOut["bos_token_id"] != 256.0 || cfgOut["eos_token_id"] != 257.0 || cfgOut["hidden_size"] != 64.0 {
		t.Errorf("config.json: bos %v eos %v hidden %v", cfgOut["bos_token_id"], cfgOut["eos_token_id"], cfgOut["hidden_size"])
	}
	var tok struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	b, _ = os.ReadFile(filepath.Join(out, "tokenizer.json"))
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	if len(tok.Model.Vocab) != 256 || tok.Model.Vocab["A"] != 'A' || tok.Model.Vocab["Ġ"] != ' ' || tok.Model.Vocab["Ċ"] != '\n' {
		t.Errorf("byte vocab: %d entries, A=%d Ġ=%d Ċ=%d", len(tok.Model.Vocab), tok.Model.Vocab["A"], tok.Model.Vocab["Ġ"], tok.Model.Vocab["Ċ"])
	}
	if len(tok.AddedTokens) != 2 || tok.AddedTokens[1].ID != 257 {
		t.Errorf("added tokens %+v", tok.AddedTokens)
	}
}

func TestSynthDeterministic(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "in.json")
	os.WriteFile(cfg, []byte(tinyQwen), 0o644)
	read := func(name, seed string) []byte {
		out := filepath.Join(dir, name)
		if msg, err := runSynthCLI(t, "--config", cfg, "--out", out, "--seed", seed); err != nil {
			t.Fatalf("synth failed: %s", msg)
		}
		b, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read("a", "3"), read("b", "3"), read("c", "4")
	if !bytes.Equal(a, b) {
		t.Error("the same seed wrote different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds wrote the same bytes")
	}
}

func TestSynthErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"model_type": "gpt2", "hidden_size": 8}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--shape", "smollm2-135m"}, "--out is required"},
		{[]string{"--out", dir}, "exactly one of"},
		{[]string{"--shape", "nope", "--out", dir}, "unknown shape"},
		{[]string{"--shape", "smollm2-135m", "--out", dir, "--dtype", "q4"}, "--dtype"},
		{[]string{"--config", bad, "--out", dir}, "gpt2"},
	} {
		msg, err := runSynthCLI(t, tc.args...)
		if err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("synth %v: error %q, want one mentioning %q", tc.args, msg, tc.want)
		}
	}
}

func TestSynthShapeParams(t *testing.T) {
	// Published parameter counts of the two target models.
	for shape, want := range map[string]int64{"smollm2-135m": 134515008, "qwen2.5-0.5b": 494032768} {
		cfg, err := shapeConfigForTest(shape)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := synthTensors(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, tn := range ts {
			n += int64(prod(tn.Shape))
		}
		if n != want {
			t.Errorf("%s: %d parameters, want %d", shape, n, want)
		}
	}
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func mustF32(t *testing.T, tn *safetensors.Tensor) []float32 {
	t.Helper()
	v, err := tn.F32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func shapeConfigForTest(name string) ([]byte, error) { return bench.ShapeConfig(name) }

// TestSynthTokenizerLoads checks the written tokenizer with the tokenizer
// package: every byte is one token, and decoding gives the text back.
func TestSynthTokenizerLoads(t *testing.T) {
	out := synthTiny(t)
	tk, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	text := "Hi, wörld\n\x00"
	ids, err := tk.Encode(text, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(text) || ids[0] != 'H' || ids[len(ids)-1] != 0 {
		t.Errorf("Encode(%q) = %v, want the bytes", text, ids)
	}
	if got := tk.Decode(ids, false); got != text {
		t.Errorf("Decode = %q, want %q", got, text)
	}
	if tk.VocabSize() != 258 || tk.BOS() != 256 || len(tk.EOS()) != 1 || tk.EOS()[0] != 257 {
		t.Errorf("vocab %d, bos %d, eos %v; want 258, 256, [257]", tk.VocabSize(), tk.BOS(), tk.EOS())
	}
}
