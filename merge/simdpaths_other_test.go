//go:build purego || !amd64

package merge

// simdPaths is the Go loops alone: no assembly in this build.
func simdPaths() []simdPath { return []simdPath{{"go", func() {}}} }
