package collab

import (
	"context"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

func TestSwitchProtocol(t *testing.T) {
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	pool, closeAll := skillsPool(t)
	defer closeAll()
	pool = pool[:2]
	m, err := New(context.Background(), "switch-generation", pool, Params{"dev": ds, "dev_n": 12, "dev_max_tokens": 8, "dev_stop": []string{"\n"}, "patch_tokens": 2, "epochs": 50})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q: 123+456=\nA:", MaxTokens: 16, Stop: []string{"\n"}}})
	if err != nil {
		t.Fatal(err)
	}
	var joined strings.Builder
	tr := res[0].Trace
	for i, e := range tr {
		want := "select"
		if i%2 == 1 {
			want = "patch"
			joined.WriteString(e.Text)
			if e.From != tr[i-1].Text {
				t.Errorf("patch %d written by %s, selected %s", i/2, e.From, tr[i-1].Text)
			}
			if !strings.HasPrefix(e.Input, "Q: 123+456=\nA:") {
				t.Errorf("patch %d input %q", i/2, e.Input)
			}
		}
		if e.Step != want {
			t.Fatalf("event %d is %s, want %s", i, e.Step, want)
		}
	}
	if joined.String() != res[0].Text || len(tr) < 4 {
		t.Errorf("answer %q from %d events, patches %q", res[0].Text, len(tr), joined.String())
	}
	remote := []Member{pool[0], {Name: "remote", Gen: echo{"remote"}}}
	if _, err := New(context.Background(), "switch-generation", remote, Params{"dev": ds}); err == nil || !strings.Contains(err.Error(), "remote cannot score text") {
		t.Errorf("remote member: %v", err)
	}
}
