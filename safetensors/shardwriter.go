package safetensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mocolab/moco/internal/atomicfile"
)

// ShardedWriter streams a checkpoint into a model folder, split into shards
// of at most a given size. With one shard it writes model.safetensors; with
// more it writes model-0000i-of-0000n.safetensors and an index. Shards stay
// temporary files until Close, which renames them and then writes the index
// last, so a reader never sees an index naming missing or partial shards.
type ShardedWriter struct {
	dir      string
	headers  []Header
	metadata map[string]string
	files    []string // shard file names
	groups   [][]int  // header indexes per shard
	shardOf  []int    // header index -> shard
	shards   []*Writer
	next     int // index of the next header to write
	total    int64
	err      error
	closed   bool
}

// CreateSharded starts writing headers into dir (created if needed). Tensors
// are assigned to shards in order, starting a new shard when the next tensor
// would push the current one past maxShardBytes of data (a tensor larger than
// the limit gets a shard of its own); maxShardBytes <= 0 means one shard.
// metadata goes into every shard's header.
func CreateSharded(dir string, headers []Header, maxShardBytes int64, metadata map[string]string) (*ShardedWriter, error) {
	_, sizes, err := encodeHeader(headers, metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	s := &ShardedWriter{dir: dir, headers: headers, metadata: metadata, shardOf: make([]int, len(headers))}
	var cur int64
	for i, n := range sizes {
		s.total += n
		if len(s.groups) == 0 || (maxShardBytes > 0 && cur > 0 && cur+n > maxShardBytes) {
			s.groups = append(s.groups, nil)
			cur = 0
		}
		k := len(s.groups) - 1
		s.groups[k] = append(s.groups[k], i)
		s.shardOf[i] = k
		cur += n
	}
	if len(s.groups) == 0 {
		s.groups = [][]int{nil} // no tensors: one empty file
	}
	if len(s.groups) == 1 {
		s.files = []string{SingleName}
	} else {
		for k := range s.groups {
			s.files = append(s.files, fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, len(s.groups)))
		}
		// OpenDir prefers model.safetensors, which would hide the new shards.
		if _, err := os.Stat(filepath.Join(dir, SingleName)); err == nil {
			return nil, fmt.Errorf("%s: already holds %s, which would shadow a sharded checkpoint; remove it first", dir, SingleName)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.open(0); err != nil {
		return nil, err
	}
	return s, nil
}

// open starts the temporary file of shard k.
func (s *ShardedWriter) open(k int) error {
	hs := make([]Header, len(s.groups[k]))
	for j, i := range s.groups[k] {
		hs[j] = s.headers[i]
	}
	w, err := Create(filepath.Join(s.dir, s.files[k]), hs, s.metadata)
	if err != nil {
		return s.fail(err)
	}
	s.shards = append(s.shards, w)
	return nil
}

// Write writes the data of the next tensor, as Writer.Write does.
func (s *ShardedWriter) Write(name string, data []byte) error {
	return s.write(name, data, (*Writer).Write)
}

// WritePart writes the next bytes of the next tensor, as Writer.WritePart
// does.
func (s *ShardedWriter) WritePart(name string, data []byte) error {
	return s.write(name, data, (*Writer).WritePart)
}

// write passes data to the current shard with f and goes on to the next
// shard when the shard's last tensor is complete.
func (s *ShardedWriter) write(name string, data []byte, f func(*Writer, string, []byte) error) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return fmt.Errorf("%s: writer is closed", s.dir)
	}
	if s.next >= len(s.headers) {
		return fmt.Errorf("%s: tensor %q: all %d declared tensors are already written", s.dir, name, len(s.headers))
	}
	k := s.shardOf[s.next]
	w := s.shards[k]
	before := w.next
	if err := f(w, name, data); err != nil {
		if w.err != nil {
			return s.fail(err)
		}
		return err
	}
	if w.next == before { // a part; the tensor is not complete yet
		return nil
	}
	s.next++
	if s.next == len(s.headers) || s.shardOf[s.next] != k {
		if err := w.finish(); err != nil {
			return s.fail(err)
		}
		if s.next < len(s.headers) {
			return s.open(k + 1)
		}
	}
	return nil
}

// Close checks that every tensor was written, renames the shards into
// place and writes the index (when there is more than one shard).
func (s *ShardedWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return fmt.Errorf("%s: writer is closed", s.dir)
	}
	if s.next < len(s.headers) {
		return s.fail(fmt.Errorf("%s: only %d of %d tensors were written (next missing: %q); nothing was saved", s.dir, s.next, len(s.headers), s.headers[s.next].Name))
	}
	if len(s.headers) == 0 {
		if err := s.shards[0].finish(); err != nil {
			return s.fail(err)
		}
	}
	for _, w := range s.shards {
		if err := w.commit(); err != nil {
			return s.fail(err)
		}
	}
	s.closed = true
	if len(s.files) == 1 {
		return nil
	}
	index, err := s.index()
	if err != nil {
		return s.fail(err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, IndexName), index); err != nil {
		return s.fail(err)
	}
	return nil
}

// Abort removes every shard not yet renamed into place.
func (s *ShardedWriter) Abort() {
	for _, w := range s.shards {
		w.Abort()
	}
	s.closed = true
}

func (s *ShardedWriter) fail(err error) error {
	s.Abort()
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// index renders model.safetensors.index.json: total_size and weight_map,
// keys sorted (encoding/json sorts map keys), indented like the Hugging Face
// files.
func (s *ShardedWriter) index() ([]byte, error) {
	ix := Index{Metadata: map[string]any{"total_size": s.total}, WeightMap: map[string]string{}}
	for i, h := range s.headers {
		ix.WeightMap[h.Name] = s.files[s.shardOf[i]]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ix); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeFileAtomic writes data through a temporary file beside path and
// syncs the folder, so that the rename survives a crash.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
