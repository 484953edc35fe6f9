// Package kernels holds the numeric inner loops of moco: dot products,
// matrix-vector and matrix-matrix products of f32 activations against f32,
// bf16, f16 and int8 (Q8_0) weights, and the vector operations of a
// transformer layer (RMSNorm, softmax, activations, rotary embedding).
//
// The pure-Go functions are the reference. Assembly versions for amd64 sit
// beside them behind build tags, are chosen once at start-up from the CPU's
// features, and are tested against the reference. The purego build tag forces
// the reference everywhere.
package kernels
