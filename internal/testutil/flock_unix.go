//go:build unix

package testutil

import (
	"os"
	"syscall"
	"testing"
)

// HoldLock takes an exclusive flock on path (created if need be) until
// the test ends or it calls the unlock returned, as another process
// writing a sweep's results would hold it; it skips the test where the
// file system has no locks.
func HoldLock(t testing.TB, path string) (unlock func()) {
	t.Helper()
	l, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := syscall.Flock(int(l.Fd()), syscall.LOCK_EX); err != nil {
		t.Skip("no flock here:", err)
	}
	return func() { syscall.Flock(int(l.Fd()), syscall.LOCK_UN) }
}
