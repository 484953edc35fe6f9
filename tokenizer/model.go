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
	switch head.Type {
	case "BPE", "":
		return newBPE(raw)
	case "WordPiece":
		return newWordPiece(raw)
	case "Unigram":
		return newUnigram(raw)
	case "WordLevel":
		return newWordLevel(raw)
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
