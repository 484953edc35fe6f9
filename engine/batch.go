package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mocolab/moco/kernels"
)

// This file is batched decoding: many independent sequences, each with its
// own KV cache and position, stepped together. A step gathers the tokens
// every active sequence feeds (one each while decoding, a slice of the
// prompt while prefilling) into one activation matrix, so each weight
// matrix is read once per step for all of them; attention then runs per
// sequence over its own cache. The pass mirrors Session.forward token for
// token: the same kernel calls in the same order give each sequence the
// logits its own Session gives (bit for bit where MatMul rows equal MatVec,
// i.e. without AMX).

// DefaultKVBytes is the KV cache budget of a Batch when none is given.
const DefaultKVBytes = 1 << 30

// ErrKVFull is returned (wrapped) by Batch.Add when the sequence's KV cache
// does not fit in what is left of the budget now; it may fit once other
// sequences leave.
var ErrKVFull = errors.New("engine: the KV cache budget is full")

// ErrBatchFull is returned (wrapped) by Batch.Add when the batch already
// holds its most sequences.
var ErrBatchFull = errors.New("engine: the batch holds its most sequences")

// BatchOptions bound a Batch. Zero values mean the defaults named.
type BatchOptions struct {
	// KVBytes is the KV cache budget in bytes over all sequences
	// (DefaultKVBytes). Each sequence reserves its whole length at Add.
	KVBytes int64
	// MaxSeqs is the most sequences held at once (64).
	MaxSeqs int
	// StepTokens is the most tokens one step feeds (max(128, MaxSeqs)):
	// every sequence with work gets one token first, then prompts being
	// prefilled share the rest in the order they joined, so a long
	// prompt is fed in chunks while the others keep decoding.
	StepTokens int
}

// Batch steps many sequences of one Model together (continuous batching:
// sequences join with Add and leave with Remove between steps). A Batch is
// not safe for concurrent use.
type Batch struct {
	m    *Model
	opts BatchOptions
	used int64
	seqs []*Seq
	next int // id of the next sequence

	scratch     // rows for up to StepTokens tokens
	rows        []batchRow
	segs        []segment
	hid, logits []float32 // ready rows: final hidden states, logits
	ready       []*Seq
}

// Seq is one sequence of a Batch: its KV cache, its position and the
// tokens queued for the next steps.
type Seq struct {
	ID       int // unique within the batch, in order of Add
	b        *Batch
	maxSeq   int
	pos      int
	kc, vc   [][]float32
	pending  []int
	reserved int64
	logits   []float32
	removed  bool
	// bad is the first stage whose output went non-finite for s (-1 the
	// embeddings, l a layer, NumLayers the output; -2 none) and badPos
	// the first position of the step it happened in.
	bad, badPos int
	err         error
}

type batchRow struct {
	s   *Seq
	pos int
}

// segment is the run of rows [r0, r1) a sequence feeds in a step.
type segment struct {
	s      *Seq
	r0, r1 int
}

// KVBytesPerPos is the KV cache a sequence of m needs per position: keys
// and values of every layer in float32.
func (m *Model) KVBytesPerPos() int64 {
	c := m.Config
	return int64(2 * 4 * c.NumLayers * c.NumKVHeads * c.HeadDim)
}

// NewBatch returns an empty batch of m.
func (m *Model) NewBatch(opts BatchOptions) *Batch {
	if opts.KVBytes <= 0 {
		opts.KVBytes = DefaultKVBytes
	}
	if opts.MaxSeqs <= 0 {
		opts.MaxSeqs = 64
	}
	if opts.StepTokens <= 0 {
		opts.StepTokens = max(chunk, opts.MaxSeqs)
	}
	opts.StepTokens = max(opts.StepTokens, opts.MaxSeqs)
	return &Batch{m: m, opts: opts, scratch: newScratch(m.Config, opts.StepTokens)}
}

// Options returns the batch's bounds with the defaults filled in.
func (b *Batch) Options() BatchOptions { return b.opts }

// KVUsed is the KV cache bytes the batch's sequences have reserved.
func (b *Batch) KVUsed() int64 { return b.used }

// Len is the number of sequences in the batch.
func (b *Batch) Len() int { return len(b.seqs) }

// Fits reports whether a sequence of positions positions could ever join
// the batch (an empty batch's budget holds it, the model's ContextSize allows it),
// and why not.
func (b *Batch) Fits(positions int) error {
	if positions <= 0 {
		return errors.New("engine: a sequence needs at least one position")
	}
	if lim := b.m.ContextSize(); positions > lim {
		return fmt.Errorf("engine: %w: %d positions exceed the model's context size of %d", ErrContextFull, positions, lim)
	}
	if need := int64(positions) * b.m.KVBytesPerPos(); need > b.opts.KVBytes {
		return fmt.Errorf("engine: %d positions need %d bytes of KV cache, more than the whole budget of %d", positions, need, b.opts.KVBytes)
	}
	return nil
}

