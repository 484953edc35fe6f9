package collab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/tokenizer"
	"github.com/mocolab/moco/train"
)

// AggLMParams configures AggLM (#19, MoCo's text_agglm after Zhao et al.
// 2025, "The Majority is not always right: RL training for solution
// aggregation"): an aggregator model reads the pool's answers to a
// question and writes the final one; it is trained with GRPO (LoRA) on
// dev items, the reward being whether its answer is right.
//
// Training data, as MoCo builds it: every pool model answers every dev
// item SampleSize times (sampled); each round's m answers make one
// aggregator prompt. A prompt is "hard" when the majority answer (the most
// common extracted answer, the first seen on ties, empty answers voting,
// as Python's Counter) is wrong, else "easy"; all hard prompts are kept
// with as many easy ones drawn at random, so majority vote fails on half
// the training set.
//
// Defaults are MoCo's: sample_size 2; pool sampling at temperature 0.7,
// top-p 0.9 (its generation defaults); GRPO with TRL 0.19.1 (MoCo's pin):
// num_generations 4, 4 completions per step (per device; MoCo runs on
// 4 GPUs, so its effective batch is 4 prompts), one epoch, lr 1e-4,
// weight decay 1e-5, cosine decay after 10% warm-up, β 0, ε 0.2, loss
// "bnpo", completion up to 512 tokens at temperature 1; LoRA r 64, alpha
// 16, dropout 0.1 on q, k, v and o_proj. The aggregator defaults to the first pool
// model's folder (MoCo: Qwen2.5-1.5B-Instruct); it needs a local
// Llama-family folder. Deviations: the easy items are drawn with moco's seeded
// generator, not Python's random.sample(seed 42); template lets models
// with a short context (the skills family) use a compact prompt instead
// of MoCo's instruction. The reward is collab/extract's correctness (the
// evaluation's scorers live above collab); at test time the pool answers
// with the request's own sampling settings.
//
// Measured on the skills family (pool skills-base, skills-small,
// skills-rev; aggregator skills-base; skills_add dev; template
// "{solutions}{problem}" with solution_format "{problem}{solution}\n"):
// accuracy 0 on the first 100 test items, with MoCo's settings and with
// lr 3e-3 over 3 epochs alike (majority vote: 0.62). skills-base was
// trained on single question-answer prompts and answers a prompt holding
// several of them with noise, so GRPO's groups rarely hold a right answer
// to learn from: the skills models cannot serve as aggregators.
type AggLMParams struct {
	// Aggregator is the aggregator's model folder ("": the first pool
	// model's folder).
	Aggregator string `json:"aggregator"`
	// Adapter loads a trained aggregator adapter (PEFT folder) instead of
	// training one (MoCo reuses its log folder the same way).
	Adapter string `json:"adapter"`
	// Out, when set, is where the trained adapter is saved.
	Out string `json:"out"`
	DevConfig
	SampleSize  int     `json:"sample_size"`     // answers per model per dev item (default 2)
	PoolTopP    float64 `json:"pool_top_p"`      // dev sampling top-p (default 0.9; the temperature is dev_temperature, default 0.7)
	Template    string  `json:"template"`        // aggregator prompt with {problem} and {solutions} ("": MoCo's instruction in our words)
	SolutionFmt string  `json:"solution_format"` // one solution with {i} (from 0), {solution} and optionally {problem} ("": MoCo's ### Solution i begin/end)
	// GRPO (TRL 0.19.1 defaults as MoCo sets them).
	NumGenerations int      `json:"num_generations"` // default 4
	BatchSize      int      `json:"batch_size"`      // completions per step, default 4
	Epochs         int      `json:"epochs"`          // default 1
	LR             float64  `json:"lr"`              // default 1e-4
	WeightDecay    *float64 `json:"weight_decay"`    // default 1e-5
	WarmupRatio    *float64 `json:"warmup_ratio"`    // default 0.1
	MaxCompletion  int      `json:"max_completion_length"`
	Temperature    float64  `json:"train_temperature"` // default 1
	Beta           float64  `json:"beta"`              // default 0 (TRL 0.19.1)
	LossType       string   `json:"loss_type"`         // default bnpo
	Rank           int      `json:"lora_r"`            // default 64
	Alpha          float64  `json:"lora_alpha"`        // default 16
	Targets        []string `json:"lora_targets"`      // default q,k,v,o_proj
	Dropout        *float64 `json:"lora_dropout"`      // default 0.1
	Seed           uint64   `json:"seed"`              // default 42
}

