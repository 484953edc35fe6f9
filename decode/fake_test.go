package decode

import (
	"errors"
	"math"
)

// fakeSession is a Session whose next-token logits are a pure function of
// the tokens fed so far, so tests know every distribution exactly.
type fakeSession struct {
	next   func(hist []int) []float32 // logits after hist (len >= 1)
	hidden func(hist []int) []float32
	hist   []int
	out    []float32
	calls  int // Forward/ForwardAll calls, for cost checks
	fed    int // tokens fed in total
}

func (f *fakeSession) Forward(tokens []int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("no tokens")
	}
	f.calls++
	f.fed += len(tokens)
	f.hist = append(f.hist, tokens...)
	f.out = append(f.out[:0], f.next(f.hist)...)
	return f.out, nil
}

func (f *fakeSession) ForwardAll(tokens []int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("no tokens")
	}
	f.calls++
	f.fed += len(tokens)
	var all []float32
	for _, t := range tokens {
		f.hist = append(f.hist, t)
		all = append(all, f.next(f.hist)...)
	}
	return all, nil
}

func (f *fakeSession) Hidden() []float32 {
	if f.hidden == nil {
		return []float32{float32(len(f.hist))}
	}
	return f.hidden(f.hist)
}

func (f *fakeSession) Pos() int { return len(f.hist) }

func (f *fakeSession) Truncate(n int) error {
	if n < 0 || n > len(f.hist) {
		return errors.New("truncate out of range")
	}
	f.hist = f.hist[:n]
	return nil
}

func (f *fakeSession) Reset() { f.hist = f.hist[:0] }

// fixed returns a session that always predicts the distribution p.
func fixed(p ...float64) *fakeSession {
	lg := logitsOf(p...)
	return &fakeSession{next: func([]int) []float32 { return lg }}
}

// markov returns a session whose distribution depends on the last token:
// table[last] (rows are probabilities).
func markov(table [][]float64) *fakeSession {
	rows := make([][]float32, len(table))
	for i, p := range table {
		rows[i] = logitsOf(p...)
	}
	return &fakeSession{next: func(h []int) []float32 { return rows[h[len(h)-1]] }}
}

func softmax64(x []float32) []float64 {
	p := make([]float64, len(x))
	SoftmaxInto(p, x, 1)
	return p
}

func near(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}
