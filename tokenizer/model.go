package tokenizer

import (
	"encoding/json"
	"fmt"
)

// A model turns one pre-tokenized word into ids.
type model interface {
	encodeWord(word string) []int
	vocabIDs() map[string]int // token -> id
	idTokens() []string       // id -> token ("" for gaps)
}

// newModel builds the model of tokenizer.json.
func newModel(raw json.RawMessage) (model, error) {
	var head struct {
		Type string `json:"type"`
	}
	// Only the type is needed here; skip decoding the rest.
	fields, err := splitObject(raw)
	if err != nil {
		return nil, fmt.Errorf("model: %v", err)
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
		return newBPE(fields)
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
