package safetensors

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// IndexName is the file that maps tensor names to shards.
const IndexName = "model.safetensors.index.json"

// Index is the content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
}

// Sharded is a checkpoint split over several files.
type Sharded struct {
	files   []*File
	tensors map[string]*Tensor
	names   []string
}

// OpenDir opens the weights of a model folder: model.safetensors if present,
// otherwise the shards listed in model.safetensors.index.json.
func OpenDir(dir string) (Source, error) {
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		return Open(single)
	}
	idx := filepath.Join(dir, IndexName)
	if _, err := os.Stat(idx); err != nil {
		return nil, fmt.Errorf("%s: no model.safetensors and no %s", dir, IndexName)
	}
	return OpenIndex(idx)
}

// OpenIndex opens every shard named by an index file and checks that each
// tensor the index names is present in its shard.
func OpenIndex(indexPath string) (*Sharded, error) {
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, err
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", indexPath, err)
	}
	if len(ix.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is empty", indexPath)
	}
	dir := filepath.Dir(indexPath)
	s := &Sharded{tensors: map[string]*Tensor{}}
	opened := map[string]*File{}
	var shardNames []string
	for _, shard := range ix.WeightMap {
		if _, ok := opened[shard]; !ok {
			opened[shard] = nil
			shardNames = append(shardNames, shard)
		}
	}
	sort.Strings(shardNames)
	for _, shard := range shardNames {
		if filepath.Base(shard) != shard {
			s.Close()
			return nil, fmt.Errorf("%s: shard name %q must be a file name in the same folder", indexPath, shard)
		}
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: shard %s: %w", indexPath, shard, err)
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

// Tensor returns the named tensor.
func (s *Sharded) Tensor(name string) (*Tensor, bool) {
	t, ok := s.tensors[name]
	return t, ok
}

// Names returns the tensor names in sorted order.
func (s *Sharded) Names() []string { return s.names }

// Close unmaps every shard.
func (s *Sharded) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
