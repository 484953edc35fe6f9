package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// bpe is the byte-pair-encoding model of tokenizer.json.
type bpe struct {
	vocab   *vocabIndex
	tokens  []string // id -> token string ("" for gaps)
	merges  *mergeTable
	mergeAB [][2]int32 // token ids, in rank order, for Compare

	unk          int // -1 when there is no unk token
	unkToken     string
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int // ids of <0xNN> tokens (-1 when absent)

	// levelIDs are the ids of the 256 byte-level characters, when all are
	// in the vocabulary: a byte-level word then needs no mapping.
	levelIDs   [256]int32
	haveLevels bool
}

type merge struct {
	rank  int32
	newID int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type bpeJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

func (m *bpe) tokenID(tok string) (int, bool) { return m.vocab.get(tok) }
func (m *bpe) vocabLen() int                  { return m.vocab.len() }
func (m *bpe) idTokens() []string             { return m.tokens }

// newBPE builds the model from its object's fields (splitObject's, which
// it may change): encoding/json sees only the small fields and the
// vocabulary and merges go to the fast scanner, unless pre (which may be
// nil) holds them read.
func newBPE(fields map[string]json.RawMessage, pre *modelJSON) (*bpe, error) {
	var j bpeJSON
	vocabRaw, mergesRaw := fields["vocab"], fields["merges"]
	delete(fields, "vocab")
	delete(fields, "merges")
	small, _ := json.Marshal(fields)
	if err := json.Unmarshal(small, &j); err != nil {
		return nil, fmt.Errorf("model: %v", err)
	}
	// Keys that differ only in case take precedence, as in build.
	if j.Vocab == nil {
		j.Vocab = vocabRaw
	}
	if j.Merges == nil {
		j.Merges = mergesRaw
	}
	if j.Type == "" && j.Merges == nil {
		return nil, fmt.Errorf("model: no type")
	}
	if j.Type != "" && j.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", j.Type)
	}
	if j.Dropout != nil && *j.Dropout > 0 && *j.Dropout < 1 {
		return nil, fmt.Errorf("BPE dropout %v is not supported (it makes tokenization random)", *j.Dropout)
	}
	if j.Vocab == nil {
		return nil, fmt.Errorf("model: BPE has no vocab")
	}
	var (
		list  *vocabList
		vocab *vocabIndex
		err   error
	)
	if pre != nil && pre.vocabIdx != nil && sameBytes(pre.vocabRaw, j.Vocab) {
		list, vocab = pre.vocab, pre.vocabIdx
	} else {
		pre = nil
		if list, err = scanVocab(j.Vocab); err != nil {
			return nil, fmt.Errorf("model vocab: %v", err)
		}
		if vocab, err = newVocabIndex(list); err != nil {
			return nil, fmt.Errorf("model vocab: %v", err)
		}
	}
	m := &bpe{vocab: vocab, unk: -1, fuseUnk: j.FuseUnk, byteFallback: j.ByteFallback, ignoreMerges: j.IgnoreMerges}
	if j.ContinuingSubwordPrefix != nil {
		m.prefix = *j.ContinuingSubwordPrefix
	}
	if j.EndOfWordSuffix != nil {
		m.suffix = *j.EndOfWordSuffix
	}
	if pre != nil && pre.tokens != nil {
		m.tokens = pre.tokens
	} else if m.tokens, err = bpeTokens(list, vocab); err != nil {
		return nil, fmt.Errorf("model vocab: %v", err)
	}
	if j.UnkToken != nil {
		id, ok := vocab.get(*j.UnkToken)
		if !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocabulary", *j.UnkToken)
		}
		m.unk, m.unkToken = id, *j.UnkToken
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := vocab.get(fmt.Sprintf("<0x%02X>", b)); ok {
			m.byteIDs[b] = id
		}
	}
	m.haveLevels = m.prefix == "" && m.suffix == ""
	for b := range m.levelIDs {
		id, ok := vocab.get(string(byteToRune[b]))
		m.levelIDs[b] = int32(id)
		m.haveLevels = m.haveLevels && ok
	}
	var r *mergeReader
	if pre != nil && pre.merges != nil && sameBytes(pre.mergesRaw, j.Merges) && m.prefix == "" {
		r = pre.merges
	} else {
		r = newMergeReader(vocab, m.tokens, m.prefix)
		if err := r.read(j.Merges); err != nil {
			return nil, fmt.Errorf("model merges: %v", err)
		}
	}
	if r.missing >= 0 {
		return nil, fmt.Errorf("model merges: merge %d result %q is not in the vocabulary", r.missing, r.missingTok)
	}
	m.mergeAB = r.pairs
	if cap(r.pairs) > len(r.pairs)+len(r.pairs)/8 {
		m.mergeAB = slices.Clone(r.pairs) // it stays with the model
	}
	m.merges = newMergeTable(len(r.pairs))
	for rank, ab := range r.pairs {
		k := pairKey(int(ab[0]), int(ab[1]))
		m.merges.add(k, merge{int32(rank), r.results[rank]}) // the first (best) rank wins
	}
	return m, nil
}

