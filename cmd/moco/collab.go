package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "collab",
		summary: "decode with several models together (fusion, contrastive, nudging, cascade, co-llm, mentor, speculative)",
		run:     runCollab,
	})
}

const collabUsage = `Usage: moco collab METHOD -m DIR -m DIR [...] --prompt TEXT [flags]
       moco collab train-head -m BASE -m ASSISTANT --data FILE --out HEAD.safetensors

METHOD and the roles of the -m models, in order:
  fusion        all models averaged (--mode logit-mean|prob-mean, --weights)
  contrastive   first is the base; two models: base - alpha*second; more:
                experts then anti-experts (--alpha, --experts, --anti; --dev ranks them)
  nudging       base, then nudger (--gamma)
  cascade       weak to strong (--threshold per level or --dev to calibrate, --quantile)
  co-llm        base, then assistant (--head, --threshold, --warm-up, --mode defer|compose)
  mentor        generator, then mentor (--share, --patch-tokens, optional --head):
                MoCo's mentor collaboration; the mentor is consulted at random words
                (seeded by --seed and the prompt) and patches are chosen by the generator
  speculative   target, then draft (--draft-tokens)`

// collabResult is the --json output.
type collabResult struct {
	Method  string          `json:"method"`
	Models  []string        `json:"models"`
	Prompt  string          `json:"prompt"`
	Text    string          `json:"text"`
	Details json.RawMessage `json:"details,omitempty"`
}

func runCollab(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, collabUsage)
			return nil
		}
		return usagef("missing METHOD: moco collab METHOD -m DIR -m DIR --prompt TEXT, METHOD one of %s, or train-head (see moco collab --help)", strings.Join(decode.Methods[1:], ", "))
	}
	method := args[0]
	if method == "train-head" {
		return runTrainHead(args[1:], stdout, stderr)
	}
	known := false
	for _, m := range decode.Methods[1:] {
		known = known || m == method
	}
	if !known {
		return usagef("unknown method %q (want one of %s, or train-head)", method, strings.Join(decode.Methods[1:], ", "))
	}
	fs := newFlags("collab "+method, stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, collabUsage)
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	dirs := fs.StringArrayP("model", "m", nil, "model folder (repeat; the order gives the roles above)")
	g := addGenFlags(fs)
	trace := fs.String("trace", "", "write every step as a JSON line to this file")
	asJSON := fs.Bool("json", false, "print a JSON object instead of streaming text")
	weights := fs.Float64Slice("weights", nil, "fusion: one weight per model (default uniform)")
	mode := fs.String("mode", "", "fusion: logit-mean (default) or prob-mean; co-llm: defer (default) or compose")
	alpha := fs.Float64("alpha", 0.2, "contrastive: base + alpha*(experts - anti-experts); 1 for proxy-tuning")
	experts := fs.IntSlice("experts", nil, "contrastive: expert model indexes (default: see docs)")
	anti := fs.IntSlice("anti", nil, "contrastive: anti-expert model indexes")
	gamma := fs.Float64("gamma", decode.DefaultGamma, "nudging: hand over when the base's top-1 probability is below this")
	threshold := fs.Float64Slice("threshold", nil, "co-llm: deferral threshold (default 0.5); cascade: one per level but the last")
	warmUp := fs.Int("warm-up", 0, "co-llm: lower the threshold from 1 over this many first tokens (paper: 15)")
	head := fs.String("head", "", "co-llm/mentor: deferral head (.safetensors from train-head)")
	draft := fs.Int("draft-tokens", decode.DefaultDraftTokens, "speculative: draft tokens per round")
	dev := fs.String("dev", "", "cascade: dev prompts to calibrate thresholds (text lines or a dataset .json); contrastive: texts to rank the models by NLL")
	quantile := fs.Float64("quantile", decode.DefaultQuantile, "cascade: calibration quantile")
	share := fs.Float64("share", decode.DefaultMentorShare, "mentor: probability that the mentor is consulted at each word (MoCo's decision_proportion)")
	patch := fs.Int("patch-tokens", decode.DefaultPatchLen, "mentor: tokens per drafted patch")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if len(*dirs) < 2 && method != "fusion" && method != "cascade" {
		return usagef("%s needs at least two models (-m DIR -m DIR)", method)
	}
	if len(*dirs) == 0 {
		return usagef("give the models with -m DIR")
	}
	cfg := decode.MethodConfig{
		Method: method, Sampler: g.sampler(), MaxTokens: g.maxTokens, Stop: g.stop, Chat: g.chat, Names: *dirs,
		Mode: *mode, Weights: *weights, Alpha: *alpha, Experts: *experts, Anti: *anti, Gamma: *gamma,
		WarmUp: *warmUp, CoLLMMode: *mode, DraftTokens: *draft, Quantile: *quantile, Share: *share, PatchLen: *patch,
	}
	if method == "co-llm" {
		cfg.Mode = ""
		if len(*threshold) > 1 {
			return usagef("co-llm takes one --threshold")
		}
		if len(*threshold) == 1 {
			cfg.Threshold = (*threshold)[0]
		}
	} else {
		cfg.CoLLMMode = ""
	}
	if method == "cascade" && len(*threshold) > 0 {
		cfg.Thresholds = *threshold
		if len(cfg.Thresholds) != len(*dirs)-1 {
			return usagef("cascade of %d models needs %d thresholds, got %d", len(*dirs), len(*dirs)-1, len(cfg.Thresholds))
		}
	}
	var devTexts []string
	var devPairs [][2]string
	if *dev != "" {
		var err error
		if devPairs, err = readDev(*dev); err != nil {
			return err
		}
		for _, p := range devPairs {
			devTexts = append(devTexts, p[0])
		}
	}
	if method == "cascade" && cfg.Thresholds == nil {
		if devTexts == nil && len(*dirs) > 1 {
			return usagef("cascade needs --threshold per level or --dev FILE to calibrate them")
		}
		cfg.DevPrompts = devTexts
	}
	if *head != "" {
		h, err := decode.LoadHead(*head)
		if err != nil {
			return err
		}
		cfg.Head = h
	}
	ms, toks, err := openModels(*dirs, g.options())
	if err != nil {
		return err
	}
	defer closeModels(ms)
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	if method == "contrastive" && devPairs != nil {
		// MoCo's selection: rank by dev NLL, best first.
		if order, err = rankModels(ms, toks, *dirs, devPairs); err != nil {
			return err
		}
		ms, toks, cfg.Names = permute(ms, order), permute(toks, order), permute(*dirs, order)
		fmt.Fprintf(stderr, "contrastive: models by dev NLL, best first: %s\n", strings.Join(cfg.Names, ", "))
	}
	var tw *bufio.Writer
	if *trace != "" {
		f, err := os.Create(*trace)
		if err != nil {
			return err
		}
		defer f.Close()
		tw = bufio.NewWriter(f)
		defer tw.Flush()
		enc := json.NewEncoder(tw)
		cfg.Trace = func(ts decode.TraceStep) { _ = enc.Encode(ts) }
	}
	c, err := decode.NewMethod(ms, toks, cfg)
	if err != nil {
		return err
	}
	if c.Speculative != nil && c.Tok != nil {
		// Print the draft acceptance on stderr, useful to judge k.
		defer func() {
			fmt.Fprintf(stderr, "speculative: accepted %d of %d draft tokens\n", c.Speculative.Accepted, c.Speculative.Proposed)
		}()
	}
	out := stdout
	if *asJSON {
		out = nil
	}
	text, err := c.Generate(g.prompt, out)
	if err != nil {
		return err
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !*asJSON {
		_, err = fmt.Fprintln(stdout)
		return err
	}
	res := collabResult{Method: method, Models: cfg.Names, Prompt: g.prompt, Text: text}
	res.Details, _ = json.Marshal(details(c))
	return json.NewEncoder(stdout).Encode(res)
}

