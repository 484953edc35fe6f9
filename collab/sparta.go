package collab

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/mocolab/moco/tokenizer"
	"github.com/mocolab/moco/train"
)

// SpartaParams configures Sparta alignment (#18, MoCo's text_sparta):
// each iteration, pool models answer dev prompts in pairwise contests
// (opponents of similar reputation, or random ones), the models that did
// not compete judge both answers with a 1-10 score, the scores are
// averaged with the judges' reputations as weights, every model's
// reputation moves with its contests (a Glicko-like update), and the
// contests' winners and losers become DPO pairs on which every model is
// trained. After the last iteration each iteration's trained models are
// scored on the dev set and the best one answers.
//
// Defaults are MoCo's run_method defaults (3 iterations, 500 instructions,
// random_match_prob 0.2, 3 nearest opponents, temperature 0.7, top_p 0.9,
// 256 tokens, initial K 10, min K 5, window 10, min deviation 0.1, epsilon
// 0.01, decay 0.9 every 10 updates, scaling 20, ratings starting at 100
// with deviation 0.5) and its DPO's (LoRA r 64, alpha 16, dropout 0.1 on
// q, k, v and o_proj; lr 1e-6, cosine with 10% warm-up; 16 pairs per
// step; one epoch; β 0.1). Deviations: an epoch is ⌈pairs/16⌉ steps of
// pairs drawn with replacement (train.DPO's sampler) rather than a
// shuffled pass; training is in float32, not bf16; only the "normal"
// rating system is built (MoCo's
// "dynamic" and "static" score types are refused); every iteration's
// trained models are scored on dev (MoCo's final search matches adapter
// folders by a path rule that finds only some of them); the dev scoring
// answers as the DevConfig says (greedy by default) where MoCo reuses the
// judges' sampling settings; the random streams are Go's, seeded.
type SpartaParams struct {
	DevConfig
	Iterations      int      `json:"num_iterations"`
	NumInstructions int      `json:"num_instructions"`
	RandomMatchProb *float64 `json:"random_match_prob"`
	NumOpponents    int      `json:"num_opponents"`
	MaxTokens       int      `json:"max_response_length"`
	Temperature     *float64 `json:"temperature"`
	TopP            *float64 `json:"top_p"`
	JudgeRounds     int      `json:"judge_rounds"`
	ScoreType       string   `json:"score_type"`
	FreezeRatings   bool     `json:"freeze_ratings"`
	Seed            uint64   `json:"seed"`
	Rating          SpartaRating
	// DPO of every model on the iteration's pairs.
	Beta        float64  `json:"beta"`
	LR          float64  `json:"lr"`
	LoRAR       int      `json:"lora_r"`
	LoRAAlpha   float64  `json:"lora_alpha"`
	LoRATargets []string `json:"lora_targets"`
	LoRADropout *float64 `json:"lora_dropout"`
	BatchSize   int      `json:"dpo_batch_size"`
	Epochs      int      `json:"epochs"`
}

// SpartaRating holds the rating system's constants (MoCo's RatingSystem).
type SpartaRating struct {
	InitialK      float64 `json:"initial_k"`
	MinK          float64 `json:"min_k"`
	WindowSize    int     `json:"window_size"`
	MinDeviation  float64 `json:"min_deviation"`
	Epsilon       float64 `json:"epsilon"`
	DecayRate     float64 `json:"decay_rate"`
	DecaySteps    int     `json:"decay_steps"`
	ScalingFactor float64 `json:"scaling_factor"`
}

