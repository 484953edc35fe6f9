package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/serve"
)

// TestEvalMethods: several -m need a --method from the registry; the JSON
// has lowercase keys for every metric and records model, method, metric,
// seed and settings.
func TestEvalMethods(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	ds := testutil.Shared(t, "datasets/skills_mix.json")

	_, errs, code := moco(t, "eval", "-m", add, "-m", rev, "--dataset", ds)
	if code != 2 || !strings.Contains(errs, "--method") || !strings.Contains(errs, "fusion") {
		t.Errorf("two -m without --method: exit %d, %q", code, errs)
	}
	_, errs, code = moco(t, "eval", "-m", add, "-m", rev, "--method", "fussion", "--dataset", ds)
	if code != 2 || !strings.Contains(errs, `unknown --method "fussion"`) {
		t.Errorf("unknown method: exit %d, %q", code, errs)
	}
	_, errs, code = moco(t, "eval", "-m", add, "-m", rev, "--method", "fusion", "--param", "wieghts=[1,2]", "--dataset", ds, "--n", "2", "-q")
	if code != 2 || !strings.Contains(errs, "wieghts") {
		t.Errorf("misspelt parameter: exit %d, %q", code, errs)
	}

	// fusion of one model is that model: the same generations.
	run := func(args ...string) map[string]any {
		t.Helper()
		out, errs, code := moco(t, append([]string{"eval", "--dataset", ds, "--n", "6", "--seed", "4", "--max-new", "12", "--json", "-q"}, args...)...)
		var r map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%v: exit %d, %q, %q", args, code, out, errs)
		}
		return r
	}
	single := run("-m", add)
	fused := run("-m", add, "--method", "fusion")
	if single["method"] != "single" || fused["method"] != "fusion" || single["seed"] != 4.0 || single["metric"] != "accuracy" || single["model"] != add {
		t.Errorf("records: single %v %v %v, fusion %v", single["method"], single["seed"], single["metric"], fused["method"])
	}
	if single["accuracy"] != fused["accuracy"] || single["n"] != 6.0 {
		t.Errorf("fusion of one model: accuracy %v vs single %v", fused["accuracy"], single["accuracy"])
	}
	for _, k := range []string{"model", "models", "method", "dataset", "split", "metric", "seed", "n", "settings", "accuracy", "correct", "items"} {
		if _, ok := single[k]; !ok {
			t.Errorf("accuracy JSON lacks %q: %v", k, single)
		}
	}
	items := single["items"].([]any)
	for _, k := range []string{"id", "prompt", "generation", "pred", "ref", "correct"} {
		if _, ok := items[0].(map[string]any)[k]; !ok {
			t.Errorf("item JSON lacks %q: %v", k, items[0])
		}
	}
	pair := run("-m", add, "-m", rev, "--method", "fusion", "--param", "mode=prob-mean")
	if p := pair["settings"].(map[string]any)["params"].(map[string]any); p["mode"] != "prob-mean" || len(pair["models"].([]any)) != 2 {
		t.Errorf("pool JSON: %v", pair)
	}

	nll := run("-m", add, "--metric", "nll")
	if v, ok := nll["mean_nll"].(float64); !ok || v <= 0 || nll["metric"] != "nll" || nll["n"] != 6.0 {
		t.Errorf("--metric nll --json: %v", nll)
	}
	out, _, code := moco(t, "eval", "-m", add, "--dataset", ds, "--n", "6", "--seed", "4", "--metric", "nll", "-q")
	if code != 0 || !strings.Contains(out, "mean NLL") {
		t.Errorf("nll text: %q", out)
	}
	// --metric nll with a method that combines distributions: contrastive
	// at alpha 0 is its first model alone and fusion of a model with itself
	// is that model, so both must give bench's single-model NLL (another
	// implementation); at alpha 0.2 the contrast changes it. Methods that
	// decide token by token are refused with the reason.
	v := nll["mean_nll"].(float64)
	for _, args := range [][]string{
		{"-m", add, "-m", rev, "--method", "contrastive", "--param", "alpha=0"},
		{"-m", add, "-m", add, "--method", "fusion"},
	} {
		r := run(append(args, "--metric", "nll")...)
		if w, ok := r["mean_nll"].(float64); !ok || math.Abs(w-v) > 1e-4 || r["n"] != 6.0 {
			t.Errorf("%v --metric nll: %v, single %v", args, r["mean_nll"], v)
		}
	}
	if r := run("-m", add, "-m", rev, "--method", "contrastive", "--metric", "nll"); math.Abs(r["mean_nll"].(float64)-v) < 1e-3 {
		t.Errorf("contrastive at alpha 0.2 scores like add alone: %v", r["mean_nll"])
	}
	if _, errs, code := moco(t, "eval", "-m", add, "-m", rev, "--method", "nudging", "--dataset", ds, "--n", "2", "--metric", "nll", "-q"); code != 2 || !strings.Contains(errs, "no distribution over given tokens") {
		t.Errorf("nudging --metric nll: exit %d, %s", code, errs)
	}
}

