package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
)

// Task types scored by this package.
const (
	ExactMatchTask     = "exact_match"
	MultipleChoiceTask = "multiple_choice"
)

// Generator produces a model's continuation of a prompt.
type Generator func(prompt string) (string, error)

// BatchGenerator produces the continuations of many prompts at once (see
// GreedyBatch). It calls done once per prompt as that prompt's generation
// ends, in any order and possibly from several goroutines at once, with
// the text or the prompt's error; it returns when every prompt is done, or
// early with ctx's error when ctx ends (prompts not done by then get no
// call).
type BatchGenerator func(ctx context.Context, prompts []string, done func(i int, text string, err error)) error

// Options controls an evaluation run.
type Options struct {
	N    int    // items to score (<= 0: all)
	Seed uint64 // seed of the stratified sample of N items (see Sample)
	// First takes the first N items instead of a sample (to reproduce a
	// measurement made on a prefix of the split).
	First bool
	// Prompt builds the prompt of an item (nil: BuildPrompt).
	Prompt func(task string, it Item) string
	// Stop cuts a generation at the first occurrence of any of these strings
	// before scoring (e.g. "\n" for one-line answers).
	Stop []string
	// Progress, when set, is called after each item with the items done,
	// the items to do in all, and (for accuracy) the correct ones so far.
	Progress func(done, total, correct int)
	// Scorer scores each generation and, unless Prompt is set, builds
	// each prompt: any task type with a scorer can be evaluated (judge,
	// sandbox and prompt style as its ScorerOptions say), and Result.Score
	// is the mean of its metric (Result.Metric), aggregated over the
	// dataset's name as ScoreOutputs does. Nil: the raw-prompt scorer of
	// exact match or multiple choice (the same rules as Score, prompts as
	// BuildPrompt's); other task types need one.
	Scorer Scorer
}

// ItemResult is the outcome on one item.
type ItemResult struct {
	ID, Prompt, Generation, Pred, Ref string
	Correct                           bool
	// Score is the item's score in [0, 1] (1 or 0 with no Scorer); Note
	// the scorer's reason, when it gives one.
	Score float64
	Note  string
}

// Result summarizes an evaluation.
type Result struct {
	Dataset, Split string
	// N items were scored, Correct of them correctly, out of the Total
	// chosen (fewer than Total when the run was interrupted).
	N, Correct, Total int
	Accuracy          float64
	// Metric names Score: "accuracy" without a Scorer (Score is then
	// Accuracy), else the Scorer's metric (f1, pass@1, ...).
	Metric string
	Score  float64
	Items  []ItemResult
}

// Evaluate generates an answer for a stratified sample of n items of a
// split (n <= 0: all; see Sample, seed 0) and scores them by the dataset's
// task type.
func Evaluate(ds *Dataset, split string, n int, gen Generator) (*Result, error) {
	return EvaluateWith(ds, split, Options{N: n}, gen)
}

// EvaluateWith is Evaluate with options.
func EvaluateWith(ds *Dataset, split string, o Options, gen Generator) (*Result, error) {
	return EvaluateContext(context.Background(), ds, split, o, gen)
}

// EvaluateContext is EvaluateWith that stops when ctx is done: it checks
// ctx before each item (a Generator that should stop within an item must
// watch ctx itself) and then returns the items scored so far, their
// accuracy, and ctx's error, so that an interrupted run still reports
// what it measured.
func EvaluateContext(ctx context.Context, ds *Dataset, split string, o Options, gen Generator) (*Result, error) {
	items, prompt, err := evalItems(ds, split, &o)
	if err != nil {
		return nil, err
	}
	r := newResult(ds, split, len(items), o)
	for k, it := range items {
		if err := ctx.Err(); err != nil {
			return r.finish(ds.Name, items[:k]), err
		}
		p := prompt(ds.TaskType, it)
		g, err := gen(p)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return r.finish(ds.Name, items[:k]), cerr
			}
			return nil, fmt.Errorf("item %s: %w", it.ID, err)
		}
		x, err := scoreItem(ctx, ds.TaskType, o, it, p, g)
		if err != nil {
			return nil, fmt.Errorf("item %s: scoring: %w", it.ID, err)
		}
		r.Items = append(r.Items, x)
		r.count(x.Correct, o)
	}
	return r.finish(ds.Name, items), nil
}

