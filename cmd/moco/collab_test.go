package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// moco runs the CLI and returns stdout, stderr and the exit status.
func moco(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(args, nil, &out, &errb)
	return out.String(), errb.String(), code
}

func TestGenerateEmbedded(t *testing.T) {
	out, errs, code := moco(t, "generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Same seed, same sampled text.
	a, _, _ := moco(t, "generate", "--prompt", "Tom", "--seed", "5", "--max-tokens", "30")
	b, _, _ := moco(t, "generate", "--prompt", "Tom", "--seed", "5", "--max-tokens", "30")
	if a != b || a == "" {
		t.Errorf("seeded runs differ: %q vs %q", a, b)
	}
	// --stop cuts the text before the stop string.
	full, _, _ := moco(t, "generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20")
	words := strings.Fields(full)
	if len(words) > 2 {
		cut, _, _ := moco(t, "generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20", "--stop", " "+words[2])
		want := full[:strings.Index(full, " "+words[2])] + "\n"
		if cut != want {
			t.Errorf("--stop: %q, want %q", cut, want)
		}
	}
}

func TestGenerateBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"generate"},
		{"generate", "--prompt", "x", "--temperature", "-1"},
		{"generate", "--prompt", "x", "--top-p", "2"},
		{"collab"},
		{"collab", "blend", "-m", "a", "--prompt", "x"},
		{"collab", "nudging", "--prompt", "x"},
		{"perplexity"},
		{"perplexity", "--file", "x", "--method", "blend"},
	} {
		_, errs, code := moco(t, args...)
		if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") > 0 && !strings.Contains(errs, "usage") {
			t.Errorf("%q: exit %d, stderr %q; want a one-line usage error", args, code, errs)
		}
	}
	// The embedded model has no chat template.
	if _, errs, code := moco(t, "generate", "--prompt", "x", "--chat"); code != 1 || !strings.Contains(errs, "chat template") {
		t.Errorf("--chat without template: exit %d, %q", code, errs)
	}
}

