//go:build unix

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockResults takes an exclusive lock on out's lock file for a run or a
// merge, so that two never write one results file: a Kubernetes Indexed
// Job may run two pods of one index at once, as may a user. The lock
// goes with the process, even when it is killed; unlock removes the
// file. A file system without locks (flock fails otherwise) is not
// refused.
func lockResults(out string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	var f *os.File
	for {
		f, err = os.OpenFile(out+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("%s: another sweep is writing it (%s.lock is locked)", out, out)
		}
		// A run that ended between the open and the lock removed the
		// file: this lock is on a name nobody sees. Take the new one.
		held, err1 := f.Stat()
		now, err2 := os.Stat(f.Name())
		if err1 != nil || err2 == nil && os.SameFile(held, now) || err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			break
		}
		f.Close()
	}
	return func() {
		os.Remove(f.Name()) // while locked: a run starting now locks a new file
		f.Close()
	}, nil
}
