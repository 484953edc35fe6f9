// Package tokenizer implements Hugging Face tokenizer.json tokenizers
// (normalizers, pre-tokenizers, BPE models, post-processors and decoders),
// a streaming detokenizer, and chat templates from tokenizer_config.json.
//
// The goal is id-for-id agreement with the Hugging Face tokenizers library:
// a component this package does not implement is reported as an error,
// never approximated.
package tokenizer
