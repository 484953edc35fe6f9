package collab

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mocolab/moco/engine"
)

// BlenderParams configures LLM-Blender (#11), after MoCo's text_llm_blender:
// every model answers, a pairwise ranker compares every pair of answers
// (a win scores 1, an undecided pair 0.5 each), and a fuser merges the
// TopK best into the final answer.
//
// The ranker is either an LLM judge (Ranker "llm", MoCo's default: Judge
// is asked which of two answers is better and its first A or B decides),
// or a trained pairwise ranker (Ranker "trained", the default when a dev
// set is given): RankNet, P(a beats b) = sigmoid(s(a) - s(b)), with s a
// small MLP on the encoder's mean-pooled hidden state of question plus
// answer and the encoder's mean log-likelihood of the answer's tokens
// (when the encoder is a local model), trained on the dev preferences "a correct answer beats a wrong
// one to the same question". MoCo instead fine-tunes an LLM ranker on the
// same preferences. With TopK 1 the best-ranked answer is returned as it
// is (no fuser call).
type BlenderParams struct {
	Ranker string `json:"ranker"` // "llm" or "trained"
	Judge  any    `json:"judge"`  // LLM ranker (name or index; default the first model)
	TopK   int    `json:"top_k"`  // answers given to the fuser (default 3, MoCo's)
	Fuser  any    `json:"fuser"`  // who fuses (default: best by dev_scores, else the first)
	// JudgeMaxTokens caps each verdict of the LLM ranker (default 128,
	// MoCo's ranker_max_response_length).
	JudgeMaxTokens int `json:"ranker_max_response_length"`
	// DevScores picks the fuser and judge when they are not named.
	DevScores []float64 `json:"dev_scores"`
	DevConfig
	EncoderConfig
	Hidden int     `json:"hidden"` // ranker MLP hidden units (default 32; -1: linear)
	Epochs int     `json:"epochs"` // default 300
	LR     float64 `json:"lr"`     // default 0.01
	// L2 is the ranker's weight decay; 0 (default) chooses it on the dev
	// set alone by 2-fold cross-validation over dev items: the value whose
	// ranker, trained on one half, most often ranks a correct answer first
	// on the other half (the smaller on ties).
	L2   float64 `json:"l2"`
	Seed uint64  `json:"seed"`
}

func init() {
	Register(Spec{Name: "llm-blender", Level: LevelText, MinModels: 2, Dev: true, DevScores: true,
		Summary: "a pairwise ranker orders every model's answer; a fuser merges the top-k",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			return NewBlender(ctx, pool, p)
		}})
}

// Blender is LLM-Blender over a pool.
type Blender struct {
	textMethod
	// Score is the trained ranker's score of an answer (nil for the LLM
	// judge).
	Score func(ctx context.Context, question, answer string) (float64, error)
}

func pairwisePrompt(q, a, b string) string {
	return "You are judging two answers to a user's question.\n\n" +
		"Question:\n" + q + "\n\n" +
		"Answer A:\n" + a + "\n\n" +
		"Answer B:\n" + b + "\n\n" +
		`Which answer is better, A or B? Reply with one letter: "A" or "B".`
}

// parsePreference is MoCo's: the first A or B in the upper-cased reply.
func parsePreference(text string) string {
	for _, r := range strings.ToUpper(strings.TrimSpace(text)) {
		if r == 'A' || r == 'B' {
			return string(r)
		}
	}
	return ""
}

func fusionPrompt(q string, names []string, answers []string) string {
	var b strings.Builder
	b.WriteString("You are an AI assistant that merges several candidate answers into one answer of high quality.\n")
	b.WriteString("Keep what each candidate gets right, drop its mistakes, and make the final answer accurate, helpful and concise.\n\n")
	b.WriteString("Question: " + q + "\n\n")
	b.WriteString("Candidate answers, best first as a judge ranked them:\n")
	for i, a := range answers {
		fmt.Fprintf(&b, "Candidate %d (from model %s):\n%s\n\n", i+1, names[i], a)
	}
	b.WriteString("Now write the final answer to the question from these candidates.\nFinal answer:")
	return b.String()
}

