// Package serve is moco's HTTP server: the OpenAI-compatible endpoints
// GET /v1/models, POST /v1/completions and POST /v1/chat/completions
// (streaming as server-sent events, max_tokens, temperature, top_p, seed,
// stop, n, logprobs and top_logprobs, usage counts, errors in OpenAI's JSON
// shape), plus /health and Prometheus-format /metrics.
//
// Each served model id is either a model folder, whose requests share one
// decode.Batcher (continuous batching over engine.Batch: concurrent
// requests are stepped together, a client that disconnects leaves the
// batch and frees its KV cache), a remote OpenAI-compatible endpoint
// (requests forwarded; a member of API- and text-level recipes), or a
// collaboration recipe from a config
// file: a method of the collab registry over some of the served models
// (e.g. fusion-ab, the logit fusion of a and b), which a client that knows
// nothing of moco calls like any model. Fusion, contrastive and nudging
// recipes share one decode.LockstepBatcher among their requests (every
// model stepped once for all of them), with the same streaming, logprobs
// (of the combined distribution), finish reasons and queue bound as a
// model; other recipes answer --recipe-concurrency requests at a time,
// each in sessions of its own, streaming the text when it is done.
//
// A completion's text continues its prompt, as OpenAI's and vLLM's do: a
// SentencePiece model's first word keeps its space (" upon" after "Once",
// decode.BatchRequest.Continue); a chat answer starts a message of its own
// and has none. Logprob tokens are the text each token adds, so they join
// up to the text; a token that is part of a character is written
// "bytes:\xNN" as OpenAI does, its bytes in the chat bytes field.
//
// The files:
//
//   - api.go: the request and response bodies, parsed strictly and
//     checked against the server's limits (body bytes, prompt tokens,
//     max_tokens, n), and the error shape.
//   - server.go: Server, its handlers, streaming, the bounded queues (429
//     when full), the API key (constant-time comparison).
//   - metrics.go: the counters and their Prometheus text format.
//   - config.go: the YAML config (models and recipes, decoded strictly)
//     and Build, which loads it.
package serve
