package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "score a model on a MoCo dataset (greedy exact match / multiple choice, or mean NLL)",
		run:     runEval,
	})
}

func runEval(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	model := fs.StringP("model", "m", "", "model folder (required)")
	dataset := fs.String("dataset", "", "dataset JSON {dataset, task_type, dev, test} (required)")
	split := fs.String("split", "test", "dev or test")
	n := fs.Int("n", 100, "items to score (0: all)")
	seed := fs.Uint64("seed", 0, "0: the first N items; else a seeded random sample")
	metric := fs.String("metric", "accuracy", "accuracy (generate and score) or nll (mean NLL of the references)")
	maxNew := fs.Int("max-new", 64, "most tokens generated per item")
	stop := fs.StringArray("stop", nil, "cut generations at this string before scoring (repeat)")
	prefix := fs.String("answer-prefix", " ", "text between prompt and reference for --metric nll")
	threads := fs.Int("threads", 0, "worker threads (0: all cores)")
	quant := fs.String("quant", "", "weight quantization: \"\" or q8_0")
	jsonOut := fs.Bool("json", false, "print every item's generation and score as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco eval --model DIR --dataset FILE [--split test] [--n 100] [--metric accuracy|nll]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *dataset == "" {
		return usagef("--model and --dataset are required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ds, err := bench.LoadDataset(*dataset)
	if err != nil {
		return err
	}
	m, err := engine.Load(*model, engine.Options{Threads: *threads, Quant: *quant})
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return err
	}
	o := bench.Options{N: *n, Seed: *seed, Stop: unescape(*stop)}
	switch *metric {
	case bench.MetricNLL:
		v, err := bench.MeanNLL(m, tok, ds, *split, bench.NLLOptions{Options: o, AnswerPrefix: *prefix, AppendEOS: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s %s: mean NLL %.4f\n", *model, ds.Name, *split, v)
		return nil
	case bench.MetricAccuracy:
	default:
		return usagef("--metric %q: want accuracy or nll", *metric)
	}
	r, err := bench.EvaluateWith(ds, *split, o, bench.Greedy(m, tok, *maxNew))
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "%s %s %s: accuracy %.3f (%d/%d)\n", *model, ds.Name, *split, r.Accuracy, r.Correct, r.N)
	return nil
}

// unescape turns "\n" and "\t" typed on a command line into the characters.
func unescape(ss []string) []string {
	r := strings.NewReplacer(`\n`, "\n", `\t`, "\t")
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.Replace(s)
	}
	return out
}
