package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The pool is a set of persistent worker goroutines that MatVec and MatMul
// share their rows with. The calling goroutine takes the first share itself,
// so a pool of n threads has n-1 workers. No goroutine is started per call.
//
// A decoding step calls MatVec a few hundred times, each call lasting only
// microseconds, so waking a parked goroutine through a channel every time
// would cost a good part of the step. Workers therefore spin for a short
// while after each task, watching for the next one, before they park.

type task struct {
	fn     func(lo, hi int)
	lo, hi int
}

type worker struct {
	seq    atomic.Uint64 // bumped for each task posted to this worker
	t      task          // written before seq is bumped
	parked atomic.Bool
	wake   chan struct{} // a token here wakes a parked worker
	quit   atomic.Bool
}

type workerPool struct {
	mu      sync.Mutex // held for one parallel call; guards the fields below
	threads int
	workers []*worker
	pending atomic.Int32 // tasks posted and not yet finished
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
	if len(p.workers) > n-1 {
		for _, w := range p.workers[n-1:] {
			w.quit.Store(true)
			w.seq.Add(1)
			w.signal()
		}
		p.workers = p.workers[:n-1]
	}
}

// Threads returns the number of threads MatVec and MatMul use.
func Threads() int {
	p := pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.threads
}

// spinWait is how many polls a worker makes for its next task before it
// parks (a few tens of microseconds).
const spinWait = 1 << 14

func (w *worker) signal() {
	if w.parked.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (p *workerPool) run(w *worker) {
	var seen uint64
	for {
		for i := 0; w.seq.Load() == seen; i++ {
			if i < spinWait {
				if i%256 == 255 {
					runtime.Gosched()
				}
				continue
			}
			w.parked.Store(true)
			if w.seq.Load() == seen { // a task posted before parked was set is seen here
				<-w.wake
			}
			w.parked.Store(false)
			i = 0
		}
		seen = w.seq.Load()
		if w.quit.Load() {
			return
		}
		w.t.fn(w.t.lo, w.t.hi)
		w.t = task{}
		p.pending.Add(-1)
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
	for len(p.workers) < n-1 {
		w := &worker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		go p.run(w)
	}
	share := (units + n - 1) / n
	share = (share + 3) &^ 3
	for lo, i := share, 0; lo < units; lo, i = lo+share, i+1 {
		w := p.workers[i]
		p.pending.Add(1)
		w.t = task{fn, lo, min(units, lo+share)}
		w.seq.Add(1)
		w.signal()
	}
	fn(0, min(units, share))
	for i := 0; p.pending.Load() != 0; i++ {
		if i%256 == 255 {
			runtime.Gosched()
		}
	}
}
