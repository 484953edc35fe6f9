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

// CategoryFields are the item fields that name an item's category, in the
// order Stratum looks for them.
var CategoryFields = []string{"category", "subject", "domain", "task", "country"}

// Stratum is the group an item is sampled within: the first of
// CategoryFields the item has (coconot's category, agieval's domain, ...),
// else the prefix of its id before the last '-', '_', '/' or ':' ("add-17"
// is in "add", "HumanEval/81" in "HumanEval"), else "" (one group).
func Stratum(it Item) string {
	for _, k := range CategoryFields {
		if v, ok := it.Raw[k]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(bytes.TrimSpace(v))
			}
			if s != "" && s != "null" {
				return k + "=" + s
			}
		}
	}
	if i := strings.LastIndexAny(it.ID, "-_/:"); i > 0 {
		return "id=" + it.ID[:i]
	}
	return ""
}

// Sample returns a seeded sample of n items stratified by Stratum: every
// group gets its proportional share of n (largest remainders first, ties
// broken by the seed) and its items are drawn without replacement by a
// seeded shuffle, so 20 items of skills_mix hold 7, 7 and 6 of addition,
// reversal and sorting rather than the first 20 (all addition). The items
// keep their order in the dataset. n <= 0 or n >= len(items) returns every
// item in order. The same items, n and seed give the same sample.
//
// The dev-set paths (eval --n, --dev-samples, the merge searches' and the
// collaboration methods' calibration) all sample through this function.
func Sample(items []Item, n int, seed uint64) []Item {
	if n <= 0 || n >= len(items) {
		return items
	}
	r := rand.New(rand.NewPCG(seed, 0x6d6f636f))
	var order []string // groups by first appearance
	groups := map[string][]int{}
	for i, it := range items {
		k := Stratum(it)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	type share struct {
		key  string
		take int
		rem  float64
		tie  int
	}
	shares := make([]share, len(order))
	given := 0
	tie := r.Perm(len(order))
	for g, k := range order {
		exact := float64(n) * float64(len(groups[k])) / float64(len(items))
		shares[g] = share{key: k, take: int(exact), rem: exact - float64(int(exact)), tie: tie[g]}
		given += shares[g].take
	}
	byRem := make([]int, len(shares))
	for i := range byRem {
		byRem[i] = i
	}
	sort.SliceStable(byRem, func(a, b int) bool {
		sa, sb := shares[byRem[a]], shares[byRem[b]]
		if sa.rem != sb.rem {
			return sa.rem > sb.rem
		}
		return sa.tie < sb.tie
	})
	for i := 0; given < n; i++ {
		shares[byRem[i]].take++
		given++
	}
	keep := make([]bool, len(items))
	for _, s := range shares {
		idx := groups[s.key]
		for _, p := range r.Perm(len(idx))[:s.take] {
			keep[idx[p]] = true
		}
	}
	out := make([]Item, 0, n)
	for i, k := range keep {
		if k {
			out = append(out, items[i])
		}
	}
	return out
}

// Head returns the first n items (n <= 0 or n >= len(items): all), for
// reproducing a measurement made on a prefix of a split.
func Head(items []Item, n int) []Item {
	if n <= 0 || n >= len(items) {
		return items
	}
	return items[:n]
}
