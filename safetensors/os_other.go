//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mapsFiles says whether mapFile maps the file (it reads it here).
const mapsFiles = false

// mapFile reads the file into memory where mmap is not available.
func mapFile(fd *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(fd, b); err != nil {
		return nil, err
	}
	return b, nil
}

func unmapFile(b []byte) error { return nil }

// syncDir is a no-op where folders cannot be synced.
func syncDir(dir string) error { return nil }