// NewBlender builds LLM-Blender, training its ranker on the dev set when
// the ranker is "trained".
func NewBlender(ctx context.Context, pool []Member, p Params) (*Blender, error) {
	q := BlenderParams{TopK: 3, JudgeMaxTokens: 128}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("llm-blender: %w", err)
	}
	if q.Ranker == "" {
		q.Ranker = "llm"
		if q.Dev != "" {
			q.Ranker = "trained"
		}
	}
	if q.JudgeMaxTokens < 1 {
		return nil, inputErrorf("llm-blender: ranker_max_response_length must be at least 1, got %d", q.JudgeMaxTokens)
	}
	if q.TopK < 1 {
		return nil, inputErrorf("llm-blender: top_k must be at least 1, got %d", q.TopK)
	}
	topK := min(q.TopK, len(pool))
	fuser, err := pickModel(pool, q.Fuser, q.DevScores, "llm-blender fuser")
	if err != nil {
		return nil, err
	}
	judge, err := memberIndex(pool, q.Judge, "llm-blender judge")
	if err != nil {
		return nil, err
	}
	if judge < 0 {
		judge = 0
	}
	b := &Blender{textMethod: textMethod{name: "llm-blender", level: LevelText, pool: pool}}
	switch q.Ranker {
	case "llm":
		if q.Dev != "" {
			return nil, inputErrorf("llm-blender: a dev set trains the ranker, so it needs ranker trained, not llm")
		}
	case "trained":
		score, err := trainBlenderRanker(ctx, pool, q)
		if err != nil {
			return nil, err
		}
		b.Score = score
	default:
		return nil, inputErrorf("llm-blender: ranker must be llm or trained, got %q", q.Ranker)
	}
	b.one = func(x *exchange) (string, error) {
		qs := question(x.req)
		answers, err := x.answers(len(pool))
		if err != nil {
			return "", err
		}
		points := make([]float64, len(pool))
		if b.Score != nil {
			s := make([]float64, len(pool))
			for i, a := range answers {
				if s[i], err = b.Score(x.ctx, qs, a); err != nil {
					return "", fmt.Errorf("llm-blender: scoring %s's answer: %w", pool[i].Name, err)
				}
			}
			for i := range pool {
				for j := i + 1; j < len(pool); j++ {
					switch {
					case s[i] > s[j]:
						points[i]++
					case s[j] > s[i]:
						points[j]++
					default:
						points[i] += 0.5
						points[j] += 0.5
					}
				}
			}
			for i := range pool {
				x.note(2, "rank", "trained-ranker", pool[i].Name, fmt.Sprintf("score %.4f, %g wins", s[i], points[i]))
			}
		} else {
			var cs []call
			var pairs [][2]int
			for i := range pool {
				for j := i + 1; j < len(pool); j++ {
					cs = append(cs, call{Member: judge, To: pool[i].Name + " vs " + pool[j].Name, Prompt: pairwisePrompt(qs, answers[i], answers[j]), MaxTokens: q.JudgeMaxTokens})
					pairs = append(pairs, [2]int{i, j})
				}
			}
			verdicts, err := x.ask(2, "compare", cs)
			if err != nil {
				return "", err
			}
			x.mu.Lock()
			base := len(x.res.Trace) - len(verdicts)
			for k, v := range verdicts {
				i, j := pairs[k][0], pairs[k][1]
				pref := parsePreference(v)
				switch pref {
				case "A":
					points[i]++
				case "B":
					points[j]++
				default:
					points[i] += 0.5
					points[j] += 0.5
					pref = "none"
				}
				x.res.Trace[base+k].Note = "prefers " + pref
			}
			x.mu.Unlock()
		}
		order := make([]int, len(pool))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, c int) bool { return points[order[a]] > points[order[c]] })
		top := order[:topK]
		if topK == 1 {
			x.note(3, "select", "llm-blender", answers[top[0]], "the best-ranked answer, from "+pool[top[0]].Name)
			return answers[top[0]], nil
		}
		names := make([]string, topK)
		best := make([]string, topK)
		for k, i := range top {
			names[k], best[k] = pool[i].Name, answers[i]
		}
		out, err := x.ask(3, "fuse", []call{{Member: fuser, Prompt: fusionPrompt(qs, names, best)}})
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	return b, nil
}

