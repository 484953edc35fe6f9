package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScore: outputs made elsewhere are scored with the dataset's scorer;
// a missing item counts 0 and is listed; ids may be numbers.
func TestScore(t *testing.T) {
	dir := t.TempDir()
	ds := filepath.Join(dir, "ds.json")
	os.WriteFile(ds, []byte(`{"dataset": "popqa", "task_type": "f1_match", "dev": [], "test": [
		{"id": 1, "input": "Capital of Var?", "output": "[\"Toulon\", \"Tolon\"]"},
		{"id": "b", "input": "Capital of France?", "output": "Paris"},
		{"id": "c", "input": "Capital of Peru?", "output": "Lima"},
		{"id": "d", "input": "Capital of Chad?", "output": "N'Djamena"}]}`), 0o644)
	preds := filepath.Join(dir, "p.jsonl")
	os.WriteFile(preds, []byte(`{"id": 1, "output": "\\box{Tolon}"}
{"id": "b", "output": "The answer is Paris, France"}

{"id": "c", "output": "Cusco"}
{"id": "zz", "output": "?"}
`), 0o644)
	out, errs, code := moco(t, "score", "--dataset", ds, "--predictions", preds, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		TaskType string  `json:"task_type"`
		Metric   string  `json:"metric"`
		Score    float64 `json:"score"`
		Missing  []string
		Unknown  []string
		Items    []struct {
			ID    string
			Score float64
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// F1 by hand: 1, "paris france" vs "paris" = 2*(1/2*1)/(3/2) = 2/3, 0, missing 0.
	want := (1 + 2.0/3) / 4
	if r.TaskType != "f1_match" || r.Metric != "f1" || absf(r.Score-want) > 1e-9 || len(r.Items) != 4 {
		t.Errorf("got %+v, want score %v", r, want)
	}
	if len(r.Missing) != 1 || r.Missing[0] != "d" || len(r.Unknown) != 1 || r.Unknown[0] != "zz" {
		t.Errorf("missing %v unknown %v", r.Missing, r.Unknown)
	}
	out, _, code = moco(t, "score", "--dataset", ds, "--predictions", preds)
	if code != 0 || !strings.Contains(out, "1 missing") || !strings.Contains(out, "missing: d") {
		t.Errorf("text output %q", out)
	}
	// Bad input: a broken line is named; a reward_model set without a judge is refused.
	os.WriteFile(preds, []byte("{\"id\": 1, \"output\": \"x\"}\n{\"id\": 2, \"output\": 3}\n"), 0o644)
	if _, errs, code := moco(t, "score", "--dataset", ds, "--predictions", preds); code != 1 || !strings.Contains(errs, "line 2") {
		t.Errorf("bad line: exit %d %q", code, errs)
	}
	os.WriteFile(ds, []byte(`{"dataset": "alpacaeval", "task_type": "reward_model", "dev": [], "test": [{"id": 1, "input": "Hi", "output": "Hello"}]}`), 0o644)
	os.WriteFile(preds, []byte(`{"id": 1, "output": "Hello"}`), 0o644)
	if _, errs, code := moco(t, "score", "--dataset", ds, "--predictions", preds); code != 1 || !strings.Contains(errs, "judge") {
		t.Errorf("reward_model without judge: exit %d %q", code, errs)
	}
	if _, _, code := moco(t, "score", "--dataset", ds); code != 2 {
		t.Errorf("missing --predictions: exit %d", code)
	}
}

func absf(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
