// Package modeldir explains why a path is not a Hugging Face model folder,
// so that every loader can say so in one voice: a missing path, a file
// (a GGUF or safetensors file given for its folder), or a PEFT adapter
// folder given as a model.
package modeldir
