package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf8"
)

// Header declares one tensor to be written: its name, dtype and shape.
type Header struct {
	Name  string
	DType DType
	Shape []int
}

// Writer streams one safetensors file: the header is written when the Writer
// is created, then each tensor's data in the order of the headers. Data goes
// to a temporary file beside the target that Close renames into place, so
// the target path only ever holds a complete file.
type Writer struct {
	path    string
	tmp     *os.File
	buf     *bufio.Writer
	headers []Header
	sizes   []int64
	next    int   // index of the next header to write
	part    int64 // bytes of that tensor written so far (WritePart)
	err     error // sticky I/O error; the writer has been aborted
	state   int
	unsent  int   // bytes written since the last writeback step
	pos     int64 // bytes given to buf
	wb      writeback
}

// writebackStep is how many bytes the writer writes between the steps of
// its writeback, which start the disk writes of what it wrote and drop
// what is on disk from the page cache (see writeback). Without the
// steps the page cache held the whole file, far below the kernel's
// background threshold, until Close's fsync, and a writer that produces
// its data slowly (a merge) ended waiting for the disk, which could have
// written meanwhile (0.85-0.96 s of a 5 s merge of a 0.5B model's 988 MB,
// 0.31-0.57 s with them).
var writebackStep = 32 << 20 // a variable for the tests

// lineSize is the cache line the writer and the resident reader put the
// data section on.
const lineSize = 64

const (
	writing  = iota
	finished // data flushed, synced and closed; not yet renamed
	closed   // renamed into place or aborted
)

// Create starts writing a safetensors file at path with the given tensors
// and __metadata__ (nil for none). The header JSON has sorted keys and is
// padded with spaces until the data section starts at a multiple of 64
// bytes (the format asks for 8), so the same input always gives the same
// bytes, and a mapped file's tensors start where their size lets them on
// a cache line, as resident ones do (see Resident).
func Create(path string, headers []Header, metadata map[string]string) (*Writer, error) {
	prefix, sizes, err := encodeHeader(headers, metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20), headers: headers, sizes: sizes}
	if err := tmp.Chmod(0o644); err != nil {
		w.fail(err)
		return nil, err
	}
	if _, err := w.buf.Write(prefix); err != nil {
		w.fail(err)
		return nil, err
	}
	w.pos = int64(len(prefix))
	return w, nil
}

// Write writes the data of the next tensor. name must be the next header's
// name and data must hold exactly its bytes (product of shape * dtype size);
// a mismatch is reported and nothing is written. An I/O error aborts the
// writer.
func (w *Writer) Write(name string, data []byte) error {
	if err := w.check(name); err != nil {
		return err
	}
	if w.part > 0 {
		return fmt.Errorf("%s: tensor %q: %d of its bytes were written in parts; write the rest with WritePart", w.path, name, w.part)
	}
	if int64(len(data)) != w.sizes[w.next] {
		h := w.headers[w.next]
		return fmt.Errorf("%s: tensor %q: %d bytes of data, but shape %v of %s needs %d", w.path, name, len(data), h.Shape, h.DType, w.sizes[w.next])
	}
	return w.write(data)
}

// WritePart writes the next bytes of the next tensor, name: a tensor may
// come in parts of any size, in order, and is done when its bytes are
// all written (then the next tensor is due). Data past the tensor's
// bytes is reported and nothing is written; Close reports a tensor left
// partly written. An I/O error aborts the writer.
func (w *Writer) WritePart(name string, data []byte) error {
	if err := w.check(name); err != nil {
		return err
	}
	if size := w.sizes[w.next]; w.part+int64(len(data)) > size {
		return fmt.Errorf("%s: tensor %q: a part of %d bytes after %d runs past its %d bytes", w.path, name, len(data), w.part, size)
	}
	return w.write(data)
}

// check reports whether the writer can take data of tensor name now.
func (w *Writer) check(name string) error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.next >= len(w.headers) {
		return fmt.Errorf("%s: tensor %q: all %d declared tensors are already written", w.path, name, len(w.headers))
	}
	if h := w.headers[w.next]; name != h.Name {
		return fmt.Errorf("%s: got tensor %q, want %q (tensors are written in the order of the headers)", w.path, name, h.Name)
	}
	return nil
}

// write writes data, the next bytes of the next tensor, and goes on to
// the tensor after it when that one is complete.
func (w *Writer) write(data []byte) error {
	w.part += int64(len(data))
	// In pieces of at most a step, so that a large tensor's pages are
	// dropped as it goes (see writeback).
	for len(data) > 0 {
		n := min(len(data), writebackStep-w.unsent)
		if _, err := w.buf.Write(data[:n]); err != nil {
			return w.fail(err)
		}
		data = data[n:]
		w.pos += int64(n)
		if w.unsent += n; w.unsent >= writebackStep {
			if err := w.wb.step(w.tmp, w.pos-int64(w.buf.Buffered())); err != nil {
				return w.fail(err)
			}
			w.unsent = 0
		}
	}
	if w.part == w.sizes[w.next] {
		w.next++
		w.part = 0
	}
	return nil
}

// Close checks that every declared tensor was written, syncs the data to
// disk and renames the file into place. On failure the temporary file is
// removed and the target is left as it was.
func (w *Writer) Close() error {
	if err := w.finish(); err != nil {
		return err
	}
	return w.commit()
}

