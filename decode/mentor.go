package decode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
)

// Mentor is mentor collaboration (MoCo method #8, MoCo's
// api_mentor_collab), a generator that a mentor corrects at random points:
//
//  1. The generator proposes its next word: one token, then more while
//     the token after it does not start a new word (at most WordTolerance
//     more; the lookahead that ends the word is not part of it).
//  2. With probability Share, drawn from a generator seeded by Seed and the
//     prompt (so the points differ between prompts and a run repeats), the
//     mentor proposes its next word from the same history. Otherwise, or
//     when the two words are the same tokens, the generator's word is kept.
//  3. Where the words differ, both models draft a patch of PatchLen tokens
//     from the same history and one is kept: by Head when set (a deferral
//     head on the generator's hidden state; p > HeadThreshold keeps the
//     mentor's patch), else by Choose (NewMethod's default asks the
//     generator MoCo's question, "Now I will choose the next sequence that
//     could lead to the correct answer. Option (A): ..., Option (B): ....
//     My choice: Option (", and keeps the mentor's patch when its most
//     likely next token is "B").
//
// Both models consume every kept token (the mentor catches up only when
// it is consulted). Deviations from MoCo, where it differs: tokens are
// drawn with the Sampler (MoCo decodes greedily whatever its temperature;
// temperature 0 reproduces it); Share is a probability (MoCo's class takes
// a percentage and consults the mentor when randint(1, 100) < 25, 24% of
// words; its run_method default of 0.25 read as a percentage never
// consults it); MoCo's trained mode uses a downloaded MLP for a few
// generators, moco a logistic head trained by TrainHead.
//
// A Mentor keeps per-run state: it is not safe for concurrent use.
//
// Mentor runs one prompt at a time, never in a LockstepBatcher: drafting
// and discarding patches rewinds the models' caches.
type Mentor struct {
	Generator, Mentor Session
	Sampler           *Sampler
	// Share is the probability that the mentor is consulted at a word,
	// used as given: 0 never consults it, 1 at every word (MoCo's is
	// DefaultMentorShare).
	Share float64
	// Seed seeds the choice of the consulted words (mixed with the prompt).
	Seed uint64
	// PatchLen is the length of each drafted patch (0 means 16).
	PatchLen int
	// WordTolerance caps the tokens added to a word after its first
	// (0 means 10, MoCo's).
	WordTolerance int
	// WordStart[id] reports whether token id begins a new word (see
	// WordStarts); without it every token is a word.
	WordStart []bool
	Head      *Head
	// HeadThreshold is the head probability above which the mentor's patch
	// is kept, used as given (DefaultThreshold is the usual).
	HeadThreshold float64
	// Choose returns true to keep the mentor's patch b over the
	// generator's a, given the history before them.
	Choose func(history, a, b []int) (bool, error)

	Vocab     int
	EOS       []int
	MaxTokens int
	Trace     func(TraceStep)

	// Words, Checks, Patches and MentorWins count the last run's words,
	// consultations of the mentor, divergences (patches drafted) and
	// patches taken from the mentor.
	Words, Checks, Patches, MentorWins int

	hist []int
	seen []int // the history and the piece a token follows (repeat penalty)
	one  [1]int
	rng  *rand.Rand
	next []float32
}

// Defaults of mentor collaboration (MoCo's).
const (
	DefaultMentorShare   = 0.25
	DefaultPatchLen      = 16
	DefaultWordTolerance = 10
)

// MentorQuestion is the text MoCo appends to the history to ask the
// generator which patch to keep; the options follow it.
const MentorQuestion = "\nNow I will choose the next sequence that could lead to the correct answer. Option (A): "

// Run generates from prompt like Lockstep.Run.
func (m *Mentor) Run(prompt []int, emit func(tok int) bool) ([]int, error) {
	return m.RunContext(context.Background(), prompt, idsOnly(emit))
}

// piece is a run of tokens one model proposed, with their log-probabilities.
type piece struct {
	toks []int
	logp []float64
	next []float32 // the model's logits after the word, when it was fed whole
}

// RunContext generates from prompt like Lockstep.RunContext; a token's
// LogProb is under the distribution of the model that proposed it.
func (m *Mentor) RunContext(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error) {
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
	share, plen, tol := m.Share, m.PatchLen, m.WordTolerance
	if share < 0 || share > 1 {
		return nil, fmt.Errorf("mentor: share %v outside [0, 1]", share)
	}
	if plen <= 0 {
		plen = DefaultPatchLen
	}
	if tol <= 0 {
		tol = DefaultWordTolerance
	}
	h := fnv.New64a()
	for _, t := range prompt {
		h.Write([]byte{byte(t), byte(t >> 8), byte(t >> 16), byte(t >> 24)})
	}
	m.rng = rand.New(rand.NewPCG(m.Seed, h.Sum64()))
	m.Words, m.Checks, m.Patches, m.MentorWins = 0, 0, 0, 0
	m.hist = append(m.hist[:0], prompt...)
	start := len(prompt)
	gen, men := m.Generator, m.Mentor
	gen.Reset()
	men.Reset()
	// push appends tokens to the history; it reports whether to stop.
	push := func(p piece, src string) bool {
		for i, t := range p.toks {
			if m.Trace != nil {
				m.Trace(TraceStep{Step: len(m.hist) - start, Token: t, Source: src})
			}
			if slices.Contains(m.EOS, t) {
				return true
			}
			m.hist = append(m.hist, t)
			if emit != nil && !emit(Token{ID: t, Source: src, logProb: p.logp[i]}) {
				return true
			}
			if m.MaxTokens > 0 && len(m.hist)-start >= m.MaxTokens {
				return true
			}
		}
		return false
	}
	for {
		if err := ctx.Err(); err != nil {
			return m.hist[start:], err
		}
		base := len(m.hist)
		lg := m.next
		if gen.Pos() != base || lg == nil {
			var err error
			if lg, err = m.catchUp(gen); err != nil {
				return m.hist[start:], fmt.Errorf("generator: %w", err)
			}
		}
		wg, err := m.word(gen, lg, tol)
		if err != nil {
			return m.hist[start:], fmt.Errorf("generator: %w", err)
		}
		m.Words++
		keep, src := wg, "generator"
		if m.rng.Float64() < share {
			m.Checks++
			lm, err := m.catchUp(men)
			if err != nil {
				return m.hist[start:], fmt.Errorf("mentor: %w", err)
			}
			wm, err := m.word(men, lm, tol)
			if err != nil {
				return m.hist[start:], fmt.Errorf("mentor: %w", err)
			}
			if !slices.Equal(wg.toks, wm.toks) {
				m.Patches++
				if keep, src, err = m.patch(ctx, base, plen); err != nil {
					return m.hist[start:], err
				}
			}
			if err := men.Truncate(base); err != nil {
				return m.hist[start:], err
			}
		}
		m.next = nil
		if src == "generator" {
			// The generator drafted the kept word: its logits after it
			// start the next word without another forward pass.
			m.next = append(m.next[:0], keep.next...)
			if keep.next == nil {
				m.next = nil
			}
		}
		if push(keep, src) {
			return m.hist[start:], nil
		}
	}
}

