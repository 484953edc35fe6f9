package collab

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"

	"github.com/mocolab/moco/collab/extract"
)

// DevItem is one dev-set example the trained methods learn from: the
// prompt as the models see it, the reference answer and the task.
type DevItem struct {
	ID     string
	Prompt string
	Ref    string
	Task   extract.Task
	// Stratum is the group SampleDev samples within: the first of the
	// item's category, subject, domain, task or country fields, else its
	// id's prefix before the last '-', '_', '/' or ':' ("add-17": "add").
	Stratum string
}

// LoadDevSet reads a split of a MoCo-format dataset ({dataset, task_type,
// dev, test}) into DevItems: exact-match items use input/output;
// multiple-choice items get the question, the lettered options and
// "Answer:" as their prompt (as bench.BuildPrompt writes it) and the
// answer letter as reference. n > 0 keeps the first n items.
func LoadDevSet(path, split string, n int) ([]DevItem, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var task string
	if t, ok := raw["task_type"]; ok {
		_ = json.Unmarshal(t, &task)
	}
	if task == "" {
		return nil, fmt.Errorf("%s: no task_type", path)
	}
	rs, ok := raw[split]
	if !ok {
		return nil, fmt.Errorf("%s: no %q split", path, split)
	}
	var items []map[string]any
	if err := json.Unmarshal(rs, &items); err != nil {
		return nil, fmt.Errorf("%s: split %s: %v", path, split, err)
	}
	str := func(m map[string]any, k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case nil:
			return ""
		default:
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	var out []DevItem
	for i, it := range items {
		if n > 0 && len(out) == n {
			break
		}
		d := DevItem{ID: str(it, "id"), Task: extract.Task{Type: task}}
		for _, k := range []string{"category", "subject", "domain", "task", "country"} {
			if v := str(it, k); v != "" && v != "null" {
				d.Stratum = k + "=" + v
				break
			}
		}
		if j := strings.LastIndexAny(d.ID, "-_/:"); d.Stratum == "" && j > 0 {
			d.Stratum = "id=" + d.ID[:j]
		}
		if d.ID == "" {
			d.ID = fmt.Sprint(i)
		}
		if task == extract.MultipleChoice {
			var labels []string
			ch := map[string]string{}
			switch c := it["choices"].(type) {
			case map[string]any:
				for k, v := range c {
					labels = append(labels, k)
					ch[k] = fmt.Sprint(v)
				}
				sort.Strings(labels)
			case []any:
				for j, v := range c {
					l := string(rune('A' + j))
					labels = append(labels, l)
					ch[l] = fmt.Sprint(v)
				}
			default:
				return nil, fmt.Errorf("%s: %s item %d has no choices", path, split, i)
			}
			var sb strings.Builder
			sb.WriteString(strings.TrimSpace(str(it, "question")))
			sb.WriteString("\n")
			for _, l := range labels {
				fmt.Fprintf(&sb, "%s. %s\n", l, ch[l])
				d.Task.Choices = append(d.Task.Choices, extract.Choice{Label: l, Text: ch[l]})
			}
			sb.WriteString("Answer:")
			d.Prompt = sb.String()
			d.Ref = strings.ToUpper(strings.TrimSpace(str(it, "answer")))
		} else {
			d.Prompt = str(it, "input")
			if d.Prompt == "" {
				d.Prompt = str(it, "question")
			}
			d.Ref = str(it, "output")
			if d.Ref == "" {
				d.Ref = str(it, "answer")
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the %s split is empty", path, split)
	}
	return out, nil
}

// DevConfig is the part of a trained method's parameters that says where
// its dev set is and how the pool answers it.
type DevConfig struct {
	// Dev is a MoCo-format dataset file; its dev split is the training set.
	Dev string `json:"dev"`
	// DevN draws a seeded sample of DevN dev items (DevSeed), stratified
	// by category or id prefix (0, the default: every item); see SampleDev.
	DevN    int    `json:"dev_n"`
	DevSeed uint64 `json:"dev_seed"`
	// How the pool answers the dev items: greedy by default, at most
	// DevMaxTokens tokens (default 512, MoCo's max_response_length),
	// stopping at DevStop.
	DevMaxTokens   int      `json:"dev_max_tokens"`
	DevTemperature float64  `json:"dev_temperature"`
	DevStop        []string `json:"dev_stop"`
}

func (d DevConfig) load(method string) ([]DevItem, error) {
	if d.Dev == "" {
		return nil, inputErrorf("%s is trained on a dev set: give the dev parameter (a MoCo-format dataset file)", method)
	}
	if d.DevN < 0 {
		return nil, inputErrorf("%s: dev_n must not be negative", method)
	}
	items, err := LoadDevSet(d.Dev, "dev", 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return SampleDev(items, d.DevN, d.DevSeed), nil
}

// SampleDev returns a seeded sample of n items stratified by Stratum, the
// rule of the evaluation's bench.Sample (which this package cannot import):
// every group, in order of first appearance, gets its proportional share
// of n (largest remainders first, ties broken by the seed), and its items
// are drawn by a seeded permutation; the sample keeps the dataset's order.
// So 20 items of skills_mix hold 7, 7 and 6 of addition, reversal and
// sorting rather than the first 20 (all addition). n <= 0 or n >=
// len(items) returns every item.
func SampleDev(items []DevItem, n int, seed uint64) []DevItem {
	if n <= 0 || n >= len(items) {
		return items
	}
	r := rand.New(rand.NewPCG(seed, 0x6d6f636f))
	var order []string
	groups := map[string][]int{}
	for i, it := range items {
		if _, ok := groups[it.Stratum]; !ok {
			order = append(order, it.Stratum)
		}
		groups[it.Stratum] = append(groups[it.Stratum], i)
	}
	take := make([]int, len(order))
	rem := make([]float64, len(order))
	given := 0
	tie := r.Perm(len(order))
	for g, k := range order {
		exact := float64(n) * float64(len(groups[k])) / float64(len(items))
		take[g], rem[g] = int(exact), exact-float64(int(exact))
		given += take[g]
	}
	byRem := make([]int, len(order))
	for i := range byRem {
		byRem[i] = i
	}
	sort.SliceStable(byRem, func(a, b int) bool {
		x, y := byRem[a], byRem[b]
		if rem[x] != rem[y] {
			return rem[x] > rem[y]
		}
		return tie[x] < tie[y]
	})
	for i := 0; given < n; i++ {
		take[byRem[i]]++
		given++
	}
	keep := make([]bool, len(items))
	for g, k := range order {
		idx := groups[k]
		for _, p := range r.Perm(len(idx))[:take[g]] {
			keep[idx[p]] = true
		}
	}
	out := make([]DevItem, 0, n)
	for i, k := range keep {
		if k {
			out = append(out, items[i])
		}
	}
	return out
}

func (d DevConfig) request(it DevItem) Request {
	n := d.DevMaxTokens
	if n == 0 {
		n = 512
	}
	return Request{Prompt: it.Prompt, MaxTokens: n, Temperature: d.DevTemperature, Stop: d.DevStop, Task: it.Task}
}

// DevResults is what every pool model answered on the dev set and whether
// it was right: Texts[m][i], Correct[m][i].
type DevResults struct {
	Texts   [][]string
	Correct [][]bool
}

// Accuracy is model m's share of correct dev answers.
func (r *DevResults) Accuracy(m int) float64 {
	n := 0
	for _, c := range r.Correct[m] {
		if c {
			n++
		}
	}
	return float64(n) / float64(max(1, len(r.Correct[m])))
}

// runDev answers every dev item with every pool model.
func runDev(ctx context.Context, method string, pool []Member, items []DevItem, d DevConfig) (*DevResults, error) {
	reqs := make([]Request, len(items))
	for i, it := range items {
		reqs[i] = d.request(it)
	}
	r := &DevResults{Texts: make([][]string, len(pool)), Correct: make([][]bool, len(pool))}
	for m, mb := range pool {
		res, err := mb.Gen.Generate(ctx, reqs)
		if err != nil {
			return nil, fmt.Errorf("%s: answering the dev set: model %s failed: %w", method, mb.Name, err)
		}
		if len(res) != len(reqs) {
			return nil, fmt.Errorf("%s: model %s returned %d answers to %d dev items", method, mb.Name, len(res), len(reqs))
		}
		r.Texts[m] = make([]string, len(items))
		r.Correct[m] = make([]bool, len(items))
		for i, x := range res {
			r.Texts[m][i] = x.Text
			r.Correct[m][i] = extract.Correct(items[i].Task, x.Text, items[i].Ref)
		}
	}
	return r, nil
}
