package testutil

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// legacySSE matches an instruction that is not VEX or EVEX encoded (its
// mnemonic does not start with V) naming an X, Y or Z register, as in
// "MOVD AX, X9".
var legacySSE = regexp.MustCompile(`^\s*([A-UW-Z][A-Z0-9]*)\s+[^/]*\b[XYZ]([0-9]|[12][0-9]|3[01])\b`)

// VEXOnly fails the test for every legacy SSE instruction in the amd64
// assembly files matching glob. Inside AVX code such an instruction is a
// trap: on a Zen 3 one "MOVD AX, X9" in packQ4x8's loop, where the
// registers' upper halves were in use, made the loop 14 times slower
// (the VEX form, VMOVD, costs nothing).
func VEXOnly(t *testing.T, glob string) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no assembly files match %s (%v)", glob, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if m := legacySSE.FindStringSubmatch(code); m != nil {
				t.Errorf("%s:%d: %s is a legacy SSE instruction; use its VEX form (V%s)", f, i+1, strings.TrimSpace(code), m[1])
			}
		}
	}
}