func init() {
	Register(Spec{Name: "agglm", Level: LevelText, MinModels: 1, Dev: true,
		Summary: "an aggregator trained with GRPO reads the pool's answers and writes the final one (dev items balanced between majority-vote failures and successes)",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			return NewAggLM(ctx, pool, p)
		}})
}

// aggLMInstruction is the aggregator's prompt: MoCo's
// form_aggregator_instruction (the AggLM paper's) in our words, with its
// layout: the problem and each attempt between begin and end markers,
// then the request to review them and write one corrected solution.
const aggLMInstruction = `Here is a problem:
### Problem begin
{problem}
### Problem end
and here are attempts at solving it:
{solutions}
Any number of these attempts, from none to all, may be right or complete. Review them, take them as a starting point, fix their errors, fill in what they leave out and combine their good ideas, and write one final solution to the problem that is complete and correct. Give the final answer in the same format as the attempts.
`

// AggregatorPrompt writes the aggregator's prompt for a problem and the
// pool's answers: the default instruction with MoCo's "### Solution i begin ...
// ### Solution i end" blocks (joined by newlines), unless template and
// solutionFmt say otherwise.
func AggregatorPrompt(template, solutionFmt, problem string, solutions []string) string {
	if template == "" {
		template = aggLMInstruction
	}
	parts := make([]string, len(solutions))
	for i, s := range solutions {
		if solutionFmt == "" {
			parts[i] = fmt.Sprintf("### Solution %d begin\n%s### Solution %d end\n", i, s, i)
		} else {
			parts[i] = strings.NewReplacer("{i}", fmt.Sprint(i), "{solution}", s, "{problem}", problem).Replace(solutionFmt)
		}
	}
	sep := "\n"
	if solutionFmt != "" {
		sep = ""
	}
	return strings.NewReplacer("{problem}", problem, "{solutions}", strings.Join(parts, sep)).Replace(template)
}

// MajorityFails is MoCo's is_hard: the most common of keys (the first
// seen among equals; empty keys count like any other) belongs to a wrong
// answer; correct[i] says whether answer i is right.
func MajorityFails(keys []string, correct []bool) bool {
	count := map[string]int{}
	best := ""
	for _, k := range keys {
		count[k]++
	}
	n := -1
	for _, k := range keys { // first seen wins ties, as Counter.most_common
		if count[k] > n {
			best, n = k, count[k]
		}
	}
	for i, k := range keys {
		if k == best {
			return !correct[i]
		}
	}
	return false
}

// AggLMItem is one aggregator training prompt.
type AggLMItem struct {
	Dev       int      // index of the dev item
	Round     int      // sampling round
	Solutions []string // the pool's answers, model order
	Hard      bool     // majority vote fails on it
}

// BalanceAggLM keeps every hard item and as many easy ones, drawn without
// replacement with a seeded generator; hard items come first.
func BalanceAggLM(items []AggLMItem, seed uint64) []AggLMItem {
	var hard, easy []AggLMItem
	for _, it := range items {
		if it.Hard {
			hard = append(hard, it)
		} else {
			easy = append(easy, it)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xa991))
	rng.Shuffle(len(easy), func(i, j int) { easy[i], easy[j] = easy[j], easy[i] })
	return append(hard, easy[:min(len(easy), len(hard))]...)
}

