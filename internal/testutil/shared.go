// Package testutil locates the shared test material that lives beside the
// repository (../shared) and skips tests cleanly when it is absent.
package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// SharedDir returns ../shared beside the repository, or "" if it is absent.
// MOCO_SHARED overrides the location.
func SharedDir() string {
	if d := os.Getenv("MOCO_SHARED"); d != "" {
		return d
	}
	d := filepath.Join(filepath.Dir(RepoRoot()), "shared")
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// Shared returns the path of rel inside the shared folder, skipping the test
// with a clear message when the folder or the file is absent.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	d := SharedDir()
	if d == "" {
		t.Skip("../shared is absent (set MOCO_SHARED to its location): skipping test that needs " + rel)
	}
	p := filepath.Join(d, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared material %s is absent: %v", rel, err)
	}
	return p
}
