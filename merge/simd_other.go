//go:build purego || !amd64

package merge

func useSIMD(bool) {}
