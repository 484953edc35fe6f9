package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/mocolab/moco/kernels"
)

// This file is the forward pass: one transformer for every supported
// family, whose differences are the small conditionals on Config below.
// A batch of n tokens goes through each matrix as one n-row MatMul;
// attention then walks the query positions over the KV cache.

// chunk is the most tokens one pass processes: longer inputs are fed in
// chunks, which bounds the activation buffers.
const chunk = 128

// Session is one sequence being decoded: its KV cache and scratch
// buffers. Sessions of one Model are independent; a Session is not safe
// for concurrent use.
type Session struct {
	m      *Model
	maxSeq int
	pos    int
	kc, vc [][]float32 // per layer: positions x KV heads x head_dim

	scratch            // rows for up to chunk tokens
	scores  []float32  // NumHeads*capacity: one attention row per head, grown with the cache
	logits  []float32  // VocabSize: Forward's result
	hidden  []float32  // HiddenSize: Hidden's result
	probing probeState // finite.go: locating non-finite activations
}

// scratch holds the activations of a pass over up to a fixed number of
// token rows, each of the named width. Session and Batch both run their
// rows through Model.layers with one.
type scratch struct {
	x, xb, o   []float32 // HiddenSize: residual stream, normed input, sublayer output
	q, att     []float32 // NumHeads*HeadDim: queries, attention output
	k, v       []float32 // NumKVHeads*HeadDim
	gate, up   []float32 // IntermediateSize
	gcos, gsin []float32 // RotaryDim/2: rotary tables of global layers
	lcos, lsin []float32 // and of sliding layers
}

// newScratch allocates rows for n tokens of a model of config c.
func newScratch(c *Config, n int) scratch {
	qDim, kvDim, half := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim, c.RotaryDim/2
	f := func(width int) []float32 { return make([]float32, n*width) }
	return scratch{
		x: f(c.HiddenSize), xb: f(c.HiddenSize), o: f(c.HiddenSize),
		q: f(qDim), att: f(qDim), k: f(kvDim), v: f(kvDim),
		gate: f(c.IntermediateSize), up: f(c.IntermediateSize),
		gcos: f(half), gsin: f(half), lcos: f(half), lsin: f(half),
	}
}

// ErrContextFull is wrapped by the errors of feeding a session more tokens
// than its context holds.
var ErrContextFull = errors.New("context full")

// NewSession returns an empty session that holds up to maxSeq positions
// (maxSeq <= 0: m.ContextSize()). Nothing is allocated per position up
// front: the KV cache and the attention rows grow as tokens arrive.
func (m *Model) NewSession(maxSeq int) *Session {
	c := m.Config
	if maxSeq <= 0 {
		maxSeq = m.ContextSize()
	}
	return &Session{
		m: m, maxSeq: maxSeq,
		kc: make([][]float32, c.NumLayers), vc: make([][]float32, c.NumLayers),
		scratch: newScratch(c, min(chunk, maxSeq)),
		logits:  make([]float32, c.VocabSize),
		hidden:  make([]float32, c.HiddenSize),
	}
}

// Pos is the number of tokens in the cache: the position of the next one.
func (s *Session) Pos() int { return s.pos }

// MaxSeq is the number of positions the session holds.
func (s *Session) MaxSeq() int { return s.maxSeq }

// Reset empties the cache.
func (s *Session) Reset() { s.pos = 0 }

// Truncate rewinds the cache to its first n tokens, e.g. after rejected
// speculative tokens. Hidden and the last logits keep describing the last
// token fed until the next Forward.
func (s *Session) Truncate(n int) error {
	if n < 0 || n > s.pos {
		return fmt.Errorf("engine: cannot truncate a %d-token cache to %d tokens", s.pos, n)
	}
	s.pos = n
	return nil
}

// Hidden is the final-normed hidden state of the last token fed (owned by
// the session, overwritten by the next call).
func (s *Session) Hidden() []float32 { return s.hidden }

