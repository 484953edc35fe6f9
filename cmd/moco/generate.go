package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
)

func init() {
	register(&command{
		name:    "generate",
		summary: "continue a prompt with one model, streaming text",
		run:     runGenerate,
	})
}

// genFlags are the generation flags generate and collab share.
type genFlags struct {
	prompt      string
	maxTokens   int
	temperature float64
	topK        int
	topP, minP  float64
	seed        uint64
	stop        []string
	chat        bool
	threads     int
	quant       string
}

func addGenFlags(fs *pflag.FlagSet) *genFlags {
	g := &genFlags{}
	d := decode.DefaultSampler
	fs.StringVar(&g.prompt, "prompt", "", "text to continue (required)")
	fs.IntVar(&g.maxTokens, "max-tokens", 256, "most tokens to generate (capped by the context)")
	fs.Float64Var(&g.temperature, "temperature", d.Temperature, "sampling temperature; 0 is greedy")
	fs.IntVar(&g.topK, "top-k", d.TopK, "keep only the k most likely tokens (0: off)")
	fs.Float64Var(&g.topP, "top-p", d.TopP, "nucleus sampling: keep the smallest set with this probability (1: off)")
	fs.Float64Var(&g.minP, "min-p", d.MinP, "drop tokens below this fraction of the top probability (0: off)")
	fs.Uint64Var(&g.seed, "seed", d.Seed, "random seed (the same seed gives the same text)")
	fs.StringArrayVar(&g.stop, "stop", nil, "stop before this text (repeatable)")
	fs.BoolVar(&g.chat, "chat", false, "wrap the prompt in the model's chat template")
	fs.IntVar(&g.threads, "threads", 0, "compute threads (0: all cores)")
	fs.StringVar(&g.quant, "quant", "", `weight quantization: "" or "q8_0"`)
	return g
}

func (g *genFlags) sampler() decode.SamplerConfig {
	return decode.SamplerConfig{Temperature: g.temperature, TopK: g.topK, TopP: g.topP, MinP: g.minP, Seed: g.seed}
}

func (g *genFlags) options() engine.Options {
	return engine.Options{Threads: g.threads, Quant: g.quant}
}

func (g *genFlags) check() error {
	if g.prompt == "" {
		return usagef("--prompt is required")
	}
	if g.maxTokens < 0 {
		return usagef("--max-tokens must be >= 0")
	}
	if err := g.sampler().Validate(); err != nil {
		return usagef("%v", err)
	}
	return nil
}

func runGenerate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	model := fs.StringP("model", "m", "", "model folder (default: the embedded stories260K)")
	g := addGenFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	m, tok, err := openModel(*model, g.options())
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := decode.NewMethod([]*engine.Model{m}, tokSlice(tok), decode.MethodConfig{
		Method: "single", Sampler: g.sampler(), MaxTokens: g.maxTokens, Stop: g.stop, Chat: g.chat,
	})
	if err != nil {
		return err
	}
	if g.maxTokens == 0 {
		return nil
	}
	if _, err := c.Generate(g.prompt, stdout); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout)
	return err
}
