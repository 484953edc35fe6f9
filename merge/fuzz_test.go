package merge

import (
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// FuzzParseConfig is in config_test.go.

// TestParseConfigHostile: YAML alias bombs and deep nesting end with one
// error within bounded time and memory.
func TestParseConfigHostile(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		prev := "*a" + string(rune('0'+i-1))
		if i > 10 {
			prev = "*a" + string(rune('A'+i-11))
		}
		name := "a" + string(rune('0'+i))
		if i >= 10 {
			name = "a" + string(rune('A'+i-10))
		}
		bomb.WriteString(name + ": &" + name + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	bomb.WriteString("merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: *aB\n")
	for _, tc := range []struct{ name, yaml string }{
		{"alias bomb", bomb.String()},
		{"deep nesting", "merge_method: linear\nmodels: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"},
		{"deep parameters", "merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := testutil.Bounded(t, 256<<20, 10*time.Second, func() error { _, err := ParseConfig([]byte(tc.yaml)); return err })
			if err == nil || len(err.Error()) > 300 {
				t.Fatalf("err = %.400v", err)
			}
			t.Log(err)
		})
	}
}
