package decode

import (
	"math"
	"path/filepath"
	"testing"
)

func TestHeadGradientFiniteDifferences(t *testing.T) {
	d := &HeadData{
		X: [][]float32{{0.5, -1, 2}, {1.5, 0.2, -0.3}, {-0.7, 0.9, 0.1}, {0.3, 0.3, 0.3}},
		Y: []float64{1, 0, 0, 1},
	}
	hd := &Head{W: []float64{0.3, -0.2, 0.1}, B: -0.4}
	const pw, l2, h = 2.5, 0.01, 1e-6
	_, gW, gB := hd.Loss(d, pw, l2)
	for j := range hd.W {
		orig := hd.W[j]
		hd.W[j] = orig + h
		lp, _, _ := hd.Loss(d, pw, l2)
		hd.W[j] = orig - h
		lm, _, _ := hd.Loss(d, pw, l2)
		hd.W[j] = orig
		if fd := (lp - lm) / (2 * h); math.Abs(fd-gW[j]) > 1e-7 {
			t.Errorf("dL/dW[%d] = %v, finite difference %v", j, gW[j], fd)
		}
	}
	orig := hd.B
	hd.B = orig + h
	lp, _, _ := hd.Loss(d, pw, l2)
	hd.B = orig - h
	lm, _, _ := hd.Loss(d, pw, l2)
	hd.B = orig
	if fd := (lp - lm) / (2 * h); math.Abs(fd-gB) > 1e-7 {
		t.Errorf("dL/dB = %v, finite difference %v", gB, fd)
	}
	// Hand value of the loss at W=0, B=0: every p = 1/2, so the loss is
	// log 2 * mean(c) = log 2 * (2.5+1+1+2.5)/4.
	zero := &Head{W: make([]float64, 3)}
	if l, _, _ := zero.Loss(d, pw, 0); math.Abs(l-math.Ln2*7/4) > 1e-12 {
		t.Errorf("loss at zero = %v, want %v", l, math.Ln2*7/4)
	}
}

