package merge

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// The tests in this file check the methods added from mergekit (nuslerp,
// multislerp, karcher, sce, passthrough, slices:) on the skills models
// against float64 re-implementations written here from the formulas in
// mergekit's merge_methods/*.py and plan.py, on a few tensors each.
// mergekit_ref_test.go checks the methods' arithmetic against mergekit's
// own code instead.

func skills(t *testing.T) func(string) Input {
	t.Helper()
	dir := testutil.Shared(t, "models")
	return func(name string) Input {
		in, err := OpenModel(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Src.Close() })
		return in
	}
}

func f64(t *testing.T, in Input, name string) []float64 {
	t.Helper()
	x := values(t, in.Src, name)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// checkTensor compares a merged tensor with a float64 reference.
func checkTensor(t *testing.T, what string, src safetensors.Source, name string, want []float64) {
	t.Helper()
	got := values(t, src, name)
	if len(got) != len(want) {
		t.Fatalf("%s %s: %d values, want %d", what, name, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-6+1e-5*math.Abs(want[i]) {
			t.Fatalf("%s %s[%d] = %v, want %v", what, name, i, got[i], want[i])
		}
	}
}

var probes = []string{"model.layers.1.self_attn.q_proj.weight", "model.layers.3.mlp.down_proj.weight", "model.norm.weight", "model.embed_tokens.weight"}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func sub(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// refNuslerp is mergekit's nuslerp() on two flat vectors.
func refNuslerp(t float64, v0, v1 []float64) []float64 {
	n0, n1 := math.Max(math.Sqrt(dot(v0, v0)), 1e-7), math.Max(math.Sqrt(dot(v1, v1)), 1e-7)
	cos := math.Max(-1, math.Min(1, dot(v0, v1)/(n0*n1)))
	th := math.Acos(cos)
	out := make([]float64, len(v0))
	for i := range out {
		if math.Abs(math.Sin(th)) < 1e-8 {
			out[i] = (1-t)*v0[i] + t*v1[i]
		} else {
			out[i] = (math.Sin((1-t)*th)*v0[i] + math.Sin(t*th)*v1[i]) / math.Sin(th)
		}
	}
	return out
}

func TestNuSlerpSkills(t *testing.T) {
	m := skills(t)
	base, add, rev := m("skills-base"), m("skills-add"), m("skills-rev")
	add.Params = Params{"weight": Scalar(1)}
	rev.Params = Params{"weight": Scalar(3)} // t = 3/4
	for _, c := range []struct {
		name    string
		base    bool
		rowWise bool
		flatten bool
	}{{"flat", false, false, true}, {"flat with base", true, false, true}, {"rows", false, false, false}, {"columns with base", true, true, false}} {
		s := &Spec{Method: "nuslerp", Models: []Input{add, rev}, OutDType: safetensors.F32,
			Params: Params{"nuslerp_row_wise": Scalar(b2f(c.rowWise)), "nuslerp_flatten": Scalar(b2f(c.flatten))}}
		if c.base {
			s.Base = &base
		}
		out, err := s.MergeToMemory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range probes {
			a, r := f64(t, add, name), f64(t, rev, name)
			var b []float64
			if c.base {
				b = f64(t, base, name)
				a, r = sub(a, b), sub(r, b)
			}
			tn, _ := add.Src.Tensor(name)
			shape := tn.Shape
			want := make([]float64, len(a))
			rows, cols := 1, len(a)
			if !c.flatten && len(shape) == 2 {
				rows, cols = shape[0], shape[1]
			}
			if c.rowWise && !c.flatten && len(shape) == 2 {
				// vectors along dimension 0: the columns
				for j := 0; j < cols; j++ {
					va, vr := make([]float64, rows), make([]float64, rows)
					for i := 0; i < rows; i++ {
						va[i], vr[i] = a[i*cols+j], r[i*cols+j]
					}
					res := refNuslerp(0.75, va, vr)
					for i := 0; i < rows; i++ {
						want[i*cols+j] = res[i]
					}
				}
			} else {
				for i := 0; i < rows; i++ {
					copy(want[i*cols:], refNuslerp(0.75, a[i*cols:(i+1)*cols], r[i*cols:(i+1)*cols]))
				}
			}
			if c.base {
				for i := range want {
					want[i] += b[i]
				}
			}
			checkTensor(t, "nuslerp "+c.name, out, name, want)
		}
	}
	if _, err := (&Spec{Method: "nuslerp", Models: []Input{add, m("skills-sort")}}).MergeToMemory(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "weight") {
		t.Errorf("nuslerp without weights: %v", err)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// refMultislerp is mergekit's multislerp() with normalized weights.
func refMultislerp(xs [][]float64, w []float64, base []float64) []float64 {
	const eps = 1e-8
	n := len(xs[0])
	ts := make([][]float64, len(xs))
	for i, x := range xs {
		ts[i] = append([]float64(nil), x...)
		if base != nil {
			ts[i] = sub(x, base)
		}
	}
	var ws float64
	for _, v := range w {
		ws += v
	}
	nw := make([]float64, len(w))
	for i := range w {
		nw[i] = w[i] / ws
	}
	norms := make([]float64, len(ts))
	units := make([][]float64, len(ts))
	for i, x := range ts {
		norms[i] = math.Sqrt(dot(x, x))
		units[i] = make([]float64, n)
		for j := range x {
			units[i][j] = x[j] / (norms[i] + eps)
		}
	}
	mean := make([]float64, n)
	for i := range units {
		for j := range mean {
			mean[j] += nw[i] * units[i][j]
		}
	}
	mn := math.Sqrt(dot(mean, mean))
	for j := range mean {
		mean[j] /= mn
	}
	tan := make([]float64, n)
	for i := range units {
		d := dot(units[i], mean)
		for j := range tan {
			tan[j] += nw[i] * (units[i][j] - d*mean[j])
		}
	}
	tn := math.Sqrt(dot(tan, tan)) + eps
	var avg float64
	for i := range norms {
		avg += norms[i] * nw[i]
	}
	out := make([]float64, n)
	for j := range out {
		out[j] = (mean[j]*math.Cos(tn) + tan[j]*math.Sin(tn)/tn) * avg
		if base != nil {
			out[j] += base[j]
		}
	}
	return out
}

func TestMultiSlerpSkills(t *testing.T) {
	m := skills(t)
	base := m("skills-base")
	ins := []Input{m("skills-add"), m("skills-rev"), m("skills-sort")}
	w := []float64{1, 2, 0.5}
	for i := range ins {
		ins[i].Params = Params{"weight": Scalar(w[i])}
	}
	for _, withBase := range []bool{false, true} {
		s := &Spec{Method: "multislerp", Models: ins, OutDType: safetensors.F32}
		if withBase {
			s.Base = &base
		}
		out, err := s.MergeToMemory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range probes {
			var xs [][]float64
			for _, in := range ins {
				xs = append(xs, f64(t, in, name))
			}
			var b []float64
			if withBase {
				b = f64(t, base, name)
			}
			checkTensor(t, "multislerp", out, name, refMultislerp(xs, w, b))
		}
	}
}

// refKarcher is mergekit's karcher_merge_tensors() with equal weights.
func refKarcher(xs [][]float64, maxIter int, tol float64) []float64 {
	n := len(xs[0])
	alphas := 1 / float64(len(xs))
	var norms []float64
	var units [][]float64
	for _, x := range xs {
		nm := math.Sqrt(dot(x, x))
		norms = append(norms, nm)
		u := make([]float64, n)
		for j := range x {
			u[j] = x[j] / nm
		}
		units = append(units, u)
	}
	u := make([]float64, n)
	for _, ui := range units {
		for j := range u {
			u[j] += ui[j] / float64(len(units))
		}
	}
	nu := math.Sqrt(dot(u, u))
	for j := range u {
		u[j] /= nu
	}
	for it := 0; it < maxIter; it++ {
		T := make([]float64, n)
		for _, ui := range units {
			d := math.Max(-1, math.Min(1, dot(u, ui)))
			th := math.Acos(d)
			if th < tol {
				continue
			}
			for j := range T {
				T[j] += th / math.Sin(th) * (ui[j] - d*u[j]) / float64(len(units))
			}
		}
		nT := math.Sqrt(dot(T, T))
		if nT < tol {
			break
		}
		for j := range u {
			u[j] = math.Cos(nT)*u[j] + math.Sin(nT)*T[j]/nT
		}
		nu := math.Sqrt(dot(u, u))
		for j := range u {
			u[j] /= nu
		}
	}
	var s float64
	for _, nm := range norms {
		s += alphas * nm
	}
	for j := range u {
		u[j] *= s
	}
	return u
}

func TestKarcherSkills(t *testing.T) {
	m := skills(t)
	base := m("skills-base")
	ins := []Input{m("skills-add"), m("skills-rev"), m("skills-sort")}
	// mergekit's Karcher mean takes the base as one more model.
	s := &Spec{Method: "karcher", Base: &base, Models: ins, OutDType: safetensors.F32, Params: Params{"max_iter": Scalar(20), "tol": Scalar(1e-7)}}
	out, err := s.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range probes {
		xs := [][]float64{f64(t, base, name)}
		for _, in := range ins {
			xs = append(xs, f64(t, in, name))
		}
		checkTensor(t, "karcher", out, name, refKarcher(xs, 20, 1e-7))
	}
}

// refSCE is mergekit's sce_merge().
func refSCE(base []float64, xs [][]float64, topk float64) []float64 {
	n := len(base)
	tvs := make([][]float64, len(xs))
	for i, x := range xs {
		tvs[i] = sub(x, base)
	}
	if topk < 1 {
		type kv struct {
			v float64
			j int
		}
		var vars []kv
		nonzero := 0
		for j := 0; j < n; j++ {
			var m float64
			for _, tv := range tvs {
				m += tv[j]
			}
			m /= float64(len(tvs))
			var v float64
			for _, tv := range tvs {
				v += (tv[j] - m) * (tv[j] - m)
			}
			v /= float64(len(tvs))
			if v != 0 {
				nonzero++
			}
			vars = append(vars, kv{v, j})
		}
		sort.SliceStable(vars, func(a, b int) bool { return vars[a].v > vars[b].v })
		keep := make([]bool, n)
		for _, e := range vars[:int(float64(nonzero)*topk)] {
			keep[e.j] = true
		}
		for _, tv := range tvs {
			for j := range tv {
				if !keep[j] {
					tv[j] = 0
				}
			}
		}
	}
	w := make([]float64, len(tvs))
	var ws float64
	for i, tv := range tvs {
		w[i] = dot(tv, tv) / float64(n)
		ws += w[i]
	}
	for i := range w {
		w[i] /= ws
	}
	out := make([]float64, n)
	for j := range out {
		var e float64
		for _, tv := range tvs {
			e += tv[j]
		}
		sign := 1.0
		if e < 0 {
			sign = -1
		}
		var num, den float64
		for i, tv := range tvs {
			if tv[j] != 0 && math.Signbit(tv[j]) == math.Signbit(sign) {
				num += tv[j] * w[i]
				den += w[i]
			}
		}
		out[j] = base[j] + num/math.Max(den, 1e-6)
	}
	return out
}

func TestSCESkills(t *testing.T) {
	m := skills(t)
	base := m("skills-base")
	ins := []Input{m("skills-add"), m("skills-rev"), m("skills-sort")}
	for _, topk := range []float64{1, 0.3} {
		s := &Spec{Method: "sce", Base: &base, Models: ins, OutDType: safetensors.F32, Params: Params{"select_topk": Scalar(topk)}}
		out, err := s.MergeToMemory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range probes {
			var xs [][]float64
			for _, in := range ins {
				xs = append(xs, f64(t, in, name))
			}
			checkTensor(t, "sce", out, name, refSCE(f64(t, base, name), xs, topk))
		}
	}
}

// TestSlicesSkills runs mergekit's two standard slice configurations on the
// skills models: a passthrough frankenmerge (layers stacked from two
// models, num_hidden_layers following) and a SLERP over layer ranges with
// a per-filter gradient, each tensor checked by hand.
func TestSlicesSkills(t *testing.T) {
	dir := testutil.Shared(t, "models")
	m := skills(t)
	add, rev, base := m("skills-add"), m("skills-rev"), m("skills-base")
	tmp := t.TempDir()
	cfgPath := filepath.Join(tmp, "franken.yaml")
	os.WriteFile(cfgPath, []byte(`
slices:
  - sources:
      - model: `+filepath.Join(dir, "skills-add")+`
        layer_range: [0, 3]
  - sources:
      - model: `+filepath.Join(dir, "skills-rev")+`
        layer_range: [1, 4]
        parameters:
          scale:
            - filter: o_proj
              value: 0.5
            - value: 1
merge_method: passthrough
dtype: float32
`), 0o644)
	b, _ := os.ReadFile(cfgPath)
	cfg, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	spec, fo, err := cfg.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer spec.Close()
	out := filepath.Join(tmp, "franken")
	if err := WriteFolder(context.Background(), spec, out, fo); err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	cb, _ := os.ReadFile(filepath.Join(out, "config.json"))
	json.Unmarshal(cb, &c)
	if c["num_hidden_layers"] != float64(6) {
		t.Errorf("num_hidden_layers %v, want 6", c["num_hidden_layers"])
	}
	res, err := safetensors.OpenDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	// Output layer L is add's layer L for L < 3, then rev's layer L-2.
	for _, c := range []struct {
		out   string
		in    Input
		name  string
		scale float64
	}{
		{"model.layers.0.self_attn.q_proj.weight", add, "model.layers.0.self_attn.q_proj.weight", 1},
		{"model.layers.2.mlp.down_proj.weight", add, "model.layers.2.mlp.down_proj.weight", 1},
		{"model.layers.3.self_attn.q_proj.weight", rev, "model.layers.1.self_attn.q_proj.weight", 1},
		{"model.layers.5.self_attn.o_proj.weight", rev, "model.layers.3.self_attn.o_proj.weight", 0.5},
		{"model.embed_tokens.weight", add, "model.embed_tokens.weight", 1}, // first slice's
		{"lm_head.weight", rev, "lm_head.weight", 1},                       // last slice's
		{"model.norm.weight", rev, "model.norm.weight", 1},
	} {
		want := f64(t, c.in, c.name)
		for i := range want {
			want[i] *= c.scale
		}
		checkTensor(t, "passthrough", res, c.out, want)
	}
	if n := len(res.Names()); n != 2+1+6*9 {
		t.Errorf("%d tensors, want %d", n, 2+1+6*9)
	}

	// SLERP over slices, base add: t follows [0, 1] over each slice's
	// layers for self_attn, 0.5 elsewhere.
	spec = &Spec{Method: "slerp", OutDType: safetensors.F32,
		Params: Params{"t": {Filters: []FilteredParam{{Filter: "self_attn", Values: []float64{0, 1}}, {Values: []float64{0.5}}}}},
		Slices: []Slice{
			{Base: 0, Sources: []SliceSource{{Input: add, From: 0, To: 3}, {Input: rev, From: 0, To: 3}}},
			{Base: 0, Sources: []SliceSource{{Input: add, From: 3, To: 4}, {Input: base, From: 1, To: 2}}},
		}}
	mem, err := spec.MergeToMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	refSlerp := func(t float64, a, b []float64) []float64 {
		na, nb := math.Sqrt(dot(a, a)), math.Sqrt(dot(b, b))
		cos := dot(a, b) / (na * nb)
		out := make([]float64, len(a))
		th := math.Acos(cos)
		for i := range out {
			out[i] = math.Sin((1-t)*th)/math.Sin(th)*a[i] + math.Sin(t*th)/math.Sin(th)*b[i]
		}
		return out
	}
	for _, c := range []struct {
		out       string
		a, b      Input
		an, bn    string
		t         float64
		nearPlain bool
	}{
		{"model.layers.1.self_attn.k_proj.weight", add, rev, "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj.weight", 0.5, false},
		{"model.layers.2.self_attn.k_proj.weight", add, rev, "model.layers.2.self_attn.k_proj.weight", "model.layers.2.self_attn.k_proj.weight", 1, false},
		{"model.layers.2.mlp.up_proj.weight", add, rev, "model.layers.2.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight", 0.5, false},
		// a one-layer slice sits at t = 1 (mergekit's plan_slice)
		{"model.layers.3.self_attn.q_proj.weight", add, base, "model.layers.3.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight", 1, false},
		{"model.layers.0.self_attn.q_proj.weight", add, rev, "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.weight", 0, false},
	} {
		a, b := f64(t, c.a, c.an), f64(t, c.b, c.bn)
		checkTensor(t, "slerp slices", mem, c.out, refSlerp(c.t, a, b))
	}
	if got := len(mem.Names()); got != 2+1+4*9 {
		t.Errorf("%d tensors, want %d", got, 2+1+4*9)
	}
	bad := []Slice{{Base: -1, Sources: []SliceSource{{Input: add, From: 0, To: 3}, {Input: rev, From: 0, To: 2}}}}
	if _, err := (&Spec{Method: "linear", Slices: bad}).MergeToMemory(context.Background()); err == nil {
		t.Error("slices of different lengths: no error")
	}
	bad = []Slice{{Base: -1, Sources: []SliceSource{{Input: add, From: 2, To: 9}}}}
	if _, err := (&Spec{Method: "passthrough", Slices: bad}).MergeToMemory(context.Background()); err == nil {
		t.Error("layer_range past the model: no error")
	}
}

// TestTokenizerSource: base and a model path choose the tokenizer files;
// union is refused.
func TestTokenizerSource(t *testing.T) {
	dir := testutil.Shared(t, "models")
	tmp := t.TempDir()
	run := func(src string) (string, error) {
		y := "models:\n  - model: " + filepath.Join(dir, "skills-add") + "\n  - model: " + filepath.Join(dir, "skills-rev") +
			"\nmerge_method: linear\ndtype: float32\n"
		if src != "" {
			y += "tokenizer_source: " + src + "\n"
		}
		cfg, err := ParseConfig([]byte(y))
		if err != nil {
			return "", err
		}
		spec, fo, err := cfg.Open(tmp)
		if err != nil {
			return "", err
		}
		defer spec.Close()
		return fo.TokenizerDir, nil
	}
	for _, c := range []struct{ src, want string }{
		{"", filepath.Join(dir, "skills-add")},
		{"base", filepath.Join(dir, "skills-add")},
		{filepath.Join(dir, "skills-sort"), filepath.Join(dir, "skills-sort")},
	} {
		got, err := run(c.src)
		if err != nil || got != c.want {
			t.Errorf("tokenizer_source %q: %q, %v; want %q", c.src, got, err, c.want)
		}
	}
	if _, err := run("union"); err == nil || !strings.Contains(err.Error(), "union") {
		t.Errorf("union: %v", err)
	}
	// mergekit's newer tokenizer: section: source as above, union when
	// absent; tokens is not implemented.
	for _, c := range []struct{ section, want, err string }{
		{"tokenizer: {source: " + filepath.Join(dir, "skills-sort") + "}", filepath.Join(dir, "skills-sort"), ""},
		{"tokenizer: {source: base}", filepath.Join(dir, "skills-add"), ""},
		{"tokenizer: {source: union}", "", "tokenizer.source: union is not supported"},
		{"tokenizer: {}", "", "means union in mergekit"},
		{"tokenizer: {source: base, tokens: {x: {source: zero}}}", "", "tokenizer.tokens is not supported"},
		{"tokenizer: {source: base}\ntokenizer_source: base", "", "not both"},
		{"tokenizer: {source: base, pad_to_multiple_of: 64}", "", "pad_to_multiple_of is not supported"},
	} {
		y := "models:\n  - model: " + filepath.Join(dir, "skills-add") + "\n  - model: " + filepath.Join(dir, "skills-rev") +
			"\nmerge_method: linear\n" + c.section + "\n"
		cfg, err := ParseConfig([]byte(y))
		if err != nil {
			t.Fatalf("%s: %v", c.section, err)
		}
		spec, fo, err := cfg.Open(tmp)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.section, err, c.err)
			}
			continue
		}
		if err != nil || fo.TokenizerDir != c.want {
			t.Errorf("%s: %q, %v; want %q", c.section, fo.TokenizerDir, err, c.want)
		}
		spec.Close()
	}
}

// TestMergeCopiesChatTemplates: the output folder gets the tokenizer
// folder's chat templates saved as files (chat_template.jinja and
// additional_chat_templates/), so it chats as its inputs do.
func TestMergeCopiesChatTemplates(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	in := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if err := os.Symlink(filepath.Join(add, f), filepath.Join(in, f)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(in, "chat_template.jinja"), []byte("{{ messages[0].content }}"), 0o644)
	os.MkdirAll(filepath.Join(in, "additional_chat_templates"), 0o755)
	os.WriteFile(filepath.Join(in, "additional_chat_templates", "tool_use.jinja"), []byte("{{ 'tools' }}"), 0o644)
	out := mergeYAML(t, "models:\n  - model: "+in+"\n  - model: "+add+"\nmerge_method: linear\nparameters: {weight: 1}\n")
	for f, want := range map[string]string{"chat_template.jinja": "{{ messages[0].content }}", "additional_chat_templates/tool_use.jinja": "{{ 'tools' }}"} {
		if b, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", f, b, err)
		}
	}
}

// TestChatTemplateConfig: chat_template as mergekit reads it: auto takes
// the template most input folders share (the first of equals, as Python's
// Counter.most_common), none when none has one; text is a template; a
// short name (mergekit's built-ins) is refused. The merged folder then
// chats with it.
func TestChatTemplateConfig(t *testing.T) {
	folder := func(tmpl string) string {
		d := t.TempDir()
		cfg := `{}`
		if tmpl != "" {
			b, _ := json.Marshal(map[string]string{"chat_template": tmpl})
			cfg = string(b)
		}
		os.WriteFile(filepath.Join(d, "tokenizer_config.json"), []byte(cfg), 0o644)
		return d
	}
	const a, b = "{{ 'A' }}{{ messages[0].content }}", "{{ 'B' }}{{ messages[0].content }}"
	for _, tc := range []struct {
		spec  string
		dirs  []string
		want  string
		error string
	}{
		{"auto", []string{folder(a), folder(b), folder(b), folder(a)}, a, ""},
		{"auto", []string{folder(a), folder(b), folder(b)}, b, ""},
		{"auto", []string{folder(""), folder(b)}, b, ""},
		{"auto", []string{folder(""), folder("")}, "", ""},
		{"", []string{folder(a)}, "", ""},
		{"{% for m in messages %}{{ m.content }}{% endfor %}", nil, "{% for m in messages %}{{ m.content }}{% endfor %}", ""},
		{"chatml", nil, "", "mergekit's built-in template names are not bundled"},
	} {
		got, err := chooseChatTemplate(tc.spec, tc.dirs)
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%q: %v, want %q", tc.spec, err, tc.error)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q over %d folders: %q, %v; want %q", tc.spec, len(tc.dirs), got, err, tc.want)
		}
	}

	add := testutil.Shared(t, "models/skills-add")
	out := mergeYAML(t, "models:\n  - model: "+add+"\n  - model: "+add+"\nmerge_method: linear\nparameters: {weight: 1}\nchat_template: \"{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\"\n")
	tok, err := tokenizer.Load(out)
	if err != nil || tok.Chat == nil {
		t.Fatalf("the merged folder's chat template: %v", err)
	}
	if got, err := tok.Chat.RenderJSON([]byte(`[{"role": "user", "content": "hi"}]`), tokenizer.ChatOptions{}); err != nil || got != "<user>hi" {
		t.Errorf("rendered %q, %v; want <user>hi", got, err)
	}
}