// Add admits a sequence that will hold up to positions tokens (its prompt
// and everything generated after it), reserving their KV cache, and queues
// prompt to be fed. It fails with ErrKVFull or ErrBatchFull (wrapped) when
// the batch has no room now, and with another error when the sequence can
// never fit (see Fits) or the prompt is invalid.
func (b *Batch) Add(prompt []int, positions int) (*Seq, error) {
	if err := b.Fits(positions); err != nil {
		return nil, err
	}
	if len(prompt) > positions {
		return nil, fmt.Errorf("engine: a %d-token prompt does not fit in %d positions", len(prompt), positions)
	}
	if len(b.seqs) >= b.opts.MaxSeqs {
		return nil, fmt.Errorf("%w (%d)", ErrBatchFull, b.opts.MaxSeqs)
	}
	need := int64(positions) * b.m.KVBytesPerPos()
	if b.used+need > b.opts.KVBytes {
		return nil, fmt.Errorf("%w: %d bytes needed, %d of %d in use", ErrKVFull, need, b.used, b.opts.KVBytes)
	}
	L := b.m.Config.NumLayers
	s := &Seq{ID: b.next, b: b, maxSeq: positions, reserved: need, kc: make([][]float32, L), vc: make([][]float32, L), bad: -2}
	if err := s.Feed(prompt...); err != nil {
		return nil, err
	}
	b.next++
	b.used += need
	b.seqs = append(b.seqs, s)
	return s, nil
}

// Remove takes s out of the batch and frees its KV cache. Removing twice
// does nothing.
func (b *Batch) Remove(s *Seq) {
	if s == nil || s.b != b || s.removed {
		return
	}
	s.removed = true
	b.used -= s.reserved
	s.kc, s.vc, s.pending, s.logits = nil, nil, nil, nil
	if i := slices.Index(b.seqs, s); i >= 0 {
		b.seqs = slices.Delete(b.seqs, i, i+1)
	}
}

// Pos is the number of tokens in s's cache.
func (s *Seq) Pos() int { return s.pos }

// MaxSeq is the number of positions s reserved.
func (s *Seq) MaxSeq() int { return s.maxSeq }

// Pending is the number of tokens queued and not yet fed.
func (s *Seq) Pending() int { return len(s.pending) }

// Logits are the next-token logits after the last token fed, valid from
// the step that fed s's last pending token until the next Step.
func (s *Seq) Logits() []float32 { return s.logits }

// Err is a *NonFiniteError once s's logits came out NaN or infinite,
// naming the first layer whose output did (Session.Forward's check; the
// batch checks every layer's rows as it goes, which costs little beside
// the products). The sequence's cache is then useless: remove it.
func (s *Seq) Err() error { return s.err }

// Feed queues tokens to be fed in the next steps (after a step returned s
// as ready: the token sampled from its logits).
func (s *Seq) Feed(tokens ...int) error {
	if s.removed {
		return errors.New("engine: the sequence has left the batch")
	}
	if s.pos+len(s.pending)+len(tokens) > s.maxSeq {
		return fmt.Errorf("engine: %d more tokens after %d exceed the sequence's %d positions", len(tokens), s.pos+len(s.pending), s.maxSeq)
	}
	V := s.b.m.Config.VocabSize
	for _, id := range tokens {
		if id < 0 || id >= V {
			return fmt.Errorf("engine: token id %d is outside the vocabulary [0, %d)", id, V)
		}
	}
	s.pending = append(s.pending, tokens...)
	return nil
}

// Step feeds the queued tokens of the batch's sequences, up to StepTokens
// of them, through the model in one pass and returns the sequences whose
// queue it emptied: their Logits are the next-token logits. It returns
// nothing when no sequence has tokens queued.
func (b *Batch) Step() []*Seq {
	budget := b.opts.StepTokens
	b.rows, b.segs, b.ready = b.rows[:0], b.segs[:0], b.ready[:0]
	take := make(map[*Seq]int, len(b.seqs))
	for _, s := range b.seqs { // one token for everyone first
		if len(s.pending) > 0 && budget > 0 {
			take[s] = 1
			budget--
		}
	}
	for _, s := range b.seqs { // then prompts, oldest first
		if t, ok := take[s]; ok && budget > 0 {
			more := min(len(s.pending)-t, budget)
			take[s] += more
			budget -= more
		}
	}
	for _, s := range b.seqs {
		t := take[s]
		if t == 0 {
			continue
		}
		r0 := len(b.rows)
		for i := range t {
			b.rows = append(b.rows, batchRow{s: s, pos: s.pos + i})
		}
		b.segs = append(b.segs, segment{s: s, r0: r0, r1: len(b.rows)})
		if t == len(s.pending) {
			b.ready = append(b.ready, s)
		}
	}
	if len(b.rows) == 0 {
		return nil
	}
	b.forward()
	return b.ready
}

