//go:build !linux

package merge

// writeback is a no-op where sync_file_range is not available.
type writeback struct{}

func newWriteback(dir string) *writeback { return &writeback{} }
func (wb *writeback) kick()              {}
func (wb *writeback) close()             {}
