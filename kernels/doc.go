// Package kernels holds the numeric inner loops of moco: dot products,
// matrix-vector and matrix-matrix products of f32 activations against f32,
// bf16, f16, int8 (Q8_0) and 4-bit (Q4_0) weights, and the vector operations of a
// transformer layer (RMSNorm, softmax, SiLU, GELU).
//
// The pure-Go functions in ref.go are the reference. Assembly versions for
// amd64 (AVX-512, and AVX2+FMA+F16C) and arm64 (NEON, with SDOT where the
// CPU has it: the f32, bf16, f16, Q8_0 and Q4_0 matrix-vector kernels,
// simd_arm64.s) sit beside them, are chosen once at start-up from the
// CPU's features (Impl names the choice), and are tested against the
// reference. The purego build tag forces the reference everywhere;
// MOCO_KERNELS=avx512+amx|avx512|avx2|neon+dotprod|neon|purego in the
// environment forces one path the CPU can run (to measure an older
// machine's kernels on a newer one), and Choices says so.
//
// Weights are widened to float32 inside the kernels (bf16 by a shift, f16
// with vcvtph2ps), so f32, bf16 and f16 matrices are used in place, e.g.
// straight from a memory map, and products are accumulated in float32.
// Q8_0 products instead quantize the activations to Q8_0 as well, once per
// call, as llama.cpp does: each block's integer dot is exact (VPDPBUSD with
// AVX512-VNNI, VPMADDUBSW with AVX2) and is scaled into a float32 sum; see
// q8.go. They therefore carry the activations' rounding error on top of the
// weights' (about 1% of a random product in all). Q8_0 and Q4_0 blocks have
// llama.cpp's numbers (f16 scales, 34 and 18 bytes per 32 weights); Q4_0
// products (q4.go) use the same Q8_0 activations, as llama.cpp's do.
//
// MatVec and MatMul share their rows with a persistent pool of worker
// goroutines (SetThreads). Each output element is computed by exactly one
// kernel call in an order fixed by the element alone, so results are
// identical for every thread count, and MatMul (prefill, a cache-tiled GEMM
// with 6x4 or 4x4 register tiles) gives bit for bit the rows MatVec
// (decoding) gives. Decode batches of 4 to 16 tokens (one per sequence)
// of bf16 or f16 weights run tiles of 2 rows x 8 tokens instead, which
// widen each weight once in a register for all 8 tokens, so that one pass
// over the weights serves the batch; they too add in MatVec's order.
// MatMulShared cuts several products of the same activations (a layer's
// q, k and v) among the threads in one call.
//
// On CPUs with AMX (Intel Xeon since Sapphire Rapids; Impl says
// "avx512+amx"), MatMul of 16 tokens or more runs on the tile unit instead
// (amx_amd64.go): bf16 tiles for bf16 weights, with the activations split
// exactly into three bf16 parts, and int8 tiles for Q8_0. The results then differ from MatVec's in the order of the
// additions only, still the same for every thread count. MOCO_AMX=0 in
// the environment turns AMX off.
//
// BF16 matrices have an opt-in bf16-activation mode (SetBF16Activations,
// or MOCO_BF16_ACT=1): the activations are rounded to bf16 first, as
// llama.cpp does, and CPUs with AVX512-BF16 (AMD Zen 4 and 5, Intel since
// Cooper Lake) multiply with VDPBF16PS, 32 pairs per instruction. That
// roughly halves the arithmetic of prefill; its error and speed are
// measured in bf16act.go and its tests. The default keeps activations in
// float32.
//
// Most paths follow from the CPU's instruction sets, vendor and family
// (Choices says which and why). Where two paths are both correct and only
// a measurement can tell which is faster on this core and memory,
// Calibrate times them on a small product (a few milliseconds, under
// 200 ms in all) and caches its pick per CPU, instruction sets and kernel
// version in os.UserCacheDir()/moco (calibrate.go; MOCO_CALIBRATE=off
// keeps the family rules, force measures again). It chooses only among
// candidates with the same results bit for bit (exact bf16 prefill: f32
// tiles on widened weights, the bf16 tile, or each by row length), or
// inside the opt-in bf16-activation mode (VDPBF16PS or widening); never
// between AMX and AVX-512. Nothing calls it implicitly: the moco command
// does before commands that run models; tests, which do not, keep the
// family rules, and every candidate is held to the reference like the
// rest.
//
// A training backward pass needs two more products of dense float32
// matrices, dX = dY·W and dW = dYᵀ·X (MatMulNN, MatMulTN in trans.go,
// with MatMulAdd and Transpose). They are rewritten into MatMul's form
// by transposing the operands that need it, or, where a dimension is
// short (a LoRA rank), computed as weighted row sums with AxpyRows; the
// pure-Go references beside them are what the tests hold them to.
//
// The assembly is generated: go generate runs gen_amd64.go, which writes
// simd_amd64.s. vec_amd64.s, q8_amd64.s and amx_amd64.s are written by
// hand (amx_amd64.s spells the AMX instructions, unknown to Go's
// assembler, as bytes).
package kernels
