package collab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/tokenizer"
	"github.com/mocolab/moco/train"
)

// MultiagentFTParams configures multiagent finetuning (#15; Subramaniam
// et al., "Multiagent Finetuning: Self Improvement with Diverse Reasoning
// Chains", ICLR 2025; MoCo's text_multiagent_finetuning). Every pool model
// is two agents, a generation agent and a critic agent, both starting from
// the model. Each iteration the agents debate the dev prompts (generation
// agents answer in round 0, critic agents refine in later rounds seeing a
// summary of the others' previous answers), the final round's extracted
// answers are put to a majority vote, and each agent is fine-tuned on its
// own data: a generation agent on its round-0 answers that agree with the
// consensus; a critic agent on its whole answer history, where its last
// answer agrees, with the consensus answer as target, mixing a share W of
// the items it corrected (wrong at first, right at the end) with a share
// 1-W of those it kept right. Answering runs the same debate with the
// fine-tuned agents and returns the consensus.
//
// Defaults are MoCo's (1 iteration, 2 rounds, w 0.5, training ratio 1,
// and its SFT: LoRA r 64, alpha 16, dropout 0.1 on q, k, v and o_proj;
// lr 1e-5, cosine with 10% warm-up, batch 1 with 16 accumulation steps,
// 1 epoch). Deviations, each for reproducibility or because moco's
// interfaces differ: the dev debate answers as the DevConfig says (greedy
// by default; MoCo samples at its generation temperature); the training
// subset and the critic data's sampling use Go's seeded generator, not
// Python's; the answer returned is a full answer text of an agent that
// gave the consensus answer (the most frequent such text, ties by string
// order), where MoCo returns the extracted answer itself; an empty
// extracted answer does not vote, as MoCo's None does not.
type MultiagentFTParams struct {
	DevConfig
	Iterations    int      `json:"iterations"`
	Rounds        int      `json:"rounds"`
	W             *float64 `json:"w"`
	TrainingRatio float64  `json:"training_ratio"`
	// TaskType extracts answers when a dev item or request has none.
	TaskType string `json:"task_type"`
	Seed     uint64 `json:"seed"`
	// SFT of each agent on its data.
	Epochs      int      `json:"sft_epochs"`
	LR          float64  `json:"sft_learning_rate"`
	BatchSize   int      `json:"sft_batch_size"`
	GradAccum   int      `json:"sft_grad_accum"`
	LoRAR       int      `json:"lora_r"`
	LoRAAlpha   float64  `json:"lora_alpha"`
	LoRADropout *float64 `json:"lora_dropout"`
	LoRATargets []string `json:"lora_targets"`
}

func (p *MultiagentFTParams) defaults() {
	if p.Iterations == 0 {
		p.Iterations = 1
	}
	if p.Rounds == 0 {
		p.Rounds = 2
	}
	if p.W == nil {
		w := 0.5
		p.W = &w
	}
	if p.TrainingRatio == 0 {
		p.TrainingRatio = 1
	}
	if p.TaskType == "" {
		p.TaskType = extract.ExactMatch
	}
	if p.Epochs == 0 {
		p.Epochs = 1
	}
	if p.LR == 0 {
		p.LR = 1e-5
	}
	if p.BatchSize == 0 {
		p.BatchSize = 1
	}
	if p.GradAccum == 0 {
		p.GradAccum = 16
	}
	if p.LoRAR == 0 {
		p.LoRAR = 64
	}
	if p.LoRAAlpha == 0 {
		p.LoRAAlpha = 16
	}
	if p.LoRADropout == nil {
		d := 0.1
		p.LoRADropout = &d
	}
	if len(p.LoRATargets) == 0 {
		p.LoRATargets = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
	}
}

func (p *MultiagentFTParams) check() error {
	switch {
	case p.Iterations < 0:
		return inputErrorf("iterations must not be negative")
	case p.Rounds < 1:
		return inputErrorf("rounds must be at least 1")
	case *p.W < 0 || *p.W > 1:
		return inputErrorf("w must be in [0, 1], got %g", *p.W)
	case p.TrainingRatio <= 0 || p.TrainingRatio > 1:
		return inputErrorf("training_ratio must be in (0, 1], got %g", p.TrainingRatio)
	case p.Epochs < 1 || p.BatchSize < 1 || p.GradAccum < 1 || p.LR <= 0:
		return inputErrorf("sft_epochs, sft_batch_size, sft_grad_accum and sft_learning_rate must be positive")
	case *p.LoRADropout < 0 || *p.LoRADropout >= 1:
		return inputErrorf("lora_dropout must be in [0, 1)")
	}
	return nil
}

