package kernels

import (
	"runtime"
	"sync"
)

// The pool is a set of persistent worker goroutines that MatVec and MatMul
// share their rows with. The calling goroutine takes the first share itself,
// so a pool of n threads has n-1 workers. No goroutine is started per call.

type task struct {
	fn     func(lo, hi int)
	lo, hi int
}

type workerPool struct {
	mu      sync.Mutex // held for one parallel call; guards the fields below
	threads int
	work    []chan task // one per worker
	wg      sync.WaitGroup
}

var pool = &workerPool{threads: runtime.GOMAXPROCS(0)}

// SetThreads sets the number of threads MatVec and MatMul use (n <= 0 means
// GOMAXPROCS). Results do not depend on it.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := pool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.threads = n
	if len(p.work) > n-1 {
		for _, c := range p.work[n-1:] {
			close(c)
		}
		p.work = p.work[:n-1]
	}
}

// Threads returns the number of threads MatVec and MatMul use.
func Threads() int {
	p := pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.threads
}

func (p *workerPool) worker(c chan task) {
	for t := range c {
		t.fn(t.lo, t.hi)
		p.wg.Done()
	}
}

// minParallelWork is the number of multiply-adds below which splitting a
// product costs more than it saves.
const minParallelWork = 1 << 15

// parallel calls fn over [0, units) split into one contiguous share per
// thread (share boundaries are multiples of 4). work estimates the
// multiply-adds involved. When the pool is busy with another caller's product
// (several models decoding from different goroutines) fn runs on the caller's
// goroutine alone rather than waiting.
func parallel(units, work int, fn func(lo, hi int)) {
	p := pool
	if work < minParallelWork || units < 8 || !p.mu.TryLock() {
		fn(0, units)
		return
	}
	defer p.mu.Unlock()
	n := min(p.threads, units/4)
	if n <= 1 {
		fn(0, units)
		return
	}
	for len(p.work) < n-1 {
		c := make(chan task, 1)
		p.work = append(p.work, c)
		go p.worker(c)
	}
	share := (units + n - 1) / n
	share = (share + 3) &^ 3
	for lo, i := share, 0; lo < units; lo, i = lo+share, i+1 {
		p.wg.Add(1)
		p.work[i] <- task{fn, lo, min(units, lo+share)}
	}
	fn(0, min(units, share))
	p.wg.Wait()
}