// details collects the method's counters for --json.
func details(c *decode.Collab) any {
	switch {
	case c.Speculative != nil:
		return map[string]int{"proposed": c.Speculative.Proposed, "accepted": c.Speculative.Accepted}
	case c.Mentor != nil:
		return map[string]int{"words": c.Mentor.Words, "checks": c.Mentor.Checks, "patches": c.Mentor.Patches, "mentor_wins": c.Mentor.MentorWins}
	case c.Cascade != nil:
		return map[string]any{"thresholds": c.Cascade.Thresholds}
	}
	return nil
}

func runTrainHead(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("collab train-head", stderr)
	dirs := fs.StringArrayP("model", "m", nil, "base model, then assistant (or generator, then mentor)")
	data := fs.String("data", "", "training pairs: a dataset .json ({dev: [{input, output}]}) or JSON lines {\"prompt\", \"completion\"}")
	split := fs.String("split", "dev", "dataset split to train on")
	out := fs.String("out", "", "where to write the head (.safetensors)")
	epochs := fs.Int("epochs", 500, "full-batch Adam steps")
	lr := fs.Float64("lr", 0.01, "learning rate")
	limit := fs.Int("limit", 0, "use at most this many pairs (0: all)")
	threads := fs.Int("threads", 0, "compute threads (0: all cores)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*dirs) != 2 {
		return usagef("train-head needs exactly two models: -m BASE -m ASSISTANT")
	}
	if *data == "" || *out == "" {
		return usagef("--data and --out are required")
	}
	pairs, err := readPairs(*data, *split)
	if err != nil {
		return err
	}
	if *limit > 0 && len(pairs) > *limit {
		pairs = pairs[:*limit]
	}
	ms, toks, err := openModels(*dirs, engine.Options{Threads: *threads})
	if err != nil {
		return err
	}
	defer closeModels(ms)
	vocab, err := decode.SharedVocab(ms, toks, *dirs)
	if err != nil {
		return err
	}
	eos := decode.EOSIDs(toks[0], ms...)
	var hp []decode.HeadPair
	for _, p := range pairs {
		pi, err := toks[0].Encode(p[0], true)
		if err != nil {
			return err
		}
		ri, err := toks[0].Encode(p[1], false)
		if err != nil {
			return err
		}
		if len(eos) > 0 {
			ri = append(ri, eos[0])
		}
		hp = append(hp, decode.HeadPair{Prompt: pi, Reference: ri})
	}
	d, err := decode.CollectHeadData(ms[0].NewSession(0), ms[1].NewSession(0), vocab, hp)
	if err != nil {
		return err
	}
	pos := 0
	for _, y := range d.Y {
		if y > 0.5 {
			pos++
		}
	}
	if pos == 0 {
		fmt.Fprintln(stderr, "warning: the assistant never beats the base on these pairs, so the head learns never to defer")
	}
	h, err := decode.TrainHead(d, decode.HeadTrainConfig{Epochs: *epochs, LR: *lr})
	if err != nil {
		return err
	}
	correct := 0
	for i, x := range d.X {
		if (h.Prob(x) > 0.5) == (d.Y[i] > 0.5) {
			correct++
		}
	}
	if err := h.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained on %d positions (%d labeled defer) from %d pairs; training accuracy %.3f; wrote %s\n",
		len(d.Y), pos, len(hp), float64(correct)/float64(len(d.Y)), *out)
	return nil
}

