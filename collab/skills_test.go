package collab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// skillsPool loads the skills experts and the generalist.
func skillsPool(t *testing.T) ([]Member, func()) {
	var dirs []string
	for _, n := range []string{"skills-base", "skills-add", "skills-rev", "skills-sort"} {
		dirs = append(dirs, testutil.Shared(t, "models/"+n))
	}
	pool, closeAll, err := LoadPool(dirs, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pool, closeAll
}

// skillOf is an item's skill, from its id ("add-12").
func skillOf(it DevItem) string {
	s, _, _ := strings.Cut(it.ID, "-")
	return s
}

// skillsRequest is how the skills items are asked: greedy, one line.
func skillsRequest(it DevItem) Request {
	return Request{Prompt: it.Prompt, MaxTokens: 16, Stop: []string{"\n"}, Task: it.Task}
}

// accuracy runs a method over the test items and returns its accuracy.
func accuracy(t *testing.T, g Generator, items []DevItem) float64 {
	reqs := make([]Request, len(items))
	for i, it := range items {
		reqs[i] = skillsRequest(it)
	}
	res, err := g.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatalf("%s: %v", g.Name(), err)
	}
	n := 0
	for i, r := range res {
		if extract.Correct(items[i].Task, r.Text, items[i].Ref) {
			n++
		}
	}
	return float64(n) / float64(len(items))
}

// TestSkillsEndToEnd measures the trained methods on skills_mix test
// against the best single model, and the routers' confusion matrices.
// Set MOCO_SKILLS_REPORT=FILE to write the table to a file.
func TestSkillsEndToEnd(t *testing.T) {
	if testing.Short() || os.Getenv("MOCO_SKILLS_E2E") == "" {
		t.Skip("end-to-end measurement on the skills pool (about 100 s): set MOCO_SKILLS_E2E=1 to run it")
	}
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	pool, closeAll := skillsPool(t)
	defer closeAll()
	test, err := LoadDevSet(ds, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	row := func(name string, acc float64) { fmt.Fprintf(&report, "| %-26s | %.3f |\n", name, acc) }
	report.WriteString("| method on skills_mix test (201 items, greedy) | accuracy |\n|---|---|\n")
	best, bestAcc := "", 0.0
	for _, m := range pool {
		a := accuracy(t, m.Gen, test)
		row("single "+m.Name, a)
		if a > bestAcc {
			best, bestAcc = m.Name, a
		}
	}
	dev := Params{"dev": ds, "dev_max_tokens": 16, "dev_stop": []string{"\n"}, "encoder": "skills-base"}
	ctx := context.Background()
	mv, err := New(ctx, "majority-vote", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	row("majority-vote", accuracy(t, mv, test))
	var confusion strings.Builder
	for _, name := range []string{"trained-router", "graph-router"} {
		m, err := New(ctx, name, pool, dev)
		if err != nil {
			t.Fatal(err)
		}
		row(name, accuracy(t, m, test))
		r := m.(*Router)
		counts := map[string][]int{}
		for _, it := range test {
			k, err := r.Route(ctx, skillsRequest(it))
			if err != nil {
				t.Fatal(err)
			}
			s := skillOf(it)
			if counts[s] == nil {
				counts[s] = make([]int, len(pool))
			}
			counts[s][k]++
		}
		fmt.Fprintf(&confusion, "\n%s routing (rows: item skill, columns: model chosen)\n| skill |", name)
		for _, m := range pool {
			fmt.Fprintf(&confusion, " %s |", m.Name)
		}
		confusion.WriteString("\n|---|" + strings.Repeat("---|", len(pool)) + "\n")
		for _, s := range []string{"add", "rev", "sort"} {
			fmt.Fprintf(&confusion, "| %s |", s)
			for _, c := range counts[s] {
				fmt.Fprintf(&confusion, " %d |", c)
			}
			confusion.WriteString("\n")
		}
		if c := counts["add"]; name == "trained-router" && float64(c[1]) < 0.8*float64(sum(c)) {
			t.Errorf("%s sent %d of %d addition items to skills-add", name, c[1], sum(c))
		}
	}
	for _, tc := range []struct {
		label, method string
		extra         Params
	}{
		{"llm-blender (trained ranker, top-1)", "llm-blender", Params{"top_k": 1}},
		{"llm-blender (trained ranker, top-3 fused: MoCo's)", "llm-blender", nil},
		{"switch-generation (2-token patches)", "switch-generation", Params{"patch_tokens": 2}},
		{"switch-generation (25-token patches)", "switch-generation", nil},
	} {
		p := Params{}
		for k, v := range dev {
			p[k] = v
		}
		for k, v := range tc.extra {
			p[k] = v
		}
		m, err := New(ctx, tc.method, pool, p)
		if err != nil {
			t.Fatal(err)
		}
		row(tc.label, accuracy(t, m, test))
	}
	fmt.Fprintf(&report, "\nbest single model: %s (%.3f)\n", best, bestAcc)
	out := report.String() + confusion.String()
	t.Log("\n" + out)
	if f := os.Getenv("MOCO_SKILLS_REPORT"); f != "" {
		if err := os.WriteFile(filepath.Clean(f), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}
