package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts the disk writes of f's dirty pages without
// waiting for them (pages already being written are left alone).
func startWriteback(f *os.File) {
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
