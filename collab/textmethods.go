package collab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/mocolab/moco/collab/extract"
)

// The text-level methods of MoCo whose models exchange whole answers. Each
// follows MoCo's reference implementation (model_collaboration/method/
// text_*.py) for rounds, roles and defaults; the prompts say the same
// things in our words. MoCo picks the summarising or answering model as the
// best single model on the task's dev set; here the caller names it
// ("summarizer", "answerer", "final": a model name or index) or passes
// the models' dev scores ("dev_scores", one per model, the best wins),
// and without either it is the first model of the pool.

// MajorityVoteParams configures majority vote (#13).
//
// Two deviations from MoCo's text_majority_vote, which counts the raw
// extracted strings: answers are compared normalized (extract.Key, as
// MoCo's scorer compares them), so "12." and "12" vote together; and a
// generation with no extractable answer (an empty text, a multiple-choice
// reply naming no option) abstains instead of voting for "no answer",
// which in MoCo can win and score 0.
type MajorityVoteParams struct {
	// TaskType is the MoCo task type used to extract answers when a
	// request carries none (Request.Task): exact_match (default),
	// multiple_choice, f1_match, or anything else to compare whole texts.
	TaskType string `json:"task_type"`
	// Tie is how a tie between equally voted answers is broken:
	// "first" (default): the answer of the earliest model in pool order;
	// "dev": the answer of the tied model with the best dev score (MoCo's
	// "dev-based"; needs DevScores). MoCo's default, "random", is not
	// offered: results must be reproducible.
	Tie       string    `json:"tie"`
	DevScores []float64 `json:"dev_scores"`
}

// DebateParams configures multiagent debate (#9; MoCo's
// text_multiagent_refine).
type DebateParams struct {
	// Rounds counts the answering rounds: the first answers alone, each
	// later one refines with the others' previous answers (default 3).
	Rounds     int       `json:"rounds"`
	Round      *int      `json:"round"`      // MoCo's name for Rounds, accepted as it
	Summarizer any       `json:"summarizer"` // who writes the final answer
	DevScores  []float64 `json:"dev_scores"`
}

// FeedbackParams configures multiagent feedback (#10).
type FeedbackParams struct {
	Rounds int  `json:"rounds"` // default 3: answer, then (feedback, refine) twice
	Round  *int `json:"round"`  // MoCo's name for Rounds, accepted as it
	// FeedbackCount is how many other models critique each answer per
	// round (default 3, capped at the pool size less one). They are drawn
	// with Seed from the other models, as MoCo draws them at random.
	FeedbackCount int       `json:"feedback_count"`
	Seed          uint64    `json:"seed"`
	Summarizer    any       `json:"summarizer"`
	DevScores     []float64 `json:"dev_scores"`
}

// KnowledgeCardParams configures knowledge card (#12).
type KnowledgeCardParams struct {
	Answerer  any       `json:"answerer"` // who answers with the knowledge
	DevScores []float64 `json:"dev_scores"`
	// ExcludeSelf leaves the answerer's own knowledge out (default false).
	ExcludeSelf bool `json:"exclude_self"`
}

// StructureParams configures structured interaction (#16; MoCo's
// text_structure).
type StructureParams struct {
	Rounds int `json:"num_rounds"` // default 3: one alone, two with neighbours
	// Structure is chain, tree, star (default, as MoCo's example config),
	// circle, complete, or other with Matrix. Matrix[i][j] = 1 means model
	// j sees model i's answer.
	Structure string    `json:"structure_type"`
	Matrix    [][]int   `json:"structure_matrix"`
	Final     any       `json:"final"` // whose last answer is returned
	DevScores []float64 `json:"dev_scores"`
}

