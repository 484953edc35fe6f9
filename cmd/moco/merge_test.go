package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = runMain(args, nil, &out, &errb)
	return out.String(), errb.String(), code
}

// TestMergeCLI merges the skills fine-tunes by flags and by YAML and checks
// one merged value against the inputs.
func TestMergeCLI(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	tmp := t.TempDir()
	out := filepath.Join(tmp, "lin")
	_, errs, code := runCLI("merge", "-q", "--method", "linear", "-m", m("skills-add"), "-m", m("skills-rev"),
		"--weight", "1", "--weight", "3", "--out-dtype", "bfloat16", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "peak RSS") {
		t.Errorf("no peak RSS on stderr: %q", errs)
	}
	get := func(dir string) []float32 {
		src, err := safetensors.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		x, _ := src.Tensor("model.norm.weight")
		v, err := safetensors.ToF32(x)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), v...)
	}
	a, r, got := get(m("skills-add")), get(m("skills-rev")), get(out)
	for i := range got {
		want := safetensors.BF16ToF32(safetensors.F32ToBF16((a[i] + 3*r[i]) / 4))
		if got[i] != want {
			t.Fatalf("norm[%d] = %v, want %v", i, got[i], want)
		}
	}
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}

	cfg := filepath.Join(tmp, "ties.yaml")
	os.WriteFile(cfg, []byte(`
models:
  - model: `+m("skills-add")+`
    parameters: {weight: 1, density: 0.5}
  - model: `+m("skills-sort")+`
    parameters: {weight: 1, density: [0.2, 0.8]}
merge_method: ties
base_model: `+m("skills-base")+`
dtype: float32
`), 0o644)
	if _, errs, code := runCLI("merge", "-q", cfg, filepath.Join(tmp, "ties")); code != 0 {
		t.Fatalf("yaml: exit %d: %s", code, errs)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", "--method", "ties", "-m", m("skills-add"), "--out", filepath.Join(tmp, "x")}, "needs a base model"},
		{[]string{"merge", "--method", "ties", "--base", m("skills-base"), "-m", m("skills-add"), "--param", "densty=0.5", "--out", filepath.Join(tmp, "x")}, "--param densty: not read by ties"},
		{[]string{"merge", "--method", "linear", "-m", m("skills-add"), "-m", m("skills-small"), "--out", filepath.Join(tmp, "x")}, "tensor lm_head.weight: shape"},
		{[]string{"merge", "--method", "linear", "-m", m("skills-add"), "-m", m("stories260K"), "--out", filepath.Join(tmp, "x")}, "vocabularies differ: "},
		{[]string{"merge", "--method", "linear", "-m", m("stories260K"), "-m", m("eric260K"), "--out", filepath.Join(tmp, "x")}, "(--allow-vocab-mismatch merges anyway"},
		{[]string{"merge", "--method", "linear", "-m", m("skills-add"), "--weight", "1", "--weight", "2", "--out", filepath.Join(tmp, "x")}, "2 values of --weight for 1 models"},
	} {
		_, errs, code := runCLI(c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args[1:4], code, errs, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "x")); err == nil {
		t.Error("a failed merge left its output folder")
	}

	// A slices config (passthrough) reports the models its slices take.
	pcfg := filepath.Join(tmp, "pass.yaml")
	os.WriteFile(pcfg, []byte("slices:\n  - sources: [{model: "+m("skills-add")+", layer_range: [0, 2]}]\n  - sources: [{model: "+m("skills-rev")+", layer_range: [2, 4]}]\nmerge_method: passthrough\n"), 0o644)
	out2, errs, code := runCLI("merge", "-q", "--json", pcfg, filepath.Join(tmp, "pass"))
	if code != 0 || !strings.Contains(errs, "merged 2 model(s)") || !strings.Contains(out2, "skills-rev") {
		t.Errorf("passthrough: exit %d, stdout %q, stderr %q; want 2 models named", code, out2, errs)
	}

	// With the flag, two models of one shape and different vocabularies
	// merge: the mean of the inputs, the first model's tokenizer.
	mixed := filepath.Join(tmp, "mixed")
	if _, errs, code := runCLI("merge", "-q", "--method", "linear", "-m", m("stories260K"), "-m", m("eric260K"), "--allow-vocab-mismatch", "--out", mixed); code != 0 {
		t.Fatalf("--allow-vocab-mismatch: exit %d: %s", code, errs)
	}
	s, e, got := get(m("stories260K")), get(m("eric260K")), get(mixed)
	for i := range got {
		if want := (s[i] + e[i]) / 2; got[i] != want {
			t.Fatalf("mixed norm[%d] = %v, want %v", i, got[i], want)
		}
	}
	want, _ := os.ReadFile(filepath.Join(m("stories260K"), "tokenizer.json"))
	if b, _ := os.ReadFile(filepath.Join(mixed, "tokenizer.json")); !bytes.Equal(b, want) {
		t.Error("the merge with --allow-vocab-mismatch did not take the first model's tokenizer")
	}
}