// readDev reads dev items: (prompt, answer) pairs from a dataset .json's
// dev split, or one prompt per non-empty line with no answer.
func readDev(path string) ([][2]string, error) {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return readPairs(path, "dev")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, [2]string{l, ""})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return out, nil
}

// readPairs reads (prompt, reference) pairs from a MoCo-style dataset .json
// split or from JSON lines with "prompt" and "completion".
func readPairs(path, split string) ([][2]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pairs [][2]string
	if strings.EqualFold(filepath.Ext(path), ".json") {
		var ds map[string]json.RawMessage
		if err := json.Unmarshal(b, &ds); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		raw, ok := ds[split]
		if !ok {
			return nil, fmt.Errorf("%s: no %q split", path, split)
		}
		var items []struct {
			Input  string `json:"input"`
			Output any    `json:"output"`
		}
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%s: split %s: %v", path, split, err)
		}
		for _, it := range items {
			out, ok := it.Output.(string)
			if !ok {
				return nil, fmt.Errorf("%s: split %s has non-text outputs (this needs an exact-match dataset)", path, split)
			}
			pairs = append(pairs, [2]string{it.Input, out})
		}
	} else {
		for i, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) == "" {
				continue
			}
			var p struct{ Prompt, Completion string }
			if err := json.Unmarshal([]byte(l), &p); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
			}
			pairs = append(pairs, [2]string{p.Prompt, p.Completion})
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s: no training pairs", path)
	}
	return pairs, nil
}

// rankModels orders the models by mean NLL, best first: on the answers
// given their prompts, or on whole lines when there are no answers.
func rankModels(ms []*engine.Model, toks []*tokenizer.Tokenizer, names []string, dev [][2]string) ([]int, error) {
	vocab, err := decode.SharedVocab(ms, toks, names)
	if err != nil {
		return nil, err
	}
	var ids [][]int
	var from []int
	for _, p := range dev {
		prompt, err := toks[0].Encode(p[0], true)
		if err != nil {
			return nil, err
		}
		if p[1] == "" {
			if len(prompt) >= 2 {
				ids, from = append(ids, prompt), append(from, 1)
			}
			continue
		}
		// An answer follows its prompt after a space ("A:" then " 42"),
		// as the models generate it.
		sep := " "
		if strings.TrimRight(p[0], " \n\t") != p[0] || strings.TrimLeft(p[1], " \n\t") != p[1] {
			sep = ""
		}
		answer, err := toks[0].Encode(sep+p[1], false)
		if err != nil {
			return nil, err
		}
		if len(prompt) > 0 && len(answer) > 0 {
			ids, from = append(ids, append(prompt, answer...)), append(from, len(prompt))
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no dev texts to rank the models on")
	}
	sessions := make([]decode.Session, len(ms))
	for i, m := range ms {
		sessions[i] = m.NewSession(0)
	}
	order, _, err := decode.RankByNLL(sessions, vocab, ids, from)
	return order, err
}

func permute[T any](xs []T, order []int) []T {
	out := make([]T, len(order))
	for i, j := range order {
		out[i] = xs[j]
	}
	return out
}

// openModels opens each folder ("" is the embedded default) with its
// tokenizer, closing what it opened on failure.
func openModels(dirs []string, opts engine.Options) ([]*engine.Model, []*tokenizer.Tokenizer, error) {
	var ms []*engine.Model
	var toks []*tokenizer.Tokenizer
	for _, d := range dirs {
		m, t, err := openModel(d, opts)
		if err != nil {
			closeModels(ms)
			if d == "" {
				d = "the default model"
			}
			return nil, nil, fmt.Errorf("%s: %w", d, err)
		}
		ms = append(ms, m)
		toks = append(toks, t)
	}
	if len(ms) == 0 {
		return nil, nil, errors.New("no models given")
	}
	return ms, toks, nil
}

func closeModels(ms []*engine.Model) {
	for _, m := range ms {
		m.Close()
	}
}

func tokSlice(t ...*tokenizer.Tokenizer) []*tokenizer.Tokenizer { return t }
