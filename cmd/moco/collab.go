package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "collab",
		summary: "run several models together: API-, text- and logit-level methods (debate, majority-vote, fusion, co-llm, ...)",
		run:     runCollab,
	})
}

const collabUsage = `Usage: moco collab METHOD -m DIR -m DIR [...] --prompt TEXT [flags]
       moco collab train-head -m BASE -m ASSISTANT --data FILE --out HEAD.safetensors [--objective marginal|pseudo]

Logit-level METHODs (model folders sharing one vocabulary, decoded in
lockstep) and the roles of the -m models, in order:
  fusion        all models averaged (--mode logit-mean|prob-mean, --weights)
  contrastive   MoCo's logit contrastive (default): the models ranked best first
                (by --dev accuracy, as MoCo does, or in the order given), then
                top1 + alpha*(sum of top k - sum of bottom k), k = --k (1: the best
                counts twice), alpha 0.2. Proxy-tuning: --experts and --anti give
                explicit roles, base (first model) + alpha*(experts - anti), with
                --alpha 1. MoCo samples fused and contrastive scores at its
                temperature (0.7 in its examples) without top-p: --top-p 1 matches.
  nudging       base, then nudger (--gamma): the nudger writes the first word, then
                each word where the base's top-1 probability is below gamma, as MoCo
                does; whether its word goes on is read from the nudger's most likely
                token (MoCo: the token it sampled; the same with --temp 0)
  cascade       weak to strong (--threshold per level or --dev to calibrate, --quantile)
  co-llm        base, then assistant (--head, --threshold, --warm-up, --mode defer|compose);
                train-head fits the head by the paper's marginal likelihood (default)
                or by pseudo-labels (--objective pseudo)
  mentor        generator, then mentor (--share, --patch-tokens, optional --head):
                MoCo's mentor collaboration; the mentor is consulted at random words
                (seeded by --seed and the prompt) and patches are chosen by the generator
  speculative   target, then draft (--draft-tokens)

--dev FILE: a dataset .json (its dev split), .jsonl ({"prompt", "answer"} per
line; "input"/"output" also read) or .txt (one prompt per line); --dev-samples
N draws a seeded sample stratified by category (default: every item).
--calibration FILE saves what --dev measured (cascade thresholds, contrastive
scores) the first time and reuses it after; a file made with other models,
dev set or settings is refused (delete it or name another file).`

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
			fmt.Fprintln(stderr, "\nAPI- and text-level METHODs (-m may also be an OpenAI-compatible endpoint;\n'moco collab METHOD --help' gives their flags):")
			fmt.Fprint(stderr, registryList())
			return nil
		}
		return usagef("missing METHOD: moco collab METHOD -m MODEL -m MODEL --prompt TEXT, METHOD one of %s, or train-head (see moco collab --help)", strings.Join(collabMethodNames(), ", "))
	}
	method := args[0]
	if method == "train-head" {
		return runTrainHead(args[1:], stdout, stderr)
	}
	if registryMethod(method) { // text- and API-level methods: collab_text.go
		return runRegistryCollab(method, args[1:], stdout, stderr)
	}
	known := false
	for _, m := range decode.Methods[1:] {
		known = known || m == method
	}
	if !known {
		return usagef("unknown method %q (want one of %s, or train-head)", method, strings.Join(collabMethodNames(), ", "))
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
	alpha := fs.Float64("alpha", decode.DefaultContrastiveAlpha, "contrastive: MoCo's lambda; proxy-tuning's alpha (use 1)")
	topK := fs.Int("k", decode.DefaultContrastiveK, "contrastive: MoCo's top-k and bottom-k")
	rank := fs.String("rank", "accuracy", "contrastive --dev: rank the models by dev accuracy (MoCo) or nll (mean NLL of the answers)")
	experts := fs.IntSlice("experts", nil, "contrastive, proxy-tuning form: expert model indexes")
	anti := fs.IntSlice("anti", nil, "contrastive, proxy-tuning form: anti-expert model indexes")
	gamma := fs.Float64("gamma", decode.DefaultGamma, "nudging: hand over when the base's top-1 probability is below this")
	threshold := fs.Float64Slice("threshold", nil, "co-llm: deferral threshold (default 0.5); mentor: its --head's threshold (default 0.5); cascade: one per level but the last")
	warmUp := fs.Int("warm-up", 0, "co-llm: lower the threshold from 1 over this many first tokens (paper: 15)")
	head := fs.String("head", "", "co-llm/mentor: deferral head (.safetensors from train-head)")
	draft := fs.Int("draft-tokens", decode.DefaultDraftTokens, "speculative: draft tokens per round")
	dev := fs.String("dev", "", "cascade: dev prompts to calibrate thresholds; contrastive: dev items to rank the models on (.json, .jsonl or .txt)")
	devSamples := fs.Int("dev-samples", 0, "dev items to use, a seeded sample stratified by category (0: all)")
	calibration := fs.String("calibration", "", "save the --dev calibration to this file, or reuse it when it exists")
	quantile := fs.Float64("quantile", decode.DefaultQuantile, "cascade: calibration quantile")
	share := fs.Float64("share", decode.DefaultMentorShare, "mentor: probability that the mentor is consulted at each word (MoCo's decision_proportion)")
	patch := fs.Int("patch-tokens", decode.DefaultPatchLen, "mentor: tokens per drafted patch")
	setRange(fs, "weights", atLeast(0))
	setRange(fs, "k", atLeast(1))
	setRange(fs, "dev-samples", atLeast(0).withNote("0: all"))
	setRange(fs, "alpha", between(0, 100))
	setRange(fs, "gamma", between(0, 1))
	setRange(fs, "threshold", between(0, 1))
	setRange(fs, "warm-up", atLeast(0))
	setRange(fs, "draft-tokens", between(1, 256))
	setRange(fs, "quantile", between(0, 1))
	setRange(fs, "share", between(0, 1))
	setRange(fs, "patch-tokens", between(1, 4096))
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
		Method: method, Sampler: g.sampler(), MaxTokens: g.methodMaxTokens(), Stop: g.stop, Chat: g.chat, Names: *dirs,
		Mode: *mode, Weights: *weights, Alpha: *alpha, Experts: *experts, Anti: *anti, Gamma: gamma,
		WarmUp: *warmUp, CoLLMMode: *mode, DraftTokens: *draft, Quantile: quantile, Share: share, PatchLen: *patch,
	}
	if method == "co-llm" || method == "mentor" {
		// co-llm's deferral threshold; mentor's, for its --head.
		if len(*threshold) > 1 {
			return usagef("%s takes one --threshold", method)
		}
		if len(*threshold) == 1 {
			cfg.Threshold = &(*threshold)[0]
		}
	}
	if method == "co-llm" {
		cfg.Mode = ""
	} else {
		cfg.CoLLMMode = ""
	}
	if method == "cascade" && len(*threshold) > 0 {
		cfg.Thresholds = *threshold
		if len(cfg.Thresholds) != len(*dirs)-1 {
			return usagef("cascade of %d models needs %d thresholds, got %d", len(*dirs), len(*dirs)-1, len(cfg.Thresholds))
		}
	}
	if *devSamples < 0 {
		return usagef("--dev-samples must be >= 0")
	}
	if *dev != "" && method != "cascade" && method != "contrastive" {
		return usagef("--dev applies to cascade and contrastive, not %s", method)
	}
	if *dev != "" && method == "cascade" && len(*threshold) > 0 {
		return usagef("cascade: give --threshold or --dev to calibrate them, not both")
	}
	if *calibration != "" && *dev == "" {
		return usagef("--calibration needs --dev (the dev set is checked against the saved calibration)")
	}
	explicit := len(*experts) > 0 || len(*anti) > 0
	if method == "contrastive" {
		if explicit && *dev != "" {
			return usagef("contrastive: --dev ranks the models for MoCo's rule, --experts/--anti fix the roles (proxy-tuning): give one or the other")
		}
		if *topK < 1 {
			return usagef("--k must be >= 1")
		}
		if *rank != "accuracy" && *rank != "nll" {
			return usagef("--rank must be accuracy or nll, got %q", *rank)
		}
		cfg.TopK = *topK
	}
	var devSet *bench.Dataset
	var devItems []bench.Item
	var devPrompts []string
	if *dev != "" {
		var err error
		if devSet, err = readDev(*dev); err != nil {
			return err
		}
		devItems = bench.Sample(devSet.Dev, *devSamples, g.seed)
		for _, it := range devItems {
			devPrompts = append(devPrompts, bench.BuildPrompt(devSet.TaskType, it))
		}
	}
	if method == "cascade" && cfg.Thresholds == nil {
		if devPrompts == nil && len(*dirs) > 1 {
			return usagef("cascade needs --threshold per level or --dev FILE to calibrate them")
		}
		cfg.DevPrompts = devPrompts
	}
	if *head != "" {
		h, err := decode.LoadHead(*head)
		if err != nil {
			return err
		}
		cfg.Head = h
	}
	// A saved calibration is checked before any model is loaded.
	var cal *decode.Calibration
	var calIn decode.CalibrationInputs
	calibrated := (method == "cascade" && cfg.DevPrompts != nil) || (method == "contrastive" && devSet != nil)
	if *calibration != "" && calibrated {
		var err error
		if calIn, err = calibrationInputs(method, *dirs, *dev, *devSamples, g, *quantile, *rank); err != nil {
			return err
		}
		switch c, err := decode.LoadCalibration(*calibration); {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		default:
			if why := c.Mismatch(calIn); why != "" {
				return fmt.Errorf("%s does not match this run: %s; delete it or name another --calibration file", *calibration, why)
			}
			cal = c
			fmt.Fprintf(stderr, "%s: calibration read from %s\n", method, *calibration)
		}
	}
	if method == "cascade" && cal != nil {
		if len(cal.Thresholds) != len(*dirs)-1 {
			return fmt.Errorf("%s: %d thresholds for %d models", *calibration, len(cal.Thresholds), len(*dirs))
		}
		cfg.Thresholds, cfg.DevPrompts = cal.Thresholds, nil
	}
	ms, toks, err := openModels(*dirs, g.options())
	if err != nil {
		return err
	}
	defer closeModels(ms)
	cfg.Names = *dirs
	// Ctrl-C ends the dev pass, the calibration or the generation like
	// generate's: exit 130, with the text streamed so far and the trace
	// flushed, not cut mid-line.
	ctx, stop := signalContext()
	defer stop()
	if g.maxTokens == 0 {
		// -n 0 generates nothing, as generate's and llama.cpp's do: the
		// models are checked, and no dev pass or generation runs.
		if _, err := decode.SharedVocab(ms, toks, *dirs); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(collabResult{Method: method, Models: *dirs, Prompt: g.prompt})
		}
		return nil
	}
	if method == "contrastive" && devSet != nil {
		// MoCo's selection: score every model alone on the dev set, rank
		// best first, keep the top k and the bottom k.
		var scores []float64
		if cal != nil {
			if scores = cal.Scores; len(scores) != len(ms) {
				return fmt.Errorf("%s: %d scores for %d models", *calibration, len(scores), len(ms))
			}
		} else if scores, err = scoreModels(ctx, ms, toks, *dirs, devSet.TaskType, devItems, *rank, g, stderr); err != nil {
			return interrupted(ctx, err)
		}
		if *calibration != "" && cal == nil {
			if err := (&decode.Calibration{Inputs: calIn, Scores: scores}).Save(*calibration); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "contrastive: calibration saved to %s\n", *calibration)
		}
		order := rankOrder(scores, *rank == "accuracy")
		k := *topK
		if 2*k > len(ms) {
			return usagef("contrastive: --k %d needs at least %d models, got %d", k, 2*k, len(ms))
		}
		sel := append(slices.Clone(order[:k]), order[len(order)-k:]...)
		ms, toks, cfg.Names = permute(ms, sel), permute(toks, sel), permute(*dirs, sel)
		var b strings.Builder
		for i, j := range order {
			fmt.Fprintf(&b, "%s%s (%s %.4g)", map[bool]string{true: "", false: ", "}[i == 0], (*dirs)[j], *rank, scores[j])
		}
		fmt.Fprintf(stderr, "contrastive: models by dev %s, best first: %s; top %d and bottom %d used\n", *rank, b.String(), k, k)
	}
	var tw *bufio.Writer
	var tf *os.File
	if *trace != "" {
		f, err := os.Create(*trace)
		if err != nil {
			return err
		}
		defer f.Close() // on early returns; the second Close is harmless
		tf, tw = f, bufio.NewWriter(f)
		defer tw.Flush()
		enc := json.NewEncoder(tw)
		cfg.Trace = func(ts decode.TraceStep) { _ = enc.Encode(ts) }
	}
	c, err := decode.NewMethodContext(ctx, ms, toks, cfg)
	if err != nil {
		return interrupted(ctx, err)
	}
	if c.Cascade != nil && *calibration != "" && cal == nil && cfg.DevPrompts != nil {
		if err := (&decode.Calibration{Inputs: calIn, Thresholds: c.Cascade.Thresholds}).Save(*calibration); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "cascade: calibration saved to %s\n", *calibration)
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
	c.Continue = true // as generate: the text continues the prompt
	text, err := c.GenerateContext(ctx, g.prompt, out, nil)
	if err != nil {
		return interrupted(ctx, err)
	}
	if tw != nil {
		// A full disk shows on Flush or, for the last buffered bytes
		// of some file systems, only on Close.
		if err := tw.Flush(); err != nil {
			return err
		}
		if err := tf.Close(); err != nil {
			return fmt.Errorf("trace: %w", err)
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
	objective := fs.String("objective", decode.MarginalObjective, "marginal: the Co-LLM paper's marginal likelihood with the deferral as a latent variable; pseudo: 0/1 labels where the assistant is right and the base wrong")
	asJSON := fs.Bool("json", false, "print the training summary as JSON")
	epochs := fs.Int("epochs", 500, "full-batch Adam steps")
	lr := fs.Float64("lr", 0.01, "learning rate")
	limit := fs.Int("limit", 0, "use at most this many pairs (0: all)")
	threads := fs.Int("threads", 0, "compute threads (0: all cores)")
	setRange(fs, "epochs", atLeast(1))
	setRange(fs, "lr", above(0, 10))
	setRange(fs, "limit", atLeast(0).withNote("0: all"))
	setRange(fs, "threads", between(0, float64(maxThreads())).withNote("0: all cores"))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*dirs) != 2 {
		return usagef("train-head needs exactly two models: -m BASE -m ASSISTANT")
	}
	if *data == "" || *out == "" {
		return usagef("--data and --out are required")
	}
	if *objective != decode.MarginalObjective && *objective != decode.PseudoLabelObjective {
		return usagef("--objective must be %s or %s, got %q", decode.MarginalObjective, decode.PseudoLabelObjective, *objective)
	}
	if *epochs < 1 || !(*lr > 0) || math.IsInf(*lr, 0) || *limit < 0 {
		return usagef("--epochs must be >= 1, --lr a finite number > 0, --limit >= 0")
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
		ri, err := toks[0].Encode(answerSep(p[0], p[1])+p[1], false)
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
	if pos == 0 && *objective == decode.PseudoLabelObjective {
		fmt.Fprintln(stderr, "warning: the assistant never beats the base on these pairs, so the head learns never to defer")
	}
	h, err := decode.TrainHead(d, decode.HeadTrainConfig{Objective: *objective, Epochs: *epochs, LR: *lr})
	if err != nil {
		return err
	}
	sum := headSummary(h, d)
	sum.Objective, sum.Pairs, sum.Out = *objective, len(hp), *out
	if err := h.Save(*out); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(sum)
	}
	fmt.Fprintf(stdout, "trained (%s) on %d positions from %d pairs (%d pseudo-labeled defer); defers at %.3f of them; "+
		"pseudo-label accuracy %.3f; marginal NLL per token %.4f (base alone %.4f, assistant alone %.4f); wrote %s\n",
		sum.Objective, sum.Positions, sum.Pairs, sum.PseudoPositive, sum.DeferRate, sum.PseudoAccuracy, sum.MarginalNLL, sum.BaseNLL, sum.AssistantNLL, *out)
	return nil
}