func init() {
	Register(Spec{Name: "majority-vote", Level: LevelText, MinModels: 2, DevScores: true,
		Summary: "every model answers; the most common extracted answer wins (ties: earliest model)",
		New:     newMajorityVote})
	Register(Spec{Name: "debate", Level: LevelText, MinModels: 2, DevScores: true,
		Summary: "models refine their answers over rounds seeing the others', then one summarises",
		New:     newDebate})
	Register(Spec{Name: "feedback", Level: LevelText, MinModels: 2, DevScores: true,
		Summary: "models answer, critique each other's answers, refine; then one summarises",
		New:     newFeedback})
	Register(Spec{Name: "knowledge-card", Level: LevelText, MinModels: 2, DevScores: true,
		Summary: "every model writes relevant knowledge; one answers with it",
		New:     newKnowledgeCard})
	Register(Spec{Name: "structure", Level: LevelText, MinModels: 2, DevScores: true,
		Summary: "models refine over a fixed graph, each seeing its in-neighbours' answers",
		New:     newStructure})
}

func newMajorityVote(_ context.Context, pool []Member, p Params) (Method, error) {
	q := MajorityVoteParams{TaskType: extract.ExactMatch, Tie: "first"}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("majority-vote: %w", err)
	}
	switch q.Tie {
	case "first":
	case "dev":
		if _, err := bestByDev(pool, q.DevScores, "majority-vote tie dev"); err != nil {
			return nil, err
		}
	default:
		return nil, inputErrorf("majority-vote: tie must be first or dev, got %q", q.Tie)
	}
	m := &textMethod{name: "majority-vote", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		texts, err := x.answers(len(pool))
		if err != nil {
			return "", err
		}
		task := x.req.Task
		if task.Type == "" {
			task.Type = q.TaskType
		}
		keys := make([]string, len(texts))
		for i, t := range texts {
			keys[i] = extract.Key(task, t)
		}
		x.mu.Lock()
		for i := range keys {
			x.res.Trace[len(x.res.Trace)-len(keys)+i].Note = "answer: " + keys[i]
		}
		x.mu.Unlock()
		win, why := Vote(keys, q.Tie, q.DevScores)
		x.note(1, "vote", "majority-vote", texts[win], why)
		return texts[win], nil
	}
	return m, nil
}

// Vote returns the index of the generation whose answer key wins a
// majority vote and a line saying why. Empty keys (no answer extracted)
// do not vote unless every key is empty. Ties between equally voted
// answers go, with tie "first", to the answer given by the earliest index;
// with tie "dev", to the answer of the tied voter with the highest dev
// score (earliest on equal scores). The returned index is the first voter
// for the winning answer.
func Vote(keys []string, tie string, dev []float64) (int, string) {
	votes := map[string][]int{}
	var order []string
	for i, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := votes[k]; !ok {
			order = append(order, k)
		}
		votes[k] = append(votes[k], i)
	}
	if len(order) == 0 {
		return 0, "no model gave an extractable answer; the first model's text is kept"
	}
	most := 0
	for _, k := range order {
		most = max(most, len(votes[k]))
	}
	var tied []string
	for _, k := range order {
		if len(votes[k]) == most {
			tied = append(tied, k)
		}
	}
	win := tied[0] // order is by first voter, so this is "first"
	why := fmt.Sprintf("%q wins with %d of %d votes", win, most, len(keys))
	if len(tied) > 1 {
		if tie == "dev" && len(dev) == len(keys) {
			best := -1
			for _, k := range tied {
				for _, i := range votes[k] {
					if best < 0 || dev[i] > dev[best] {
						best = i
					}
				}
			}
			win = keys[best]
			why = fmt.Sprintf("tie at %d votes between %q; %q wins as the answer of the best model on dev", most, tied, win)
		} else {
			why = fmt.Sprintf("tie at %d votes between %q; %q wins as the earliest model's answer", most, tied, win)
		}
	}
	return votes[win][0], why
}

