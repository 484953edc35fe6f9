package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/mocolab/moco/collab"
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
	Models     []string       `json:"models"`
	Method     string         `json:"method,omitempty"`
	Mode       string         `json:"mode,omitempty"`
	Params     map[string]any `json:"params,omitempty"`
	Tokens     int            `json:"tokens"`
	MeanNLL    float64        `json:"mean_nll"`
	Perplexity float64        `json:"perplexity"`
	// Interrupted: Ctrl-C stopped the run; the score is over the windows
	// scored before it (Tokens of the text's TotalTokens).
	Interrupted bool `json:"interrupted,omitempty"`
	TotalTokens int  `json:"total_tokens"`
}

func runPerplexity(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("perplexity", stderr)
	models := fs.StringArrayP("model", "m", nil, "model folder (repeat with --method to score an ensemble; default: the embedded stories260K)")
	file := fs.StringP("file", "f", "", "text file to score (required)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	method := fs.String("method", "", "combine several models, built through the method registry as moco collab and eval build them: fusion or contrastive")
	mode := fs.String("mode", "logit-mean", "fusion mode: logit-mean or prob-mean")
	weights := fs.Float64Slice("weights", nil, "fusion weights, one per model (default uniform)")
	alpha := fs.Float64("alpha", decode.DefaultContrastiveAlpha, "contrastive: MoCo's lambda (proxy-tuning's alpha with --experts/--anti)")
	topK := fs.Int("k", decode.DefaultContrastiveK, "contrastive: MoCo's top-k and bottom-k of the models, listed best first")
	experts := fs.IntSlice("experts", nil, "contrastive, proxy-tuning form: expert model indexes")
	anti := fs.IntSlice("anti", nil, "contrastive, proxy-tuning form: anti-expert model indexes")
	params := fs.StringArray("param", nil, "other method parameter key=value, JSON values (e.g. dev=FILE to rank contrastive's models by dev accuracy); repeat")
	quiet := fs.BoolP("quiet", "q", false, "no progress on stderr")
	setRange(fs, "weights", atLeast(0))
	setRange(fs, "alpha", between(0, 100))
	setRange(fs, "k", atLeast(1))
	var threads, ctxSize int
	addThreadsFlag(fs, &threads)
	addCtxSizeFlag(fs, &ctxSize)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: moco perplexity -f FILE [-m DIR] [-m DIR... --method fusion|contrastive] [--json]

Mean NLL per token and perplexity of a text. Several models are combined
by a logit-level method of the registry: fusion (--mode, --weights), or
contrastive in MoCo's form, top1 + alpha*(sum of the top k - sum of the
bottom k) over the models as listed (best first; --param dev=FILE ranks
them by dev accuracy first), or proxy-tuning's base + alpha*(experts -
anti) with --experts and --anti. Texts longer than the context are scored
in windows that each start again from BOS. Progress (tokens scored, a
window at a time) goes to stderr; Ctrl-C stops the run and prints the score
of the windows done.

Flags:`)
		fs.PrintDefaults()
	}
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
	p, err := parseParams(*params)
	if err != nil {
		return err
	}
	switch *method {
	case "":
		if len(dirs) > 1 {
			return usagef("%d models given: choose how to combine them with --method fusion|contrastive", len(dirs))
		}
		if len(p) > 0 {
			return usagef("--param is for a --method over several models")
		}
	case "fusion":
		p["mode"] = *mode
		if *weights != nil {
			p["weights"] = *weights
		}
	case "contrastive":
		p["alpha"] = *alpha
		if len(*experts) > 0 || len(*anti) > 0 {
			if fs.Changed("k") {
				return usagef("--k ranks the models for MoCo's rule; --experts/--anti fix the roles: give one or the other")
			}
			p["experts"], p["anti"] = *experts, *anti
		} else {
			p["k"] = *topK
		}
	default:
		return usagef("unknown --method %q (want fusion or contrastive)", *method)
	}
	if *method != "fusion" && (fs.Changed("mode") || fs.Changed("weights")) {
		return usagef("--mode and --weights are fusion's")
	}
	if *method != "contrastive" && (fs.Changed("alpha") || fs.Changed("k") || fs.Changed("experts") || fs.Changed("anti")) {
		return usagef("--alpha, --k, --experts and --anti are contrastive's")
	}
	text, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	opts := engine.Options{Threads: threads, ContextSize: ctxSize}
	var score func(ids []int, from int) (float64, int, error)
	var tok *tokenizer.Tokenizer
	var model *engine.Model
	limit := math.MaxInt
	if *method == "" {
		ms, toks, err := openModels(dirs, opts)
		if err != nil {
			return err
		}
		defer closeModels(ms)
		vocab, err := decode.SharedVocab(ms, toks, dirs)
		if err != nil {
			return err
		}
		tok, model, limit = toks[0], ms[0], contextOf(ms[0])
		sessions := []decode.Session{ms[0].NewSession(0)}
		score = func(ids []int, from int) (float64, int, error) {
			return decode.NLLFromContext(ctx, sessions, nil, vocab, ids, from)
		}
	} else {
		pool, closeAll, err := collab.LoadPool(dirs, opts)
		if err != nil {
			return err
		}
		defer closeAll()
		m, err := collab.New(ctx, *method, pool, p)
		if err != nil {
			return err
		}
		ts, err := collab.CanScore(m)
		if err != nil {
			return err
		}
		tok, limit = ts.Tokenizer(), ts.ContextSize()
		model = pool[0].Local.(*collab.Local).Model
		score = func(ids []int, from int) (float64, int, error) { return ts.NLLFrom(ctx, ids, from) }
	}
	ids, err := perplexityIDs(tok, model, string(text))
	if err != nil {
		return err
	}
	// Texts longer than the context (--ctx-size) are scored in windows, each starting
	// again from BOS, as llama.cpp's perplexity tool does.
	var sum float64
	var n int
	body := ids[1:]
	var bar *progressBar
	if !*quiet {
		bar = newProgressBar(stderr, "perplexity")
	}
	var runErr error
	for len(body) > 0 {
		w := body[:min(len(body), limit-1)]
		s, k, err := score(append([]int{ids[0]}, w...), 1)
		if err != nil {
			if ctx.Err() != nil && n > 0 {
				runErr = interrupted(ctx, err) // report the windows done
				break
			}
			bar.end()
			return interrupted(ctx, err)
		}
		body = body[len(w):]
		sum += s
		n += k
		bar.update(len(ids)-1-len(body), len(ids)-1, "tokens")
	}
	bar.end()
	if runErr != nil {
		fmt.Fprintf(stderr, "moco perplexity: interrupted after %d of %d tokens; the score below is over those\n", n, len(ids)-1)
	}
	mean := sum / float64(n)
	names := slices.Clone(dirs)
	if names[0] == "" {
		names[0] = defaultModelName // the embedded model
	}
	res := perplexityResult{Models: names, Method: *method, Tokens: n, MeanNLL: mean, Perplexity: math.Exp(mean),
		Interrupted: runErr != nil, TotalTokens: len(ids) - 1}
	switch *method {
	case "fusion":
		res.Mode = *mode
	case "contrastive":
		res.Params = p
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
		return runErr
	}
	if _, err := fmt.Fprintf(stdout, "tokens scored:  %d\nmean NLL:       %.6f\nperplexity:     %.4f\n", n, mean, res.Perplexity); err != nil {
		return err
	}
	return runErr
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
