package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestResultJSON: merge, search and train-head print one JSON object with
// --json, with lowercase keys, as generate, eval and collab do.
func TestResultJSON(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	tmp := t.TempDir()
	decode := func(what, out, errs string, code int) map[string]any {
		t.Helper()
		var r map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", what, code, out, errs)
		}
		return r
	}
	out, errs, code := moco(t, "merge", "-q", "--json", "--method", "linear", "-m", add, "-m", rev, "--out", filepath.Join(tmp, "lin"))
	r := decode("merge", out, errs, code)
	if r["method"] != "linear" || r["out"] != filepath.Join(tmp, "lin") || len(r["models"].([]any)) != 2 {
		t.Errorf("merge --json: %v", r)
	}
	out, errs, code = moco(t, "search", "expo", "--json", "-m", rev, "-m", add, "--alpha", "0.1,0.2", "--dataset", ds, "--dev-samples", "3", "--max-new", "8")
	r = decode("search", out, errs, code)
	if r["method"] != "expo" || r["metric"] != "accuracy" || r["alpha"] == nil || r["candidates"] == nil {
		t.Errorf("search --json: %v", r)
	}
	if testing.Short() {
		return
	}
	small := testutil.Shared(t, "models/skills-small")
	data := testutil.Shared(t, "datasets/skills_add.json")
	out, errs, code = moco(t, "collab", "train-head", "--json", "-m", small, "-m", add, "--data", data, "--limit", "10", "--epochs", "20", "--out", filepath.Join(tmp, "h.safetensors"))
	r = decode("train-head", out, errs, code)
	if len(r) == 0 {
		t.Errorf("train-head --json: %v", r)
	}
}

// TestSynthJSON: synth --json reports the folder, the parameter count (by
// hand for tinyQwen: embeddings and head 2*300*64, per layer q 64*64+64,
// k and v 2*(32*64+32), o 64*64, MLP 3*64*96, norms 2*64; final norm 64)
// and the dtype.
func TestSynthJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "in.json")
	if err := os.WriteFile(cfg, []byte(tinyQwen), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := moco(t, "synth", "--config", cfg, "--out", filepath.Join(dir, "m"), "--dtype", "f32", "--json")
	var r map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("exit %d, %q, %q", code, out, errs)
	}
	layer := 64*64 + 64 + 2*(32*64+32) + 64*64 + 3*64*96 + 2*64
	want := float64(2*300*64 + 2*layer + 64)
	if r["out"] != filepath.Join(dir, "m") || r["parameters"] != want || r["dtype"] != "F32" {
		t.Errorf("got %v, want %v parameters", r, want)
	}
}