// mergeReader turns merges into ids as they are read: the pair's, and
// that of the token they make.
type mergeReader struct {
	vocab  *vocabIndex
	tokens []string // id -> token
	prefix string   // continuing_subword_prefix, dropped from the second token

	pairs   [][2]int32
	results []int32
	// missing is the first merge whose result is not in the vocabulary
	// (-1 when none is), missingTok that result: an error only once all
	// the merges are read, as syntax errors come first.
	missing    int
	missingTok string

	last int // the result of the merge before
	buf  []byte

	queue  [mergeBatch][2][]byte
	queued int
}

// mergeBatch is how many merges the reader looks up at a time.
const mergeBatch = maxBatch / 2

func newMergeReader(vocab *vocabIndex, tokens []string, prefix string) *mergeReader {
	return &mergeReader{vocab: vocab, tokens: tokens, prefix: prefix, missing: -1, last: -1}
}

// read reads the merges of data.
func (r *mergeReader) read(data []byte) error {
	return r.readAt(&jsonScanner{data: data})
}

// readAt reads the merges at s.pos.
func (r *mergeReader) readAt(s *jsonScanner) error {
	_, err := s.eachMerge(r.add)
	// The merges queued before an error come before it.
	if qerr := r.flush(); qerr != nil {
		return qerr
	}
	return err
}

// add queues the merge of a and b: merges are looked up a batch at a
// time (see vocabIndex.getBatch).
func (r *mergeReader) add(a, b []byte) error {
	r.queue[r.queued] = [2][]byte{a, b}
	r.queued++
	if r.queued < len(r.queue) {
		return nil
	}
	return r.flush()
}

// flush adds the queued merges, failing at the first that uses a token not
// in the vocabulary.
func (r *mergeReader) flush() error {
	n := r.queued
	r.queued = 0
	var toks [2 * mergeBatch][]byte
	var ids [2 * mergeBatch]int32
	for k, ab := range r.queue[:n] {
		toks[2*k], toks[2*k+1] = ab[0], ab[1]
	}
	r.vocab.getBatch(toks[:2*n], ids[:2*n])
	for k, ab := range r.queue[:n] {
		x, y := ids[2*k], ids[2*k+1]
		if x < 0 || y < 0 {
			return unknownMerge(len(r.pairs), ab[0], ab[1])
		}
		r.addIDs(ab[0], ab[1], x, y)
	}
	return nil
}

// addIDs adds the merge of a and b, whose ids are x and y.
func (r *mergeReader) addIDs(a, b []byte, x, y int32) {
	r.pairs = append(growFor(r.pairs, 1), [2]int32{x, y})
	if len(r.prefix) > 0 && bytes.HasPrefix(b, []byte(r.prefix)) {
		b = b[len(r.prefix):]
	}
	// Merges come in the order of their results' ids, nearly always one
	// after the other or the same again (different splits of one token):
	// try those before the index. The vocabulary maps strings to ids one
	// to one, so a token that matches is the result ("" also marks a gap
	// in tokens, so it is left to the index).
	n := r.last
	switch {
	case r.isToken(n, a, b):
	case r.isToken(n+1, a, b):
		n++
	default:
		r.buf = append(append(r.buf[:0], a...), b...)
		var ok bool
		if n, ok = r.vocab.getBytes(r.buf); !ok && r.missing < 0 {
			r.missing, r.missingTok = len(r.pairs)-1, string(r.buf)
		}
	}
	r.last = n
	r.results = append(growFor(r.results, 1), int32(n))
}

// isToken reports whether id is the id of a+b, which is not empty.
func (r *mergeReader) isToken(id int, a, b []byte) bool {
	if id < 0 || id >= len(r.tokens) || len(a)+len(b) == 0 {
		return false
	}
	t := r.tokens[id]
	return len(t) == len(a)+len(b) && t[:len(a)] == string(a) && t[len(a):] == string(b)
}

// bpeTokens returns the id -> token table of vocab, which was read as l.
// With distinct keys, as in practice, it goes through l in order rather
// than through the index.
func bpeTokens(l *vocabList, vocab *vocabIndex) ([]string, error) {
	distinct := vocab.len() == l.len()
	maxID := -1
	if distinct {
		for _, id := range l.ids {
			maxID = max(maxID, int(id))
		}
	} else {
		for _, id := range vocab.all() {
			maxID = max(maxID, id)
		}
	}
	if maxID >= 1<<24 {
		return nil, fmt.Errorf("id %d is implausibly large", maxID)
	}
	tokens := make([]string, maxID+1)
	add := func(tok string, id int) error {
		if tokens[id] != "" {
			return fmt.Errorf("id %d is used by both %q and %q", id, tokens[id], tok)
		}
		tokens[id] = tok
		return nil
	}
	if distinct {
		for i, id := range l.ids {
			if err := add(l.key(i), int(id)); err != nil {
				return nil, err
			}
		}
		return tokens, nil
	}
	for tok, id := range vocab.all() {
		if err := add(tok, id); err != nil {
			return nil, sharedID(vocab.all()) // the index's order varies run to run
		}
	}
	return tokens, nil
}

