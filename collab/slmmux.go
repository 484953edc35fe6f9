package collab

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"

	"github.com/mocolab/moco/collab/extract"
)

// SLMMuxParams configures SLM-MUX (Wang et al., "SLM-MUX: Orchestrating
// Small Language Models for Reasoning", ICLR 2026, arXiv 2510.05077;
// MoCo's text_slm_mux), registered as "slm-mux". It picks one
// model per question without training: every model answers the question
// SamplesPerModel times, a model's confidence is how consistent its
// answers are, and the most confident model's majority answer is the
// output.
//
// The rules, as MoCo's:
//
//   - Answers are compared as extract.Key(Request.Task, text), the form
//     majority vote compares (MoCo compares its scorer's parsed answers).
//     An empty key is no answer.
//   - A model's confidence is the count of its most common answer over
//     the count of its answers, those with no answer left out: 5 samples
//     "12", "12", "12", "7", "" give 3/4 = 0.75. A model that never
//     answers has confidence 0. (So a model that answers once in five
//     samples has confidence 1: MoCo's rule, kept.)
//   - The model of highest confidence wins. Models tied on it are
//     separated by Tie: "dev-based" (default), the best dev score, the
//     earliest model of the pool among equal scores, and the earliest
//     tied model when no dev scores are given (a lone `moco collab` run,
//     or a sweep over a dataset without dev items) — the trace says so;
//     "model-order", the earliest tied model; "random", a tied model
//     drawn with Seed. When no model answers at all, every model ties at
//     0 and the chosen one's first sample is the text.
//
// Where moco differs from MoCo, and why:
//
//   - The returned text is the winning model's earliest sample (in draw
//     order) whose answer is its majority answer: a whole generation the
//     model wrote, so its reasoning, its wording and its finish reason go
//     together with the answer that won, and the earliest so that the
//     choice is reproducible. MoCo outputs the bare extracted answer;
//     a scorer extracting from this text finds that same answer.
//   - A model whose top answers are tied (2 "12", 2 "7") takes as its
//     majority answer the one its samples gave first; MoCo draws one at
//     random. The confidence is the same either way.
//   - Random ties draw from a generator seeded by Seed, the request's
//     seed and its question, so a request's outcome does not depend on the
//     others in its batch or on their order (MoCo draws from one stream
//     over the test set), yet differs between questions sent with one
//     seed.
//   - Sampling: the samples use the request's settings (MaxTokens, Stop,
//     Temperature, TopP), sample j with its own seed (the request's seed
//     for the first, a fixed step away for each next). MoCo always samples
//     (do_sample at its config's temperature 0.7 and top-p 0.9); a greedy
//     request (Temperature 0) would give k identical samples here, every
//     answering model confidence 1 and every decision to the tie rule, so
//     a greedy request is sampled at MoCo's temperature 0.7 and top-p 0.9
//     instead. To sample at other settings, send them in the request.
type SLMMuxParams struct {
	// SamplesPerModel is k, the samples drawn from each model per question
	// (default 5, MoCo's).
	SamplesPerModel int `json:"samples_per_model"`
	// Tie separates models of equal confidence: "dev-based" (default),
	// "model-order" or "random".
	Tie string `json:"tie"`
	// Seed seeds the random tie-break (default 42, MoCo's).
	Seed uint64 `json:"seed"`
	// TaskType extracts answers when a request carries no Task.Type:
	// exact_match (default), multiple_choice, f1_match, or anything else
	// to compare whole texts.
	TaskType string `json:"task_type"`
	// DevScores, one per pool model, break "dev-based" ties.
	DevScores []float64 `json:"dev_scores"`
}

// MoCo's sampling settings (its example configs), for greedy requests.
const (
	slmMuxTemperature = 0.7
	slmMuxTopP        = 0.9
)

func init() {
	Register(Spec{Name: "slm-mux", Level: LevelText, MinModels: 1, DevScores: true,
		Summary: "every model samples k answers; the most self-consistent model's majority answer wins (SLM-MUX)",
		New:     newSLMMux})
}

func newSLMMux(_ context.Context, pool []Member, p Params) (Method, error) {
	q := SLMMuxParams{SamplesPerModel: 5, Tie: "dev-based", Seed: 42, TaskType: extract.ExactMatch}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("slm-mux: %w", err)
	}
	if q.SamplesPerModel < 1 {
		return nil, inputErrorf("slm-mux: samples_per_model must be at least 1, got %d", q.SamplesPerModel)
	}
	switch q.Tie {
	case "dev-based", "model-order", "random":
	default:
		return nil, inputErrorf("slm-mux: tie must be dev-based, model-order or random, got %q", q.Tie)
	}
	if q.DevScores != nil && len(q.DevScores) != len(pool) {
		return nil, inputErrorf("slm-mux: %d dev scores for %d models", len(q.DevScores), len(pool))
	}
	m := &textMethod{name: "slm-mux", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) { return slmMux(x, q) }
	return m, nil
}

// slmMuxSeedStep separates the seeds of one model's samples (the golden
// ratio's 64-bit constant, so neighbouring requests' seeds do not meet).
const slmMuxSeedStep = 0x9e3779b97f4a7c15

