package main

import (
	"context"
	"strings"
	"testing"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/internal/testutil"
)

// TestRun: the skills family answers 289+623 (= 912, by hand) through the
// registry's fusion and contrastive methods.
func TestRun(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	for _, tc := range []struct {
		method string
		p      collab.Params
	}{{"fusion", nil}, {"contrastive", collab.Params{"alpha": 0.5}}} {
		var b strings.Builder
		if err := run(context.Background(), tc.method, tc.p, []string{add, rev}, "Q: 289+623=\nA:", 8, &b); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(b.String(), tc.method+`: " 912"`) {
			t.Errorf("%s: %q", tc.method, b.String())
		}
	}
	if err := run(context.Background(), "fusoin", nil, []string{add}, "x", 1, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("misspelt method: %v", err)
	}
}
