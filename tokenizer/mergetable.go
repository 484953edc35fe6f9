package tokenizer

// mergeTable maps a pair of token ids to its merge: an open-addressing
// hash table with linear probing. These lookups dominate BPE, and the
// table beats a Go map at them (see BenchmarkEncodeCold).
type mergeTable struct {
	keys  []uint64 // pairKey+1; 0 marks an empty slot
	vals  []merge
	mask  uint64
	shift uint // 64 - log2(len(keys))
	n     int
}

func newMergeTable(capacity int) *mergeTable {
	size, bits := 16, uint(4)
	for size < 2*capacity {
		size *= 2
		bits++
	}
	return &mergeTable{keys: make([]uint64, size), vals: make([]merge, size), mask: uint64(size - 1), shift: 64 - bits}
}

func (t *mergeTable) slot(k uint64) uint64 {
	// Fibonacci hashing: the top bits of the product spread the
	// structured keys over the table.
	return k * 0x9E3779B97F4A7C15 >> t.shift
}

// get returns the merge of key k.
func (t *mergeTable) get(k uint64) (merge, bool) {
	k++
	for i := t.slot(k); ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return merge{}, false
		}
	}
}

// add stores v under k unless k is present; it reports whether it stored.
func (t *mergeTable) add(k uint64, v merge) bool {
	if 2*(t.n+1) > len(t.keys) {
		t.grow()
	}
	k++
	for i := t.slot(k); ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return false
		case 0:
			t.keys[i], t.vals[i] = k, v
			t.n++
			return true
		}
	}
}

func (t *mergeTable) grow() {
	old := *t
	*t = *newMergeTable(len(old.keys))
	for i, k := range old.keys {
		if k != 0 {
			t.add(k-1, old.vals[i])
		}
	}
}
