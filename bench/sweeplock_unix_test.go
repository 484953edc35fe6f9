//go:build unix

package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSweepRefusesASecondWriter: while another process holds a results
// file's lock (a second pod of one Indexed Job index), a sweep into it
// is refused instead of appending the same items again; once the lock is
// free it runs, and removes the lock file when done.
func TestSweepRefusesASecondWriter(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.jsonl")
	l, err := os.OpenFile(out+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := syscall.Flock(int(l.Fd()), syscall.LOCK_EX); err != nil {
		t.Skip("no flock here:", err)
	}
	_, err = RunSweep(context.Background(), &SweepConfig{}, nil, SweepOptions{Out: out})
	if err == nil || !strings.Contains(err.Error(), "another sweep is writing it") {
		t.Fatalf("sweep into a locked results file: %v", err)
	}
	syscall.Flock(int(l.Fd()), syscall.LOCK_UN)
	if _, err := RunSweep(context.Background(), &SweepConfig{}, nil, SweepOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}
