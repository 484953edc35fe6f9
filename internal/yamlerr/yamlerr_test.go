package yamlerr

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Path string `yaml:"path"`
	N    int    `yaml:"n"`
}

type outer struct {
	Models []inner `yaml:"models"`
	Seed   int     `yaml:"seed"`
}

// TestClean decodes bad documents strictly and checks the messages by
// hand: the key or line named, no Go type names, one line.
func TestClean(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"models: [{pth: x}]", `line 1: unknown field "pth"`},
		{"seed: many", "line 1: cannot unmarshal a string `many` here"},
		{"models: {path: x}", "line 1: cannot unmarshal a mapping here"},
		{"models: [{n: [1]}]\nseed: x", "line 1: cannot unmarshal a list here; line 2: cannot unmarshal a string `x` here"},
	} {
		var v outer
		dec := yaml.NewDecoder(strings.NewReader(tc.doc))
		dec.KnownFields(true)
		got := Clean(dec.Decode(&v))
		if got == nil || got.Error() != tc.want {
			t.Errorf("%q: %v, want %q", tc.doc, got, tc.want)
		}
	}
	if Clean(nil) != nil {
		t.Error("Clean(nil) is not nil")
	}
}
