package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
