package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	data := sftItemFile(t, dir)
	out := filepath.Join(dir, "ad")
	_, stderr, code := runCLI("train", "sft", "--model", model, "--data", data, "--out", out, "--steps", "2", "--batch-size", "2", "--lora-r", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.csv", "loss.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if svg, _ := os.ReadFile(filepath.Join(out, "loss.svg")); !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("training loss")) {
		t.Errorf("loss.svg is not the plot: %.200s", svg)
	}
	b, _ := os.ReadFile(filepath.Join(out, "loss.csv"))
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("loss.csv has %d lines, want header + 2 steps:\n%s", n, b)
	}
}

// TestTrainOutIsModelCLI: --out naming the model's own folder is refused
// (with --full it overwrote the base's weights in place), and the model
// is left as it was.
func TestTrainOutIsModelCLI(t *testing.T) {
	src := testutil.Shared(t, "models/skills-base")
	model := filepath.Join(t.TempDir(), "m")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(model, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(model, "model.safetensors"))
	data := sftItemFile(t, t.TempDir())
	for _, args := range [][]string{
		{"train", "sft", "--full", "--model", model, "--data", data, "--out", model + "/", "--steps", "1", "--batch-size", "1"},
		{"train", "sft", "--model", model, "--data", data, "--out", model, "--steps", "1", "--batch-size", "1"},
		{"train", "dpo", "--model", model, "--data", data, "--out", model, "--steps", "1", "--batch-size", "1"},
		{"train", "grpo", "--model", model, "--data", data, "--out", model, "--steps", "1", "--batch-size", "2", "--num-generations", "2"},
	} {
		if _, stderr, code := runCLI(args...); code == 0 || !strings.Contains(stderr, "is the model folder") {
			t.Errorf("%v: exit %d, stderr %q; want the output refused", args[1:3], code, stderr)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(model, "model.safetensors")); !bytes.Equal(got, want) {
		t.Error("the model's weights changed")
	}
	if _, err := os.Stat(filepath.Join(model, "adapter_config.json")); err == nil {
		t.Error("an adapter was written into the model's folder")
	}
}

// TestTrainOutNotEmptyCLI: a non-empty --out (other files, or an earlier
// run's adapter) is refused before any work, by sft, dpo and grpo alike,
// unless --force is given; --resume continues in it without (see
// checkResumeCLI).
func TestTrainOutNotEmptyCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := sftItemFile(t, dir)
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	for _, sub := range []string{"sft", "dpo", "grpo"} {
		_, stderr, code := runCLI("train", sub, "--model", model, "--data", data, "--out", other, "--steps", "1")
		if code != 1 || !strings.Contains(stderr, "is not empty") {
			t.Errorf("%s into a folder of other files: exit %d, %q", sub, code, stderr)
		}
	}
	if ents, _ := os.ReadDir(other); len(ents) != 1 {
		t.Errorf("the folder of other files now holds %d entries", len(ents))
	}
	out := filepath.Join(dir, "ad")
	args := []string{"train", "sft", "--model", model, "--data", data, "--out", out, "--steps", "1", "--batch-size", "1", "--lora-r", "2", "-q"}
	if _, stderr, code := runCLI(args...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	first, _ := os.ReadFile(filepath.Join(out, "adapter_model.safetensors"))
	if _, stderr, code := runCLI(append(args, "--lora-r", "4")...); code != 1 || !strings.Contains(stderr, "is not empty") {
		t.Errorf("over an earlier adapter: exit %d, %q", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "adapter_model.safetensors")); !bytes.Equal(got, first) {
		t.Error("the earlier adapter changed")
	}
	if _, stderr, code := runCLI(append(args, "--lora-r", "4", "--force")...); code != 0 {
		t.Errorf("--force: exit %d: %s", code, stderr)
	}
}

// TestTrainForceCheckpointsCLI: --force starts over in an --out that holds
// an earlier run's checkpoints by removing them first (saying so), so that
// none sits beside the new run's for --resume to pick: the latest, an
// earlier run's checkpoint-4, was picked and refused as "steps was 4, now
// 3" (or, with the same settings and base model, resumed). With
// --resume nothing is removed.
func TestTrainForceCheckpointsCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := sftItemFile(t, dir)
	out := filepath.Join(dir, "ad")
	run := func(steps, every string, more ...string) (string, int) {
		args := append([]string{"train", "sft", "--model", model, "--data", data, "--out", out, "--steps", steps, "--save-every", every,
			"--batch-size", "1", "--lora-r", "2", "-q"}, more...)
		_, stderr, code := runCLI(args...)
		return stderr, code
	}
	checkpoints := func() []string {
		var names []string
		ents, _ := os.ReadDir(out)
		for _, e := range ents {
			if strings.Contains(e.Name(), "checkpoint-") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	if stderr, code := run("4", "2"); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	if err := os.MkdirAll(filepath.Join(out, ".checkpoint-6.tmp"), 0o755); err != nil { // a save killed mid-way
		t.Fatal(err)
	}
	stderr, code := run("3", "1", "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if got := strings.Join(checkpoints(), " "); got != "checkpoint-1 checkpoint-2 checkpoint-3" {
		t.Errorf("after --force, --out holds %s; want the new run's checkpoint-1 to 3 only", got)
	}
	if !strings.Contains(stderr, "removed the earlier run's .checkpoint-6.tmp, checkpoint-2, checkpoint-4 from "+out) {
		t.Errorf("--force does not say what it removed: %q", stderr)
	}
	if stderr, code := run("3", "1", "--resume"); code != 0 {
		t.Errorf("--resume after --force: exit %d: %s", code, stderr)
	}
	if stderr, code := run("3", "1", "--resume", "--force"); code != 0 || strings.Contains(stderr, "removed") || len(checkpoints()) != 3 {
		t.Errorf("--resume --force: exit %d, %q, checkpoints %v", code, stderr, checkpoints())
	}
}

// TestTrainForceKindCLI: --force from a LoRA run to a --full one into the
// same --out removes the adapter, and back the model files, saying so, so
// that the folder is an adapter folder or a model folder, not both; a
// file of the user's stays. dpo, a LoRA run too, removes the model files.
func TestTrainForceKindCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	sft := sftItemFile(t, dir)
	dpo := filepath.Join(dir, "pairs.jsonl")
	writeTestFile(t, dpo, `{"prompt":"Q: 101+202=\nA:","chosen":" 303","rejected":" 313"}`+"\n")
	out := filepath.Join(dir, "out")
	writeTestFile(t, filepath.Join(out, "notes.txt"), "mine")
	const (
		adapter   = "adapter_config.json adapter_model.safetensors loss.csv loss.svg notes.txt"
		fullModel = "config.json generation_config.json loss.csv loss.svg model.safetensors notes.txt tokenizer.json tokenizer_config.json"
		modelDone = "config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json"
	)
	for _, c := range []struct {
		sub, data      string
		full           bool
		removed, files string
	}{
		{"sft", sft, false, "", adapter},
		{"sft", sft, true, "adapter_config.json, adapter_model.safetensors", fullModel},
		{"sft", sft, false, modelDone, adapter},
		{"sft", sft, true, "adapter_config.json, adapter_model.safetensors", fullModel},
		{"dpo", dpo, false, modelDone, adapter},
	} {
		args := []string{"train", c.sub, "--model", model, "--data", c.data, "--out", out, "--steps", "1", "--batch-size", "1", "--lora-r", "2", "-q"}
		if c.full {
			args = append(args, "--full")
		}
		checkForced(t, out, c.removed, c.files, args...)
	}
}

// TestTrainForceSourceCLI: --full --force over an earlier full run from
// another source model removes the tokenizer, chat-template and
// generation files of the earlier source that the new one lacks (they
// would change how the folder tokenizes and generates), saying so, and
// keeps a file of the user's. The first source is skills-base with a
// special_tokens_map.json and chat templates added; the second,
// stories260K, has a tokenizer.model and no generation_config.json.
func TestTrainForceSourceCLI(t *testing.T) {
	base := testutil.Shared(t, "models/skills-base")
	stories := testutil.Shared(t, "models/stories260K")
	dir := t.TempDir()
	extra := filepath.Join(dir, "extra")
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(base, f))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(extra, f), string(b))
	}
	writeTestFile(t, filepath.Join(extra, "special_tokens_map.json"), `{"bos_token": "<s>", "eos_token": "</s>"}`)
	writeTestFile(t, filepath.Join(extra, "chat_template.jinja"), "{% for m in messages %}{{ m['content'] }}{% endfor %}")
	writeTestFile(t, filepath.Join(extra, "additional_chat_templates", "tool.jinja"), "{% for m in messages %}{{ m['role'] }}{% endfor %}")
	data := sftItemFile(t, dir)
	out := filepath.Join(dir, "out")
	writeTestFile(t, filepath.Join(out, "notes.txt"), "mine")
	for _, c := range []struct {
		model, removed, files string
	}{
		{extra, "", "additional_chat_templates additional_chat_templates/tool.jinja chat_template.jinja config.json generation_config.json " +
			"loss.csv loss.svg model.safetensors notes.txt special_tokens_map.json tokenizer.json tokenizer_config.json"},
		{stories, "generation_config.json, special_tokens_map.json, chat_template.jinja, additional_chat_templates/tool.jinja",
			"config.json loss.csv loss.svg model.safetensors notes.txt tokenizer.json tokenizer.model tokenizer_config.json"},
		{base, "tokenizer.model",
			"config.json generation_config.json loss.csv loss.svg model.safetensors notes.txt tokenizer.json tokenizer_config.json"},
	} {
		checkForced(t, out, c.removed, c.files, "train", "sft", "--full", "--model", c.model, "--data", data, "--out", out, "--steps", "1", "--batch-size", "1", "-q")
	}
}

