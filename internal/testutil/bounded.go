package testutil

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// Bounded runs fn, a parser fed hostile input, under a soft memory limit and
// fails the test if it allocates more than maxBytes in all (a bound on its
// peak use) or runs longer than maxTime. It returns fn's error, which a
// hostile input must produce. The race detector slows code about tenfold,
// so maxTime is stretched under it.
func Bounded(t testing.TB, maxBytes uint64, maxTime time.Duration, fn func() error) error {
	t.Helper()
	if RaceEnabled {
		maxTime *= 10
	}
	runtime.GC()
	old := debug.SetMemoryLimit(int64(maxBytes) + 64<<20)
	defer debug.SetMemoryLimit(old)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(maxTime):
		t.Fatalf("still running after %v (limit)", maxTime)
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxBytes {
		t.Errorf("allocated %d MB in all, limit %d MB", alloc>>20, maxBytes>>20)
	}
	t.Logf("took %v, allocated %d KB", took.Round(time.Millisecond), (after.TotalAlloc-before.TotalAlloc)>>10)
	return err
}