// trainBlenderRanker answers the dev set with the pool and trains RankNet
// on "correct beats wrong" pairs within each item.
func trainBlenderRanker(ctx context.Context, pool []Member, q BlenderParams) (func(context.Context, string, string) (float64, error), error) {
	items, err := q.DevConfig.load("llm-blender")
	if err != nil {
		return nil, err
	}
	enc, name, err := q.EncoderConfig.resolve("llm-blender", pool, engine.Options{})
	if err != nil {
		return nil, err
	}
	res, err := runDev(ctx, "llm-blender", pool, items, q.DevConfig)
	if err != nil {
		return nil, err
	}
	var prompts, answers []string
	var pairs [][2]int
	var itemOf []int
	var right []bool
	for i, it := range items {
		base := len(prompts)
		for m := range pool {
			prompts, answers = append(prompts, it.Prompt), append(answers, res.Texts[m][i])
			itemOf, right = append(itemOf, i), append(right, res.Correct[m][i])
		}
		for a := range pool {
			for c := range pool {
				if res.Correct[a][i] && !res.Correct[c][i] {
					pairs = append(pairs, [2]int{base + a, base + c})
				}
			}
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("llm-blender: on none of the %d dev items was one answer right and another wrong, so there are no preferences to train the ranker on", len(items))
	}
	feats := func(ctx context.Context, prompts, answers []string) ([][]float32, error) {
		full := make([]string, len(prompts))
		for i := range prompts {
			full[i] = prompts[i] + answers[i]
		}
		xs, err := enc.Embed(ctx, full)
		if err != nil {
			return nil, fmt.Errorf("embedding with %s: %w", name, err)
		}
		sc, ok := enc.(Scorer)
		if !ok {
			return xs, nil
		}
		for i := range xs {
			ll, n, err := sc.LogLikelihood(ctx, prompts[i], answers[i])
			if err != nil {
				return nil, fmt.Errorf("scoring with %s: %w", name, err)
			}
			xs[i] = append(xs[i], float32(ll/float64(max(n, 1))))
		}
		return xs, nil
	}
	xs, err := feats(ctx, prompts, answers)
	if err != nil {
		return nil, fmt.Errorf("llm-blender: the dev answers: %w", err)
	}
	cfg := MLPConfig{Hidden: q.Hidden, Linear: q.Hidden < 0, Epochs: q.Epochs, LR: q.LR, L2: q.L2, Seed: q.Seed}
	if q.L2 == 0 {
		cfg.L2 = chooseRankerL2(xs, pairs, itemOf, right, cfg)
	}
	m, _, err := TrainRanker(xs, pairs, cfg)
	if err != nil {
		return nil, fmt.Errorf("llm-blender: %w", err)
	}
	return func(ctx context.Context, question, answer string) (float64, error) {
		e, err := feats(ctx, []string{question}, []string{answer})
		if err != nil {
			return 0, err
		}
		return m.Output(e[0])[0], nil
	}, nil
}

// chooseRankerL2 picks the ranker's weight decay by 2-fold
// cross-validation over dev items (even and odd items): for each value, a
// ranker trained on the preference pairs of one half scores the answers
// of the other half, and a held-out item counts when its best-scored
// answer is a correct one. Only the dev set is read. The smaller value
// wins ties; with too few items to split, 0.1.
func chooseRankerL2(xs [][]float32, pairs [][2]int, itemOf []int, right []bool, c MLPConfig) float64 {
	const fallback = 0.1
	best, bestScore := fallback, -1
	for _, l2 := range []float64{0.001, 0.01, 0.1, 1} {
		score := 0
		for fold := range 2 {
			var train [][2]int
			for _, p := range pairs {
				if itemOf[p[0]]%2 != fold {
					train = append(train, p)
				}
			}
			if len(train) == 0 {
				return fallback
			}
			cc := c
			cc.L2 = l2
			m, _, err := TrainRanker(xs, train, cc)
			if err != nil {
				return fallback
			}
			top := map[int]int{} // held-out item -> its best-scored answer
			topScore := map[int]float64{}
			for i := range xs {
				it := itemOf[i]
				if it%2 != fold {
					continue
				}
				if sc := m.Output(xs[i])[0]; !hasKey(top, it) || sc > topScore[it] {
					top[it], topScore[it] = i, sc
				}
			}
			for _, i := range top {
				if right[i] {
					score++
				}
			}
		}
		if score > bestScore {
			best, bestScore = l2, score
		}
	}
	return best
}

func hasKey(m map[int]int, k int) bool { _, ok := m[k]; return ok }
