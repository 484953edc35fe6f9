package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

func runInspectCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(append([]string{"inspect"}, args...), nil, &out, &errb)
	return out.String(), errb.String(), code
}

// hasLine reports whether text has a line whose fields are exactly fields.
func hasLine(text string, fields ...string) bool {
	want := strings.Join(fields, " ")
	for _, line := range strings.Split(text, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

func TestInspectStories260K(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	out, errs, code := runInspectCLI(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Counts from the shapes in the header (see the safetensors tests):
	// 260032 f32 parameters, 4 bytes each.
	for _, line := range [][]string{
		{dir + ":", "47", "tensors,", "260,032", "parameters,", "1,040,128", "bytes"},
		{"metadata:", "format=pt"},
		{"F32", "47", "260,032", "1,040,128"},
		{"model_type:", `"llama"`},
		{"tie_word_embeddings:", "true"},
		{"rms_norm_eps:", "1e-05"},
		{"model.embed_tokens.weight", "F32", "[512,", "64]"},
		{"model.layers.4.mlp.down_proj.weight", "F32", "[64,", "172]"},
		{"model.norm.weight", "F32", "[64]"},
		// The engine's reading of config.json.
		{"model:", "LlamaForCausalLM", "(llama)"},
		{"hidden", "64,", "intermediate", "172,", "5", "layers,", "8", "heads,", "4", "kv", "heads,", "head", "dim", "8"},
		{"vocab", "512,", "max", "positions", "512,", "rms_norm_eps", "1e-05,", "rope_theta", "10000,", "activation", "silu"},
		{"bos", "1,", "eos", "[2]"},
		{"tied", "embeddings"},
	} {
		if !hasLine(out, line...) {
			t.Errorf("output lacks the line %q:\n%s", strings.Join(line, " "), out)
		}
	}

	out, errs, code = runInspectCLI(t, "--json", filepath.Join(dir, "model.safetensors"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if r.Parameters != 260032 || r.Bytes != 1040128 || len(r.Tensors) != 47 || r.Config != nil {
		t.Errorf("parameters %d, bytes %d, %d tensors, config %v", r.Parameters, r.Bytes, len(r.Tensors), r.Config)
	}
	if len(r.DTypes) != 1 || r.DTypes[0] != (dtypeTotal{"F32", 47, 260032, 1040128}) {
		t.Errorf("dtypes %+v", r.DTypes)
	}
	if r.Tensors[0].Name != "model.embed_tokens.weight" || r.Tensors[0].Bytes != 131072 {
		t.Errorf("first tensor %+v", r.Tensors[0])
	}
}

// TestInspectFamilies checks the settings inspect calls out for a Gemma 2
// checkpoint, read by hand from its config.json: layer_types marks layers
// 0 and 2 sliding with sliding_window 16, soft-capping 0.5 and 1.0,
// query_pre_attn_scalar 4, and Gemma's norms and embedding scale sqrt(64).
func TestInspectFamilies(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/arch/gemma2")
	out, errs, code := runInspectCLI(t, "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Model == nil {
		t.Fatalf("no model summary (model_error %q)", r.ModelError)
	}
	want := []string{
		"sliding window 16 on 2 of 4 layers (0,2)",
		"attention soft-capping 0.5",
		"final logit soft-capping 1",
		"query scale 0.5 (1/sqrt(4))",
		"sandwich norms (before and after each sublayer)",
		"norm weights offset by 1",
		"embeddings scaled by 8",
		"tied embeddings",
	}
	if got := strings.Join(r.Model.Features, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("features:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if r.Model.ModelType != "gemma2" || r.Model.HeadDim != 16 || r.Model.NumKVHeads != 2 || r.Model.Activation != "gelu_pytorch_tanh" {
		t.Errorf("model %+v", r.Model)
	}
}

// TestInspectAdapter inspects a PEFT LoRA folder: adapter weights and
// adapter_config.json, no engine config. Parameters by hand: per layer
// q (8x128 + 128x8), v (8x128 + 64x8), down (8x384 + 128x8) = 7680, 4 layers.
func TestInspectAdapter(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-lora-add")
	out, errs, code := runInspectCLI(t, "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.ConfigFile != "adapter_config.json" || r.Config["peft_type"] != "LORA" || r.Model != nil || r.ModelError != "" {
		t.Errorf("config %s %v, model %v %q", r.ConfigFile, r.Config, r.Model, r.ModelError)
	}
	if len(r.Tensors) != 24 || r.Parameters != 30720 {
		t.Errorf("%d tensors, %d parameters; want 24, 30720", len(r.Tensors), r.Parameters)
	}
}

// TestInspectUnsupportedModel lists a folder the engine cannot run and
// says why instead of failing.
func TestInspectUnsupportedModel(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "bert", "hidden_size": 4}`), 0o644)
	x := &safetensors.Tensor{Name: "w", DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}
	if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleName), []*safetensors.Tensor{x}, nil); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runInspectCLI(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, `moco cannot run this model: `) || !strings.Contains(out, `model_type "bert" is not supported`) || !hasLine(out, "model_type:", `"bert"`) {
		t.Errorf("output:\n%s", out)
	}
}

func TestInspectSharded(t *testing.T) {
	dir := t.TempDir()
	headers := []safetensors.Header{
		{Name: "model.layers.10.w", DType: safetensors.BF16, Shape: []int{4, 2}},
		{Name: "model.layers.2.w", DType: safetensors.BF16, Shape: []int{4, 2}},
		{Name: "model.norm.weight", DType: safetensors.F32, Shape: []int{3}},
	}
	w, err := safetensors.CreateSharded(dir, headers, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write("model.layers.10.w", make([]byte, 16))
	w.Write("model.layers.2.w", make([]byte, 16))
	w.Write("model.norm.weight", make([]byte, 12))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, filepath.Join(dir, safetensors.IndexName)} {
		out, errs, code := runInspectCLI(t, "--json", path)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", path, code, errs)
		}
		var r inspectReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range r.Tensors {
			names = append(names, x.Name)
		}
		if got := strings.Join(names, " "); got != "model.layers.2.w model.layers.10.w model.norm.weight" {
			t.Errorf("tensor order %s, want layers.2 before layers.10", got)
		}
		if len(r.Files) != 3 || r.Parameters != 19 || r.Bytes != 44 || r.IndexSize == nil || *r.IndexSize != 44 {
			t.Errorf("%d files, %d parameters, %d bytes, index size %v", len(r.Files), r.Parameters, r.Bytes, r.IndexSize)
		}
		if len(r.DTypes) != 2 || r.DTypes[0] != (dtypeTotal{"BF16", 2, 16, 32}) || r.DTypes[1] != (dtypeTotal{"F32", 1, 3, 12}) {
			t.Errorf("dtypes %+v", r.DTypes)
		}
	}
	out, _, _ := runInspectCLI(t, dir)
	if !hasLine(out, dir+":", "3", "tensors,", "19", "parameters,", "44", "bytes", "in", "3", "shards") {
		t.Errorf("summary line missing:\n%s", out)
	}
}

// TestInspectQuantized: a checkpoint moco quantize wrote has the
// parameters of its source: a Q4_0 byte holds two weights, the scales
// none, and a tied model's quantized head is its embeddings again.
func TestInspectQuantized(t *testing.T) {
	params := func(path string) int64 {
		t.Helper()
		out, errs, code := runInspectCLI(t, "--json", path)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", path, code, errs)
		}
		var r inspectReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.Parameters
	}
	for _, model := range []string{"skills-base", "stories260K"} { // untied, tied
		in := testutil.Shared(t, "models/"+model)
		want := params(in)
		for _, typ := range []string{"q8_0", "q4_0"} {
			out := filepath.Join(t.TempDir(), typ)
			var stdout, stderr bytes.Buffer
			if code := runMain([]string{"quantize", in, out, "--type", typ}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("quantize %s: %s", typ, stderr.String())
			}
			if got := params(out); got != want {
				t.Errorf("%s as %s: %d parameters, want %d", model, typ, got, want)
			}
		}
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.safetensors")
	os.WriteFile(bad, []byte("\x02\x00\x00\x00\x00\x00\x00\x00[]"), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "moco inspect: want exactly one PATH"},
		{[]string{"a", "b"}, 2, "moco inspect: want exactly one PATH"},
		{[]string{bad}, 1, "moco inspect: " + bad + ": header is a list, want a JSON object\n"},
		{[]string{filepath.Join(dir, "none")}, 1, "no such file or directory"},
		{[]string{dir}, 1, "no model.safetensors and no model.safetensors.index.json"},
	}
	for _, tt := range tests {
		_, errs, code := runInspectCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("inspect %q: exit %d, stderr %q; want exit %d and one line containing %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"layers.2.w", "layers.10.w", true},
		{"layers.10.w", "layers.2.w", false},
		{"a", "b", true},
		{"a", "a", false},
		{"a", "a.b", true},
		{"x9", "x09", true},
		{"x09", "x9", false},
		{"l.1.b", "l.1.a", false},
		{"10", "9a", false},
	}
	for _, tt := range tests {
		if got := naturalLess(tt.a, tt.b); got != tt.want {
			t.Errorf("naturalLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
