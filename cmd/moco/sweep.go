package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mocolab/moco/bench"
)

func init() {
	register(&command{
		name:    "sweep",
		summary: "run models x methods x datasets from one config; merge shards; report the paper's tables",
		run:     runSweep,
	})
}

func runSweep(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "merge":
			return runSweepMerge(args[1:], stdout, stderr)
		case "report":
			return runSweepReport(args[1:], stdout, stderr)
		}
	}
	fs := newFlags("sweep", stderr)
	out := fs.StringP("out", "o", "", "results file, JSON lines, resumed when it exists (default: CONFIG's name + -results.jsonl beside it, with .shard-I-of-N for shards)")
	shard := fs.String("shard", "", "run shard I/N only (0-based; items by hash of method, dataset, item). Default: SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shard-count")
	shardCount := fs.Int("shard-count", 0, "number of shards for a Kubernetes Indexed Job (JOB_COMPLETION_INDEX gives the index)")
	limit := fs.Int("limit", 0, "items per dataset, a seeded sample stratified by category or id prefix (0: the config's limits)")
	workers := fs.Int("workers", 0, "items run at once (0: the config's workers, else one per core); the items in flight of a single model, fusion, contrastive or nudging decode in one batch, each weight read once per step for all")
	quiet := fs.BoolP("quiet", "q", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco sweep CONFIG.yaml [--out FILE] [--shard I/N] [--limit N]")
		fmt.Fprintln(stderr, "       moco sweep merge --out FILE SHARD.jsonl... [--partial]")
		fmt.Fprintln(stderr, "       moco sweep report RESULTS.jsonl [--out-dir DIR]")
		fmt.Fprintln(stderr, "\nOne JSON line per (method, dataset, item) is appended to the results file as items finish;")
		fmt.Fprintln(stderr, "an interrupted sweep (Ctrl-C, SIGKILL) resumes where it stopped when run again.")
		fmt.Fprintln(stderr, "Methods that learn or search (routers, switch generation, LLM-Blender, swarms, AggLM, contrastive,")
		fmt.Fprintln(stderr, "cascade, co-llm, weight searches) are built per dataset from its dev split only.")
		fmt.Fprintln(stderr, "Datasets that need a judge (reward_model, noncompliance) are refused without judge: in the config;")
		fmt.Fprintln(stderr, "noncompliance_keywords: true scores noncompliance by MoCo's keyword rule instead (eval.py's is_noncompliance).")
		fmt.Fprintln(stderr, "A dataset's choice_scoring: loglik scores multiple choice by the options' log-likelihood (lm-evaluation-harness).")
		fs.PrintDefaults()
	}
	setRange(fs, "shard-count", atLeast(0))
	setRange(fs, "limit", atLeast(0))
	setRange(fs, "workers", atLeast(0))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one config file (see --help)")
	}
	if *limit < 0 || *workers < 0 || *shardCount < 0 {
		return usagef("--limit, --workers and --shard-count must not be negative")
	}
	i, n, err := shardFromEnv(*shard, *shardCount, os.Getenv)
	if err != nil {
		return usagef("%v", err)
	}
	cfgPath := fs.Arg(0)
	c, dss, err := bench.LoadSweepConfig(cfgPath)
	if err != nil {
		return err
	}
	if *out == "" {
		base := strings.TrimSuffix(filepath.Base(cfgPath), filepath.Ext(cfgPath))
		name := base + "-results.jsonl"
		if n > 1 {
			name = fmt.Sprintf("%s-results.shard-%d-of-%d.jsonl", base, i, n)
		}
		*out = filepath.Join(filepath.Dir(cfgPath), name)
	}
	ctx, stop := signalContext()
	defer stop()
	pw := progressOut(stderr)
	var last time.Time
	o := bench.SweepOptions{Out: *out, Shard: i, Shards: n, Limit: *limit, Workers: *workers,
		Notice: func(s string) { fmt.Fprintf(stderr, "moco sweep: %s\n", s) }}
	if !*quiet {
		o.Progress = func(p bench.SweepProgress) {
			if p.Done < p.Total && time.Since(last) < 200*time.Millisecond {
				return
			}
			last = time.Now()
			fmt.Fprint(pw, "\r"+progressLine(p))
			if p.Done == p.Total {
				fmt.Fprintln(pw)
			}
		}
	}
	sum, err := bench.RunSweep(ctx, c, dss, o)
	if err != nil {
		if !*quiet {
			fmt.Fprintln(pw)
		}
		if sum != nil {
			fmt.Fprintf(stderr, "moco sweep: %d items written to %s; run the same command again to resume\n", sum.Ran+sum.Resumed, *out)
		}
		return interrupted(ctx, err)
	}
	fmt.Fprintf(stdout, "%s: %d items run, %d resumed", *out, sum.Ran, sum.Resumed)
	if n > 1 {
		fmt.Fprintf(stdout, " (shard %d of %d)", i, n)
	}
	fmt.Fprintln(stdout)
	for _, r := range sum.Refused {
		fmt.Fprintf(stdout, "refused %s\n", r)
	}
	return nil
}