func TestEvalAndSearchCLI(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	out, errs, code := runCLI("eval", "--model", filepath.Join(models, "skills-rev"), "--dataset", filepath.Join(data, "skills_rev.json"), "--n", "10")
	if code != 0 || !strings.Contains(out, "accuracy 1.000 (10/10)") {
		t.Fatalf("eval: exit %d, %q %q", code, out, errs)
	}
	out, errs, code = runCLI("search", "greedy-soup", "-m", filepath.Join(models, "skills-add"), "-m", filepath.Join(models, "skills-rev"),
		"--dataset", filepath.Join(data, "skills_rev.json"), "--dev-samples", "5")
	if code != 0 || !strings.Contains(out, "greedy-soup: dev accuracy") {
		t.Fatalf("search: exit %d, %q %q", code, out, errs)
	}
}

// TestMergeLoRARef: mergekit's MODEL+LORA reference in a config (paths
// relative to the config's folder) merges the adapter into its model
// first: the result equals a linear merge of the model with the adapter
// merged by 'moco merge --method lora' and the other model, tensor by
// tensor.
func TestMergeLoRARef(t *testing.T) {
	models := testutil.Shared(t, "models")
	tmp := t.TempDir()
	applied := filepath.Join(tmp, "applied")
	if _, errs, code := runCLI("merge", "-q", "--method", "lora", "--base", filepath.Join(models, "skills-base"), "-m", filepath.Join(models, "skills-lora-add"), "--out", applied); code != 0 {
		t.Fatalf("lora: %s", errs)
	}
	rel, err := filepath.Rel(tmp, models)
	if err != nil {
		t.Fatal(err)
	}
	// merged merges skills-rev (weight 3) with first (weight 1) by a
	// config in tmp and opens the result.
	merged := func(name, first string) safetensors.Source {
		t.Helper()
		cfg, out := filepath.Join(tmp, name+".yaml"), filepath.Join(tmp, name)
		os.WriteFile(cfg, []byte("models:\n  - model: "+first+"\n    parameters: {weight: 1}\n  - model: "+filepath.Join(rel, "skills-rev")+"\n    parameters: {weight: 3}\nmerge_method: linear\ndtype: float32\n"), 0o644)
		if _, errs, code := runCLI("merge", "-q", cfg, out); code != 0 {
			t.Fatalf("%s: exit %d, %s", name, code, errs)
		}
		src, err := safetensors.OpenDir(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src
	}
	a := merged("ref", filepath.Join(rel, "skills-base")+"+"+filepath.Join(rel, "skills-lora-add")) // MODEL+LORA
	b := merged("two", "applied")                                                                   // the two-step merge
	p := merged("plain", filepath.Join(rel, "skills-base"))                                         // the model without its adapter
	adapted := 0
	for _, name := range a.Names() {
		x, _ := a.Tensor(name)
		y, ok := b.Tensor(name)
		if !ok || !bytes.Equal(x.Data, y.Data) {
			t.Errorf("tensor %s differs between MODEL+LORA and the two-step merge", name)
		}
		if z, _ := p.Tensor(name); !bytes.Equal(x.Data, z.Data) {
			adapted++
		}
	}
	if len(a.Names()) == 0 || adapted == 0 {
		t.Errorf("%d tensors compared, %d changed by the adapter: want some of each", len(a.Names()), adapted)
	}
}

// TestLoRARefOutsideConfigs: MODEL+LORA, which only merge configurations
// read, given to a model flag is refused before any work with a message
// that says where it works and how to merge the adapter in, not left to
// fail as a missing tokenizer.
func TestLoRARefOutsideConfigs(t *testing.T) {
	models := testutil.Shared(t, "models")
	ref := filepath.Join(models, "skills-base") + "+" + filepath.Join(models, "skills-lora-add")
	out := filepath.Join(t.TempDir(), "x")
	for _, args := range [][]string{
		{"generate", "-m", ref, "-p", "hi", "-n", "1"},
		{"eval", "-m", ref, "--dataset", filepath.Join(models, "..", "datasets", "skills_mix.json")},
		{"merge", "--method", "ties", "--base", ref, "-m", filepath.Join(models, "skills-add"), "--out", out},
		{"train", "sft", "-m", ref, "--data", "none.jsonl", "--out", out},
	} {
		_, errs, code := runCLI(args...)
		if code != 2 || !strings.Contains(errs, "MODEL+LORA works in merge configurations only") || !strings.Contains(errs, "--method lora --base "+filepath.Join(models, "skills-base")) {
			t.Errorf("%v: exit %d, %q", args[:2], code, errs)
		}
	}
}

// TestMergeFlagsNotDropped: a flag that the chosen form of merge does not
// read is refused rather than silently dropped, and --method lora honours
// --json and --out-dtype as the other methods do.
func TestMergeFlagsNotDropped(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "lin.yaml")
	os.WriteFile(cfg, []byte("models:\n  - model: "+m("skills-add")+"\n  - model: "+m("skills-rev")+"\nmerge_method: linear\n"), 0o644)
	x := filepath.Join(tmp, "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", "-q", cfg, x, "--weight", "0.3"}, "not both"},
		{[]string{"merge", "-q", cfg, x, "--param", "normalize=false"}, "not both"},
		{[]string{"merge", "-q", cfg, x, "--base", m("skills-base")}, "not both"},
		{[]string{"merge", "-q", "--method", "linear", "-m", m("skills-add"), "-m", m("skills-rev"), "--density", "0.5", "--out", x}, "--density: not read by linear"},
		{[]string{"merge", "-q", "--method", "slerp", "--base", m("skills-base"), "-m", m("skills-rev"), "--weight", "0.3", "--out", x}, "--weight: not read by slerp"},
		{[]string{"merge", "-q", "--method", "arcee_fusion", "--base", m("skills-base"), "-m", m("skills-rev"), "--weight", "0.3", "--out", x}, "--weight: not read by arcee_fusion (it reads none)"},
		{[]string{"merge", "-q", "--method", "lora", "--base", m("skills-base"), "-m", m("skills-lora-add"), "--param", "t=0.3", "--out", x}, "not read"},
	} {
		if _, errs, code := runCLI(c.args...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args[2:], code, errs, c.want)
		}
	}
	if _, err := os.Stat(x); err == nil {
		t.Error("a refused merge wrote its output folder")
	}

	out := filepath.Join(tmp, "lora")
	stdout, errs, code := runCLI("merge", "-q", "--method", "lora", "--base", m("skills-base"), "-m", m("skills-lora-add"), "--out-dtype", "bfloat16", "--json", "--out", out)
	if code != 0 || !strings.Contains(stdout, `"method": "lora"`) || !strings.Contains(stdout, "skills-lora-add") {
		t.Fatalf("lora --json: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	src, err := safetensors.OpenDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if w, _ := src.Tensor("model.layers.0.self_attn.q_proj.weight"); w == nil || w.DType != safetensors.BF16 {
		t.Errorf("lora --out-dtype bfloat16: q_proj is %v, want BF16", w)
	}
}

// TestSearchFlagsOfOtherMethods: a flag that only another search reads is
// refused, not silently dropped.
func TestSearchFlagsOfOtherMethods(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"greedy-soup", "--base", "b"}, "--base is not read by greedy-soup"},
		{[]string{"swarms", "--alpha", "0.5"}, "--alpha is not read by swarms"},
		{[]string{"expo", "--budget", "3"}, "--budget is not read by expo"},
		{[]string{"lorahub", "--iterations", "2"}, "--iterations is not read by lorahub"},
	} {
		args := append([]string{"search"}, c.args...)
		if _, errs, code := runCLI(append(args, "-m", "a", "-m", "b", "--dataset", "d.json")...); code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}
