package safetensors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWritebackFlushes writes a file in small writeback steps with an
// fdatasync every two of them, each fdatasync slow: the bytes must be
// those of a plain write, the flushes must have run, and none may still
// run once Close returns (it waits for them before closing the file).
func TestWritebackFlushes(t *testing.T) {
	var in []*Tensor
	for i, n := range []int{700_001, 5, 1_300_000, 640_000, 900_017} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j*7 + j>>8)
		}
		in = append(in, &Tensor{Name: fmt.Sprintf("t%d", i), DType: U8, Shape: []int{n}, Data: b})
	}
	dir := t.TempDir()
	plain, flushed := filepath.Join(dir, "plain.safetensors"), filepath.Join(dir, "flushed.safetensors")
	if err := WriteFile(plain, in, nil); err != nil {
		t.Fatal(err)
	}
	defer func(step int, every int64, f func(int) error) {
		writebackStep, flushEvery, fdatasync = step, every, f
	}(writebackStep, flushEvery, fdatasync)
	writebackStep, flushEvery = 64<<10, 128<<10 // the writer's buffer holds 1 MiB
	var calls, running atomic.Int64
	fdatasync = func(fd int) error {
		calls.Add(1)
		running.Add(1)
		defer running.Add(-1)
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	if err := WriteFile(flushed, in, nil); err != nil {
		t.Fatal(err)
	}
	if n := running.Load(); n != 0 {
		t.Fatalf("%d fdatasyncs still running after Close", n)
	}
	if calls.Load() == 0 {
		t.Fatal("no fdatasync along the way")
	}
	b1, _ := os.ReadFile(plain)
	b2, _ := os.ReadFile(flushed)
	if !bytes.Equal(b1, b2) {
		t.Fatal("the flushed file differs from the plain one")
	}
}

// TestWritebackErrors: a write error that a step's wait or an fdatasync
// reports fails the writer (Linux reports it once to the file, so Close's
// fsync would not), and an error saying the call is not supported does
// not.
func TestWritebackErrors(t *testing.T) {
	in := []*Tensor{{Name: "x", DType: U8, Shape: []int{3_000_000}, Data: make([]byte, 3_000_000)}}
	defer func(step int, every int64, f func(int) error, r func(int, int64, int64, int) error) {
		writebackStep, flushEvery, fdatasync, syncFileRange = step, every, f, r
	}(writebackStep, flushEvery, fdatasync, syncFileRange)
	writebackStep, flushEvery = 64<<10, 128<<10
	realRange := syncFileRange
	for _, tc := range []struct {
		name      string
		flush     error // what fdatasync returns
		wait      error // what a waiting sync_file_range returns
		wantError bool
	}{
		{"fine", nil, nil, false},
		{"fdatasync EIO", unix.EIO, nil, true},
		{"wait EIO", nil, unix.EIO, true},
		{"wait ENOSPC", nil, unix.ENOSPC, true},
		{"fdatasync EINVAL", unix.EINVAL, nil, false},
		{"wait ENOSYS", nil, unix.ENOSYS, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fdatasync = func(int) error { return tc.flush }
			syncFileRange = func(fd int, off, n int64, flags int) error {
				if err := realRange(fd, off, n, flags); err != nil {
					return err
				}
				if flags&unix.SYNC_FILE_RANGE_WAIT_AFTER != 0 {
					return tc.wait
				}
				return nil
			}
			dir := t.TempDir()
			err := WriteFile(filepath.Join(dir, "m.safetensors"), in, nil)
			if got := err != nil; got != tc.wantError {
				t.Fatalf("WriteFile: %v, want an error: %v", err, tc.wantError)
			}
			if tc.wantError && !errors.Is(err, tc.flush) && !errors.Is(err, tc.wait) {
				t.Errorf("error %v names neither injected error", err)
			}
			want := "m.safetensors"
			if tc.wantError {
				want = ""
			}
			if got := dirNames(t, dir); got != want {
				t.Errorf("folder holds %q, want %q", got, want)
			}
		})
	}
}