// TestTrainForceLogsCLI: --force removes the logs and plots of an earlier
// run of another command that the new run does not write (grpo's
// reward.svg, sft's and dpo's loss.svg, a loss.csv when --loss-csv
// writes elsewhere), saying so; a log --loss-csv named in --out, like a
// file of the user's, is not moco's to remove.
func TestTrainForceLogsCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-small")
	dir := t.TempDir()
	sft := sftItemFile(t, dir)
	dpo := filepath.Join(dir, "pairs.jsonl")
	writeTestFile(t, dpo, `{"prompt":"Q: 101+202=\nA:","chosen":" 303","rejected":" 313"}`+"\n")
	grpo := filepath.Join(dir, "answers.jsonl")
	writeTestFile(t, grpo, `{"prompt":"Q: 101+202=\nA:","answer":"303"}`+"\n")
	out := filepath.Join(dir, "out")
	writeTestFile(t, filepath.Join(out, "notes.txt"), "mine")
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	const adapter = "adapter_config.json adapter_model.safetensors "
	for _, c := range []struct {
		sub, removed, files string
		flags               []string
	}{
		{"sft", "", adapter + "loss.csv loss.svg notes.txt", nil},
		{"grpo", "loss.svg", adapter + "loss.csv notes.txt reward.svg", nil},
		{"dpo", "loss.csv, reward.svg", adapter + "notes.txt", []string{"--loss-csv", filepath.Join(logs, "dpo.csv")}},
		{"grpo", "", adapter + "loss.csv notes.txt reward.svg", nil},
		{"sft", "loss.csv, reward.svg", adapter + "notes.txt run.csv run.svg", []string{"--loss-csv", filepath.Join(out, "run.csv")}},
		{"sft", "", adapter + "loss.csv loss.svg notes.txt run.csv run.svg", nil},
		{"grpo", "loss.svg", adapter + "loss.csv notes.txt reward.svg run.csv run.svg", []string{"--loss-csv", filepath.Join(out, "loss.csv")}},
	} {
		data := map[string]string{"sft": sft, "dpo": dpo, "grpo": grpo}[c.sub]
		args := append([]string{"train", c.sub, "--model", model, "--data", data, "--out", out, "--steps", "1", "--lora-r", "2", "-q"}, c.flags...)
		if c.sub == "grpo" {
			args = append(args, "--batch-size", "2", "--num-generations", "2", "--max-completion-length", "2")
		} else {
			args = append(args, "--batch-size", "1")
		}
		checkForced(t, out, c.removed, c.files, args...)
	}
	if got := outTree(logs); got != "dpo.csv dpo.svg" {
		t.Errorf("--loss-csv's folder holds %s; want dpo.csv dpo.svg", got)
	}
}

