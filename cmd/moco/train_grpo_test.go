package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestTrainGRPOCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"prompt":"Q: 1+1=\nA:","answer":"2"}`+"\n\n"+`{"prompt":"Q: 1+2=\nA:"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train", "grpo", "--model", "x"}, 2, "--data and --out are required"},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--batch-size", "12"}, 2, "a multiple of --num-generations (8)"},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--num-generations", "1", "--batch-size", "4"}, 2, "--num-generations 1: want an integer >= 2"},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--task-type", "nope"}, 2, `task type "nope" has no scorer`},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--loss-type", "ppo"}, 2, "--loss-type"},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o", "--temperature", "0"}, 2, "--temperature"},
		{[]string{"train", "grpo", "--model", "x", "--data", bad, "--out", dir + "/o"}, 1, "line 3: want a field answer"},
	} {
		_, stderr, code := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// TestTrainGRPOCLI trains two steps and checks the PEFT folder, the loss
// curve with its reward columns and the JSON summary.
func TestTrainGRPOCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-small")
	dir := t.TempDir()
	data := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(`{"prompt":"Q: 101+202=\nA:","answer":"303"}`+"\n"+`{"prompt":"Q: 5+7=\nA:","answer":12}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ad")
	stdout, stderr, code := runCLI("train", "grpo", "--model", model, "--data", data, "--out", out, "--steps", "2",
		"--num-generations", "4", "--batch-size", "8", "--max-completion-length", "6", "--lora-r", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.csv", "reward.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "loss.csv"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "step,loss,reward,reward_std,kl,") {
		t.Errorf("loss.csv: want a header with the reward columns and 2 steps:\n%s", b)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum["steps"] != 2.0 {
		t.Errorf("summary %q: %v", stdout, err)
	}
}

// TestTrainGRPOResumeCLI: see checkResumeCLI (two iterations per batch,
// so that the resumed checkpoint is mid-way through one).
func TestTrainGRPOResumeCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-small")
	var lines []string
	for i := range 3 {
		lines = append(lines, fmt.Sprintf(`{"prompt":"Q: %d+%d=\nA:","answer":"%d"}`, 100+i, 200+i, 300+2*i))
	}
	checkResumeCLI(t, "grpo", model, lines, "--batch-size", "4", "--num-generations", "2", "--grad-accum", "2", "--num-iterations", "3",
		"--max-completion-length", "4", "--lora-r", "2", "--lora-dropout", "0.1")
}
