package main

import (
	"context"
	"go/ast"
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

// TestExamplesArePublic: the example programs and the packages' Example
// functions (go doc shows their bodies) import no internal/ package and
// are in external _test packages, so a user can copy them outside this
// module.
func TestExamplesArePublic(t *testing.T) {
	progs, _ := filepath.Glob("../*/*.go")
	if len(progs) < 2 {
		t.Fatalf("found %d example files", len(progs))
	}
	tests, _ := filepath.Glob("../../*/*_test.go")
	for _, f := range append(progs, tests...) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "_test.go") {
			if !hasExample(af) {
				continue
			}
			if !strings.HasSuffix(af.Name.Name, "_test") {
				t.Errorf("%s: Example functions in package %s, not %s_test: their bodies name the package's identifiers unqualified", f, af.Name.Name, af.Name.Name)
			}
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(p, "/internal") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

// hasExample reports whether f declares an Example function.
func hasExample(f *ast.File) bool {
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Example") {
			return true
		}
	}
	return false
}
