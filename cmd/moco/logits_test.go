package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestLogitsFixture runs moco logits on an architecture fixture and
// compares the file with llama.cpp's logits.
func TestLogitsFixture(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/arch/qwen2")
	out := filepath.Join(t.TempDir(), "logits.f32")
	var so, se bytes.Buffer
	if code := runMain([]string{"logits", "--model", dir, "--ids-file", filepath.Join(dir, "tokens.json"), "--out", out}, nil, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "logits.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("wrote %d bytes, reference has %d", len(got), len(want))
	}
	for i := 0; i < len(got); i += 4 {
		g := math.Float32frombits(binary.LittleEndian.Uint32(got[i:]))
		w := math.Float32frombits(binary.LittleEndian.Uint32(want[i:]))
		if math.Abs(float64(g-w)) > 1e-3 {
			t.Fatalf("value %d: %g, reference %g", i/4, g, w)
		}
	}
}

// TestLogitsDefaultModel: without --model, logits come from the embedded
// model, the same weights as ../shared/models/stories260K.
func TestLogitsDefaultModel(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	tmp := t.TempDir()
	ids := filepath.Join(tmp, "ids.json")
	os.WriteFile(ids, []byte(`[1, 403, 407, 261]`), 0o644)
	var files [2][]byte
	for i, args := range [][]string{{}, {"--model", dir}} {
		out := filepath.Join(tmp, "out.f32")
		var so, se bytes.Buffer
		if code := runMain(append([]string{"logits", "--ids-file", ids, "--out", out}, args...), nil, &so, &se); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, se.String())
		}
		files[i], _ = os.ReadFile(out)
	}
	if len(files[0]) != 4*4*512 || !bytes.Equal(files[0], files[1]) {
		t.Errorf("the default model wrote %d bytes, stories260K %d, or they differ", len(files[0]), len(files[1]))
	}
}

func TestLogitsErrors(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/arch/llama")
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.json")
	os.WriteFile(bad, []byte(`{"text": "hi"}`), 0o644)
	big := filepath.Join(tmp, "big.json")
	os.WriteFile(big, []byte(`[1, 99999]`), 0o644)
	out := filepath.Join(tmp, "out.f32")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", dir, "--ids-file", bad}, "--out is required"},
		{[]string{"--model", dir, "--out", out}, "--ids-file is required"},
		{[]string{"--model", dir, "--ids-file", bad, "--out", out}, "want a JSON list"},
		{[]string{"--model", dir, "--ids-file", big, "--out", out}, "outside the vocabulary"},
	} {
		var so, se bytes.Buffer
		code := runMain(append([]string{"logits"}, tc.args...), nil, &so, &se)
		if code == 0 || !strings.Contains(se.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, se.String(), tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed run left %s behind", out)
	}
}
