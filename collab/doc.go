// Package collab holds the one Method interface every collaboration method
// implements, whatever its level (API, text, logit, weight, training), and
// the registry the CLI, the sweep and the server build methods from. It also
// holds the methods that orchestrate whole models rather than single tokens:
// routing, voting, debate and the like. It builds on decode, merge and train.
//
// A Method is a Generator over a pool of Members; a Generator answers
// batches of Requests. Register adds a method under its name; New builds one
// over a pool with parameters checked strictly (an unknown key is an error).
//
// # Models behind the methods
//
// Local (LoadLocal, LoadPool) is a model folder run by the engine in this
// process: the weights are shared and every request decodes in its own
// session, so one Local serves concurrent requests. Chat Messages are
// rendered with the model's chat template; a model without one gets the
// messages' contents joined by blank lines. Response carries the token
// counts and FLOPs, 2 x parameters x tokens run through the model.
//
// Endpoint is an OpenAI-compatible HTTP server (/v1/chat/completions for
// Messages, /v1/completions for prompts) with retries, timeouts and a
// concurrency limit; OpenPool mixes folders and "URL#MODEL" endpoints.
//
// # Registered methods
//
// "single" (one model alone) and the logit-level methods fusion,
// contrastive, nudging, cascade, co-llm, mentor and speculative are decode's
// token loops (decode.NewMethod) over Local members, with the parameters
// documented on FusionParams, ContrastiveParams and the rest. Fusion,
// contrastive and nudging decode every request in flight together in one
// decode.LockstepBatcher per method (LockstepBatcher hands it to a
// server); the others answer a request at a time.
//
// Text level (any Generator pool; prompts in our words after MoCo's
// text_*.py, defaults MoCo's): majority-vote (MajorityVoteParams; answers
// compared normalized with collab/extract, no answer abstaining, ties to
// the earliest model), slm-mux (SLMMuxParams: k samples from each model,
// the model whose answers agree most wins and its majority answer is
// returned; ties by dev score, pool order or a seeded draw), debate,
// feedback, knowledge-card, structure, bbmas, llm-blender (BlenderParams),
// heterogeneous-swarms (SwarmsParams) and agglm (AggLMParams: an
// aggregator trained in-process with train's GRPO on dev prompts balanced
// between majority-vote failures and successes). API level: prompt-routing,
// trained-router (an MLP on an encoder's mean-pooled hidden state),
// graph-router (label propagation over the dev queries' neighbour graph)
// and switch-generation (a trained patch selector). Trained methods read
// a MoCo-format dataset's dev split (DevConfig) and answer it with every
// pool model first. Training level: multiagent-finetuning
// (MultiagentFTParams: generation and critic agents debate the dev
// prompts, each is fine-tuned with LoRA SFT on its answers that agree
// with the majority, then they debate and vote) and sparta (SpartaParams:
// pairwise contests judged by the other models with reputation weights,
// LoRA DPO of every model through package train on the winners and
// losers, local model folders only). Each request's exchanges are recorded in
// Response.Trace; a model that fails fails the request with its name.
package collab
