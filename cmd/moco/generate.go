package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"

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

// genFlags are the generation flags generate and collab share. Their names
// and short forms are llama.cpp's where they mean the same (-p, -f, -n,
// -t, -c, -s, --temp, --repeat-penalty, --repeat-last-n).
type genFlags struct {
	fs            *pflag.FlagSet
	prompt        string
	promptFile    string
	maxTokens     int
	temperature   float64
	topK          int
	topP, minP    float64
	seed          uint64
	repeatPenalty float64
	repeatLastN   int
	stop          []string
	noEscape      bool
	chat          bool
	threads       int
	ctxSize       int
	quant         string
	verbose       bool
}

// llamaAliases maps llama.cpp's long names onto ours where they mean the
// same thing, so that a llama.cpp command line works unchanged.
var llamaAliases = map[string]string{"temp": "temperature", "n-predict": "max-tokens", "predict": "max-tokens"}

func addGenFlags(fs *pflag.FlagSet) *genFlags {
	g := &genFlags{fs: fs}
	d := decode.DefaultSampler
	fs.StringVarP(&g.prompt, "prompt", "p", "", "text to continue (this or --file is required; '' generates from the BOS token alone, the tokenizer's or else the model config's bos_token_id, or with --chat answers an empty message); "+escapeHelp)
	fs.StringVarP(&g.promptFile, "file", "f", "", "read the prompt from this file, as is (no escapes)")
	fs.IntVarP(&g.maxTokens, "max-tokens", "n", 256, "most tokens to generate, capped by the context (alias --n-predict)")
	setRange(fs, "max-tokens", atLeast(-1).withNote("0: none, -1: up to the context, as llama.cpp's"))
	fs.Float64Var(&g.temperature, "temperature", d.Temperature, "sampling temperature; 0 is greedy (alias --temp)")
	setRange(fs, "temperature", atLeast(0))
	fs.IntVar(&g.topK, "top-k", d.TopK, "keep only the k most likely tokens, and those tied with the k-th (as Hugging Face; llama.cpp keeps exactly k)")
	setRange(fs, "top-k", atLeast(0).withNote("0: off"))
	fs.Float64Var(&g.topP, "top-p", d.TopP, "nucleus sampling: keep the smallest set with this probability")
	setRange(fs, "top-p", above(0, 1).withNote("1: off"))
	fs.Float64Var(&g.minP, "min-p", d.MinP, "drop tokens below this fraction of the top probability")
	setRange(fs, "min-p", between(0, 1).withNote("0: off"))
	fs.Float64Var(&g.repeatPenalty, "repeat-penalty", 1, "divide the positive scores (multiply the negative ones) of tokens among the last --repeat-last-n by this, as llama.cpp and Hugging Face do")
	setRange(fs, "repeat-penalty", above(0, 100).withNote("1: off"))
	fs.IntVar(&g.repeatLastN, "repeat-last-n", 64, "tokens the repeat penalty looks back over, prompt included")
	setRange(fs, "repeat-last-n", atLeast(-1).withNote("0: off, -1: the whole context"))
	addSeedFlag(fs, &g.seed, "random seed: the same seed gives the same text (default when sampling: a random one, printed by --verbose)")
	fs.StringArrayVar(&g.stop, "stop", nil, "stop before this text (repeatable); "+escapeHelp)
	fs.BoolVar(&g.noEscape, "no-escape", false, `take --prompt and --stop literally (no \n escapes)`)
	fs.BoolVar(&g.chat, "chat", false, "wrap the prompt in the model's chat template")
	addThreadsFlag(fs, &g.threads)
	addCtxSizeFlag(fs, &g.ctxSize)
	fs.StringVar(&g.quant, "quant", "", `quantize the weights at load: "" (as stored), q8_0 or q4_0`)
	fs.BoolVarP(&g.verbose, "verbose", "v", false, "print the seed and the context size on stderr")
	aliasFlags(fs, llamaAliases)
	return g
}

func (g *genFlags) sampler() decode.SamplerConfig {
	c := decode.SamplerConfig{Temperature: g.temperature, TopK: g.topK, TopP: g.topP, MinP: g.minP, Seed: g.seed}
	switch {
	case g.repeatPenalty == 1, g.repeatLastN == 0: // off (llama.cpp: 1 or a window of 0)
	case g.repeatLastN < 0: // llama.cpp: -1 is the whole context
		c.RepeatPenalty = g.repeatPenalty
	default:
		c.RepeatPenalty, c.RepeatLastN = g.repeatPenalty, g.repeatLastN
	}
	return c
}

// methodMaxTokens is -n as decode.MethodConfig's MaxTokens, whose 0 is
// -n -1 (up to the context). -n 0 asks for nothing: callers skip the run.
func (g *genFlags) methodMaxTokens() int { return max(g.maxTokens, 0) }

