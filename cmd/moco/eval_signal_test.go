//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// interruptingWriter sends this process a SIGINT when the first progress
// update arrives (a write that mentions unit, "items" when empty), as a
// user pressing Ctrl-C during a run.
type interruptingWriter struct {
	once sync.Once
	mu   sync.Mutex
	buf  bytes.Buffer
	unit string
}

func (w *interruptingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	unit := w.unit
	if unit == "" {
		unit = "items"
	}
	if strings.Contains(string(p), unit) {
		w.once.Do(func() { syscall.Kill(os.Getpid(), syscall.SIGINT) })
	}
	return w.buf.Write(p)
}

// TestEvalInterrupted: SIGINT stops eval, which still prints the score of
// the items done, marked interrupted, and exits 130.
func TestEvalInterrupted(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	var out bytes.Buffer
	errw := &interruptingWriter{}
	code := runMain([]string{"eval", "-m", add, "--dataset", ds, "--n", "200", "--max-new", "16", "--json"}, nil, &out, errw)
	var r struct {
		N, Total    int
		Interrupted bool
		Accuracy    *float64
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q: %v", code, out.String(), errw.buf.String(), err)
	}
	if code != 130 || !r.Interrupted || r.N < 1 || r.N >= r.Total || r.Total != 200 || r.Accuracy == nil {
		t.Errorf("exit %d, result %+v, stderr %q", code, r, errw.buf.String())
	}
	if !strings.Contains(errw.buf.String(), "interrupted after") {
		t.Errorf("stderr does not say it was interrupted: %q", errw.buf.String())
	}
}

// TestPerplexityInterrupted: SIGINT stops perplexity after the windows
// done, whose score it prints, marked interrupted, before exiting 130.
func TestPerplexityInterrupted(t *testing.T) {
	text := filepath.Join(t.TempDir(), "long.txt")
	readme, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(text, bytes.Repeat(readme, 4), 0o644) // about 200 windows of the embedded model
	var out bytes.Buffer
	errw := &interruptingWriter{unit: "tokens"}
	code := runMain([]string{"perplexity", "-f", text, "--json"}, nil, &out, errw)
	var r struct {
		Tokens      int
		TotalTokens int `json:"total_tokens"`
		Interrupted bool
		Perplexity  float64
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q: %v", code, out.String(), errw.buf.String(), err)
	}
	if code != 130 || !r.Interrupted || r.Tokens < 1 || r.Tokens >= r.TotalTokens || !(r.Perplexity > 1) {
		t.Errorf("exit %d, result %+v, stderr %q", code, r, errw.buf.String())
	}
	if !strings.Contains(errw.buf.String(), "interrupted after") {
		t.Errorf("stderr does not say it was interrupted: %q", errw.buf.String())
	}
}
