// Package stories260k embeds the default model, so that moco generates text
// on a fresh machine with no downloads: karpathy's llama2.c stories260K
// (MIT license), a 260K-parameter Llama trained on TinyStories, converted to
// Hugging Face layout.
package stories260k

import _ "embed"

// The files of the model folder.
var (
	//go:embed config.json
	Config []byte
	//go:embed model.safetensors
	Weights []byte
	//go:embed tokenizer.json
	Tokenizer []byte
	//go:embed tokenizer_config.json
	TokenizerConfig []byte
)
