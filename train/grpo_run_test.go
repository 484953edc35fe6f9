package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestGRPOGradAccum checks a step's gradient over 2 micro-batches of 2
// rollouts against central finite differences of the loss written out
// here from TokenLoss and forward log-probabilities, reduced as TRL
// reduces under accumulation: grpo, dr_grpo and dapo as one batch of 4,
// bnpo as the mean of the two micro-batches' token means.
func TestGRPOGradAccum(t *testing.T) {
	for _, lt := range []string{"grpo", "bnpo", "dapo", "dr_grpo"} {
		t.Run(lt, func(t *testing.T) {
			m, rs, check := tinyRollouts(t)
			o := GRPOObjective{Epsilon: 0.2, EpsilonHigh: 0.28, Beta: 0.04, Temperature: 0.7, LossType: lt, MaxCompletion: 6}
			loss := func() float64 {
				sums, lens := make([]float64, len(rs)), make([]float64, len(rs))
				for i := range rs {
					lp := m.CompletionLogps(&rs[i], 0.7)
					for j := range lp {
						l, _, _ := o.TokenLoss(lp[j], rs[i].OldLogp[j], rs[i].RefLogp[j], rs[i].Advantage)
						sums[i] += l
					}
					lens[i] = float64(len(lp))
				}
				switch lt {
				case "grpo":
					return (sums[0]/lens[0] + sums[1]/lens[1] + sums[2]/lens[2] + sums[3]/lens[3]) / 4
				case "bnpo":
					return ((sums[0]+sums[1])/(lens[0]+lens[1]) + (sums[2]+sums[3])/(lens[2]+lens[3])) / 2
				case "dapo":
					return (sums[0] + sums[1] + sums[2] + sums[3]) / (lens[0] + lens[1] + lens[2] + lens[3])
				default:
					return (sums[0] + sums[1] + sums[2] + sums[3]) / (4 * 6)
				}
			}
			grads := map[string][]float64{}
			st, err := m.grpoStepLoss(rs, o, 2, grads)
			if err != nil {
				t.Fatal(err)
			}
			if want := loss(); math.Abs(st.Loss-want) > 1e-12 {
				t.Fatalf("step loss %.15g, written out %.15g", st.Loss, want)
			}
			one, err := m.GRPOLoss(rs, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if same := math.Abs(one.Loss-st.Loss) < 1e-12; same != (lt != "bnpo") {
				t.Fatalf("loss %.15g accumulated, %.15g in one batch", st.Loss, one.Loss)
			}
			if math.Abs(one.KL-st.KL) > 1e-12 || math.Abs(one.ClipRatio-st.ClipRatio) > 1e-12 || one.Tokens != st.Tokens || one.Seen != st.Seen {
				t.Fatalf("statistics %+v accumulated, %+v in one batch", st, one)
			}
			checkGrads(t, loss, check, grads)
		})
	}
}

func grpoTestSetup(t *testing.T) (string, *tokenizer.Tokenizer, []GRPOExample, GRPOConfig) {
	t.Helper()
	dir := testutil.Shared(t, "models/skills-small")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var data []GRPOExample
	for a := 100; a < 106; a++ {
		b := (a * 37) % 900
		data = append(data, GRPOExample{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, b), Answer: fmt.Sprint(a + b)})
	}
	cfg := DefaultGRPOConfig()
	cfg.Steps, cfg.BatchSize, cfg.GradAccum, cfg.NumGenerations, cfg.MaxCompletion, cfg.LR = 5, 4, 2, 2, 6, 1e-2
	cfg.Rank, cfg.Targets, cfg.Warmup, cfg.WeightDecay = 2, []string{"q_proj", "v_proj"}, 1, 0.01
	return dir, tok, data, cfg
}

// addReward rewards a completion by its closeness to the answer, so that
// groups differ and advantages are not all zero.
func addReward(_, completion, answer string) (float64, error) {
	c := strings.TrimSpace(completion)
	n := 0
	for i := 0; i < len(c) && i < len(answer) && c[i] == answer[i]; i++ {
		n++
	}
	return float64(n) / float64(len(answer)), nil
}

// TestGRPOResume checks that a GRPO run cancelled after step 3 — in the
// middle of a batch's two iterations, with dropout, accumulation and the
// KL on, the prompt epochs wrapping — and resumed from the checkpoint the
// stop wrote ends with the adapter bytes and the step records of the run
// that never stopped; a changed setting is refused.
func TestGRPOResume(t *testing.T) {
	dir, tok, data, cfg := grpoTestSetup(t)
	cfg.NumIterations, cfg.Dropout, cfg.SaveEvery = 2, 0.1, 2
	run := func(ctx context.Context, cfg GRPOConfig, progress func(GRPOStep)) ([]byte, []GRPOStep, error) {
		m := loadModel(t, dir)
		lo, hist, err := GRPO(ctx, m, tok, data, addReward, cfg, progress)
		if lo == nil {
			return nil, hist, err
		}
		return adapterBytes(t, lo, m), hist, err
	}
	cfg.CheckpointDir = t.TempDir()
	want, straight, err := run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CheckpointDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := run(ctx, cfg, func(s GRPOStep) {
		if s.Step == 3 {
			cancel()
		}
	}); err != context.Canceled {
		t.Fatalf("cancelled run: error %v", err)
	}
	cfg.Resume = latestCheckpointIs(t, cfg.CheckpointDir, "checkpoint-3")
	got, resumed, err := run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("resumed run's adapter differs from the straight run's")
	}
	if len(resumed) != len(straight) {
		t.Fatalf("history of %d steps, want %d", len(resumed), len(straight))
	}
	for i := range straight {
		a, b := resumed[i], straight[i]
		a.Time, b.Time = 0, 0
		if a != b {
			t.Fatalf("step %d: resumed %+v, straight %+v", i+1, a, b)
		}
	}
	if straight[2].Reward != straight[3].Reward || straight[3].Reward == straight[4].Reward {
		t.Fatalf("rewards %v, %v, %v: want steps 3 and 4 on one batch, 5 on a new one", straight[2].Reward, straight[3].Reward, straight[4].Reward)
	}
	cfg.Beta = 0.1
	if _, _, err := run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "beta was 0.04, now 0.1") {
		t.Fatalf("resume with another beta: %v", err)
	}
}

