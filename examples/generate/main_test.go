package main

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mocolab/moco/decode"
)

// TestRun: greedy text of the embedded model, checked against the
// continuation in ../shared/models/stories260K/reference_greedy.json (an
// independent implementation): "..., there was a little girl named Lily.
// She loved to play outside in the park."
func TestRun(t *testing.T) {
	var b strings.Builder
	if err := run(context.Background(), "", "Once upon a time", 30, decode.SamplerConfig{}, &b); err != nil {
		t.Fatal(err)
	}
	want := ", there was a little girl named Lily. She loved to play outside in the park."
	if !strings.HasPrefix(b.String(), want) || !strings.Contains(b.String(), "[30 tokens, mean log-probability -") {
		t.Errorf("got %q, want it to start with %q", b.String(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, "", "Once upon a time", 20, decode.SamplerConfig{}, &b); err == nil {
		t.Error("a cancelled context generated to the end")
	}
}

// TestExamplesArePublic: the examples import no internal/ package, so a
// user can copy them outside this module.
func TestExamplesArePublic(t *testing.T) {
	files, _ := filepath.Glob("../*/*.go")
	if len(files) < 2 {
		t.Fatalf("found %d example files", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(p, "/internal") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