// TestEvalLogitBatch: with --batch, fusion, contrastive and nudging decode
// the items together in one lockstep batch; every item's generation must
// be the one --batch 1 gives (the items one at a time, so no item shares a
// step with another). collab's TestLogitMethodsBatchedEqualSequential
// compares the batch with the sequential loop over sessions.
func TestEvalLogitBatch(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	gens := func(args ...string) []string {
		t.Helper()
		out, errs, code := moco(t, append([]string{"eval", "-m", add, "-m", rev, "--dataset", ds, "--n", "8", "--seed", "3", "--max-new", "10", "--json", "-q"}, args...)...)
		var r struct {
			Items []struct{ Generation string }
		}
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || len(r.Items) != 8 {
			t.Fatalf("%v: exit %d, %q, %q", args, code, out, errs)
		}
		var g []string
		for _, it := range r.Items {
			g = append(g, it.Generation)
		}
		return g
	}
	for _, m := range [][]string{
		{"--method", "fusion"},
		{"--method", "contrastive", "--param", "alpha=0.5"},
		{"--method", "nudging"},
	} {
		one := gens(append(m, "--batch", "1")...)
		many := gens(append(m, "--batch", "8")...)
		if strings.Join(one, "") == "" {
			t.Errorf("%v: every generation is empty", m)
		}
		for i := range one {
			if one[i] != many[i] {
				t.Errorf("%v item %d: --batch 8 %q, --batch 1 %q", m, i, many[i], one[i])
			}
		}
	}
}

