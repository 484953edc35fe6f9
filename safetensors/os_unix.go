//go:build unix

package safetensors

import (
	"fmt"
	"os"
	"syscall"
)

// mapsFiles says whether mapFile maps the file (it does here).
const mapsFiles = true

// mapFile maps size bytes of fd read-only. The mapping outlives fd.
func mapFile(fd *os.File, size int) ([]byte, error) {
	b, err := syscall.Mmap(int(fd.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return b, nil
}

func unmapFile(b []byte) error { return syscall.Munmap(b) }

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
