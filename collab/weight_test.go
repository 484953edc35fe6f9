package collab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// TestWeightMethod: a linear merge of one model with weight 1 is that
// model (same greedy answers as the model itself, the independent
// reference); the merge is made once and reused from the cache; bad
// parameters fail before merging.
func TestWeightMethod(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	l, err := LoadLocal(add, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pool := []Member{l.Member()}
	cache := t.TempDir()
	ctx := context.Background()
	m, err := New(ctx, "linear", pool, Params{"cache_dir": cache})
	if err != nil {
		t.Fatal(err)
	}
	defer m.(interface{ Close() error }).Close()
	if m.Level() != LevelWeight {
		t.Errorf("level %s", m.Level())
	}
	reqs := []Request{{Prompt: "Q: 289+623=\nA:", MaxTokens: 8}, {Prompt: "Q: reverse fkru\nA:", MaxTokens: 8}}
	got, err := m.Generate(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := l.Generate(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if got[i].Text != want[i].Text {
			t.Errorf("request %d: merged %q, model %q", i, got[i].Text, want[i].Text)
		}
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 1 {
		t.Fatalf("cache holds %d entries", len(ents))
	}
	st, _ := os.Stat(filepath.Join(cache, ents[0].Name(), "config.json"))
	m2, err := New(ctx, "linear", pool, Params{"cache_dir": cache})
	if err != nil {
		t.Fatal(err)
	}
	m2.(interface{ Close() error }).Close()
	st2, _ := os.Stat(filepath.Join(cache, ents[0].Name(), "config.json"))
	if !st.ModTime().Equal(st2.ModTime()) {
		t.Error("the merge was made again instead of reused")
	}
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{"cache_dir": cache, "densty": 0.5}, "densty"},
		{Params{"cache_dir": cache, "base": "nobody"}, "nobody"},
		{Params{"cache_dir": cache, "weights": []any{1.0, 2.0}}, "2 weights for 1 models"},
		{Params{"cache_dir": cache, "density": "high"}, "density"},
	} {
		if _, err := New(ctx, "linear", pool, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.p, err, c.want)
		}
	}
}

// TestWeightMethodParams: a method's own parameters reach the merge from
// a collaboration's or a sweep's params, for methods whose parameters
// only they read (sce's select_topk, karcher's max_iter and tol,
// ramplus_tl's r and alpha, nuslerp's flags); a parameter the method does
// not read is refused by the merge, naming it.
func TestWeightMethodParams(t *testing.T) {
	dir := testutil.Shared(t, "models")
	var pool []Member
	for _, name := range []string{"skills-base", "skills-add", "skills-rev"} {
		l, err := LoadLocal(filepath.Join(dir, name), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		pool = append(pool, l.Member())
	}
	base := pool[0].Name
	ctx := context.Background()
	for _, c := range []struct {
		method string
		p      Params
		want   string // "" when it must merge
	}{
		{"sce", Params{"base": base, "select_topk": 0.5}, ""},
		{"karcher", Params{"max_iter": 3, "tol": 1e-4}, ""},
		{"ramplus_tl", Params{"base": base, "r": 0.3, "alpha": 0.5, "epsilon": 1e-6}, ""},
		{"nuslerp", Params{"base": base, "nuslerp_row_wise": true, "weights": []any{0.5, 0.5}}, ""},
		{"ties", Params{"base": base, "select_topk": 0.5}, "parameter select_topk is not read by ties (its parameters: density, int8_mask"},
		{"arcee_fusion", Params{"base": base, "t": 0.5}, "parameter t is not read by arcee_fusion (it reads none)"},
	} {
		c.p["cache_dir"] = t.TempDir()
		m, err := New(ctx, c.method, pool, c.p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %v: %v", c.method, c.p, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %v: error %v, want one naming %q", c.method, c.p, err, c.want)
		}
		if err == nil {
			m.(interface{ Close() error }).Close()
		}
	}
}
