package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestRemoveCheckpoints removes checkpoint-STEP folders and the temporary
// folders of killed saves, and nothing else.
func TestRemoveCheckpoints(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"checkpoint-2", "checkpoint-10", ".checkpoint-12.tmp", "checkpoint-best", "12.tmp", ".checkpoint-x.tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"checkpoint-3", "adapter_config.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removed, " "); got != ".checkpoint-12.tmp checkpoint-10 checkpoint-2" {
		t.Errorf("removed %s", got)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if got := strings.Join(left, " "); got != ".checkpoint-x.tmp 12.tmp adapter_config.json checkpoint-3 checkpoint-best logs" {
		t.Errorf("left %s", got)
	}
	if removed, err := RemoveCheckpoints(filepath.Join(dir, "none")); err != nil || removed != nil {
		t.Errorf("a folder that does not exist: %v, %v", removed, err)
	}
}

// TestResumeBaseModel: sft, dpo and grpo resume a checkpoint only over the
// base model it was trained from. Over skills-add (a fine-tune of
// skills-base: the same shapes, settings and data) the resume is refused
// naming base_model; a checkpoint without the key, as older moco wrote
// it, resumes with one warning that the base model went unchecked.
func TestResumeBaseModel(t *testing.T) {
	base, tok := skills(t)
	other := testutil.Shared(t, "models/skills-add")
	ctx := context.Background()
	runs := map[string]func(m *Model[float32], dir, resume string, warn func(string)) error{
		"sft": func(m *Model[float32], dir, resume string, warn func(string)) error {
			cfg := SFTConfig{Steps: 1, BatchSize: 1, LR: 1e-3, MaxGradNorm: 1, Seed: 1, Rank: 2, Alpha: 4, Targets: []string{"q_proj"},
				SaveEvery: 1, CheckpointDir: dir, Resume: resume, Warn: warn}
			_, _, err := SFT(ctx, m, tok, addData(2), cfg, nil)
			return err
		},
		"dpo": func(m *Model[float32], dir, resume string, warn func(string)) error {
			cfg := DPOConfig{Beta: 0.1, SFTConfig: SFTConfig{Steps: 1, BatchSize: 1, LR: 1e-3, MaxGradNorm: 1, Seed: 1, Rank: 2, Alpha: 4,
				Targets: []string{"q_proj"}, SaveEvery: 1, CheckpointDir: dir, Resume: resume, Warn: warn}}
			_, _, err := DPO(ctx, m, tok, additionPairs(2), cfg, nil)
			return err
		},
		"grpo": func(m *Model[float32], dir, resume string, warn func(string)) error {
			cfg := DefaultGRPOConfig()
			cfg.Steps, cfg.BatchSize, cfg.NumGenerations, cfg.MaxCompletion, cfg.Rank, cfg.Targets = 1, 2, 2, 4, 2, []string{"q_proj"}
			cfg.SaveEvery, cfg.CheckpointDir, cfg.Resume, cfg.Warn = 1, dir, resume, warn
			data := []GRPOExample{{Prompt: "Q: 101+202=\nA:", Answer: "303"}}
			_, _, err := GRPO(ctx, m, tok, data, addReward, cfg, nil)
			return err
		},
	}
	for name, run := range runs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := run(loadModel(t, base), dir, "", nil); err != nil {
				t.Fatal(err)
			}
			ck := latestCheckpointIs(t, dir, "checkpoint-1")
			var warns []string
			warn := func(s string) { warns = append(warns, s) }
			err := run(loadModel(t, other), dir, ck, warn)
			if err == nil || !strings.Contains(err.Error(), "base_model was") || !strings.Contains(err.Error(), "must start from the base model") {
				t.Errorf("resume over another base model: %v", err)
			}
			if err := run(loadModel(t, base), dir, ck, warn); err != nil || len(warns) != 0 {
				t.Errorf("resume over the same base model: %v, warnings %q", err, warns)
			}

			path := filepath.Join(ck, "trainer_state.json")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var st map[string]json.RawMessage
			var cfg map[string]json.RawMessage
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(st["config"], &cfg); err != nil {
				t.Fatal(err)
			}
			if _, ok := cfg["base_model"]; !ok {
				t.Fatalf("trainer_state.json's config has no base_model: %s", st["config"])
			}
			delete(cfg, "base_model")
			st["config"], _ = json.Marshal(cfg)
			b, _ = json.Marshal(st)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := run(loadModel(t, base), dir, ck, warn); err != nil {
				t.Errorf("resume of a checkpoint without base_model: %v", err)
			}
			if len(warns) != 1 || !strings.Contains(warns[0], "the base model could not be checked") || !strings.Contains(warns[0], ck) {
				t.Errorf("warnings %q; want one that the base model of %s could not be checked", warns, ck)
			}
		})
	}
}

