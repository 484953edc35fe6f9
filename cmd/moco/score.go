package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/engine"
)

func init() {
	register(&command{
		name:    "score",
		summary: "score outputs made anywhere (JSON lines {id, output}) on a MoCo dataset with moco's scorers",
		run:     runScore,
	})
}

func runScore(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("score", stderr)
	dataset := fs.String("dataset", "", "dataset JSON {dataset, task_type, dev, test} (required)")
	split := fs.String("split", "test", "dev or test")
	preds := fs.String("predictions", "", "JSON lines, one {\"id\": ..., \"output\": \"...\"} per item (required; - reads stdin)")
	sf := addScorerFlags(fs)
	workers := fs.Int("workers", 0, "items scored at once (0: one per core)")
	jsonOut := fs.Bool("json", false, "print {task_type, metric, score, n, missing, unknown, items} as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco score --dataset FILE --predictions FILE.jsonl [--split test] [--json]")
		fmt.Fprintln(stderr, "Items with no output count as wrong and are listed.")
		fs.PrintDefaults()
	}
	setRange(fs, "workers", atLeast(0))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataset == "" || *preds == "" {
		return usagef("--dataset and --predictions are required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *split != "dev" && *split != "test" {
		return usagef("--split %q: want dev or test", *split)
	}
	if err := sf.check(); err != nil {
		return err
	}
	ds, err := bench.LoadDataset(*dataset)
	if err != nil {
		return err
	}
	var r io.Reader
	if *preds == "-" {
		r = stdin
	} else {
		f, err := os.Open(*preds)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	outputs, err := bench.ReadPredictions(r)
	if err != nil {
		return fmt.Errorf("%s: %w", *preds, err)
	}
	ds.Name = taskName(*dataset) // the name its scoring rules go by
	o, closeJudge, err := sf.options(*dataset, engine.Options{})
	if err != nil {
		return err
	}
	defer closeJudge()
	ctx, stop := signalContext()
	defer stop()
	rep, err := bench.ScoreOutputs(ctx, ds, *split, outputs, o, *workers)
	if err != nil {
		if errors.Is(err, bench.ErrNeedsJudge) {
			return fmt.Errorf("%w (give --judge DIR)", err)
		}
		return interrupted(ctx, err)
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "%s %s (%s): %s %.4f over %d items", rep.Dataset, rep.Split, rep.TaskType, rep.Metric, rep.Score, rep.N)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(stdout, "; %d missing, scored 0", len(rep.Missing))
	}
	fmt.Fprintln(stdout)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(stdout, "missing: %s\n", joinLimited(rep.Missing, 50))
	}
	if len(rep.Unknown) > 0 {
		fmt.Fprintf(stderr, "moco score: %d outputs for ids not in %s %s were ignored: %s\n", len(rep.Unknown), rep.Dataset, rep.Split, joinLimited(rep.Unknown, 20))
	}
	return nil
}

// joinLimited joins ids with spaces, at most n of them, then "... (k more)".
func joinLimited(ids []string, n int) string {
	s := ""
	for i, id := range ids {
		if i == n {
			return s + fmt.Sprintf(" ... (%d more)", len(ids)-n)
		}
		if i > 0 {
			s += " "
		}
		s += id
	}
	return s
}
