package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A piece is one part of a segment during pre-tokenization. atStart marks a
// piece that begins at offset 0 of the input text (Metaspace's "first"
// prepend scheme needs it).
type piece struct {
	s       string
	atStart bool
}

// A preTokenizer splits (and may rewrite) pieces, appending them to dst.
type preTokenizer interface {
	split(dst []piece, p piece) []piece
}

type preSeq []preTokenizer

func (q preSeq) split(dst []piece, p piece) []piece {
	cur := []piece{p}
	var next []piece
	for _, pt := range q {
		next = next[:0]
		for _, c := range cur {
			next = pt.split(next, c)
		}
		cur, next = next, cur
	}
	return append(dst, cur...)
}

// Split behaviours (SplitDelimiterBehavior in the reference).
const (
	removed = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func parseBehavior(s string) (int, error) {
	switch strings.ToLower(s) {
	case "removed":
		return removed, nil
	case "isolated":
		return isolated, nil
	case "mergedwithprevious", "merged_with_previous":
		return mergedWithPrevious, nil
	case "mergedwithnext", "merged_with_next":
		return mergedWithNext, nil
	case "contiguous":
		return contiguous, nil
	}
	return 0, fmt.Errorf("split behavior %q is not supported", s)
}

// span is a part of a piece and whether it matched the pattern.
type span struct {
	start, end int
	match      bool
}

// splitSpans turns matches into pieces according to behavior.
func splitSpans(dst []piece, p piece, matches [][2]int, behavior int, invert bool) []piece {
	s := p.s
	if s == "" {
		return dst
	}
	var buf [32]span
	spans := buf[:0]
	prev := 0
	for _, m := range matches {
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], false})
		}
		if m[1] > m[0] {
			spans = append(spans, span{m[0], m[1], true})
		}
		prev = m[1]
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	out := spans[:0:0]
	switch behavior {
	case removed:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case isolated:
		out = spans
	case mergedWithPrevious:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	case mergedWithNext:
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case contiguous:
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	}
	for _, sp := range out {
		if sp.end > sp.start {
			dst = append(dst, piece{s[sp.start:sp.end], p.atStart && sp.start == 0})
		}
	}
	return dst
}

// splitPre is the Split pre-tokenizer.
type splitPre struct {
	pat      finder
	behavior int
	invert   bool
}

func (sp splitPre) split(dst []piece, p piece) []piece {
	if sc, ok := sp.pat.(tiler); ok && sp.behavior == isolated && !sp.invert {
		return sc.tile(dst, p)
	}
	var buf [64][2]int
	return splitSpans(dst, p, sp.pat.findAll(p.s, buf[:0]), sp.behavior, sp.invert)
}

// charSplit splits on every character for which is returns true.
type charSplit struct {
	is       func(rune) bool
	behavior int
}

func (cs charSplit) split(dst []piece, p piece) []piece {
	var buf [64][2]int
	ms := buf[:0]
	for i, r := range p.s {
		if cs.is(r) {
			ms = append(ms, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return splitSpans(dst, p, ms, cs.behavior, false)
}

// byteLevel is the ByteLevel pre-tokenizer. When it is the last step, the
// byte-to-character mapping is left to the model (mapBytes false), which
// then maps only words it has not cached.
type byteLevel struct {
	addPrefixSpace bool
	useRegex       bool
	mapBytes       bool
}

func (b byteLevel) split(dst []piece, p piece) []piece {
	s := p.s
	if b.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	n := len(dst)
	if b.useRegex {
		dst = gpt2Scanner{}.tile(dst, piece{s, p.atStart})
	} else if s != "" {
		dst = append(dst, piece{s, p.atStart})
	}
	if b.mapBytes {
		for i := n; i < len(dst); i++ {
			dst[i].s = byteLevelString(dst[i].s)
		}
	}
	return dst
}

// metaspace is the Metaspace pre-tokenizer.
type metaspace struct {
	replacement string
	scheme      string // "always", "never" or "first"
	splitWords  bool
}

func (m metaspace) split(dst []piece, p piece) []piece {
	s := strings.ReplaceAll(p.s, " ", m.replacement)
	switch m.scheme {
	case "always":
		if !strings.HasPrefix(s, m.replacement) {
			s = m.replacement + s
		}
	case "first":
		if !strings.HasPrefix(s, m.replacement) && p.atStart {
			s = m.replacement + s
		}
	}
	q := piece{s, p.atStart}
	if !m.splitWords {
		if s == "" {
			return dst
		}
		return append(dst, q)
	}
	return splitSpans(dst, q, literal(m.replacement).findAll(s, nil), mergedWithNext, false)
}

// whitespacePre is the Whitespace pre-tokenizer: \w+|[^\w\s]+, the rest
// removed.
type whitespacePre struct{}

func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || unicode.Is(unicode.Pc, r)
}

func (whitespacePre) split(dst []piece, p piece) []piece {
	var buf [64][2]int
	ms := buf[:0]
	s := p.s
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += n
			continue
		}
		w := isWord(r)
		j := i + n
		for j < len(s) {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if unicode.IsSpace(r2) || isWord(r2) != w {
				break
			}
			j += n2
		}
		ms = append(ms, [2]int{i, j})
		i = j
	}
	return splitSpans(dst, p, ms, removed, true)
}

