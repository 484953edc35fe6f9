package yamlerr

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type intsInner struct {
	N  int     `yaml:"n"`
	F  float64 `yaml:"f"`
	Ns []int   `yaml:"ns"`
}

type intsOuter struct {
	In    intsInner   `yaml:"in"`
	Ins   []intsInner `yaml:"ins"`
	Ptr   *intsInner  `yaml:"ptr"`
	Count uint        `yaml:"count"`
	Name  string      `yaml:"name"`
}

// TestCheckInts: each case decodes without error into intsOuter (yaml
// truncates the fractions), and CheckInts names the line and key of the
// first fraction, or accepts the text.
func TestCheckInts(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"integers", "in: {n: 3, f: 2.5, ns: [1, 2]}\ncount: 4\nname: 2.5\n", ""},
		{"fraction", "in: {n: 3.5}\n", "line 1: n: 3.5 is not an integer"},
		{"exponent", "count: 1e3\n", "line 1: count: 1e3 is not an integer"},
		{"in a list", "in: {ns: [1, 2.5]}\n", "line 1: ns: 2.5 is not an integer"},
		{"in a list of structs", "ins:\n  - {n: 1}\n  - {n: 2.5}\n", "line 3: n: 2.5 is not an integer"},
		{"through a pointer", "ptr: {n: 0.5}\n", "line 1: n: 0.5 is not an integer"},
		{"float field", "in: {f: 0.5}\nptr: {f: 1e-3}\n", ""},
		{"alias", "in: {f: &x 2.5}\nptr: {n: *x}\n", "line 1: n: 2.5 is not an integer"},
		{"alias of a mapping", "in: &m {n: 2.5}\nptr: *m\n", "line 1: n: 2.5 is not an integer"},
		{"merge key", "in: &m {n: 7.5}\nptr: {<<: *m, f: 1}\n", "line 1: n: 7.5 is not an integer"},
		{"merge key list", "in: &a {f: 1}\nins: [&b {n: 1.5}]\nptr: {<<: [*a, *b]}\n", "line 2: n: 1.5 is not an integer"},
		{"merge key, integers", "in: &m {n: 7}\nptr: {<<: *m, f: 1.5}\n", ""},
	} {
		var v intsOuter
		if err := yaml.Unmarshal([]byte(c.text), &v); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(c.text), &doc); err != nil {
			t.Fatal(err)
		}
		err := CheckInts(&doc, v)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
