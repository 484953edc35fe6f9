// Command moco is the command-line interface to the moco inference engine:
// generation, inspection, tokenization, perplexity, multi-model collaboration,
// merging and benchmarks.
package main
