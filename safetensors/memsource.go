package safetensors

import "sort"

// memSource is a Source over tensors held in memory.
type memSource struct {
	tensors map[string]*Tensor
	names   []string
}

// NewMemSource returns a Source over in-memory tensors, for example merge
// candidates or converted weights. The tensors are not copied. When two
// tensors share a name, the later one wins. Close does nothing.
func NewMemSource(tensors []*Tensor) Source {
	m := &memSource{tensors: make(map[string]*Tensor, len(tensors))}
	for _, t := range tensors {
		if _, dup := m.tensors[t.Name]; !dup {
			m.names = append(m.names, t.Name)
		}
		m.tensors[t.Name] = t
	}
	sort.Strings(m.names)
	return m
}

func (m *memSource) Tensor(name string) (*Tensor, bool) {
	t, ok := m.tensors[name]
	return t, ok
}

func (m *memSource) Names() []string { return m.names }

func (m *memSource) Close() error { return nil }
