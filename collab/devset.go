package collab

import (
	"context"
	"encoding/json"
	"fmt"
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
	// DevN keeps the first DevN dev items (0: all).
	DevN int `json:"dev_n"`
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
	items, err := LoadDevSet(d.Dev, "dev", d.DevN)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return items, nil
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
