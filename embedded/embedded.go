package embedded

import (
	"fmt"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// Name is what messages call the embedded model.
const Name = "embedded stories260K"

// Load returns the embedded model and its tokenizer. The weights are read
// in place from the binary; closing the model is allowed and releases
// nothing. Like any engine.Model it is safe for concurrent use by several
// sessions, and the tokenizer is safe for concurrent use.
func Load(opts engine.Options) (*engine.Model, *tokenizer.Tokenizer, error) {
	cfg, err := engine.ParseConfig(stories260k.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", Name, err)
	}
	src, err := safetensors.Parse(stories260k.Weights)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", Name, err)
	}
	m, err := engine.New(cfg, src, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", Name, err)
	}
	tok, err := Tokenizer()
	if err != nil {
		return nil, nil, err
	}
	return m, tok, nil
}

// Tokenizer returns the embedded model's tokenizer alone.
func Tokenizer() (*tokenizer.Tokenizer, error) {
	tok, err := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return tok, nil
}
