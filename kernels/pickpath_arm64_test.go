//go:build !purego

package kernels

import (
	"strings"
	"testing"
)

func TestPickPath(t *testing.T) {
	all := []string{"neon+dotprod", "neon"}
	for _, c := range []struct {
		env   string
		paths []string
		want  string
		note  string // a substring of the note; "" wants none
	}{
		{"", all, "neon+dotprod", ""},
		{"", []string{"neon"}, "neon", ""},
		{"neon", all, "neon", "forced by MOCO_KERNELS=neon"},
		{"purego", all, "purego", "forced"},
		{"neon+dotprod", []string{"neon"}, "neon", "MOCO_KERNELS=neon+dotprod ignored: this CPU runs neon, purego"},
		{"avx2", all, "neon+dotprod", "MOCO_KERNELS=avx2 ignored: this CPU runs neon+dotprod, neon, purego"},
	} {
		got, note := pickPath(c.env, c.paths)
		if got != c.want || (c.note == "") != (note == "") || !strings.Contains(note, c.note) {
			t.Errorf("pickPath(%q, %v) = %q, %q; want %q and a note with %q", c.env, c.paths, got, note, c.want, c.note)
		}
	}
}
