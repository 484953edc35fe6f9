package collab

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMLPGradients compares the analytic gradients of both losses with
// central finite differences, parameter by parameter.
func TestMLPGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([][]float32, 7)
	for i := range xs {
		xs[i] = make([]float32, 5)
		for j := range xs[i] {
			xs[i][j] = float32(rng.NormFloat64())
		}
	}
	ys := make([][]float64, len(xs))
	for i := range ys {
		ys[i] = softmax64([]float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()})
	}
	pairs := [][2]int{{0, 1}, {2, 3}, {4, 5}, {6, 0}, {1, 3}}
	for _, tc := range []struct {
		name string
		out  int
		loss lossFunc
		cfg  MLPConfig
	}{
		{"soft CE, hidden", 3, softCE(xs, ys, 0.01), MLPConfig{Hidden: 4}},
		{"soft CE, linear", 3, softCE(xs, ys, 0.01), MLPConfig{Linear: true}},
		{"pairs, hidden", 1, pairLoss(xs, pairs, 0.01), MLPConfig{Hidden: 4}},
	} {
		c := tc.cfg.withDefaults()
		m := newMLP(xs, tc.out, c)
		// Move off the small initial output weights so every term matters.
		for _, p := range m.params() {
			for j := range p {
				p[j] += 0.3 * rng.NormFloat64()
			}
		}
		g := zeroGrad(m)
		tc.loss(m, g)
		const h = 1e-6
		for i, p := range m.params() {
			for j := range p {
				old := p[j]
				p[j] = old + h
				lp := tc.loss(m, zeroGrad(m))
				p[j] = old - h
				lm := tc.loss(m, zeroGrad(m))
				p[j] = old
				num := (lp - lm) / (2 * h)
				if math.Abs(num-g[i][j]) > 1e-6*math.Max(1, math.Abs(num)) {
					t.Fatalf("%s: parameter %d/%d: analytic %g, finite difference %g", tc.name, i, j, g[i][j], num)
				}
			}
		}
	}
}

// TestMLPLearns: a classifier separates two clusters and a ranker orders
// points by their first coordinate.
func TestMLPLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var xs [][]float32
	var ys [][]float64
	for i := range 40 {
		c := i % 2
		xs = append(xs, []float32{float32(c*4-2) + float32(rng.NormFloat64()*0.5), float32(rng.NormFloat64())})
		y := []float64{0, 0}
		y[c] = 1
		ys = append(ys, y)
	}
	m, _, err := TrainClassifier(xs, ys, MLPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if argmax64(m.Output(x)) != i%2 {
			t.Fatalf("item %d misclassified", i)
		}
	}
	var pairs [][2]int
	for a := range xs {
		for b := range xs {
			if xs[a][0] > xs[b][0]+0.5 {
				pairs = append(pairs, [2]int{a, b})
			}
		}
	}
	r, _, err := TrainRanker(xs, pairs, MLPConfig{Linear: true})
	if err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for _, p := range pairs {
		if r.Output(xs[p[0]])[0] <= r.Output(xs[p[1]])[0] {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d pairs misordered", wrong, len(pairs))
	}
}