// refinePrompt asks a model to improve its answer given the others'.
func refinePrompt(q, own string, others []string) string {
	return "You are one of several AI assistants answering the same question together. " +
		"Each assistant has given an answer; use theirs to improve your own.\n\n" +
		"Question: " + q + "\n\n" +
		"Your previous answer: " + own + "\n\n" +
		"The other assistants' answers:\n" + bullets(others) +
		"\nGive your improved answer to the question."
}

// summaryPrompt asks one model for the final answer from all of them.
func summaryPrompt(q string, answers []string) string {
	return "You are one of several AI assistants answering the same question together. " +
		"Each assistant has given an answer; combine them into one final, complete answer.\n\n" +
		"Question: " + q + "\n\n" +
		"The assistants' answers:\n" + bullets(answers) +
		"\nGive the final, complete answer to the question."
}

func others(texts []string, i int) []string {
	var o []string
	for k, t := range texts {
		if k != i {
			o = append(o, t)
		}
	}
	return o
}

func newDebate(_ context.Context, pool []Member, p Params) (Method, error) {
	q := DebateParams{Rounds: 3}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("debate: %w", err)
	}
	if err := mocoRound(&q.Rounds, q.Round, p, "debate"); err != nil {
		return nil, err
	}
	if q.Rounds < 1 {
		return nil, inputErrorf("debate: rounds must be at least 1, got %d", q.Rounds)
	}
	sum, err := pickModel(pool, q.Summarizer, q.DevScores, "debate summarizer")
	if err != nil {
		return nil, err
	}
	m := &textMethod{name: "debate", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		qs := question(x.req)
		var texts []string
		for r := 1; r <= q.Rounds; r++ {
			calls := make([]call, len(pool))
			for i := range pool {
				if r == 1 {
					calls[i] = call{Member: i, Orig: true}
				} else {
					calls[i] = call{Member: i, Prompt: refinePrompt(qs, texts[i], others(texts, i))}
				}
			}
			step := "answer"
			if r > 1 {
				step = "refine"
			}
			var err error
			if texts, err = x.ask(r, step, calls); err != nil {
				return "", err
			}
		}
		out, err := x.ask(q.Rounds+1, "summarize", []call{{Member: sum, Prompt: summaryPrompt(qs, texts)}})
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	return m, nil
}

func feedbackPrompt(q, answer string) string {
	return "You are one of several AI assistants answering a question together. " +
		"Below is another assistant's answer. Give constructive feedback that would improve it.\n\n" +
		"Question: " + q + "\n\n" +
		"The assistant's answer: " + answer + "\n\n" +
		"Give your feedback."
}

func reviseWithFeedbackPrompt(q, own string, feedback []string) string {
	return "You are one of several AI assistants answering a question together. " +
		"Below is your previous answer and the other assistants' feedback on it. Use the feedback to improve your answer.\n\n" +
		"Question: " + q + "\n\n" +
		"Your previous answer: " + own + "\n\n" +
		"Feedback from the other assistants:\n" + bullets(feedback) +
		"\nGive your improved answer to the question."
}

// Reviewers returns, for each model, the models that critique its answer
// in a round: count of the others (all of them when count is at least the
// pool size less one), drawn by a seeded shuffle and listed in pool order.
func Reviewers(n, count int, seed uint64, round int) [][]int {
	rng := rand.New(rand.NewPCG(seed, uint64(round)))
	out := make([][]int, n)
	for i := range out {
		var o []int
		for k := range n {
			if k != i {
				o = append(o, k)
			}
		}
		if count < len(o) {
			rng.Shuffle(len(o), func(a, b int) { o[a], o[b] = o[b], o[a] })
			o = o[:count]
			sort.Ints(o)
		}
		out[i] = o
	}
	return out
}

// mocoRound takes MoCo's "round" for rounds, refusing both names at once.
func mocoRound(rounds *int, round *int, p Params, method string) error {
	if round == nil {
		return nil
	}
	if _, both := p["rounds"]; both {
		return inputErrorf("%s: give rounds or MoCo's round, not both", method)
	}
	*rounds = *round
	return nil
}

