// Package engine loads Hugging Face causal language model folders and runs
// their forward pass: configuration, weights (memory-mapped), the KV cache and
// one readable transformer forward pass whose family differences (Llama,
// Mistral, Qwen2/3, Gemma2/3, OLMo2, Phi-3) are configuration switches.
package engine
