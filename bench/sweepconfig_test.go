package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mocolab/moco/collab" // the registry's methods
)

func TestParseSweepConfig(t *testing.T) {
	ok := "models: [a/m1, a/m2]\nmethods: [single, fusion]\ndatasets: [d.json]\n"
	c, err := ParseSweepConfig([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.Models[0].Name != "m1" || c.Datasets[0].Split != "test" || c.Methods[1].Label != "fusion" {
		t.Errorf("defaults: %+v", c)
	}
	js := `{"models": [{"name": "x", "path": "p"}], "methods": [{"name": "single"}], "datasets": [{"path": "d.json", "split": "dev", "limit": 5}], "seed": 3}`
	if c, err := ParseSweepConfig([]byte(js)); err != nil || c.Seed != 3 || c.Datasets[0].Limit != 5 {
		t.Errorf("JSON config: %+v, %v", c, err)
	}
	bad := []struct{ name, cfg, want string }{
		{"empty", "", "empty"},
		{"unknown top field", ok + "modle: x\n", `line 4: unknown field "modle"`},
		{"unknown generation field", ok + "generation: {max_tokns: 3}\n", `line 4: unknown field "max_tokns"`},
		// Strict decoding goes on past an unknown key and names every
		// problem, in order.
		{"unknown field and wrong type", ok + "modle: x\nseed: many\n", "line 4: unknown field \"modle\"; line 5: cannot unmarshal a string `many` here"},
		{"unknown dataset field", "models: [m]\nmethods: [single]\ndatasets: [{path: d, splitt: dev}]\n", `"splitt"`},
		{"unknown method field", "models: [m]\nmethods: [{name: single, parms: {}}]\ndatasets: [d]\n", `"parms"`},
		{"unknown model field", "models: [{name: a, pth: m}]\nmethods: [single]\ndatasets: [d]\n", `"pth"`},
		{"no models", "methods: [single]\ndatasets: [d]\n", "models"},
		{"no methods", "models: [m]\ndatasets: [d]\n", "methods"},
		{"no datasets", "models: [m]\nmethods: [single]\n", "datasets"},
		{"unknown method", "models: [m]\nmethods: [fussion]\ndatasets: [d]\n", `methods[0].name: unknown method "fussion"`},
		{"bad split", "models: [m]\nmethods: [single]\ndatasets: [{path: d, split: tset}]\n", "datasets[0].split"},
		{"bad limit", "models: [m]\nmethods: [single]\ndatasets: [{path: d, limit: -1}]\n", "datasets[0].limit"},
		// yaml alone truncates these to 2 and 64 without a word.
		{"fractional limit", "models: [m]\nmethods: [single]\ndatasets:\n  - {path: d, limit: 2.5}\n", "line 4: limit: 2.5 is not an integer"},
		{"fractional max_tokens", "models: [m]\nmethods: [single]\ndatasets: [d]\ngeneration: {max_tokens: 64.9}\n", "max_tokens: 64.9 is not an integer"},
		{"seed with an exponent", `{"models": ["m"], "methods": ["single"], "datasets": ["d"], "seed": 1e3}`, "seed: 1e3 is not an integer"},
		// Through an alias, which decodes as what it stands for.
		{"fractional limit by alias", "models: [m]\nmethods: [single]\ngeneration: {temperature: &x 2.5}\ndatasets:\n  - {path: d, limit: *x}\n", "line 3: limit: 2.5 is not an integer"},
		{"bad prompt", "models: [m]\nmethods: [single]\ndatasets: [{path: d, prompt: chatty}]\n", "datasets[0].prompt"},
		{"duplicate model", "models: [a/m, b/m]\nmethods: [single]\ndatasets: [d]\n", "models[1].name"},
		{"member not in pool", "models: [m]\nmethods: [{name: fusion, models: [m, q]}]\ndatasets: [d]\n", "methods[0].models[1]"},
		{"pool too small", "models: [m]\nmethods: [nudging]\ndatasets: [d]\n", "methods[0]"},
		{"wrong type", "models: [m]\nmethods: [single]\ndatasets: [d]\nseed: many\n", "line 4"},
		{"bad top_p", "models: [m]\nmethods: [single]\ndatasets: [d]\ngeneration: {top_p: 2}\n", "generation.top_p"},
		{"bad timeout", "models: [m]\nmethods: [single]\ndatasets: [d]\ncode_timeout: soon\n", "code_timeout"},
		{"two documents", ok + "---\n" + ok, "more than one"},
		{"path and url", "models: [{name: a, path: m, url: 'http://h/v1'}]\nmethods: [single]\ndatasets: [d]\n", "models[0]: give a path or a url"},
		{"url scheme", "models: [{name: a, url: 'h:8000/v1'}]\nmethods: [single]\ndatasets: [d]\n", "models[0].url"},
		{"url with base", "models: [{name: a, url: 'http://h/v1', base: b}]\nmethods: [single]\ndatasets: [d]\n", "models[0].base"},
		{"unnamed url", "models: [{url: 'http://h/v1'}]\nmethods: [single]\ndatasets: [d]\n", "needs a name or a model"},
		{"model on a path", "models: [{name: a, path: m, model: x}]\nmethods: [single]\ndatasets: [d]\n", "for a url"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal"},
	}
	if c, err := ParseSweepConfig([]byte("models: [{url: 'https://h/v1', model: gpt, api_key_env: K}, m]\nmethods: [single]\ndatasets: [d]\n")); err != nil || c.Models[0].Name != "gpt" {
		t.Errorf("an endpoint model: %+v, %v", c, err)
	}
	// Hash reads the models as JSON: entries without the endpoint fields
	// must marshal as they did before those fields existed, or every
	// results file made then would be refused as another configuration.
	if b, _ := json.Marshal(ModelEntry{Name: "a", Path: "p"}); string(b) != `{"Name":"a","Path":"p","Base":""}` {
		t.Errorf("a folder entry marshals as %s", b)
	}
	for _, b := range bad {
		_, err := ParseSweepConfig([]byte(b.cfg))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want one containing %q", b.name, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "bench.") {
			t.Errorf("%s: Go type names in %q", b.name, err)
		}
	}
}

func TestLoadSweepConfigFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "m"), 0o755)
	os.WriteFile(filepath.Join(dir, "m", "config.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "good.json"), []byte(`{"dataset": "g", "task_type": "exact_match", "dev": [], "test": [{"id": 1, "input": "x", "output": "y"}]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"dataset": "b", "task_type": "exact_match", "dev": [], "test": [{"id": 1, "input": "x"}]}`), 0o644)
	cases := []struct{ cfg, want string }{
		{"models: [nowhere]\nmethods: [single]\ndatasets: [good.json]\n", "models[0].path"},
		{"models: [m]\nmethods: [single]\ndatasets: [bad.json]\n", "datasets[0].path"},
		{"models: [m]\nmethods: [single]\ndatasets: [missing.json]\n", "datasets[0].path"},
		{"models: [m]\nmethods: [single]\ndatasets: [{path: good.json, split: dev}]\n", "no dev items"},
		{"models: [m]\nmethods: [single]\ndatasets: [good.json, good.json]\n", "listed twice"},
		{"models: [m]\nmethods: [single]\ndatasets: [{path: good.json, choice_scoring: loglik}]\n", "choice_scoring"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "sweep.yaml")
		os.WriteFile(p, []byte(c.cfg), 0o644)
		_, _, err := LoadSweepConfig(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want the file and %q", c.cfg, err, c.want)
		}
	}
	p := filepath.Join(dir, "sweep.yaml")
	os.WriteFile(p, []byte("models: [m]\nmethods: [single]\ndatasets: [good.json]\n"), 0o644)
	c, ds, err := LoadSweepConfig(p)
	if err != nil || len(ds) != 1 || c.Models[0].Path != filepath.Join(dir, "m") || c.Datasets[0].Name != "good" {
		t.Errorf("relative paths: %+v %v", c, err)
	}
}

func FuzzParseSweepConfig(f *testing.F) {
	f.Add("models: [a/m1, a/m2]\nmethods: [single, fusion]\ndatasets: [d.json]\n")
	f.Add(`{"models": [{"name": "x", "path": "p"}], "methods": [{"name": "single", "params": {"a": [1, 2]}}], "datasets": [{"path": "d", "limit": 5}]}`)
	f.Add("models: [m]\nmethods: [{name: fusion, models: [m], params: {mode: prob-mean}}]\ndatasets: [{path: d, split: dev, stop: [\"\\n\"]}]\ngeneration: {max_tokens: 3}\n")
	f.Add("models: &a [m]\nmethods: *a\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseSweepConfig([]byte(s))
		if err != nil {
			return
		}
		// A config that parses is complete and consistent.
		if len(c.Models) == 0 || len(c.Methods) == 0 || len(c.Datasets) == 0 {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
		for _, d := range c.Datasets {
			if d.Path == "" || (d.Split != "dev" && d.Split != "test") || d.Limit < 0 {
				t.Fatalf("accepted dataset %+v", d)
			}
		}
		_ = c.Hash()
		_ = expandMethods(c)
	})
}

func TestShardOfCoversAll(t *testing.T) {
	counts := make([]int, 4)
	for i := 0; i < 400; i++ {
		s := ShardOf("fusion", "skills_mix", string(rune('a'+i%26))+string(rune('0'+i/26)), 4)
		counts[s]++
	}
	for i, c := range counts {
		if c < 60 {
			t.Errorf("shard %d has %d of 400 items", i, c)
		}
	}
	for _, s := range []string{"1", "4/4", "-1/2", "a/b", "0/0"} {
		if _, _, err := ParseShard(s); err == nil {
			t.Errorf("ParseShard(%q) accepted", s)
		}
	}
	if i, n, err := ParseShard("3/4"); err != nil || i != 3 || n != 4 {
		t.Errorf("ParseShard(3/4) = %d %d %v", i, n, err)
	}
}