func newFeedback(_ context.Context, pool []Member, p Params) (Method, error) {
	q := FeedbackParams{Rounds: 3, FeedbackCount: 3}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("feedback: %w", err)
	}
	if err := mocoRound(&q.Rounds, q.Round, p, "feedback"); err != nil {
		return nil, err
	}
	if q.Rounds < 1 || q.FeedbackCount < 1 {
		return nil, inputErrorf("feedback: rounds and feedback_count must be at least 1, got %d and %d", q.Rounds, q.FeedbackCount)
	}
	sum, err := pickModel(pool, q.Summarizer, q.DevScores, "feedback summarizer")
	if err != nil {
		return nil, err
	}
	m := &textMethod{name: "feedback", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		qs := question(x.req)
		texts, err := x.answers(len(pool))
		if err != nil {
			return "", err
		}
		for r := 2; r <= q.Rounds; r++ {
			rev := Reviewers(len(pool), q.FeedbackCount, q.Seed^x.req.Seed, r)
			var fc []call
			for i := range pool {
				for _, k := range rev[i] {
					fc = append(fc, call{Member: k, To: pool[i].Name, Prompt: feedbackPrompt(qs, texts[i])})
				}
			}
			fb, err := x.ask(r, "feedback", fc)
			if err != nil {
				return "", err
			}
			rc := make([]call, len(pool))
			at := 0
			for i := range pool {
				n := len(rev[i])
				rc[i] = call{Member: i, Prompt: reviseWithFeedbackPrompt(qs, texts[i], fb[at:at+n])}
				at += n
			}
			if texts, err = x.ask(r, "refine", rc); err != nil {
				return "", err
			}
		}
		out, err := x.ask(q.Rounds+1, "summarize", []call{{Member: sum, Prompt: summaryPrompt(qs, texts)}})
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	return m, nil
}

func knowledgePrompt(q string) string {
	return "You are an AI assistant asked to write down knowledge relevant to a question, to help answer it. " +
		"Give the relevant information for the following question.\n\n" +
		"Question: " + q + "\n\n" +
		"Relevant knowledge:"
}

func answerWithKnowledgePrompt(q string, cards []string) string {
	return "You are one of several AI assistants answering a question together. " +
		"The other assistants have written knowledge relevant to it:\n\n" +
		"Question: " + q + "\n\n" +
		"Relevant knowledge from the other assistants:\n" + bullets(cards) +
		"\nGive a complete answer to the question, using the knowledge above."
}

func newKnowledgeCard(_ context.Context, pool []Member, p Params) (Method, error) {
	var q KnowledgeCardParams
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("knowledge-card: %w", err)
	}
	ans, err := pickModel(pool, q.Answerer, q.DevScores, "knowledge-card answerer")
	if err != nil {
		return nil, err
	}
	m := &textMethod{name: "knowledge-card", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		qs := question(x.req)
		calls := make([]call, len(pool))
		for i := range pool {
			calls[i] = call{Member: i, Prompt: knowledgePrompt(qs)}
		}
		cards, err := x.ask(1, "knowledge", calls)
		if err != nil {
			return "", err
		}
		if q.ExcludeSelf {
			cards = others(cards, ans)
		}
		out, err := x.ask(2, "answer", []call{{Member: ans, Prompt: answerWithKnowledgePrompt(qs, cards)}})
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	return m, nil
}

