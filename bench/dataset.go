package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
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

// ParseDataset decodes a dataset from JSON and checks that every item has
// the fields its task type needs (see CheckItem): an item that could only
// be scored as wrong is refused, with its split, index and field named.
func ParseDataset(b []byte) (*Dataset, error) {
	var raw struct {
		Dataset  string            `json:"dataset"`
		Name     string            `json:"name"`
		TaskType string            `json:"task_type"`
		Dev      []json.RawMessage `json:"dev"`
		Test     []json.RawMessage `json:"test"`
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		what := "empty"
		if len(t) > 0 {
			what = map[byte]string{'[': "a JSON array", '"': "a JSON string"}[t[0]]
			if what == "" {
				what = "not a JSON object"
			}
		}
		return nil, fmt.Errorf("a dataset is a JSON object {\"dataset\", \"task_type\", \"dev\": [...], \"test\": [...]}; this is %s", what)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, jsonError(err)
	}
	d := &Dataset{Name: raw.Dataset, TaskType: raw.TaskType}
	if d.Name == "" {
		d.Name = raw.Name
	}
	if d.TaskType == "" {
		return nil, fmt.Errorf("no task_type")
	}
	for _, sp := range []struct {
		name string
		in   []json.RawMessage
		out  *[]Item
	}{{"dev", raw.Dev, &d.Dev}, {"test", raw.Test, &d.Test}} {
		for i, r := range sp.in {
			it, err := parseItem(r)
			if err == nil {
				err = CheckItem(d.TaskType, it)
			}
			if err != nil {
				id := ""
				if it.ID != "" {
					id = fmt.Sprintf(" (id %s)", it.ID)
				}
				return nil, fmt.Errorf("split %s, item %d%s: %w", sp.name, i, id, err)
			}
			*sp.out = append(*sp.out, it)
		}
	}
	return d, nil
}

// jsonError rewords encoding/json's type errors without Go type names.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Errorf("field %q: a JSON %s where %s is expected", te.Field, te.Value, jsonKind(te.Type.Kind()))
		}
		return fmt.Errorf("a JSON %s where %s is expected", te.Value, jsonKind(te.Type.Kind()))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	return err
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Bool:
		return "true or false"
	}
	return "a number"
}

// CheckItem reports the first field an item of the task type lacks:
// exact_match needs a prompt (input or question) and a reference (output
// or answer); multiple_choice a question, two or more choices labelled by
// letters (or digits, as some ARC items) and an answer that is one of them;
// f1_match an input and an output; coding an input and a test; every other
// type an input or question.
func CheckItem(task string, it Item) error {
	has := func(k string) bool {
		v, ok := it.Raw[k]
		return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
	}
	need := func(fields ...string) error {
		for _, f := range fields {
			if !has(f) {
				what := fmt.Sprintf("no %q field", f)
				if _, ok := it.Raw[f]; ok {
					what = fmt.Sprintf("field %q is null", f)
				}
				return fmt.Errorf("%s (%s items need %s)", what, task, strings.Join(fields, " and "))
			}
		}
		return nil
	}
	prompt := func() error {
		if strings.TrimSpace(it.Input) == "" && strings.TrimSpace(it.Question) == "" {
			return fmt.Errorf("no \"input\" or \"question\" text (%s items need a prompt)", task)
		}
		return nil
	}
	switch task {
	case ExactMatchTask:
		if err := prompt(); err != nil {
			return err
		}
		if strings.TrimSpace(it.Output) == "" && strings.TrimSpace(it.Answer) == "" {
			what := "no \"output\" or \"answer\" text"
			if v, ok := it.Raw["output"]; ok && bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				what = "field \"output\" is null"
			}
			return fmt.Errorf("%s (exact_match items need a reference answer)", what)
		}
	case MultipleChoiceTask:
		if err := prompt(); err != nil {
			return err
		}
		if len(it.Choices) < 2 {
			return fmt.Errorf("field \"choices\": %d choices (multiple_choice items need at least 2)", len(it.Choices))
		}
		labels := make([]string, len(it.Choices))
		for i, c := range it.Choices {
			if len(c.Label) != 1 || !(c.Label[0] >= 'A' && c.Label[0] <= 'Z' || c.Label[0] >= '1' && c.Label[0] <= '9') {
				return fmt.Errorf("field \"choices\": label %q is not a capital letter or a digit", c.Label)
			}
			labels[i] = c.Label
		}
		a := strings.ToUpper(strings.TrimSpace(it.Answer))
		if a == "" {
			return errors.New("no \"answer\" (multiple_choice items need the letter of the right choice)")
		}
		if !slices.Contains(labels, a) {
			return fmt.Errorf("field \"answer\": %q is not among the choices %s", it.Answer, strings.Join(labels, ", "))
		}
	case "f1_match":
		return need("input", "output")
	case "coding":
		return need("input", "test")
	default:
		return prompt()
	}
	return nil
}

// ReferenceText returns the one reference text an item is scored against
// by likelihood (MeanNLL), or an error when it has none: no reference at
// all (noncompliance sets such as coconot) or a list of acceptable answers
// (f1_match sets such as popqa store a JSON list as a string).
func ReferenceText(task string, it Item) (string, error) {
	ref := Reference(task, it)
	if strings.TrimSpace(ref) == "" {
		return "", fmt.Errorf("item %s has no reference answer to score (task type %s)", it.ID, task)
	}
	var list []any
	if t := strings.TrimSpace(ref); strings.HasPrefix(t, "[") && json.Unmarshal([]byte(t), &list) == nil {
		return "", fmt.Errorf("item %s: the reference is a list of %d acceptable answers, not one text to score", it.ID, len(list))
	}
	return ref, nil
}

func parseItem(b json.RawMessage) (Item, error) {
	var it Item
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return it, errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, &it.Raw); err != nil {
		return it, jsonError(err)
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
				return it, errors.New("field \"choices\": neither an object of labelled texts nor a list of texts")
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