func newResult(ds *Dataset, split string, total int, o Options) *Result {
	return &Result{Dataset: ds.Name, Split: split, Total: total, Metric: o.Scorer.Metric()}
}

// evalItems checks that ds's task type is scored here and returns the
// split's items that o picks and the prompt builder to use.
func evalItems(ds *Dataset, split string, o *Options) ([]Item, func(string, Item) string, error) {
	if o.Scorer == nil {
		if ds.TaskType != ExactMatchTask && ds.TaskType != MultipleChoiceTask {
			return nil, nil, fmt.Errorf("%s: task type %s needs a Scorer (NewScorer) in the options; without one, %s and %s are scored", ds.Name, ds.TaskType, ExactMatchTask, MultipleChoiceTask)
		}
		sc, err := NewScorer(ds.TaskType, ScorerOptions{Dataset: ds.Name, Prompt: "raw"})
		if err != nil {
			return nil, nil, err
		}
		o.Scorer = sc
		if o.Prompt == nil {
			o.Prompt = BuildPrompt
		}
	}
	items, err := ds.Split(split)
	if err != nil {
		return nil, nil, err
	}
	items = o.Pick(items)
	if len(items) == 0 {
		return nil, nil, fmt.Errorf("%s: no %s items", ds.Name, split)
	}
	prompt := o.Prompt
	if prompt == nil {
		prompt = func(_ string, it Item) string { return o.Scorer.Prompt(it) }
	}
	return items, prompt, nil
}

// EvaluateBatch is EvaluateContext with a generator that decodes all the
// items together: the items, their scores and Result are the same as
// EvaluateContext gives with a Generator that answers each prompt as gen
// does. Progress is called as items finish, in the order they finish;
// Items keeps the split's order. When ctx ends the items finished so far
// are returned, scored, with ctx's error; an item's error ends the run.
func EvaluateBatch(ctx context.Context, ds *Dataset, split string, o Options, gen BatchGenerator) (*Result, error) {
	items, prompt, err := evalItems(ds, split, &o)
	if err != nil {
		return nil, err
	}
	prompts := make([]string, len(items))
	for i, it := range items {
		prompts[i] = prompt(ds.TaskType, it)
	}
	r := newResult(ds, split, len(items), o)
	results := make([]*ItemResult, len(items))
	var mu sync.Mutex
	var first error
	fail := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = fmt.Errorf("item %s: %w", items[i].ID, err)
		}
	}
	// Generations are scored by workers of their own, so that a slow
	// scorer (a judge model, a sandboxed test) never holds up the
	// generator, which calls done from its decoding loop.
	type generated struct {
		i int
		g string
	}
	queue := make(chan generated, len(items)) // done never blocks
	var scoring sync.WaitGroup
	for range min(runtime.NumCPU(), len(items)) {
		scoring.Go(func() {
			for d := range queue {
				if ctx.Err() != nil {
					continue // interrupted: left unscored, as not done
				}
				x, err := scoreItem(ctx, ds.TaskType, o, items[d.i], prompts[d.i], d.g)
				if err != nil {
					if ctx.Err() == nil {
						fail(d.i, fmt.Errorf("scoring: %w", err))
					}
					continue
				}
				mu.Lock()
				results[d.i] = &x
				r.count(x.Correct, o)
				mu.Unlock()
			}
		})
	}
	err = gen(ctx, prompts, func(i int, g string, err error) {
		if err != nil {
			fail(i, err)
			return
		}
		queue <- generated{i, g}
	})
	close(queue)
	scoring.Wait()
	mu.Lock()
	defer mu.Unlock()
	var scored []Item
	for i, x := range results {
		if x != nil {
			r.Items = append(r.Items, *x)
			scored = append(scored, items[i])
		}
	}
	if cerr := ctx.Err(); cerr != nil {
		return r.finish(ds.Name, scored), cerr
	}
	if err != nil {
		return nil, err
	}
	if first != nil {
		return nil, first
	}
	return r.finish(ds.Name, scored), nil
}