func (g *genFlags) options() engine.Options {
	return engine.Options{Threads: g.threads, Quant: g.quant, ContextSize: g.ctxSize}
}

// check validates the flags after parsing and settles what they leave
// open: the prompt (from --file, escapes processed), the stop strings, and
// a random seed when sampling without -s. It prints the seed with
// --verbose.
//
// An empty --prompt, given as such, is a prompt: the model then generates
// from the BOS token alone (decode.StartID: the tokenizer's, else the
// model config's, as Hugging Face starts), as an empty --file always did.
func (g *genFlags) check() error {
	prompt, file := g.fs.Changed("prompt"), g.fs.Changed("file")
	switch {
	case prompt && file:
		return usagef("give --prompt or --file, not both")
	case file:
		b, err := os.ReadFile(g.promptFile)
		if err != nil {
			return usagef("--file: %v", err)
		}
		g.prompt = string(b)
	case !prompt:
		return usagef("--prompt (or --file) is required")
	default:
		g.prompt = unescapeAll([]string{g.prompt}, g.noEscape)[0]
	}
	g.stop = unescapeAll(g.stop, g.noEscape)
	if err := g.sampler().Validate(); err != nil {
		return usagef("%v", err)
	}
	if !seedGiven(g.fs) && g.temperature > 0 {
		g.seed = randomSeed() // greedy decoding draws nothing: keep 0 there
	}
	if g.verbose {
		fmt.Fprintf(g.fs.Output(), "seed: %d\n", g.seed)
	}
	return nil
}

// randomSeed draws a seed from the operating system's generator.
func randomSeed() uint64 {
	var b [8]byte
	crand.Read(b[:])                             // never fails on supported systems (Go 1.24+)
	return binary.LittleEndian.Uint64(b[:]) >> 1 // fits an int64 for JSON readers
}

// generateResult is generate's --json output.
type generateResult struct {
	Model    string         `json:"model"`
	Prompt   string         `json:"prompt"`
	Text     string         `json:"text"`
	Tokens   int            `json:"tokens"`
	Seed     uint64         `json:"seed"`
	Settings map[string]any `json:"settings"`
}

func runGenerate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	model := fs.StringP("model", "m", "", "model folder (default: the embedded stories260K)")
	g := addGenFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (model, prompt, text, tokens, seed, settings) instead of streaming text")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco generate [-m DIR] (-p TEXT | -f FILE) [-n 256] [--temp 0.8] [-s SEED] [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := g.check(); err != nil {
		return err
	}
	m, tok, err := openModel(*model, g.options())
	if err != nil {
		return err
	}
	defer m.Close()
	if g.verbose {
		fmt.Fprintf(stderr, "context size: %d positions (the model's max_position_embeddings: %d)\n", m.ContextSize(), m.Config.MaxPositions)
	}
	c, err := decode.NewMethod([]*engine.Model{m}, tokSlice(tok), decode.MethodConfig{
		Method: "single", Sampler: g.sampler(), MaxTokens: g.methodMaxTokens(), Stop: g.stop, Chat: g.chat,
	})
	if err != nil {
		return err
	}
	// The text continues the prompt (" was" after "Once upon a time
	// there"), as llama.cpp prints it; a chat answer starts a message.
	c.Continue = true
	ctx, stop := signalContext()
	defer stop()
	var text string
	n := 0
	count := func(decode.Token) bool { n++; return true }
	if g.maxTokens != 0 {
		out := stdout
		if *asJSON {
			out = nil
		}
		text, err = c.GenerateContext(ctx, g.prompt, out, count)
		if err != nil {
			return interrupted(ctx, err)
		}
	}
	if !*asJSON {
		if g.maxTokens != 0 {
			_, err = fmt.Fprintln(stdout)
		}
		return err
	}
	name := *model
	if name == "" {
		name = defaultModelName
	}
	return writeJSON(stdout, generateResult{Model: name, Prompt: g.prompt, Text: text, Tokens: n, Seed: g.seed, Settings: g.settings()})
}

// settings lists the generation settings for --json results.
func (g *genFlags) settings() map[string]any {
	s := g.sampler()
	return map[string]any{
		"max_tokens": g.maxTokens, "temperature": s.Temperature, "top_k": s.TopK, "top_p": s.TopP, "min_p": s.MinP,
		"repeat_penalty": g.repeatPenalty, "repeat_last_n": g.repeatLastN, "stop": g.stop, "chat": g.chat,
		"ctx_size": g.ctxSize, "quant": g.quant,
	}
}

// writeJSON prints v as one indented JSON object.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
