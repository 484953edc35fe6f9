package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestRun: every pair's chosen answer is the true sum (recomputed here
// from the prompt), its rejected answer differs from it, and no prompt is
// one of the dataset's dev or test items.
func TestRun(t *testing.T) {
	model := testutil.Shared(t, "models/skills-base")
	dataset := testutil.Shared(t, "datasets/skills_add.json")
	var b strings.Builder
	st, err := run(context.Background(), model, dataset, 60, 2, 1, &b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dataset)
	if err != nil {
		t.Fatal(err)
	}
	var ds struct{ Dev, Test []struct{ Input string } }
	if err := json.Unmarshal(raw, &ds); err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, it := range append(ds.Dev, ds.Test...) {
		held[it.Input] = true
	}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	n := 0
	for sc.Scan() {
		var p Pair
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		var a, c int
		if _, err := fmt.Sscanf(p.Prompt, "Q: %d+%d=\nA:", &a, &c); err != nil {
			t.Fatalf("prompt %q: %v", p.Prompt, err)
		}
		if held[p.Prompt] {
			t.Errorf("prompt %q is a dataset item", p.Prompt)
		}
		if want := fmt.Sprintf(" %d", a+c); p.Chosen != want || strings.TrimSpace(p.Rejected) == strings.TrimSpace(want) || p.Rejected == "" {
			t.Errorf("pair %+v: want chosen %q and a different, non-empty rejected", p, want)
		}
		n++
	}
	// skills-base adds right a bit over half the time (0.59 on the test
	// items): some answers, not all, must become pairs.
	// With 2 samples, some problems answered right greedily give pairs.
	if n != st.pairs || n <= st.problems-st.right || st.right == 0 || st.problems != 60 {
		t.Fatalf("%d lines, stats %+v", n, st)
	}
	t.Logf("%d of %d answered right, %d pairs", st.right, st.problems, n)
}
