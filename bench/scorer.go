package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/mocolab/moco/collab"
)

// The MoCo task types. ExactMatchTask and MultipleChoiceTask are declared
// with Evaluate.
const (
	F1MatchTask       = "f1_match"
	CodingTask        = "coding"
	NoncomplianceTask = "noncompliance"
	RewardModelTask   = "reward_model"
	DiversityTask     = "generation_diversity"
)

// Scored is the verdict on one generation.
type Scored struct {
	// Extracted is the answer the scorer read from the generation (the
	// option letter, the boxed expression, the code it ran).
	Extracted string `json:"extracted"`
	// Score is in [0, 1] for every built-in scorer; 1 is best.
	Score float64 `json:"score"`
	// Note says why, when the reason is not obvious (a timeout, a judge's
	// words, "unsandboxed").
	Note string `json:"note,omitempty"`
}

// A Scorer scores generations for one task type. Scorers are safe for
// concurrent use. Score errors are reserved for failures of the scorer
// itself (a judge that cannot be reached, python3 missing): a wrong or
// unreadable answer is a score of 0, never an error.
type Scorer interface {
	// Metric names what Score measures ("accuracy", "f1", "pass@1", ...).
	Metric() string
	// Prompt builds what the model is asked for an item.
	Prompt(it Item) string
	// Score scores one generation for an item.
	Score(ctx context.Context, it Item, generation string) (Scored, error)
}

// Judge is a model that grades generations (MoCo's reward-model and
// judge-based metrics): any collab.Generator, a local model or an endpoint.
type Judge struct {
	Gen       collab.Generator
	MaxTokens int // 0: 256
}

// ask sends one prompt to the judge greedily.
func (j *Judge) ask(ctx context.Context, prompt string) (string, error) {
	n := j.MaxTokens
	if n <= 0 {
		n = 256
	}
	out, err := j.Gen.Generate(ctx, []collab.Request{{Prompt: prompt, MaxTokens: n}})
	if err != nil {
		return "", fmt.Errorf("judge %s: %w", j.Gen.Name(), err)
	}
	if len(out) != 1 {
		return "", fmt.Errorf("judge %s: %d responses to one request", j.Gen.Name(), len(out))
	}
	return out[0].Text, nil
}

// ScorerOptions configures the scorer of a dataset.
type ScorerOptions struct {
	// Dataset is the dataset's name; a few MoCo sets are scored with a
	// dataset-specific rule (popqa's alias list, culturebench's groups).
	Dataset string
	// Prompt selects the prompt style: "moco" (MoCo's prompts, with the
	// \box{} instruction for exact and F1 match), or "raw" (the item's input
	// as it is, as the skills sets need). "": "moco".
	Prompt string
	// Judge grades open-ended generations; nil means no judge.
	Judge *Judge
	// KeywordRule scores noncompliance without a judge by MoCo's keyword
	// rule (IsNoncompliance); without it, and without a judge,
	// noncompliance datasets are refused.
	KeywordRule bool
	// Code configures the coding sandbox (zero: defaults).
	Code CodeOptions
}

// ErrNeedsJudge is returned (wrapped) by NewScorer for task types that
// cannot be scored without a judge model.
var ErrNeedsJudge = errors.New("needs a judge model")

// ScorerFactory builds a Scorer for a dataset.
type ScorerFactory func(o ScorerOptions) (Scorer, error)

var (
	scorersMu sync.RWMutex
	scorers   = map[string]ScorerFactory{}
)

// RegisterScorer adds (or replaces) the scorer of a task type, so users can
// score their own task types in sweeps and `moco score`.
func RegisterScorer(taskType string, f ScorerFactory) {
	scorersMu.Lock()
	defer scorersMu.Unlock()
	scorers[taskType] = f
}

// TaskTypes lists the task types that have a scorer.
func TaskTypes() []string {
	scorersMu.RLock()
	defer scorersMu.RUnlock()
	var out []string
	for k := range scorers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// NewScorer returns the scorer of a task type. A task type that needs a
// judge when none is given fails with an error wrapping ErrNeedsJudge.
func NewScorer(taskType string, o ScorerOptions) (Scorer, error) {
	scorersMu.RLock()
	f, ok := scorers[taskType]
	scorersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("task type %q has no scorer (known: %s)", taskType, strings.Join(TaskTypes(), ", "))
	}
	switch o.Prompt {
	case "", "moco", "raw":
	default:
		return nil, fmt.Errorf("prompt style %q: want moco or raw", o.Prompt)
	}
	return f(o)
}