// checkForced runs the train command args with --force into out and
// checks that it says it removed removed (", "-separated; "" for nothing)
// and leaves out holding files (outTree's list).
func checkForced(t *testing.T, out, removed, files string, args ...string) {
	t.Helper()
	_, stderr, code := runCLI(append(args, "--force")...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args[1:], code, stderr)
	}
	want := ""
	if removed != "" {
		want = "moco train " + args[1] + ": --force: removed the earlier run's " + removed + " from " + out + "\n"
	}
	if stderr != want {
		t.Errorf("%v: stderr %q, want %q", args[1:], stderr, want)
	}
	if got := outTree(out); got != files {
		t.Errorf("%v: --out holds %s; want %s", args[1:], got, files)
	}
}

// outTree lists the files and folders under dir, slash-separated paths
// relative to it in lexical order, space-separated.
func outTree(dir string) string {
	var names []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, path); err == nil && rel != "." {
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	})
	return strings.Join(names, " ")
}

// writeTestFile writes text to path, making its folder.
func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTrainResumeBaseModelCLI: --resume over another -m than the one the
// checkpoint was trained from (skills-add, a fine-tune of skills-base with
// its shapes) is refused naming the base model, by sft, dpo and grpo
// alike; over the same -m it resumes. A checkpoint without base_model, as
// an older moco wrote it, resumes with a one-line warning on stderr.
func TestTrainResumeBaseModelCLI(t *testing.T) {
	base := testutil.Shared(t, "models/skills-base")
	other := testutil.Shared(t, "models/skills-add")
	for _, c := range []struct {
		sub, line string
		flags     []string
	}{
		{"sft", `{"prompt":"Q: 101+202=\nA:","completion":" 303"}`, nil},
		{"dpo", `{"prompt":"Q: 101+202=\nA:","chosen":" 303","rejected":" 313"}`, nil},
		{"grpo", `{"prompt":"Q: 101+202=\nA:","answer":"303"}`, []string{"--batch-size", "2", "--num-generations", "2", "--max-completion-length", "4"}},
	} {
		dir := t.TempDir()
		data := filepath.Join(dir, "d.jsonl")
		if err := os.WriteFile(data, []byte(c.line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "ad")
		run := func(model string, more ...string) (string, int) {
			args := []string{"train", c.sub, "--model", model, "--data", data, "--out", out, "--steps", "1", "--save-every", "1", "--lora-r", "2", "-q"}
			if c.flags == nil {
				args = append(args, "--batch-size", "1")
			}
			_, stderr, code := runCLI(append(append(args, c.flags...), more...)...)
			return stderr, code
		}
		if stderr, code := run(base); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.sub, code, stderr)
		}
		if stderr, code := run(other, "--resume"); code != 1 || !strings.Contains(stderr, "base_model was") || !strings.Contains(stderr, "must start from the base model") {
			t.Errorf("%s: --resume over another model: exit %d, %q", c.sub, code, stderr)
		}
		if stderr, code := run(base, "--resume"); code != 0 || strings.Contains(stderr, "warning") {
			t.Errorf("%s: --resume over the same model: exit %d, %q", c.sub, code, stderr)
		}
		// The config of an older moco's trainer_state.json: no base_model.
		state := filepath.Join(out, "checkpoint-1", "trainer_state.json")
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		cfg, _ := st["config"].(map[string]any)
		if _, ok := cfg["base_model"]; !ok {
			t.Fatalf("%s: trainer_state.json's config has no base_model: %v", c.sub, cfg)
		}
		delete(cfg, "base_model")
		if b, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(state, b, 0o644); err != nil {
			t.Fatal(err)
		}
		stderr, code := run(base, "--resume")
		want := "moco train " + c.sub + ": warning: resume: " + filepath.Join(out, "checkpoint-1") + " records no base_model"
		if code != 0 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "could not be checked") {
			t.Errorf("%s: --resume of a checkpoint without base_model: exit %d, %q; want one line %q...", c.sub, code, stderr, want)
		}
	}
}