// slmConfidence is one model's consistency over its sample answer keys:
// the index of its earliest sample giving its majority answer, that
// answer, the votes it got and the answers given (empty keys left out).
// Confidence is Votes/Answered, 0 when nothing was answered (then Sample
// is 0 and Answer empty). Equal top counts go to the answer given first.
type slmConfidence struct {
	Sample          int
	Answer          string
	Votes, Answered int
}

// Confidence is Votes/Answered, 0 for a model that gave no answer.
func (c slmConfidence) Confidence() float64 {
	if c.Answered == 0 {
		return 0
	}
	return float64(c.Votes) / float64(c.Answered)
}

// less reports whether c is less confident than d, comparing the
// fractions exactly.
func (c slmConfidence) less(d slmConfidence) bool {
	if c.Answered == 0 || d.Answered == 0 {
		return c.Answered == 0 && d.Answered != 0
	}
	return c.Votes*d.Answered < d.Votes*c.Answered
}

// slmConsistency computes a model's slmConfidence from its samples' keys.
func slmConsistency(keys []string) slmConfidence {
	count := map[string]int{}
	first := map[string]int{}
	var c slmConfidence
	for i, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := first[k]; !ok {
			first[k] = i
		}
		count[k]++
		c.Answered++
		if n := count[k]; n > c.Votes || n == c.Votes && first[k] < c.Sample {
			c.Votes, c.Answer, c.Sample = n, k, first[k]
		}
	}
	return c
}

func slmMux(x *exchange, q SLMMuxParams) (string, error) {
	if x.req.Temperature == 0 {
		x.req.Temperature, x.req.TopP = slmMuxTemperature, slmMuxTopP
	}
	task := x.req.Task
	if task.Type == "" {
		task.Type = q.TaskType
	}
	k := q.SamplesPerModel
	var calls []call
	for i := range x.pool {
		for j := range k {
			calls = append(calls, call{Member: i, Orig: true, Seed: x.req.Seed + uint64(j)*slmMuxSeedStep})
		}
	}
	texts, err := x.ask(1, "sample", calls)
	if err != nil {
		return "", err
	}
	keys := make([]string, len(texts))
	for i, t := range texts {
		keys[i] = extract.Key(task, t)
	}
	x.mu.Lock()
	first := len(x.res.Trace) - len(keys)
	for i, key := range keys {
		x.res.Trace[first+i].Note = fmt.Sprintf("sample %d: answer %q", i%k+1, key)
	}
	x.mu.Unlock()

	confs := make([]slmConfidence, len(x.pool))
	best := slmConfidence{}
	var tied []int
	for i, mb := range x.pool {
		c := slmConsistency(keys[i*k : (i+1)*k])
		confs[i] = c
		note := fmt.Sprintf("%s: no answer in %d samples, confidence 0", mb.Name, k)
		if c.Answered > 0 {
			note = fmt.Sprintf("%s: %q in %d of %d answers (%d samples), confidence %.3f", mb.Name, c.Answer, c.Votes, c.Answered, k, c.Confidence())
		}
		x.note(1, "confidence", "slm-mux", texts[i*k+c.Sample], note)
		switch {
		case i == 0 || best.less(c):
			best, tied = c, []int{i}
		case !c.less(best):
			tied = append(tied, i)
		}
	}
	win, why := slmMuxTie(x, q, tied)
	parts := make([]string, len(x.pool))
	for i, mb := range x.pool {
		parts[i] = fmt.Sprintf("%s %.3f", mb.Name, confs[i].Confidence())
	}
	c := confs[win]
	note := fmt.Sprintf("confidences %s; %s wins%s", strings.Join(parts, ", "), x.pool[win].Name, why)
	if c.Answered > 0 {
		note += fmt.Sprintf(" with %q", c.Answer)
	}
	text := texts[win*k+c.Sample]
	x.note(1, "select", "slm-mux", text, note)
	return text, nil
}

// slmMuxTie picks among the models tied on the highest confidence (in
// pool order) and says how, "" when there was no tie.
func slmMuxTie(x *exchange, q SLMMuxParams, tied []int) (int, string) {
	if len(tied) == 1 {
		return tied[0], ""
	}
	names := make([]string, len(tied))
	for i, t := range tied {
		names[i] = x.pool[t].Name
	}
	tie := "tie between " + strings.Join(names, ", ")
	switch {
	case q.Tie == "random":
		h := fnv.New64a()
		h.Write([]byte(question(x.req)))
		r := rand.New(rand.NewPCG(q.Seed, x.req.Seed^h.Sum64()))
		return tied[r.IntN(len(tied))], " (" + tie + ", drawn at random)"
	case q.Tie == "dev-based" && q.DevScores != nil:
		best := tied[0]
		for _, t := range tied[1:] {
			if q.DevScores[t] > q.DevScores[best] {
				best = t
			}
		}
		return best, fmt.Sprintf(" (%s, best on dev at %.3f)", tie, q.DevScores[best])
	case q.Tie == "dev-based":
		return tied[0], " (" + tie + ", no dev scores: the earliest in the pool)"
	}
	return tied[0], " (" + tie + ", the earliest in the pool)"
}
