package safetensors

import (
	"fmt"
	"io"
	"os"

	"github.com/mocolab/moco/internal/hugemem"
)

// readResident reads size bytes of fd into read-only memory backed by huge
// pages and returns it with the function that frees it.
func readResident(fd *os.File, size int) ([]byte, func() error, error) {
	b, free, err := hugemem.Alloc(size)
	if err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(io.NewSectionReader(fd, 0, int64(size)), b); err != nil {
		free()
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	if err := hugemem.ReadOnly(b); err != nil {
		free()
		return nil, nil, err
	}
	return b, free, nil
}
