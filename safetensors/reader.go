package safetensors

import (
	"errors"
	"fmt"
	"os"
	"unsafe"
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
	names   []string     // sorted
	order   []string     // by data offset
	free    func() error // releases the file's memory on Close; nil for Parse
	mapping []byte       // the file's shared memory map, if any (Release)
}

// Load says how a file's tensor data is brought into memory.
type Load int

const (
	// Mapped memory-maps the file: pages are read in as they are first
	// touched and shared with the page cache and other processes.
	Mapped Load = iota
	// Resident reads the whole file into private, read-only memory. On
	// Linux that memory is advised for transparent huge pages: a model that
	// streams every weight once per token then takes one TLB entry per
	// 2 MiB instead of per 4 KiB, which is worth 5-30% of generation speed
	// (docs/speed.md). It costs the read at open and memory that other
	// processes cannot share. Elsewhere Resident is the same as Mapped.
	Resident
)

// Open memory-maps and validates a safetensors file. Tensor data is not
// copied: it is paged in from the file as it is read.
func Open(path string) (*File, error) { return OpenWith(path, Mapped) }

// OpenWith is Open with the file's data brought in as how says. With
// Resident, the tensors named in mapped (names the file lacks are ignored)
// stay in the file's memory map instead: a table read a row at a time,
// such as a model's embeddings, then costs resident memory only for the
// pages holding the rows used (the page cache may map a few megabytes
// around each), and those pages are the page cache's, shared and
// reclaimable, where a private copy would cost all of it.
func OpenWith(path string, how Load, mapped ...string) (*File, error) {
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
	if how == Resident && residentCopies && len(mapped) > 0 {
		return openPartlyResident(fd, path, int(size), mapped)
	}
	var data []byte
	var free func() error
	if how == Resident {
		data, free, err = readResident(fd, int(size), nil)
	} else if data, err = mapFile(fd, int(size)); err == nil {
		free = func() error { return unmapFile(data) }
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := parse(data)
	if err != nil {
		free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	f.free = free
	if mapsFiles && (how == Mapped || !residentCopies) {
		f.mapping = data
	}
	return f, nil
}

// openPartlyResident is OpenWith(path, Resident, mapped...): the file is
// mapped and parsed, read into private memory but for the data of the
// tensors named in mapped (those pages of the copy are never touched, so
// they cost nothing), and every other tensor is pointed at its copy.
func openPartlyResident(fd *os.File, path string, size int, mapped []string) (*File, error) {
	m, err := mapFile(fd, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := parse(m)
	if err != nil {
		unmapFile(m)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keep := map[string]bool{}
	for _, name := range mapped {
		keep[name] = true
	}
	// The tensors' data lie end to end after the header, in f.order.
	offs := make([]int, len(f.order))
	var skip [][2]int
	off := 8 + int(f.HeaderSize)
	for i, name := range f.order {
		n := len(f.tensors[name].Data)
		if keep[name] && n > 0 {
			skip = append(skip, [2]int{off, off + n})
		}
		offs[i] = off
		off += n
	}
	r, free, err := readResident(fd, size, skip)
	if err != nil {
		unmapFile(m)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, name := range f.order {
		if t := f.tensors[name]; !keep[name] {
			end := offs[i] + len(t.Data)
			t.Data = r[offs[i]:end:end]
		}
	}
	f.Path = path
	f.free = func() error { return errors.Join(free(), unmapFile(m)) }
	f.mapping = m
	return f, nil
}

// Release tells the kernel that the process is done, for now, with b, the
// data of some of the file's tensors: where b lies in the file's shared
// memory map its pages leave the process's resident memory (they stay in
// the page cache, and come back when next read). Data read into private
// memory (Resident), or held where files cannot be mapped, is left as it
// is. A loader that turns weights into another form calls it to keep the
// originals from counting against the process.
func (f *File) Release(b []byte) {
	if len(b) == 0 || len(f.mapping) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapping)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p-base+uintptr(len(b)) > uintptr(len(f.mapping)) {
		return
	}
	// Whole pages, outward: a neighbour's data on the same page is only
	// read again from the page cache.
	pg := os.Getpagesize()
	lo := int(p-base) / pg * pg
	hi := min((int(p-base)+len(b)+pg-1)/pg*pg, len(f.mapping))
	dropPages(f.mapping[lo:hi])
}

// Release tells src that the process is done, for now, with b, data of
// its tensors, where src can act on it (File.Release and Sharded.Release,
// or any Source with such a method): b's pages of a file's shared map
// leave the process's memory and come back, from the page cache, when
// next read. Other sources, and memory outside a map, are left alone.
func Release(src Source, b []byte) {
	if r, ok := src.(interface{ Release([]byte) }); ok {
		r.Release(b)
	}
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

// Close releases the file's memory. Tensor data must not be used
// afterwards.
func (f *File) Close() error {
	if f == nil || f.free == nil {
		return nil
	}
	err := f.free()
	f.free = nil
	f.mapping = nil // a later Release must not advise memory mapped anew there
	return err
}