func (p *SpartaParams) defaults() {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setf := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setp := func(v **float64, d float64) {
		if *v == nil {
			*v = &d
		}
	}
	set(&p.Iterations, 3)
	set(&p.NumInstructions, 500)
	setp(&p.RandomMatchProb, 0.2)
	set(&p.NumOpponents, 3)
	set(&p.MaxTokens, 256)
	setp(&p.Temperature, 0.7)
	setp(&p.TopP, 0.9)
	set(&p.JudgeRounds, 1)
	r := &p.Rating
	setf(&r.InitialK, 10)
	setf(&r.MinK, 5)
	set(&r.WindowSize, 10)
	setf(&r.MinDeviation, 0.1)
	setf(&r.Epsilon, 0.01)
	setf(&r.DecayRate, 0.9)
	set(&r.DecaySteps, 10)
	setf(&r.ScalingFactor, 20)
	setf(&p.Beta, 0.1)
	setf(&p.LR, 1e-6)
	set(&p.LoRAR, 64)
	setf(&p.LoRAAlpha, 16)
	setp(&p.LoRADropout, 0.1)
	if len(p.LoRATargets) == 0 {
		p.LoRATargets = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
	}
	set(&p.BatchSize, 16)
	set(&p.Epochs, 1)
}

// spartaTrainer trains one pool model on an iteration's preference pairs
// and returns the trained model as a new member.
type spartaTrainer func(ctx context.Context, m int, member Member, pairs []train.Pair) (Member, error)

func init() {
	Register(Spec{Name: "sparta", Level: LevelTraining, MinModels: 3, Dev: true,
		Summary: "Sparta alignment (#18): pairwise contests on dev prompts judged by the other models with reputation weights; winners vs losers train every model with DPO; the best on dev answers",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			var q SpartaParams
			if err := decodeSparta(p, &q); err != nil {
				return nil, fmt.Errorf("sparta: %w", err)
			}
			for _, m := range pool {
				if m.Dir == "" {
					return nil, inputErrorf("sparta trains its models: %s is not a local model folder", m.Name)
				}
			}
			items, err := q.DevConfig.load("sparta")
			if err != nil {
				return nil, err
			}
			lt := &loraTrainer{q: q}
			best, note, err := runSparta(ctx, pool, items, q, lt.train)
			if err != nil {
				return nil, err
			}
			return &spartaMethod{best: best, note: note}, nil
		}})
}

// decodeSparta reads the parameters: the rating constants sit at the top
// level, as in MoCo's hyperparameters.
func decodeSparta(p Params, q *SpartaParams) error {
	top, rating := Params{}, Params{}
	for k, v := range p {
		switch k {
		case "initial_k", "min_k", "window_size", "min_deviation", "epsilon", "decay_rate", "decay_steps", "scaling_factor":
			rating[k] = v
		default:
			top[k] = v
		}
	}
	if err := top.Decode(q); err != nil {
		return err
	}
	if err := rating.Decode(&q.Rating); err != nil {
		return err
	}
	q.defaults()
	if q.ScoreType != "" && q.ScoreType != "normal" {
		return inputErrorf("score_type %q is not built (only MoCo's \"normal\" rating system)", q.ScoreType)
	}
	if q.Iterations < 0 || q.NumInstructions < 1 || q.NumOpponents < 1 || q.JudgeRounds < 1 || *q.RandomMatchProb < 0 || *q.RandomMatchProb > 1 {
		return inputErrorf("num_iterations, num_instructions, num_opponents, judge_rounds or random_match_prob out of range")
	}
	return nil
}

// spartaMethod answers with the model Sparta selected; each response's
// trace starts with the training's summary.
type spartaMethod struct {
	best Member
	note string
}

func (s *spartaMethod) Name() string { return "sparta" }
func (s *spartaMethod) Level() Level { return LevelTraining }
func (s *spartaMethod) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out, err := s.best.Gen.Generate(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("sparta: %s: %w", s.best.Name, err)
	}
	for i := range out {
		out[i].Trace = append([]Event{{Step: "select", From: s.best.Name, Note: s.note}}, out[i].Trace...)
	}
	return out, nil
}

// spartaRating is one model's reputation.
type spartaRating struct{ Score, Deviation float64 }