// trainHeadSummary is train-head's report on its training positions.
type trainHeadSummary struct {
	Objective      string  `json:"objective"`
	Pairs          int     `json:"pairs"`
	Positions      int     `json:"positions"`
	PseudoPositive int     `json:"pseudo_positive"`
	DeferRate      float64 `json:"defer_rate"`      // share of positions with p > 0.5
	PseudoAccuracy float64 `json:"pseudo_accuracy"` // (p > 0.5) == pseudo-label
	MarginalNLL    float64 `json:"marginal_nll"`    // -mean log((1-p) P_base + p P_assistant)
	BaseNLL        float64 `json:"base_nll"`
	AssistantNLL   float64 `json:"assistant_nll"`
	Out            string  `json:"out"`
}

func headSummary(h *decode.Head, d *decode.HeadData) trainHeadSummary {
	s := trainHeadSummary{Positions: len(d.Y)}
	s.MarginalNLL, _, _ = h.MarginalLoss(d, 0)
	agree, defer_ := 0, 0
	for i, x := range d.X {
		p := h.Prob(x)
		if (p > 0.5) == (d.Y[i] > 0.5) {
			agree++
		}
		if p > 0.5 {
			defer_++
		}
		if d.Y[i] > 0.5 {
			s.PseudoPositive++
		}
		s.BaseNLL -= d.LogPBase[i]
		s.AssistantNLL -= d.LogPAsst[i]
	}
	n := float64(len(d.Y))
	s.DeferRate, s.PseudoAccuracy = float64(defer_)/n, float64(agree)/n
	s.BaseNLL /= n
	s.AssistantNLL /= n
	return s
}