// Abort discards the file being written. It is safe to call at any time,
// also after Close (then it does nothing).
func (w *Writer) Abort() {
	if w.state == closed {
		return
	}
	if w.state == writing {
		w.wb.wait()
		w.tmp.Close()
	}
	os.Remove(w.tmp.Name())
	w.state = closed
}

func (w *Writer) usable() error {
	switch {
	case w.err != nil:
		return w.err
	case w.state != writing:
		return fmt.Errorf("%s: writer is closed", w.path)
	}
	return nil
}

// fail records an I/O error and aborts.
func (w *Writer) fail(err error) error {
	w.err = fmt.Errorf("%s: %w", w.path, err)
	w.Abort()
	return w.err
}

// finish flushes, syncs and closes the temporary file.
func (w *Writer) finish() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.next < len(w.headers) {
		missing, how := w.headers[w.next].Name, "next missing"
		if w.part > 0 {
			how = fmt.Sprintf("%d of %d bytes written of", w.part, w.sizes[w.next])
		}
		w.Abort()
		w.err = fmt.Errorf("%s: only %d of %d tensors were written (%s: %q); nothing was saved", w.path, w.next, len(w.headers), how, missing)
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		return w.fail(err)
	}
	if err := w.wb.wait(); err != nil {
		return w.fail(err)
	}
	if err := w.tmp.Sync(); err != nil {
		return w.fail(err)
	}
	err := w.tmp.Close()
	w.state = finished
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// commit renames the finished temporary file to the target and syncs the
// folder so that the rename itself is durable.
func (w *Writer) commit() error {
	if w.state != finished {
		return w.usable()
	}
	if err := os.Rename(w.tmp.Name(), w.path); err != nil {
		return w.fail(err)
	}
	w.state = closed
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		w.err = fmt.Errorf("%s: %w", w.path, err)
		return w.err
	}
	return nil
}

// WriteFile writes tensors (in the given order) and metadata to path
// atomically.
func WriteFile(path string, tensors []*Tensor, metadata map[string]string) error {
	headers := make([]Header, len(tensors))
	for i, t := range tensors {
		headers[i] = Header{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := Create(path, headers, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.Write(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// encodeHeader validates headers and returns the file prefix (8-byte length
// and padded JSON header) and the byte size of each tensor. Data offsets
// follow the order of headers; the JSON keys are sorted.
func encodeHeader(headers []Header, metadata map[string]string) ([]byte, []int64, error) {
	sizes := make([]int64, len(headers))
	begins := make(map[string]int64, len(headers))
	var pos int64
	for i, h := range headers {
		switch {
		case h.Name == "":
			return nil, nil, fmt.Errorf("tensor %d has an empty name", i)
		case h.Name == MetadataKey:
			return nil, nil, fmt.Errorf("tensor name %q is reserved for metadata", h.Name)
		case !utf8.ValidString(h.Name):
			return nil, nil, fmt.Errorf("tensor name %q is not valid UTF-8", h.Name)
		case !h.DType.Valid():
			return nil, nil, fmt.Errorf("tensor %q: unknown dtype %q", h.Name, h.DType)
		}
		if _, dup := begins[h.Name]; dup {
			return nil, nil, fmt.Errorf("duplicate tensor name %q", h.Name)
		}
		n := int64(h.DType.Size())
		for _, d := range h.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("tensor %q: negative dimension in shape %v", h.Name, h.Shape)
			}
			if d != 0 && n > (1<<62)/int64(d) {
				return nil, nil, fmt.Errorf("tensor %q: shape %v is too large", h.Name, h.Shape)
			}
			n *= int64(d)
		}
		sizes[i] = n
		begins[h.Name] = pos
		pos += n
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("%s entry %q is not valid UTF-8", MetadataKey, k)
		}
	}

	order := make([]int, len(headers))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return headers[order[a]].Name < headers[order[b]].Name })

	var b bytes.Buffer
	b.Write(make([]byte, 8)) // length, filled in below
	b.WriteByte('{')
	// "__metadata__" sorts after digits and capitals but before lower-case
	// names: merge it into the sorted sequence of tensor names.
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	metaDone := len(metadata) == 0
	writeMeta := func() {
		sep()
		b.WriteString(quote(MetadataKey))
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%s", quote(k), quote(metadata[k]))
		}
		b.WriteByte('}')
		metaDone = true
	}
	for _, i := range order {
		h := headers[i]
		if !metaDone && MetadataKey < h.Name {
			writeMeta()
		}
		sep()
		fmt.Fprintf(&b, `%s:{"dtype":%s,"shape":[`, quote(h.Name), quote(string(h.DType)))
		for j, d := range h.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", d)
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, begins[h.Name], begins[h.Name]+sizes[i])
	}
	if !metaDone {
		writeMeta()
	}
	b.WriteByte('}')
	for b.Len()%lineSize != 0 {
		b.WriteByte(' ')
	}
	out := b.Bytes()
	if len(out)-8 > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the format's limit of %d", len(out)-8, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(out[:8], uint64(len(out)-8))
	return out, sizes, nil
}

// quote returns s as a JSON string, leaving <, > and & unescaped.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes; bytes.Buffer never fails
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
