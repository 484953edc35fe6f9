package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// MappingOf returns the path that /proc/self/maps gives the mapping holding
// p: a file for memory mapped from one, "" for anonymous (private) memory.
// It skips the test where /proc/self/maps cannot be read.
func MappingOf(t testing.TB, p unsafe.Pointer) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	addr := uint64(uintptr(p))
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err != nil || addr < lo || addr >= hi {
			continue
		}
		if f := strings.Fields(line); len(f) >= 6 {
			return f[5]
		}
		return ""
	}
	t.Fatalf("%#x lies in no mapping", addr)
	return ""
}

// ResidentKB returns the resident memory, in KiB, of the mapping holding p,
// from /proc/self/smaps. It skips the test where that cannot be read.
func ResidentKB(t testing.TB, p unsafe.Pointer) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	addr := uint64(uintptr(p))
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && strings.Contains(line, "-") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			in = addr >= lo && addr < hi
			continue
		}
		var kb int
		if in {
			if _, err := fmt.Sscanf(line, "Rss: %d kB", &kb); err == nil {
				return kb
			}
		}
	}
	t.Fatalf("%#x lies in no mapping", addr)
	return 0
}
