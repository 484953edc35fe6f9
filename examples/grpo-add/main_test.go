package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/train"
)

// TestRun: every line reads as GRPO data, its answer is the sum
// recomputed from the prompt, and no prompt is a dev or test item or
// repeated.
func TestRun(t *testing.T) {
	dataset := testutil.Shared(t, "datasets/skills_add.json")
	var b strings.Builder
	if err := run(dataset, 500, 1, &b); err != nil {
		t.Fatal(err)
	}
	items, err := train.ReadGRPO(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(dataset)
	var ds struct{ Dev, Test []struct{ Input string } }
	if err := json.Unmarshal(raw, &ds); err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, it := range append(ds.Dev, ds.Test...) {
		held[it.Input] = true
	}
	seen := map[string]bool{}
	for _, it := range items {
		var a, c int
		if _, err := fmt.Sscanf(it.Prompt, "Q: %d+%d=\nA:", &a, &c); err != nil {
			t.Fatalf("prompt %q: %v", it.Prompt, err)
		}
		if held[it.Prompt] || seen[it.Prompt] {
			t.Fatalf("prompt %q is a dataset item or a repeat", it.Prompt)
		}
		seen[it.Prompt] = true
		if it.Answer != fmt.Sprint(a+c) {
			t.Fatalf("%q: answer %q", it.Prompt, it.Answer)
		}
	}
	if len(items) != 500 {
		t.Fatalf("%d items, want 500", len(items))
	}
}
