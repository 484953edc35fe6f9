package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

func TestShardFromEnv(t *testing.T) {
	cases := []struct {
		flag  string
		count int
		env   map[string]string
		i, n  int
		err   string
	}{
		{"", 0, nil, 0, 1, ""},
		{"2/5", 0, nil, 2, 5, ""},
		{"5/5", 0, nil, 0, 0, "shard"},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, 3, 4, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, 3, 4, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, 0, 0, "--array=0-3"},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "1"}, 0, 0, "SLURM_ARRAY_TASK_COUNT"},
		{"1/2", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, 1, 2, ""}, // the flag wins
		{"", 8, map[string]string{"JOB_COMPLETION_INDEX": "7"}, 7, 8, ""},
		{"", 0, map[string]string{"JOB_COMPLETION_INDEX": "7"}, 0, 0, "--shard-count"},
		{"", 8, nil, 0, 0, "JOB_COMPLETION_INDEX"},
	}
	for _, c := range cases {
		i, n, err := shardFromEnv(c.flag, c.count, func(k string) string { return c.env[k] })
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want %q", c, err, c.err)
			}
			continue
		}
		if err != nil || i != c.i || n != c.n {
			t.Errorf("%+v: %d/%d %v", c, i, n, err)
		}
	}
}

// TestSlurmScriptResubmit: docs/sweep-slurm.sh, resubmitted for one task
// as its comment says (sbatch --array=3, an array of one), runs shard 3 of
// 8 into that shard's file, not the whole sweep as shard 0 of 1.
func TestSlurmScriptResubmit(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("../../docs/sweep-slurm.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	// A stand-in moco that records its arguments.
	os.WriteFile(filepath.Join(bin, "moco"), []byte("#!/bin/sh\necho \"$@\" > \"$ARGS\"\n"), 0o755)
	cmd := exec.Command(bash, script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "ARGS=" + filepath.Join(dir, "args"), "SLURM_CPUS_PER_TASK=2",
		"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_MIN=3", "SLURM_ARRAY_TASK_MAX=3", "SLURM_ARRAY_TASK_COUNT=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if !strings.Contains(string(args), "--shard 3/8") || !strings.Contains(string(args), "shard-3-of-8.jsonl") {
		t.Errorf("resubmitted task 3 ran moco %s", args)
	}
}

// TestSweepErrorsBeforeLoading: a malformed config or dataset is one
// error naming the file and field, exit status 1 or 2, before any model
// loads (the model paths here do not even exist).
func TestSweepErrorsBeforeLoading(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s.yaml")
	os.WriteFile(cfg, []byte("models: [nowhere]\nmethods: [single]\ndatasets: [{path: d.json, spilt: test}]\n"), 0o644)
	_, errs, code := moco(t, "sweep", cfg)
	if code != 1 || !strings.Contains(errs, cfg) || !strings.Contains(errs, `"spilt"`) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("exit %d, %q", code, errs)
	}
	if _, _, code := moco(t, "sweep"); code != 2 {
		t.Errorf("no config: exit %d", code)
	}
	if _, _, code := moco(t, "sweep", cfg, "--shard", "9/2"); code != 2 {
		t.Errorf("bad shard: exit %d", code)
	}
}

