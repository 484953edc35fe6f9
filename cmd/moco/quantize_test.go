package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestQuantizeCommand(t *testing.T) {
	in := filepath.Join(testutil.Shared(t, "fixtures/arch"), "qwen2")
	out := filepath.Join(t.TempDir(), "q8")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"quantize", in}, 2, "want IN and OUT"},
		{[]string{"quantize", in, out, "--type", "q4_k"}, 2, "want q8_0 or q4_0"},
		{[]string{"quantize", in, out}, 0, "matrices as q8_0"},
		{[]string{"quantize", in, out}, 1, ""},
		{[]string{"quantize", in, out, "--force", "--json"}, 0, `"quantized_tensors"`},
		{[]string{"quantize", in, out + "4", "--type", "q4_0"}, 0, "matrices as q4_0"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(c.args, strings.NewReader(""), &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String()+stderr.String(), c.want) {
			t.Errorf("%v: exit %d (want %d), output %q %q, want %q", c.args, code, c.code, stdout.String(), stderr.String(), c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"bench", "speed", "-m", out, "--prompt-tokens", "4", "--gen-tokens", "2", "--repeats", "1", "--bandwidth", "10"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Errorf("bench speed on the stored model: exit %d: %s", code, stderr.String())
	}
}
