// Package engine loads Hugging Face causal language model folders and runs
// their forward pass: configuration, weights (read into huge pages, or
// memory-mapped), the KV cache and one readable transformer forward pass
// whose family differences (Llama, Mistral, Qwen2/3, Gemma2/3, OLMo2/3,
// Phi-3) are configuration switches.
//
// The files:
//
//   - config.go: config.json and generation_config.json into a Config whose
//     fields are the family switches (norm placement, biases, q/k norms,
//     soft-capping, sliding windows, rope scaling, fused projections).
//   - multimodal.go: the text model of a multimodal Gemma 3 checkpoint
//     (its config's text_config over transformers' defaults, its tensors
//     under their text-only names, the vision tower's unread).
//   - model.go: the weights of a Source as kernels matrices, used in place
//     (F32, BF16, F16) or quantized at load (Options.Quant "q8_0" or
//     "q4_0"), or stored Q8_0 or Q4_0 (I8 or U8 tensors with F16 scales).
//   - quantize.go: QuantizeCheckpoint writes a Q8_0 or Q4_0 model folder
//     and documents its on-disk layout.
//   - rope.go: rotary frequencies (default, linear, dynamic, llama3, yarn,
//     longrope). dynamic and longrope change past the original context
//     at each position, where Hugging Face changes them for a whole
//     forward call: the same within the original context, and batched,
//     chunked and incremental decoding agree.
//   - forward.go: Session, its KV cache, and the forward pass itself.
//   - batch.go: Batch, many sequences stepped together (one matrix product
//     per weight for all their tokens, attention per sequence, chunked
//     prefill, a KV cache budget in bytes).
//
// A Session feeds a batch of tokens through every matrix as one matrix
// product (prefill) and attends per query position over the cache; one
// token is the batch of one. Computation is float32; the heavy loops are
// the kernels package's.
//
// Concurrency: a Model is read-only after loading and safe for concurrent
// use; a Session (one sequence and its KV cache) is not, so each goroutine
// decodes with its own Sessions over the shared Model. A Session holds up to
// Model.ContextSize positions (Options.ContextSize, else the model's
// max_position_embeddings) and allocates per position only as tokens
// arrive; feeding more returns an error wrapping ErrContextFull.
package engine