// catchUp feeds s the history it has not seen and returns its next-token
// logits. A session that is up to date is fed its last token again after a
// rewind by one, so its logits are fresh.
func (m *Mentor) catchUp(s Session) ([]float32, error) {
	if s.Pos() >= len(m.hist) {
		if err := s.Truncate(len(m.hist) - 1); err != nil {
			return nil, err
		}
	}
	lg, err := s.Forward(m.hist[s.Pos():])
	if err != nil {
		return nil, err
	}
	return m.vocab(lg), nil
}

// word draws a model's next word from logits lg: its first token, then
// more while the following token continues the word (at most tol more) and
// is not an EOS. The session is left past the word; the caller rewinds.
func (m *Mentor) word(s Session, lg []float32, tol int) (piece, error) {
	var p piece
	t := m.sample(lg, &p)
	p.toks, p.logp = append(p.toks, t), append(p.logp, LogSoftmaxAt(lg, t))
	for range tol {
		if slices.Contains(m.EOS, t) {
			break
		}
		m.one[0] = t
		var err error
		if lg, err = s.Forward(m.one[:]); err != nil {
			return p, err
		}
		lg = m.vocab(lg)
		t = m.sample(lg, &p)
		if t >= len(m.WordStart) || m.WordStart[t] || slices.Contains(m.EOS, t) {
			p.next = append([]float32(nil), lg...)
			break
		}
		p.toks, p.logp = append(p.toks, t), append(p.logp, LogSoftmaxAt(lg, t))
	}
	return p, nil
}

// patch drafts both patches from the history's first base tokens and
// returns the one kept.
func (m *Mentor) patch(ctx context.Context, base, n int) (piece, string, error) {
	useMentor := false
	drafts := [2]piece{}
	for i, s := range []Session{m.Generator, m.Mentor} {
		if err := ctx.Err(); err != nil {
			return piece{}, "", err
		}
		if err := s.Truncate(base - 1); err != nil {
			return piece{}, "", err
		}
		lg, err := s.Forward(m.hist[base-1 : base])
		if err != nil {
			return piece{}, "", err
		}
		if i == 0 && m.Head != nil {
			h := s.Hidden()
			if len(h) != len(m.Head.W) {
				return piece{}, "", fmt.Errorf("mentor: head has %d inputs but the generator's hidden size is %d", len(m.Head.W), len(h))
			}
			useMentor = m.Head.Prob(h) > m.HeadThreshold
		}
		if drafts[i], err = m.draft(s, m.vocab(lg), n); err != nil {
			return piece{}, "", fmt.Errorf("%s patch: %w", []string{"generator", "mentor"}[i], err)
		}
		if err := s.Truncate(base); err != nil {
			return piece{}, "", err
		}
	}
	if m.Head == nil {
		var err error
		if useMentor, err = m.Choose(m.hist, drafts[0].toks, drafts[1].toks); err != nil {
			return piece{}, "", err
		}
	}
	if useMentor {
		m.MentorWins++
		return drafts[1], "mentor patch", nil
	}
	return drafts[0], "generator patch", nil
}

// draft samples up to n tokens from s starting with logits lg, stopping
// after an EOS. The session is left past the history; the caller rewinds.
func (m *Mentor) draft(s Session, lg []float32, n int) (piece, error) {
	var p piece
	for i := range n {
		t := m.sample(lg, &p)
		p.toks, p.logp = append(p.toks, t), append(p.logp, LogSoftmaxAt(lg, t))
		if i == n-1 || slices.Contains(m.EOS, t) {
			break
		}
		m.one[0] = t
		var err error
		if lg, err = s.Forward(m.one[:]); err != nil {
			return p, err
		}
		lg = m.vocab(lg)
	}
	return p, nil
}

// sample draws the token after the history and the piece so far, which
// the repeat penalty reads.
func (m *Mentor) sample(lg []float32, p *piece) int {
	m.seen = append(append(m.seen[:0], m.hist...), p.toks...)
	return m.Sampler.SampleAfter(lg, m.seen)
}

func (m *Mentor) vocab(lg []float32) []float32 {
	if m.Vocab > 0 && len(lg) > m.Vocab {
		return lg[:m.Vocab]
	}
	return lg
}