// readDev reads a dev set for cascade and contrastive: a MoCo dataset
// .json (its dev split, checked strictly), JSON lines with a "prompt" (or
// "input") and an optional "answer" (or "output", "completion"), or a .txt
// file with one prompt per non-empty line. Anything else is refused.
func readDev(path string) (*bench.Dataset, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".json" {
		ds, err := bench.LoadDataset(path)
		if err != nil {
			return nil, err
		}
		if len(ds.Dev) == 0 {
			return nil, fmt.Errorf("%s: the dev split is empty", path)
		}
		return ds, nil
	}
	if ext != ".jsonl" && ext != ".txt" {
		return nil, fmt.Errorf("%s: cannot read a dev set from a %q file (want a dataset .json, prompts as .jsonl, or .txt lines)", path, ext)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("%s: not UTF-8 text", path)
	}
	ds := &bench.Dataset{Name: filepath.Base(path), TaskType: bench.ExactMatchTask}
	for n, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		it := bench.Item{ID: strconv.Itoa(n + 1)}
		if ext == ".txt" {
			it.Input = l
			ds.Dev = append(ds.Dev, it)
			continue
		}
		prompt, answer, err := jsonlItem(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n+1, err)
		}
		it.Input, it.Output = prompt, answer
		ds.Dev = append(ds.Dev, it)
	}
	if len(ds.Dev) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return ds, nil
}

