// Package safetensors reads and writes the safetensors tensor format.
//
// A file is an 8-byte little-endian header length, a JSON header mapping
// tensor names to dtype, shape and data offsets (plus optional string
// metadata under "__metadata__"), and the tensor data.
//
// The reader (Open, Parse, OpenDir, OpenIndex) memory-maps a file and hands
// out zero-copy views of each tensor. It validates the header completely and
// reports each problem as an error, never a panic: lengths, JSON syntax,
// duplicate names (which encoding/json would silently collapse), dtypes,
// shapes, offsets, and a data section the tensors must cover exactly with no
// gaps or overlaps. Headers need not be padded; typed views copy when the
// data is not aligned for the element type. Sharded checkpoints are opened
// through model.safetensors.index.json.
//
// The writer (Create, CreateSharded, WriteFile) streams the header and then
// each tensor's data, whole (Write) or in parts as they are made
// (WritePart: a merge sends a large tensor in pieces rather than hold it). Its output is deterministic (sorted keys, header padded
// with spaces until the data starts at a multiple of 64 bytes) and atomic: data goes to a temporary file
// in the target folder that is synced and renamed into place only when
// complete. On Linux the written pages go to disk as the writer goes and
// leave the page cache once there, so a large file does not fill the
// cache (reading it back right away reads the disk).
//
// Convert and ToF32 move between F32, F16 and BF16 with round-to-nearest-even
// narrowing and exact widening; NewMemSource serves tensors held in memory.
package safetensors