// maftTrainer fine-tunes one agent (role "generation" or "critic" of pool
// model n) on its examples and returns the trained agent.
type maftTrainer func(ctx context.Context, n int, role string, agent Member, data []train.Example) (Member, error)

func init() {
	Register(Spec{Name: "multiagent-finetuning", Level: LevelTraining, MinModels: 2, Dev: true,
		Summary: "multiagent finetuning (#15): generation and critic agents debate the dev set and are each fine-tuned on their answers that agree with the consensus; they then debate and vote",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			var q MultiagentFTParams
			if err := p.Decode(&q); err != nil {
				return nil, fmt.Errorf("multiagent-finetuning: %w", err)
			}
			q.defaults()
			if err := q.check(); err != nil {
				return nil, fmt.Errorf("multiagent-finetuning: %w", err)
			}
			for _, m := range pool {
				if m.Dir == "" {
					return nil, inputErrorf("multiagent-finetuning trains its models: %s is not a local model folder", m.Name)
				}
			}
			items, err := q.DevConfig.load("multiagent-finetuning")
			if err != nil {
				return nil, err
			}
			lt := &maftLoRA{q: q, models: map[string]*train.Model[float32]{}, toks: map[int]*tokenizer.Tokenizer{}}
			gen, crit, err := runMultiagentFT(ctx, pool, items, q, lt.train)
			if err != nil {
				return nil, err
			}
			return newMaftMethod(gen, crit, q), nil
		}})
}

// maftDebate is one debate's answers: Texts[round][agent][item] and their
// extracted keys.
type maftDebate struct {
	Texts, Keys [][][]string
}

// maftAgents builds the exchange pool of a debate: generation agents
// first, then critic agents.
func maftAgents(gen, crit []Member) []Member {
	return append(append([]Member(nil), gen...), crit...)
}

// maftCriticPrompt is what a critic agent sees in rounds after the first:
// the question, the other agents' previous answers joined as their summary
// (MoCo's summariser concatenates them), and its own previous answer.
func maftCriticPrompt(q, summary, own string) string {
	return "Question: " + q + "\n" +
		"What the other assistants answered:\n" + summary + "\n" +
		"Your previous answer: " + own + "\n" +
		"Give a refined, correct answer to the question."
}

// maftHistoryPrompt is a critic agent's training prompt: the question and
// every answer it gave, round by round.
func maftHistoryPrompt(q string, answers []string) string {
	var b strings.Builder
	b.WriteString("Question: " + q + "\n")
	for r, a := range answers {
		fmt.Fprintf(&b, "Round %d: %s\n", r, strings.TrimSpace(a))
	}
	b.WriteString("Give a refined, correct answer to the question.")
	return b.String()
}

// maftSummary joins the non-empty answers, as MoCo's summary does.
func maftSummary(answers []string) string {
	var keep []string
	for _, a := range answers {
		if a = strings.TrimSpace(a); a != "" {
			keep = append(keep, a)
		}
	}
	return strings.Join(keep, "\n\n")
}

// maftConsensus is MoCo's majority vote over extracted answers: the most
// frequent non-empty key, ties by string order ("" when none).
func maftConsensus(keys []string) string {
	count := map[string]int{}
	for _, k := range keys {
		if k != "" {
			count[k]++
		}
	}
	best := ""
	for k, c := range count {
		if best == "" || c > count[best] || c == count[best] && k < best {
			best = k
		}
	}
	return best
}

// maftConsensusText is the representative answer text for consensus key c:
// the most frequent trimmed text among agents whose key is c, ties by
// string order.
func maftConsensusText(texts, keys []string, c string) string {
	count := map[string]int{}
	for i, k := range keys {
		if k == c {
			count[strings.TrimSpace(texts[i])]++
		}
	}
	best, found := "", false
	for t, n := range count {
		if !found || n > count[best] || n == count[best] && t < best {
			best, found = t, true
		}
	}
	return best
}

