package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestContrastiveMoCoRule ranks three skills models on addition dev items
// by accuracy (the training framework measured add 0.92 > base 0.59 > rev
// 0.23 on addition) and checks that MoCo's rule picks skills-add as top-1
// and skills-rev as bottom-1, and produces what the explicit form
// add + 0.2*(add - rev) produces.
func TestContrastiveMoCoRule(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets/skills_add.json")
	add, base, rev := filepath.Join(models, "skills-add"), filepath.Join(models, "skills-base"), filepath.Join(models, "skills-rev")
	common := []string{"--prompt", "Q: 289+623=\nA:", "--temperature", "0", "--max-tokens", "8"}
	cal := filepath.Join(t.TempDir(), "cal.json")
	args := append([]string{"collab", "contrastive", "-m", rev, "-m", base, "-m", add, "--dev", data, "--dev-samples", "30", "--calibration", cal}, common...)
	out, errs, code := moco(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	i, j, k := strings.Index(errs, "best first: "+add), strings.Index(errs, base+" (accuracy"), strings.Index(errs, rev+" (accuracy")
	if i < 0 || !(i < j && j < k) {
		t.Errorf("ranking: %s", errs)
	}
	ref, errs2, code := moco(t, append([]string{"collab", "contrastive", "-m", add, "-m", rev, "--experts", "0", "--anti", "1", "--alpha", "0.2"}, common...)...)
	if code != 0 || out != ref {
		t.Errorf("MoCo rule %q, explicit add + 0.2*(add - rev) %q (%s)", out, ref, errs2)
	}
	// The calibration is reused: no dev generation the second time.
	out2, errs, code := moco(t, args...)
	if code != 0 || out2 != out || strings.Contains(errs, ": dev accuracy") || !strings.Contains(errs, "calibration read from") {
		t.Errorf("second run: exit %d, %q, stderr %s", code, out2, errs)
	}
	// Another dev sample is another calibration: refused.
	args[len(args)-len(common)-3] = "20"
	if _, errs, code := moco(t, args...); code != 1 || !strings.Contains(errs, "does not match") || !strings.Contains(errs, "dev_samples") {
		t.Errorf("mismatched calibration: exit %d, %s", code, errs)
	}
	// --dev with explicit roles is a usage error; so is k too large.
	if _, errs, code := moco(t, append([]string{"collab", "contrastive", "-m", add, "-m", rev, "--experts", "0", "--dev", data}, common...)...); code != 2 {
		t.Errorf("--dev with --experts: exit %d, %s", code, errs)
	}
	if _, errs, code := moco(t, append([]string{"collab", "contrastive", "-m", add, "-m", rev, "--k", "2"}, common...)...); code == 0 || !strings.Contains(errs, "k = 2") {
		t.Errorf("--k 2 of 2 models: exit %d, %s", code, errs)
	}
}

// TestCascadeCalibrationFile checks that --calibration saves the
// thresholds once (a complete JSON file), reuses them, and refuses a file
// made for other models.
func TestCascadeCalibrationFile(t *testing.T) {
	models := testutil.Shared(t, "models")
	small, base, add := filepath.Join(models, "skills-small"), filepath.Join(models, "skills-base"), filepath.Join(models, "skills-add")
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev.jsonl")
	os.WriteFile(dev, []byte(`{"prompt": "Q: 101+202=\nA:", "answer": "303"}`+"\n"+`{"input": "Q: reverse abc\nA:"}`+"\n\n"+`{"prompt": "Q: sort cba\nA:"}`+"\n"), 0o644)
	cal := filepath.Join(dir, "cascade.json")
	args := []string{"collab", "cascade", "-m", small, "-m", add, "--dev", dev, "--calibration", cal, "--prompt", "Q: 289+623=\nA:", "--temperature", "0", "--max-tokens", "8", "--json"}
	out, errs, code := moco(t, args...)
	if code != 0 || !strings.Contains(errs, "calibration saved") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var c struct {
		Format     string
		Thresholds []float64
	}
	b, _ := os.ReadFile(cal)
	if err := json.Unmarshal(b, &c); err != nil || c.Format != "moco-calibration/1" || len(c.Thresholds) != 1 {
		t.Fatalf("calibration file %s: %v", b, err)
	}
	out2, errs, code := moco(t, args...)
	if code != 0 || out2 != out || !strings.Contains(errs, "calibration read") {
		t.Errorf("reuse: exit %d, %q vs %q, %s", code, out2, out, errs)
	}
	args[3] = base
	if _, errs, code := moco(t, args...); code != 1 || !strings.Contains(errs, "does not match") {
		t.Errorf("other model: exit %d, %s", code, errs)
	}
	for _, bad := range [][]string{
		{"collab", "fusion", "-m", small, "--dev", dev, "--prompt", "x"},
		{"collab", "cascade", "-m", small, "-m", add, "--dev", dev, "--threshold", "0.5", "--prompt", "x"},
		{"collab", "cascade", "-m", small, "-m", add, "--threshold", "0.5", "--calibration", cal, "--prompt", "x"},
		{"collab", "cascade", "-m", small, "-m", add, "--dev", dev, "--dev-samples", "-1", "--prompt", "x"},
	} {
		if _, errs, code := moco(t, bad...); code != 2 {
			t.Errorf("%q: exit %d, %s", bad, code, errs)
		}
	}
}

// TestReadDev checks the dev-file formats cascade and contrastive read.
func TestReadDev(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	cases := []struct {
		name, body string
		prompts    []string
		answers    []string
		err        string
	}{
		{"a.jsonl", `{"prompt": "p1", "answer": "a1"}` + "\n" + `{"input": "p2", "output": "a2"}` + "\r\n\n" + `{"prompt": "p3", "completion": "a3"}`, []string{"p1", "p2", "p3"}, []string{"a1", "a2", "a3"}, ""},
		{"b.jsonl", `{"prompt": "p1"}` + "\n" + `{"text": "x"}`, nil, nil, `b.jsonl:2: no "prompt"`},
		{"c.jsonl", `{"prompt": 5}`, nil, nil, `c.jsonl:1: "prompt" must be a string`},
		{"d.jsonl", `["p"]`, nil, nil, "d.jsonl:1: not a JSON object"},
		{"e.txt", "line one\n\nline two\n", []string{"line one", "line two"}, []string{"", ""}, ""},
		{"f.csv", "a,b\n", nil, nil, `cannot read a dev set from a ".csv" file`},
		{"g.txt", "\x00\x01", nil, nil, "not UTF-8 text"},
		{"h.jsonl", "\n\n", nil, nil, "no prompts"},
		{"i.json", `{"task_type": "exact_match", "dev": [], "test": []}`, nil, nil, "dev split is empty"},
	}
	for _, c := range cases {
		ds, err := readDev(write(c.name, c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var ps, as []string
		for _, it := range ds.Dev {
			ps, as = append(ps, it.Input), append(as, it.Output)
		}
		if strings.Join(ps, "|") != strings.Join(c.prompts, "|") || strings.Join(as, "|") != strings.Join(c.answers, "|") {
			t.Errorf("%s: prompts %q answers %q", c.name, ps, as)
		}
	}
}

// FuzzJSONLItem: any line either yields a non-empty prompt or an error.
func FuzzJSONLItem(f *testing.F) {
	f.Add(`{"prompt": "p", "answer": "a"}`)
	f.Add(`{"input": ""}`)
	f.Add(`[1]`)
	f.Fuzz(func(t *testing.T, line string) {
		p, _, err := jsonlItem(line)
		if err == nil && strings.TrimSpace(p) == "" {
			t.Fatalf("%q: empty prompt accepted", line)
		}
	})
}

// TestTrainHeadObjectives trains both heads on skills dev answers: the
// marginal objective must give a lower marginal NLL than the pseudo-label
// head and than either model alone (it is what it maximizes).
func TestTrainHeadObjectives(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets/skills_mix.json")
	dir := t.TempDir()
	run := func(obj string) map[string]any {
		out, errs, code := moco(t, "collab", "train-head", "-m", filepath.Join(models, "skills-base"), "-m", filepath.Join(models, "skills-add"),
			"--data", data, "--limit", "40", "--epochs", "200", "--objective", obj, "--json", "--out", filepath.Join(dir, obj+".safetensors"))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", obj, code, errs)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %q: %v", obj, out, err)
		}
		return r
	}
	m, p := run("marginal"), run("pseudo")
	if m["objective"] != "marginal" || p["objective"] != "pseudo" {
		t.Errorf("objectives %v %v", m["objective"], p["objective"])
	}
	mn, pn := m["marginal_nll"].(float64), p["marginal_nll"].(float64)
	if !(mn < pn && mn < m["base_nll"].(float64) && mn < m["assistant_nll"].(float64)) {
		t.Errorf("marginal NLL: marginal head %v, pseudo head %v, base %v, assistant %v", mn, pn, m["base_nll"], m["assistant_nll"])
	}
	// The reference follows the prompt after a space, as generated: the
	// base model alone then predicts the answers well (NLL < 0.5 a token).
	if b := m["base_nll"].(float64); b > 0.5 {
		t.Errorf("base NLL %v per token: the references are not tokenized as generated", b)
	}
	if _, errs, code := moco(t, "collab", "train-head", "-m", "a", "-m", "b", "--data", data, "--out", "x", "--objective", "em"); code != 2 {
		t.Errorf("--objective em: exit %d, %s", code, errs)
	}
}
