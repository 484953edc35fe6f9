//go:build !linux

package safetensors

// dropPages does nothing where the advice is not available: the pages stay
// until memory is needed.
func dropPages(b []byte) {}
