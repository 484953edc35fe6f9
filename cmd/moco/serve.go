package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/serve"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "serve models and collaboration recipes over the OpenAI HTTP API",
		run:     runServe,
	})
}

// serveStop is cancelled by the signal that starts a graceful shutdown
// (the first SIGINT or SIGTERM; a second one ends the process at once);
// tests replace it.
var serveStop = signalContext

const serveHelp = `Usage: moco serve [-m DIR]... [--config FILE] [--addr 127.0.0.1:8080] [flags]

Serves GET /v1/models, POST /v1/completions and POST /v1/chat/completions
(OpenAI's API: streaming, max_tokens, temperature, top_p, seed, stop, n,
logprobs, usage), GET /health and GET /metrics (Prometheus). Concurrent
requests to a model are decoded together in one batch.

Each -m DIR is served under its folder name; with neither -m nor --config
the embedded stories260K is served as "stories260K". --config names a YAML
file of models and collaboration recipes, each recipe a method of
'moco collab' served as one model id:

  models:
    - {id: a, path: /models/A}
    - {id: b, path: /models/B}
    - {id: gpt, url: https://api.openai.com/v1, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}
  recipes:
    - {id: fusion-ab, method: fusion, models: [a, b], params: {mode: logit-mean}}
    - {id: spec-a, method: speculative, models: [a, b], params: {draft_tokens: 4}}
    - {id: vote, method: majority-vote, models: [a, b, gpt]}

A model with a url is an OpenAI-compatible endpoint: served under its id
(requests forwarded) and a member of API- and text-level recipes; the
logit-level methods need local models. A path is a model folder, relative
to the config's folder: a LoRA adapter folder, or mergekit's MODEL+LORA, is
refused before any model loads; merge the adapter into its base first
(moco merge --method lora --base MODEL -m LORA --out DIR) and serve DIR.

SIGINT or SIGTERM stops accepting requests and lets those in flight finish
for --shutdown-timeout, then cancels them.

Flags:`

func runServe(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var dirs []string
	fs.StringArrayVarP(&dirs, "model", "m", nil, "model folder to serve under its folder name (repeatable)")
	config := fs.String("config", "", "YAML file of models and collaboration recipes")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port; 0.0.0.0 exposes the server to the network)")
	apiKey := fs.String("api-key", "", "require 'Authorization: Bearer KEY' (default: $MOCO_API_KEY; none when both are empty)")
	var threads, ctxSize int
	addThreadsFlag(fs, &threads)
	addCtxSizeFlag(fs, &ctxSize)
	quant := fs.String("quant", "", `quantize the weights at load: "" (as stored), q8_0 or q4_0`)
	kvMiB := fs.Int("kv-cache-mib", 1024, "KV cache budget per model in MiB; requests wait for room")
	maxSeqs := fs.Int("max-seqs", 64, "most sequences decoded together per model")
	stepTokens := fs.Int("step-tokens", 128, "most tokens per batch step (long prompts are prefilled in chunks of the rest)")
	maxQueue := fs.Int("max-queue", 256, "most requests waiting per model; more get 429")
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest request body")
	maxPrompt := fs.Int("max-prompt-tokens", 0, "largest prompt in tokens")
	maxTokens := fs.Int("max-tokens-limit", 4096, "largest max_tokens a request may ask for")
	defMax := fs.Int("default-max-tokens", 256, "max_tokens of requests that give none (at most what the context leaves)")
	maxN := fs.Int("max-n", 8, "most choices (n) per request")
	recipeQueue := fs.Int("recipe-queue", 16, "most requests per recipe, running or waiting; more get 429 (fusion, contrastive and nudging recipes batch like a model: --max-queue)")
	recipeConc := fs.Int("recipe-concurrency", 2, "requests a recipe runs at once (fusion, contrastive and nudging recipes: all, in one lockstep batch of --max-seqs)")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "time requests in flight get to finish on SIGTERM")
	for _, r := range []struct {
		name string
		r    numRange
	}{
		{"kv-cache-mib", atLeast(1)}, {"max-seqs", between(1, 4096)}, {"step-tokens", between(1, 1<<16)},
		{"max-queue", atLeast(1)}, {"max-body-bytes", atLeast(1024)}, {"max-prompt-tokens", atLeast(0).withNote("0: the context")},
		{"max-tokens-limit", atLeast(1)}, {"default-max-tokens", atLeast(1)}, {"max-n", between(1, 128)},
		{"recipe-queue", atLeast(1)}, {"recipe-concurrency", atLeast(1)},
	} {
		setRange(fs, r.name, r.r)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, serveHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (model folders go after -m)", fs.Arg(0))
	}
	if *quant != "" && *quant != "q8_0" && *quant != "q4_0" {
		return usagef("--quant %q: want q8_0 or q4_0", *quant)
	}
	if *defMax > *maxTokens {
		return usagef("--default-max-tokens %d is more than --max-tokens-limit %d", *defMax, *maxTokens)
	}
	if *grace < 0 {
		return usagef("--shutdown-timeout must not be negative")
	}
	key := *apiKey
	if key == "" {
		key = os.Getenv("MOCO_API_KEY")
	}
	cfg := &serve.Config{}
	if *config != "" {
		var err error
		if cfg, err = serve.LoadConfig(*config); err != nil {
			return err
		}
	}
	seen := map[string]int{}
	for _, m := range cfg.Models {
		seen[m.ID]++
	}
	for _, d := range dirs {
		id := filepath.Base(filepath.Clean(d))
		if seen[id]++; seen[id] > 1 {
			id = fmt.Sprintf("%s#%d", id, seen[id])
		}
		cfg.Models = append(cfg.Models, serve.ModelSpec{ID: id, Path: d})
	}
	opts := serve.BuildOptions{
		Engine: engine.Options{Threads: threads, Quant: *quant, ContextSize: ctxSize},
		Batcher: decode.BatcherConfig{MaxQueue: *maxQueue,
			Batch: engine.BatchOptions{KVBytes: int64(*kvMiB) << 20, MaxSeqs: *maxSeqs, StepTokens: *stepTokens}},
		Server: serve.Options{APIKey: key, RecipeQueue: *recipeQueue, RecipeConcurrency: *recipeConc,
			Limits: serve.Limits{MaxBodyBytes: *maxBody, MaxPromptTokens: *maxPrompt, MaxTokens: *maxTokens, DefaultMaxTokens: *defMax, MaxN: *maxN},
			Logf:   func(format string, a ...any) { fmt.Fprintf(stderr, "moco serve: "+format+"\n", a...) }},
		Progress: func(format string, a ...any) { fmt.Fprintf(stderr, "moco serve: "+format+"\n", a...) },
	}
	ctx, stop := serveStop()
	defer stop()
	s, closeAll, err := serve.Build(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer closeAll()
	if len(cfg.Models) == 0 {
		m, tok, err := openModel("", opts.Engine)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := s.AddModel("stories260K", m, tok, opts.Batcher); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(stderr, "moco serve: listening on http://%s (models: %s)\n", ln.Addr(), strings.Join(s.IDs(), ", "))
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Graceful shutdown: refuse new work, let requests in flight finish
	// within the grace period, then cancel what is left.
	fmt.Fprintf(stderr, "moco serve: shutting down (in-flight requests get %v)\n", *grace)
	s.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "moco serve: cancelling the requests still running\n")
		s.Close() // ends every sequence; handlers answer and return
		cctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		if err := hs.Shutdown(cctx); err != nil {
			hs.Close()
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