// TestGRPONaNStops makes the reward NaN from step 4 on: the loss is NaN,
// the run stops naming it, no checkpoint follows, and checkpoint-2 holds
// the bytes of an unbroken run's.
func TestGRPONaNStops(t *testing.T) {
	dir, tok, data, cfg := grpoTestSetup(t)
	cfg.Steps, cfg.SaveEvery = 4, 2
	cfg.CheckpointDir = t.TempDir()
	good := cfg.CheckpointDir
	if _, _, err := GRPO(context.Background(), loadModel(t, dir), tok, data, addReward, cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.CheckpointDir = t.TempDir()
	poisoned := false
	reward := func(p, c, a string) (float64, error) {
		if poisoned {
			return math.NaN(), nil
		}
		return addReward(p, c, a)
	}
	_, hist, err := GRPO(context.Background(), loadModel(t, dir), tok, data, reward, cfg, func(s GRPOStep) { poisoned = s.Step == 3 })
	if err == nil || !strings.Contains(err.Error(), "step 4: loss NaN") || !strings.Contains(err.Error(), "last checkpoint: step 2") {
		t.Fatalf("error %v, want step 4's NaN loss named", err)
	}
	if len(hist) != 3 {
		t.Fatalf("history of %d steps, want 3", len(hist))
	}
	sameCheckpoint(t, good, cfg.CheckpointDir, "checkpoint-2")
	if _, err := os.Stat(filepath.Join(cfg.CheckpointDir, "checkpoint-4")); err == nil {
		t.Fatal("a checkpoint was written after the NaN")
	}
}

// TestGRPOGradAccumRun: 2 micro-batches of 4 completions make the steps
// of batches of 8 (the same samples, the same loss to rounding) with the
// grpo loss.
func TestGRPOGradAccumRun(t *testing.T) {
	dir, tok, data, cfg := grpoTestSetup(t)
	cfg.Steps = 3
	_, a, err := GRPO(context.Background(), loadModel(t, dir), tok, data, addReward, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BatchSize, cfg.GradAccum = 8, 1
	_, b, err := GRPO(context.Background(), loadModel(t, dir), tok, data, addReward, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Reward != b[i].Reward || a[i].CompletionLen != b[i].CompletionLen || a[i].Tokens != b[i].Tokens ||
			math.Abs(a[i].Loss-b[i].Loss) > 1e-6*math.Max(1, math.Abs(b[i].Loss)) || math.Abs(a[i].Norm-b[i].Norm) > 1e-5*b[i].Norm {
			t.Fatalf("step %d: accumulated %+v, one batch %+v", i+1, a[i], b[i])
		}
	}
	if a[0].Norm == 0 {
		t.Fatal("zero gradient: the test compares nothing")
	}
}

// TestGRPOStateCheck: a hand-edited trainer_state.json that would index
// past the data, the vocabulary or the context is refused on resume.
func TestGRPOStateCheck(t *testing.T) {
	ok := Rollout{Tokens: []int{1, 2, 3}, Prompt: 2, OldLogp: []float64{-1}}
	for _, tc := range []struct {
		name string
		st   grpoState
		err  string
	}{
		{"valid", grpoState{Order: []int{0, 5}, Batch: []Rollout{ok, {Tokens: []int{4}, Prompt: 1}}}, ""},
		{"order past the data", grpoState{Order: []int{6}}, "example 6 of 6"},
		{"negative order", grpoState{Order: []int{-1}}, "example -1 of 6"},
		{"no prompt", grpoState{Batch: []Rollout{{Tokens: []int{1}, Prompt: 0}}}, "0 prompt tokens of 1"},
		{"prompt past the tokens", grpoState{Batch: []Rollout{{Tokens: []int{1}, Prompt: 2}}}, "2 prompt tokens of 1"},
		{"past the context", grpoState{Batch: []Rollout{{Tokens: make([]int, 9), Prompt: 1}}}, "1 prompt tokens of 9"},
		{"token past the vocabulary", grpoState{Batch: []Rollout{{Tokens: []int{1, 10}, Prompt: 1}}}, "token 10 outside"},
		{"short log-probabilities", grpoState{Batch: []Rollout{{Tokens: []int{1, 2, 3}, Prompt: 1, RefLogp: []float64{0}}}}, "want 2"},
	} {
		err := tc.st.check(6, 10, 8)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}
