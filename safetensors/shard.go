package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/mocolab/moco/internal/modeldir"
)

// SingleName is the file name of an unsharded checkpoint in a model folder.
const SingleName = "model.safetensors"

// IndexName is the file that maps tensor names to shards.
const IndexName = "model.safetensors.index.json"

// Index is the content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
}

// Sharded is a checkpoint split over several files.
type Sharded struct {
	Path     string         // the index file
	Metadata map[string]any // the index's metadata (e.g. total_size)

	files   []*File
	tensors map[string]*Tensor
	names   []string
}

// OpenDir opens the weights of a model folder: model.safetensors if present,
// otherwise the shards listed in model.safetensors.index.json.
func OpenDir(dir string) (Source, error) { return OpenDirWith(dir, Mapped) }

// OpenDirWith is OpenDir with every file's data brought in as how says,
// but for the tensors named in mapped, as OpenWith.
func OpenDirWith(dir string, how Load, mapped ...string) (Source, error) {
	single := filepath.Join(dir, SingleName)
	if _, err := os.Stat(single); err == nil {
		f, err := OpenWith(single, how, mapped...)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return f, nil
	}
	idx := filepath.Join(dir, IndexName)
	if _, err := os.Stat(idx); err != nil {
		if err := modeldir.Folder(dir); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: no %s and no %s", dir, SingleName, IndexName)
	}
	s, err := OpenIndexWith(idx, how, mapped...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenIndex opens every shard named by an index file and checks that each
// tensor the index names is present in its shard.
func OpenIndex(indexPath string) (*Sharded, error) { return OpenIndexWith(indexPath, Mapped) }

// OpenIndexWith is OpenIndex with every shard's data brought in as how
// says, but for the tensors named in mapped, as OpenWith.
func OpenIndexWith(indexPath string, how Load, mapped ...string) (*Sharded, error) {
	if st, err := os.Stat(indexPath); err == nil && st.Size() > MaxHeaderSize {
		return nil, fmt.Errorf("%s: index of %d bytes exceeds the limit of %d", indexPath, st.Size(), MaxHeaderSize)
	}
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, err
	}
	ix, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	dir := filepath.Dir(indexPath)
	s := &Sharded{Path: indexPath, Metadata: ix.Metadata, tensors: make(map[string]*Tensor, len(ix.WeightMap))}
	opened := map[string]*File{}
	var shards []string
	for _, shard := range ix.WeightMap {
		if _, ok := opened[shard]; !ok {
			opened[shard] = nil
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	if len(shards) > maxShards {
		return nil, fmt.Errorf("%s: index names %d shards, more than the limit of %d", indexPath, len(shards), maxShards)
	}
	for _, shard := range shards {
		if shard == "" || filepath.Base(shard) != shard || shard == "." || shard == ".." {
			s.Close()
			return nil, fmt.Errorf("%s: shard name %q must be a file name in the same folder", indexPath, shard)
		}
		p := filepath.Join(dir, shard)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			s.Close()
			return nil, fmt.Errorf("%s: shard %s is missing", indexPath, shard)
		}
		f, err := OpenWith(p, how, mapped...)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: shard %w", indexPath, err)
		}
		opened[shard] = f
		s.files = append(s.files, f)
	}
	for name, shard := range ix.WeightMap {
		t, ok := opened[shard].Tensor(name)
		if !ok {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %q is mapped to %s, which does not contain it", indexPath, name, shard)
		}
		s.tensors[name] = t
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	return s, nil
}

// Bounds of an index: the largest published checkpoints have a few hundred
// shards and under a hundred thousand tensors; every shard is a mapped file.
const (
	maxShards       = 4096
	maxIndexTensors = 1 << 20
)

// parseIndex decodes an index file, rejecting duplicate tensor names and
// non-string shard names (encoding/json would keep the last duplicate).
func parseIndex(b []byte) (*Index, error) {
	ix := &Index{WeightMap: map[string]string{}}
	haveMap := false
	err := decodeObject(b, "index", "key", func(k string, v json.RawMessage) error {
		switch k {
		case "metadata":
			if string(v) == "null" {
				return nil
			}
			if err := json.Unmarshal(v, &ix.Metadata); err != nil {
				return fmt.Errorf("index: metadata is %s, want an object", jsonKind(v))
			}
		case "weight_map":
			haveMap = true
			return decodeObject(v, "weight_map", "tensor name", func(name string, shard json.RawMessage) error {
				if len(ix.WeightMap) >= maxIndexTensors {
					return fmt.Errorf("weight_map: more than %d tensors (limit)", maxIndexTensors)
				}
				var s string
				if shard[0] != '"' || json.Unmarshal(shard, &s) != nil {
					return fmt.Errorf("weight_map: shard of %q is %s, want a file name", name, jsonKind(shard))
				}
				ix.WeightMap[name] = s
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveMap || len(ix.WeightMap) == 0 {
		return nil, errors.New("index has no tensors in weight_map")
	}
	return ix, nil
}

// Tensor returns the named tensor.
func (s *Sharded) Tensor(name string) (*Tensor, bool) {
	t, ok := s.tensors[name]
	return t, ok
}

// Names returns the tensor names in sorted order.
func (s *Sharded) Names() []string { return s.names }

// Files returns the open shards, sorted by file name.
func (s *Sharded) Files() []*File { return s.files }

// Release is File.Release on the shard that holds b.
func (s *Sharded) Release(b []byte) {
	for _, f := range s.files {
		f.Release(b)
	}
}

// Close unmaps every shard.
func (s *Sharded) Close() error {
	if s == nil {
		return nil
	}
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
