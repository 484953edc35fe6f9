package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestWriteGolden compares the writer's bytes with a file assembled by hand:
// sorted keys (with __metadata__ among them), data in header order, header
// padded with spaces until the data starts at a multiple of 64 bytes.
func TestWriteGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.safetensors")
	tensors := []*Tensor{
		{Name: "b", DType: F32, Shape: []int{2}, Data: f32bytes(1, 2)},
		{Name: "A", DType: U8, Shape: []int{3}, Data: []byte{5, 6, 7}},
	}
	if err := WriteFile(path, tensors, map[string]string{"k": "v", "a<b": "x&yz"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := `{"A":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"__metadata__":{"a<b":"x&yz","k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` + strings.Repeat(" ", 39)
	want := []byte{184, 0, 0, 0, 0, 0, 0, 0} // 8+184 = 3*64
	want = append(want, hdr...)
	want = append(want, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 5, 6, 7)
	if !bytes.Equal(got, want) {
		t.Fatalf("file bytes\n%q\nwant\n%q", got, want)
	}
}

func sampleTensors() []*Tensor {
	le := binary.LittleEndian
	return []*Tensor{
		{Name: "model.embed.weight", DType: F32, Shape: []int{2, 3}, Data: f32bytes(1, -2, 3.5, 0, 1e-3, -7)},
		{Name: "half", DType: F16, Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b}},
		{Name: "brain", DType: BF16, Shape: []int{1, 2}, Data: []byte{0x80, 0x3f, 0x80, 0xff}},
		{Name: "f64", DType: F64, Shape: []int{1}, Data: le.AppendUint64(nil, 0x3ff0000000000000)},
		{Name: "i64", DType: I64, Shape: []int{}, Data: le.AppendUint64(nil, 42)},
		{Name: "i32", DType: I32, Shape: []int{1}, Data: le.AppendUint32(nil, 7)},
		{Name: "i16", DType: I16, Shape: []int{1}, Data: le.AppendUint16(nil, 9)},
		{Name: "i8", DType: I8, Shape: []int{3}, Data: []byte{1, 2, 255}},
		{Name: "u8", DType: U8, Shape: []int{1}, Data: []byte{200}},
		{Name: "mask", DType: BOOL, Shape: []int{2}, Data: []byte{1, 0}},
		{Name: "fp8", DType: F8E4M3, Shape: []int{1}, Data: []byte{0x38}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := sampleTensors()
	meta := map[string]string{"format": "pt", "note": "round trip"}
	p1, p2 := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	for _, p := range []string{p1, p2} {
		if err := WriteFile(p, in, meta); err != nil {
			t.Fatal(err)
		}
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("writing the same tensors twice gave different bytes")
	}
	if n := binary.LittleEndian.Uint64(b1); (8+n)%64 != 0 {
		t.Errorf("header length %d does not end on a multiple of 64 bytes", n)
	}
	f, err := Open(p1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSame(t, f, in)
	if len(f.Metadata) != 2 || f.Metadata["format"] != "pt" || f.Metadata["note"] != "round trip" {
		t.Errorf("metadata %v, want %v", f.Metadata, meta)
	}
	// Data is laid out in the order the tensors were given.
	var names []string
	for _, x := range in {
		names = append(names, x.Name)
	}
	// Zero-size tensors share an offset with their neighbour; compare the rest.
	order := strings.Join(f.Order(), ",")
	if !strings.HasPrefix(order, strings.Join(names[:11], ",")) {
		t.Errorf("data order %s, want %v first", order, names[:11])
	}
}

// TestWriterSteps: a writer that steps its writeback (and drops what is
// on disk from the page cache) many times, within tensors and between
// them, writes the bytes a writer that never steps writes.
func TestWriterSteps(t *testing.T) {
	r := uint32(1)
	var in []*Tensor
	for i, n := range []int{1, 50_003, 7, 200_000, 12_288, 3, 99_999} {
		b := make([]byte, n)
		for j := range b {
			r = r*1664525 + 1013904223
			b[j] = byte(r >> 24)
		}
		in = append(in, &Tensor{Name: fmt.Sprintf("t%d", i), DType: U8, Shape: []int{n}, Data: b})
	}
	dir := t.TempDir()
	once, steps := filepath.Join(dir, "once.safetensors"), filepath.Join(dir, "steps.safetensors")
	if err := WriteFile(once, in, nil); err != nil {
		t.Fatal(err)
	}
	defer func(old int) { writebackStep = old }(writebackStep)
	writebackStep = 3*4096 + 100 // not a whole page: the steps round down
	if err := WriteFile(steps, in, nil); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(once)
	b2, _ := os.ReadFile(steps)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("stepped writeback wrote %d bytes unlike the %d of one write", len(b2), len(b1))
	}
	f, err := Open(steps)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSame(t, f, in)
}

// checkSame asserts that src holds exactly the tensors want.
func checkSame(t *testing.T, src Source, want []*Tensor) {
	t.Helper()
	var names []string
	for _, x := range want {
		names = append(names, x.Name)
		got, ok := src.Tensor(x.Name)
		if !ok {
			t.Errorf("tensor %q missing", x.Name)
			continue
		}
		if got.DType != x.DType || !equalInts(got.Shape, x.Shape) || !bytes.Equal(got.Data, x.Data) {
			t.Errorf("tensor %q: got %s %v %v, want %s %v %v", x.Name, got.DType, got.Shape, got.Data, x.DType, x.Shape, x.Data)
		}
	}
	sort.Strings(names)
	if g, w := strings.Join(src.Names(), ","), strings.Join(names, ","); g != w {
		t.Errorf("Names() = %s, want %s", g, w)
	}
}

// dirNames lists a folder, to check that no temporary files are left.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range es {
		s = append(s, e.Name())
	}
	return strings.Join(s, ",")
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		headers []Header
		meta    map[string]string
		want    string
	}{
		{"empty name", []Header{{Name: "", DType: F32}}, nil, "tensor 0 has an empty name"},
		{"reserved name", []Header{{Name: MetadataKey, DType: F32}}, nil, `tensor name "__metadata__" is reserved for metadata`},
		{"duplicate", []Header{{Name: "a", DType: F32}, {Name: "a", DType: F16}}, nil, `duplicate tensor name "a"`},
		{"unknown dtype", []Header{{Name: "a", DType: "F12"}}, nil, `tensor "a": unknown dtype "F12"`},
		{"negative dim", []Header{{Name: "a", DType: F32, Shape: []int{2, -1}}}, nil, `tensor "a": negative dimension in shape [2 -1]`},
		{"bad UTF-8", []Header{{Name: "a\xff", DType: F32}}, nil, "is not valid UTF-8"},
		{"bad metadata", nil, map[string]string{"k": "\xfe"}, `__metadata__ entry "k" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Create(filepath.Join(dir, "x.safetensors"), tt.headers, tt.meta)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	if got := dirNames(t, dir); got != "" {
		t.Errorf("folder holds %s after failed Creates, want nothing", got)
	}
	if _, err := Create(filepath.Join(dir, "no", "such", "x.safetensors"), nil, nil); err == nil {
		t.Error("Create in a missing folder succeeded")
	}
}

func TestWriterChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	headers := []Header{{Name: "a", DType: F32, Shape: []int{2}}, {Name: "b", DType: U8, Shape: []int{1}}}
	w, err := Create(path, headers, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	steps := []struct {
		name string
		data []byte
		want string // "" for success
	}{
		{"b", []byte{1}, `got tensor "b", want "a" (tensors are written in the order of the headers)`},
		{"a", make([]byte, 4), `tensor "a": 4 bytes of data, but shape [2] of F32 needs 8`},
		{"a", make([]byte, 8), ""},
		{"b", []byte{1}, ""},
		{"c", []byte{1}, `tensor "c": all 2 declared tensors are already written`},
	}
	for i, s := range steps {
		err := w.Write(s.name, s.data)
		switch {
		case s.want == "" && err != nil:
			t.Fatalf("step %d: %v", i, err)
		case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
			t.Fatalf("step %d: error %v, want %q", i, err, s.want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("a", nil); err == nil || !strings.Contains(err.Error(), "writer is closed") {
		t.Errorf("Write after Close: %v", err)
	}
	if got := dirNames(t, dir); got != "w.safetensors" {
		t.Errorf("folder holds %s, want w.safetensors", got)
	}
}

// TestWriterAtomic checks that a target path only ever holds a complete
// file: an unfinished, failed or aborted write leaves the old content (or
// nothing) and removes its temporary file.
func TestWriterAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	old := []*Tensor{{Name: "old", DType: U8, Shape: []int{1}, Data: []byte{1}}}
	if err := WriteFile(path, old, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	headers := []Header{{Name: "a", DType: U8, Shape: []int{1}}, {Name: "b", DType: U8, Shape: []int{1}}}

	// Interrupted: one tensor written, no Close. The temporary file, as a
	// crash would leave it, must not parse as a safetensors file.
	w, err := Create(path, headers, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write("a", []byte{9}); err != nil {
		t.Fatal(err)
	}
	w.buf.Flush()
	partial, err := os.ReadFile(w.tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(partial); err == nil {
		t.Error("a partly written file parses as valid")
	}
	if !strings.HasPrefix(filepath.Base(w.tmp.Name()), ".m.safetensors.tmp-") {
		t.Errorf("temporary file %s does not look temporary", w.tmp.Name())
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
		t.Error("target changed before Close")
	}
	w.Abort()
	if got := dirNames(t, dir); got != "m.safetensors" {
		t.Errorf("after Abort the folder holds %s", got)
	}

	// Close with a tensor missing fails and leaves the old file.
	w, err = Create(path, headers, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write("a", []byte{9})
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), `only 1 of 2 tensors were written (next missing: "b"); nothing was saved`) {
		t.Fatalf("Close with a missing tensor: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
		t.Error("a failed write replaced the target")
	}
	if got := dirNames(t, dir); got != "m.safetensors" {
		t.Errorf("after a failed Close the folder holds %s", got)
	}
	w.Abort() // after a failed Close: harmless

	// A complete write replaces the file.
	w, _ = Create(path, headers, nil)
	w.Write("a", []byte{9})
	w.Write("b", []byte{8})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Abort() // after a successful Close: does nothing
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSame(t, f, []*Tensor{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{9}}, {Name: "b", DType: U8, Shape: []int{1}, Data: []byte{8}}})
	if st, _ := os.Stat(path); st.Mode().Perm()&0o444 != 0o444 {
		t.Errorf("file mode %v is not readable by all", st.Mode())
	}
}

func TestMemSource(t *testing.T) {
	in := sampleTensors()
	src := NewMemSource(in)
	checkSame(t, src, in)
	if _, ok := src.Tensor("nope"); ok {
		t.Error("found a tensor that does not exist")
	}
	if err := src.Close(); err != nil {
		t.Error(err)
	}
	dup := NewMemSource([]*Tensor{{Name: "x", Data: []byte{1}}, {Name: "x", Data: []byte{2}}})
	if x, _ := dup.Tensor("x"); len(dup.Names()) != 1 || x.Data[0] != 2 {
		t.Errorf("duplicate names: %v, x=%v; want the later tensor", dup.Names(), x.Data)
	}
}

// TestWritePart: tensors written in parts of every size (empty parts
// too) into a sharded folder read back as written whole; a part past a
// tensor's bytes, Write on a partly written tensor and a part of the
// wrong tensor are refused with nothing written, and Close refuses a
// tensor left partly written.
func TestWritePart(t *testing.T) {
	in := sampleTensors()
	var hs []Header
	for _, tn := range in {
		hs = append(hs, Header{Name: tn.Name, DType: tn.DType, Shape: tn.Shape})
	}
	dir := t.TempDir()
	w, err := CreateSharded(dir, hs, 20, nil) // several shards
	if err != nil {
		t.Fatal(err)
	}
	for i, tn := range in {
		d := tn.Data
		for step := 0; len(d) > 0 || step == 0; step++ {
			n := min(len(d), (i+step)%4) // 0 to 3 bytes
			if err := w.WritePart(tn.Name, d[:n]); err != nil {
				t.Fatalf("%s: %v", tn.Name, err)
			}
			d = d[n:]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkSame(t, src, in)

	w2, err := Create(filepath.Join(t.TempDir(), "m.safetensors"), hs[:2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	first := in[0].Data
	if err := w2.WritePart(in[0].Name, first[:5]); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func() error{
		func() error { return w2.WritePart(in[0].Name, first) }, // 5 + all of it
		func() error { return w2.Write(in[0].Name, first) },     // partly written
		func() error { return w2.WritePart(in[1].Name, in[1].Data[:1]) },
	} {
		if err := bad(); err == nil {
			t.Fatal("a bad part was taken")
		}
	}
	if err := w2.WritePart(in[0].Name, first[5:]); err != nil {
		t.Fatalf("the rest after refused parts: %v", err)
	}
	if err := w2.WritePart(in[1].Name, in[1].Data[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err == nil || !strings.Contains(err.Error(), "2 of 6 bytes written") {
		t.Fatalf("Close with a tensor partly written: %v", err)
	}
}
