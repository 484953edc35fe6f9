package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

// poisonedCopy copies the model folder src with a NaN written into element
// at of tensor name.
func poisonedCopy(t *testing.T, src, name string, at int) string {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*safetensors.Tensor
	for _, n := range f.Names() {
		x, _ := f.Tensor(n)
		c := *x
		c.Data = append([]byte(nil), x.Data...)
		if n == name {
			binary.LittleEndian.PutUint32(c.Data[4*at:], math.Float32bits(float32(math.NaN())))
		}
		out = append(out, &c)
	}
	dir := t.TempDir()
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), out, f.Metadata); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, file))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, file), b, 0o644)
	}
	return dir
}

// TestNonFiniteWeights: a NaN in a weight matrix is found by inspect
// --check and stops generate and perplexity with the layer it corrupts
// (before: 12 NUL bytes and exit 0; perplexity printed NaN and --json
// failed to encode it).
func TestNonFiniteWeights(t *testing.T) {
	src := testutil.Shared(t, "models/stories260K")
	dir := poisonedCopy(t, src, "model.layers.2.mlp.down_proj.weight", 77)

	out, _, code := moco(t, "inspect", "--check", dir)
	if code != 1 || !hasLine(out, "model.layers.2.mlp.down_proj.weight:", "1", "values,", "the", "first", "at", "index", "77") {
		t.Errorf("inspect --check: exit %d\n%s", code, out)
	}
	out, _, code = moco(t, "inspect", "--check", "--json", dir)
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.Check == nil || r.Check.Tensors != 47 ||
		len(r.Check.NonFinite) != 1 || r.Check.NonFinite[0] != (nonFiniteCount{"model.layers.2.mlp.down_proj.weight", 1, 77}) {
		t.Errorf("inspect --check --json: exit %d, %v, %+v", code, err, r.Check)
	}
	if out, _, code := moco(t, "inspect", "--check", src); code != 0 || !strings.Contains(out, "check: 47 tensors (1,040,128 bytes) hold no NaN or Inf") {
		t.Errorf("clean model: exit %d\n%s", code, out)
	}

	_, errs, code := moco(t, "generate", "-m", dir, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "12")
	if code == 0 || !strings.Contains(errs, "in layer 2 (model.layers.2.*)") {
		t.Errorf("generate: exit %d, stderr %q", code, errs)
	}
	file := filepath.Join(t.TempDir(), "text.txt")
	os.WriteFile(file, []byte("Once upon a time there was a little girl."), 0o644)
	out, errs, code = moco(t, "perplexity", "--file", file, "--json", "-m", dir)
	if code == 0 || !strings.Contains(errs, "in layer 2") || strings.Contains(out, "NaN") {
		t.Errorf("perplexity: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
