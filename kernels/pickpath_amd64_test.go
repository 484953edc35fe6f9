//go:build !purego

package kernels

import (
	"strings"
	"testing"
)

func TestPickPath(t *testing.T) {
	all := []string{"avx512+amx", "avx512", "avx2"}
	for _, c := range []struct {
		env   string
		paths []string
		want  string
		note  string // a substring of the note; "" wants none
	}{
		{"", all, "avx512+amx", ""},
		{"", nil, "purego", ""},
		{"avx2", all, "avx2", "forced by MOCO_KERNELS=avx2"},
		{"avx512", all, "avx512", "forced"},
		{"purego", all, "purego", "forced"},
		{"purego", nil, "purego", "forced"},
		{"avx512", []string{"avx2"}, "avx2", "MOCO_KERNELS=avx512 ignored: this CPU runs avx2, purego"},
		{"neon", all, "avx512+amx", "ignored"},
	} {
		got, note := pickPath(c.env, c.paths)
		if got != c.want || (c.note == "") != (note == "") || !strings.Contains(note, c.note) {
			t.Errorf("pickPath(%q, %v) = %q, %q; want %q and a note with %q", c.env, c.paths, got, note, c.want, c.note)
		}
	}
}
