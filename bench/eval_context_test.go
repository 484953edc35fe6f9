package bench

import (
	"context"
	"errors"
	"testing"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
)

// TestEvaluateContext: a cancelled run returns the items scored so far,
// their accuracy and the context's error; progress sees every item.
func TestEvaluateContext(t *testing.T) {
	ds := &Dataset{Name: "t", TaskType: ExactMatchTask}
	for i, out := range []string{"1", "2", "3", "4", "5", "6"} {
		ds.Test = append(ds.Test, Item{ID: string(rune('a' + i)), Input: "Q" + out, Output: out})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	gen := func(p string) (string, error) {
		calls++
		if calls == 3 {
			cancel() // the third item finishes, the fourth never starts
		}
		if calls == 2 {
			return "wrong", nil
		}
		return p[1:], nil
	}
	var progress [][3]int
	o := Options{First: true, Progress: func(d, n, c int) { progress = append(progress, [3]int{d, n, c}) }}
	r, err := EvaluateContext(ctx, ds, "test", o, gen)
	if !errors.Is(err, context.Canceled) || r == nil {
		t.Fatalf("got %v, %v; want a partial result and context.Canceled", r, err)
	}
	if r.N != 3 || r.Total != 6 || r.Correct != 2 || r.Accuracy != 2.0/3 || len(r.Items) != 3 || calls != 3 {
		t.Errorf("partial result %+v after %d calls", r, calls)
	}
	want := [][3]int{{1, 6, 1}, {2, 6, 1}, {3, 6, 2}}
	if len(progress) != 3 || progress[0] != want[0] || progress[1] != want[1] || progress[2] != want[2] {
		t.Errorf("progress %v, want %v", progress, want)
	}
	r, err = EvaluateContext(context.Background(), ds, "test", Options{First: true}, func(p string) (string, error) { return p[1:], nil })
	if err != nil || r.N != 6 || r.Accuracy != 1 || r.Total != 6 {
		t.Errorf("full run: %+v %v", r, err)
	}
}

// TestGreedyContext: a cancelled context stops greedy generation before
// its first token.
func TestGreedyContext(t *testing.T) {
	m, tok, err := embedded.Load(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g, err := GreedyContext(context.Background(), m, tok, 5)("Once upon a time"); err != nil || g == "" {
		t.Fatalf("live context: %q, %v", g, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GreedyContext(ctx, m, tok, 5)("Once upon a time"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}
