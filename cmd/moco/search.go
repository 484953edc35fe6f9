package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/merge"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "search",
		summary: "dev-scored weight merges: swarms, greedy-soup, lorahub, expo, dare-ties",
		run:     runSearch,
	})
}

var searchMethods = []string{"swarms", "greedy-soup", "lorahub", "expo", "dare-ties"}

func runSearch(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("search", stderr)
	var f searchFlags
	models := fs.StringArrayP("model", "m", nil, "model folder (repeat); LoRA adapter folders for lorahub")
	base := fs.String("base", "", "base model (dare-ties, lorahub)")
	dataset := fs.String("dataset", "", "dev dataset JSON (required)")
	devN := fs.Int("dev-samples", 0, "dev items per candidate: a sample stratified by category, seeded by --seed (0: all)")
	seed := fs.Uint64("seed", 0, "seed of the dev sample and of the search")
	metric := fs.String("metric", "accuracy", "dev score: accuracy or nll (minus the mean NLL of the references)")
	maxNew := fs.Int("max-tokens", 32, "most tokens generated per item (alias --max-new)")
	out := fs.String("out", "", "write the chosen model here")
	testN := fs.Int("test-samples", 0, "also report accuracy of the result on this many test items")
	alphas := fs.Float64Slice("alpha", []float64{0.3}, "expo: alpha candidates, scored on dev with alpha 0 (the target itself, the starting point)")
	expoMode := fs.String("expo-mode", "pair", "expo: pair (-m SOURCE -m TARGET), worst_to_best, topk_bottomk")
	k := fs.Int("k", 1, "expo topk_bottomk: k")
	density := fs.Float64("density", 0.5, "dare-ties: density")
	particles := fs.Int("particles", 6, "dare-ties: particles")
	iters := fs.Int("iterations", 0, "dare-ties / swarms: iterations (0: 5 / 10)")
	extra := fs.Int("extra-particles", 0, "swarms: particles added as random crossovers")
	budget := fs.Int("budget", 40, "lorahub: candidates scored (the paper's 40; MoCo's weight_lorahub uses 20)")
	lhOpt := fs.String("lorahub-optimizer", merge.LoraHubOnePlusOne, "lorahub: oneplusone (from zero weights, (1+1)-ES, L1 penalty 0.05, bounds +-1.5, as the paper) or es (moco's earlier (1+lambda)-ES from uniform weights)")
	force := fs.Bool("force", false, "replace an existing, non-empty model folder at --out (a file, or a folder that is not a model folder, is never replaced)")
	asJSON := fs.Bool("json", false, "print one JSON object (method, metric, dev score, weights, test accuracy, out) instead of the text report")
	setRange(fs, "dev-samples", atLeast(0).withNote("0: all"))
	setRange(fs, "max-tokens", atLeast(1))
	aliasFlags(fs, map[string]string{"max-new": "max-tokens"})
	setRange(fs, "test-samples", atLeast(0))
	setRange(fs, "alpha", between(0, 100))
	setRange(fs, "k", atLeast(1))
	setRange(fs, "density", between(0, 1))
	setRange(fs, "particles", atLeast(1))
	setRange(fs, "iterations", atLeast(0))
	setRange(fs, "extra-particles", atLeast(0))
	setRange(fs, "budget", atLeast(1))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco search swarms|greedy-soup|lorahub|expo|dare-ties -m A -m B ... --dataset FILE [--dev-samples N] [--out DIR]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one method: %s", strings.Join(searchMethods, ", "))
	}
	method := fs.Arg(0)
	// A flag of another search would be silently dropped: refuse it.
	for _, f := range []struct {
		flag    string
		methods []string
	}{
		{"base", []string{"dare-ties", "lorahub"}}, {"alpha", []string{"expo"}}, {"expo-mode", []string{"expo"}}, {"k", []string{"expo"}},
		{"density", []string{"dare-ties"}}, {"particles", []string{"dare-ties"}}, {"iterations", []string{"dare-ties", "swarms"}},
		{"extra-particles", []string{"swarms"}}, {"budget", []string{"lorahub"}}, {"lorahub-optimizer", []string{"lorahub"}},
	} {
		if fs.Changed(f.flag) && slices.Contains(searchMethods, method) && !slices.Contains(f.methods, method) {
			return usagef("--%s is not read by %s (only by %s)", f.flag, method, strings.Join(f.methods, ", "))
		}
	}
	if *dataset == "" || len(*models) == 0 {
		return usagef("--dataset and -m are required")
	}
	if *out != "" {
		// Refuse a bad output before spending the search on it.
		if err := safetensors.CheckOutPath(*out, *force); err != nil {
			return err
		}
	}
	f = searchFlags{method: method, models: models, base: base, devN: devN, seed: seed, metric: metric, maxNew: maxNew, out: out,
		testN: testN, alphas: alphas, expoMode: expoMode, k: k, density: density, particles: particles, iters: iters,
		extra: extra, budget: budget, force: force, asJSON: asJSON, lhOpt: lhOpt}
	ds, err := bench.LoadDataset(*dataset)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return interrupted(ctx, f.run(ctx, ds, stdout, stderr))
}

