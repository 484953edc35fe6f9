package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
)

// Item is one evaluation example. Exact-match sets use Input and Output;
// multiple-choice sets use Question, Choices and Answer (a letter).
type Item struct {
	ID       string
	Input    string
	Output   string
	Question string
	Choices  []Choice // in letter order
	Answer   string
	Raw      map[string]json.RawMessage // every field, for task-specific prompts
}

// Choice is one labelled option of a multiple-choice item.
type Choice struct{ Label, Text string }

// Dataset is a MoCo evaluation set: {dataset|name, task_type, dev, test}.
type Dataset struct {
	Name     string
	TaskType string // exact_match, multiple_choice, ...
	Dev      []Item
	Test     []Item
}

// LoadDataset reads a dataset JSON file.
func LoadDataset(path string) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d, err := ParseDataset(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ParseDataset decodes a dataset from JSON.
func ParseDataset(b []byte) (*Dataset, error) {
	var raw struct {
		Dataset  string            `json:"dataset"`
		Name     string            `json:"name"`
		TaskType string            `json:"task_type"`
		Dev      []json.RawMessage `json:"dev"`
		Test     []json.RawMessage `json:"test"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	d := &Dataset{Name: raw.Dataset, TaskType: raw.TaskType}
	if d.Name == "" {
		d.Name = raw.Name
	}
	if d.TaskType == "" {
		return nil, fmt.Errorf("no task_type")
	}
	for _, sp := range []struct {
		in  []json.RawMessage
		out *[]Item
	}{{raw.Dev, &d.Dev}, {raw.Test, &d.Test}} {
		for i, r := range sp.in {
			it, err := parseItem(r)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			*sp.out = append(*sp.out, it)
		}
	}
	return d, nil
}

func parseItem(b json.RawMessage) (Item, error) {
	var it Item
	if err := json.Unmarshal(b, &it.Raw); err != nil {
		return it, err
	}
	str := func(k string) string {
		v, ok := it.Raw[k]
		if !ok {
			return ""
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		return string(bytes.TrimSpace(v)) // numbers, e.g. integer ids or answers
	}
	it.ID = str("id")
	it.Input = str("input")
	it.Output = str("output")
	it.Question = str("question")
	it.Answer = str("answer")
	if c, ok := it.Raw["choices"]; ok {
		var m map[string]string
		if err := json.Unmarshal(c, &m); err != nil {
			var list []string
			if err2 := json.Unmarshal(c, &list); err2 != nil {
				return it, fmt.Errorf("choices: %w", err)
			}
			m = map[string]string{}
			for i, s := range list {
				m[string(rune('A'+i))] = s
			}
		}
		for k, v := range m {
			it.Choices = append(it.Choices, Choice{k, v})
		}
		sort.Slice(it.Choices, func(i, j int) bool { return it.Choices[i].Label < it.Choices[j].Label })
	}
	return it, nil
}

// Split returns the items of "dev" or "test".
func (d *Dataset) Split(name string) ([]Item, error) {
	switch strings.ToLower(name) {
	case "dev":
		return d.Dev, nil
	case "test":
		return d.Test, nil
	}
	return nil, fmt.Errorf("unknown split %q (want dev or test)", name)
}

// Sample returns n items: the first n when seed is 0, else n drawn without
// replacement by a seeded shuffle. n <= 0 or n >= len(items) keeps all
// (shuffled when seed is not 0).
func Sample(items []Item, n int, seed uint64) []Item {
	if n <= 0 || n > len(items) {
		n = len(items)
	}
	if seed == 0 {
		return items[:n]
	}
	idx := rand.New(rand.NewPCG(seed, 0x6d6f636f)).Perm(len(items))
	out := make([]Item, n)
	for i := range out {
		out[i] = items[idx[i]]
	}
	return out
}