func init() {
	RegisterScorer(ExactMatchTask, func(o ScorerOptions) (Scorer, error) { return exactScorer{o}, nil })
	RegisterScorer(MultipleChoiceTask, func(o ScorerOptions) (Scorer, error) { return choiceScorer{o}, nil })
	RegisterScorer(F1MatchTask, func(o ScorerOptions) (Scorer, error) { return f1Scorer{o}, nil })
	RegisterScorer(CodingTask, newCodeScorer)
	RegisterScorer(NoncomplianceTask, func(o ScorerOptions) (Scorer, error) {
		if (o.Judge == nil || o.Judge.Gen == nil) && !o.KeywordRule {
			return nil, fmt.Errorf("%s (%s): needs a judge to grade refusals; configure a judge, or opt in to MoCo's keyword rule "+
				"(sweep config noncompliance_keywords: true, --noncompliance-keywords): %w", o.Dataset, NoncomplianceTask, ErrNeedsJudge)
		}
		return noncomplianceScorer{o}, nil
	})
	RegisterScorer(RewardModelTask, func(o ScorerOptions) (Scorer, error) {
		if o.Judge == nil || o.Judge.Gen == nil {
			return nil, fmt.Errorf("%s (%s): MoCo scores it with a reward model; configure a judge: %w", o.Dataset, RewardModelTask, ErrNeedsJudge)
		}
		return rewardScorer{o}, nil
	})
	RegisterScorer(DiversityTask, func(o ScorerOptions) (Scorer, error) { return diversityScorer{o}, nil })
}

// Aggregate turns per-item scores into the dataset's score: the mean, except
// for culturebench, where MoCo counts a question as solved only when every
// item sharing its question_id is (scores are rewritten in place to the
// group's verdict, as MoCo reports them).
func Aggregate(dataset string, items []Item, scores []float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	if dataset == "culturebench" {
		groups := map[string][]int{}
		for i, it := range items {
			if q := rawString(it, "question_id"); q != "" {
				groups[q] = append(groups[q], i)
			}
		}
		for _, idx := range groups {
			all := 1.0
			for _, i := range idx {
				if scores[i] != 1 {
					all = 0
				}
			}
			for _, i := range idx {
				scores[i] = all
			}
		}
	}
	var s float64
	for _, v := range scores {
		s += v
	}
	return s / float64(len(scores))
}

// rawString returns a string field of an item's JSON (numbers as written).
func rawString(it Item, key string) string {
	v, ok := it.Raw[key]
	if !ok {
		return ""
	}
	s := strings.TrimSpace(string(v))
	if strings.HasPrefix(s, `"`) {
		var out string
		if json.Unmarshal(v, &out) == nil {
			return out
		}
	}
	if s == "null" {
		return ""
	}
	return s
}

// MoCoBoxInstruction follows exact- and F1-match inputs in MoCo's prompts.
const MoCoBoxInstruction = "\n\nPlease provide the final, direct answer wrapped exactly as \\box{ANSWER}"

// MoCoChoiceInstruction ends MoCo's multiple-choice prompts.
const MoCoChoiceInstruction = "Please select the correct answer by choosing the letter corresponding to your choice.\n"

// inputOf is the item's prompt text: input, else question, else prompt.
func inputOf(it Item) string {
	if it.Input != "" {
		return it.Input
	}
	if it.Question != "" {
		return it.Question
	}
	return rawString(it, "prompt")
}

// boxPrompt is MoCo's exact/F1-match prompt, or the raw input.
func boxPrompt(o ScorerOptions, it Item) string {
	if o.Prompt == "raw" {
		return inputOf(it)
	}
	return strings.TrimRight(inputOf(it), " \t\r\n") + MoCoBoxInstruction
}

type exactScorer struct{ o ScorerOptions }

func (exactScorer) Metric() string          { return "accuracy" }
func (s exactScorer) Prompt(it Item) string { return boxPrompt(s.o, it) }
func (exactScorer) Score(_ context.Context, it Item, g string) (Scored, error) {
	pred := ExtractAnswer(g)
	ref := it.Output
	if ref == "" {
		ref = it.Answer
	}
	if ExactMatch(pred, ref) {
		return Scored{Extracted: pred, Score: 1}, nil
	}
	return Scored{Extracted: pred}, nil
}

type choiceScorer struct{ o ScorerOptions }

func (choiceScorer) Metric() string { return "accuracy" }

// Prompt is MoCo's format_mcq_question: the question, "A) option" lines
// and the instruction to answer with a letter; raw style is BuildPrompt's.
func (s choiceScorer) Prompt(it Item) string {
	if s.o.Prompt == "raw" {
		return BuildPrompt(MultipleChoiceTask, it)
	}
	var b strings.Builder
	b.WriteString(it.Question)
	b.WriteString("\n")
	for _, c := range it.Choices {
		fmt.Fprintf(&b, "%s) %s\n", c.Label, c.Text)
	}
	b.WriteString(MoCoChoiceInstruction)
	return b.String()
}

func (choiceScorer) Score(_ context.Context, it Item, g string) (Scored, error) {
	pred := ExtractChoice(g, it.Choices)
	if pred != "" && pred == strings.ToUpper(strings.TrimSpace(it.Answer)) {
		return Scored{Extracted: pred, Score: 1}, nil
	}
	if pred == "" {
		return Scored{Note: "no option letter found"}, nil
	}
	return Scored{Extracted: pred}, nil
}
