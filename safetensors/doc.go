// Package safetensors reads and writes the safetensors tensor format.
//
// The reader memory-maps a file and hands out zero-copy views of each tensor;
// it validates the header completely (lengths, offsets, dtypes, overlaps) and
// reports every problem as an error, never a panic. Sharded checkpoints are
// opened through model.safetensors.index.json. The writer produces single
// files or shards with an index, deterministically and atomically.
package safetensors
