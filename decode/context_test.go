package decode

import (
	"context"
	"errors"
	"math"
	"testing"
)

// TestRunContextCancel cancels every loop from inside its emit callback
// after three tokens: the loop must return context.Canceled with those
// tokens and run no further forward pass beyond the one in flight.
func TestRunContextCancel(t *testing.T) {
	p := []float64{0.5, 0.25, 0.25} // token 2 is never EOS here
	type loop struct {
		name string
		run  func(ctx context.Context, emit func(Token) bool) ([]int, error)
		ss   []*fakeSession
	}
	mk := func() []loop {
		a, b := fixed(p...), fixed(p...)
		c, d := fixed(p...), fixed(p...)
		e, f := fixed(p...), fixed(p...)
		g := fixed(p...)
		ls := &Lockstep{Sessions: []Session{a, b}, Combiner: &Fusion{}}
		sp := &Speculative{Target: c, Draft: d, K: 2}
		me := &Mentor{Generator: e, Mentor: f, Share: 0.5, Choose: func(h, x, y []int) (bool, error) { return true, nil }}
		one := &Lockstep{Sessions: []Session{g}}
		return []loop{
			{"lockstep", func(ctx context.Context, emit func(Token) bool) ([]int, error) {
				return ls.RunContext(ctx, []int{0}, emit)
			}, []*fakeSession{a, b}},
			{"speculative", func(ctx context.Context, emit func(Token) bool) ([]int, error) {
				return sp.RunContext(ctx, []int{0}, emit)
			}, []*fakeSession{c, d}},
			{"mentor", func(ctx context.Context, emit func(Token) bool) ([]int, error) {
				return me.RunContext(ctx, []int{0}, emit)
			}, []*fakeSession{e, f}},
			{"single", func(ctx context.Context, emit func(Token) bool) ([]int, error) {
				return one.RunContext(ctx, []int{0}, emit)
			}, []*fakeSession{g}},
		}
	}
	for _, l := range mk() {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		var fedAtCancel int
		got, err := l.run(ctx, func(tk Token) bool {
			if lp := tk.LogProb(); tk.ID == 0 && math.Abs(lp-math.Log(0.5)) > 1e-6 {
				t.Errorf("%s: LogProb of token 0 = %v, want log 0.5", l.name, lp)
			}
			n++
			if n == 3 {
				cancel()
				for _, s := range l.ss {
					fedAtCancel += s.calls
				}
			}
			return true
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err %v, want context.Canceled", l.name, err)
		}
		if len(got) < 3 || len(got) > 4 {
			t.Errorf("%s: %d tokens after cancelling at the third", l.name, len(got))
		}
		calls := 0
		for _, s := range l.ss {
			calls += s.calls
		}
		if calls > fedAtCancel+1 {
			t.Errorf("%s: %d forward passes after the cancel", l.name, calls-fedAtCancel)
		}
		// A context already done stops before any work.
		if _, err := l.run(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: done context: err %v", l.name, err)
		}
	}
	c := &Cascade{Sessions: []Session{fixed(p...), fixed(p...)}, Thresholds: []float64{0.9}, MaxTokens: 5}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.RunContext(ctx, []int{0}); !errors.Is(err, context.Canceled) {
		t.Errorf("cascade: err %v", err)
	}
	if err := c.CalibrateContext(ctx, [][]int{{0}}, 0.5); !errors.Is(err, context.Canceled) {
		t.Errorf("cascade calibration: err %v", err)
	}
}

// TestScoringContext: the scoring loops stop on a done context.
func TestScoringContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := fixed(0.5, 0.5)
	if _, _, err := NLLFromContext(ctx, []Session{s}, nil, 2, []int{0, 1, 0}, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("NLL: %v", err)
	}
	if _, _, err := RankByNLLContext(ctx, []Session{s}, 2, [][]int{{0, 1}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("RankByNLL: %v", err)
	}
	if _, err := CollectHeadDataContext(ctx, s, fixed(0.5, 0.5), 2, []HeadPair{{Prompt: []int{0}, Reference: []int{1}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("CollectHeadData: %v", err)
	}
}