// forward runs b.rows through the model: Session.forward's embeddings,
// the same Model.runLayers, and the output of the ready rows only.
func (b *Batch) forward() {
	m, c := b.m, b.m.Config
	n, D, kvDim := len(b.rows), c.HiddenSize, c.NumKVHeads*c.HeadDim
	eps, off := float32(c.RMSNormEps), c.NormOffset
	half := c.RotaryDim / 2

	for _, g := range b.segs {
		g.s.grow(g.s.pos + g.r1 - g.r0)
	}
	x := b.x[:n*D]
	for _, g := range b.segs {
		for t := g.r0; t < g.r1; t++ {
			m.embed.Row(x[t*D:(t+1)*D], g.s.pending[t-g.r0])
			if c.EmbedScale != 1 {
				scale(x[t*D:(t+1)*D], c.EmbedScale)
			}
		}
	}
	b.probe(-1, x)
	for t, r := range b.rows {
		m.global.table(b.gcos[t*half:], b.gsin[t*half:], r.pos)
		if c.RopeLocalTheta > 0 {
			m.local.table(b.lcos[t*half:], b.lsin[t*half:], r.pos)
		}
	}
	m.runLayers(&b.scratch, n, b, func(l int, k, v []float32) {
		for t, r := range b.rows {
			copy(r.s.kc[l][r.pos*kvDim:(r.pos+1)*kvDim], k[t*kvDim:(t+1)*kvDim])
			copy(r.s.vc[l][r.pos*kvDim:(r.pos+1)*kvDim], v[t*kvDim:(t+1)*kvDim])
		}
	}, b.attend)

	// Final norm of the ready sequences' last rows only, and one output
	// product for all of them.
	nr, V := len(b.ready), c.VocabSize
	if cap(b.hid) < nr*D {
		b.hid = make([]float32, nr*D)
	}
	if cap(b.logits) < nr*V {
		b.logits = make([]float32, nr*V)
	}
	hid, logits := b.hid[:nr*D], b.logits[:nr*V]
	i := 0
	for _, g := range b.segs {
		s := g.s
		s.pos += g.r1 - g.r0
		s.pending = s.pending[g.r1-g.r0:]
		s.logits = nil
		if len(s.pending) == 0 {
			t := g.r1 - 1
			normRows(hid[i*D:(i+1)*D], x[t*D:(t+1)*D], m.norm, D, eps, off)
			s.logits = logits[i*V : (i+1)*V : (i+1)*V]
			i++
		}
	}
	if nr > 0 {
		kernels.MatMul(logits, m.lmHead, hid, nr)
		if c.FinalSoftcap > 0 {
			softcap(logits, float32(c.FinalSoftcap))
		}
	}
	for _, s := range b.ready {
		if len(s.pending) == 0 {
			s.pending = nil // let the prompt's memory go
		}
		if s.err == nil && !finite(s.logits) {
			if s.bad == -2 {
				s.bad, s.badPos = c.NumLayers, b.rows[0].pos
				for _, g := range b.segs {
					if g.s == s {
						s.badPos = b.rows[g.r0].pos
					}
				}
			}
			s.err = nonFinite(s.badPos, s.bad, c.NumLayers)
		}
	}
}

// probe records stage as the first non-finite one of every sequence whose
// rows of x (the residual stream after that stage) are not finite.
func (b *Batch) probe(stage int, x []float32) {
	D := b.m.Config.HiddenSize
	for _, g := range b.segs {
		if g.s.bad == -2 && !finite(x[g.r0*D:g.r1*D]) {
			g.s.bad, g.s.badPos = stage, b.rows[g.r0].pos
		}
	}
}

var scoresPool sync.Pool

// attend computes every row's attention over its own sequence's cache.
// The units shared out over the threads are (segment, head) pairs; each
// query's computation is Session.attend's.
func (b *Batch) attend(l int, q, att []float32, window int) {
	c := b.m.Config
	qDim := c.NumHeads * c.HeadDim
	H := c.NumHeads
	work, longest := 0, 0
	for _, g := range b.segs {
		n := g.r1 - g.r0
		end := b.rows[g.r1-1].pos + 1
		work += n * end * qDim * 2
		longest = max(longest, end)
	}
	kernels.Parallel(len(b.segs)*H, work, func(u0, u1 int) {
		p, _ := scoresPool.Get().(*[]float32)
		if p == nil || cap(*p) < longest {
			p = new([]float32)
			*p = make([]float32, longest)
		}
		defer scoresPool.Put(p)
		for u := u0; u < u1; u++ {
			g, h := b.segs[u/H], u%H
			kc, vc := g.s.kc[l], g.s.vc[l]
			for t := g.r0; t < g.r1; t++ {
				attendHead(c, att[t*qDim:], q[t*qDim:], kc, vc, *p, h, b.rows[t].pos, window)
			}
		}
	})
}

// grow makes room for n positions in s's cache, doubling up to its
// reservation so that decoding a token at a time reallocates rarely.
func (s *Seq) grow(n int) {
	c := s.b.m.Config
	kvDim := c.NumKVHeads * c.HeadDim
	if len(s.kc[0]) >= n*kvDim {
		return
	}
	size := min(s.maxSeq, max(n, 2*len(s.kc[0])/kvDim, 64)) * kvDim
	for l := range s.kc {
		s.kc[l] = append(make([]float32, 0, size), s.kc[l][:s.pos*kvDim]...)[:size]
		s.vc[l] = append(make([]float32, 0, size), s.vc[l][:s.pos*kvDim]...)[:size]
	}
}
