package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/spf13/pflag"
)

// scorerFlags are the flags of the commands that score generations with a
// task type's scorer (eval, score): the judge, the keyword rule and the
// coding sandbox's limit.
type scorerFlags struct {
	judge       *string
	keywords    *bool
	codeTimeout *time.Duration
}

func addScorerFlags(fs *pflag.FlagSet) *scorerFlags {
	return &scorerFlags{
		judge:       fs.String("judge", "", "model folder of a judge for reward_model and noncompliance datasets (required there, unless --noncompliance-keywords)"),
		keywords:    fs.Bool("noncompliance-keywords", false, "without --judge, score noncompliance by MoCo's keyword rule (its eval.py is_noncompliance: refusal phrases per category), a crude proxy; without either, noncompliance datasets are refused"),
		codeTimeout: fs.Duration("code-timeout", 10*time.Second, "coding datasets: wall-clock (and CPU-time) limit per item's tests"),
	}
}

func (f *scorerFlags) check() error {
	if *f.codeTimeout <= 0 {
		return usagef("--code-timeout must be > 0")
	}
	return nil
}

// options are the scorer options for the dataset file, with the judge
// loaded (close releases it).
func (f *scorerFlags) options(datasetFile string, opts engine.Options) (o bench.ScorerOptions, close func(), err error) {
	o = bench.ScorerOptions{Dataset: taskName(datasetFile), Code: bench.CodeOptions{Timeout: *f.codeTimeout}, KeywordRule: *f.keywords}
	if *f.judge == "" {
		return o, func() {}, nil
	}
	l, err := collab.LoadLocal(*f.judge, opts)
	if err != nil {
		return o, nil, fmt.Errorf("--judge: %w", err)
	}
	o.Judge = &bench.Judge{Gen: l}
	return o, func() { l.Close() }, nil
}

// taskName is the name a dataset's scoring rules go by: MoCo names a task
// by its file (culturebench.json calls itself culturebench_hard inside).
func taskName(file string) string {
	return strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
}
