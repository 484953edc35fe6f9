// Package train holds the backward pass moco's trainer is built on: the
// gradients of each layer of the engine's Llama-family forward pass
// (embedding, RMSNorm, linear maps, rotary embedding, causal attention
// with grouped-query heads, SwiGLU, masked cross-entropy).
//
// Status (issue 15, partial): the per-layer forward and backward functions
// (layers.go); the whole Llama-family model's training forward and
// backward pass for one sequence, full weights or LoRA adapters on a
// frozen base (model.go); PEFT adapter loading (lora.go) and saving,
// LoRA dropout (PEFT's: on the adapter's input, while training), AdamW
// (its weight decay not on the norm weights, as Hugging Face's Trainer
// groups them), warm-up + cosine decay and gradient clipping (optim.go);
// SFT (sft.go,
// CLI `moco train sft`) on TRL prompt/completion JSONL or on messages
// (the model's chat template applied, loss on the assistant turns), LoRA
// or full fine-tuning (a model folder out), with gradient accumulation,
// a length limit that refuses or truncates, checkpoints every N steps
// that resume bit for bit (checkpoint.go), and a stop on a non-finite
// loss that leaves the last checkpoint intact; LoRA DPO
// (sigmoid loss, the reference being the base with the adapters off) on
// TRL prompt/chosen/rejected JSONL (dpo.go, CLI `moco train dpo`); GRPO
// with verifiable rewards (grpo.go, CLI `moco train grpo`: groups sampled
// through the engine from the folded policy, group-normalised advantages,
// clipped surrogate, k3 KL to the base). All three objectives share one
// step loop (runLoop in checkpoint.go): gradient accumulation,
// checkpoints that resume bit for bit (GRPO's with its prompt order,
// sampling stream and the batch its iterations share) and the stop on a
// non-finite loss or gradient. Layers are generic over float32
// (training) and float64 (gradient checks); the float32 instances run on
// the kernels package (fast.go: threaded matmuls including the backward's
// transposed products, attention over heads, cross-entropy over rows;
// results independent of the thread count), the float64 ones are plain
// loops. BenchmarkTrainStep measures a step against the forward alone.
// Checked: every layer, the whole model and the adapters (with dropout)
// against central finite differences in float64; the float32 layers
// against the float64 ones; the training forward's logits
// against the engine's on skills-base; the LoRA forward against merge's
// fold-in of skills-lora-add; the LoRA gradients on skills-base against
// PyTorch autograd (testdata/torch_reference.py, its output committed);
// AdamW against torch.optim.AdamW; the GRPO loss's gradient against
// finite differences with clipping and KL active, its token loss and
// advantages against hand-derived tables, the folded sampling policy
// against the training forward; the DPO loss and log-probabilities
// against hand-derived values, its adapter gradients (with RPO's term and
// dropout) against central finite differences, and its loss,
// log-probabilities and LoRA gradients on skills-base against PyTorch
// autograd (testdata/torch_dpo_reference.py, its output committed);
// prompt/completion tokenization against TRL's rule on stories260K; the
// accumulated DPO and GRPO step gradients (each GRPO loss type reduced as
// TRL reduces it under accumulation) against finite differences of the
// step loss written out from forward log-probabilities; resumed SFT, DPO
// and GRPO runs against uninterrupted ones, byte for byte. The
// training-based MoCo methods built on these live in collab.
//
// Differences from TRL (its main branch, 1.x) beyond those said above:
//   - Prompt/completion (SFT, DPO) is tokenized as TRL does: the text
//     prompt + completion + eos_token encoded whole, scored from the
//     prompt's own token count (Tokenize, TokenizePair). Only collab's
//     maft and sparta, whose completions the models generated after the
//     prompt's ids, encode the two apart and join the ids
//     (SFTConfig.SplitPrompt, TokenizeSplit).
//   - Messages (SFT): the loss is on the assistant turns, TRL's
//     assistant_only_loss=True; TRL's default (False) scores every
//     token. BOS is added when the template does not write it; TRL's
//     apply_chat_template adds none. The rendered conversation is
//     encoded span by span (up to each assistant turn, the turn), where
//     TRL encodes it whole and masks the tokens that overlap the
//     template's {% generation %} spans: the two differ where a token
//     would straddle a span boundary, and with SentencePiece's dummy
//     prefix, which each span gets here.
//   - SFT and DPO draw each batch with replacement from a seeded stream;
//     TRL walks shuffled epochs (GRPO here walks seeded epochs, as TRL).
//   - After the warm-up the learning rate decays by a cosine; TRL's
//     default lr_scheduler_type is linear.
//   - DPO applies LoRA dropout in the policy's passes when asked; TRL's
//     DPOConfig (disable_dropout=True) zeroes every dropout, LoRA's too.
//     RPO's term is TRL 0.x's rpo_alpha, in TRL 1.x loss_type
//     ["sigmoid", "sft"] with loss_weights [1, α].
//   - Learning rates, batch sizes and LoRA defaults (r 8, α 16, q_proj,
//     v_proj, down_proj) are moco's own, tuned for small models.
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
