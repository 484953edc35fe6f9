package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestTrainCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"prompt":"Q:","completion":" 1"}`+"\n{nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train"}, 2, "usage: moco train sft"},
		{[]string{"train", "sft", "--model", "x"}, 2, "--data and --out are required"},
		{[]string{"train", "ppo"}, 2, "usage: moco train sft|dpo|grpo"},
		{[]string{"train", "sft", "--model", "x", "--data", bad, "--out", dir + "/o"}, 1, "line 2"},
	} {
		_, stderr, code := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// TestTrainSFTCLI trains two steps and checks the PEFT folder and the loss
// curve are written.
func TestTrainSFTCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(`{"prompt":"Q: 101+202=\nA:","completion":" 303"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ad")
	_, stderr, code := runCLI("train", "sft", "--model", model, "--data", data, "--out", out, "--steps", "2", "--batch-size", "2", "--lora-r", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "loss.csv"))
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("loss.csv has %d lines, want header + 2 steps:\n%s", n, b)
	}
}