// TestSweepEveryMoCoDataset: every MoCo dataset in ../shared/datasets is
// accepted by a sweep with a small model and --limit 3: scored (3 lines),
// or refused with the reason (reward_model sets without a judge).
func TestSweepEveryMoCoDataset(t *testing.T) {
	if testing.Short() {
		t.Skip("loads every dataset")
	}
	model := testutil.Shared(t, "models/skills-small")
	data := testutil.Shared(t, "datasets")
	files, _ := filepath.Glob(filepath.Join(data, "*.json"))
	var ds []string
	dir := t.TempDir()
	invalid := 0
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "skills_") {
			continue
		}
		if _, err := bench.LoadDataset(f); err != nil {
			// A dataset with items that cannot be scored (math.json has
			// null reference answers) is refused as a whole, before any
			// model loads, with the file and the item named.
			invalid++
			cfg := filepath.Join(dir, "one.yaml")
			os.WriteFile(cfg, []byte("models: ["+model+"]\nmethods: [single]\ndatasets: ["+f+"]\n"), 0o644)
			_, errs, code := moco(t, "sweep", cfg, "--limit", "3", "-q", "--out", filepath.Join(dir, "one.jsonl"))
			if code != 1 || !strings.Contains(errs, f) || !strings.Contains(errs, "item") {
				t.Errorf("%s: exit %d, %q", f, code, errs)
			}
			t.Logf("refused %s", errs)
			continue
		}
		ds = append(ds, f)
	}
	if len(ds)+invalid < 30 {
		t.Fatalf("%d MoCo datasets in %s", len(ds)+invalid, data)
	}
	cfg := filepath.Join(dir, "all.yaml")
	y := "models: [" + model + "]\nmethods: [single]\ndatasets:\n"
	for _, f := range ds {
		y += "  - " + f + "\n"
	}
	y += "generation: {max_tokens: 4}\ncode_timeout: 20s\ntiming: false\n"
	os.WriteFile(cfg, []byte(y), 0o644)
	out := filepath.Join(dir, "r.jsonl")
	stdout, errs, code := moco(t, "sweep", cfg, "--limit", "3", "-q", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, _ := os.ReadFile(out)
	per := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct{ Dataset, Metric string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		per[r.Dataset]++
	}
	for _, f := range ds {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		refused := strings.Contains(stdout, "refused "+name+" ")
		switch {
		case per[name] == 3 && !refused:
		case per[name] == 0 && refused:
			if !strings.Contains(stdout, "judge") && !strings.Contains(stdout, "python3") {
				t.Errorf("%s refused without a reason: %s", name, stdout)
			}
		default:
			t.Errorf("%s: %d lines, refused %v", name, per[name], refused)
		}
		if name == "coconot" && !refused {
			t.Errorf("coconot (noncompliance) was scored without a judge or noncompliance_keywords")
		}
	}
	t.Logf("%s", stdout)
}

// TestSweepExampleConfig: the shipped example configs are valid (their
// models and datasets are the shared ones), and the full one lists every
// registered method but those that cannot run on the skills pool.
func TestSweepExampleConfig(t *testing.T) {
	testutil.Shared(t, "models/skills-lora-add")
	for _, f := range []string{"skills-sweep.yaml", "skills-sweep-small.yaml"} {
		if _, _, err := bench.LoadSweepConfig(filepath.Join(testutil.RepoRoot(), "examples", f)); err != nil {
			t.Fatal(err)
		}
	}
	c, _, _ := bench.LoadSweepConfig(filepath.Join(testutil.RepoRoot(), "examples", "skills-sweep.yaml"))
	listed := map[string]bool{}
	for _, m := range c.Methods {
		listed[m.Name] = true
	}
	// passthrough copies one model (the single rows already). Training-level
	// methods (they fine-tune pool models on dev) are not in the table yet:
	// they landed after its run and cost far more than one sitting allows.
	cannot := map[string]string{"passthrough": "one model unchanged: the single rows"}
	for _, s := range collab.Specs() {
		if s.Level == collab.LevelTraining {
			continue
		}
		if !listed[s.Name] && cannot[s.Name] == "" && !strings.HasPrefix(s.Name, "test-") {
			t.Errorf("examples/skills-sweep.yaml lacks method %s", s.Name)
		}
	}
}