// spartaContest is one pairwise contest: an instruction, the two models
// (pool indices) and their answers, and each judge's average scores.
type spartaContest struct {
	Instruction string
	Models      [2]int
	Responses   [2]string
	Judges      map[int][2]float64 // judge → average scores of the two answers
}

// spartaMatch pairs models on instructions as MoCo's _pairwise_competition
// does: in each full loop of len(pool) instructions every model, in a
// shuffled order, takes one instruction as the first contestant; leftover
// instructions get a random first model. The opponent is random with
// probability randomProb, otherwise drawn among the numOpponents models of
// nearest reputation.
func spartaMatch(rng *rand.Rand, n int, instructions []string, rep []float64, randomProb float64, numOpponents int) []spartaContest {
	opponent := func(cur int) int {
		var others []int
		for m := range n {
			if m != cur {
				others = append(others, m)
			}
		}
		if rng.Float64() < randomProb {
			return others[rng.IntN(len(others))]
		}
		// Stable sort by |score difference|: ties keep pool order.
		for i := 1; i < len(others); i++ {
			for j := i; j > 0 && math.Abs(rep[others[j]]-rep[cur]) < math.Abs(rep[others[j-1]]-rep[cur]); j-- {
				others[j], others[j-1] = others[j-1], others[j]
			}
		}
		k := max(1, min(numOpponents, len(others)))
		return others[rng.IntN(k)]
	}
	var out []spartaContest
	loops := len(instructions) / n
	for l := range loops {
		order := rng.Perm(n)
		for i, first := range order {
			out = append(out, spartaContest{Instruction: instructions[l*n+i], Models: [2]int{first, opponent(first)}})
		}
	}
	for _, instr := range instructions[loops*n:] {
		first := rng.IntN(n)
		out = append(out, spartaContest{Instruction: instr, Models: [2]int{first, opponent(first)}})
	}
	return out
}

// spartaJudgePrompt is MoCo's judge prompt, word for word.
func spartaJudgePrompt(instruction, response string) string {
	return "\nPlease judge the following response based on the question and the response to be evaluated.\n" +
		"Question: " + instruction + "\nResponse to be evaluated: " + response + "\n\n" +
		"Operation: Output ONLY a JSON object with one score in this exact format. Score must be in the range of 1 to 10.\n" +
		"Your output should be like this:\n{\"score\": score}\n"
}

var spartaScorePatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i){\s*"score"\s*:\s*(\d+)\s*}`),
	regexp.MustCompile(`(?i)"score"\s*:\s*(\d+)`),
	regexp.MustCompile(`(?i)score\s*[:=]\s*(\d+)`),
	regexp.MustCompile(`(?i)Score:\s*(\d+)`),
	regexp.MustCompile(`(?i)(\d+)\s*/\s*10`),
}

// spartaScore extracts a 1-10 score from a judge's text as MoCo's
// _extract_single_score does: the whole text as JSON {"score": n}, then
// the patterns in order, the first match in range winning.
func spartaScore(text string) (int, bool) {
	s := strings.TrimSpace(text)
	var obj map[string]any
	if json.Unmarshal([]byte(s), &obj) == nil {
		if v, ok := obj["score"].(float64); ok && v >= 1 && v <= 10 {
			return int(v), true
		}
	}
	for _, re := range spartaScorePatterns {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			if v, err := strconv.Atoi(m[1]); err == nil && v >= 1 && v <= 10 {
				return v, true
			}
		}
	}
	return 0, false
}

// spartaSystem is MoCo's RatingSystem ("normal").
type spartaSystem struct {
	c       SpartaRating
	ratings []spartaRating
	history [][]float64 // recent rating deltas per model
	k       float64
	updates int
}

func newSpartaSystem(c SpartaRating, ratings []spartaRating, history [][]float64) *spartaSystem {
	s := &spartaSystem{c: c, ratings: append([]spartaRating(nil), ratings...), history: history, k: c.InitialK}
	for m, h := range history {
		if len(h) >= 2 {
			s.ratings[m].Deviation = max(popStd(h), c.MinDeviation)
		}
	}
	return s
}

func popStd(x []float64) float64 {
	var mean, ss float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return math.Sqrt(ss / float64(len(x)))
}

// weighted returns the judges' reputation-weighted mean scores of a
// contest's two answers, judges who competed left out; ok is false when
// no judge's weight counts.
func (s *spartaSystem) weighted(c *spartaContest) (a, b float64, ok bool) {
	var total float64
	for j, sc := range c.Judges {
		if j == c.Models[0] || j == c.Models[1] {
			continue
		}
		w := s.ratings[j].Score
		a += w * sc[0]
		b += w * sc[1]
		total += w
	}
	if total <= 0 {
		return 0, 0, false
	}
	return a / total, b / total, true
}

// update is MoCo's update_ratings_from_judges for one contest: K decays
// with the update count; each contestant's rating moves by
// K·(±score difference)·tanh(σ_i)·max(|Φ_fwd − Φ_bwd|, ε)/scaling, floored
// at 10, and its deviation becomes the std of its recent deltas.
func (s *spartaSystem) update(c *spartaContest) {
	s.updates++
	s.k = max(s.c.MinK, s.c.InitialK*math.Pow(s.c.DecayRate, float64(s.updates)/float64(s.c.DecaySteps)))
	a, b, ok := s.weighted(c)
	if !ok {
		return
	}
	diff := a - b
	var deltas [2]float64
	for i, mi := range c.Models {
		mj := c.Models[1-i]
		ri, rj := s.ratings[mi].Score, s.ratings[mj].Score
		si, sj := s.ratings[mi].Deviation, s.ratings[mj].Deviation
		comb := math.Sqrt(si*si + sj*sj)
		if comb == 0 {
			comb = 1e-6
		}
		fwd := 0.5 * (1 + math.Erf((ri-rj)/(math.Sqrt2*comb)))
		bwd := 0.5 * (1 + math.Erf((rj-ri)/(math.Sqrt2*comb)))
		d := diff
		if i == 1 {
			d = -diff
		}
		delta := s.k * d * math.Tanh(si) * max(math.Abs(fwd-bwd), s.c.Epsilon) / s.c.ScalingFactor
		next := max(10, ri+delta)
		deltas[i] = next - ri
		s.ratings[mi].Score = next
	}
	for i, m := range c.Models {
		h := append(s.history[m], deltas[i])
		if len(h) > s.c.WindowSize {
			h = h[len(h)-s.c.WindowSize:]
		}
		s.history[m] = h
		if len(h) >= 2 {
			s.ratings[m].Deviation = max(popStd(h), s.c.MinDeviation)
		}
	}
}

// preference is MoCo's select_preference_response: the answer with the
// higher weighted score is chosen (the second on a tie, which the tie
// filter then drops); ok is false for ties and unjudged contests.
func (s *spartaSystem) preference(c *spartaContest) (train.Pair, bool) {
	a, b, ok := s.weighted(c)
	if !ok || a == b {
		return train.Pair{}, false
	}
	if a > b {
		return train.Pair{Prompt: c.Instruction, Chosen: c.Responses[0], Rejected: c.Responses[1]}, true
	}
	return train.Pair{Prompt: c.Instruction, Chosen: c.Responses[1], Rejected: c.Responses[0]}, true
}

// spartaIteration runs one round of contests, judging and rating on pool
// and returns the preference pairs and the new ratings and histories.
func spartaIteration(ctx context.Context, rng *rand.Rand, pool []Member, instructions []string, q SpartaParams,
	ratings []spartaRating, history [][]float64) ([]train.Pair, []spartaRating, [][]float64, error) {
	n := len(pool)
	rep := make([]float64, n)
	for m, r := range ratings {
		rep[m] = r.Score
	}
	contests := spartaMatch(rng, n, instructions, rep, *q.RandomMatchProb, q.NumOpponents)
	req := func(prompt string) Request {
		return Request{Prompt: prompt, MaxTokens: q.MaxTokens, Temperature: *q.Temperature, TopP: *q.TopP, Seed: rng.Uint64()}
	}

	// Answers: each model answers its contests in one batch.
	for m := range n {
		var reqs []Request
		var where [][2]int
		for ci, c := range contests {
			for side, cm := range c.Models {
				if cm == m {
					reqs = append(reqs, req(c.Instruction))
					where = append(where, [2]int{ci, side})
				}
			}
		}
		if len(reqs) == 0 {
			continue
		}
		out, err := pool[m].Gen.Generate(ctx, reqs)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sparta: model %s answering: %w", pool[m].Name, err)
		}
		for i, w := range where {
			contests[w[0]].Responses[w[1]] = out[i].Text
		}
	}

	// Judging: every model that did not compete scores both answers,
	// JudgeRounds times; a round where either score fails to parse counts
	// as 5 and 5.
	for j := range n {
		var reqs []Request
		var which []int
		for ci, c := range contests {
			if c.Models[0] == j || c.Models[1] == j {
				continue
			}
			for range q.JudgeRounds {
				reqs = append(reqs, req(spartaJudgePrompt(c.Instruction, c.Responses[0])), req(spartaJudgePrompt(c.Instruction, c.Responses[1])))
				which = append(which, ci)
			}
		}
		if len(reqs) == 0 {
			continue
		}
		out, err := pool[j].Gen.Generate(ctx, reqs)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sparta: judge %s: %w", pool[j].Name, err)
		}
		type acc struct {
			sum        [2]float64
			rounds     int
			allDefault bool
		}
		per := map[int]*acc{}
		for r, ci := range which {
			a := per[ci]
			if a == nil {
				a = &acc{allDefault: true}
				per[ci] = a
			}
			s0, ok0 := spartaScore(out[2*r].Text)
			s1, ok1 := spartaScore(out[2*r+1].Text)
			if ok0 && ok1 {
				a.sum[0] += float64(s0)
				a.sum[1] += float64(s1)
				a.allDefault = false
			} else {
				a.sum[0] += 5
				a.sum[1] += 5
			}
			a.rounds++
		}
		for ci, a := range per {
			if contests[ci].Judges == nil {
				contests[ci].Judges = map[int][2]float64{}
			}
			avg := [2]float64{5, 5}
			if !a.allDefault {
				// MoCo rounds the averages to 2 decimals.
				avg = [2]float64{math.Round(a.sum[0]/float64(a.rounds)*100) / 100, math.Round(a.sum[1]/float64(a.rounds)*100) / 100}
			}
			contests[ci].Judges[j] = avg
		}
	}

	sys := newSpartaSystem(q.Rating, ratings, history)
	if !q.FreezeRatings {
		for i := range contests {
			sys.update(&contests[i])
		}
	}
	var pairs []train.Pair
	for i := range contests {
		if p, ok := sys.preference(&contests[i]); ok && p.Chosen != "" && p.Rejected != "" {
			pairs = append(pairs, p)
		}
	}
	return pairs, sys.ratings, sys.history, nil
}

// runSparta runs the iterations and returns the member that answers: the
// trained model with the best dev accuracy over every iteration (the
// final pool when no iteration trained any), and a summary of the run.
func runSparta(ctx context.Context, pool []Member, items []DevItem, q SpartaParams, trainer spartaTrainer) (Member, string, error) {
	n := len(pool)
	rng := rand.New(rand.NewPCG(q.Seed, 0x5fa27a))
	instructions := make([]string, 0, len(items))
	for _, it := range items {
		instructions = append(instructions, it.Prompt)
	}
	instructions = instructions[:min(len(instructions), q.NumInstructions)]
	ratings := make([]spartaRating, n)
	history := make([][]float64, n)
	for m := range ratings {
		ratings[m] = spartaRating{Score: 100, Deviation: 0.5}
	}
	current := append([]Member(nil), pool...)
	var candidates []Member
	var notes []string
	for it := range q.Iterations {
		pairs, r, h, err := spartaIteration(ctx, rng, current, instructions, q, ratings, history)
		if err != nil {
			return Member{}, "", err
		}
		ratings, history = r, h
		var rs []string
		for m, x := range ratings {
			rs = append(rs, fmt.Sprintf("%s %.3f", current[m].Name, x.Score))
		}
		notes = append(notes, fmt.Sprintf("iteration %d: %d pairs; ratings %s", it+1, len(pairs), strings.Join(rs, ", ")))
		if len(pairs) == 0 {
			continue
		}
		for m := range current {
			next, err := trainer(ctx, m, current[m], pairs)
			if err != nil {
				return Member{}, "", fmt.Errorf("sparta: training %s: %w", current[m].Name, err)
			}
			current[m] = next
			candidates = append(candidates, next)
		}
	}
	if len(candidates) == 0 {
		candidates = current
	}
	dev, err := runDev(ctx, "sparta", candidates, items, q.DevConfig)
	if err != nil {
		return Member{}, "", err
	}
	best := 0
	for m := range candidates {
		if dev.Accuracy(m) > dev.Accuracy(best) {
			best = m
		}
	}
	notes = append(notes, fmt.Sprintf("best on dev: %s (%.3f)", candidates[best].Name, dev.Accuracy(best)))
	return candidates[best], strings.Join(notes, "; "), nil
}

// loraTrainer is Sparta's DPO step on local models: LoRA DPO of the
// member's current weights (earlier iterations' adapters folded in, as
// MoCo merges an adapter before training the next), then the adapter is
// folded in and the result served from memory.
type loraTrainer struct {
	q      SpartaParams
	models map[int]*train.Model[float32]
	toks   map[int]*tokenizer.Tokenizer
}

func (t *loraTrainer) train(ctx context.Context, m int, member Member, pairs []train.Pair) (Member, error) {
	if t.models == nil {
		t.models, t.toks = map[int]*train.Model[float32]{}, map[int]*tokenizer.Tokenizer{}
	}
	tm := t.models[m]
	if tm == nil {
		var err error
		if tm, err = train.Load(member.Dir); err != nil {
			return Member{}, err
		}
		if t.toks[m], err = tokenizer.Load(member.Dir); err != nil {
			return Member{}, err
		}
		t.models[m] = tm
	}
	steps := (len(pairs)*t.q.Epochs + t.q.BatchSize - 1) / t.q.BatchSize
	cfg := train.DPOConfig{Beta: t.q.Beta, SFTConfig: train.SFTConfig{Steps: steps, BatchSize: t.q.BatchSize,
		Warmup: int(math.Ceil(0.1 * float64(steps))), LR: t.q.LR, MaxGradNorm: 1, Seed: t.q.Seed + uint64(m),
		Rank: t.q.LoRAR, Alpha: t.q.LoRAAlpha, Targets: t.q.LoRATargets, Dropout: *t.q.LoRADropout,
		SplitPrompt: true}} // the completions are the members' generations after the prompt's ids
	if _, _, err := train.DPO(ctx, tm, t.toks[m], pairs, cfg, nil); err != nil {
		return Member{}, err
	}
	tm.FoldLoRA()
	em, err := train.PolicyEngine(tm)
	if err != nil {
		return Member{}, err
	}
	// No Dir: the weights are no longer the folder's.
	name := member.Name + "+sparta"
	l := NewLocal(name, "", em, t.toks[m])
	return Member{Name: name, Gen: l, Local: l}, nil
}