func TestCollabRejectsDifferentVocabularies(t *testing.T) {
	s := testutil.Shared(t, "models/stories260K")
	e := testutil.Shared(t, "models/eric260K")
	_, errs, code := moco(t, "collab", "fusion", "-m", e, "-m", s, "--prompt", "Once")
	if code != 1 || !strings.Contains(errs, "do not share a vocabulary") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestCollabMethods(t *testing.T) {
	s := testutil.Shared(t, "models/stories260K")
	x := testutil.Shared(t, "models/llama2xs")
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev.txt")
	os.WriteFile(dev, []byte("Tom had a red ball.\nThe sun was hot.\n"), 0o644)
	trace := filepath.Join(dir, "trace.jsonl")
	common := []string{"-m", s, "-m", x, "--prompt", "Once upon a time", "--max-tokens", "24", "--temperature", "0"}
	for _, tc := range [][]string{
		{"fusion"}, {"fusion", "--mode", "prob-mean", "--weights", "2,1"},
		{"contrastive"}, {"contrastive", "--dev", dev, "--rank", "nll"}, {"nudging", "--gamma", "0.5"},
		{"cascade", "--dev", dev}, {"cascade", "--threshold", "0.9"},
		{"mentor"}, {"speculative", "--draft-tokens", "3"},
	} {
		out, errs, code := moco(t, append(append([]string{"collab"}, tc...), common...)...)
		if code != 0 || strings.TrimSpace(out) == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc, code, out, errs)
		}
	}
	// The text continues the prompt, as generate's: a model fused with
	// itself is the model alone, its first word's space included.
	fused, _, _ := moco(t, "collab", "fusion", "-m", s, "-m", s, "--prompt", "Once", "--max-tokens", "6", "--temperature", "0")
	alone, _, _ := moco(t, "generate", "-m", s, "--prompt", "Once", "--max-tokens", "6", "--temperature", "0")
	if fused != alone || !strings.HasPrefix(fused, " ") {
		t.Errorf("fusion of a model with itself %q, the model alone %q: want the same continuation, with its space", fused, alone)
	}
	// Mentor reads --threshold (its head's), one of them.
	if _, errs, code := moco(t, append([]string{"collab", "mentor", "--threshold", "0.3", "--threshold", "0.4"}, common...)...); code != 2 || !strings.Contains(errs, "mentor takes one --threshold") {
		t.Errorf("mentor with two thresholds: exit %d, %q", code, errs)
	}
	// Speculative greedy equals the target's greedy generation.
	spec, _, _ := moco(t, append([]string{"collab", "speculative"}, common...)...)
	single, _, _ := moco(t, "generate", "-m", s, "--prompt", "Once upon a time", "--max-tokens", "24", "--temperature", "0")
	if spec != single {
		t.Errorf("speculative %q != target alone %q", spec, single)
	}
	// Trace and JSON output.
	out, errs, code := moco(t, append([]string{"collab", "nudging", "--trace", trace, "--json"}, common...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct{ Method, Text string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Method != "nudging" || res.Text == "" {
		t.Errorf("--json output %q: %v", out, err)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var step struct {
		Source     string
		Confidence *float64
		Top        []struct{ ID int }
	}
	if err := json.Unmarshal([]byte(lines[0]), &step); err != nil || step.Source == "" || step.Confidence == nil || len(step.Top) == 0 {
		t.Errorf("trace line %q: %v", lines[0], err)
	}
	// A trace that cannot be written fails the command (Linux's /dev/full
	// refuses every write with ENOSPC).
	if _, err := os.Stat("/dev/full"); err == nil {
		_, errs, code := moco(t, append([]string{"collab", "nudging", "--trace", "/dev/full"}, common...)...)
		if code == 0 || !strings.Contains(errs, "no space left") {
			t.Errorf("--trace /dev/full: exit %d, stderr %q", code, errs)
		}
	}
}

func TestCollabTrainHeadAndCoLLM(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a head")
	}
	small := testutil.Shared(t, "models/skills-small")
	add := testutil.Shared(t, "models/skills-add")
	data := testutil.Shared(t, "datasets/skills_add.json")
	head := filepath.Join(t.TempDir(), "head.safetensors")
	out, errs, code := moco(t, "collab", "train-head", "-m", small, "-m", add, "--data", data, "--limit", "30", "--out", head)
	if code != 0 || !strings.Contains(out, "trained (marginal) on") {
		t.Fatalf("train-head: exit %d, %q %q", code, out, errs)
	}
	out, errs, code = moco(t, "collab", "co-llm", "-m", small, "-m", add, "--head", head, "--prompt", "Q: 123+456=\nA:",
		"--max-tokens", "6", "--temperature", "0", "--stop", "\n")
	if code != 0 {
		t.Fatalf("co-llm: exit %d, %q", code, errs)
	}
	t.Logf("co-llm: %q", out)
}

func TestPerplexityReference(t *testing.T) {
	var ref struct {
		Text    string             `json:"text"`
		Single  map[string]float64 `json:"mean_nll"`
		LogLin  float64            `json:"mean_nll_loglinear_fusion_equal_weights"`
		ProbAvg float64            `json:"mean_nll_probability_average"`
	}
	b, err := os.ReadFile(testutil.Shared(t, "models/fusion_reference_stories260K_llama2xs.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &ref)
	s := testutil.Shared(t, "models/stories260K")
	x := testutil.Shared(t, "models/llama2xs")
	file := filepath.Join(t.TempDir(), "text.txt")
	os.WriteFile(file, []byte(ref.Text), 0o644)
	for _, tc := range []struct {
		args []string
		want float64
	}{
		{[]string{"-m", s}, ref.Single["stories260K"]},
		{[]string{"-m", x}, ref.Single["llama2xs"]},
		{[]string{"-m", s, "-m", x, "--method", "fusion"}, ref.LogLin},
		{[]string{"-m", s, "-m", x, "--method", "fusion", "--mode", "prob-mean"}, ref.ProbAvg},
	} {
		out, errs, code := moco(t, append([]string{"perplexity", "--file", file, "--json"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		var res struct {
			Tokens     int     `json:"tokens"`
			MeanNLL    float64 `json:"mean_nll"`
			Perplexity float64 `json:"perplexity"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.Tokens != 44 || math.Abs(res.MeanNLL-tc.want) > 1e-4 || math.Abs(res.Perplexity-math.Exp(res.MeanNLL)) > 1e-9 {
			t.Errorf("%v: %+v, want mean NLL %.6f over 44 tokens", tc.args, res, tc.want)
		}
	}
	out, _, code := moco(t, "perplexity", "--file", file, "-m", s)
	if code != 0 || !strings.Contains(out, "perplexity:") {
		t.Errorf("text output %q", out)
	}
	// Contrastive goes through the registry in MoCo's form, top1 +
	// alpha*(top k - bottom k) over the models as listed: at alpha 0 it is
	// the first model alone (PyTorch's value); at 0.2 it is what the
	// explicit form s + 0.2*(s - x) gives, not moco's older layout
	// s - 0.2*x.
	nll := func(args ...string) float64 {
		out, errs, code := moco(t, append([]string{"perplexity", "--file", file, "--json", "-m", s, "-m", x, "--method", "contrastive"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var res struct {
			MeanNLL float64 `json:"mean_nll"`
		}
		json.Unmarshal([]byte(out), &res)
		return res.MeanNLL
	}
	if v := nll("--alpha", "0"); math.Abs(v-ref.Single["stories260K"]) > 1e-4 {
		t.Errorf("contrastive at alpha 0: %.6f, stories260K alone %.6f", v, ref.Single["stories260K"])
	}
	moCo, explicit, old := nll(), nll("--experts", "0", "--anti", "1"), nll("--anti", "1")
	if math.Abs(moCo-explicit) > 1e-9 || math.Abs(moCo-old) < 1e-3 {
		t.Errorf("contrastive: MoCo's rule %.6f, explicit s + 0.2*(s - x) %.6f, s - 0.2*x %.6f", moCo, explicit, old)
	}
	if _, errs, code := moco(t, "perplexity", "--file", file, "-m", s, "-m", x, "--method", "contrastive", "--k", "2"); code != 2 || !strings.Contains(errs, "k 2 needs at least 4 models") {
		t.Errorf("--k 2 over 2 models: exit %d, %s", code, errs)
	}
	if _, errs, code := moco(t, "perplexity", "--file", file, "-m", s, "-m", x, "--method", "fusion", "--alpha", "1"); code != 2 || !strings.Contains(errs, "contrastive's") {
		t.Errorf("--alpha with fusion: exit %d, %s", code, errs)
	}
}

func TestCollabContrastiveRanksOnDevAnswers(t *testing.T) {
	base := testutil.Shared(t, "models/skills-base")
	sort := testutil.Shared(t, "models/skills-sort")
	small := testutil.Shared(t, "models/skills-small")
	dev := testutil.Shared(t, "datasets/skills_mix.json")
	// On skills_mix dev answers skills-base has the lowest NLL and
	// skills-sort the highest of the three.
	out, errs, code := moco(t, "collab", "contrastive", "-m", sort, "-m", small, "-m", base, "--dev", dev, "--rank", "nll",
		"--prompt", "Q: reverse abc\nA:", "--temperature", "0", "--max-tokens", "6", "--stop", "\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	i, j, k := strings.Index(errs, "best first: "+base+" (nll"), strings.Index(errs, ", "+small+" (nll"), strings.Index(errs, ", "+sort+" (nll")
	if i < 0 || !(i < j && j < k) {
		t.Errorf("stderr %q does not rank base, small, sort", errs)
	}
	if strings.TrimSpace(out) != "cba" {
		t.Errorf("answer %q, want cba", out)
	}
}

// TestPerplexityWindows scores a text longer than llama2xs's 256-position
// context: it is cut into windows that each start from BOS, so the count of
// scored tokens is the text's token count.
func TestPerplexityWindows(t *testing.T) {
	x := testutil.Shared(t, "models/llama2xs")
	var ref struct{ Text string }
	b, _ := os.ReadFile(testutil.Shared(t, "models/fusion_reference_stories260K_llama2xs.json"))
	json.Unmarshal(b, &ref)
	file := filepath.Join(t.TempDir(), "long.txt")
	os.WriteFile(file, []byte(strings.Repeat(ref.Text+" ", 8)), 0o644)
	out, errs, code := moco(t, "perplexity", "--file", file, "--json", "-m", x)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Tokens  int     `json:"tokens"`
		MeanNLL float64 `json:"mean_nll"`
	}
	json.Unmarshal([]byte(out), &res)
	// 44 tokens per copy (the first word of later copies may merge with the
	// space before it, so allow a little slack).
	if res.Tokens < 300 || res.Tokens > 8*44+8 || math.IsNaN(res.MeanNLL) || res.MeanNLL <= 0 || res.MeanNLL > 3 {
		t.Errorf("long text: %+v", res)
	}
}

// TestSeedMinusOne: -s -1 asks for a random seed, as in llama.cpp (and as
// giving none does): two runs differ and --verbose prints the seed drawn.
func TestSeedMinusOne(t *testing.T) {
	seeds := map[string]bool{}
	for range 2 {
		_, errs, code := moco(t, "generate", "-p", "Once", "-n", "2", "-s", "-1", "-v")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		seed, _, _ := strings.Cut(strings.TrimPrefix(errs, "seed: "), "\n")
		if !strings.HasPrefix(errs, "seed: ") || seed == "18446744073709551615" {
			t.Fatalf("stderr %q: want the seed drawn", errs)
		}
		seeds[seed] = true
	}
	if len(seeds) != 2 {
		t.Errorf("-s -1 drew the same seed twice: %v", seeds)
	}
}
