//go:build purego || !amd64

package kernels

// Without assembly the reference runs everywhere.

func simdPaths() []string { return nil }

func selectPath(string) {}
