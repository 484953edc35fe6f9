package bench

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// TestDevScorerCancelledWithinCandidate: a search scoring one candidate
// stops inside that candidate's dev evaluation when its context is
// cancelled (not only between candidates), and returns the context's
// error rather than a score over the items done.
func TestDevScorerCancelledWithinCandidate(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	dir := filepath.Join(models, "skills-base")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ds, err := LoadDataset(filepath.Join(data, "skills_mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{MetricAccuracy, MetricNLL} {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		o := NLLOptions{Options: Options{N: 20, Progress: func(int, int, int) { calls++; cancel() }}, AnswerPrefix: " ", AppendEOS: true}
		v, err := DevScorer(ctx, cfg, tok, ds, "dev", metric, o, 8)(src)
		cancel()
		if !errors.Is(err, context.Canceled) || v != 0 {
			t.Fatalf("%s: cancelled after the first item: score %v, err %v; want context.Canceled", metric, v, err)
		}
		if calls != 1 {
			t.Errorf("%s: %d items reported after the cancel, want the evaluation to stop at once", metric, calls)
		}
		// A live context scores all 20 items.
		o.Progress = nil
		if v, err := DevScorer(context.Background(), cfg, tok, ds, "dev", metric, o, 8)(src); err != nil || v == 0 {
			t.Errorf("%s: live context: %v, %v", metric, v, err)
		}
	}
}
