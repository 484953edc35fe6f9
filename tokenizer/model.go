package tokenizer

import (
	"encoding/json"
	"fmt"
)

// A model turns one pre-tokenized word into ids.
type model interface {
	encodeWord(word string) []int
	tokenID(tok string) (int, bool)
	vocabLen() int      // distinct tokens
	idTokens() []string // id -> token ("" for gaps)
}

// newModel builds the model of tokenizer.json, raw, which pre may hold
// already split and read.
func newModel(raw json.RawMessage, pre *modelJSON) (model, error) {
	var head struct {
		Type string `json:"type"`
	}
	// Only the type is needed here; skip decoding the rest.
	var fields map[string]json.RawMessage
	if pre != nil && sameBytes(pre.raw, raw) {
		fields = pre.fields
	} else {
		pre = nil
		var err error
		if fields, err = splitObject(raw); err != nil {
			return nil, fmt.Errorf("model: %v", err)
		}
	}
	if t, ok := fields["type"]; ok {
		if err := json.Unmarshal(t, &head.Type); err != nil {
			return nil, fmt.Errorf("model: type: %v", err)
		}
	}
	// The constructors take the fields split here: a second split would
	// scan the whole vocabulary again.
	switch head.Type {
	case "BPE", "":
		return newBPE(fields, pre)
	case "WordPiece":
		return newWordPiece(fields)
	case "Unigram":
		return newUnigram(raw)
	case "WordLevel":
		return newWordLevel(fields)
	}
	return nil, fmt.Errorf("model type %q is not supported", head.Type)
}

func modelKind(m model) string {
	switch m.(type) {
	case *bpe:
		return "BPE"
	case *wordPiece:
		return "WordPiece"
	case *unigram:
		return "Unigram"
	case *wordLevel:
		return "WordLevel"
	}
	return fmt.Sprintf("%T", m)
}

// modelJSON is the model object of tokenizer.json as splitTokenizerFile
// read it in passing: split into its fields, with a BPE vocabulary and its
// merges already parsed when they could be (else nil). This saves two more
// scans of the bulk of the file. Anything unusual (a value that fails to
// parse, a key given twice) leaves the work to the model's constructor,
// which then reports what it always did.
type modelJSON struct {
	raw    []byte
	fields map[string]json.RawMessage

	vocab     *vocabList
	vocabIdx  *vocabIndex
	vocabRaw  []byte   // the value vocab was read from
	tokens    []string // BPE's id -> token table (nil on an error)
	merges    *mergeReader
	mergesRaw []byte
}

// splitTokenizerFile splits tokenizer.json as splitObject does, reading
// the model's fields as it passes them.
func splitTokenizerFile(data []byte) (map[string]json.RawMessage, *modelJSON, error) {
	s := &jsonScanner{data: data}
	var model *modelJSON
	fields, err := s.object(0, func(key string) bool {
		if key != "model" {
			return false
		}
		model = nil // the last value of a key counts
		if s.peek() != '{' {
			return false
		}
		m, err := s.model()
		if err != nil {
			return false // skipValue meets the error, or not, as before
		}
		model = m
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	if s.peek() != 0 {
		return nil, nil, s.errorf("data after the end of the object")
	}
	return fields, model, nil
}

// model reads the model object at s.pos (one level deep).
func (s *jsonScanner) model() (*modelJSON, error) {
	m := &modelJSON{}
	start := s.pos
	fields, err := s.object(1, func(key string) bool {
		switch key {
		case "vocab":
			// Merges read before belong to another vocabulary.
			*m = modelJSON{}
			if s.peek() != '{' {
				return false
			}
			at := s.pos
			l, err := s.vocab()
			if err != nil {
				return false
			}
			x, err := newVocabIndex(l)
			if err != nil {
				return false
			}
			m.vocab, m.vocabIdx, m.vocabRaw = l, x, s.data[at:s.pos]
			m.tokens, _ = bpeTokens(l, x) // newBPE reports the error
		case "merges":
			m.merges, m.mergesRaw = nil, nil
			if m.tokens == nil || s.peek() != '[' {
				return false
			}
			at := s.pos
			// The continuing-subword prefix is not known yet: newBPE
			// uses these only without one.
			r := newMergeReader(m.vocabIdx, m.tokens, "")
			if r.readAt(s) != nil {
				return false
			}
			m.merges, m.mergesRaw = r, s.data[at:s.pos]
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	m.raw, m.fields = s.data[start:s.pos], fields
	return m, nil
}

// sameBytes reports whether a and b are the same non-empty slice of memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}