// symbol is one piece of a word during merging: a doubly linked list
// over a slice.
type symbol struct {
	id         int32
	prev, next int32
	dead       bool
}

// initial splits word into its first symbols: one per character, with
// byte fallback and unk handling.
func (m *bpe) initial(word string, syms []symbol) []symbol {
	lastUnk := false
	for i := 0; i < len(word); {
		_, size := utf8.DecodeRuneInString(word[i:])
		ch := word[i : i+size]
		first, last := i == 0, i+size == len(word)
		i += size
		id, ok := 0, false
		if (m.prefix == "" || first) && (m.suffix == "" || !last) {
			id, ok = m.vocab.get(ch)
		} else {
			s := ch
			if !first {
				s = m.prefix + s
			}
			if last {
				s += m.suffix
			}
			id, ok = m.vocab.get(s)
		}
		if ok {
			syms = append(syms, symbol{id: int32(id)})
			lastUnk = false
			continue
		}
		if m.byteFallback {
			all := true
			for j := 0; j < len(ch); j++ {
				if m.byteIDs[ch[j]] < 0 {
					all = false
					break
				}
			}
			if all {
				for j := 0; j < len(ch); j++ {
					syms = append(syms, symbol{id: int32(m.byteIDs[ch[j]])})
				}
				lastUnk = false
				continue
			}
		}
		if m.unk < 0 {
			continue // no unk token: the character is dropped, as in the reference
		}
		if m.fuseUnk && lastUnk {
			continue
		}
		syms = append(syms, symbol{id: int32(m.unk)})
		lastUnk = true
	}
	for i := range syms {
		syms[i].prev = int32(i - 1)
		syms[i].next = int32(i + 1)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

func (m *bpe) encodeWord(word string) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab.get(word); ok {
			return []int{id}
		}
	}
	var buf [64]symbol
	syms := m.initial(word, buf[:0])
	if len(syms) > 1 {
		m.mergeAll(syms)
	}
	ids := make([]int, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = int(syms[i].next) {
		ids = append(ids, int(syms[i].id))
	}
	return ids
}

// encodeBytes encodes a word given in raw bytes, as encodeWord would
// encode it in the byte-level alphabet.
func (m *bpe) encodeBytes(word string) []int {
	if !m.haveLevels || m.ignoreMerges {
		return m.encodeWord(byteLevelString(word))
	}
	var buf [64]symbol
	syms := buf[:0]
	for i := 0; i < len(word); i++ {
		syms = append(syms, symbol{id: m.levelIDs[word[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[len(syms)-1].next = -1
	if len(syms) > 1 {
		m.mergeAll(syms)
	}
	ids := make([]int, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = int(syms[i].next) {
		ids = append(ids, int(syms[i].id))
	}
	return ids
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	rank, pos int32
	newID     int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// mergeAll applies merges lowest rank first (leftmost among equal ranks)
// until none applies, using a binary heap of candidate pairs.
func (m *bpe) mergeAll(syms []symbol) {
	var hbuf [64]candidate
	h := hbuf[:0]
	push := func(c candidate) {
		h = append(h, c)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].less(h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() candidate {
		top := h[0]
		n := len(h) - 1
		h[0] = h[n]
		h = h[:n]
		for i := 0; ; {
			l, r, s := 2*i+1, 2*i+2, i
			if l < n && h[l].less(h[s]) {
				s = l
			}
			if r < n && h[r].less(h[s]) {
				s = r
			}
			if s == i {
				break
			}
			h[i], h[s] = h[s], h[i]
			i = s
		}
		return top
	}
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges.get(pairKey(int(syms[i].id), int(syms[i+1].id))); ok {
			push(candidate{mg.rank, int32(i), mg.newID})
		}
	}
	for len(h) > 0 {
		c := pop()
		s := &syms[c.pos]
		if s.dead || s.next < 0 {
			continue
		}
		nx := &syms[s.next]
		mg, ok := m.merges.get(pairKey(int(s.id), int(nx.id)))
		if !ok || mg.rank != c.rank || mg.newID != c.newID {
			continue // stale: one side has changed since this was queued
		}
		s.id = c.newID
		nx.dead = true
		s.next = nx.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			p := syms[s.prev]
			if mg, ok := m.merges.get(pairKey(int(p.id), int(s.id))); ok {
				push(candidate{mg.rank, s.prev, mg.newID})
			}
		}
		if s.next >= 0 {
			if mg, ok := m.merges.get(pairKey(int(s.id), int(syms[s.next].id))); ok {
				push(candidate{mg.rank, c.pos, mg.newID})
			}
		}
	}
}
