//go:build !purego && !linux

package kernels

// amxPermit: moco asks only Linux for the AMX tile state; elsewhere the
// tiles stay unused.
func amxPermit() bool { return false }
