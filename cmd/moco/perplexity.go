package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "perplexity",
		summary: "mean NLL and perplexity of a text under one model or a fused ensemble",
		run:     runPerplexity,
	})
}

// perplexityResult is the --json output.
type perplexityResult struct {
	Models     []string `json:"models"`
	Method     string   `json:"method,omitempty"`
	Mode       string   `json:"mode,omitempty"`
	Tokens     int      `json:"tokens"`
	MeanNLL    float64  `json:"mean_nll"`
	Perplexity float64  `json:"perplexity"`
}

func runPerplexity(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("perplexity", stderr)
	models := fs.StringArrayP("model", "m", nil, "model folder (repeat with --method to score an ensemble; default: the embedded stories260K)")
	file := fs.StringP("file", "f", "", "text file to score (required)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	method := fs.String("method", "", "combine several models: fusion or contrastive")
	mode := fs.String("mode", "logit-mean", "fusion mode: logit-mean or prob-mean")
	weights := fs.Float64Slice("weights", nil, "fusion weights, one per model (default uniform)")
	alpha := fs.Float64("alpha", 0.2, "contrastive strength: base + alpha*(experts - anti-experts)")
	setRange(fs, "weights", atLeast(0))
	setRange(fs, "alpha", between(0, 100))
	var threads, ctxSize int
	addThreadsFlag(fs, &threads)
	addCtxSizeFlag(fs, &ctxSize)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("--file is required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	dirs := *models
	if len(dirs) == 0 {
		dirs = []string{""}
	}
	var comb decode.Combiner
	switch *method {
	case "":
		if len(dirs) > 1 {
			return usagef("%d models given: choose how to combine them with --method fusion|contrastive", len(dirs))
		}
	case "fusion":
		m, err := decode.ParseFusionMode(*mode)
		if err != nil {
			return usagef("%v", err)
		}
		comb = &decode.Fusion{Mode: m, Weights: *weights}
	case "contrastive":
		if len(dirs) < 2 {
			return usagef("contrastive needs at least two models")
		}
		comb = decode.DefaultContrastive(len(dirs), *alpha)
	default:
		return usagef("unknown --method %q (want fusion or contrastive)", *method)
	}
	text, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	ms, toks, err := openModels(dirs, engine.Options{Threads: threads, ContextSize: ctxSize})
	if err != nil {
		return err
	}
	defer closeModels(ms)
	vocab, err := decode.SharedVocab(ms, toks, dirs)
	if err != nil {
		return err
	}
	ids, err := perplexityIDs(toks[0], ms[0], string(text))
	if err != nil {
		return err
	}
	sessions := make([]decode.Session, len(ms))
	limit := math.MaxInt
	for i, m := range ms {
		sessions[i] = m.NewSession(0)
		limit = min(limit, contextOf(m))
	}
	// Texts longer than the context (--ctx-size) are scored in windows, each starting
	// again from BOS, as llama.cpp's perplexity tool does.
	var sum float64
	var n int
	body := ids[1:]
	for len(body) > 0 {
		w := body[:min(len(body), limit-1)]
		body = body[len(w):]
		s, k, err := decode.NLL(sessions, comb, vocab, append([]int{ids[0]}, w...))
		if err != nil {
			return err
		}
		sum += s
		n += k
	}
	mean := sum / float64(n)
	res := perplexityResult{Models: dirs, Method: *method, Tokens: n, MeanNLL: mean, Perplexity: math.Exp(mean)}
	if *method == "fusion" {
		res.Mode = *mode
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	_, err = fmt.Fprintf(stdout, "tokens scored:  %d\nmean NLL:       %.6f\nperplexity:     %.4f\n", n, mean, res.Perplexity)
	return err
}

// perplexityIDs encodes text without special tokens and prepends BOS.
func perplexityIDs(tok *tokenizer.Tokenizer, m *engine.Model, text string) ([]int, error) {
	ids, err := tok.Encode(text, false)
	if err != nil {
		return nil, err
	}
	bos := tok.BOS()
	if bos < 0 {
		bos = m.Config.BOS
	}
	if bos < 0 {
		return nil, errors.New("the model has no BOS token to prepend")
	}
	if len(ids) == 0 {
		return nil, errors.New("the file has no tokens to score")
	}
	return append([]int{bos}, ids...), nil
}

// contextOf is the number of positions a default session holds.
func contextOf(m *engine.Model) int { return m.ContextSize() }
