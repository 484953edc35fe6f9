package tokenizer

import (
	"fmt"
	"hash/maphash"
	"iter"
	"math"
)

// vocabIndex maps the strings of a vocabulary to their ids, as a
// map[string]int would: an open-addressing hash table with linear probing
// whose slots point into the one string that holds all the keys (a
// vocabList's). Building it takes half the time of a Go map, and a lookup
// touches two places in memory (the slot and the key) rather than three or
// four: at load, a large BPE looks up a million merge tokens.
type vocabIndex struct {
	slots []vocabSlot
	keys  string
	mask  uint64
	n     int // distinct keys
}

type vocabSlot struct {
	tag      uint32 // high half of the hash, low bit set; 0: empty
	id       int32
	off, len uint32 // the key is keys[off : off+len]
}

// vocabSeed seeds the hash of every index, so that indexes of the same
// list are alike.
var vocabSeed = maphash.MakeSeed()

// newVocabIndex indexes l; of duplicate keys the last wins, as in
// encoding/json.
func newVocabIndex(l *vocabList) (*vocabIndex, error) {
	if uint64(len(l.keys)) > math.MaxUint32 {
		return nil, fmt.Errorf("%d bytes of token strings (limit 4 GiB)", len(l.keys))
	}
	size := 16
	for size < 2*l.len() {
		size *= 2
	}
	x := &vocabIndex{slots: make([]vocabSlot, size), keys: l.keys, mask: uint64(size - 1)}
	start := 0
	for i, end := range l.ends {
		k := l.keys[start:end]
		h := maphash.String(vocabSeed, k)
		tag := uint32(h>>32) | 1
		for j := h & x.mask; ; j = (j + 1) & x.mask {
			s := &x.slots[j]
			if s.tag == 0 {
				*s = vocabSlot{tag, l.ids[i], uint32(start), uint32(end - start)}
				x.n++
				break
			}
			if s.tag == tag && x.key(s) == k {
				s.id = l.ids[i]
				break
			}
		}
		start = end
	}
	return x, nil
}

func (x *vocabIndex) key(s *vocabSlot) string { return x.keys[s.off : s.off+s.len] }

// len returns the number of distinct keys.
func (x *vocabIndex) len() int { return x.n }

// get returns the id of tok.
func (x *vocabIndex) get(tok string) (int, bool) {
	h := maphash.String(vocabSeed, tok)
	tag := uint32(h>>32) | 1
	for j := h & x.mask; ; j = (j + 1) & x.mask {
		s := &x.slots[j]
		if s.tag == tag && int(s.len) == len(tok) && x.key(s) == tok {
			return int(s.id), true
		}
		if s.tag == 0 {
			return 0, false
		}
	}
}

// getBytes returns the id of tok.
func (x *vocabIndex) getBytes(tok []byte) (int, bool) {
	h := maphash.Bytes(vocabSeed, tok)
	return x.probe(tok, h, h&x.mask)
}

// probe looks for tok, whose hash is h, from slot j on.
func (x *vocabIndex) probe(tok []byte, h, j uint64) (int, bool) {
	tag := uint32(h>>32) | 1
	for ; ; j = (j + 1) & x.mask {
		s := &x.slots[j]
		if s.tag == tag && int(s.len) == len(tok) && x.key(s) == string(tok) {
			return int(s.id), true
		}
		if s.tag == 0 {
			return 0, false
		}
	}
}

// maxBatch is the most tokens getBatch takes.
const maxBatch = 32

// getBatch looks up toks (at most maxBatch) as getBytes does, setting
// ids[i] to the id of toks[i], or to -1. A lookup waits on memory twice, for its slot and for
// its key; reading the first slot of every token before comparing any key
// lets the waits of the batch overlap.
func (x *vocabIndex) getBatch(toks [][]byte, ids []int32) {
	var hs [maxBatch]uint64
	var first [maxBatch]vocabSlot
	ids = ids[:len(toks)]
	for i, t := range toks {
		h := maphash.Bytes(vocabSeed, t)
		hs[i], first[i] = h, x.slots[h&x.mask]
	}
	for i, t := range toks {
		h, s := hs[i], &first[i]
		switch {
		case s.tag == uint32(h>>32)|1 && int(s.len) == len(t) && x.key(s) == string(t):
			ids[i] = s.id
		case s.tag == 0:
			ids[i] = -1
		default:
			ids[i] = -1
			if id, ok := x.probe(t, h, (h+1)&x.mask); ok {
				ids[i] = int32(id)
			}
		}
	}
}

// all yields each key and its id, in no particular order.
func (x *vocabIndex) all() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		for i := range x.slots {
			if s := &x.slots[i]; s.tag != 0 && !yield(x.key(s), int(s.id)) {
				return
			}
		}
	}
}