// mergeYAML merges a mergekit configuration (absolute paths) into a
// folder of the test's and returns its path.
func mergeYAML(t *testing.T, y string) string {
	t.Helper()
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	spec, fo, err := cfg.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer spec.Close()
	out := filepath.Join(t.TempDir(), "out")
	if err := WriteFolder(context.Background(), spec, out, fo); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRequiredParams: a configuration without a parameter that mergekit
// requires (slerp's and nearswap's t; each model's weight, the base's
// excepted) is an error naming it, as mergekit's "Missing required
// parameter", also where a filtered value leaves some tensors without
// one; a Spec built in Go keeps the defaults. Methods that need a base,
// or one model besides it, say so.
func TestRequiredParams(t *testing.T) {
	dir := testutil.Shared(t, "models")
	base, add, rev := filepath.Join(dir, "skills-base"), filepath.Join(dir, "skills-add"), filepath.Join(dir, "skills-rev")
	for _, c := range []struct{ yaml, want string }{
		{"merge_method: slerp\nbase_model: " + base + "\nmodels: [{model: " + base + "}, {model: " + add + "}]\n", "missing required parameter t"},
		{"merge_method: slerp\nbase_model: " + base + "\nmodels: [{model: " + add + "}]\nparameters: {t: [{filter: self_attn, value: 0.3}]}\n", "missing required parameter t"},
		{"merge_method: ties\nbase_model: " + base + "\nmodels: [{model: " + add + ", parameters: {weight: 1}}, {model: " + rev + "}]\n", "missing required parameter weight for model " + rev},
		{"merge_method: linear\nmodels: [{model: " + add + "}, {model: " + rev + "}]\n", "missing required parameter weight for model " + add},
		{"merge_method: nuslerp\nmodels: [{model: " + add + ", parameters: {weight: 1}}, {model: " + rev + "}]\n", "missing required parameter weight for model " + rev},
		{"merge_method: slerp\nbase_model: " + base + "\nmodels: [{model: " + add + "}]\nparameters: {t: 0.3}\n", ""},
		{"merge_method: slerp\nbase_model: " + base + "\nmodels: [{model: " + add + "}]\nparameters: {t: [{filter: self_attn, value: 0.3}, {value: 0.5}]}\n", ""},
		{"merge_method: ties\nbase_model: " + base + "\nmodels: [{model: " + base + "}, {model: " + add + "}, {model: " + rev + "}]\nparameters: {weight: 0.5}\n", ""},
		{"merge_method: model_stock\nbase_model: " + base + "\nmodels: [{model: " + add + "}, {model: " + rev + "}]\n", ""},
		{"merge_method: nearswap\nbase_model: " + base + "\nmodels: [{model: " + add + "}]\n", "missing required parameter t"},
		{"merge_method: nearswap\nbase_model: " + base + "\nmodels: [{model: " + base + "}, {model: " + add + "}]\nparameters: {t: 0.001}\n", ""},
		{"merge_method: nearswap\nbase_model: " + base + "\nmodels: [{model: " + add + "}, {model: " + rev + "}]\nparameters: {t: 0.001}\n", "nearswap takes exactly 1 model(s) besides the base, got 2"},
		{"merge_method: arcee_fusion\nmodels: [{model: " + add + "}, {model: " + rev + "}]\n", "arcee_fusion needs a base model"},
		{"merge_method: arcee_fusion\nbase_model: " + base + "\nmodels: [{model: " + base + "}, {model: " + add + "}]\n", ""},
		{"merge_method: ram\nmodels: [{model: " + add + "}, {model: " + rev + "}]\n", "ram needs a base model"},
		{"merge_method: ramplus_tl\nbase_model: " + base + "\nmodels: [{model: " + add + "}, {model: " + rev + "}]\nparameters: {r: 0.3, alpha: [0.1, 0.5]}\n", ""},
	} {
		cfg, err := ParseConfig([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		spec, _, err := cfg.Open("")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		_, err = spec.Plan()
		spec.Close()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	in := skills(t)
	b, a := in("skills-base"), in("skills-add")
	if _, err := (&Spec{Method: "slerp", Base: &b, Models: []Input{a}}).Plan(); err != nil {
		t.Errorf("a Spec built in Go without t: %v", err)
	}
}