// jsonlItem reads one JSON line of a dev file.
func jsonlItem(line string) (prompt, answer string, err error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		return "", "", fmt.Errorf("not a JSON object: %v", err)
	}
	str := func(keys ...string) (string, string, error) {
		for _, k := range keys {
			if v, ok := obj[k]; ok {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return "", k, fmt.Errorf("%q must be a string", k)
				}
				return s, k, nil
			}
		}
		return "", "", nil
	}
	prompt, key, err := str("prompt", "input")
	if err != nil {
		return "", "", err
	}
	if key == "" || strings.TrimSpace(prompt) == "" {
		return "", "", errors.New(`no "prompt" (or "input") text`)
	}
	answer, _, err = str("answer", "output", "completion")
	return prompt, answer, err
}

// calibrationInputs identify a dev calibration: the models' and dev
// file's contents and every setting that changes what is measured.
func calibrationInputs(method string, dirs []string, dev string, samples int, g *genFlags, quantile float64, rank string) (decode.CalibrationInputs, error) {
	in := decode.CalibrationInputs{Method: method, Settings: map[string]string{
		"dev_samples": strconv.Itoa(samples), "seed": strconv.FormatUint(g.seed, 10),
		"sampler":    fmt.Sprintf("%+v", g.sampler()),
		"max_tokens": strconv.Itoa(g.maxTokens), "stop": fmt.Sprintf("%q", g.stop), "chat": strconv.FormatBool(g.chat),
		"quant": g.quant,
	}}
	switch method {
	case "cascade":
		in.Settings["quantile"] = strconv.FormatFloat(quantile, 'g', -1, 64)
	case "contrastive":
		in.Settings["rank"] = rank
	}
	for _, d := range dirs {
		fp, err := decode.FingerprintModel(d)
		if err != nil {
			return in, err
		}
		in.Models = append(in.Models, decode.ModelPrint{Name: d, Fingerprint: fp})
	}
	var err error
	in.Dev, err = decode.HashFile(dev)
	return in, err
}