// Forward feeds tokens at positions Pos().. as one batch and returns the
// logits of the last one (len VocabSize; owned by the session and
// overwritten by the next call).
func (s *Session) Forward(tokens []int) ([]float32, error) {
	if err := s.check(tokens); err != nil {
		return nil, err
	}
	start, fed := s.pos, tokens
	for len(tokens) > 0 {
		n := min(len(tokens), chunk)
		s.forward(tokens[:n], nil, n == len(tokens))
		tokens = tokens[n:]
	}
	if err := s.checkLogits(s.logits, start, fed); err != nil {
		return nil, err
	}
	return s.logits, nil
}

// ForwardAll is Forward returning a fresh len(tokens)*VocabSize slice: the
// logits at every fed position.
func (s *Session) ForwardAll(tokens []int) ([]float32, error) {
	if err := s.check(tokens); err != nil {
		return nil, err
	}
	V := s.m.Config.VocabSize
	out := make([]float32, len(tokens)*V)
	for i := 0; i < len(tokens); i += chunk {
		j := min(len(tokens), i+chunk)
		s.forward(tokens[i:j], out[i*V:j*V], false)
	}
	copy(s.logits, out[len(out)-V:])
	if err := s.checkLogits(out, s.pos-len(tokens), tokens); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Session) check(tokens []int) error {
	if len(tokens) == 0 {
		return errors.New("engine: no tokens to feed")
	}
	if s.pos+len(tokens) > s.maxSeq {
		return fmt.Errorf("engine: %w: %d tokens after %d cached exceed the session's context size of %d positions (the model's max_position_embeddings: %d)",
			ErrContextFull, len(tokens), s.pos, s.maxSeq, s.m.Config.MaxPositions)
	}
	V := s.m.Config.VocabSize
	for _, id := range tokens {
		if id < 0 || id >= V {
			return fmt.Errorf("engine: token id %d is outside the vocabulary [0, %d)", id, V)
		}
	}
	return nil
}

// forward runs tokens (at most chunk) through the model at positions
// s.pos.. and advances s.pos. It writes the logits of every token to all
// when all is non-nil, and those of the last token to s.logits when last.
func (s *Session) forward(tokens []int, all []float32, last bool) {
	m, c := s.m, s.m.Config
	n, D, kvDim := len(tokens), c.HiddenSize, c.NumKVHeads*c.HeadDim
	eps, off := float32(c.RMSNormEps), c.NormOffset
	start := s.pos
	s.growCache(start + n)

	x, xb := s.x[:n*D], s.xb[:n*D]

	// Token embeddings (Gemma scales them by sqrt(hidden)).
	for t, id := range tokens {
		m.embed.Row(x[t*D:(t+1)*D], id)
		if c.EmbedScale != 1 {
			scale(x[t*D:(t+1)*D], c.EmbedScale)
		}
	}
	s.probe(-1, x)
	// Rotary tables for these positions (Gemma3's sliding layers have their own base).
	half := c.RotaryDim / 2
	for t := range n {
		m.global.table(s.gcos[t*half:], s.gsin[t*half:], start+t)
		if c.RopeLocalTheta > 0 {
			m.local.table(s.lcos[t*half:], s.lsin[t*half:], start+t)
		}
	}
	m.runLayers(&s.scratch, n, s, func(l int, k, v []float32) {
		copy(s.kc[l][start*kvDim:], k)
		copy(s.vc[l][start*kvDim:], v)
	}, func(l int, q, att []float32, window int) {
		// Each query attends to the cached positions up to its own,
		// within the window on sliding layers.
		s.attend(l, q, att, n, window)
	})

	// Final norm and output projection (Gemma2 soft-caps the logits).
	normRows(xb, x, m.norm, D, eps, off)
	copy(s.hidden, xb[(n-1)*D:])
	if all != nil {
		kernels.MatMul(all, m.lmHead, xb, n)
		if c.FinalSoftcap > 0 {
			softcap(all, float32(c.FinalSoftcap))
		}
	}
	if last {
		kernels.MatVec(s.logits, m.lmHead, s.hidden)
		if c.FinalSoftcap > 0 {
			softcap(s.logits, float32(c.FinalSoftcap))
		}
	}
	s.pos += n
}

