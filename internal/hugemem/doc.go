// Package hugemem allocates large buffers outside the Go heap, backed on
// Linux by transparent huge pages. Code that streams gigabytes of weights
// per token spends a TLB miss per 4 KiB page on ordinary memory; with
// 2 MiB pages that cost all but disappears (docs/speed.md). The Go runtime
// does not ask for huge pages where the kernel only grants them on request
// (transparent_hugepage=madvise, the common default), so the weights and
// the bandwidth probe allocate here.
package hugemem
