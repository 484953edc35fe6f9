package engine

import "fmt"

// A NaN or infinity in a weight matrix spreads through the residual stream
// and the KV cache to every later logit: without a check, generation
// decodes garbage and scoring prints NaN. Forward and ForwardAll test the
// logits they return (a few microseconds per step); only when those are not
// finite is the failing batch run again, checking the activations after
// every layer, to say where they first went wrong.

// NonFiniteError reports logits that are NaN or infinite.
type NonFiniteError struct {
	Pos   int    // position of the first token of the batch whose logits are not finite
	Layer int    // first layer whose output is not finite; -1: the embeddings, NumLayers: the final norm and lm_head
	Where string // that place, in words
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("engine: the logits are NaN or infinite (batch at position %d): the activations first became non-finite %s (weights holding NaN or Inf, or so large they overflow: moco inspect --check MODEL scans them)", e.Pos, e.Where)
}

// finite reports whether x holds no NaN or infinity (x-x is NaN for both).
func finite(x []float32) bool {
	for _, v := range x {
		if v-v != 0 {
			return false
		}
	}
	return true
}

// probeState is set while a failing batch is re-run: after the embeddings
// and every layer, the residual stream is checked.
type probeState struct {
	on  bool
	bad int // first non-finite stage: -1 embeddings, l a layer, NumLayers the output; -2 none yet
}

// probe records stage as the first non-finite one when x is not finite.
func (s *Session) probe(stage int, x []float32) {
	if s.probing.on && s.probing.bad == -2 && !finite(x) {
		s.probing.bad = stage
	}
}

// checkLogits returns nil when logits are finite. Otherwise it rewinds the
// session to start, re-runs tokens (the batch fed from start) checking every
// layer, rewinds again and returns a *NonFiniteError: the session is left as
// it was before the failing call.
func (s *Session) checkLogits(logits []float32, start int, tokens []int) error {
	if finite(logits) {
		return nil
	}
	s.pos = start
	s.probing = probeState{on: true, bad: -2}
	for len(tokens) > 0 && s.probing.bad == -2 {
		n := min(len(tokens), chunk)
		s.forward(tokens[:n], nil, true)
		tokens = tokens[n:]
	}
	if s.probing.bad == -2 && !finite(s.logits) {
		s.probing.bad = s.m.Config.NumLayers
	}
	bad := s.probing.bad
	s.probing = probeState{}
	s.pos = start
	return nonFinite(start, bad, s.m.Config.NumLayers)
}

// nonFinite is the error for logits that went non-finite first at stage
// bad (see probeState) in the batch starting at pos.
func nonFinite(pos, bad, layers int) *NonFiniteError {
	e := &NonFiniteError{Pos: pos, Layer: bad}
	switch {
	case bad == -1:
		e.Where = "in the token embeddings (model.embed_tokens.weight)"
	case bad >= 0 && bad < layers:
		e.Where = fmt.Sprintf("in layer %d (model.layers.%d.*)", bad, bad)
	default:
		e.Layer = layers
		e.Where = "in the final norm or the output projection (model.norm.weight, lm_head.weight)"
	}
	return e
}