// prober sees the residual stream after the embeddings (stage -1) and
// after every layer l (stage l): finite.go's checks.
type prober interface {
	probe(stage int, x []float32)
}

// runLayers runs the n rows of sc.x (embedded, with the rotary tables of
// their positions in sc) through every layer: the forward pass Session and
// Batch share, so that both make the same kernel calls in the same order.
// store writes layer l's keys and values of the rows to the caches, attend
// computes the attention output att of the queries q over them, and p
// sees the residual stream after each layer.
func (m *Model) runLayers(sc *scratch, n int, p prober, store func(l int, k, v []float32), attend func(l int, q, att []float32, window int)) {
	c := m.Config
	D, hd := c.HiddenSize, c.HeadDim
	qDim, kvDim, I := c.NumHeads*hd, c.NumKVHeads*hd, c.IntermediateSize
	eps, off := float32(c.RMSNormEps), c.NormOffset
	half := c.RotaryDim / 2
	x, xb, o := sc.x[:n*D], sc.xb[:n*D], sc.o[:n*D]
	q, k, v, att := sc.q[:n*qDim], sc.k[:n*kvDim], sc.v[:n*kvDim], sc.att[:n*qDim]
	gate, up := sc.gate[:n*I], sc.up[:n*I]

	for l := range m.layers {
		w := &m.layers[l]

		// Attention: project, normalize q and k (Qwen3, Gemma3, OLMo),
		// rotate, append k and v to the cache.
		normRows(xb, x, w.attnNorm, D, eps, off)
		kernels.MatMulShared(xb, n, kernels.Product{Dst: q, M: w.wq}, kernels.Product{Dst: k, M: w.wk}, kernels.Product{Dst: v, M: w.wv})
		addBias(q, w.bq)
		addBias(k, w.bk)
		addBias(v, w.bv)
		switch c.QKNorm {
		case "full":
			normRows(q, q, w.qNorm, qDim, eps, off)
			normRows(k, k, w.kNorm, kvDim, eps, off)
		case "head":
			normRows(q, q, w.qNorm, hd, eps, off)
			normRows(k, k, w.kNorm, hd, eps, off)
		}
		cos, sin, window := sc.gcos, sc.gsin, 0
		if c.Sliding[l] {
			window = c.SlidingWindow
			if c.RopeLocalTheta > 0 {
				cos, sin = sc.lcos, sc.lsin
			}
		}
		for t := range n {
			ct, st := cos[t*half:(t+1)*half], sin[t*half:(t+1)*half]
			for h := range c.NumHeads {
				rotate(q[t*qDim+h*hd:], ct, st)
			}
			for h := range c.NumKVHeads {
				rotate(k[t*kvDim+h*hd:], ct, st)
			}
		}
		scale(q, float32(c.QueryScale))
		store(l, k, v)
		attend(l, q, att, window)
		kernels.MatMul(o, w.wo, att, n)
		addBias(o, w.bo)
		if w.attnPostNorm != nil { // Gemma, OLMo
			normRows(o, o, w.attnPostNorm, D, eps, off)
		}
		kernels.Axpy(1, o, x)

		// Gated MLP: down(act(gate(x)) * up(x)).
		normRows(xb, x, w.ffnNorm, D, eps, off)
		kernels.MatMulShared(xb, n, kernels.Product{Dst: gate, M: w.gate}, kernels.Product{Dst: up, M: w.up})
		addBias(gate, w.bGate)
		addBias(up, w.bUp)
		if c.Activation == "gelu_pytorch_tanh" {
			kernels.GELUTanh(gate)
		} else {
			kernels.SiLU(gate)
		}
		for i, u := range up {
			gate[i] *= u
		}
		kernels.MatMul(o, w.down, gate, n)
		addBias(o, w.bDown)
		if w.ffnPostNorm != nil { // Gemma, OLMo
			normRows(o, o, w.ffnPostNorm, D, eps, off)
		}
		kernels.Axpy(1, o, x)
		p.probe(l, x)
	}
}

