package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "score a model or a method over models on a MoCo dataset (any task type's scorer on greedy generations, or mean NLL)",
		run:     runEval,
	})
}

// evalResult is eval's --json output, one object for every metric.
type evalResult struct {
	Model       string         `json:"model"`              // the model, or the pool joined by "+"
	Models      []string       `json:"models"`             // every -m, in order
	Method      string         `json:"method"`             // "single" for one model
	Dataset     string         `json:"dataset"`            // the dataset's name
	File        string         `json:"file"`               // the dataset file
	Split       string         `json:"split"`              // dev or test
	Metric      string         `json:"metric"`             // accuracy, nll, or the task type's (f1, pass@1, ...)
	Seed        uint64         `json:"seed"`               // of the stratified sample
	N           int            `json:"n"`                  // items scored
	Total       int            `json:"total"`              // items chosen (more than n when interrupted)
	Accuracy    *float64       `json:"accuracy,omitempty"` // metric accuracy
	Correct     *int           `json:"correct,omitempty"`
	Score       *float64       `json:"score,omitempty"` // the metric's mean over the items
	MeanNLL     *float64       `json:"mean_nll,omitempty"`
	Interrupted bool           `json:"interrupted"`
	Settings    map[string]any `json:"settings"`
	Items       []evalItem     `json:"items,omitempty"`
}

type evalItem struct {
	ID         string  `json:"id"`
	Prompt     string  `json:"prompt"`
	Generation string  `json:"generation"`
	Pred       string  `json:"pred"`
	Ref        string  `json:"ref"`
	Correct    bool    `json:"correct"`
	Score      float64 `json:"score"`
	Note       string  `json:"note,omitempty"`
}

