//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// interruptingWriter sends this process a SIGINT when the first progress
// update arrives, as a user pressing Ctrl-C during a run.
type interruptingWriter struct {
	once sync.Once
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *interruptingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(string(p), "items") {
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