// TestEvalChoiceScoringLoglik: moco eval's log-likelihood mode answers a
// hand-made multiple-choice item without generating, under one model or a
// logit-level method, and refuses what it cannot score (a text-level
// method, an exact-match set) as a usage error.
func TestEvalChoiceScoringLoglik(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	dir := t.TempDir()
	mc := filepath.Join(dir, "mc.json")
	os.WriteFile(mc, []byte(`{"dataset": "mc", "task_type": "multiple_choice", "dev": [], "test": [
		{"id": "1", "question": "12+30=", "choices": {"A": "42", "B": "zebra"}, "answer": "A"}]}`), 0o644)
	l, err := collab.LoadLocal(add, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := l.LogLikelihood(context.Background(), "Question: 12+30=\nAnswer:", " 42")
	z, _, _ := l.LogLikelihood(context.Background(), "Question: 12+30=\nAnswer:", " zebra")
	l.Close()
	want := map[bool]string{true: "A", false: "B"}[a >= z]
	for _, args := range [][]string{{"-m", add}, {"-m", add, "-m", add, "--method", "fusion"}} {
		out, errs, code := moco(t, append([]string{"eval", "--dataset", mc, "--choice-scoring", "loglik", "--json", "-q"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errs)
		}
		var r struct {
			Items []struct{ Pred, Generation string }
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Items) != 1 {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		if r.Items[0].Pred != want || (want == "A") != (r.Items[0].Generation == "42") {
			t.Errorf("%v: %+v, want %s (log-likelihoods %v, %v)", args, r.Items[0], want, a, z)
		}
	}
	// The sweep's choice_scoring: loglik gives the same answer, and refuses
	// a generate-only method.
	cfg := filepath.Join(dir, "s.yaml")
	os.WriteFile(cfg, []byte("models: ["+add+"]\nmethods: [single]\ndatasets: [{path: "+mc+", choice_scoring: loglik}]\ntiming: false\n"), 0o644)
	if _, errs, code := moco(t, "sweep", cfg, "-q", "--out", filepath.Join(dir, "r.jsonl")); code != 0 {
		t.Fatalf("sweep: exit %d %s", code, errs)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "r.jsonl"))
	var line bench.ResultLine
	if err := json.Unmarshal(b, &line); err != nil || line.Extracted != want || !strings.Contains(line.Note, "log-likelihood A ") {
		t.Errorf("sweep line %+v %v", line, err)
	}
	os.WriteFile(cfg, []byte("models: ["+add+", "+rev+"]\nmethods: [majority-vote]\ndatasets: [{path: "+mc+", choice_scoring: loglik}]\n"), 0o644)
	if _, errs, code := moco(t, "sweep", cfg, "-q", "--out", filepath.Join(dir, "r2.jsonl")); code == 0 || !strings.Contains(errs, "likelihood") {
		t.Errorf("sweep of majority vote in loglik mode: exit %d %s", code, errs)
	}
	for _, c := range [][]string{
		{"eval", "-m", add, "-m", rev, "--method", "debate", "--dataset", mc, "--choice-scoring", "loglik", "-q"},
		{"eval", "-m", add, "--dataset", testutil.Shared(t, "datasets/skills_add.json"), "--choice-scoring", "loglik", "-q"},
		{"eval", "-m", add, "--dataset", mc, "--choice-scoring", "letters", "-q"},
	} {
		if _, errs, code := moco(t, c...); code != 2 {
			t.Errorf("%v: exit %d, %s", c, code, errs)
		}
	}
}

// TestSweepFixedConfigRuns: a sweep refused after its checks began (a
// fusion of models with different vocabularies) writes no results, and the
// corrected config then runs into the same results file, which a stale
// meta file used to block as "made with a different configuration"; once
// results exist, a changed config is refused.
func TestSweepFixedConfigRuns(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	eric := testutil.Shared(t, "models/eric260K")
	ds := testutil.Shared(t, "datasets/skills_add.json")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s.yaml")
	write := func(second string) {
		os.WriteFile(cfg, []byte(fmt.Sprintf("models:\n  - {name: add, path: %q}\n  - {name: other, path: %q}\nmethods:\n  - single\n  - {name: fusion, models: [add, other]}\ndatasets:\n  - {path: %q, prompt: raw}\ngeneration: {max_tokens: 8}\n", add, second, ds)), 0o644)
	}
	out := filepath.Join(dir, "r.jsonl")
	write(eric)
	if _, errs, code := moco(t, "sweep", cfg, "--limit", "2", "-q", "--out", out); code == 0 || !strings.Contains(errs, "do not share a vocabulary") {
		t.Fatalf("fusion across vocabularies: exit %d, %q", code, errs)
	}
	write(rev)
	if _, errs, code := moco(t, "sweep", cfg, "--limit", "2", "-q", "--out", out); code != 0 {
		t.Fatalf("the corrected config: exit %d, %q", code, errs)
	}
	if lines, err := bench.ReadResults(out); err != nil || len(lines) != 6 {
		t.Fatalf("%d result lines (%v), want 6: two single models and fusion, two items each", len(lines), err)
	}
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "max_tokens: 8", "max_tokens: 9", 1)), 0o644)
	if _, errs, code := moco(t, "sweep", cfg, "--limit", "2", "-q", "--out", out); code == 0 || !strings.Contains(errs, "different configuration") {
		t.Errorf("a changed config over existing results: exit %d, %q", code, errs)
	}
}

