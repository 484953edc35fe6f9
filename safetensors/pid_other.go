//go:build !unix

package safetensors

import "os"

// processAlive reports whether process pid exists: where signal 0 is not
// available, whether the process can be opened.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