// TestTrainFullLRCLI: --full without --lr trains at TRL's SFTConfig
// learning rate (2e-5), not the LoRA default, which wrecks every weight;
// an --lr given is kept, and LoRA keeps its default.
func TestTrainFullLRCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := sftItemFile(t, dir)
	for i, c := range []struct {
		flags []string
		lr    string // loss.csv's lr of step 1 (no warm-up: the peak)
	}{
		{[]string{"--full"}, "2e-05"},
		{[]string{"--full", "--lr", "1e-4"}, "0.0001"},
		{nil, "0.003"},
	} {
		out := filepath.Join(dir, fmt.Sprint("o", i))
		args := append([]string{"train", "sft", "--model", model, "--data", data, "--out", out, "--steps", "1", "--batch-size", "1", "-q"}, c.flags...)
		if _, stderr, code := runCLI(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", c.flags, code, stderr)
		}
		b, _ := os.ReadFile(filepath.Join(out, "loss.csv"))
		lines := strings.Split(string(b), "\n")
		if len(lines) < 2 || len(strings.Split(lines[1], ",")) < 3 {
			t.Fatalf("%v: loss.csv %q", c.flags, b)
		}
		if lr := strings.Split(lines[1], ",")[2]; lr != c.lr {
			t.Errorf("%v: learning rate %s, want %s", c.flags, lr, c.lr)
		}
	}
}