// TestSweepEndpoint: a sweep's model may be an OpenAI-compatible endpoint
// (a moco server here serving skills-add): its single row scores what the
// same folder scores, item by item, and it joins a text-level method.
func TestSweepEndpoint(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	ds := testutil.Shared(t, "datasets/skills_add.json")
	url := serveFolder(t, "add", add)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`models:
  - {name: radd, url: %q, model: add}
  - {name: add, path: %q}
  - {name: rev, path: %q}
methods:
  - single
  - {name: majority-vote, models: [radd, rev]}
datasets:
  - {path: %q, prompt: raw}
generation: {max_tokens: 8}
`, url+"/v1", add, rev, ds)), 0o644)
	out := filepath.Join(dir, "r.jsonl")
	if _, errs, code := moco(t, "sweep", cfg, "--limit", "6", "-q", "--out", out); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines, err := bench.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]map[string]string{}
	for _, l := range lines {
		if by[l.Method] == nil {
			by[l.Method] = map[string]string{}
		}
		by[l.Method][l.ID] = l.Output
	}
	if len(by["radd"]) != 6 || len(by["majority-vote"]) != 6 {
		t.Fatalf("rows %v", by)
	}
	for id, want := range by["add"] {
		if by["radd"][id] != want {
			t.Errorf("item %s: the endpoint wrote %q, the folder %q", id, by["radd"][id], want)
		}
	}
}

// TestSweepReportChartError: a chart that cannot be drawn (a hand-edited
// score too large for a plot's sums) is an error after the table is
// printed and written, not instead of it.
func TestSweepReportChartError(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "r.jsonl")
	lines := `{"method":"a","name":"single","level":"single","dataset":"d","id":"1","score":1e308}
{"method":"a","name":"single","level":"single","dataset":"d","id":"2","score":1e308}
`
	if err := os.WriteFile(res, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	stdout, errs, code := runCLI("sweep", "report", res, "--out-dir", out)
	if code == 0 || !strings.Contains(errs, "charts:") || !strings.Contains(stdout, "| single | a |") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "table.md")); err != nil {
		t.Error(err)
	}
}

// TestSweepMergeUnchecked: a results file whose completeness cannot be
// checked (no .meta.json, or an older moco's without shard and item
// counts) is refused by name, as a missing shard is, unless --partial,
// which merges it with a warning naming it.
func TestSweepMergeUnchecked(t *testing.T) {
	dir := t.TempDir()
	line := func(id string) string {
		return `{"method":"m","name":"single","level":"single","dataset":"d","split":"test","id":"` + id + `","score":1}` + "\n"
	}
	old := filepath.Join(dir, "old-shard.jsonl")
	bare := filepath.Join(dir, "elsewhere.jsonl")
	for _, f := range []struct{ path, body string }{
		{old, line("1")},
		{old + ".meta.json", `{"config_hash": "h", "config": "sweep.yaml"}`},
		{bare, line("2")},
	} {
		if err := os.WriteFile(f.path, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "merged.jsonl")
	for _, in := range []string{old, bare} {
		_, errs, code := runCLI("sweep", "merge", "--out", out, in)
		if code != 1 || !strings.Contains(errs, "completeness cannot be checked") || !strings.Contains(errs, in) || !strings.Contains(errs, "--partial") {
			t.Errorf("merge of %s: exit %d, stderr %q", filepath.Base(in), code, errs)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("a refused merge of %s wrote %s", filepath.Base(in), out)
		}
	}
	stdout, errs, code := runCLI("sweep", "merge", "--partial", "--out", out, old, bare)
	if code != 0 || !strings.Contains(errs, "warning") || !strings.Contains(errs, old) || !strings.Contains(errs, bare) || !strings.Contains(stdout, "2 items from 2 files") {
		t.Errorf("--partial: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
}
