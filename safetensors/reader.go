package safetensors

import (
	"fmt"
	"os"
)

// Source is a set of named tensors: one file, a sharded checkpoint, or
// tensors held in memory.
type Source interface {
	// Tensor returns the named tensor, or false if there is none.
	Tensor(name string) (*Tensor, bool)
	// Names returns the tensor names in sorted order.
	Names() []string
	Close() error
}

// File is a validated safetensors file, memory-mapped by Open or aliasing
// the bytes given to Parse.
type File struct {
	Path       string            // the path given to Open; "" for Parse
	Metadata   map[string]string // the header's __metadata__ (nil if absent)
	HeaderSize int64             // length of the JSON header in bytes

	tensors map[string]*Tensor
	names   []string // sorted
	order   []string // by data offset
	mapping []byte   // the memory map to release on Close; nil for Parse
}

// Open memory-maps and validates a safetensors file. Tensor data is not
// copied: it is paged in from the file as it is read.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		// Too short to hold a header; parse says why without a mapping
		// (mmap of an empty file fails).
		_, err := parse(make([]byte, size))
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %d bytes is too large to map", path, size)
	}
	data, err := mapFile(fd, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := parse(data)
	if err != nil {
		unmapFile(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	f.mapping = data
	return f, nil
}

// Parse validates an in-memory safetensors image and returns a File whose
// tensors alias data. Close on such a File is a no-op.
func Parse(data []byte) (*File, error) { return parse(data) }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Order returns the tensor names in the order of their data in the file.
func (f *File) Order() []string { return f.order }

// Close unmaps the file. Tensor data must not be used afterwards.
func (f *File) Close() error {
	if f == nil || f.mapping == nil {
		return nil
	}
	err := unmapFile(f.mapping)
	f.mapping = nil
	return err
}
