package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestStratum(t *testing.T) {
	cases := []struct {
		id, raw, want string
	}{
		{"add-17", `{}`, "id=add"},
		{"social_network_0", `{}`, "id=social_network"},
		{"HumanEval/81", `{}`, "id=HumanEval"},
		{"acl_arc:validation", `{}`, "id=acl_arc"},
		{"1921", `{}`, ""},
		{"-5", `{}`, ""},
		{"1921", `{"domain": "lsat"}`, "domain=lsat"},
		{"add-1", `{"category": "Humanizing requests", "domain": "x"}`, "category=Humanizing requests"},
		{"7", `{"subject": 3}`, "subject=3"},
		{"7", `{"category": null}`, ""},
	}
	for _, c := range cases {
		it := Item{ID: c.id}
		if err := json.Unmarshal([]byte(c.raw), &it.Raw); err != nil {
			t.Fatal(err)
		}
		if got := Stratum(it); got != c.want {
			t.Errorf("Stratum(%q, %s) = %q, want %q", c.id, c.raw, got, c.want)
		}
	}
}

func items(groups ...int) []Item {
	var out []Item
	for g, n := range groups {
		for i := 0; i < n; i++ {
			out = append(out, Item{ID: fmt.Sprintf("g%d-%d", g, i)})
		}
	}
	return out
}

func count(s []Item) map[string]int {
	c := map[string]int{}
	for _, it := range s {
		c[Stratum(it)]++
	}
	return c
}

// TestSampleShares checks the proportional shares against hand-derived
// largest-remainder allocations.
func TestSampleShares(t *testing.T) {
	cases := []struct {
		groups []int
		n      int
		want   [][]int // acceptable share vectors (ties go either way)
	}{
		{[]int{34, 34, 34}, 20, [][]int{{7, 7, 6}, {7, 6, 7}, {6, 7, 7}}},
		{[]int{60, 30, 10}, 10, [][]int{{6, 3, 1}}},
		{[]int{5, 3, 2}, 5, [][]int{{3, 1, 1}, {2, 2, 1}}}, // 2.5, 1.5, 1
		{[]int{98, 1, 1}, 3, [][]int{{3, 0, 0}}},           // 2.94, 0.03, 0.03
		{[]int{1, 1, 1}, 1, [][]int{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}},
		{[]int{1, 1, 1, 1}, 2, [][]int{{1, 1, 0, 0}, {1, 0, 1, 0}, {1, 0, 0, 1}, {0, 1, 1, 0}, {0, 1, 0, 1}, {0, 0, 1, 1}}},
	}
	for _, c := range cases {
		in := items(c.groups...)
		seenShares := map[string]bool{}
		for seed := uint64(0); seed < 20; seed++ {
			s := Sample(in, c.n, seed)
			if len(s) != c.n {
				t.Fatalf("%v n=%d: %d items", c.groups, c.n, len(s))
			}
			cnt := count(s)
			got := make([]int, len(c.groups))
			for g := range got {
				got[g] = cnt[fmt.Sprintf("id=g%d", g)]
			}
			ok := false
			for _, w := range c.want {
				if fmt.Sprint(w) == fmt.Sprint(got) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%v n=%d seed %d: shares %v, want one of %v", c.groups, c.n, seed, got, c.want)
			}
			seenShares[fmt.Sprint(got)] = true
			// dataset order kept, no repeats
			pos := map[string]int{}
			for i, it := range in {
				pos[it.ID] = i
			}
			for i := 1; i < len(s); i++ {
				if pos[s[i].ID] <= pos[s[i-1].ID] {
					t.Fatalf("%v seed %d: order or repeat at %d: %v", c.groups, seed, i, s)
				}
			}
		}
		if len(c.want) > 1 && len(seenShares) < 2 {
			t.Errorf("%v n=%d: ties always broken the same way over 20 seeds: %v", c.groups, c.n, seenShares)
		}
	}
}

