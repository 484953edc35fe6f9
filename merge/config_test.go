package merge

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`
models:
  - model: a
    parameters:
      weight: 0.5
      density: [1, 0.7, 0.1]
  - model: b
    parameters:
      weight: 0.3
merge_method: ties
base_model: base
parameters:
  normalize: true
  lambda:
    - filter: self_attn
      value: [0, 1]
    - value: 0.5
dtype: bfloat16
tokenizer_source: base
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != "ties" || c.BaseModel != "base" || len(c.Models) != 2 || c.DType != "bfloat16" {
		t.Fatalf("%+v", c)
	}
	if !reflect.DeepEqual(c.Models[0].Parameters["density"].Values, []float64{1, 0.7, 0.1}) {
		t.Errorf("density %v", c.Models[0].Parameters["density"])
	}
	if c.Parameters["normalize"].Values[0] != 1 {
		t.Errorf("normalize %v", c.Parameters["normalize"])
	}
	tp := c.Parameters["lambda"]
	if len(tp.Filters) != 2 || tp.Filters[0].Filter != "self_attn" || tp.Filters[1].Values[0] != 0.5 {
		t.Errorf("t %+v", tp)
	}
	for _, bad := range []string{
		"models: [{model: a}]",
		"merge_method: linear",
		"merge_method: linear\nmodels: [{model: a, parameters: {weight: x}}]",
		"merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 2]}]}]\nmodels: [{model: a}]",
		"merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [2, 1]}]}]",
		"merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [0]}]}]",
		"merge_method: passthrough\nslices: [{sources: []}]",
		"",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ParseDType("int4"); err == nil || !strings.Contains(err.Error(), "int4") {
		t.Error("dtype error")
	}
}

// TestParseConfigStrict: mistyped keys and parameters a method does not
// read are refused with the key and its line.
func TestParseConfigStrict(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"merge_method: ties\nbase_modle: b\nmodels: [{model: a}]", "line 2: unknown field \"base_modle\""},
		{"merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      weight: 1\n      densty: 0.5\n", `line 7: parameter "densty" is not read by ties`},
		{"merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    paramters: {weight: 1}\n", "line 5: unknown field \"paramters\""},
		{"merge_method: slerp\nbase_model: b\nparameters:\n  t: 0.5\n  weight: 1\nmodels: [{model: a}]", `line 5: parameter "weight" is not read by slerp`},
		{"merge_method: slerp\nbase_model: b\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n        parameters: {tt: 1}\n", `line 7: parameter "tt" is not read by slerp`},
		{"merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_rnage: [0, 2]\n", "line 5: unknown field \"layer_rnage\""},
		{"merge_method: ties\nmodels: [{model: a}]\nmodels: [{model: b}]", "already defined"},
		{"merge_method: arcee_fusion\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1}\n", `line 5: parameter "weight" is not read by arcee_fusion (it reads none)`},
		{"merge_method: ramplus_tl\nbase_model: b\nmodels: [{model: a}]\nparameters: {r: 0.2, lambda: 1}\n", `line 4: parameter "lambda" is not read by ramplus_tl (its parameters: alpha, epsilon, r)`},
		{"merge_method: ram\nbase_model: b\nmodels: [{model: a}]\nparameters: {alpha: 0.5}\n", `line 4: parameter "alpha" is not read by ram (its parameters: epsilon)`},
		// yaml would truncate these to [0, 2] and 2 without a word.
		{"merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2.5]\n", "line 5: layer_range: 2.5 is not an integer"},
		{"merge_method: passthrough\nr: &r [0, 2.5]\n", "unknown field"},
		{"merge_method: ties\nbase_model: b\nmodels: [{model: a}]\ntokenizer: {pad_to_multiple_of: 2.5}\n", "line 4: pad_to_multiple_of: 2.5 is not an integer"},
	} {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "merge.") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%q: Go type names or several lines in %q", c.yaml, err)
		}
	}
}

// FuzzParseConfig: any input gives a Config or an error, never a panic, and
// an accepted Config names a method and models or slices.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1, density: [0.2, 0.8]}\n"))
	f.Add([]byte("merge_method: slerp\nbase_model: a\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n      - model: b\n        layer_range: [0, 2]\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 1]\n    - value: 0.5\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.Method == "" || (len(c.Models) == 0) == (len(c.Slices) == 0) {
			t.Fatalf("accepted %q as %+v", data, c)
		}
	})
}
