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
  t:
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
	tp := c.Parameters["t"]
	if len(tp.Filters) != 2 || tp.Filters[0].Filter != "self_attn" || tp.Filters[1].Values[0] != 0.5 {
		t.Errorf("t %+v", tp)
	}
	for _, bad := range []string{
		"models: [{model: a}]",
		"merge_method: linear",
		"merge_method: linear\nmodels: [{model: a, parameters: {weight: x}}]",
		"merge_method: linear\nslices: []\nmodels: [{model: a}]",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ParseDType("int4"); err == nil || !strings.Contains(err.Error(), "int4") {
		t.Error("dtype error")
	}
}
