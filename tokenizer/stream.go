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
//
// Only a window of recent tokens is decoded on each Add, so a long stream
// costs linear time. The window starts with a context token whose text was
// given out already, which keeps first-token rules (Metaspace, Strip) from
// applying again; it slides only after checking that the shorter window
// decodes to the same tail of text.
type Stream struct {
	t           *Tokenizer
	skipSpecial bool
	toks        []string // the window of token strings
	given       string   // the part of the window's text given out
	window      int      // window length that triggers a slide
	keep        int      // tokens kept when sliding
	slideAt     int      // the next window length to try sliding at
}

// NewStream starts a streaming decode.
func (t *Tokenizer) NewStream(skipSpecial bool) *Stream {
	return &Stream{t: t, skipSpecial: skipSpecial, window: 32, keep: 8, slideAt: 32}
}

// Add appends id and returns the newly completed text (often "").
func (s *Stream) Add(id int) string {
	n := len(s.toks)
	s.toks = append(s.toks, s.t.tokenStrings([]int{id}, s.skipSpecial)...)
	if len(s.toks) == n {
		return ""
	}
	full := s.t.decodeTokens(s.toks)
	inc := s.emit(full, s.stable(full))
	if len(s.toks) >= s.slideAt {
		s.slide(full)
	}
	return inc
}

// Flush returns the text held back and ends the stream: a later Add
// starts a new one, as after Reset.
func (s *Stream) Flush() string {
	full := s.t.decodeTokens(s.toks)
	rest := s.emit(full, len(full))
	s.Reset()
	return rest
}

// Reset forgets all ids.
func (s *Stream) Reset() {
	s.toks = s.toks[:0]
	s.given = ""
	s.slideAt = s.window
}

func (s *Stream) emit(full string, limit int) string {
	done := len(s.given)
	if limit <= done || !strings.HasPrefix(full, s.given) {
		return ""
	}
	s.given = full[:limit]
	return full[done:limit]
}

// slide drops old tokens from the window when that provably keeps the
// text of the tokens after the new context token unchanged.
func (s *Stream) slide(full string) {
	j := len(s.toks) - s.keep
	for j > 0 {
		if _, isByte := byteToken(s.toks[j]); !isByte {
			break
		}
		j--
	}
	ok := false
	if j > 0 {
		b := s.t.decodeTokens(s.toks[j:])
		ctx := s.t.decodeTokens(s.toks[j : j+1])
		tail := b[min(len(ctx), len(b)):]
		cut := len(full) - len(tail)
		if strings.HasPrefix(b, ctx) && strings.HasSuffix(full, tail) && cut <= len(s.given) &&
			!strings.ContainsRune(ctx, utf8.RuneError) && strings.HasPrefix(full, s.given) {
			s.given = b[:len(ctx)+len(s.given)-cut]
			s.toks = append(s.toks[:0], s.toks[j:]...)
			ok = true
		}
	}
	if ok {
		s.slideAt = s.window
	} else {
		s.slideAt = len(s.toks) + s.keep // try again a little later
	}
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

// Piece returns the text id adds after the ids prev: the decode of prev
// and id less the decode of prev, so that the pieces of a sequence join up
// to its text, the spaces and first-token rules of the decoder included.
// The pieces are raw bytes: a token that is part of a UTF-8 character
// gives its own bytes, not U+FFFD. Special ids in prev are skipped, as in
// a Stream that skips them; a special id's piece is its content. Where
// clean-up removes text before id (" 's" becomes "'s"), which no piece
// can take back, the piece is id's text before clean-up.
//
// Only prev is decoded, so a few ids before id are enough context and
// keep the cost per token constant.
func (t *Tokenizer) Piece(prev []int, id int) string {
	if t.IsSpecial(id) {
		return t.TokenString(id)
	}
	ctx := t.tokenStrings(prev, true)
	toks := append(ctx, t.tokenStrings([]int{id}, false)...)
	if len(toks) == len(ctx) {
		return ""
	}
	before, after := t.join(t.rawDec, ctx), t.join(t.rawDec, toks)
	if t.cleanup {
		b, a := cleanUpSpaces(before), cleanUpSpaces(after)
		if strings.HasPrefix(a, b) {
			return a[len(b):]
		}
	}
	// The decoder may still change the end of prev's text (a Strip of
	// trailing spaces): the piece is what follows the common part.
	return after[commonPrefix(before, after):]
}
