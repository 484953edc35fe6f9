//go:build unix

package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestSweepRefusesASecondWriter: while another process holds a results
// file's lock (a second pod of one Indexed Job index), a sweep into it
// is refused instead of appending the same items again; once the lock is
// free it runs, and removes the lock file when done.
func TestSweepRefusesASecondWriter(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.jsonl")
	unlock := testutil.HoldLock(t, out+".lock")
	_, err := RunSweep(context.Background(), &SweepConfig{}, nil, SweepOptions{Out: out})
	if err == nil || !strings.Contains(err.Error(), "another sweep is writing it") {
		t.Fatalf("sweep into a locked results file: %v", err)
	}
	unlock()
	if _, err := RunSweep(context.Background(), &SweepConfig{}, nil, SweepOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// TestMergeRefusesASecondWriter: a merge into a results file whose lock
// another process holds (a sweep still appending to it, or another merge)
// is refused as a second sweep is, and leaves the file as it was.
func TestMergeRefusesASecondWriter(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "s.jsonl")
	if err := os.WriteFile(in, []byte(`{"method":"m","dataset":"d","split":"test","id":"1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in+".meta.json", []byte(`{"config_hash": "h", "config": "c.yaml", "items": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "r.jsonl")
	const running = `{"method":"m","dataset":"d","split":"test","id":"2"}` + "\n"
	if err := os.WriteFile(out, []byte(running), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock := testutil.HoldLock(t, out+".lock")
	_, err := MergeResults(out, []string{in}, nil)
	if want := out + ": another sweep is writing it (" + out + ".lock is locked)"; err == nil || err.Error() != want {
		t.Fatalf("merge into a locked results file: %v, want %q", err, want)
	}
	if b, _ := os.ReadFile(out); string(b) != running {
		t.Errorf("a refused merge changed the locked file: %q", b)
	}
	unlock()
	if n, err := MergeResults(out, []string{in}, nil); err != nil || n != 1 {
		t.Fatalf("merge once the lock is free: %d lines, %v", n, err)
	}
	if _, err := os.Stat(out + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}
