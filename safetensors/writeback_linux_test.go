package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
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