// Topology returns MoCo's adjacency matrix for a structure type over n
// models: adj[i][j] = 1 when model j sees model i's answer. The star is
// MoCo's: model 0 linked with every other, and the others in a ring.
func Topology(kind string, n int, matrix [][]int) ([][]int, error) {
	adj := make([][]int, n)
	for i := range adj {
		adj[i] = make([]int, n)
	}
	link := func(a, b int) { adj[a][b], adj[b][a] = 1, 1 }
	switch kind {
	case "complete":
		for i := range n {
			for j := range n {
				if i != j {
					adj[i][j] = 1
				}
			}
		}
	case "tree":
		for i := range n {
			for _, c := range []int{2*i + 1, 2*i + 2} {
				if c < n {
					link(i, c)
				}
			}
		}
	case "chain":
		for i := 0; i+1 < n; i++ {
			link(i, i+1)
		}
	case "star":
		for i := 1; i < n; i++ {
			link(0, i)
		}
		for i := 1; i+1 < n; i++ {
			link(i, i+1)
		}
		// The rim's ends close the ring. With two models MoCo's star
		// links model 1 to itself (it then reads its own answer as a
		// neighbour's); here there is no rim to close.
		if n > 2 {
			link(1, n-1)
		}
	case "circle":
		for i := range n {
			link(i, (i+1)%n)
		}
	case "other":
		if len(matrix) != n {
			return nil, inputErrorf("structure_matrix has %d rows for %d models", len(matrix), n)
		}
		for i, row := range matrix {
			if len(row) != n {
				return nil, inputErrorf("structure_matrix row %d has %d entries for %d models", i, len(row), n)
			}
			for j, v := range row {
				if v != 0 && v != 1 {
					return nil, inputErrorf("structure_matrix[%d][%d] is %d; entries are 0 or 1", i, j, v)
				}
				adj[i][j] = v
			}
		}
	default:
		return nil, inputErrorf("unknown structure_type %q (want chain, tree, star, circle, complete or other)", kind)
	}
	if kind != "other" && matrix != nil {
		return nil, inputErrorf("structure_matrix is only read with structure_type other, not %s", kind)
	}
	return adj, nil
}

func structurePrompt(q, own string, neighbours []string) string {
	var b strings.Builder
	b.WriteString("Task: " + q + "\n")
	b.WriteString("Update your response using your previous response and those of other AI assistants.\n")
	b.WriteString("Your previous response: " + own + "\n")
	b.WriteString("The other assistants' responses:\n")
	for i, t := range neighbours {
		fmt.Fprintf(&b, "Assistant %d: %s\n", i+1, t)
	}
	b.WriteString("\nWeigh the responses above carefully and give your updated response.")
	return b.String()
}

func newStructure(_ context.Context, pool []Member, p Params) (Method, error) {
	q := StructureParams{Rounds: 3, Structure: "star"}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("structure: %w", err)
	}
	if q.Rounds < 1 {
		return nil, inputErrorf("structure: num_rounds must be at least 1, got %d", q.Rounds)
	}
	adj, err := Topology(q.Structure, len(pool), q.Matrix)
	if err != nil {
		return nil, fmt.Errorf("structure: %w", err)
	}
	final, err := pickModel(pool, q.Final, q.DevScores, "structure final")
	if err != nil {
		return nil, err
	}
	m := &textMethod{name: "structure", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		qs := question(x.req)
		texts, err := x.answers(len(pool))
		if err != nil {
			return "", err
		}
		for r := 2; r <= q.Rounds; r++ {
			var rc []call
			var who []int
			for j := range pool {
				var nb []string
				for i := range pool {
					if adj[i][j] == 1 {
						nb = append(nb, texts[i])
					}
				}
				if len(nb) == 0 {
					continue // no in-neighbours: the previous answer stands
				}
				rc = append(rc, call{Member: j, Prompt: structurePrompt(qs, texts[j], nb)})
				who = append(who, j)
			}
			out, err := x.ask(r, "update", rc)
			if err != nil {
				return "", err
			}
			texts = slices.Clone(texts)
			for k, j := range who {
				texts[j] = out[k]
			}
		}
		x.note(q.Rounds, "final", pool[final].Name, texts[final], "the final model's last answer")
		return texts[final], nil
	}
	return m, nil
}