// searchFlags are search's parsed flags.
type searchFlags struct {
	method                             string
	models                             *[]string
	base, metric, out, expoMode, lhOpt *string
	devN, maxNew, testN, k             *int
	particles, iters, extra, budget    *int
	seed                               *uint64
	alphas                             *[]float64
	density                            *float64
	force, asJSON                      *bool
}

func (f *searchFlags) run(ctx context.Context, ds *bench.Dataset, stdout, stderr io.Writer) error {
	method, models, base, devN, seed, metric, maxNew := f.method, f.models, f.base, f.devN, f.seed, f.metric, f.maxNew
	out, testN, alphas, expoMode, k, density := f.out, f.testN, f.alphas, f.expoMode, f.k, f.density
	particles, iters, extra, budget := f.particles, f.iters, f.extra, f.budget
	ref := (*models)[0]
	if method == "lorahub" || (*base != "" && method == "dare-ties") {
		ref = *base
	}
	if ref == "" {
		return usagef("%s needs --base", method)
	}
	cfg, err := engine.LoadConfig(ref)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(ref)
	if err != nil {
		return err
	}
	o := bench.NLLOptions{Options: bench.Options{N: *devN, Seed: *seed}, AnswerPrefix: " ", AppendEOS: true}
	score := merge.Scorer(bench.DevScorer(ctx, cfg, tok, ds, "dev", *metric, o, *maxNew))
	log := merge.Logf(func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) })
	start := time.Now()

	var ins []merge.Input
	var dirs []string
	if method != "lorahub" {
		for _, m := range *models {
			in, err := merge.OpenModel(m)
			if err != nil {
				return err
			}
			defer in.Src.Close()
			ins = append(ins, in)
			dirs = append(dirs, m)
		}
	}
	report := stdout
	if *f.asJSON {
		stdout = io.Discard // the text report gives way to one JSON object
	}
	var testRes *bench.Result
	var res *merge.Result
	switch method {
	case "greedy-soup":
		res, err = merge.GreedySoup(ctx, ins, score, log)
	case "swarms":
		res, err = merge.ModelSwarms(ctx, ins, merge.SwarmOptions{MaxIterations: *iters, ExtraParticles: *extra, Seed: *seed}, score, log)
	case "expo":
		res, err = merge.ExPO(ctx, ins, merge.ExPOMode(*expoMode), *k, *alphas, score, log)
	case "dare-ties":
		if *base == "" {
			return usagef("dare-ties needs --base")
		}
		b, err2 := merge.OpenModel(*base)
		if err2 != nil {
			return err2
		}
		defer b.Src.Close()
		dirs = append([]string{*base}, dirs...)
		res, err = merge.DareTiesSearch(ctx, b, ins, merge.PSOOptions{Particles: *particles, Iterations: *iters, Seed: *seed, Density: *density}, score, log)
	case "lorahub":
		var as []*merge.Adapter
		for _, m := range *models {
			a, err := merge.LoadAdapter(m)
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		b, err2 := merge.OpenModel(*base)
		if err2 != nil {
			return err2
		}
		defer b.Src.Close()
		dirs = []string{*base}
		res, err = merge.LoraHub(ctx, b.Src, as, merge.LoraHubOptions{Budget: *budget, Seed: *seed, Optimizer: *f.lhOpt}, score, log)
	default:
		return usagef("unknown search method %q (want %s)", method, strings.Join(searchMethods, ", "))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: dev %s %.4f after %d candidates in %.1fs", method, *metric, res.Score, res.Evals, time.Since(start).Seconds())
	if res.Weights != nil {
		fmt.Fprintf(stdout, ", weights %v", res.Weights)
	}
	if method == "expo" {
		fmt.Fprintf(stdout, ", alpha %g", res.Alpha)
	}
	fmt.Fprintln(stdout)
	if *testN != 0 {
		m, err := engine.New(cfg, res.Src, engine.Options{})
		if err != nil {
			return err
		}
		r, err := bench.EvaluateWith(ds, "test", bench.Options{N: *testN}, bench.Greedy(m, tok, *maxNew))
		m.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "test accuracy %.3f (%d/%d)\n", r.Accuracy, r.Correct, r.N)
		testRes = r
	}
	if *out != "" {
		dt := safetensors.DType("")
		if src, err := safetensors.OpenDir(dirs[0]); err == nil {
			for _, n := range src.Names() {
				if t, _ := src.Tensor(n); t.DType == safetensors.BF16 || t.DType == safetensors.F16 || t.DType == safetensors.F32 {
					dt = t.DType
					break
				}
			}
			src.Close()
		}
		spec := &merge.Spec{Method: "linear", Models: []merge.Input{{Name: method, Src: res.Src}}, OutDType: dt}
		fo := merge.FolderOptions{Dirs: dirs[:1], Progress: progressOut(stderr), Force: *f.force, Notice: func(m string) { fmt.Fprintln(stderr, "moco search:", m) }}
		if err := merge.WriteFolder(ctx, spec, *out, fo); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s, peak RSS %s\n", *out, peakRSS())
	}
	if *f.asJSON {
		return writeJSON(report, searchJSON(method, *metric, *seed, *models, res, testRes, *out))
	}
	return nil
}
