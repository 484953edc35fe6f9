package main

import (
	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/merge"
)

// searchResult is 'moco search --json': the same lowercase keys as the
// other commands' results.
type searchResult struct {
	Method       string    `json:"method"`
	Models       []string  `json:"models"`
	Metric       string    `json:"metric"`
	Seed         uint64    `json:"seed"`
	DevScore     float64   `json:"dev_score"`
	Evals        int       `json:"candidates"`
	Weights      []float64 `json:"weights,omitempty"`
	Alpha        *float64  `json:"alpha,omitempty"`
	TestAccuracy *float64  `json:"test_accuracy,omitempty"`
	TestN        int       `json:"test_n,omitempty"`
	Out          string    `json:"out,omitempty"`
}

func searchJSON(method, metric string, seed uint64, models []string, res *merge.Result, test *bench.Result, out string) searchResult {
	r := searchResult{Method: method, Models: models, Metric: metric, Seed: seed, DevScore: res.Score, Evals: res.Evals, Weights: res.Weights, Out: out}
	if method == "expo" {
		a := res.Alpha
		r.Alpha = &a
	}
	if test != nil {
		r.TestAccuracy, r.TestN = &test.Accuracy, test.N
	}
	return r
}
