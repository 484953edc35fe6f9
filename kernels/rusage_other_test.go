//go:build !unix

package kernels

// cpuSeconds: no CPU time here; the benchmarks report none.
func cpuSeconds() float64 { return 0 }