// runMaftDebate runs the debate over questions with n generation agents
// (pool indices 0..n-1 of x's pool) and n critic agents (n..2n-1). ask
// sends one round's prompts; orig marks round 0, where a request's own
// prompt (or messages) goes to the generation agents.
func runMaftDebate(n, rounds int, questions []string, tasks []extract.Task, ask func(round int, step string, calls []call) ([]string, error), orig bool) (*maftDebate, error) {
	d := &maftDebate{}
	items := len(questions)
	for r := 0; r < rounds; r++ {
		var calls []call
		for a := 0; a < n; a++ {
			for i := 0; i < items; i++ {
				if r == 0 {
					calls = append(calls, call{Member: a, Prompt: questions[i], Orig: orig})
					continue
				}
				prev := d.Texts[r-1]
				var others []string
				for b := 0; b < n; b++ {
					if b != a {
						others = append(others, prev[b][i])
					}
				}
				calls = append(calls, call{Member: n + a, Prompt: maftCriticPrompt(questions[i], maftSummary(others), prev[a][i])})
			}
		}
		step := "answer"
		if r > 0 {
			step = "critique"
		}
		out, err := ask(r+1, step, calls)
		if err != nil {
			return nil, err
		}
		texts, keys := make([][]string, n), make([][]string, n)
		for a := 0; a < n; a++ {
			texts[a] = out[a*items : (a+1)*items]
			keys[a] = make([]string, items)
			for i := range items {
				keys[a][i] = extract.Key(tasks[i], texts[a][i])
			}
		}
		d.Texts = append(d.Texts, texts)
		d.Keys = append(d.Keys, keys)
	}
	return d, nil
}

// maftData builds each agent's SFT data from a dev debate: gen[a] and
// crit[a] for pool model a. The critic data takes max(1, ⌊w·|minus|⌋)
// corrected items and max(1, ⌊(1-w)·|plus|⌋) kept ones (none of a kind
// when its share is 0), drawn with rng, as MoCo samples them.
func maftData(d *maftDebate, questions []string, w float64, rng *rand.Rand) (gen, crit [][]train.Example) {
	n := len(d.Texts[0])
	last := len(d.Texts) - 1
	gen, crit = make([][]train.Example, n), make([][]train.Example, n)
	minus, plus := make([][]train.Example, n), make([][]train.Example, n)
	for i, q := range questions {
		finalKeys, finalTexts := make([]string, n), make([]string, n)
		for a := range n {
			finalKeys[a], finalTexts[a] = d.Keys[last][a][i], d.Texts[last][a][i]
		}
		c := maftConsensus(finalKeys)
		if c == "" {
			continue // nobody gave an answer: no agreement to learn from
		}
		cText := maftConsensusText(finalTexts, finalKeys, c)
		for a := range n {
			if d.Keys[0][a][i] == c {
				gen[a] = append(gen[a], train.Example{Prompt: q, Completion: strings.TrimSpace(d.Texts[0][a][i])})
			}
			if finalKeys[a] != c {
				continue
			}
			hist := make([]string, len(d.Texts))
			for r := range d.Texts {
				hist[r] = d.Texts[r][a][i]
			}
			ex := train.Example{Prompt: maftHistoryPrompt(q, hist), Completion: cText}
			if d.Keys[0][a][i] != c {
				minus[a] = append(minus[a], ex)
			} else {
				plus[a] = append(plus[a], ex)
			}
		}
	}
	take := func(xs []train.Example, share float64) []train.Example {
		if len(xs) == 0 || share <= 0 {
			return nil
		}
		k := min(len(xs), max(1, int(float64(len(xs))*share)))
		idx := rng.Perm(len(xs))[:k]
		sort.Ints(idx)
		out := make([]train.Example, k)
		for j, i := range idx {
			out[j] = xs[i]
		}
		return out
	}
	for a := range n {
		crit[a] = append(take(minus[a], w), take(plus[a], 1-w)...)
	}
	return gen, crit
}

// runMultiagentFT runs the iterations and returns the generation and
// critic agents that answer.
func runMultiagentFT(ctx context.Context, pool []Member, items []DevItem, q MultiagentFTParams, trainer maftTrainer) (gen, crit []Member, err error) {
	n := len(pool)
	gen = append([]Member(nil), pool...)
	crit = append([]Member(nil), pool...)
	rng := rand.New(rand.NewPCG(q.Seed, 0x3a4f7))
	if q.TrainingRatio < 1 && len(items) > 0 {
		k := max(1, int(float64(len(items))*q.TrainingRatio))
		idx := rng.Perm(len(items))[:k]
		sort.Ints(idx)
		sub := make([]DevItem, k)
		for j, i := range idx {
			sub[j] = items[i]
		}
		items = sub
	}
	questions := make([]string, len(items))
	tasks := make([]extract.Task, len(items))
	for i, it := range items {
		questions[i], tasks[i] = it.Prompt, it.Task
		if tasks[i].Type == "" {
			tasks[i].Type = q.TaskType
		}
	}
	for it := 0; it < q.Iterations; it++ {
		x := newExchange(ctx, "multiagent-finetuning", maftAgents(gen, crit), q.DevConfig.request(DevItem{}))
		d, err := runMaftDebate(n, q.Rounds, questions, tasks, x.ask, false)
		if err != nil {
			return nil, nil, fmt.Errorf("iteration %d, dev debate: %w", it+1, err)
		}
		genData, critData := maftData(d, questions, *q.W, rng)
		for a := range n {
			if len(genData[a]) > 0 {
				if gen[a], err = trainer(ctx, a, "generation", gen[a], genData[a]); err != nil {
					return nil, nil, fmt.Errorf("multiagent-finetuning: iteration %d, generation agent %s: %w", it+1, pool[a].Name, err)
				}
			}
			if len(critData[a]) > 0 {
				if crit[a], err = trainer(ctx, a, "critic", crit[a], critData[a]); err != nil {
					return nil, nil, fmt.Errorf("multiagent-finetuning: iteration %d, critic agent %s: %w", it+1, pool[a].Name, err)
				}
			}
		}
	}
	return gen, crit, nil
}

