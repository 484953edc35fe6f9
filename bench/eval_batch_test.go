package bench

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestGreedyBatchEqualsGreedy: evaluation through the batched decoder
// gives every item the generation, prediction and score the one-at-a-time
// greedy harness (Greedy, the engine's Session path) gives, with batches
// smaller than the item count so that items join as others finish.
func TestGreedyBatchEqualsGreedy(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	for _, tc := range []struct {
		model, data string
		maxNew, n   int
	}{
		{"skills-add", "skills_add", 16, 40},
		{"skills-sort", "skills_sort", 24, 30},
		{"stories260K", "skills_rev", 40, 12},
	} {
		dir := filepath.Join(models, tc.model)
		tok, err := tokenizer.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := engine.Load(dir, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := LoadDataset(filepath.Join(data, tc.data+".json"))
		if err != nil {
			t.Fatal(err)
		}
		o := Options{N: tc.n, Seed: 3}
		want, err := EvaluateWith(ds, "test", o, Greedy(m, tok, tc.maxNew))
		if err != nil {
			t.Fatal(err)
		}
		progress := 0
		o.Progress = func(done, total, _ int) { progress = done }
		got, err := EvaluateBatch(context.Background(), ds, "test", o, GreedyBatch(m, tok, tc.maxNew, 7))
		if err != nil {
			t.Fatal(err)
		}
		if got.N != want.N || got.Correct != want.Correct || got.Accuracy != want.Accuracy || progress != want.N {
			t.Errorf("%s on %s: batched %d/%d (progress %d), one at a time %d/%d", tc.model, tc.data, got.Correct, got.N, progress, want.Correct, want.N)
		}
		nonEmpty := 0
		for i := range want.Items {
			if got.Items[i] != want.Items[i] {
				t.Errorf("%s item %d:\nbatched %+v\nsession %+v", tc.model, i, got.Items[i], want.Items[i])
			}
			if want.Items[i].Generation != "" {
				nonEmpty++
			}
		}
		if nonEmpty == 0 {
			t.Errorf("%s: every generation is empty: nothing was compared", tc.model)
		}
		m.Close()
	}
}

// TestEvaluateBatchCancel: a run cancelled part way returns the items
// finished so far, scored, in split order, with ctx's error.
func TestEvaluateBatchCancel(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-add")
	data := testutil.Shared(t, "datasets")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ds, err := LoadDataset(filepath.Join(data, "skills_add.json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := Options{N: 40, First: true, Progress: func(done, _, _ int) {
		if done == 5 {
			cancel()
		}
	}}
	r, err := EvaluateBatch(ctx, ds, "test", o, GreedyBatch(m, tok, 16, 2))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if r.N < 5 || r.N >= 40 || len(r.Items) != r.N || r.Total != 40 {
		t.Fatalf("cancelled run: N %d, %d items, total %d", r.N, len(r.Items), r.Total)
	}
	items, _ := ds.Split("test")
	pos := map[string]int{}
	for i, it := range Head(items, 40) {
		pos[it.ID] = i
	}
	for i := 1; i < len(r.Items); i++ {
		if pos[r.Items[i].ID] <= pos[r.Items[i-1].ID] {
			t.Errorf("items out of split order: %s after %s", r.Items[i].ID, r.Items[i-1].ID)
		}
	}
	// Sequential is the same evaluation through a plain Generator.
	want, err := EvaluateWith(ds, "test", Options{N: 10, First: true}, Greedy(m, tok, 16))
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvaluateBatch(context.Background(), ds, "test", Options{N: 10, First: true}, Sequential(Greedy(m, tok, 16)))
	if err != nil || got.Correct != want.Correct || len(got.Items) != len(want.Items) {
		t.Fatalf("Sequential: %v, %d/%d vs %d/%d", err, got.Correct, len(got.Items), want.Correct, len(want.Items))
	}
}