// progressLine is the bar: items done / total, items/s, ETA, per method.
func progressLine(p bench.SweepProgress) string {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.Total-p.Done)/rate) * time.Second).Round(time.Second).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sweep %d/%d items  %.2f items/s  ETA %s  |", p.Done, p.Total, rate, eta)
	for _, m := range p.Methods {
		fmt.Fprintf(&b, " %s %d/%d", m.Label, m.Done, m.Total)
	}
	return b.String()
}

// shardFromEnv picks the shard: --shard I/N, else SLURM job arrays
// (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, of
// SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job
// (JOB_COMPLETION_INDEX of --shard-count), else 0 of 1.
func shardFromEnv(flag string, count int, env func(string) string) (int, int, error) {
	if flag != "" {
		return bench.ParseShard(flag)
	}
	if id := env("SLURM_ARRAY_TASK_ID"); id != "" {
		n, err := strconv.Atoi(env("SLURM_ARRAY_TASK_COUNT"))
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is %q", env("SLURM_ARRAY_TASK_COUNT"))
		}
		i, err := strconv.Atoi(id)
		if err != nil {
			return 0, 0, fmt.Errorf("SLURM_ARRAY_TASK_ID %q is not a number", id)
		}
		if m := env("SLURM_ARRAY_TASK_MIN"); m != "" {
			lo, err := strconv.Atoi(m)
			if err != nil {
				return 0, 0, fmt.Errorf("SLURM_ARRAY_TASK_MIN %q is not a number", m)
			}
			i -= lo
		}
		if i < 0 || i >= n {
			return 0, 0, fmt.Errorf("SLURM array task %s is not one of %d (use --array=0-%d, or set --shard)", id, n, n-1)
		}
		return i, n, nil
	}
	if id := env("JOB_COMPLETION_INDEX"); id != "" {
		if count < 1 {
			return 0, 0, fmt.Errorf("JOB_COMPLETION_INDEX is set: give the job's completions as --shard-count")
		}
		i, err := strconv.Atoi(id)
		if err != nil || i < 0 || i >= count {
			return 0, 0, fmt.Errorf("JOB_COMPLETION_INDEX %q is not one of %d shards", id, count)
		}
		return i, count, nil
	}
	if count > 0 {
		return 0, 0, fmt.Errorf("--shard-count is for Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX is not set); use --shard I/N")
	}
	return 0, 1, nil
}

func runSweepMerge(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sweep merge", stderr)
	out := fs.StringP("out", "o", "", "merged results file (required)")
	partial := fs.Bool("partial", false, "merge even when shards are missing or unfinished, or a file cannot be checked (with a warning)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco sweep merge --out FILE SHARD.jsonl... [--partial]")
		fmt.Fprintln(stderr, "Combines shard results: every (method, dataset, item) once, in canonical order.")
		fmt.Fprintln(stderr, "Refuses when the files' .meta.json show a shard missing or unfinished, or when a file cannot be")
		fmt.Fprintln(stderr, "checked (no .meta.json, or an older moco's without shard and item counts), unless --partial.")
		fmt.Fprintln(stderr, "A complete merge of one configuration's run writes FILE.meta.json, as that run would have, so that")
		fmt.Fprintln(stderr, "FILE can be checked when merged again. Refused while a sweep or another merge writes FILE")
		fmt.Fprintln(stderr, "(it holds FILE.lock), whose lines the merge would write over.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return usagef("give --out and one or more shard files")
	}
	n, err := bench.MergeResults(*out, fs.Args(), func(problems error) error {
		if !*partial {
			return fmt.Errorf("incomplete or unchecked: %w (--partial merges anyway)", problems)
		}
		fmt.Fprintf(stderr, "moco sweep merge: warning: incomplete or unchecked: %v\n", problems)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d items from %d files\n", *out, n, fs.NArg())
	return nil
}
