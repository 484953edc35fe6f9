package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
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
}
