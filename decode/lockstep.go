package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Session is what the decoding loops need from one model's inference state:
// *engine.Session satisfies it. Keeping it an interface lets tests drive the
// loops with hand-made distributions.
type Session interface {
	// Forward feeds tokens at positions Pos().. and returns the logits of
	// the last one (owned by the session, valid until the next call).
	Forward(tokens []int) ([]float32, error)
	// ForwardAll is Forward returning a fresh len(tokens)*vocab slice with
	// the logits at every fed position.
	ForwardAll(tokens []int) ([]float32, error)
	// Hidden is the final-normed hidden state of the last token fed.
	Hidden() []float32
	// Pos is the number of tokens in the cache.
	Pos() int
	// Truncate rewinds the cache to its first n tokens.
	Truncate(n int) error
	// Reset empties the cache.
	Reset()
}

// A Step is one position of the lockstep loop as a Combiner sees it.
type Step struct {
	// Index counts generated tokens: 0 when choosing the first one.
	Index int
	// Tokens is the shared history: the prompt, then the generated tokens.
	Tokens []int
	// Logits holds each model's next-token logits, truncated to the shared
	// vocabulary. They belong to the sessions: read, don't keep.
	Logits [][]float32

	// Source, Defer and Confidence are set by the combiner for the trace:
	// the model or rule that chose the token, Co-LLM's deferral
	// probability, and the confidence a rule compared with its threshold
	// (nudging: the base's top-1 probability). NaN means none.
	Source     string
	Defer      float64
	Confidence float64

	sessions []Session
}

// Hidden returns model i's final hidden state for the current position.
func (s *Step) Hidden(i int) []float32 { return s.sessions[i].Hidden() }

// A Combiner turns the models' next-token logits into one score vector,
// which is then sampled like a single model's logits. Scores are read as
// logits: any vector whose softmax is the wanted distribution will do (for
// example log-probabilities).
type Combiner interface {
	Combine(dst []float32, s *Step) error
}

// CombinerFunc adapts a function to the Combiner interface:
//
//	half := decode.CombinerFunc(func(dst []float32, s *decode.Step) error {
//		for i := range dst {
//			dst[i] = (s.Logits[0][i] + s.Logits[1][i]) / 2
//		}
//		return nil
//	})
type CombinerFunc func(dst []float32, s *Step) error

// Combine calls f.
func (f CombinerFunc) Combine(dst []float32, s *Step) error { return f(dst, s) }

// A Resetter is a combiner with per-generation state (nudging, Co-LLM's
// warm-up); Lockstep calls Reset before each run.
type Resetter interface{ Reset() }

// TokenProb is one entry of a trace's top-k list.
type TokenProb struct {
	ID   int     `json:"id"`
	Text string  `json:"text,omitempty"`
	Prob float64 `json:"p"`
}

// TraceStep records one step of a run: the chosen token, who chose it, the
// deferral probability where the method has one, and the most likely tokens
// of the combined distribution.
type TraceStep struct {
	Step   int         `json:"step"`
	Token  int         `json:"token"`
	Text   string      `json:"text,omitempty"`
	Source string      `json:"source,omitempty"`
	Defer  *float64    `json:"defer,omitempty"`
	Conf   *float64    `json:"confidence,omitempty"`
	Top    []TokenProb `json:"top"`
}

// Lockstep advances several models that share a vocabulary through one
// token loop. Every model prefills the prompt once and then consumes every
// chosen token, whoever chose it, so all caches stay in step.
type Lockstep struct {
	Sessions []Session
	// Combiner picks the scores to sample from; nil means the first
	// model's logits (plain single-model generation).
	Combiner Combiner
	Sampler  *Sampler
	// Vocab is the shared vocabulary size; logits are truncated to it.
	Vocab int
	// EOS ids end the run (the EOS token is not emitted).
	EOS []int
	// MaxTokens caps the generated tokens (0: no cap besides the context).
	MaxTokens int
	// Trace, when set, receives every step; TraceTopK entries (default 5)
	// of the combined distribution are listed, named by TokenText if set.
	Trace     func(TraceStep)
	TraceTopK int
	TokenText func(id int) string

	logits   [][]float32
	combined []float32
	probs    []float64
	one      [1]int
	history  []int
	step     Step
}

// ErrNoSessions is returned by Run when there is nothing to run.
var ErrNoSessions = errors.New("decode: lockstep needs at least one model")

// Token is one generated token as a loop hands it to its emit callback.
type Token struct {
	ID int
	// Source is the model or rule that chose the token ("fusion",
	// "assistant", "mentor patch", ...), "" when the loop has none.
	Source string

	scores  []float32 // the scores the token was drawn from, valid during emit
	logProb float64
}

// LogProb returns the token's log-probability under the distribution it
// was drawn from, before temperature and filtering: the combined scores of
// a lockstep method, the target's distribution for speculative decoding,
// the proposing model's for mentor patches and cascades. Call it inside the
// emit callback (it reads the loop's buffers, and costs one pass over the
// vocabulary, paid only by callers that ask).
func (t Token) LogProb() float64 {
	if t.scores != nil {
		return LogSoftmaxAt(t.scores, t.ID)
	}
	return t.logProb
}