// attend computes the attention output att of n queries q at positions
// s.pos.. over layer l's cache, splitting the work by head.
func (s *Session) attend(l int, q, att []float32, n, window int) {
	c := s.m.Config
	qDim := c.NumHeads * c.HeadDim
	start, kc, vc := s.pos, s.kc[l], s.vc[l]
	work := n * (start + n) * qDim * 2
	stride := len(s.scores) / c.NumHeads
	kernels.Parallel(c.NumHeads, work, func(h0, h1 int) {
		for h := h0; h < h1; h++ {
			scores := s.scores[h*stride : (h+1)*stride]
			for t := range n {
				attendHead(c, att[t*qDim:], q[t*qDim:], kc, vc, scores, h, start+t, window)
			}
		}
	})
}

// attendHead writes head h's attention output into att for the query
// q (the query rows of one position, pos, all heads) over the cache
// rows kc, vc of positions 0..pos, or of the last window of them;
// scores has room for pos+1.
func attendHead(c *Config, att, q, kc, vc, scores []float32, h, pos, window int) {
	hd, kvDim := c.HeadDim, c.NumKVHeads*c.HeadDim
	group := c.NumHeads / c.NumKVHeads
	lo := 0
	if window > 0 {
		lo = max(0, pos-window+1)
	}
	sc := scores[:pos-lo+1]
	kvOff := lo*kvDim + (h/group)*hd
	kernels.DotRows(sc, kc[kvOff:], kvDim, q[h*hd:(h+1)*hd])
	if c.AttnSoftcap > 0 {
		softcap(sc, float32(c.AttnSoftcap))
	}
	kernels.Softmax(sc)
	out := att[h*hd : (h+1)*hd]
	clear(out)
	kernels.AxpyRows(out, sc, vc[kvOff:], kvDim)
}

// growCache makes room for n positions in every layer's cache and in the
// attention rows, doubling so that appending a token at a time
// reallocates rarely.
func (s *Session) growCache(n int) {
	c := s.m.Config
	kvDim := c.NumKVHeads * c.HeadDim
	if len(s.kc[0]) >= n*kvDim {
		return
	}
	positions := min(s.maxSeq, max(n, 2*len(s.kc[0])/kvDim, chunk))
	size := positions * kvDim
	s.scores = make([]float32, c.NumHeads*positions)
	for l := range s.kc {
		s.kc[l] = append(make([]float32, 0, size), s.kc[l][:s.pos*kvDim]...)[:size]
		s.vc[l] = append(make([]float32, 0, size), s.vc[l][:s.pos*kvDim]...)[:size]
	}
}

// normRows RMS-normalizes each width-long row of x into dst with weight w
// (plus offset); a nil w means no norm at that place, and x is copied.
func normRows(dst, x, w []float32, width int, eps, offset float32) {
	if w == nil {
		copy(dst, x)
		return
	}
	for i := 0; i < len(x); i += width {
		kernels.RMSNorm(dst[i:i+width], x[i:i+width], w, eps, offset)
	}
}

// addBias adds b to every len(b)-long row of x; a nil b does nothing.
func addBias(x, b []float32) {
	if b == nil {
		return
	}
	for i := 0; i < len(x); i += len(b) {
		kernels.Axpy(1, b, x[i:i+len(b)])
	}
}

func scale(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}

// softcap computes c * tanh(x/c) in place.
func softcap(x []float32, c float32) {
	for i, v := range x {
		x[i] = c * float32(math.Tanh(float64(v/c)))
	}
}
