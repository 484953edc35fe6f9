// Package atomicfile writes a file so that a reader finds its old contents
// or its new ones, never part of them, and an error leaves it untouched:
// the data go to a temporary file in the same folder, which is synced and
// then renamed over the file.
package atomicfile