// scoreModels scores each model alone on the dev items: its accuracy
// (generating answers with the run's sampling settings, as MoCo's dev pass
// does) or the mean NLL of the reference answers.
func scoreModels(ctx context.Context, ms []*engine.Model, toks []*tokenizer.Tokenizer, names []string, task string, items []bench.Item, rank string, g *genFlags, stderr io.Writer) ([]float64, error) {
	if rank == "nll" {
		var pairs [][2]string
		for _, it := range items {
			pairs = append(pairs, [2]string{bench.BuildPrompt(task, it), bench.Reference(task, it)})
		}
		return rankModels(ctx, ms, toks, names, pairs)
	}
	for _, it := range items {
		if strings.TrimSpace(bench.Reference(task, it)) == "" {
			return nil, fmt.Errorf("ranking by dev accuracy needs an answer for every dev item (item %s has none): give a dataset .json or .jsonl lines with \"answer\", or --rank nll", it.ID)
		}
	}
	scores := make([]float64, len(ms))
	for i, m := range ms {
		c, err := decode.NewMethod([]*engine.Model{m}, toks[i:i+1], decode.MethodConfig{
			Method: "single", Sampler: g.sampler(), MaxTokens: g.methodMaxTokens(), Stop: g.stop, Chat: g.chat, Names: names[i : i+1]})
		if err != nil {
			return nil, err
		}
		correct := 0
		for _, it := range items {
			out, err := c.GenerateContext(ctx, bench.BuildPrompt(task, it), nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			if _, ok := bench.Score(task, it, out); ok {
				correct++
			}
		}
		scores[i] = float64(correct) / float64(len(items))
		fmt.Fprintf(stderr, "contrastive: %s: dev accuracy %.3f (%d/%d)\n", names[i], scores[i], correct, len(items))
	}
	return scores, nil
}

// rankOrder returns the model indexes best first: highest score first when
// higher is better, lowest first otherwise; ties keep the given order (as
// Python's stable sort in MoCo).
func rankOrder(scores []float64, higherBetter bool) []int {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := scores[a], scores[b]
		if higherBetter {
			x, y = y, x
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return order
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

// rankModels scores the models by mean NLL (lower is better): on the
// answers given their prompts, or on whole lines when there are no answers.
func rankModels(ctx context.Context, ms []*engine.Model, toks []*tokenizer.Tokenizer, names []string, dev [][2]string) ([]float64, error) {
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
		answer, err := toks[0].Encode(answerSep(p[0], p[1])+p[1], false)
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
	_, mean, err := decode.RankByNLLContext(ctx, sessions, vocab, ids, from)
	return mean, err
}

// answerSep is what goes between a prompt and its reference answer: a
// space ("A:" then " 42", as the models generate it) unless either side
// already has whitespace there.
func answerSep(prompt, answer string) string {
	if strings.TrimRight(prompt, " \n\t") != prompt || strings.TrimLeft(answer, " \n\t") != answer {
		return ""
	}
	return " "
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