// TestTrainSFTResumeCLI: see checkResumeCLI.
func TestTrainSFTResumeCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf(`{"prompt":"Q: %d+%d=\nA:","completion":" %d"}`, 100+i, 200+i, 300+2*i))
	}
	checkResumeCLI(t, "sft", model, lines, "--batch-size", "2", "--grad-accum", "2", "--lora-r", "2", "--lora-dropout", "0.1")
}

// checkResumeCLI runs `train sub` for 4 steps with checkpoints every 2,
// then removes the end of a second identical run (checkpoint-4, the
// adapter and loss.csv) and resumes it with --resume (the latest
// checkpoint, checkpoint-2): the adapter and the optimizer state must
// come out byte for byte the same, and loss.csv must hold all 4 steps.
func checkResumeCLI(t *testing.T, sub, model string, data []string, flags ...string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(data, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(out string, more ...string) []string {
		a := []string{"train", sub, "--model", model, "--data", file, "--out", out, "--steps", "4", "--save-every", "2", "-q"}
		return append(append(a, flags...), more...)
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, out := range []string{a, b} {
		if _, stderr, code := runCLI(args(out)...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	for _, f := range []string{"checkpoint-4", "adapter_model.safetensors", "loss.csv"} {
		if err := os.RemoveAll(filepath.Join(b, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, stderr, code := runCLI(args(b, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_model.safetensors", "checkpoint-4/optimizer.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(a, f))
		y, err2 := os.ReadFile(filepath.Join(b, f))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s differs after resuming (%v, %v)", f, err1, err2)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(b, "loss.csv"))
	if n := strings.Count(string(csv), "\n"); n != 5 {
		t.Errorf("resumed loss.csv has %d lines, want header + 4 steps", n)
	}
}

// TestTrainSFTLimitsCLI: a too-long example is refused by default and
// cut with a warning under --truncate; messages need a chat template;
// --full writes a model folder.
func TestTrainSFTLimitsCLI(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dir := t.TempDir()
	data := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(`{"prompt":"Q: 1+2=\nA:","completion":" 3"}`+"\n"+`{"prompt":"Q: 1+2=\nA:","completion":" 3 `+strings.Repeat("x", 200)+`"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"train", "sft", "--model", model, "--data", data, "--steps", "1", "--batch-size", "1", "--lora-r", "2", "-q"}
	_, stderr, code := runCLI(append(base, "--out", filepath.Join(dir, "o1"))...)
	if code != 1 || !strings.Contains(stderr, "example 2:") || !strings.Contains(stderr, "truncate") {
		t.Fatalf("exit %d, stderr %q; want example 2 refused", code, stderr)
	}
	_, stderr, code = runCLI(append(base, "--out", filepath.Join(dir, "o2"), "--truncate")...)
	if code != 0 || !strings.Contains(stderr, "warning: truncated 1 of 2 examples to 128 tokens") {
		t.Fatalf("exit %d, stderr %q; want a truncation warning", code, stderr)
	}
	chat := filepath.Join(dir, "c.jsonl")
	if err := os.WriteFile(chat, []byte(`{"messages":[{"role":"user","content":"1+2"},{"role":"assistant","content":"3"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI("train", "sft", "--model", model, "--data", chat, "--out", filepath.Join(dir, "o3"), "--steps", "1", "-q")
	if code != 1 || !strings.Contains(stderr, "no chat template") {
		t.Fatalf("exit %d, stderr %q; want the missing chat template named", code, stderr)
	}
	full := filepath.Join(dir, "full")
	_, stderr, code = runCLI(append(base, "--out", full, "--truncate", "--full", "--lr", "1e-5")...)
	if code != 0 {
		t.Fatalf("--full: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"model.safetensors", "config.json", "tokenizer.json", "loss.csv"} {
		if _, err := os.Stat(filepath.Join(full, f)); err != nil {
			t.Error(err)
		}
	}
}

// sftItemFile writes a one-item SFT data file (an addition the skills
// models know) in dir and returns its path.
func sftItemFile(t *testing.T, dir string) string {
	t.Helper()
	data := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(`{"prompt":"Q: 101+202=\nA:","completion":" 303"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}