func TestSampleAllAndDeterminism(t *testing.T) {
	in := items(4, 6)
	for _, n := range []int{0, -1, 10, 11} {
		if s := Sample(in, n, 5); len(s) != 10 || s[0].ID != "g0-0" || s[9].ID != "g1-5" {
			t.Errorf("n=%d: not every item in order: %v", n, s)
		}
	}
	a, b := Sample(in, 5, 9), Sample(in, 5, 9)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("same seed, different sample")
	}
	differ := false
	for seed := uint64(1); seed < 10; seed++ {
		if fmt.Sprint(Sample(in, 5, seed)) != fmt.Sprint(a) {
			differ = true
		}
	}
	if !differ {
		t.Error("the seed does not change the sample")
	}
	if h := Head(in, 3); len(h) != 3 || h[2].ID != "g0-2" {
		t.Errorf("Head: %v", h)
	}
}

// TestSampleSkillsMix is the case: the first 20 dev items of
// skills_mix are all addition; a sample of 20 covers the three skills.
func TestSampleSkillsMix(t *testing.T) {
	ds, err := LoadDataset(filepath.Join(testutil.Shared(t, "datasets"), "skills_mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := count(Sample(ds.Dev, 20, 0))
	if c["id=add"] < 6 || c["id=rev"] < 6 || c["id=sort"] < 6 {
		t.Errorf("20 dev items of skills_mix: %v, want 6-7 of each skill", c)
	}
	r, err := EvaluateWith(ds, "dev", Options{N: 20}, func(p string) (string, error) { return "", nil })
	if err != nil {
		t.Fatal(err)
	}
	c = map[string]int{}
	for _, it := range r.Items {
		c[it.ID[:3]]++
	}
	if c["add"] > 7 || c["rev"] < 6 {
		t.Errorf("eval of 20 dev items: %v", c)
	}
}

// TestParseDatasetStrict: items that could only be scored as wrong are
// refused, naming the split, the item and the field.
func TestParseDatasetStrict(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"task_type": "exact_match", "dev": [], "test": [{"foo": 1}]}`, `split test, item 0: no "input" or "question"`},
		{`{"task_type": "exact_match", "dev": [{"id": "a-1", "input": "Q"}], "test": []}`, `split dev, item 0 (id a-1): no "output" or "answer"`},
		{`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": {"A": "x", "B": "y"}, "answer": "C"}]}`, `item 0: field "answer": "C" is not among the choices A, B`},
		{`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": ["x", "y"], "answer": "b"}, {"question": "Q", "choices": ["x"], "answer": "A"}]}`, `item 1: field "choices": 1 choices`},
		{`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": {"A": "x", "id": "y"}, "answer": "id"}]}`, `label "id" is not a capital letter`},
		{`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": 5, "answer": "A"}]}`, `field "choices": neither`},
		{`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": ["x", "y"]}]}`, `no "answer"`},
		{`{"task_type": "coding", "dev": [{"input": "def f():"}], "test": []}`, `no "test" field`},
		{`{"task_type": "f1_match", "dev": [{"input": "q", "output": null}], "test": []}`, `field "output" is null`},
		{`{"task_type": "exact_match", "dev": [{"input": "q", "output": null}], "test": []}`, `field "output" is null`},
		{`{"task_type": "noncompliance", "dev": [{"category": "x"}], "test": []}`, `no "input" or "question"`},
		{`{"task_type": "exact_match", "dev": [3], "test": []}`, `split dev, item 0: not a JSON object`},
		{`[{"input": "x"}]`, `this is a JSON array`},
		{`"x"`, `this is a JSON string`},
		{``, `this is empty`},
		{`{"task_type": 5}`, `field "task_type": a JSON number where a string is expected`},
		{`{"task_type": "exact_match", "dev": {"a": 1}}`, `field "dev": a JSON object where a list is expected`},
	}
	for _, c := range cases {
		_, err := ParseDataset([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.body, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "struct") || strings.Contains(err.Error(), "[]json")) {
			t.Errorf("%s: Go type names in %q", c.body, err)
		}
	}
	// A lower-case answer letter is fine.
	if _, err := ParseDataset([]byte(`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": ["x", "y"], "answer": "b"}]}`)); err != nil {
		t.Error(err)
	}
	// The file name is in LoadDataset's errors.
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"task_type": "exact_match", "dev": [], "test": [{"foo": 1}]}`), 0o644)
	if _, err := LoadDataset(p); err == nil || !strings.HasPrefix(err.Error(), p+": split test, item 0") {
		t.Errorf("LoadDataset: %v", err)
	}
}

// TestReferenceText: likelihood scoring refuses items with no reference
// (coconot) or a list of references (popqa).
func TestReferenceText(t *testing.T) {
	cases := []struct {
		task, raw, want, err string
	}{
		{ExactMatchTask, `{"id": 1, "input": "q", "output": "42"}`, "42", ""},
		{MultipleChoiceTask, `{"id": 1, "question": "q", "choices": ["a", "b"], "answer": "b"}`, "B", ""},
		{"noncompliance", `{"id": 7, "input": "q", "category": "x"}`, "", "item 7 has no reference"},
		{"f1_match", `{"id": 9, "input": "q", "output": "[\"football\", \"soccer\"]"}`, "", "list of 2 acceptable answers"},
		{"f1_match", `{"id": 9, "input": "q", "output": "[not json"}`, "[not json", ""},
	}
	for _, c := range cases {
		it, err := parseItem([]byte(c.raw))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReferenceText(c.task, it)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.raw, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("%s: %q, %v", c.raw, got, err)
		}
	}
}

// refused are the shared datasets (MoCo's) that LoadDataset refuses, where
// MoCo runs them, with the reason.
var refused = map[string]string{
	"tablemwp_multiple_choice.json": `split dev, item 5 (id 972): field "choices": label "id" is not a capital letter or a digit`,
	"math.json":                     `split dev, item 100 (id 403): field "output" is null`,
}

// TestRefusedDatasetsDocumented: users learn from the README, not from a
// refusal mid-sweep, which of MoCo's sets moco will not load.
func TestRefusedDatasetsDocumented(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range refused {
		if !strings.Contains(string(b), "`"+strings.TrimSuffix(name, ".json")+"`") {
			t.Errorf("the README does not say that %s is refused", name)
		}
	}
}

// TestSharedDatasetsLoad loads every shared dataset: each loads, or is
// refused with the reason: tablemwp_multiple_choice labels the fourth
// option of some items "id" instead of "D", and one math item has a null
// answer.
func TestSharedDatasetsLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("parses every shared dataset (28 MB of JSON)")
	}
	dir := testutil.Shared(t, "datasets")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Skip("no datasets")
	}
	for _, f := range files {
		ds, err := LoadDataset(f)
		name := filepath.Base(f)
		if want, ok := refused[name]; ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: err %v, want %q", name, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(ds.Dev)+len(ds.Test) == 0 {
			t.Errorf("%s: no items", name)
		}
	}
}

func FuzzParseDataset(f *testing.F) {
	f.Add([]byte(`{"task_type": "exact_match", "dev": [{"input": "q", "output": "a"}], "test": []}`))
	f.Add([]byte(`{"task_type": "multiple_choice", "dev": [], "test": [{"question": "Q", "choices": {"A": "x", "B": "y"}, "answer": "B"}]}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseDataset(b)
		if err != nil {
			return
		}
		for _, it := range append(append([]Item(nil), ds.Dev...), ds.Test...) {
			if err := CheckItem(ds.TaskType, it); err != nil {
				t.Fatalf("accepted an item CheckItem refuses: %v", err)
			}
			if ds.TaskType == MultipleChoiceTask {
				if _, ok := Score(ds.TaskType, it, Reference(ds.TaskType, it)); !ok {
					t.Fatalf("the reference %q does not score as right", Reference(ds.TaskType, it))
				}
			}
		}
	})
}
