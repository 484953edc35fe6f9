//go:build !unix

package merge

// Without getrusage the benchmarks report zeros for CPU time and peak RSS.

func cpuSeconds() float64 { return 0 }

func peakMiB() float64 { return 0 }
