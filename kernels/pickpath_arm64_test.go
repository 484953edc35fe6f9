//go:build !purego

package kernels

import (
	"strings"
	"testing"
)

func TestPickPath(t *testing.T) {
	for _, c := range []struct {
		env  string
		want string
		note string // a substring of the note; "" wants none
	}{
		{"", "neon", ""},
		{"neon", "neon", "forced by MOCO_KERNELS=neon"},
		{"purego", "purego", "forced"},
		{"avx2", "neon", "MOCO_KERNELS=avx2 ignored: this CPU runs neon, purego"},
	} {
		got, note := pickPath(c.env, simdPaths())
		if got != c.want || (c.note == "") != (note == "") || !strings.Contains(note, c.note) {
			t.Errorf("pickPath(%q) = %q, %q; want %q and a note with %q", c.env, got, note, c.want, c.note)
		}
	}
}
