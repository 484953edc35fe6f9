package main

import (
	"fmt"
	"os"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// defaultModelName is what messages call the embedded model.
const defaultModelName = embedded.Name

// openModel loads the model folder dir with its tokenizer; dir "" means the
// embedded default model (stories260K), so moco works with no downloads.
func openModel(dir string, opts engine.Options) (*engine.Model, *tokenizer.Tokenizer, error) {
	if dir == "" {
		return openDefaultModel(opts)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	m, err := engine.Load(dir, opts)
	if err != nil {
		return nil, nil, err
	}
	warnModel(m)
	return m, tok, nil
}

// warnModel prints what loading the model tolerated (engine.Model.Warnings).
func warnModel(m *engine.Model) {
	for _, w := range m.Warnings {
		fmt.Fprintln(os.Stderr, "moco: warning:", w)
	}
}

func openDefaultModel(opts engine.Options) (*engine.Model, *tokenizer.Tokenizer, error) {
	return embedded.Load(opts)
}
