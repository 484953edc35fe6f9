package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/internal/testutil"
)

func runTokenizeCmd(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestTokenizeEmbedded(t *testing.T) {
	// Ids from ../shared/models/stories260K/reference_greedy.json (an
	// independent implementation): "Once upon a time" is 403 407 261 378.
	out, errs, code := runTokenizeCmd(t, `{"text": "Once upon a time"}`+"\n"+`{"text": ""}`, "tokenize", "--special")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := "{\"ids\":[1,403,407,261,378]}\n{\"ids\":[1]}\n"; out != want {
		t.Errorf("tokenize --special:\n got %q\nwant %q", out, want)
	}
	out, _, _ = runTokenizeCmd(t, `{"text": "Once upon a time"}`, "tokenize")
	if want := "{\"ids\":[403,407,261,378]}\n"; out != want {
		t.Errorf("tokenize: got %q, want %q", out, want)
	}
}

func TestDetokenizeEmbedded(t *testing.T) {
	in := `{"ids": [1, 403, 407, 261, 378]}`
	out, errs, code := runTokenizeCmd(t, in, "detokenize")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := "{\"text\":\"<s> Once upon a time\"}\n"; out != want {
		t.Errorf("detokenize: got %q, want %q", out, want)
	}
	out, _, _ = runTokenizeCmd(t, in, "detokenize", "--skip-special")
	if want := "{\"text\":\"Once upon a time\"}\n"; out != want {
		t.Errorf("detokenize --skip-special: got %q, want %q", out, want)
	}
}

// A folder with only the tokenizer files works as --model.
func TestTokenizeTokenizerOnlyFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), stories260k.Tokenizer, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runTokenizeCmd(t, `{"text": "Once upon a time"}`, "tokenize", "--model", dir, "--special")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Without tokenizer_config.json the post-processor still adds <s>.
	if want := "{\"ids\":[1,403,407,261,378]}\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestTokenizeSharedFixture(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/tokenizers/qwen3")
	out, errs, code := runTokenizeCmd(t, `{"text": "<|im_start|>user\n"}`, "tokenize", "--model", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := "{\"ids\":[151644,872,198]}\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	out, _, _ = runTokenizeCmd(t, `{"ids":[151644,872,198]}`, "detokenize", "--model", dir, "--skip-special")
	if want := "{\"text\":\"user\\n\"}\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestTokenizeErrors(t *testing.T) {
	cases := []struct {
		stdin string
		args  []string
		want  string
		code  int
	}{
		{`{"text": 5}`, []string{"tokenize"}, `record 1: want an object with a string "text"`, 1},
		{`{"text": "a"} {`, []string{"tokenize"}, "record 2: invalid JSON", 1},
		{`{"ids": [1, 99999]}`, []string{"detokenize"}, "id 99999 is outside the vocabulary", 1},
		{`{"ids": "x"}`, []string{"detokenize"}, `want an object with an integer list "ids"`, 1},
		{``, []string{"tokenize", "--model", "/nonexistent"}, "no such model folder", 1},
		{``, []string{"tokenize", "--bogus"}, "unknown flag", 2},
		{``, []string{"detokenize", "extra"}, `unexpected argument "extra"`, 2},
	}
	for _, c := range cases {
		_, errs, code := runTokenizeCmd(t, c.stdin, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 && code == 1 {
			t.Errorf("%v < %q: exit %d, stderr %q; want exit %d and %q", c.args, c.stdin, code, errs, c.code, c.want)
		}
	}
}