func TestTrainHeadSeparable(t *testing.T) {
	// Label 1 iff x0 > x1 (a few positives among many negatives).
	d := &HeadData{}
	for i := range 60 {
		a, b := float32(i%7)/3, float32(i%5)/2
		y := 0.0
		if a > b+0.3 {
			y = 1
		}
		d.X = append(d.X, []float32{a, b})
		d.Y = append(d.Y, y)
	}
	hd, err := TrainHead(d, HeadTrainConfig{Objective: PseudoLabelObjective, Epochs: 2000, LR: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for i, x := range d.X {
		if (hd.Prob(x) > 0.5) != (d.Y[i] > 0.5) {
			wrong++
		}
	}
	if wrong > 3 {
		t.Errorf("trained head misclassifies %d of %d separable points", wrong, len(d.X))
	}
	if _, err := TrainHead(&HeadData{}, HeadTrainConfig{}); err == nil {
		t.Error("empty training set accepted")
	}
}

func TestHeadSaveLoad(t *testing.T) {
	hd := &Head{W: []float64{0.25, -1.5, 3}, B: 0.125}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	if err := hd.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.B != hd.B || len(got.W) != 3 || got.W[1] != -1.5 {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := LoadHead(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestCoLLMCombine(t *testing.T) {
	base := logitsOf(0.6, 0.3, 0.1)
	asst := logitsOf(0.1, 0.2, 0.7)
	// Hidden state [1] (fakeSession with one token fed); z = 2*1 - 1 = 1.
	sess := &fakeSession{hidden: func([]int) []float32 { return []float32{1} }}
	p := sigmoid(1) // 0.731
	run := func(c *CoLLM, index int) ([]float64, *Step) {
		s := &Step{Index: index, Logits: [][]float32{base, asst}, sessions: []Session{sess, sess}, Defer: math.NaN()}
		dst := make([]float32, 3)
		if err := c.Combine(dst, s); err != nil {
			t.Fatal(err)
		}
		return softmax64(dst), s
	}
	head := &Head{W: []float64{2}, B: -1}
	got, s := run(&CoLLM{Base: 0, Assistant: 1, Head: head, Threshold: DefaultThreshold}, 0)
	if s.Source != "assistant" || math.Abs(s.Defer-p) > 1e-12 || !near(got, []float64{0.1, 0.2, 0.7}, 1e-6) {
		t.Errorf("defer: source %s p %v dist %v", s.Source, s.Defer, got)
	}
	if _, s := run(&CoLLM{Base: 0, Assistant: 1, Head: head, Threshold: 0.8}, 0); s.Source != "base" {
		t.Errorf("p %.3f < threshold 0.8 deferred", p)
	}
	// Threshold 0 defers every token, even at p = 0.269 < DefaultThreshold.
	unsure := &Head{W: []float64{-2}, B: 1}
	if _, s := run(&CoLLM{Base: 0, Assistant: 1, Head: unsure, Threshold: 0}, 0); s.Source != "assistant" {
		t.Errorf("threshold 0: p %.3f not deferred", s.Defer)
	}
	// Warm-up over 15 tokens from 1 to 0.5: at step 5 the threshold is 5/6 > p,
	// at step 10 it is 2/3 < p.
	c := &CoLLM{Base: 0, Assistant: 1, Head: head, Threshold: DefaultThreshold, WarmUp: 15}
	if _, s := run(c, 5); s.Source != "base" {
		t.Error("warm-up step 5 deferred")
	}
	if _, s := run(c, 10); s.Source != "assistant" {
		t.Error("warm-up step 10 did not defer")
	}
	got, _ = run(&CoLLM{Base: 0, Assistant: 1, Head: head, Mode: Compose}, 0)
	want := []float64{(1-p)*0.6 + p*0.1, (1-p)*0.3 + p*0.2, (1-p)*0.1 + p*0.7}
	if !near(got, want, 1e-6) {
		t.Errorf("compose = %v, want %v", got, want)
	}
	s2 := &Step{Logits: [][]float32{base, asst}, sessions: []Session{sess, sess}}
	if err := (&CoLLM{Base: 0, Assistant: 1, Head: &Head{W: []float64{1, 2}}}).Combine(make([]float32, 3), s2); err == nil {
		t.Error("head of the wrong size accepted")
	}
}

func TestCollectHeadData(t *testing.T) {
	// Base always predicts 0; assistant predicts the last token + 1.
	base := fixed(0.8, 0.1, 0.1)
	asst := markov([][]float64{{0.1, 0.8, 0.1}, {0.1, 0.1, 0.8}, {0.8, 0.1, 0.1}})
	d, err := CollectHeadData(base, asst, 3, []HeadPair{{Prompt: []int{0}, Reference: []int{1, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	// ref 1: asst argmax 1 (right), base 0 (wrong) -> 1
	// ref 0 after 1: asst 2 (wrong) -> 0
	// ref 0 after 0: asst 1, base 0 (right) -> 0
	want := []float64{1, 0, 0}
	for i, y := range want {
		if d.Y[i] != y {
			t.Fatalf("labels %v, want %v", d.Y, want)
		}
	}
	if len(d.X) != 3 || d.X[1][0] != 2 { // fake hidden = history length
		t.Fatalf("inputs %v", d.X)
	}
	// The reference tokens' probabilities, read off the tables.
	wantB, wantA := []float64{0.1, 0.8, 0.8}, []float64{0.8, 0.1, 0.1}
	for i := range wantB {
		if math.Abs(d.LogPBase[i]-math.Log(wantB[i])) > 1e-6 || math.Abs(d.LogPAsst[i]-math.Log(wantA[i])) > 1e-6 {
			t.Fatalf("log-probabilities %v %v, want logs of %v %v", d.LogPBase, d.LogPAsst, wantB, wantA)
		}
	}
}

// TestMarginalLoss checks the marginal objective against a direct float64
// evaluation of -mean log((1-p) P_base + p P_assistant) and its gradient
// against finite differences.
func TestMarginalLoss(t *testing.T) {
	d := &HeadData{
		X:        [][]float32{{0.5, -1, 2}, {1.5, 0.2, -0.3}, {-0.7, 0.9, 0.1}, {0.3, 0.3, 0.3}},
		Y:        make([]float64, 4),
		LogPBase: []float64{math.Log(0.1), math.Log(0.7), math.Log(0.02), -40},
		LogPAsst: []float64{math.Log(0.6), math.Log(0.05), math.Log(0.3), math.Log(0.5)},
	}
	hd := &Head{W: []float64{0.3, -0.2, 0.1}, B: -0.4}
	const l2, h = 0.01, 1e-6
	direct := 0.0
	for i, x := range d.X {
		z := hd.B
		for j, v := range x {
			z += hd.W[j] * float64(v)
		}
		p := 1 / (1 + math.Exp(-z))
		direct -= math.Log((1-p)*math.Exp(d.LogPBase[i])+p*math.Exp(d.LogPAsst[i])) / 4
	}
	for _, w := range hd.W {
		direct += l2 / 2 * w * w
	}
	loss, gW, gB := hd.MarginalLoss(d, l2)
	if math.Abs(loss-direct) > 1e-12 {
		t.Errorf("loss %v, direct %v", loss, direct)
	}
	for j := range hd.W {
		orig := hd.W[j]
		hd.W[j] = orig + h
		lp, _, _ := hd.MarginalLoss(d, l2)
		hd.W[j] = orig - h
		lm, _, _ := hd.MarginalLoss(d, l2)
		hd.W[j] = orig
		if fd := (lp - lm) / (2 * h); math.Abs(fd-gW[j]) > 1e-7 {
			t.Errorf("dL/dW[%d] = %v, finite difference %v", j, gW[j], fd)
		}
	}
	hd.B += h
	lp, _, _ := hd.MarginalLoss(d, l2)
	hd.B -= 2 * h
	lm, _, _ := hd.MarginalLoss(d, l2)
	if fd := (lp - lm) / (2 * h); math.Abs(fd-gB) > 1e-7 {
		t.Errorf("dL/dB = %v, finite difference %v", gB, fd)
	}
}

// TestTrainHeadMarginal: where neither model's argmax is the reference but
// the assistant gives it far more probability, the pseudo-labels are all
// 0 and teach never to defer; the marginal objective learns to defer there
// and not where the base is better, and beats both models' likelihood.
func TestTrainHeadMarginal(t *testing.T) {
	d := &HeadData{}
	for i := range 40 {
		x := float32(i%4) - 1.5 // two clusters: x < 0 and x > 0
		d.X = append(d.X, []float32{x, 1})
		d.Y = append(d.Y, 0)
		if x > 0 { // assistant better (both below the argmax)
			d.LogPBase, d.LogPAsst = append(d.LogPBase, math.Log(0.01)), append(d.LogPAsst, math.Log(0.3))
		} else {
			d.LogPBase, d.LogPAsst = append(d.LogPBase, math.Log(0.8)), append(d.LogPAsst, math.Log(0.05))
		}
	}
	pseudo, err := TrainHead(d, HeadTrainConfig{Objective: PseudoLabelObjective, Epochs: 300, LR: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	marg, err := TrainHead(d, HeadTrainConfig{Epochs: 300, LR: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []float32{0.5, 1.5} {
		if p := marg.Prob([]float32{x, 1}); p < 0.9 {
			t.Errorf("marginal head at x=%v: p=%.3f, want deferral", x, p)
		}
		if p := pseudo.Prob([]float32{x, 1}); p > 0.5 {
			t.Errorf("pseudo-label head at x=%v: p=%.3f (all labels are 0)", x, p)
		}
	}
	for _, x := range []float32{-0.5, -1.5} {
		if p := marg.Prob([]float32{x, 1}); p > 0.1 {
			t.Errorf("marginal head at x=%v: p=%.3f, want the base", x, p)
		}
	}
	l, _, _ := marg.MarginalLoss(d, 0)
	// The best either model alone does: mean of -log 0.8 and -log 0.01 (base)
	if base := -(math.Log(0.8) + math.Log(0.01)) / 2; l >= base {
		t.Errorf("marginal NLL %.3f not below the base's %.3f", l, base)
	}
	if _, err := TrainHead(&HeadData{X: d.X, Y: d.Y}, HeadTrainConfig{}); err == nil {
		t.Error("marginal objective without log-probabilities accepted")
	}
	if _, err := TrainHead(d, HeadTrainConfig{Objective: "em"}); err == nil {
		t.Error("unknown objective accepted")
	}
}
