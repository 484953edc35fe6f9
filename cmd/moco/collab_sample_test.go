package main

import (
	"testing"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/internal/testutil"
)

// TestCollabDevSampleMatchesBench: the collaboration methods' dev_n
// sample (collab.SampleDev) draws the same items as the evaluation's
// bench.Sample, a second implementation of the same rule, on datasets
// stratified by id prefix (skills_mix) and by category fields.
func TestCollabDevSampleMatchesBench(t *testing.T) {
	for _, name := range []string{"skills_mix", "coconot", "agieval_tiny", "mmlu_redux"} {
		path := testutil.Shared(t, "datasets/"+name+".json")
		ds, err := bench.LoadDataset(path)
		if err != nil {
			t.Fatal(err)
		}
		items, err := collab.LoadDevSet(path, "dev", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(ds.Dev) {
			t.Fatalf("%s: %d dev items, bench %d", name, len(items), len(ds.Dev))
		}
		for _, n := range []int{1, 7, 20, len(items) / 2} {
			for _, seed := range []uint64{0, 1, 42} {
				want := bench.Sample(ds.Dev, n, seed)
				got := collab.SampleDev(items, n, seed)
				if len(got) != len(want) {
					t.Fatalf("%s n=%d seed=%d: %d items, bench %d", name, n, seed, len(got), len(want))
				}
				for i := range got {
					same := got[i].ID == want[i].ID
					if want[i].ID == "" {
						same = got[i].Prompt == bench.BuildPrompt(ds.TaskType, want[i])
					}
					if !same {
						t.Errorf("%s n=%d seed=%d: item %d is %s, bench %s", name, n, seed, i, got[i].ID, want[i].ID)
						break
					}
				}
			}
		}
	}
	// 20 of skills_mix: 7, 7 and 6 of the three skills, not the first 20.
	path := testutil.Shared(t, "datasets/skills_mix.json")
	items, _ := collab.LoadDevSet(path, "dev", 0)
	count := map[string]int{}
	for _, it := range collab.SampleDev(items, 20, 0) {
		count[it.Stratum]++
	}
	if len(count) != 3 || count["id=add"] < 6 || count["id=rev"] < 6 || count["id=sort"] < 6 {
		t.Errorf("strata of 20 skills_mix dev items: %v", count)
	}
	if got := collab.SampleDev(nil, 3, 0); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
}