// newMaftMethod answers by a debate of the agents and a majority vote.
func newMaftMethod(gen, crit []Member, q MultiagentFTParams) Method {
	n := len(gen)
	m := &textMethod{name: "multiagent-finetuning", level: LevelTraining, pool: maftAgents(gen, crit)}
	m.one = func(x *exchange) (string, error) {
		task := x.req.Task
		if task.Type == "" {
			task.Type = q.TaskType
		}
		d, err := runMaftDebate(n, q.Rounds, []string{question(x.req)}, []extract.Task{task}, x.ask, true)
		if err != nil {
			return "", err
		}
		last := len(d.Texts) - 1
		keys, texts := make([]string, n), make([]string, n)
		for a := range n {
			keys[a], texts[a] = d.Keys[last][a][0], d.Texts[last][a][0]
		}
		c := maftConsensus(keys)
		if c == "" {
			x.note(q.Rounds, "vote", "multiagent-finetuning", texts[0], "no agent gave an extractable answer; the first agent's text is kept")
			return texts[0], nil
		}
		win := maftConsensusText(texts, keys, c)
		x.note(q.Rounds, "vote", "multiagent-finetuning", win, fmt.Sprintf("%q is the consensus of %d agents", c, n))
		return win, nil
	}
	return m
}

// maftLoRA fine-tunes agents of local models with LoRA SFT: the agent's
// current weights (an earlier iteration's adapter folded in, as MoCo
// trains the previous iteration's model) get a new adapter, which is then
// folded in and served from memory. Each agent has its own copy.
type maftLoRA struct {
	q      MultiagentFTParams
	models map[string]*train.Model[float32]
	toks   map[int]*tokenizer.Tokenizer
}

func (t *maftLoRA) train(ctx context.Context, n int, role string, agent Member, data []train.Example) (Member, error) {
	key := fmt.Sprint(role, n)
	tm := t.models[key]
	if tm == nil {
		if agent.Dir == "" {
			return Member{}, fmt.Errorf("agent %s has no model folder to train from", agent.Name)
		}
		var err error
		if tm, err = train.Load(agent.Dir); err != nil {
			return Member{}, err
		}
		if t.toks[n] == nil {
			if t.toks[n], err = tokenizer.Load(agent.Dir); err != nil {
				return Member{}, err
			}
		}
		t.models[key] = tm
	}
	perStep := t.q.BatchSize * t.q.GradAccum
	steps := (len(data)*t.q.Epochs + perStep - 1) / perStep
	cfg := train.SFTConfig{Steps: steps, BatchSize: t.q.BatchSize, GradAccum: t.q.GradAccum,
		Warmup: int(math.Ceil(0.1 * float64(steps))), LR: t.q.LR, MaxGradNorm: 1, Seed: t.q.Seed + uint64(n),
		Rank: t.q.LoRAR, Alpha: t.q.LoRAAlpha, Dropout: *t.q.LoRADropout, Targets: t.q.LoRATargets, Truncate: true,
		SplitPrompt: true} // the completions are the agents' generations after the prompt's ids
	if _, _, err := train.SFT(ctx, tm, t.toks[n], data, cfg, nil); err != nil {
		return Member{}, err
	}
	tm.FoldLoRA()
	em, err := train.PolicyEngine(tm)
	if err != nil {
		return Member{}, err
	}
	name := agent.Name
	if !strings.Contains(name, "+maft-") {
		name += "+maft-" + role
	}
	l := NewLocal(name, "", em, t.toks[n])
	return Member{Name: name, Gen: l, Local: l}, nil
}