// TestRemoveOtherOutputs: a full run removes a LoRA run's adapter files
// and the generation, tokenizer and chat-template files its source (src)
// lacks; a LoRA run a full run's model files (tokenizer files and named
// chat templates included); neither anything else.
func TestRemoveOtherOutputs(t *testing.T) {
	const model = "config.json generation_config.json tokenizer.json tokenizer_config.json special_tokens_map.json tokenizer.model " +
		"chat_template.jinja additional_chat_templates/tool.jinja"
	for _, c := range []struct {
		src           string // files of the full run's source; "-": a LoRA run
		removed, left string
	}{
		{model, "adapter_config.json adapter_model.safetensors",
			"additional_chat_templates additional_chat_templates/tool.jinja additional_chat_templates/x.txt chat_template.jinja checkpoint-2 config.json " +
				"generation_config.json loss.csv model.safetensors notes.txt special_tokens_map.json tokenizer.json tokenizer.model tokenizer_config.json"},
		{"config.json tokenizer.json tokenizer.model additional_chat_templates/other.jinja",
			"adapter_config.json adapter_model.safetensors generation_config.json tokenizer_config.json special_tokens_map.json chat_template.jinja additional_chat_templates/tool.jinja",
			"additional_chat_templates additional_chat_templates/x.txt checkpoint-2 config.json loss.csv model.safetensors notes.txt tokenizer.json tokenizer.model"},
		{"-", "config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json tokenizer.model chat_template.jinja additional_chat_templates/tool.jinja",
			"adapter_config.json adapter_model.safetensors additional_chat_templates additional_chat_templates/x.txt checkpoint-2 loss.csv notes.txt"},
	} {
		dir, src := t.TempDir(), t.TempDir()
		writeEmpty(t, dir, "adapter_config.json adapter_model.safetensors model.safetensors "+model+" additional_chat_templates/x.txt loss.csv notes.txt")
		if err := os.MkdirAll(filepath.Join(dir, "checkpoint-2"), 0o755); err != nil {
			t.Fatal(err)
		}
		full := c.src != "-"
		if full {
			writeEmpty(t, src, c.src)
		}
		removed, err := RemoveOtherOutputs(dir, src, full)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(removed, " "); got != c.removed {
			t.Errorf("src %s: removed %s, want %s", c.src, got, c.removed)
		}
		var left []string
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if rel, _ := filepath.Rel(dir, path); rel != "." && !strings.HasPrefix(rel, "checkpoint-2"+string(filepath.Separator)) {
				left = append(left, filepath.ToSlash(rel))
			}
			return err
		})
		if got := strings.Join(left, " "); got != c.left {
			t.Errorf("src %s: left %s, want %s", c.src, got, c.left)
		}
	}
	src := t.TempDir()
	writeEmpty(t, src, "config.json")
	for _, full := range []bool{false, true} {
		if removed, err := RemoveOtherOutputs(filepath.Join(t.TempDir(), "none"), src, full); err != nil || removed != nil {
			t.Errorf("full %v, a folder that does not exist: %v, %v", full, removed, err)
		}
	}
}

// writeEmpty writes an empty file at each of the space-separated paths
// under dir.
func writeEmpty(t *testing.T, dir, paths string) {
	t.Helper()
	for _, f := range strings.Fields(paths) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