// isPunct is ASCII punctuation (symbols included, as Rust's
// is_ascii_punctuation) or a Unicode punctuation character.
func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return '!' <= r && r <= '/' || ':' <= r && r <= '@' || '[' <= r && r <= '`' || '{' <= r && r <= '~'
	}
	return unicode.IsPunct(r)
}

type preTokenizerJSON struct {
	Type           string            `json:"type"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Pattern        patternJSON       `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	Split          *bool             `json:"split"`
	Individual     bool              `json:"individual_digits"`
	Delimiter      string            `json:"delimiter"`
}

func newPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var j preTokenizerJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %v", err)
	}
	switch j.Type {
	case "Sequence":
		var q preSeq
		for _, r := range j.Pretokenizers {
			pt, err := newPreTokenizer(r)
			if err != nil {
				return nil, err
			}
			if pt != nil {
				q = append(q, pt)
			}
		}
		return q, nil
	case "Split":
		f, err := j.Pattern.finder()
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %v", err)
		}
		b, err := parseBehavior(j.Behavior)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %v", err)
		}
		return splitPre{f, b, j.Invert}, nil
	case "ByteLevel":
		b := byteLevel{addPrefixSpace: true, useRegex: true, mapBytes: true}
		if j.AddPrefixSpace != nil {
			b.addPrefixSpace = *j.AddPrefixSpace
		}
		if j.UseRegex != nil {
			b.useRegex = *j.UseRegex
		}
		return b, nil
	case "Metaspace":
		m := metaspace{replacement: j.Replacement, scheme: "always", splitWords: true}
		if m.replacement == "" {
			m.replacement = "▁"
		}
		if j.Split != nil {
			m.splitWords = *j.Split
		}
		switch {
		case j.PrependScheme != "":
			m.scheme = strings.ToLower(j.PrependScheme)
			if m.scheme != "always" && m.scheme != "never" && m.scheme != "first" {
				return nil, fmt.Errorf("pre_tokenizer Metaspace: prepend_scheme %q is not supported", j.PrependScheme)
			}
		case j.AddPrefixSpace != nil && !*j.AddPrefixSpace:
			m.scheme = "never"
		}
		return m, nil
	case "Digits":
		b := contiguous
		if j.Individual {
			b = isolated
		}
		return charSplit{unicode.IsNumber, b}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return charSplit{unicode.IsSpace, removed}, nil
	case "Punctuation":
		b := isolated
		if j.Behavior != "" {
			var err error
			if b, err = parseBehavior(j.Behavior); err != nil {
				return nil, fmt.Errorf("pre_tokenizer Punctuation: %v", err)
			}
		}
		return charSplit{isPunct, b}, nil
	case "BertPreTokenizer":
		return preSeq{charSplit{unicode.IsSpace, removed}, charSplit{isPunct, isolated}}, nil
	case "CharDelimiterSplit":
		d, n := utf8.DecodeRuneInString(j.Delimiter)
		if n == 0 || n != len(j.Delimiter) {
			return nil, fmt.Errorf("pre_tokenizer CharDelimiterSplit: delimiter %q is not one character", j.Delimiter)
		}
		return charSplit{func(r rune) bool { return r == d }, removed}, nil
	}
	return nil, fmt.Errorf("pre_tokenizer %q is not supported", j.Type)
}

// lastByteLevel reports whether pt ends in a ByteLevel step, and turns off
// that step's eager byte mapping so the model does it (after its cache).
func lastByteLevel(pt preTokenizer) (preTokenizer, bool) {
	switch v := pt.(type) {
	case byteLevel:
		v.mapBytes = false
		if !v.useRegex && !v.addPrefixSpace {
			return nil, true // nothing left to do before the model
		}
		return v, true
	case preSeq:
		if len(v) == 0 {
			return v, false
		}
		last, ok := lastByteLevel(v[len(v)-1])
		if !ok {
			return v, false
		}
		q := append(preSeq(nil), v[:len(v)-1]...)
		if last != nil {
			q = append(q, last)
		}
		if len(q) == 1 {
			return q[0], true
		}
		return q, true
	}
	return pt, false
}

// Byte-level mapping of GPT-2: every byte is shown as a printable
// character, so that BPE can work on characters.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	n := 0
	for b := range 256 {
		if '!' <= b && b <= '~' || '¡' <= b && b <= '¬' || '®' <= b && b <= 'ÿ' {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

func byteLevelString(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}
