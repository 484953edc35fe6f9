//go:build !linux

package safetensors

import "os"

// residentCopies says whether Resident copies the file (it maps it here).
const residentCopies = false

// readResident maps the file where no huge pages can be had: private
// memory would cost a read and gain nothing.
func readResident(fd *os.File, size int, skip [][2]int) ([]byte, func() error, error) {
	b, err := mapFile(fd, size)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return unmapFile(b) }, nil
}
