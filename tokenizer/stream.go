package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Stream turns a growing sequence of ids into text increments. Each
// increment is whole UTF-8 characters, and the increments (Flush
// included) concatenate to exactly Decode of all the ids. Text that a
// later id could still change (an unfinished UTF-8 sequence, a run of byte
// tokens, spaces that clean-up or Strip may remove) is held back.
type Stream struct {
	t           *Tokenizer
	skipSpecial bool
	toks        []string
	out         strings.Builder // the text given out so far
}

// NewStream starts a streaming decode.
func (t *Tokenizer) NewStream(skipSpecial bool) *Stream {
	return &Stream{t: t, skipSpecial: skipSpecial}
}

// Add appends id and returns the newly completed text (often "").
func (s *Stream) Add(id int) string {
	n := len(s.toks)
	s.toks = append(s.toks, s.t.tokenStrings([]int{id}, s.skipSpecial)...)
	if len(s.toks) == n {
		return ""
	}
	full := s.t.decodeTokens(s.toks)
	return s.emit(full, s.stable(full))
}

// Flush returns the text held back; the stream may go on afterwards.
func (s *Stream) Flush() string {
	full := s.t.decodeTokens(s.toks)
	return s.emit(full, len(full))
}

// Reset forgets all ids.
func (s *Stream) Reset() {
	s.toks = s.toks[:0]
	s.out.Reset()
}

func (s *Stream) emit(full string, limit int) string {
	done := s.out.Len()
	if limit <= done || !strings.HasPrefix(full, s.out.String()) {
		return ""
	}
	inc := full[done:limit]
	s.out.WriteString(inc)
	return inc
}

// stable returns how much of full no later id can change.
func (s *Stream) stable(full string) int {
	t := s.t
	limit := len(full)
	if t.hasByteFallback {
		k := len(s.toks)
		for k > 0 {
			if _, ok := byteToken(s.toks[k-1]); !ok {
				break
			}
			k--
		}
		if k < len(s.toks) {
			limit = commonPrefix(full, t.decodeTokens(s.toks[:k]))
		}
	}
	// An unfinished UTF-8 sequence decodes as U+FFFD for now.
	for limit > 0 {
		r, size := utf8.DecodeLastRuneInString(full[:limit])
		if r != utf8.RuneError {
			break
		}
		limit -= size
	}
	if t.cleanup {
		// Clean-up patterns start with a space and are at most 4 bytes.
		for i := max(0, limit-3); i < limit; i++ {
			if full[i] == ' ' {
				limit = i
				break
			}
		}
	}
	if t.stripTrailing >= 0 {
		limit = len(strings.TrimRight(full[:limit], string(t.stripTrailing)))
	}
	for limit > 0 && limit < len(full) && !utf8.RuneStart(full[limit]) {
		limit--
	}
	return limit
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// decoderTraits finds what the stream must know about a decoder: whether
// it has ByteFallback, and the character a Strip removes at the end.
func decoderTraits(d decoder) (byteFallback bool, stripTrailing rune) {
	stripTrailing = -1
	var walk func(d decoder)
	walk = func(d decoder) {
		switch v := d.(type) {
		case decoderSeq:
			for _, x := range v {
				walk(x)
			}
		case byteFallbackDecoder:
			byteFallback = true
		case stripDecoder:
			if v.stop > 0 {
				stripTrailing = v.content
			}
		}
	}
	walk(d)
	return byteFallback, stripTrailing
}
