//go:build purego || !amd64

package kernels

// Without assembly the reference runs everywhere.

func simdPaths() []string { return nil }

func selectPath(string) {}

func amxMatMul(dst []float32, m *Mat, x []float32, n int) bool { return false }

func amxQ8Applies(m *Mat, n int) bool { return false }

func amxQ8MatMul(dst []float32, m *Mat, a *q8Acts, n int) {}
