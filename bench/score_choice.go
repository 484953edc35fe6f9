package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/mocolab/moco/collab"
)

// How multiple-choice items are scored.
const (
	// ChoiceGenerate reads the option letter from a generation (the
	// default, MoCo's way): an unreadable answer is wrong.
	ChoiceGenerate = "generate"
	// ChoiceLoglik generates nothing: the answer is the option whose text
	// has the highest log-likelihood as the continuation of the item's
	// question, under the model or under a logit-level method's combined
	// distribution, as lm-evaluation-harness scores small models
	// (its ARC-style "acc": prompt "Question: ...\nAnswer:", continuation
	// " " + the option's text, summed log-probabilities, ties to the
	// earlier option).
	ChoiceLoglik = "loglik"
)

// LoglikPrompt is a multiple-choice item's prompt in log-likelihood mode:
// lm-evaluation-harness's "Question: {question}\nAnswer:".
func LoglikPrompt(it Item) string {
	return "Question: " + strings.TrimSpace(it.Question) + "\nAnswer:"
}

// ChoiceByLikelihood returns the label of the option of it with the
// highest log-likelihood under sc (ties: the earlier option), each
// option's log-likelihood, and the tokens scored in all.
func ChoiceByLikelihood(ctx context.Context, sc collab.Scorer, it Item) (string, []float64, int, error) {
	if len(it.Choices) == 0 {
		return "", nil, 0, fmt.Errorf("item %s has no options", it.ID)
	}
	prompt := LoglikPrompt(it)
	lls := make([]float64, len(it.Choices))
	best, tokens := 0, 0
	for i, c := range it.Choices {
		ll, n, err := sc.LogLikelihood(ctx, prompt, " "+strings.TrimSpace(c.Text))
		if err != nil {
			return "", nil, 0, fmt.Errorf("item %s option %s: %w", it.ID, c.Label, err)
		}
		if n == 0 {
			return "", nil, 0, fmt.Errorf("item %s option %s: an empty option has no likelihood", it.ID, c.Label)
		}
		lls[i] = ll
		tokens += n
		if ll > lls[best] {
			best = i
		}
	}
	return it.Choices[best].Label, lls, tokens, nil
}

// likelihoodNote lists the options' log-likelihoods for a result line.
func likelihoodNote(it Item, lls []float64) string {
	var b strings.Builder
	b.WriteString("log-likelihood")
	for i, c := range it.Choices {
		fmt.Fprintf(&b, " %s %.4f", c.Label, lls[i])
	}
	return b.String()
}

// EvaluateChoiceLoglik scores a multiple-choice split in log-likelihood
// mode (ChoiceLoglik): Generation is the chosen option's text, Pred its
// label. Like EvaluateContext it stops, with what it scored, when ctx is
// done.
func EvaluateChoiceLoglik(ctx context.Context, ds *Dataset, split string, o Options, sc collab.Scorer) (*Result, error) {
	if ds.TaskType != MultipleChoiceTask {
		return nil, fmt.Errorf("%s: log-likelihood scoring is for %s datasets, this one is %s", ds.Name, MultipleChoiceTask, ds.TaskType)
	}
	items, err := ds.Split(split)
	if err != nil {
		return nil, err
	}
	items = o.Pick(items)
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no %s items", ds.Name, split)
	}
	r := &Result{Dataset: ds.Name, Split: split, Total: len(items), Metric: "accuracy"}
	for k, it := range items {
		if err := ctx.Err(); err != nil {
			return r.finish(ds.Name, items[:k]), err
		}
		label, _, _, err := ChoiceByLikelihood(ctx, sc, it)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return r.finish(ds.Name, items[:k]), cerr
			}
			return nil, err
		}
		ref := Reference(MultipleChoiceTask, it)
		text := ""
		for _, c := range it.Choices {
			if c.Label == label {
				text = c.Text
			}
		}
		ok := label == ref
		x := ItemResult{ID: it.ID, Prompt: LoglikPrompt(it), Generation: text, Pred: label, Ref: ref, Correct: ok}
		if ok {
			x.Score = 1
		}
		r.Items = append(r.Items, x)
		r.count(ok, o)
	}
	return r.finish(ds.Name, items), nil
}
