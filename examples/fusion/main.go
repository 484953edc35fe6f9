// Command fusion answers a prompt with a collaboration method over several
// models, built by name through moco's method registry (collab.New): the
// same registry the CLI, the sweep and the server use. It uses only moco's
// public packages, so it can be copied into any module that requires
// github.com/mocolab/moco.
//
//	go run ./examples/fusion -method fusion ../shared/models/skills-add ../shared/models/skills-rev
//	go run ./examples/fusion -method contrastive -param '{"alpha": 0.5}' BASE ANTI
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
)

func main() {
	method := flag.String("method", "fusion", "method name (see collab.Specs)")
	params := flag.String("param", "{}", "the method's parameters as a JSON object")
	prompt := flag.String("prompt", "Q: 289+623=\nA:", "prompt")
	n := flag.Int("n", 8, "most tokens to generate")
	flag.Parse()
	var p collab.Params
	if err := json.Unmarshal([]byte(*params), &p); err != nil {
		log.Fatalf("-param: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *method, p, flag.Args(), *prompt, *n, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, method string, p collab.Params, dirs []string, prompt string, n int, w io.Writer) error {
	pool, closeAll, err := collab.LoadPool(dirs, engine.Options{})
	if err != nil {
		return err
	}
	defer closeAll()
	m, err := collab.New(ctx, method, pool, p)
	if err != nil {
		return err
	}
	// A Method is a Generator: it answers batches of requests, each with
	// its own sampling settings (temperature 0: greedy).
	out, err := m.Generate(ctx, []collab.Request{{Prompt: prompt, MaxTokens: n}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s: %q (%d tokens, %.3g FLOPs)\n", m.Name(), out[0].Text, out[0].CompletionTokens, out[0].FLOPs)
	return err
}