// Sequential adapts a Generator to a BatchGenerator that answers the
// prompts one at a time, in order (a reference for GreedyBatch, and the
// shape of generators that cannot batch).
func Sequential(gen Generator) BatchGenerator {
	return func(ctx context.Context, prompts []string, done func(int, string, error)) error {
		for i, p := range prompts {
			if err := ctx.Err(); err != nil {
				return err
			}
			g, err := gen(p)
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			done(i, g, err)
			if err != nil {
				return nil
			}
		}
		return nil
	}
}

// count adds one scored item to the tallies and reports progress.
func (r *Result) count(correct bool, o Options) {
	r.N++
	if correct {
		r.Correct++
	}
	if o.Progress != nil {
		o.Progress(r.N, r.Total, r.Correct)
	}
}

// finish sets the accuracy and score of the items scored (0 when none);
// items are the scored items' dataset entries, in r.Items' order.
func (r *Result) finish(dataset string, items []Item) *Result {
	if r.N > 0 {
		r.Accuracy = float64(r.Correct) / float64(r.N)
	}
	scores := make([]float64, len(r.Items))
	for i, it := range r.Items {
		scores[i] = it.Score
	}
	r.Score = Aggregate(dataset, items, scores)
	for i := range r.Items {
		r.Items[i].Score = scores[i] // culturebench: the group's verdict
	}
	return r
}

// scoreItem scores generation g of item it with o's Scorer.
func scoreItem(ctx context.Context, task string, o Options, it Item, prompt, g string) (ItemResult, error) {
	g = cut(g, o.Stop)
	res := ItemResult{ID: it.ID, Prompt: prompt, Generation: g, Ref: Reference(task, it)}
	sc, err := o.Scorer.Score(ctx, it, g)
	if err != nil {
		return res, err
	}
	res.Pred, res.Score, res.Note, res.Correct = sc.Extracted, sc.Score, sc.Note, sc.Score == 1
	return res, nil
}

// Pick applies N, Seed and First to a split: the items an evaluation with
// these options scores.
func (o Options) Pick(items []Item) []Item {
	if o.First {
		return Head(items, o.N)
	}
	return Sample(items, o.N, o.Seed)
}

func cut(s string, stops []string) string {
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s, st); i >= 0 {
			s = s[:i]
		}
	}
	return s
}

// BuildPrompt is the default prompt: the item's input as is (the skills and
// MoCo exact-match sets carry a complete prompt), or for multiple choice the
// question, the labelled options and "Answer:".
func BuildPrompt(task string, it Item) string {
	if task == MultipleChoiceTask && len(it.Choices) > 0 {
		var b strings.Builder
		b.WriteString(strings.TrimSpace(it.Question))
		b.WriteString("\n")
		for _, c := range it.Choices {
			fmt.Fprintf(&b, "%s. %s\n", c.Label, c.Text)
		}
		b.WriteString("Answer:")
		return b.String()
	}
	if it.Input != "" {
		return it.Input
	}
	return it.Question
}

// Reference returns the gold answer of an item.
func Reference(task string, it Item) string {
	if task == MultipleChoiceTask {
		return strings.ToUpper(strings.TrimSpace(it.Answer))
	}
	if it.Output != "" {
		return it.Output
	}
	return it.Answer
}

// Score extracts the answer from a generation and checks it.
func Score(task string, it Item, generation string) (pred string, correct bool) {
	ref := Reference(task, it)
	if task == MultipleChoiceTask {
		pred = ExtractChoice(generation, it.Choices)
		return pred, pred != "" && pred == ref
	}
	pred = ExtractAnswer(generation)
	return pred, ExactMatch(pred, ref)
}