// TestEvalOtherTaskTypes: eval scores any task type by its scorer, as a
// sweep does: an F1 set whose gold answers are alias lists (three
// additions of skills_add's test split, which skills-add answers right,
// 912, 489 and 1205, against ["nine hundred twelve", "912"], ["489"] and
// ["one thousand two hundred five"]: F1 1, 1 and 0), MoCo's prompts with --prompt moco, and a reward-model set asks
// for a judge. NLL on alias lists fails with the reason, for one model and
// for a method (the error was dropped, and "mean NLL 0.0000 (0 items)"
// printed with exit 0).
func TestEvalOtherTaskTypes(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	dir := t.TempDir()
	ds := filepath.Join(dir, "aliases.json")
	os.WriteFile(ds, []byte(`{"dataset": "aliases", "task_type": "f1_match", "dev": [],
		"test": [{"id": 1, "input": "Q: 289+623=\nA:", "output": "[\"nine hundred twelve\", \"912\"]"}, {"id": 2, "input": "Q: 338+151=\nA:", "output": "[\"489\"]"},
		{"id": 3, "input": "Q: 807+398=\nA:", "output": "[\"one thousand two hundred five\"]"}]}`), 0o644)
	out, errs, code := moco(t, "eval", "-m", add, "--dataset", ds, "--first", "--max-tokens", "8", "--stop", "\\n", "--json", "-q")
	var r struct {
		Metric string
		Score  *float64
		N      int
		Items  []struct {
			Generation string
			Score      float64
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("f1_match: exit %d, %q, %v", code, errs, err)
	}
	if r.Metric != "f1" || r.Score == nil || math.Abs(*r.Score-2.0/3) > 1e-12 || r.N != 3 {
		t.Errorf("f1_match: %+v, want f1 2/3 over 3 items", r)
	}
	out, _, _ = moco(t, "eval", "-m", add, "--dataset", ds, "--n", "1", "--max-tokens", "2", "--prompt", "moco", "--json", "-q")
	if !strings.Contains(out, `wrapped exactly as \\box{ANSWER}`) {
		t.Errorf("--prompt moco: no box instruction in %q", out)
	}
	rm := filepath.Join(dir, "rm.json")
	os.WriteFile(rm, []byte(`{"dataset": "rm", "task_type": "reward_model", "dev": [], "test": [{"id": 1, "input": "Say hi"}]}`), 0o644)
	if _, errs, code := moco(t, "eval", "-m", add, "--dataset", rm, "-q"); code != 2 || !strings.Contains(errs, "--judge DIR") {
		t.Errorf("reward_model without a judge: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{{"-m", add}, {"-m", add, "-m", rev, "--method", "fusion"}} {
		out, errs, code := moco(t, append([]string{"eval", "--dataset", ds, "--metric", "nll", "-q"}, args...)...)
		if code != 1 || !strings.Contains(errs, "not one text to score") || out != "" {
			t.Errorf("nll %v on alias lists: exit %d, stdout %q, stderr %q", args[1:], code, out, errs)
		}
	}
}

// TestEvalEndpoint: an OpenAI-compatible endpoint (a moco server here) is
// evaluated like a model folder: at temperature 0 its generations, item
// by item, are those of the same model loaded in this process; endpoints
// join text-level methods; logit-level scoring refuses them.
func TestEvalEndpoint(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	ds := testutil.Shared(t, "datasets/skills_add.json")
	ep := serveFolder(t, "add", add) + "/v1#add"
	type result struct {
		Accuracy *float64
		Items    []struct{ ID, Generation string }
	}
	run := func(args ...string) result {
		t.Helper()
		out, errs, code := moco(t, append([]string{"eval", "--dataset", ds, "--n", "12", "--max-tokens", "8", "--json", "-q"}, args...)...)
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
			t.Fatalf("%v: exit %d, %q, %v", args, code, errs, err)
		}
		return r
	}
	local, remote := run("-m", add), run("-m", ep)
	if len(remote.Items) != 12 || *remote.Accuracy != *local.Accuracy {
		t.Fatalf("endpoint accuracy %v over %d items, the folder's %v", *remote.Accuracy, len(remote.Items), *local.Accuracy)
	}
	for i := range local.Items {
		if local.Items[i] != remote.Items[i] {
			t.Errorf("item %d: endpoint %+v, folder %+v", i, remote.Items[i], local.Items[i])
		}
	}
	if r := run("-m", ep, "-m", add, "--method", "majority-vote"); len(r.Items) != 12 {
		t.Errorf("majority vote over an endpoint and a folder: %d items", len(r.Items))
	}
	if _, errs, code := moco(t, "eval", "-m", ep, "--dataset", ds, "--metric", "nll"); code != 2 || !strings.Contains(errs, "an endpoint does not give") {
		t.Errorf("nll over an endpoint: exit %d, %q", code, errs)
	}
}

// serveFolder serves the model folder dir under id with a moco server for
// the test's length and returns its base URL.
func serveFolder(t *testing.T, id, dir string) string {
	t.Helper()
	c, err := serve.ParseConfig([]byte(fmt.Sprintf("models: [{id: %s, path: %q}]", id, dir)), "")
	if err != nil {
		t.Fatal(err)
	}
	s, closeAll, err := serve.Build(context.Background(), c, serve.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		closeAll()
	})
	return srv.URL
}
