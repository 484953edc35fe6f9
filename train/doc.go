// Package train holds the backward pass moco's trainer is built on: the
// gradients of each layer of the engine's Llama-family forward pass
// (embedding, RMSNorm, linear maps, rotary embedding, causal attention
// with grouped-query heads, SwiGLU, masked cross-entropy).
//
// Status (issue 15, partial): the per-layer forward and backward functions
// (layers.go); the whole Llama-family model's training forward and
// backward pass for one sequence, full weights or LoRA adapters on a
// frozen base (model.go); PEFT adapter loading (lora.go) and saving,
// AdamW, warm-up + cosine decay and gradient clipping (optim.go); LoRA SFT
// on TRL prompt/completion JSONL (sft.go, CLI `moco train sft`); LoRA DPO
// (sigmoid loss, the reference being the base with the adapters off) on
// TRL prompt/chosen/rejected JSONL (dpo.go, CLI `moco train dpo`); GRPO
// with verifiable rewards (grpo.go, CLI `moco train grpo`: groups sampled
// through the engine from the folded policy, group-normalised advantages,
// clipped surrogate, k3 KL to the base). Layers
// are generic over float32 (training) and float64 (gradient checks) and
// are plain Go loops, single-threaded, not yet the kernels package's
// products. Checked: every layer, the whole model and the adapters against
// central finite differences in float64; the training forward's logits
// against the engine's on skills-base; the LoRA forward against merge's
// fold-in of skills-lora-add; the LoRA gradients on skills-base against
// PyTorch autograd (testdata/torch_reference.py, its output committed);
// AdamW against torch.optim.AdamW; the GRPO loss's gradient against
// finite differences with clipping and KL active, its token loss and
// advantages against hand-derived tables, the folded sampling policy
// against the training forward; the DPO loss and log-probabilities
// against hand-derived values and its adapter gradients against central
// finite differences. Not built yet: LoRA dropout, gradient
// accumulation as a separate micro-batch setting, checkpoints and resume,
// the messages form and chat templates, full fine-tuning from the CLI,
// the training-based MoCo methods, a speed benchmark.
//
// Conventions follow the engine: a linear map's weight is [out, in]
// row-major (Hugging Face's layout), so y = x·Wᵀ; activations are row-major
// [tokens, width]; the rotary embedding rotates pairs (i, i+dim/2), Hugging
// Face's rotate_half layout; attention scores are scaled by 1/√headDim.
//
// Every Backward function takes the gradient of the loss with respect to
// the layer's output (dy) and ADDS into the gradients of its inputs and
// parameters, so that gradients of shared tensors (the residual stream, a
// tied embedding) accumulate naturally; callers zero them first.
package train
