//go:build !unix

package tokenizer

// cpuSeconds: no CPU time here; the benchmarks report none.
func cpuSeconds() float64 { return 0 }
