package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header the format allows (100 MB).
const MaxHeaderSize = 100 << 20

// MaxTensors bounds the tensors one file may declare. The largest
// published checkpoints hold tens of thousands in all, split over shards; a
// header of millions of empty tensors only costs time and memory to read.
const MaxTensors = 1 << 18

var errTooManyTensors = fmt.Errorf("header declares more than %d tensors", MaxTensors)

// MetadataKey is the header key that holds free-form string metadata.
const MetadataKey = "__metadata__"

// parse validates a complete safetensors image: the 8-byte little-endian
// header length, the JSON header, and a data section that the tensors cover
// exactly, without gaps or overlaps. The tensors alias data.
func parse(data []byte) (*File, error) {
	if len(data) == 0 {
		return nil, errors.New("file is empty")
	}
	if len(data) < 8 {
		return nil, fmt.Errorf("file is %d bytes, too short for the 8-byte header length", len(data))
	}
	if string(data[:4]) == "GGUF" {
		return nil, errors.New("a GGUF file (llama.cpp's format), not safetensors")
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
	entries, meta, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta, tensors: make(map[string]*Tensor, len(entries))}
	for _, e := range entries {
		if e.end > int64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] out of range (data section is %d bytes)", e.name, e.begin, e.end, len(body))
		}
	}
	// Sorting by offsets turns the coverage check into a single sweep.
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].begin != entries[j].begin {
			return entries[i].begin < entries[j].begin
		}
		return entries[i].end < entries[j].end
	})
	var pos int64
	prev := ""
	for _, e := range entries {
		if e.begin < pos {
			return nil, fmt.Errorf("tensor %q (bytes %d to %d) overlaps tensor %q (which ends at %d)", e.name, e.begin, e.end, prev, pos)
		}
		if e.begin > pos {
			return nil, fmt.Errorf("gap of %d unused bytes before tensor %q (data_offsets start at %d, previous data ends at %d)", e.begin-pos, e.name, e.begin, pos)
		}
		pos, prev = e.end, e.name
		f.tensors[e.name] = &Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: body[e.begin:e.end:e.end]}
		f.order = append(f.order, e.name)
	}
	if pos != int64(len(body)) {
		return nil, fmt.Errorf("%d unused bytes after the last tensor (data section is %d bytes, tensors cover %d)", int64(len(body))-pos, len(body), pos)
	}
	f.names = append([]string(nil), f.order...)
	sort.Strings(f.names)
	f.HeaderSize = int64(n)
	return f, nil
}

// entry is one tensor as declared in the header.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int64
}

// parseHeader decodes the JSON header. It walks the tokens itself rather
// than unmarshalling into a map, because a map would silently keep the last
// of two entries with the same name.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	if len(bytes.TrimSpace(header)) == 0 {
		return nil, nil, errors.New("header is empty, want a JSON object")
	}
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	if entries, meta, err, ok := fastHeader(header); ok {
		return entries, meta, err
	}
	return exactHeader(header)
}

