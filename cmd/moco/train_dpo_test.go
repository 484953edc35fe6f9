package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestTrainDPOCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"prompt":"Q:","chosen":" 1","rejected":" 2"}`+"\n\n"+`{"prompt":"Q:","chosen":" 1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train", "dpo", "--model", "x"}, 2, "--data and --out are required"},
		{[]string{"train", "dpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--beta", "0"}, 2, "--beta 0: want a number > 0"},
		{[]string{"train", "dpo", "--model", "x", "--data", bad, "--out", dir + "/o"}, 1, `line 3: missing field "rejected"`},
	} {
		_, stderr, code := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// TestTrainDPOCLI trains two steps and checks the PEFT folder and the log
// with TRL's reward columns; step 1 starts at the reference (loss ln 2,
// zero margin, accuracy 0).
func TestTrainDPOCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(`{"prompt":"Q: 101+202=\nA:","chosen":" 303","rejected":" 313"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ad")
	_, stderr, code := runCLI("train", "dpo", "--model", model, "--data", data, "--out", out, "--steps", "2", "--batch-size", "2", "--lora-r", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.csv", "loss.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "loss.csv"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "rewards/margins,rewards/accuracies") {
		t.Fatalf("loss.csv, want header with TRL's reward columns + 2 steps:\n%s", b)
	}
	if f := strings.Split(lines[1], ","); f[1] != "0.693147" || f[8] != "0.000000" || f[9] != "0.0000" {
		t.Errorf("step 1 = %q, want loss 0.693147, margin 0 and accuracy 0", lines[1])
	}
}

// TestTrainDPOResumeCLI: see checkResumeCLI.
func TestTrainDPOResumeCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	var lines []string
	for i := range 4 {
		lines = append(lines, fmt.Sprintf(`{"prompt":"Q: %d+%d=\nA:","chosen":" %d","rejected":" %d"}`, 100+i, 200+i, 300+2*i, 310+2*i))
	}
	checkResumeCLI(t, "dpo", model, lines, "--batch-size", "2", "--grad-accum", "2", "--lora-r", "2", "--lora-dropout", "0.1", "--rpo-alpha", "0.5")
}
