package collab

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// TestRegistryContrastiveRanksOnDev: the registry's contrastive, given a
// dev set, ranks the pool by dev accuracy as MoCo does (the training
// framework measured addition accuracy add 0.92 > base 0.59 > rev 0.23,
// skills_accuracy.json) and then applies MoCo's rule with k 1, which must
// answer what the explicit form add + 0.2*(add - rev) answers.
func TestRegistryContrastiveRanksOnDev(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets/skills_add.json")
	var dirs []string
	for _, n := range []string{"skills-rev", "skills-base", "skills-add"} {
		dirs = append(dirs, filepath.Join(models, n))
	}
	pool, closeAll, err := LoadPool(dirs, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	ctx := context.Background()
	m, err := New(ctx, "contrastive", pool, Params{"dev": data, "dev_n": 30, "dev_max_tokens": 8, "dev_stop": []string{"\n"}})
	if err != nil {
		t.Fatal(err)
	}
	req := []Request{{Prompt: "Q: 289+623=\nA:", MaxTokens: 8}}
	res, err := m.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	note := res[0].Trace[0].Note
	i, j, k := strings.Index(note, "best first: skills-add"), strings.Index(note, "skills-base (accuracy"), strings.Index(note, "skills-rev (accuracy")
	if res[0].Trace[0].Step != "rank" || i < 0 || !(i < j && j < k) {
		t.Errorf("ranking: %q", note)
	}
	explicit, err := New(ctx, "contrastive", []Member{pool[2], pool[0]}, Params{"experts": []int{0}, "anti": []int{1}, "alpha": 0.2})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := explicit.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != ref[0].Text || res[0].Text == "" {
		t.Errorf("MoCo's rule on the dev ranking answered %q, add + 0.2*(add - rev) %q", res[0].Text, ref[0].Text)
	}
	// Without dev, pool order is the ranking: rev first, so another answer
	// is possible, but the layout is the same rule over the given order.
	for _, c := range []struct {
		p   Params
		msg string
	}{
		{Params{"k": 2}, "k 2 needs at least 4 models"},
		{Params{"k": 0}, "k must be at least 1"},
		{Params{"rank": "nll"}, "rank needs a dev set"},
		{Params{"dev": data, "rank": "loss"}, "rank must be accuracy or nll"},
		{Params{"experts": []int{1}, "dev": data}, "give one or the other"},
		{Params{"base": 1}, "needs explicit experts or anti"},
	} {
		_, err := New(ctx, "contrastive", pool, c.p)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !errors.Is(err, ErrInput) {
			t.Errorf("%v: %v, want an input error %q", c.p, err, c.msg)
		}
	}
	// Ranking by NLL of the reference answers puts the adder first too.
	m, err = New(ctx, "contrastive", pool, Params{"dev": data, "dev_n": 30, "rank": "nll"})
	if err != nil {
		t.Fatal(err)
	}
	res, err = m.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if note := res[0].Trace[0].Note; !strings.Contains(note, "best first: skills-add (nll") {
		t.Errorf("nll ranking: %q", note)
	}
}