// NewToken builds a Token with a known log-probability (for loops written
// outside this package).
func NewToken(id int, logProb float64, source string) Token {
	return Token{ID: id, Source: source, logProb: logProb}
}

// Run is RunContext without cancellation, with an emit callback that sees
// only token ids.
func (l *Lockstep) Run(prompt []int, emit func(tok int) bool) ([]int, error) {
	return l.RunContext(context.Background(), prompt, idsOnly(emit))
}

// idsOnly adapts an id callback to a Token callback.
func idsOnly(emit func(int) bool) func(Token) bool {
	if emit == nil {
		return nil
	}
	return func(t Token) bool { return emit(t.ID) }
}

// RunContext resets the sessions, prefills the prompt and generates until
// an EOS id, MaxTokens, emit returning false, or ctx being done (checked
// before every forward pass; the error is then ctx's). It returns the
// generated tokens (without the EOS). The returned slice is reused by the
// next run.
func (l *Lockstep) RunContext(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error) {
	n := len(l.Sessions)
	if n == 0 {
		return nil, ErrNoSessions
	}
	if len(prompt) == 0 {
		return nil, errors.New("decode: empty prompt (add a BOS token)")
	}
	if l.Sampler == nil {
		l.Sampler, _ = NewSampler(SamplerConfig{})
	}
	if cap(l.logits) < n {
		l.logits = make([][]float32, n)
	}
	l.logits = l.logits[:n]
	if r, ok := l.Combiner.(Resetter); ok {
		r.Reset()
	}
	l.history = append(l.history[:0], prompt...)
	start := len(l.history)
	for i, s := range l.Sessions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.Reset()
		lg, err := s.Forward(prompt)
		if err != nil {
			return nil, fmt.Errorf("model %d: prefill: %w", i, err)
		}
		if err := l.setLogits(i, lg); err != nil {
			return nil, err
		}
	}
	for step := 0; l.MaxTokens <= 0 || step < l.MaxTokens; step++ {
		tok, scores, err := l.choose(step)
		if err != nil {
			return l.history[start:], err
		}
		if slices.Contains(l.EOS, tok) {
			break
		}
		l.history = append(l.history, tok)
		if emit != nil && !emit(Token{ID: tok, Source: l.step.Source, scores: scores}) {
			break
		}
		if l.MaxTokens > 0 && step+1 >= l.MaxTokens {
			break
		}
		l.one[0] = tok
		for i, s := range l.Sessions {
			if err := ctx.Err(); err != nil {
				return l.history[start:], err
			}
			lg, err := s.Forward(l.one[:])
			if err != nil {
				return l.history[start:], fmt.Errorf("model %d: step %d: %w", i, step, err)
			}
			if err := l.setLogits(i, lg); err != nil {
				return l.history[start:], err
			}
		}
	}
	return l.history[start:], nil
}

func (l *Lockstep) setLogits(i int, lg []float32) error {
	v := l.Vocab
	if v <= 0 {
		v = len(lg)
	}
	if len(lg) < v {
		return fmt.Errorf("model %d returned %d logits, fewer than the vocabulary's %d", i, len(lg), v)
	}
	l.logits[i] = lg[:v]
	return nil
}

// choose combines and samples the next token; it returns the scores too.
func (l *Lockstep) choose(index int) (int, []float32, error) {
	st := &l.step
	*st = Step{Index: index, Tokens: l.history, Logits: l.logits, Defer: math.NaN(), Confidence: math.NaN(), sessions: l.Sessions}
	scores := l.logits[0]
	if l.Combiner != nil {
		if len(l.combined) != len(scores) {
			l.combined = make([]float32, len(scores))
		}
		if err := l.Combiner.Combine(l.combined, st); err != nil {
			return 0, nil, err
		}
		scores = l.combined
	}
	tok := l.Sampler.SampleAfter(scores, l.history)
	if l.Trace != nil {
		l.Trace(l.traceStep(index, tok, scores, st))
	}
	return tok, scores, nil
}

func (l *Lockstep) traceStep(index, tok int, scores []float32, st *Step) TraceStep {
	k := l.TraceTopK
	if k <= 0 {
		k = 5
	}
	if len(l.probs) != len(scores) {
		l.probs = make([]float64, len(scores))
	}
	SoftmaxInto(l.probs, scores, 1)
	ts := TraceStep{Step: index, Token: tok, Source: st.Source, Top: topK(l.probs, k)}
	if !math.IsNaN(st.Defer) {
		d := st.Defer
		ts.Defer = &d
	}
	if !math.IsNaN(st.Confidence) {
		c := st.Confidence
		ts.Conf = &c
	}
	if l.TokenText != nil {
		ts.Text = l.TokenText(tok)
		for i := range ts.Top {
			ts.Top[i].Text = l.TokenText(ts.Top[i].ID)
		}
	}
	return ts
}

// topK returns the k most likely entries of p, most likely first.
func topK(p []float64, k int) []TokenProb {
	k = min(k, len(p))
	out := make([]TokenProb, 0, k+1)
	for i, q := range p {
		if len(out) == k && q <= out[k-1].Prob {
			continue
		}
		j := len(out)
		out = append(out, TokenProb{})
		for j > 0 && out[j-1].Prob < q {
			out[j] = out[j-1]
			j--
		}
		out[j] = TokenProb{ID: i, Prob: q}
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}
