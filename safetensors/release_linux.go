package safetensors

import "syscall"

// dropPages removes b, whole pages of a shared file mapping, from the
// process's resident memory; the data stays in the file and the page cache.
func dropPages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
