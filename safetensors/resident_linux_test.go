package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestResidentChunks reads a file in many small chunks on several workers
// and gets the bytes of the file back.
func TestResidentChunks(t *testing.T) {
	defer func(c int) { readChunk = c }(readChunk)
	readChunk = 7
	path := filepath.Join(t.TempDir(), "x.safetensors")
	img := image(`{"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}`, f32bytes(1, 2, 3, 4, 5, 6))
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b, free, err := readResident(fd, len(img))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, img) {
		t.Errorf("read %v, want %v", b, img)
	}
	free()
	// A file shorter than the size asked for (truncated since its stat)
	// is an error, not zeros.
	if _, _, err := readResident(fd, len(img)+20); err == nil {
		t.Error("reading past the end succeeded")
	}
}

// TestResidentAligned reads files whose headers leave the data section at
// every offset within a cache line and finds it on a line boundary in
// memory each time, with the bytes and the tensor intact.
func TestResidentAligned(t *testing.T) {
	dir := t.TempDir()
	for pad := range 64 {
		header := `{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}` + strings.Repeat(" ", pad)
		img := image(header, f32bytes(1, 2, 3))
		path := filepath.Join(dir, fmt.Sprintf("p%d.safetensors", pad))
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := OpenWith(path, Resident)
		if err != nil {
			t.Fatalf("pad %d: %v", pad, err)
		}
		w, _ := f.Tensor("w")
		if a := uintptr(unsafe.Pointer(&w.Data[0])) % 64; a != 0 {
			t.Errorf("pad %d: data section at %d bytes past a cache line", pad, a)
		}
		if got, _ := w.F32(); !slices.Equal(got, []float32{1, 2, 3}) {
			t.Errorf("pad %d: w = %v", pad, got)
		}
		f.Close()
	}
}