func runEval(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	models := fs.StringArrayP("model", "m", nil, "model folder, or an OpenAI-compatible endpoint http(s)://HOST[:PORT][/v1]#MODEL (required; repeat with --method to score a method over several)")
	keyEnv := fs.String("api-key-env", "", "environment variable holding the endpoints' API key (e.g. OPENAI_API_KEY)")
	method := fs.String("method", "", "collaboration method over the -m models, built through the method registry: "+methodNames()+" (default: single, one model)")
	params := fs.StringArray("param", nil, "method parameter key=value, JSON values (e.g. alpha=0.5, weights=[0.7,0.3], mode=prob-mean); repeat")
	dataset := fs.String("dataset", "", "dataset JSON {dataset, task_type, dev, test} (required)")
	split := fs.String("split", "test", "dev or test")
	n := fs.Int("n", 0, "items to score, a sample stratified by category or id prefix (0: all)")
	setRange(fs, "n", atLeast(0))
	first := fs.Bool("first", false, "take the first --n items instead of a sample")
	seed := fs.Uint64P("seed", "s", 0, "seed of the stratified sample")
	metric := fs.String("metric", "accuracy", "accuracy (generate greedily and score by the dataset's task type: accuracy, F1, pass@1, judge's score, ...) or nll (mean NLL of the references under one model, or under fusion or contrastive over several)")
	promptStyle := fs.String("prompt", "raw", "prompts of --metric accuracy: raw (each item's input as it is, as the skills sets need) or moco (MoCo's prompts: the \\box{} instruction, lettered options), as a sweep's prompt:")
	sf := addScorerFlags(fs)
	maxNew := fs.Int("max-tokens", 64, "most tokens generated per item (alias --max-new)")
	choice := fs.String("choice-scoring", bench.ChoiceGenerate, "multiple_choice: generate (read the option letter from a greedy generation) or loglik (no generation: the option whose text is most likely after \"Question: ...\\nAnswer:\", under the model or a logit-level method's combined distribution, as lm-evaluation-harness scores small models)")
	setRange(fs, "max-tokens", atLeast(1))
	aliasFlags(fs, map[string]string{"max-new": "max-tokens"})
	batch := fs.Int("batch", defaultEvalBatch, "items decoded together, each weight read once per step for all (1: one at a time; fusion, contrastive and nudging step all their models together for the items; co-llm, mentor, speculative and cascade always run one at a time); the scores do not depend on it")
	setRange(fs, "batch", atLeast(1))
	stop := fs.StringArray("stop", nil, "cut generations at this string before scoring (repeat); "+escapeHelp)
	prefix := fs.String("answer-prefix", " ", "text between prompt and reference for --metric nll; "+escapeHelp)
	noEscape := fs.Bool("no-escape", false, `take --stop and --answer-prefix literally (no \n escapes)`)
	var threads, ctxSize int
	addThreadsFlag(fs, &threads)
	addCtxSizeFlag(fs, &ctxSize)
	quant := fs.String("quant", "", "quantize the weights at load: \"\" (as stored), q8_0 or q4_0")
	jsonOut := fs.Bool("json", false, "print one JSON object: model, method, metric, seed, settings, score and every item")
	quiet := fs.BoolP("quiet", "q", false, "no progress on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco eval -m DIR [-m DIR --method NAME] --dataset FILE [--split test] [--n N] [--metric accuracy|nll] [--json]")
		fmt.Fprintln(stderr, "Ctrl-C stops the run and prints the score of the items done so far.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*models) == 0 || *dataset == "" {
		return usagef("--model and --dataset are required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *metric != bench.MetricAccuracy && *metric != bench.MetricNLL {
		return usagef("--metric %q: want accuracy or nll", *metric)
	}
	if *metric == bench.MetricNLL || *choice == bench.ChoiceLoglik {
		for _, m := range *models {
			if collab.IsEndpointSpec(m) {
				return usagef("%s: --metric nll and --choice-scoring loglik need the models' logits, which an endpoint does not give; use model folders", m)
			}
		}
	}
	if *promptStyle != "raw" && *promptStyle != "moco" {
		return usagef("--prompt %q: want raw or moco", *promptStyle)
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *choice != bench.ChoiceGenerate && *choice != bench.ChoiceLoglik {
		return usagef("--choice-scoring %q: want generate or loglik", *choice)
	}
	name := *method
	if name == "" {
		if len(*models) > 1 {
			return usagef("%d models given: choose how they work together with --method (%s), or give one -m", len(*models), methodNames())
		}
		name = "single"
	}
	if _, ok := collab.Lookup(name); !ok {
		return usagef("unknown --method %q (known: %s)", name, methodNames())
	}
	mp, err := parseParams(*params)
	if err != nil {
		return err
	}
	if name == "single" && len(mp) > 0 {
		return usagef("--param is for a --method over several models")
	}
	stops := unescapeAll(*stop, *noEscape)
	answerPrefix := unescapeAll([]string{*prefix}, *noEscape)[0]
	ds, err := bench.LoadDataset(*dataset)
	if err != nil {
		return err
	}
	ds.Name = taskName(*dataset) // the name its scoring rules go by, as moco score and sweeps name it
	opts := engine.Options{Threads: threads, Quant: *quant, ContextSize: ctxSize}
	res := evalResult{
		Models: *models, Method: name, Dataset: ds.Name, File: *dataset, Split: *split, Metric: *metric, Seed: *seed,
		Settings: map[string]any{"n": *n, "first": *first, "max_new": *maxNew, "stop": stops, "threads": threads, "ctx_size": ctxSize, "quant": *quant, "batch": *batch},
	}
	res.Model = strings.Join(*models, "+")
	if *metric == bench.MetricNLL {
		res.Settings["answer_prefix"] = answerPrefix
	}
	if len(mp) > 0 {
		res.Settings["params"] = mp
	}
	ctx, cancel := signalContext()
	defer cancel()
	var bar *progressBar
	if !*quiet {
		bar = newProgressBar(stderr, "eval")
	}
	o := bench.Options{N: *n, Seed: *seed, First: *first, Stop: stops}
	if *metric == bench.MetricAccuracy && *choice != bench.ChoiceLoglik {
		// The task type's scorer, as a sweep and moco score use it.
		so, closeJudge, err := sf.options(*dataset, opts)
		if err != nil {
			return err
		}
		defer closeJudge()
		so.Prompt = *promptStyle
		sc, err := bench.NewScorer(ds.TaskType, so)
		if errors.Is(err, bench.ErrNeedsJudge) {
			return usagef("%v (give --judge DIR)", err)
		}
		if err != nil {
			return usagef("%s: %v", ds.Name, err)
		}
		o.Scorer = sc
		res.Settings["prompt"] = *promptStyle
	}

	var runErr error
	if *metric == bench.MetricNLL {
		o.Progress = func(done, total, _ int) { bar.update(done, total, "items") }
		v, k, err := evalNLL(ctx, *models, name, mp, opts, ds, *split, bench.NLLOptions{Options: o, AnswerPrefix: answerPrefix, AppendEOS: true})
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil {
			runErr = interrupted(ctx, err)
		}
		res.N, res.MeanNLL = k, &v
		res.Total = k
		if items, err := ds.Split(*split); err == nil {
			res.Total = len(o.Pick(items))
		}
	} else if *choice == bench.ChoiceLoglik {
		if ds.TaskType != bench.MultipleChoiceTask {
			return usagef("--choice-scoring loglik is for multiple_choice datasets; %s is %s", ds.Name, ds.TaskType)
		}
		res.Settings["choice_scoring"] = *choice
		pool, closeAll, err := collab.LoadPool(*models, opts)
		if err != nil {
			return err
		}
		defer closeAll()
		var sc collab.Scorer
		if name == "single" {
			sc, _ = pool[0].Gen.(collab.Scorer)
		} else {
			meth, err := collab.New(ctx, name, pool, mp)
			if err != nil {
				return usagef("%v", err)
			}
			if c, ok := meth.(io.Closer); ok {
				defer c.Close()
			}
			sc, _ = meth.(collab.Scorer)
		}
		if sc == nil {
			return usagef("--choice-scoring loglik needs a method that gives text a likelihood (single, fusion, contrastive, nudging, weight-level merges); %s generates text only", name)
		}
		o.Progress = evalProgress(bar, o.Scorer)
		r, err := bench.EvaluateChoiceLoglik(ctx, ds, *split, o, sc)
		if runErr, err = fillAccuracy(ctx, &res, r, err); err != nil {
			return err
		}
	} else {
		gen, closeAll, err := evalGenerator(ctx, *models, name, mp, collab.PoolOptions{Engine: opts, KeyEnv: *keyEnv}, *maxNew, *batch)
		if err != nil {
			return err
		}
		defer closeAll()
		o.Progress = evalProgress(bar, o.Scorer)
		r, err := bench.EvaluateBatch(ctx, ds, *split, o, gen)
		if runErr, err = fillAccuracy(ctx, &res, r, err); err != nil {
			return err
		}
	}
	bar.end()
	res.Interrupted = runErr != nil
	if runErr != nil {
		fmt.Fprintf(stderr, "moco eval: interrupted after %d of %d items; the score below is over those\n", res.N, res.Total)
	}
	if *jsonOut {
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	} else {
		what := res.Model
		if name != "single" {
			what = name + "(" + strings.Join(baseNames(*models), ", ") + ")"
		}
		if res.MeanNLL != nil {
			fmt.Fprintf(stdout, "%s %s %s: mean NLL %.4f (%d items)\n", what, ds.Name, *split, *res.MeanNLL, res.N)
		} else if res.Accuracy == nil {
			fmt.Fprintf(stdout, "%s %s %s: %s %.3f (%d items)\n", what, ds.Name, *split, res.Metric, *res.Score, res.N)
		} else {
			fmt.Fprintf(stdout, "%s %s %s: accuracy %.3f (%d/%d)\n", what, ds.Name, *split, *res.Accuracy, *res.Correct, res.N)
		}
	}
	return runErr
}

// evalNLL is --metric nll: the references' mean NLL per token and the
// items scored, under one model or under a logit-level method that
// combines distributions at every position (fusion, contrastive;
// collab.CanScore says why others cannot).
func evalNLL(ctx context.Context, models []string, name string, mp collab.Params, opts engine.Options, ds *bench.Dataset, split string, o bench.NLLOptions) (float64, int, error) {
	if name == "single" {
		m, tok, err := loadOne(models[0], opts)
		if err != nil {
			return 0, 0, err
		}
		defer m.Close()
		return bench.MeanNLLContext(ctx, m, tok, ds, split, o)
	}
	pool, closeAll, err := collab.LoadPool(models, opts)
	if err != nil {
		return 0, 0, err
	}
	defer closeAll()
	meth, err := collab.New(ctx, name, pool, mp)
	if err != nil {
		return 0, 0, err
	}
	ts, err := collab.CanScore(meth)
	if err != nil {
		return 0, 0, usagef("--metric nll with --method %s: %v", name, err)
	}
	return bench.MethodNLL(ctx, ts, pool[0].Local.(*collab.Local).Model.Config.EOS, ds, split, o)
}

// loadOne loads a model folder and its tokenizer.
func loadOne(dir string, opts engine.Options) (*engine.Model, *tokenizer.Tokenizer, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	m, err := engine.Load(dir, opts)
	return m, tok, err
}

// defaultEvalBatch is eval's --batch: on the 2-core reference machine
// 16 sequences per step reach most of the batched throughput while short
// evaluations still fill the batch.
const defaultEvalBatch = 16

// evalGenerator returns the greedy generator eval scores: for one model
// bench.GreedyBatch (batch items per step; bench.Greedy, the reference
// harness, one item at a time for batch 1), else the registry's method
// over the pool, run with greedy requests of maxNew tokens under ctx for
// batch items at once: the pool's local models answer every request in
// flight through one batcher each (collab.Local), and fusion, contrastive
// and nudging through one lockstep batcher over all their models
// (decode.BatchMethods), so concurrent items share the steps. The other
// logit-level methods run their own sessions per request and gain nothing
// from it, so they run one item at a time.
func evalGenerator(ctx context.Context, dirs []string, method string, p collab.Params, po collab.PoolOptions, maxNew, batch int) (bench.BatchGenerator, func(), error) {
	if method == "single" && !collab.IsEndpointSpec(dirs[0]) {
		m, tok, err := loadOne(dirs[0], po.Engine)
		if err != nil {
			return nil, func() {}, err
		}
		if batch <= 1 {
			return bench.Sequential(bench.GreedyContext(ctx, m, tok, maxNew)), func() { m.Close() }, nil
		}
		return bench.GreedyBatch(m, tok, maxNew, batch), func() { m.Close() }, nil
	}
	// Endpoints (an API model alone, or members of API- and text-level
	// methods) answer up to batch requests at once, within their own
	// concurrency limit.
	pool, closeAll, err := collab.OpenPool(dirs, po)
	if err != nil {
		return nil, func() {}, err
	}
	meth, err := collab.New(ctx, method, pool, p)
	if err != nil {
		closeAll()
		return nil, func() {}, usagef("%v", err)
	}
	if meth.Level() == collab.LevelLogit && !slices.Contains(decode.BatchMethods, method) {
		batch = 1
	}
	return concurrentGenerator(meth, maxNew, batch), closeAll, nil
}

// concurrentGenerator answers the prompts with meth, up to workers of
// them in flight at once, each a greedy request of maxNew tokens.
func concurrentGenerator(meth collab.Method, maxNew, workers int) bench.BatchGenerator {
	return func(ctx context.Context, prompts []string, done func(int, string, error)) error {
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(workers, len(prompts)) {
			wg.Go(func() {
				for i := range next {
					out, err := meth.Generate(ctx, []collab.Request{{Prompt: prompts[i], MaxTokens: maxNew}})
					if ctx.Err() != nil {
						continue // not done: the run was interrupted
					}
					if err != nil {
						done(i, "", err)
						continue
					}
					done(i, out[0].Text, nil)
				}
			})
		}
	feed:
		for i := range prompts {
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
		return ctx.Err()
	}
}

// parseParams reads --param key=value pairs; a value that parses as JSON
// (number, bool, list, object, quoted string) is that value, any other is
// the string as typed.
func parseParams(kvs []string) (collab.Params, error) {
	p := collab.Params{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--param %q: want key=value", kv)
		}
		if _, dup := p[k]; dup {
			return nil, usagef("--param %s given twice", k)
		}
		var x any
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			x = v
		}
		p[k] = x
	}
	return p, nil
}

// methodNames lists the registry's methods for help and errors.
func methodNames() string {
	var names []string
	for _, s := range collab.Specs() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// baseNames are the folders' base names, or the endpoints' model names.
func baseNames(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		if _, model, ok := strings.Cut(d, "#"); ok && collab.IsEndpointSpec(d) {
			out[i] = model
			continue
		}
		out[i] = filepath.Base(filepath.Clean(d))
	}
	return out
}

// evalProgress redraws bar with the accuracy so far (with sc, only when
// its metric is accuracy: the items exactly right say little of an F1).
func evalProgress(bar *progressBar, sc bench.Scorer) func(done, total, correct int) {
	return func(done, total, correct int) {
		if sc != nil && sc.Metric() != bench.MetricAccuracy {
			bar.update(done, total, "items")
			return
		}
		bar.update(done, total, fmt.Sprintf("items, accuracy %.3f", float64(correct)/float64(done)))
	}
}

// fillAccuracy copies an accuracy run's result into res. An interruption
// is not a failure: it comes back as the first value, to be reported after
// the partial score; any other error is the second.
func fillAccuracy(ctx context.Context, res *evalResult, r *bench.Result, err error) (error, error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	var runErr error
	if err != nil {
		runErr = interrupted(ctx, err)
	}
	res.N, res.Total, res.Score = r.N, r.Total, &r.Score
	if r.Metric != bench.MetricAccuracy {
		res.Metric = r.Metric // the task type's: f1, pass@1, ...
	} else {
		res.Accuracy, res.Correct = &r.Accuracy, &r.Correct
	}
	for _, it := range r.Items {
		res.Items = append(res.Items, evalItem{ID: it.ID, Prompt: it.Prompt, Generation: it.Generation, Pred: it.Pred, Ref: it.Ref, Correct: it.Correct, Score: it.Score, Note: it.Note})
	}
	return runErr, nil
}
