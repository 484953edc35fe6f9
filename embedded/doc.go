// Package embedded opens the model that ships inside moco, so that programs
// (and the examples in this repository) run on a fresh machine with no
// downloads: karpathy's llama2.c stories260K (MIT license), a
// 260K-parameter Llama trained on TinyStories, in Hugging Face layout.
//
// It sits beside decode and collab in the import order: it uses engine and
// tokenizer and nothing above them.
package embedded
