package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"unicode/utf8"
)

// wordPiece is the WordPiece model (BERT): greedy longest-match-first
// over the vocabulary, continuations marked with a prefix ("##").
type wordPiece struct {
	vocab    map[string]int
	tokens   []string
	unk      int
	prefix   string
	maxChars int
}

func (m *wordPiece) tokenID(tok string) (int, bool) { id, ok := m.vocab[tok]; return id, ok }
func (m *wordPiece) vocabLen() int                  { return len(m.vocab) }
func (m *wordPiece) idTokens() []string             { return m.tokens }

// newWordPiece builds the model from its object's fields (splitObject's,
// which it may change).
func newWordPiece(fields map[string]json.RawMessage) (*wordPiece, error) {
	vocabRaw := fields["vocab"]
	delete(fields, "vocab")
	small, _ := json.Marshal(fields)
	j := struct {
		UnkToken string  `json:"unk_token"`
		Prefix   *string `json:"continuing_subword_prefix"`
		MaxChars *int    `json:"max_input_chars_per_word"`
	}{UnkToken: "[UNK]"}
	if err := json.Unmarshal(small, &j); err != nil {
		return nil, fmt.Errorf("model WordPiece: %v", err)
	}
	if vocabRaw == nil {
		return nil, fmt.Errorf("model WordPiece: no vocab")
	}
	vocab, err := parseVocab(vocabRaw)
	if err != nil {
		return nil, fmt.Errorf("model WordPiece vocab: %v", err)
	}
	tokens, err := idTable(vocab)
	if err != nil {
		return nil, fmt.Errorf("model WordPiece vocab: %v", err)
	}
	m := &wordPiece{vocab: vocab, tokens: tokens, prefix: "##", maxChars: 100}
	if j.Prefix != nil {
		m.prefix = *j.Prefix
	}
	if j.MaxChars != nil {
		m.maxChars = *j.MaxChars
	}
	id, ok := vocab[j.UnkToken]
	if !ok {
		return nil, fmt.Errorf("model WordPiece: unk_token %q is not in the vocabulary", j.UnkToken)
	}
	m.unk = id
	return m, nil
}

func (m *wordPiece) encodeWord(word string) []int {
	if utf8.RuneCountInString(word) > m.maxChars {
		return []int{m.unk}
	}
	var ids []int
	for start := 0; start < len(word); {
		end, found := len(word), -1
		for end > start {
			sub := word[start:end]
			if start > 0 {
				sub = m.prefix + sub
			}
			if id, ok := m.vocab[sub]; ok {
				found = id
				break
			}
			_, n := utf8.DecodeLastRuneInString(word[start:end])
			end -= n
		}
		if found < 0 {
			return []int{m.unk} // the whole word is unknown
		}
		ids = append(ids, found)
		start = end
	}
	return ids
}

// idTable inverts a vocabulary.
func idTable(vocab map[string]int) ([]string, error) {
	n := 0
	for _, id := range vocab {
		if id >= 1<<24 {
			return nil, fmt.Errorf("id %d is implausibly large", id)
		}
		n = max(n, id+1)
	}
	tokens := make([]string, n)
	for tok, id := range vocab {
		if tokens[id] != "" {
			return nil, sharedID(maps.All(vocab))
		}
		tokens[id] = tok
	}
	return tokens, nil
}

// sharedID is the error for a vocabulary in which tokens share an id: it
// names the least such id and the two least of its tokens, so that the
// message does not change with the order a map or hash index yields them
// in (the fuzzer found two readings of one file naming the same pair in
// either order).
func sharedID(vocab iter.Seq2[string, int]) error {
	byID := map[int][]string{}
	for tok, id := range vocab {
		byID[id] = append(byID[id], tok)
	}
	least := -1
	for id, toks := range byID {
		if len(toks) > 1 && (least < 0 || id < least) {
			least = id
		}
	}
	if least < 0 {
		return errors.New("tokens share an id") // not reached: the caller found one
	}
	toks := byID[least]
	slices.Sort(toks)
	return fmt.Errorf("id %d is used by both %q and %q", least, toks[0], toks[1])
}

// wordLevel maps each word to its id, or to the unk token.
type wordLevel struct {
	vocab  map[string]int
	tokens []string
	unk    int
}

func (m *wordLevel) tokenID(tok string) (int, bool) { id, ok := m.vocab[tok]; return id, ok }
func (m *wordLevel) vocabLen() int                  { return len(m.vocab) }
func (m *wordLevel) idTokens() []string             { return m.tokens }

func (m *wordLevel) encodeWord(word string) []int {
	if id, ok := m.vocab[word]; ok {
		return []int{id}
	}
	return []int{m.unk}
}

// newWordLevel builds the model from its object's fields (splitObject's).
func newWordLevel(fields map[string]json.RawMessage) (*wordLevel, error) {
	var unk string
	if u, ok := fields["unk_token"]; ok {
		if err := json.Unmarshal(u, &unk); err != nil {
			return nil, fmt.Errorf("model WordLevel: unk_token: %v", err)
		}
	}
	if fields["vocab"] == nil {
		return nil, fmt.Errorf("model WordLevel: no vocab")
	}
	vocab, err := parseVocab(fields["vocab"])
	if err != nil {
		return nil, fmt.Errorf("model WordLevel vocab: %v", err)
	}
	tokens, err := idTable(vocab)
	if err != nil {
		return nil, fmt.Errorf("model WordLevel vocab: %v", err)
	}
	id, ok := vocab[unk]
	if !ok {
		// The reference fails on an unknown word in this case; refuse the
		// model rather than drop words.
		return nil, fmt.Errorf("model WordLevel: unk_token %q is not in the vocabulary", unk)
	}
	return &wordLevel{vocab, tokens, id}, nil
}
