package decode

import (
	"errors"
	"fmt"
	"slices"
)

// Mentor is mentor collaboration (MoCo method #8). A generator writes; at
// a share of the positions where it is about to start a word, its next
// token is compared with a mentor's (the first token stands for the word).
// Where they differ, both draft a patch of PatchLen tokens from the same
// history and one patch is kept: by Head (a deferral head on the
// generator's hidden state, p > 0.5 keeps the mentor's patch) when set,
// else by Choose (for example the generator prompted with both options).
// Both models consume every kept token.
type Mentor struct {
	Generator, Mentor Session
	Sampler           *Sampler
	// Share of word-start positions that are checked (0 means 0.25).
	Share float64
	// PatchLen is the length of each drafted patch (0 means 16).
	PatchLen  int
	WordStart []bool
	Head      *Head
	// Choose returns true to keep the mentor's patch b over the
	// generator's a, given the history before them.
	Choose func(history, a, b []int) (bool, error)

	Vocab     int
	EOS       []int
	MaxTokens int
	Trace     func(TraceStep)

	// Checks, Patches and MentorWins count the last Run's comparisons,
	// divergences and patches taken from the mentor.
	Checks, Patches, MentorWins int

	hist []int
	one  [1]int
}

// Defaults of mentor collaboration.
const (
	DefaultMentorShare = 0.25
	DefaultPatchLen    = 16
)

// Run generates from prompt like Lockstep.Run.
func (m *Mentor) Run(prompt []int, emit func(tok int) bool) ([]int, error) {
	if m.Generator == nil || m.Mentor == nil {
		return nil, errors.New("mentor: needs a generator and a mentor model")
	}
	if m.Head == nil && m.Choose == nil {
		return nil, errors.New("mentor: needs a head or a Choose function to pick patches")
	}
	if len(prompt) == 0 {
		return nil, errors.New("decode: empty prompt (add a BOS token)")
	}
	if m.Sampler == nil {
		m.Sampler, _ = NewSampler(SamplerConfig{})
	}
	share, plen := m.Share, m.PatchLen
	if share == 0 {
		share = DefaultMentorShare
	}
	if plen <= 0 {
		plen = DefaultPatchLen
	}
	m.Checks, m.Patches, m.MentorWins = 0, 0, 0
	m.hist = append(m.hist[:0], prompt...)
	start := len(prompt)
	gen, men := m.Generator, m.Mentor
	gen.Reset()
	men.Reset()
	var lg, lm []float32
	// feed brings both models up to the history and refreshes their logits.
	feed := func() error {
		var err error
		if lg, err = gen.Forward(m.hist[gen.Pos():]); err != nil {
			return fmt.Errorf("generator: %w", err)
		}
		if lm, err = men.Forward(m.hist[men.Pos():]); err != nil {
			return fmt.Errorf("mentor: %w", err)
		}
		lg, lm = m.vocab(lg), m.vocab(lm)
		return nil
	}
	// push appends tokens to the history; it reports whether to stop.
	push := func(toks []int, src string) bool {
		for _, t := range toks {
			if m.Trace != nil {
				m.Trace(TraceStep{Step: len(m.hist) - start, Token: t, Source: src})
			}
			if slices.Contains(m.EOS, t) {
				return true
			}
			m.hist = append(m.hist, t)
			if emit != nil && !emit(t) {
				return true
			}
			if m.MaxTokens > 0 && len(m.hist)-start >= m.MaxTokens {
				return true
			}
		}
		return false
	}
	if err := feed(); err != nil {
		return nil, err
	}
	for {
		tg := Argmax(lg)
		wordStart := tg >= len(m.WordStart) || m.WordStart[tg]
		if wordStart && m.Sampler.Float64() < share {
			m.Checks++
			if tg != Argmax(lm) {
				m.Patches++
				stop, err := m.patch(lg, lm, plen, push)
				if err != nil || stop {
					return m.hist[start:], err
				}
				if err := feed(); err != nil {
					return m.hist[start:], err
				}
				continue
			}
		}
		m.one[0] = m.Sampler.Sample(lg)
		if push(m.one[:], "generator") {
			return m.hist[start:], nil
		}
		if err := feed(); err != nil {
			return m.hist[start:], err
		}
	}
}

// patch drafts both patches, keeps one and pushes it.
func (m *Mentor) patch(lg, lm []float32, n int, push func([]int, string) bool) (bool, error) {
	base := len(m.hist)
	useMentor := false
	if m.Head != nil {
		h := m.Generator.Hidden()
		if len(h) != len(m.Head.W) {
			return true, fmt.Errorf("mentor: head has %d inputs but the generator's hidden size is %d", len(m.Head.W), len(h))
		}
		useMentor = m.Head.Prob(h) > 0.5
	}
	a, err := m.draft(m.Generator, lg, n)
	if err != nil {
		return true, fmt.Errorf("generator: %w", err)
	}
	b, err := m.draft(m.Mentor, lm, n)
	if err != nil {
		return true, fmt.Errorf("mentor: %w", err)
	}
	if m.Head == nil {
		if useMentor, err = m.Choose(m.hist, a, b); err != nil {
			return true, err
		}
	}
	for _, s := range []Session{m.Generator, m.Mentor} {
		if err := s.Truncate(base); err != nil {
			return true, err
		}
	}
	if useMentor {
		m.MentorWins++
		return push(b, "mentor patch"), nil
	}
	return push(a, "generator patch"), nil
}

// draft samples up to n tokens from s starting with logits lg, stopping
// after an EOS. The session is left past the history; the caller rewinds.
func (m *Mentor) draft(s Session, lg []float32, n int) ([]int, error) {
	out := make([]int, 0, n)
	for i := range n {
		t := m.Sampler.Sample(lg)
		out = append(out, t)
		if i == n-1 || slices.Contains(m.EOS, t) {
			break
		}
		m.one[0] = t
		var err error
		if lg, err = s.Forward(m.one[:]); err != nil {
			return nil, err
		}
		lg = m.vocab(lg)
	}
	return out, nil
}

func (m *Mentor) vocab(lg []float32) []float32 {
	if m.Vocab > 0 && len(lg) > m.Vocab {
		return lg[:m.Vocab]
	}
	return lg
}
