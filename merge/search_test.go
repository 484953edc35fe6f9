package merge

import (
	"context"
	"math"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

func vec(name string, v ...float32) Input {
	return mem(name, f32t("model.layers.0.w", []int{len(v)}, v...))
}

// toward scores a model by minus its squared distance to target.
func toward(t *testing.T, target ...float32) Scorer {
	return func(src safetensors.Source) (float64, error) {
		x := values(t, src, "model.layers.0.w")
		var d float64
		for i := range x {
			e := float64(x[i] - target[i])
			d += e * e
		}
		return -d, nil
	}
}

func TestGreedySoup(t *testing.T) {
	ms := []Input{vec("a", 0), vec("b", 2), vec("c", 10)}
	r, err := GreedySoup(context.Background(), ms, toward(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	// a and b tie at -1; their soup (1) scores 0 and is kept; adding c (avg 4) scores -9.
	near(t, "soup", values(t, r.Src, "model.layers.0.w"), []float32{1}, 1e-6)
	if r.Score != 0 || r.Evals != 5 || len(r.Chosen) != 2 || r.Weights[2] != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestExPO(t *testing.T) {
	r, err := ExPO(context.Background(), []Input{vec("src", 1), vec("tgt", 2)}, ExPOPair, 0, []float64{0.5, 1, 2}, toward(t, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Alpha != 2 || r.Score != 0 {
		t.Fatalf("pair: %+v", r)
	}
	r, err = ExPO(context.Background(), []Input{vec("a", 0), vec("b", 1), vec("c", 3)}, ExPOWorstToBest, 0, []float64{0.5, 2.0 / 3}, toward(t, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "worst_to_best", values(t, r.Src, "model.layers.0.w"), []float32{5}, 1e-5) // 3 + 2/3*(3-0)
	// top-1/bottom-1 of four, k=2: top {3,1}->2, bottom {0,-1}->-0.5; 2 + 1*(2.5) = 4.5.
	r, err = ExPO(context.Background(), []Input{vec("a", 0), vec("b", 1), vec("c", 3), vec("d", -1)}, ExPOTopKBottomK, 2, []float64{1}, toward(t, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "topk_bottomk", values(t, r.Src, "model.layers.0.w"), []float32{4.5}, 1e-5)
	// Extrapolating away from a target that is already best: alpha 0 wins
	// (every alpha on offer moves away from it).
	r, err = ExPO(context.Background(), []Input{vec("src", 1), vec("tgt", 2)}, ExPOPair, 0, []float64{0.3, 1}, toward(t, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Alpha != 0 || r.Score != 0 || r.Evals != 3 {
		t.Fatalf("alpha 0 not among the candidates: %+v", r)
	}
	near(t, "alpha 0", values(t, r.Src, "model.layers.0.w"), []float32{2}, 0)
	r, err = ExPO(context.Background(), []Input{vec("src", 1), vec("tgt", 2)}, ExPOPair, 0, []float64{0.3}, toward(t, 2), nil)
	if err != nil || r.Alpha != 0 {
		t.Fatalf("one alpha with a scorer: %+v, %v", r, err)
	}
	if _, err := ExPO(context.Background(), []Input{vec("a", 0)}, ExPOPair, 0, nil, nil, nil); err == nil {
		t.Error("one model: no error")
	}
}

func TestDareTiesSearch(t *testing.T) {
	base := vec("base", 0)
	// Density 1 keeps every delta: the merge is w1*1 + w2*3, best at w2 = 0.75.
	r, err := DareTiesSearch(context.Background(), base, []Input{vec("a", 1), vec("b", 3)}, PSOOptions{Density: 1, Iterations: 8, Seed: 1}, toward(t, 2.5), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Score < -0.25 { // uniform weights score -(2-2.5)^2
		t.Fatalf("worse than uniform: %+v", r)
	}
	if r.Score < -1e-3 || math.Abs(r.Weights[1]-0.75) > 0.02 {
		t.Errorf("weights %v, score %v; want about [0.25 0.75]", r.Weights, r.Score)
	}
}

func TestModelSwarms(t *testing.T) {
	ms := []Input{vec("a", 0, 0, 0), vec("b", 1, 3, 1), vec("c", 4, 2, 0)}
	score := toward(t, 2, 2, 2)
	var bestInput float64 = math.Inf(-1)
	for _, m := range ms {
		s, _ := score(m.Src)
		bestInput = math.Max(bestInput, s)
	}
	r, err := ModelSwarms(context.Background(), ms, SwarmOptions{Seed: 1}, score, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Score <= bestInput {
		t.Errorf("swarm %v did not beat the best input %v", r.Score, bestInput)
	}
	if got, _ := score(r.Src); got != r.Score {
		t.Errorf("result scores %v, reported %v", got, r.Score)
	}
	if r.Evals > 3*11 {
		t.Errorf("%d evaluations for 3 particles and 10 iterations", r.Evals)
	}
	if _, err := ModelSwarms(context.Background(), ms[:1], SwarmOptions{}, score, nil); err == nil {
		t.Error("one model: no error")
	}
}

func TestLoraHub(t *testing.T) {
	a := &Adapter{Dir: "a", R: 1, Scale: 2, Targets: []string{"model.layers.0.w"},
		A: map[string][]float32{"model.layers.0.w": {1}}, B: map[string][]float32{"model.layers.0.w": {1}},
		shapeA: map[string][2]int{"model.layers.0.w": {1, 1}}}
	base := safetensors.NewMemSource([]*safetensors.Tensor{f32t("model.layers.0.w", []int{1, 1}, 1)})
	// W = 1 + 2*w^2; the target 1 + 2*1.44 is reached at |w| = 1.2.
	score := func(src safetensors.Source) (float64, error) {
		x := values(t, src, "model.layers.0.w")[0]
		d := float64(x) - (1 + 2*1.44)
		return -d * d, nil
	}
	r, err := LoraHub(context.Background(), base, []*Adapter{a}, LoraHubOptions{Budget: 80, Seed: 1}, score, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(math.Abs(r.Weights[0])-1.2) > 0.05 || r.Evals != 80 {
		t.Errorf("weights %v after %d evaluations, want |w| about 1.2", r.Weights, r.Evals)
	}
}

// TestLoraHubPaperDefaults: the search starts from zero weights (the base
// model), penalizes 0.05*mean|w|, scores 40 candidates and keeps the
// weights in [-1.5, 1.5]; the earlier ES from uniform weights is an option.
func TestLoraHubPaperDefaults(t *testing.T) {
	mk := func(dir string) *Adapter {
		return &Adapter{Dir: dir, R: 1, Scale: 1, Targets: []string{"model.layers.0.w"},
			A: map[string][]float32{"model.layers.0.w": {1}}, B: map[string][]float32{"model.layers.0.w": {1}},
			shapeA: map[string][2]int{"model.layers.0.w": {1, 1}}}
	}
	base := safetensors.NewMemSource([]*safetensors.Tensor{f32t("model.layers.0.w", []int{1, 1}, 0)})
	var first []float32
	var seen []float32
	score := func(src safetensors.Source) (float64, error) {
		x := values(t, src, "model.layers.0.w")
		if first == nil {
			first = append([]float32(nil), x...)
		}
		seen = append(seen, x[0])
		return 0, nil // every candidate scores the same: only the penalty differs
	}
	r, err := LoraHub(context.Background(), base, []*Adapter{mk("a"), mk("b")}, LoraHubOptions{Seed: 1}, score, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != 0 {
		t.Errorf("first candidate W = %v, want the base (zero weights)", first)
	}
	if r.Evals != 40 || r.Weights[0] != 0 || r.Weights[1] != 0 {
		t.Errorf("%d evaluations, weights %v; want 40 and zero (the penalty decides)", r.Evals, r.Weights)
	}
	for _, v := range seen { // W = (w_a + w_b)^2 with |w| <= 1.5
		if v > 9+1e-5 {
			t.Fatalf("weights left [-1.5, 1.5]: W = %v", v)
		}
	}
	first = nil
	r, err = LoraHub(context.Background(), base, []*Adapter{mk("a"), mk("b")}, LoraHubOptions{Seed: 1, Optimizer: LoraHubES, Budget: 5}, score, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != 1 || r.Evals != 5 { // uniform 1/2 + 1/2
		t.Errorf("es: first W %v, %d evaluations", first, r.Evals)
	}
	if _, err := LoraHub(context.Background(), base, []*Adapter{mk("a")}, LoraHubOptions{Optimizer: "ngopt"}, score, nil); err == nil {
		t.Error("unknown optimizer accepted")
	}
	for _, c := range []struct{ x, want float64 }{{0.5, 0.5}, {1.7, 1.3}, {-1.9, -1.1}, {3.5, -0.5}, {6.5, 0.5}} {
		if got := bounce(c.x, 1.5); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("bounce(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}
