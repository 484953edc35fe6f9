// Package decode turns next-token distributions into text: sampling (greedy,
// temperature, top-k, top-p, min-p), the single-model generation loop with
// stop conditions and streaming, and the lockstep loop in which several
// same-vocabulary models advance together while a Combiner picks each token.
//
// # Lockstep
//
// Lockstep runs N >= 1 models over one shared token history. Each model
// prefills the prompt once and then consumes every chosen token through its
// own KV cache, whoever chose it. At every step a Combiner turns the models'
// logits (truncated to the shared vocabulary) into one score vector, which
// the Sampler samples exactly as it samples a single model. A new method is
// a few lines:
//
//	avg := decode.CombinerFunc(func(dst []float32, s *decode.Step) error {
//		for i := range dst {
//			dst[i] = 0.7*s.Logits[0][i] + 0.3*s.Logits[1][i]
//		}
//		s.Source = "avg"
//		return nil
//	})
//
// The token-level methods are combiners: Fusion (logit-mean or prob-mean),
// Contrastive (and proxy-tuning), Nudging and CoLLM. A combiner picks a
// distribution before the token is drawn, so Nudging, which like MoCo
// lets the nudger write the first word, reads whether the nudger's word
// goes on from its most likely token, where MoCo reads the token it
// sampled (the same under greedy decoding). Methods that need
// their own loop reuse the same sessions: Speculative (draft and verify with
// one batched forward and cache rollback), Cascade (whole answers, weak to
// strong, with calibrated confidence thresholds) and Mentor (MoCo's mentor
// collaboration: at random words the mentor is consulted, and where its next
// word differs both draft a patch and one is kept).
//
// Every loop works on the Session interface, which *engine.Session
// satisfies. NewMethod builds any method over loaded models after checking
// that their tokenizers are identical, and returns a Collab whose Generate
// streams text and whose Func is the func(prompt) (string, error) that
// evaluation harnesses call. NLL scores a text under a combined distribution
// and RankByNLL orders models by it.
//
// # Many prompts at once
//
// Batcher generates for many callers with one model over an engine.Batch
// (continuous batching: requests join and leave between steps).
// LockstepBatcher is the lockstep loop over many prompts (N models x B
// prompts): every model steps one engine.Batch holding a sequence per
// prompt, so each step reads every model's weights once for all prompts in
// flight, and each prompt keeps its own combiner, seeded sampler, stop
// strings and token cap; NewMethodBatcher builds it for the methods of
// BatchMethods (single, fusion, contrastive, nudging) with the answers
// NewMethod gives each prompt alone. LockstepBatch runs it once over a
// fixed list of encoded prompts. CoLLM (hidden states), Speculative,
// Mentor and Cascade (they rewind, patch or restart) run one prompt at a
// time.
//
// # Cancellation and per-token callbacks
//
// Every loop has a RunContext form (Lockstep, Speculative, Mentor, and
// Cascade's RunContext and CalibrateContext) that checks its context before
// each forward pass and returns the context's error with the tokens so
// far; Run is RunContext with context.Background(). NewMethodContext
// stops a cascade's calibration on its dev prompts likewise. Generator's
// GenerateContext adds a callback that sees every token beside the
// io.Writer stream: its id, the model or rule that chose it, and
// Token.LogProb, its log-probability under the distribution it was drawn
// from.
//
// # Concurrency
//
// Loops, combiners and samplers keep buffers and per-run state: a
// Lockstep, Speculative, Mentor, Cascade, Collab, Generator, Sampler,
// Fusion, Nudging or CoLLM value must be used by one goroutine at a time;
// build one per goroutine (NewMethod over the same loaded models is cheap:
// engine.Model is safe to share, each Collab owns its sessions).
// Batcher and LockstepBatcher are safe for concurrent use.
// Contrastive and Head are read-only once built and safe to share, as are
// the package's functions (SoftmaxInto, LogSoftmaxAt, Quantile, WordStarts,
// SharedVocab, ...), given sessions that are not shared.
//
// Sampling defaults (DefaultSampler, used by moco generate and collab):
// temperature 0.8 and top-p 0.9; temperature 0 is greedy decoding. Its seed
// is 0, so a Sampler built from it draws the same tokens every run; the
// commands instead draw a random seed when sampling without -s (--verbose
// prints it). As in llama.cpp, the sampling defaults of a model's
// generation_config.json (engine.Config.Generation: do_sample, temperature,
// top_k, ...) are not applied: only its eos (and bos) ids are used.
package decode