// exactHeader is the header parser that reports precisely what is wrong.
func exactHeader(header []byte) ([]entry, map[string]string, error) {
	var entries []entry
	var meta map[string]string
	err := decodeObject(header, "header", "tensor name", func(name string, raw json.RawMessage) error {
		if name == MetadataKey {
			m, err := parseMetadata(raw)
			meta = m
			return err
		}
		if len(entries) >= MaxTensors {
			return errTooManyTensors
		}
		e, err := parseEntry(name, raw)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	return entries, meta, err
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	m := map[string]string{}
	err := decodeObject(raw, MetadataKey, "key", func(k string, v json.RawMessage) error {
		var s string
		if v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return fmt.Errorf("%s: value of %q is %s, want a string", MetadataKey, k, jsonKind(v))
		}
		m[k] = s
		return nil
	})
	return m, err
}

func parseEntry(name string, raw json.RawMessage) (entry, error) {
	e := entry{name: name}
	var haveDType, haveShape, haveOffsets bool
	err := decodeObject(raw, fmt.Sprintf("tensor %q", name), "field", func(k string, v json.RawMessage) error {
		switch k {
		case "dtype":
			haveDType = true
			var s string
			if v[0] != '"' || json.Unmarshal(v, &s) != nil {
				return fmt.Errorf("tensor %q: dtype is %s, want a string", name, jsonKind(v))
			}
			d, err := parseDType(s)
			if err != nil {
				return fmt.Errorf("tensor %q: %w", name, err)
			}
			e.dtype = d
		case "shape":
			haveShape = true
			dims, err := intList(v)
			if err != nil {
				return fmt.Errorf("tensor %q: shape: %w", name, err)
			}
			e.shape = make([]int, len(dims))
			for i, d := range dims {
				e.shape[i] = int(d)
			}
		case "data_offsets":
			haveOffsets = true
			offs, err := intList(v)
			if err != nil {
				return fmt.Errorf("tensor %q: data_offsets: %w", name, err)
			}
			if len(offs) != 2 {
				return fmt.Errorf("tensor %q: data_offsets has %d entries, want 2", name, len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
		default:
			return fmt.Errorf("tensor %q: unknown field %q", name, k)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, fmt.Errorf("tensor %q: missing dtype", name)
	case !haveShape:
		return e, fmt.Errorf("tensor %q: missing shape", name)
	case !haveOffsets:
		return e, fmt.Errorf("tensor %q: missing data_offsets", name)
	}
	return e, checkEntry(&e)
}

// checkEntry checks that an entry's offsets are ordered and span exactly
// the bytes its shape and dtype need.
func checkEntry(e *entry) error {
	name := e.name
	if e.end < e.begin {
		return fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin", name, e.begin, e.end)
	}
	// The element count must not overflow; the data section is at most the
	// file size, so any count beyond 2^62 bytes is wrong anyway.
	count := int64(1)
	for _, d := range e.shape {
		if d != 0 && count > math.MaxInt64/8/int64(d) {
			return fmt.Errorf("tensor %q: shape %v has too many elements", name, e.shape)
		}
		count *= int64(d)
	}
	if want := count * int64(e.dtype.Size()); e.end-e.begin != want {
		return fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d", name, e.begin, e.end, e.end-e.begin, e.shape, e.dtype, want)
	}
	return nil
}

// intList decodes a JSON array of non-negative integers that fit in an int64
// (and in an int, so that shapes index Go slices).
func intList(v json.RawMessage) ([]int64, error) {
	if v[0] != '[' {
		return nil, fmt.Errorf("is %s, want a list of non-negative integers", jsonKind(v))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(v, &elems); err != nil {
		return nil, errors.New("want a list of non-negative integers")
	}
	out := make([]int64, len(elems))
	for i, el := range elems {
		// A json.Number would also take "2" (a string), which the format's
		// reference implementation rejects.
		x, err := strconv.ParseInt(string(el), 10, 64)
		if err != nil || x < 0 || int64(int(x)) != x {
			return nil, fmt.Errorf("element %s is not a non-negative integer", el)
		}
		out[i] = x
	}
	return out, nil
}

// decodeObject walks the members of the JSON object in data in order and
// calls fn for each. It reports a value that is not an object, duplicate
// keys, and anything but white space after the object.
func decodeObject(data []byte, what, keyKind string, fn func(key string, value json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s is %s, want a JSON object", what, jsonKind(bytes.TrimSpace(data)))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: invalid JSON: %v", what, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: invalid JSON: object key is not a string", what)
		}
		if seen[key] {
			return fmt.Errorf("%s: duplicate %s %q", what, keyKind, key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: invalid JSON: %v", what, err)
		}
		if err := fn(key, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: unexpected data after the JSON object", what)
	}
	return nil
}

// jsonKind names the kind of a JSON value for error messages.
func jsonKind(v []byte) string {
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "not valid JSON"
}
