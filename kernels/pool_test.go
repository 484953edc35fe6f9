package kernels

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// poolWorkers counts the pool's worker goroutines: those parallel
// created, whether running its worker loop or not yet started. A
// goroutine not yet started shows only its wrapper in a stack dump, not
// (*workerPool).run, so counting that frame missed workers just started
// and let the count read 2 and then 1 (a CI run, under -race).
func poolWorkers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("created by github.com/mocolab/moco/kernels.parallel "))
}

// TestSetThreadsStopsWorkers lowers the thread count and raises it again
// at once, while the workers are parked, and checks that the pool ends
// with as many workers as the count asks for: a worker told to stop must
// stop even if the count is raised before it wakes.
func TestSetThreadsStopsWorkers(t *testing.T) {
	defer SetThreads(0)
	call := func() { parallel(64, 1<<20, 1, func(lo, hi int) {}) }
	for r := 0; r < 20; r++ {
		SetThreads(3)
		call()
		time.Sleep(2 * time.Millisecond) // the workers park
		SetThreads(1)
		SetThreads(3)
		call()
	}
	deadline := time.Now().Add(2 * time.Second)
	for poolWorkers() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := poolWorkers(); n != 2 {
		t.Fatalf("%d workers running at 3 threads, want 2", n)
	}
	SetThreads(1)
	deadline = time.Now().Add(2 * time.Second)
	for poolWorkers() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := poolWorkers(); n != 0 {
		t.Fatalf("%d workers running at 1 thread, want 0", n)
	}
}

// BenchmarkParallelCall measures a parallel call's own cost at two
// threads: a job of two units that do nothing, one for the caller and one
// for the worker.
func BenchmarkParallelCall(b *testing.B) {
	SetThreads(2)
	defer SetThreads(0)
	var sink [2]int
	for b.Loop() {
		parallel(2, minParallelWork, 1, func(lo, hi int) { sink[lo]++ })
	}
}
