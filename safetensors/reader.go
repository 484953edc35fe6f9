package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"unsafe"
)

// MaxHeaderSize is the largest header the format allows (100 MB).
const MaxHeaderSize = 100 << 20

// Tensor is one tensor of an open file. Data aliases the memory map: it is
// valid until the file is closed and must not be written to.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32 returns the data as float32 without copying. It fails for other dtypes.
func (t *Tensor) F32() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("tensor %s: dtype %s, want F32", t.Name, t.DType)
	}
	return castSlice[float32](t.Data), nil
}

// U16 returns the raw 16-bit words of an F16 or BF16 tensor without copying.
func (t *Tensor) U16() ([]uint16, error) {
	if t.DType != F16 && t.DType != BF16 {
		return nil, fmt.Errorf("tensor %s: dtype %s, want F16 or BF16", t.Name, t.DType)
	}
	return castSlice[uint16](t.Data), nil
}

func castSlice[T any](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

// Source is a set of named tensors: one file or a sharded checkpoint.
type Source interface {
	// Tensor returns the named tensor, or false if there is none.
	Tensor(name string) (*Tensor, bool)
	// Names returns the tensor names in sorted order.
	Names() []string
	Close() error
}

// File is an open, memory-mapped safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]*Tensor
	names    []string
	mapping  []byte
}

// Open memory-maps and validates a safetensors file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: file is %d bytes, too short for a safetensors header", path, size)
	}
	var data []byte
	if size > 0 {
		data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("%s: mmap: %w", path, err)
		}
	}
	sf, err := parse(data)
	if err != nil {
		syscall.Munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf.Path = path
	sf.mapping = data
	return sf, nil
}

// Parse validates an in-memory safetensors image and returns a File whose
// tensors alias data. Close on such a File is a no-op.
func Parse(data []byte) (*File, error) { return parse(data) }

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, errors.New("file too short for a safetensors header")
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the format's limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d is larger than the file (%d bytes after the length)", n, len(data)-8)
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("invalid header JSON: %w", err)
	}
	f := &File{tensors: map[string]*Tensor{}}
	type span struct {
		begin, end int64
		name       string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: invalid entry: %w", name, err)
		}
		dt, err := parseDType(e.DType)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets must have 2 entries, has %d", name, len(e.DataOffsets))
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] out of range (data section is %d bytes)", name, begin, end, len(body))
		}
		count := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension %d", name, d)
			}
			if d != 0 && count > (1<<62)/d {
				return nil, fmt.Errorf("tensor %q: shape %v overflows", name, e.Shape)
			}
			count *= d
			shape[i] = int(d)
		}
		if want := count * int64(dt.Size()); end-begin != want {
			return nil, fmt.Errorf("tensor %q: %d bytes in data_offsets, but shape %v of %s needs %d", name, end-begin, e.Shape, dt, want)
		}
		f.tensors[name] = &Tensor{Name: name, DType: dt, Shape: shape, Data: body[begin:end:end]}
		spans = append(spans, span{begin, end, name})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	for _, s := range spans {
		if s.begin < pos {
			return nil, fmt.Errorf("tensor %q overlaps the previous tensor (starts at %d, previous ends at %d)", s.name, s.begin, pos)
		}
		if s.begin > pos {
			return nil, fmt.Errorf("gap of %d bytes before tensor %q at offset %d", s.begin-pos, s.name, pos)
		}
		pos = s.end
	}
	if pos != int64(len(body)) {
		return nil, fmt.Errorf("data section is %d bytes but tensors cover %d", len(body), pos)
	}
	for name := range f.tensors {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Close unmaps the file. Tensor data must not be used afterwards.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := syscall.Munmap(f.mapping)
	f.mapping = nil
	return err
}
