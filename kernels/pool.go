package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The pool is a set of persistent worker goroutines that MatVec and MatMul
// share their rows with. No goroutine is started per call.
//
// The caller and the workers claim chunks of a product from a shared
// counter until none is left, each chunk a share of what is left: the
// threads' share of it at first (half of the rows at two threads), less
// and less after, down to tailChunks chunks per thread (guided
// self-scheduling). Large first chunks mean few claims; small last ones
// mean the threads finish together. And when the machine is
// oversubscribed and a worker's OS thread is descheduled, the others take
// the rest instead of waiting for it. Since every output element is
// computed the same way whoever computes it, the result does not depend on
// who claimed what.
//
// A decoding step calls MatVec a few hundred times, each call lasting only
// microseconds, so waking a parked goroutine through a channel every time
// would cost a good part of the step. Workers therefore spin for a short
// while after each job, watching for the next one, before they park.

// job is one parallel call. A fresh job per call means a worker that wakes
// late and still holds the previous job finds no chunk left in it.
type job struct {
	fn      func(lo, hi int)
	units   int
	threads int
	grain   int          // every chunk but the last is a multiple of grain units
	least   int          // and at least least units (a multiple of grain)
	next    atomic.Int64 // the first unit not yet claimed
	done    atomic.Int64 // units finished
}

// claim takes the next chunk: the threads' share of the units left,
// rounded up to grain, at least least.
func (j *job) claim() (lo, hi int, ok bool) {
	for {
		next := j.next.Load()
		lo = int(next)
		if lo >= j.units {
			return 0, 0, false
		}
		size := (j.units - lo + j.threads - 1) / j.threads
		size = max(j.least, (size+j.grain-1)/j.grain*j.grain)
		hi = min(j.units, lo+size)
		if j.next.CompareAndSwap(next, int64(hi)) {
			return lo, hi, true
		}
	}
}

// work claims and runs chunks until none is left, then counts the units
// it ran as done.
func (j *job) work() {
	done := 0
	for {
		lo, hi, ok := j.claim()
		if !ok {
			break
		}
		j.fn(lo, hi)
		done += hi - lo
	}
	if done > 0 {
		j.done.Add(int64(done))
	}
}

type workerPool struct {
	mu      sync.Mutex // held for one parallel call; guards threads and workers
	threads int
	workers []*worker // the running workers

	// cur is the job last posted: a worker watches it for a new pointer,
	// and it sits on a cache line of its own that the caller writes once a
	// job. The job a worker last saw stays referenced by that worker, so a
	// new job never reuses its address.
	_   [64]byte
	cur atomic.Pointer[job]
	_   [56]byte

	nParked atomic.Int32 // len(parked), read without parkMu
	parkMu  sync.Mutex
	parked  []chan struct{} // parked workers' wake channels
}

// worker is one worker goroutine's stop flag. Each goroutine has its own,
// so that one told to stop does, even if the thread count is raised again
// (and new workers started) before it wakes to see the flag.
type worker struct{ quit atomic.Bool }

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
		}
		p.workers = p.workers[:n-1]
		p.cur.Store(&job{}) // no units: the workers see it, and those told to stop do
		p.wakeAll()
	}
}

// Threads returns the number of threads MatVec and MatMul use.
func Threads() int {
	p := pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.threads
}

// spinWait is how many polls a worker makes for its next job before it
// parks (some tens of microseconds).
const spinWait = 1 << 14

func (p *workerPool) wakeAll() {
	if p.nParked.Load() == 0 {
		return
	}
	p.parkMu.Lock()
	for _, c := range p.parked {
		c <- struct{}{}
	}
	p.parked = p.parked[:0]
	p.nParked.Store(0)
	p.parkMu.Unlock()
}

func (p *workerPool) run(w *worker) {
	wake := make(chan struct{}, 1)
	seen := p.cur.Load()
	for {
		// Checked before waiting, not after: a worker told to stop
		// before it first ran may have taken the job that told it
		// (SetThreads') as the one it last saw, and would then wait for
		// another job that, at one thread, never comes.
		if w.quit.Load() {
			return
		}
		for i := 0; p.cur.Load() == seen; i++ {
			if i < spinWait {
				if i%256 == 255 {
					runtime.Gosched()
				}
				continue
			}
			p.parkMu.Lock()
			p.nParked.Add(1)          // before the check, as the poster posts before reading nParked
			if p.cur.Load() != seen { // posted while we decided to park
				p.nParked.Add(-1)
				p.parkMu.Unlock()
				break
			}
			p.parked = append(p.parked, wake)
			p.parkMu.Unlock()
			<-wake
			i = 0
		}
		seen = p.cur.Load()
		seen.work() // told to stop meanwhile, it helps with this one job, then stops
	}
}

// minParallelWork is the number of multiply-adds below which splitting a
// product costs more than it saves.
const minParallelWork = 1 << 15

// tailChunks is how many of the smallest chunks a thread's share of a
// product holds. On Zen 5 at two threads (kernels-only models, steps
// alternated in one process against four equal chunks per thread, the
// schedule before): decoding 1.04x on the 0.5B shapes in bf16, 1.08-1.10x
// on the 135M ones, 1.03x in Q8_0, 1.01-1.04x for batches of 8 tokens,
// prefill unchanged; 8 to 64 of them did about as well.
const tailChunks = 32

// parallel calls fn over [0, units) cut into chunks (of a multiple of grain
// units, but for the last) that the caller and the workers claim. work
// estimates the multiply-adds involved. When the pool is busy with another
// caller's product (several models decoding from different goroutines) fn
// runs on the caller's goroutine alone rather than waiting.
func parallel(units, work, grain int, fn func(lo, hi int)) {
	p := pool
	if work < minParallelWork || units < 2 || !p.mu.TryLock() {
		fn(0, units)
		return
	}
	defer p.mu.Unlock()
	n := p.threads
	if n <= 1 {
		fn(0, units)
		return
	}
	for len(p.workers) < n-1 {
		w := new(worker)
		p.workers = append(p.workers, w)
		go p.run(w)
	}
	least := (units + n*tailChunks - 1) / (n * tailChunks)
	least = (least + grain - 1) / grain * grain
	j := &job{fn: fn, units: units, threads: n, grain: grain, least: least}
	p.cur.Store(j)
	p.wakeAll()
	j.work()
	for i := 0; j.done.Load() != int64(units); i++ {
		if i%256 == 255 {
			runtime.Gosched()
		}
	}
	j.fn = nil // the workers keep j until the next job; not what fn holds
}

// Parallel calls fn over [0, units) split into contiguous ranges run by the
// thread pool (the caller included), for loops outside the kernels such as
// attention over heads. work estimates the multiply-adds of the whole loop;
// below a few tens of thousands fn runs once on the caller. fn must treat
// each unit independently of how the range was split, which keeps results
// independent of the thread count and of timing (which thread claims which
// range depends on both). The elementwise functions (SiLU, Axpy, ...)
// take the last elements of a slice that is no multiple of their vector
// width through a scalar path whose bits may differ, so a loop applying
// them to ranges of elements should make its units blocks of a multiple
// of 64 elements. Calls may not nest: a Parallel or MatVec inside fn runs
// on its caller's goroutine alone.
func Parallel(units, work int, fn func(lo, hi int)) {
	if units <= 0 {
		return
	}
	parallel(units, work, 1, fn)
}
