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

	"github.com/mocolab/moco/internal/testutil"
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
	b, free, err := readResident(fd, len(img), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, img) {
		t.Errorf("read %v, want %v", b, img)
	}
	free()
	// A file shorter than the size asked for (truncated since its stat)
	// is an error, not zeros.
	if _, _, err := readResident(fd, len(img)+20, nil); err == nil {
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

func TestReadParts(t *testing.T) {
	for _, c := range []struct {
		size, chunk int
		skip        [][2]int
		want        [][2]int
	}{
		{10, 4, nil, [][2]int{{0, 4}, {4, 8}, {8, 10}}},
		{20, 7, [][2]int{{3, 5}, {10, 18}}, [][2]int{{0, 3}, {5, 10}, {18, 20}}},
		{20, 3, [][2]int{{0, 2}, {2, 9}}, [][2]int{{9, 12}, {12, 15}, {15, 18}, {18, 20}}},
		{12, 100, [][2]int{{4, 12}}, [][2]int{{0, 4}}},
		{12, 100, [][2]int{{0, 12}}, nil},
	} {
		if got := readParts(c.size, c.chunk, c.skip); !slices.Equal(got, c.want) {
			t.Errorf("readParts(%d, %d, %v) = %v, want %v", c.size, c.chunk, c.skip, got, c.want)
		}
	}
}

// TestResidentLeavesMapped opens files, single and sharded, reading all
// but the tensors named to stay mapped: every tensor has its values, and
// /proc/self/maps shows the named ones in the file's mapping and the
// others in private memory.
func TestResidentLeavesMapped(t *testing.T) {
	defer func(c int) { readChunk = c }(readChunk)
	readChunk = 4096 // several pieces on each side of the hole
	dir := t.TempDir()
	big := make([]float32, 300000) // 1.2 MB, pages of its own
	for i := range big {
		big[i] = float32(i%1000) - 500
	}
	want := map[string][]float32{"a": {1, 2, 3}, "emb": big, "z": {4, 5}}
	tensor := func(name string, shape ...int) *Tensor {
		return &Tensor{Name: name, DType: F32, Shape: shape, Data: f32bytes(want[name]...)}
	}
	if err := WriteFile(filepath.Join(dir, SingleName), []*Tensor{tensor("a", 3), tensor("emb", 1000, 300), tensor("z", 2)}, nil); err != nil {
		t.Fatal(err)
	}
	sharded := t.TempDir()
	for i, ts := range [][]*Tensor{{tensor("a", 3), tensor("emb", 1000, 300)}, {tensor("z", 2)}} {
		if err := WriteFile(filepath.Join(sharded, fmt.Sprintf("s%d.safetensors", i)), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	index := `{"weight_map": {"a": "s0.safetensors", "emb": "s0.safetensors", "z": "s1.safetensors"}}`
	if err := os.WriteFile(filepath.Join(sharded, IndexName), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, sharded} {
		src, err := OpenDirWith(d, Resident, "emb", "absent")
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			tt, _ := src.Tensor(name)
			if got, _ := tt.F32(); !slices.Equal(got, w) {
				t.Errorf("%s: %s: values differ", d, name)
			}
			backing := testutil.MappingOf(t, unsafe.Pointer(&tt.Data[0]))
			if mapped := strings.HasSuffix(backing, ".safetensors"); mapped != (name == "emb") {
				t.Errorf("%s: %s lies in %q", d, name, backing)
			}
		}
		if err := src.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestRelease reads a mapped tensor, releases it, and finds its pages gone
// from the mapping's resident memory and its values intact; Release leaves
// a resident copy and memory that is not the file's alone.
func TestRelease(t *testing.T) {
	vals := make([]float32, 1<<20) // 4 MiB
	for i := range vals {
		vals[i] = float32(i)
	}
	path := filepath.Join(t.TempDir(), SingleName)
	if err := WriteFile(path, []*Tensor{{Name: "a", DType: F32, Shape: []int{3}, Data: f32bytes(1, 2, 3)},
		{Name: "w", DType: F32, Shape: []int{len(vals)}, Data: f32bytes(vals...)}}, nil); err != nil {
		t.Fatal(err)
	}
	check := func(f *File, name string) {
		t.Helper()
		w, _ := f.Tensor("w")
		if got, _ := w.F32(); !slices.Equal(got, vals) {
			t.Fatalf("%s: values changed", name)
		}
	}
	f, err := OpenWith(path, Mapped)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check(f, "mapped")
	w, _ := f.Tensor("w")
	before := testutil.ResidentKB(t, unsafe.Pointer(&w.Data[0]))
	f.Release(w.Data)
	after := testutil.ResidentKB(t, unsafe.Pointer(&w.Data[0]))
	if before < 4096 || after > 8 {
		t.Errorf("mapping resident: %d KiB read, %d KiB released", before, after)
	}
	check(f, "mapped, released")

	r, err := OpenWith(path, Resident)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rw, _ := r.Tensor("w")
	r.Release(rw.Data)
	f.Release(rw.Data) // not f's
	check(r, "resident, released")
	heap := f32bytes(vals...)
	f.Release(heap)
	if got := f32bytes(vals...); !bytes.Equal(heap, got) {
		t.Error("heap memory changed")
	}
}

// TestReleaseAfterClose: Release on a closed file does nothing, even where
// its map's addresses now hold other memory.
func TestReleaseAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), SingleName)
	if err := WriteFile(path, []*Tensor{{Name: "w", DType: F32, Shape: []int{1024}, Data: make([]byte, 4096)}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := OpenWith(path, Mapped)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.Tensor("w")
	data := w.Data
	f.Close()
	if f.mapping != nil {
		t.Fatal("Close kept the map for Release")
	}
	f.Release(data) // would advise whatever is mapped there now
}