// AggLM is the trained aggregator over a pool.
type AggLM struct {
	textMethod
	// Items are the balanced training prompts (nil when an adapter was
	// loaded); Steps is GRPO's record.
	Items []AggLMItem
	Steps []train.GRPOStep
	close func() error
}

// Close releases the aggregator's weights.
func (a *AggLM) Close() error { return a.close() }

// NewAggLM builds the training set from the pool's dev answers, trains the
// aggregator with GRPO (or loads its adapter) and returns the method.
func NewAggLM(ctx context.Context, pool []Member, p Params) (*AggLM, error) {
	wd, warm, drop := 1e-5, 0.1, 0.1
	q := AggLMParams{SampleSize: 2, PoolTopP: 0.9, NumGenerations: 4, BatchSize: 4, Epochs: 1, LR: 1e-4,
		WeightDecay: &wd, WarmupRatio: &warm, Dropout: &drop, MaxCompletion: 512, Temperature: 1, LossType: "bnpo",
		Rank: 64, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, Seed: 42}
	q.DevTemperature = 0.7
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("agglm: %w", err)
	}
	switch {
	case q.SampleSize < 1:
		return nil, inputErrorf("agglm: sample_size must be at least 1, got %d", q.SampleSize)
	case q.Template != "" && (!strings.Contains(q.Template, "{problem}") || !strings.Contains(q.Template, "{solutions}")):
		return nil, inputErrorf("agglm: template must hold {problem} and {solutions}")
	case q.SolutionFmt != "" && !strings.Contains(q.SolutionFmt, "{solution}"):
		return nil, inputErrorf("agglm: solution_format must hold {solution}")
	case q.Dropout == nil || *q.Dropout < 0 || *q.Dropout >= 1:
		return nil, inputErrorf("agglm: lora_dropout must be in [0, 1)")
	case q.Epochs < 1:
		return nil, inputErrorf("agglm: epochs must be at least 1")
	}
	dir := q.Aggregator
	if dir == "" {
		if dir = pool[0].Dir; dir == "" {
			return nil, inputErrorf("agglm: the aggregator is trained in this process: give aggregator (a local model folder), or a pool whose first model is one")
		}
	}
	m, err := train.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("agglm: aggregator %s: %w", dir, err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("agglm: aggregator %s: %w", dir, err)
	}
	render := func(problem string, sols []string) (string, error) {
		return RenderMessages(tok, []Message{{Role: "user", Content: AggregatorPrompt(q.Template, q.SolutionFmt, problem, sols)}})
	}
	a := &AggLM{}
	if q.Adapter != "" {
		if m.LoRA, err = train.LoadLoRA(q.Adapter, m); err != nil {
			return nil, fmt.Errorf("agglm: %w", err)
		}
	} else {
		items, err := q.DevConfig.load("agglm")
		if err != nil {
			return nil, err
		}
		var all []AggLMItem
		for round := range q.SampleSize {
			d := q.DevConfig
			res, err := runDevSampled(ctx, pool, items, d, q.PoolTopP, uint64(round+1))
			if err != nil {
				return nil, err
			}
			for i, it := range items {
				sols, keys, ok := make([]string, len(pool)), make([]string, len(pool)), make([]bool, len(pool))
				for k := range pool {
					sols[k], keys[k], ok[k] = res.Texts[k][i], extract.Key(it.Task, res.Texts[k][i]), res.Correct[k][i]
				}
				all = append(all, AggLMItem{Dev: i, Round: round, Solutions: sols, Hard: MajorityFails(keys, ok)})
			}
		}
		a.Items = BalanceAggLM(all, q.Seed)
		if len(a.Items) == 0 {
			return nil, fmt.Errorf("agglm: majority vote is right on all %d dev prompts, so there is nothing to train the aggregator on", len(all))
		}
		data := make([]train.GRPOExample, len(a.Items))
		task := map[string]extract.Task{}
		for i, it := range a.Items {
			prompt, err := render(items[it.Dev].Prompt, it.Solutions)
			if err != nil {
				return nil, fmt.Errorf("agglm: %w", err)
			}
			data[i] = train.GRPOExample{Prompt: prompt, Answer: items[it.Dev].Ref}
			task[prompt] = items[it.Dev].Task
		}
		reward := func(prompt, completion, answer string) (float64, error) {
			if extract.Correct(task[prompt], completion, answer) {
				return 1, nil
			}
			return 0, nil
		}
		perStep := max(1, q.BatchSize/max(1, q.NumGenerations))
		steps := q.Epochs * ((len(data) + perStep - 1) / perStep)
		cfg := train.GRPOConfig{Steps: steps, BatchSize: q.BatchSize, NumGenerations: q.NumGenerations, MaxCompletion: q.MaxCompletion,
			NumIterations: 1, Warmup: int(*q.WarmupRatio*float64(steps) + 0.999999), LR: q.LR, WeightDecay: *q.WeightDecay, MaxGradNorm: 1,
			Temperature: q.Temperature, Beta: q.Beta, Epsilon: 0.2, LossType: q.LossType, ScaleRewards: true, Seed: q.Seed,
			Rank: q.Rank, Alpha: q.Alpha, Targets: q.Targets, Dropout: *q.Dropout}
		lo, hist, err := train.GRPO(ctx, m, tok, data, reward, cfg, nil)
		if err != nil {
			return nil, fmt.Errorf("agglm: training the aggregator: %w", err)
		}
		a.Steps = hist
		if q.Out != "" {
			base, _ := filepath.Abs(dir)
			if err := train.SaveLoRA(q.Out, lo, m, base); err != nil {
				return nil, fmt.Errorf("agglm: %w", err)
			}
		}
	}
	em, err := train.PolicyEngine(m)
	if err != nil {
		return nil, fmt.Errorf("agglm: %w", err)
	}
	agg := NewLocal("agglm-aggregator", dir, em, tok)
	a.close = agg.Close
	n := len(pool)
	a.textMethod = textMethod{name: "agglm", level: LevelText, pool: append(append([]Member(nil), pool...), agg.Member())}
	a.one = func(x *exchange) (string, error) {
		sols, err := x.answers(n)
		if err != nil {
			return "", err
		}
		out, err := x.ask(2, "aggregate", []call{{Member: n, Prompt: AggregatorPrompt(q.Template, q.SolutionFmt, question(x.req), sols)}})
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	return a, nil
}

// runDevSampled is runDev with sampling: every pool model answers every
// dev item once at d's temperature with top-p and seed.
func runDevSampled(ctx context.Context, pool []Member, items []DevItem, d DevConfig, topP float64, seed uint64) (*DevResults, error) {
	r := &DevResults{Texts: make([][]string, len(pool)), Correct: make([][]bool, len(pool))}
	reqs := make([]Request, len(items))
	for i, it := range items {
		reqs[i] = d.request(it)
		reqs[i].TopP, reqs[i].Seed = topP, seed
	}
	for m, mb := range pool {
		res, err := mb.Gen.Generate(ctx, reqs)
		if err != nil {
			return nil, fmt.Errorf("agglm: answering the dev set: model %s failed: %w", mb.Name, err)
		}
		if len(res) != len(reqs) {
			return nil, fmt.Errorf("agglm: model %s returned %d answers to %d dev items", mb.Name, len(res), len(reqs))
		}
		r.Texts[m], r.Correct[m] = make([]string, len(items)), make([]bool, len(items))
		for i, x := range res {
			r.Texts[m][i] = x.Text
			r.Correct[m][i] = extract.Correct(items[i].Task, x.Text, items[i].Ref)
		}
	}
	return r, nil
}
