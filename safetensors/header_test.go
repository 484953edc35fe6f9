package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// image builds a safetensors image by hand: the length prefix, the header
// exactly as given (no padding added) and the data.
func image(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func withLength(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func f32bytes(xs ...float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func TestParseMalformed(t *testing.T) {
	const a4 = `"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	four := make([]byte, 4)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"zero-length file", nil, "file is empty"},
		{"short file", []byte{1, 0, 0}, "file is 3 bytes, too short for the 8-byte header length"},
		{"header longer than file", withLength(100, "{}"), "header length 100 is larger than the file (2 bytes after the length)"},
		{"GGUF", append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 16)...), "a GGUF file (llama.cpp's format), not safetensors"},
		{"header over 100 MB", withLength(MaxHeaderSize+1, "{}"), "header length 104857601 exceeds the format's limit of 104857600 bytes"},
		{"absurd header length", withLength(math.MaxUint64, "{}"), "exceeds the format's limit"},
		{"empty header", image("", nil), "header is empty, want a JSON object"},
		{"blank header", image("        ", nil), "header is empty, want a JSON object"},
		{"invalid JSON", image(`{"a":`, nil), "header: invalid JSON"},
		{"invalid JSON value", image(`{"a":{"dtype":F32}}`, nil), "header: invalid JSON"},
		{"header is a list", image(`[1,2]`, nil), "header is a list, want a JSON object"},
		{"header is a string", image(`"x"`, nil), "header is a string, want a JSON object"},
		{"not UTF-8", image("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"data after header object", image(`{} {}`, nil), "header: unexpected data after the JSON object"},
		{"entry not an object", image(`{"a":5}`, nil), `tensor "a" is a number, want a JSON object`},
		{"unknown dtype", image(`{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}`, four), `tensor "a": unknown dtype "F7"`},
		{"dtype not a string", image(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, four), `tensor "a": dtype is a number, want a string`},
		{"missing dtype", image(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, four), `tensor "a": missing dtype`},
		{"missing shape", image(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, four), `tensor "a": missing shape`},
		{"missing offsets", image(`{"a":{"dtype":"F32","shape":[1]}}`, four), `tensor "a": missing data_offsets`},
		{"unknown field", image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, four), `tensor "a": unknown field "x"`},
		{"duplicate field", image(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, four), `tensor "a": duplicate field "dtype"`},
		{"negative dimension", image(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, four), `tensor "a": shape: element -1 is not a non-negative integer`},
		{"fractional dimension", image(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, four), `tensor "a": shape: element 1.5 is not a non-negative integer`},
		{"shape not a list", image(`{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}`, four), `tensor "a": shape: is a string, want a list of non-negative integers`},
		{"shape overflows", image(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, four), `tensor "a": shape [4294967296 4294967296] has too many elements`},
		{"three offsets", image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, four), `tensor "a": data_offsets has 3 entries, want 2`},
		{"negative offset", image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, four), `tensor "a": data_offsets: element -4 is not a non-negative integer`},
		{"offsets reversed", image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, four), `tensor "a": data_offsets [4, 0] end before they begin`},
		{"offsets out of range", image(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, four), `tensor "a": data_offsets [0, 8] out of range (data section is 4 bytes)`},
		{"length != shape * size", image(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, four), `tensor "a": data_offsets [0, 4] span 4 bytes, but shape [2] of F32 needs 8`},
		{"duplicate tensor name", image(`{`+a4+`,`+a4+`}`, four), `header: duplicate tensor name "a"`},
		{"overlap", image(`{`+a4+`,"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, four), `tensor "b" (bytes 2 to 4) overlaps tensor "a" (which ends at 4)`},
		{"gap", image(`{`+a4+`,"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}`, make([]byte, 8)), `gap of 2 unused bytes before tensor "b" (data_offsets start at 6, previous data ends at 4)`},
		{"gap at start", image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `gap of 4 unused bytes before tensor "a"`},
		{"trailing bytes", image(`{`+a4+`}`, make([]byte, 6)), "2 unused bytes after the last tensor (data section is 6 bytes, tensors cover 4)"},
		{"metadata value a number", image(`{"__metadata__":{"n":1}}`, nil), `__metadata__: value of "n" is a number, want a string`},
		{"metadata value an object", image(`{"__metadata__":{"n":{}}}`, nil), `__metadata__: value of "n" is an object, want a string`},
		{"metadata a list", image(`{"__metadata__":["a"]}`, nil), "__metadata__ is a list, want a JSON object"},
		{"metadata duplicate key", image(`{"__metadata__":{"k":"a","k":"b"}}`, nil), `__metadata__: duplicate key "k"`},
		{"duplicate metadata", image(`{"__metadata__":{},"__metadata__":{}}`, nil), `header: duplicate tensor name "__metadata__"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded with %d tensors, want error containing %q", len(f.Names()), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestParseAccepts covers headers other writers produce that must be read.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		tensor map[string][]int // name -> shape
		meta   map[string]string
	}{
		{"empty object", image(`{}`, nil), map[string][]int{}, nil},
		{"unpadded header", image(`{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 2, 3}), map[string][]int{"a": {3}}, nil},
		{"padded header", image(`{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}   `, []byte{1, 2, 3}), map[string][]int{"a": {3}}, nil},
		{"null metadata", image(`{"__metadata__":null}`, nil), map[string][]int{}, nil},
		{"metadata", image(`{"__metadata__":{"format":"pt","x":""}}`, nil), map[string][]int{}, map[string]string{"format": "pt", "x": ""}},
		{"scalar", image(`{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)), map[string][]int{"s": {}}, nil},
		{"zero-size tensors", image(`{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"f":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"g":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}`, []byte{1}),
			map[string][]int{"e": {0, 5}, "f": {0}, "g": {1}}, nil},
		{"out-of-order offsets", image(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7, 9}), map[string][]int{"a": {1}, "b": {1}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Names()) != len(tt.tensor) {
				t.Fatalf("names %v, want %d tensors", f.Names(), len(tt.tensor))
			}
			for name, shape := range tt.tensor {
				x, ok := f.Tensor(name)
				if !ok {
					t.Fatalf("tensor %q missing", name)
				}
				if len(x.Shape) != len(shape) || !equalInts(x.Shape, shape) {
					t.Errorf("tensor %q shape %v, want %v", name, x.Shape, shape)
				}
			}
			if len(f.Metadata) != len(tt.meta) {
				t.Errorf("metadata %v, want %v", f.Metadata, tt.meta)
			}
			for k, v := range tt.meta {
				if f.Metadata[k] != v {
					t.Errorf("metadata[%q] = %q, want %q", k, f.Metadata[k], v)
				}
			}
		})
	}
	f, err := Parse(image(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7, 9}))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Tensor("a")
	b, _ := f.Tensor("b")
	if a.Data[0] != 9 || b.Data[0] != 7 {
		t.Errorf("a=%v b=%v, want a=[9] b=[7]", a.Data, b.Data)
	}
	if got := strings.Join(f.Order(), ","); got != "b,a" {
		t.Errorf("Order() = %s, want b,a", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMisalignedViews checks that views of data that is not aligned for the
// element type are copies with the right values, and aligned ones alias.
func TestMisalignedViews(t *testing.T) {
	// An unpadded 55-byte header puts the data at offset 63: misaligned.
	hdr := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	img := image(hdr, f32bytes(1.5, -2))
	if (8+len(hdr))%4 == 0 {
		t.Fatalf("test header must leave the data misaligned, got offset %d", 8+len(hdr))
	}
	// Place the image in an 8-aligned buffer so the misalignment is known.
	buf := make([]uint64, len(img)/8+1)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(img))
	copy(mem, img)
	f, err := Parse(mem)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := f.Tensor("a")
	v, err := x.F32()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || v[0] != 1.5 || v[1] != -2 {
		t.Fatalf("F32() = %v, want [1.5 -2]", v)
	}
	if unsafe.Pointer(&v[0]) == unsafe.Pointer(&x.Data[0]) {
		t.Fatal("misaligned F32 view aliases the data; want a copy")
	}

	// Same tensor at an aligned address: the view aliases the data.
	y := &Tensor{Name: "y", DType: F32, Shape: []int{2}, Data: unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 8)}
	copy(y.Data, f32bytes(3, 4))
	w, err := y.F32()
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&w[0]) != unsafe.Pointer(&y.Data[0]) || w[0] != 3 || w[1] != 4 {
		t.Fatalf("aligned F32 view: %v at %p, want [3 4] aliasing %p", w, &w[0], &y.Data[0])
	}

	// U16 at an odd address.
	raw := make([]byte, 5)
	copy(raw[1:], []byte{0x80, 0x3f, 0x00, 0xc0})
	z := &Tensor{Name: "z", DType: BF16, Shape: []int{2}, Data: raw[1:]}
	u, err := z.U16()
	if err != nil {
		t.Fatal(err)
	}
	if u[0] != 0x3f80 || u[1] != 0xc000 {
		t.Fatalf("U16() = %#x, want [0x3f80 0xc000]", u)
	}
}

func TestViewErrors(t *testing.T) {
	tests := []struct {
		name string
		t    *Tensor
		view func(*Tensor) error
		want string
	}{
		{"F32 of BF16", &Tensor{Name: "w", DType: BF16, Shape: []int{1}, Data: make([]byte, 2)}, func(t *Tensor) error { _, err := t.F32(); return err }, "tensor w: dtype BF16, want F32"},
		{"U16 of F32", &Tensor{Name: "w", DType: F32, Shape: []int{1}, Data: make([]byte, 4)}, func(t *Tensor) error { _, err := t.U16(); return err }, "tensor w: dtype F32, want F16, BF16 or U16"},
		{"short data", &Tensor{Name: "w", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}, func(t *Tensor) error { _, err := t.F32(); return err }, "tensor w: 4 bytes of data, but shape [2] of F32 needs 8"},
		{"bad bool", &Tensor{Name: "w", DType: BOOL, Shape: []int{2}, Data: []byte{1, 2}}, func(t *Tensor) error { _, err := t.Bool(); return err }, "tensor w: element 1 is 2, not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.view(tt.t)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTypedViews(t *testing.T) {
	le := binary.LittleEndian
	i64 := le.AppendUint64(nil, uint64(math.MaxUint64-1)) // -2
	i32 := le.AppendUint32(nil, 0xfffffffd)               // -3
	i16 := le.AppendUint16(nil, 0xfffc)                   // -4
	f64 := le.AppendUint64(nil, math.Float64bits(0.25))
	check := func(name string, got, want any) {
		t.Helper()
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			t.Errorf("%s = %s, want %s", name, g, w)
		}
	}
	v1, _ := (&Tensor{DType: I64, Shape: []int{1}, Data: i64}).I64()
	check("I64", v1, []int64{-2})
	v2, _ := (&Tensor{DType: I32, Shape: []int{1}, Data: i32}).I32()
	check("I32", v2, []int32{-3})
	v3, _ := (&Tensor{DType: I16, Shape: []int{1}, Data: i16}).I16()
	check("I16", v3, []int16{-4})
	v4, _ := (&Tensor{DType: I8, Shape: []int{1}, Data: []byte{0xfb}}).I8()
	check("I8", v4, []int8{-5})
	v5, _ := (&Tensor{DType: F64, Shape: []int{1}, Data: f64}).F64()
	check("F64", v5, []float64{0.25})
	v6, _ := (&Tensor{DType: U32, Shape: []int{1}, Data: i32}).U32()
	check("U32", v6, []uint32{0xfffffffd})
	v7, _ := (&Tensor{DType: U64, Shape: []int{1}, Data: i64}).U64()
	check("U64", v7, []uint64{math.MaxUint64 - 1})
	v8, _ := (&Tensor{DType: U8, Shape: []int{2}, Data: []byte{7, 8}}).U8()
	check("U8", v8, []uint8{7, 8})
	v9, _ := (&Tensor{DType: BOOL, Shape: []int{2}, Data: []byte{1, 0}}).Bool()
	check("Bool", v9, []bool{true, false})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.safetensors")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, image(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{empty, empty + ": file is empty"},
		{bad, bad + `: tensor "a": data_offsets [0, 8] out of range (data section is 0 bytes)`},
		{dir, dir + ": not a regular file"},
		{filepath.Join(dir, "none"), "no such file"},
	}
	for _, tt := range tests {
		_, err := Open(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%s) error %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestOpenMapsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	img := image(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}     `, f32bytes(0.5, 7))
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, how := range []Load{Mapped, Resident} {
		f, err := OpenWith(path, how)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := f.Tensor("w")
		v, err := w.F32()
		if err != nil || v[0] != 0.5 || v[1] != 7 {
			t.Fatalf("load %d: F32() = %v, %v; want [0.5 7]", how, v, err)
		}
		if !bytes.Equal(w.Data, img[len(img)-8:]) || f.HeaderSize != int64(len(img)-16) {
			t.Fatalf("load %d: data %v header size %d", how, w.Data, f.HeaderSize)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("load %d: second Close: %v", how, err)
		}
	}
}
