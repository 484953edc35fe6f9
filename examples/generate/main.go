// Command generate continues a prompt with one model, streaming the text as
// it is produced. It uses only moco's public packages, so it can be copied
// into any module that requires github.com/mocolab/moco.
//
//	go run ./examples/generate                      # the embedded stories260K
//	go run ./examples/generate -model DIR -prompt "The capital of France is"
//
// Ctrl-C stops the generation at the next token.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func main() {
	dir := flag.String("model", "", "Hugging Face model folder (default: the embedded stories260K)")
	prompt := flag.String("prompt", "Once upon a time", "text to continue")
	n := flag.Int("n", 48, "most tokens to generate")
	temp := flag.Float64("temp", 0, "sampling temperature (0: greedy)")
	seed := flag.Uint64("seed", 1, "random seed when sampling")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dir, *prompt, *n, decode.SamplerConfig{Temperature: *temp, TopP: 0.9, Seed: *seed}, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run streams the continuation of prompt to w and prints how many tokens
// were generated and their mean log-probability.
func run(ctx context.Context, dir, prompt string, n int, sampler decode.SamplerConfig, w io.Writer) error {
	var m *engine.Model
	var tok *tokenizer.Tokenizer
	var err error
	if dir == "" {
		m, tok, err = embedded.Load(engine.Options{})
	} else {
		if tok, err = tokenizer.Load(dir); err == nil {
			m, err = engine.Load(dir, engine.Options{})
		}
	}
	if err != nil {
		return err
	}
	defer m.Close()

	// "single" is plain generation with one model; the same call builds
	// fusion, contrastive decoding and the other lockstep methods.
	g, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{
		Method: "single", Sampler: sampler, MaxTokens: n,
	})
	if err != nil {
		return err
	}
	// The generation stops at an end-of-sequence token, after n tokens, or
	// when ctx is cancelled; each token is reported with its log-probability.
	count, sum := 0, 0.0
	_, err = g.GenerateContext(ctx, prompt, w, func(t decode.Token) bool {
		count++
		sum += t.LogProb()
		return true
	})
	if err != nil {
		return err
	}
	if count > 0 {
		_, err = fmt.Fprintf(w, "\n[%d tokens, mean log-probability %.3f]\n", count, sum/float64(count))
	}
	return err
}
