package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The model's vocabulary and merges are the bulk of a tokenizer.json (262k
// entries and 500k merges for Gemma 3). encoding/json decodes them an order
// of magnitude slower than this small scanner, which understands only the
// two shapes needed: an object of string -> integer, and an array of merges
// (either "a b" strings or ["a", "b"] pairs).

type jsonScanner struct {
	data []byte
	pos  int
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *jsonScanner) skipSpace() {
	data, pos := s.data, s.pos
	for pos < len(data) {
		c := data[pos]
		if c > ' ' || c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			break
		}
		pos++
	}
	s.pos = pos
}

// strStop marks the bytes that end the fast scan of a string: the quote,
// a backslash, control characters and the non-ASCII bytes (which need a
// UTF-8 check).
var strStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// scanStr moves past the body of a string whose opening quote is behind
// s.pos, stopping after the closing quote, and checks it as str does.
// slow reports a string that str must read instead: one with an escape or
// with no end (s.pos is then somewhere in it).
func (s *jsonScanner) scanStr() (slow bool, err error) {
	data, pos := s.data, s.pos
	bad := false
	for {
		for pos < len(data) && !strStop[data[pos]] {
			pos++
		}
		if pos >= len(data) {
			s.pos = pos
			return true, nil
		}
		c := data[pos]
		switch {
		case c == '"':
			s.pos = pos + 1
			if bad {
				return false, s.errorf("invalid UTF-8 in string")
			}
			return false, nil
		case c == '\\':
			s.pos = pos
			return true, nil
		case c < 0x20:
			s.pos = pos
			return false, s.errorf("control character in string")
		}
		// A multi-byte character: the common two-byte ones inline. It
		// cannot run into the quote, which is no continuation byte.
		if c >= 0xC2 && c <= 0xDF && pos+1 < len(data) && data[pos+1]&0xC0 == 0x80 {
			pos += 2
			continue
		}
		r, n := utf8.DecodeRune(data[pos:])
		bad = bad || r == utf8.RuneError && n == 1
		pos += n
	}
}

// expect consumes c after optional white space.
func (s *jsonScanner) expect(c byte) error {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of JSON, want %q", c)
	}
	if s.data[s.pos] != c {
		return s.errorf("unexpected %q, want %q", s.data[s.pos], c)
	}
	s.pos++
	return nil
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// strBytes reads a JSON string; without escapes the result aliases the
// input (no allocation).
func (s *jsonScanner) strBytes() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.pos
	slow, err := s.scanStr()
	if err != nil {
		return nil, err
	}
	if !slow {
		return s.data[start : s.pos-1], nil
	}
	s.pos = start - 1
	v, err := s.str()
	return []byte(v), err
}

// str reads a JSON string.
func (s *jsonScanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.pos
	slow, err := s.scanStr()
	if err != nil {
		return "", err
	}
	if !slow {
		return string(s.data[start : s.pos-1]), nil
	}
	// The slow path: escapes (or an unterminated string) from s.pos on.
	var b strings.Builder
	b.Write(s.data[start:s.pos])
	for {
		if s.pos >= len(s.data) {
			return "", s.errorf("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			v := b.String()
			if !utf8.ValidString(v) {
				return "", s.errorf("invalid UTF-8 in string")
			}
			return v, nil
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c != '\\':
			b.WriteByte(c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			return "", s.errorf("unterminated escape")
		}
		e := s.data[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, err := s.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// As encoding/json: a following \uXXXX is consumed only
				// when it completes a valid pair; otherwise the lone
				// surrogate becomes U+FFFD and the next escape is read
				// on its own.
				pair := utf8.RuneError
				save := s.pos
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					s.pos += 2
					if lo, err := s.hex4(); err == nil {
						pair = utf16.DecodeRune(r, lo)
					}
				}
				if pair == utf8.RuneError {
					s.pos = save
				}
				r = pair
			}
			b.WriteRune(r)
		default:
			return "", s.errorf("invalid escape \\%c", e)
		}
	}
}

func (s *jsonScanner) hex4() (rune, error) {
	if s.pos+4 > len(s.data) {
		return 0, s.errorf("short \\u escape")
	}
	v, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 32)
	if err != nil {
		return 0, s.errorf("bad \\u escape")
	}
	s.pos += 4
	return rune(v), nil
}

// integer reads a non-negative JSON integer that fits an int32.
func (s *jsonScanner) integer() (int, error) {
	s.skipSpace()
	start := s.pos
	v := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		v = v*10 + int(s.data[s.pos]-'0')
		if v > 1<<31-1 {
			return 0, s.errorf("id too large")
		}
		s.pos++
	}
	if s.pos == start {
		return 0, s.errorf("want a non-negative integer id")
	}
	return v, nil
}

// parseVocab parses {"token": id, ...}.
func parseVocab(data []byte) (map[string]int, error) {
	l, err := scanVocab(data)
	if err != nil {
		return nil, err
	}
	return l.toMap(), nil
}

// growFor returns s with room for n more elements, at least doubling its
// capacity when it has to grow: append alone grows a large slice by a
// quarter, copying each element about four times over, where the lists
// that a tokenizer.json is read into cannot be sized in advance.
func growFor[S ~[]E, E any](s S, n int) S {
	if len(s)+n <= cap(s) {
		return s
	}
	return slices.Grow(s, max(n, len(s)))
}

// vocabList is a vocabulary object as read, entry by entry: keys holds all
// the keys, so that the strings of a vocabulary share one allocation (a
// quarter of a million small ones cost more than the scan).
type vocabList struct {
	keys string
	ends []int // ends[i] is where key i ends in keys
	ids  []int32
}

func (l *vocabList) len() int { return len(l.ends) }

func (l *vocabList) key(i int) string {
	start := 0
	if i > 0 {
		start = l.ends[i-1]
	}
	return l.keys[start:l.ends[i]]
}

// toMap returns the vocabulary as a map: the last of duplicate keys wins,
// as in encoding/json.
func (l *vocabList) toMap() map[string]int {
	vocab := make(map[string]int, l.len())
	start := 0
	for i, end := range l.ends {
		vocab[l.keys[start:end]] = int(l.ids[i])
		start = end
	}
	return vocab
}

// scanVocab reads {"token": id, ...}.
func scanVocab(data []byte) (*vocabList, error) {
	s := &jsonScanner{data: data}
	return s.vocab()
}

// vocab reads {"token": id, ...} at s.pos.
func (s *jsonScanner) vocab() (*vocabList, error) {
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	l := &vocabList{}
	if s.peek() == '}' {
		s.pos++
		return l, nil
	}
	// Where the object ends is not known yet: let appends size the lists.
	buf := make([]byte, 0, 1<<16)
	l.ends = make([]int, 0, 1<<12)
	l.ids = make([]int32, 0, 1<<12)
	for {
		k, err := s.strBytes()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		v, err := s.integer()
		if err != nil {
			return nil, err
		}
		buf = append(growFor(buf, len(k)), k...)
		l.ends = append(growFor(l.ends, 1), len(buf))
		l.ids = append(growFor(l.ids, 1), int32(v))
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			l.keys = string(buf)
			return l, nil
		default:
			return nil, s.errorf("want ',' or '}' in vocab")
		}
	}
}

// parseMerges parses ["a b", ...] or [["a", "b"], ...], looking the two
// tokens up with id.
func parseMerges(data []byte, id func(tok []byte) (int, bool)) ([][2]int32, error) {
	var merges [][2]int32
	s := &jsonScanner{data: data}
	null, err := s.eachMerge(func(a, b []byte) error {
		x, ok1 := id(a)
		y, ok2 := id(b)
		if !ok1 || !ok2 {
			return unknownMerge(len(merges), a, b)
		}
		merges = append(merges, [2]int32{int32(x), int32(y)})
		return nil
	})
	if err != nil || null {
		return nil, err
	}
	if merges == nil {
		merges = [][2]int32{}
	}
	return merges, nil
}

// unknownMerge is the error for merge i, of a and b, when one of them is
// not in the vocabulary.
func unknownMerge(i int, a, b []byte) error {
	return fmt.Errorf("merge %d (%q %q) uses a token that is not in the vocabulary", i, a, b)
}

// eachMerge reads the merges at s.pos as parseMerges does, handing each
// one's two tokens (which alias s.data unless escaped) to add, and stops
// at add's first error. null reports a null instead of an array.
func (s *jsonScanner) eachMerge(add func(a, b []byte) error) (null bool, err error) {
	if s.peek() == 'n' && bytes.HasPrefix(s.data[s.pos:], []byte("null")) {
		return true, nil
	}
	if err := s.expect('['); err != nil {
		return false, err
	}
	if s.peek() == ']' {
		s.pos++
		return false, nil
	}
	for i := 0; ; i++ {
		var a, b []byte
		switch s.peek() {
		case '"':
			line, err := s.strBytes()
			if err != nil {
				return false, err
			}
			j := bytes.IndexByte(line, ' ')
			if j < 0 || bytes.IndexByte(line[j+1:], ' ') >= 0 {
				return false, fmt.Errorf("merge %d: %q is not two tokens separated by one space", i, line)
			}
			a, b = line[:j], line[j+1:]
		case '[':
			s.pos++
			var err error
			if a, err = s.strBytes(); err != nil {
				return false, err
			}
			if err := s.expect(','); err != nil {
				return false, err
			}
			if b, err = s.strBytes(); err != nil {
				return false, err
			}
			if err := s.expect(']'); err != nil {
				return false, err
			}
		default:
			return false, s.errorf("want a merge (string or pair)")
		}
		if err := add(a, b); err != nil {
			return false, err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return false, nil
		default:
			return false, s.errorf("want ',' or ']' in merges")
		}
	}
}

var errNoModel = errors.New("tokenizer.json has no model")

// maxJSONDepth bounds the nesting of tokenizer.json (real files nest about
// six levels; encoding/json stops at 10000 with a less clear message).
const maxJSONDepth = 1000

// skipValue moves past one JSON value, checking only its bracket and
// string structure (the parts handed to encoding/json are validated there).
// The value is nested in base levels of objects and arrays, which count
// towards maxJSONDepth.
func (s *jsonScanner) skipValue(base int) error {
	depth := base
	for {
		switch c := s.peek(); c {
		case 0:
			return s.errorf("unexpected end of JSON")
		case '"':
			if _, err := s.strBytes(); err != nil {
				return err
			}
		case '{', '[':
			s.pos++
			depth++
			if depth > maxJSONDepth {
				return s.errorf("JSON nested deeper than %d levels (limit)", maxJSONDepth)
			}
			continue
		case '}', ']':
			if depth == base {
				return s.errorf("unexpected %q", c)
			}
			s.pos++
			depth--
		case ',', ':':
			if depth == base {
				return s.errorf("unexpected %q", c)
			}
			s.pos++
			continue
		default: // a number, true, false or null
			start := s.pos
			for s.pos < len(s.data) && !literalEnd[s.data[s.pos]] {
				s.pos++
			}
			if s.pos == start {
				return s.errorf("unexpected %q", c)
			}
		}
		if depth == base {
			return nil
		}
	}
}

// literalEnd marks the bytes that end a number or literal for skipValue.
var literalEnd = func() (t [256]bool) {
	for _, c := range []byte(" \t\r\n,:]}[{\"") {
		t[c] = true
	}
	return t
}()

// splitObject returns the raw values of a JSON object's keys, sharing
// data's memory: the large vocabulary is never copied.
func splitObject(data []byte) (map[string]json.RawMessage, error) {
	s := &jsonScanner{data: data}
	out, err := s.object(0, nil)
	if err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, s.errorf("data after the end of the object")
	}
	return out, nil
}

// object reads the object at s.pos as splitObject does; its values count
// as nested in base levels (splitObject's in none). read, when not nil, may read the value of key itself from
// s.pos (past white space) and report true; when it reports false, the
// value is skipped from where it starts, whatever read consumed.
func (s *jsonScanner) object(base int, read func(key string) bool) (map[string]json.RawMessage, error) {
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if s.peek() == '}' {
		s.pos++
		return out, nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		s.skipSpace()
		start := s.pos
		if read == nil || !read(k) {
			s.pos = start
			if err := s.skipValue(base); err != nil {
				return nil, err
			}
		}
		out[k] = s.data[start:s.pos]
		c := s.peek()
		s.pos++
		if c == '}' {
			return out, nil
		}
		if c != ',' {
			return nil, s.errorf("want ',' or '}' in object")
		}
	}
}

// parseAddedTokens reads tokenizer.json's added_tokens when they have the
// plain shape that files have: an array of objects whose keys are the
// AddedToken fields' own names, each at most once, with a non-negative
// integer id, a string content and true or false for the rest. ok is
// false for anything else (null, other keys, keys in other cases, other
// numbers), which is left to encoding/json; what this accepts,
// encoding/json reads the same way. Gemma 3 has 6415 added tokens, which
// encoding/json took 25 ms to read.
func parseAddedTokens(data []byte) (toks []AddedToken, ok bool) {
	s := &jsonScanner{data: data}
	if s.expect('[') != nil {
		return nil, false
	}
	toks = []AddedToken{}
	if s.peek() == ']' {
		s.pos++
		return toks, s.end()
	}
	for {
		t, ok := s.addedToken()
		if !ok {
			return nil, false
		}
		toks = append(toks, t)
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return toks, s.end()
		default:
			return nil, false
		}
	}
}

// end reports whether only white space is left.
func (s *jsonScanner) end() bool {
	s.skipSpace()
	return s.pos == len(s.data)
}

// addedToken reads one object of parseAddedTokens.
func (s *jsonScanner) addedToken() (t AddedToken, ok bool) {
	if s.expect('{') != nil {
		return t, false
	}
	if s.peek() == '}' {
		s.pos++
		return t, true
	}
	var seen uint8
	for {
		k, err := s.strBytes()
		if err != nil || s.expect(':') != nil {
			return t, false
		}
		var bit uint8
		var flag *bool
		switch string(k) {
		case "id":
			bit = 1
			s.skipSpace()
			if s.pos+1 < len(s.data) && s.data[s.pos] == '0' && s.data[s.pos+1] >= '0' && s.data[s.pos+1] <= '9' {
				return t, false // a leading zero: not JSON
			}
			if t.ID, err = s.integer(); err != nil {
				return t, false
			}
		case "content":
			bit = 2
			if t.Content, err = s.str(); err != nil {
				return t, false
			}
		case "single_word":
			bit, flag = 4, &t.SingleWord
		case "lstrip":
			bit, flag = 8, &t.LStrip
		case "rstrip":
			bit, flag = 16, &t.RStrip
		case "normalized":
			bit, flag = 32, &t.Normalized
		case "special":
			bit, flag = 64, &t.Special
		default:
			return t, false
		}
		if seen&bit != 0 {
			return t, false
		}
		seen |= bit
		if flag != nil {
			s.skipSpace()
			switch rest := s.data[s.pos:]; {
			case bytes.HasPrefix(rest, []byte("true")):
				*flag = true
				s.pos += 4
			case bytes.HasPrefix(rest, []byte("false")):
				s.pos += 5
			default:
				return t, false
			}
			if s.pos < len(s.data) && !literalEnd[s.data[s.pos]] {
				return t, false // as in "truex"
			}
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return t, true
		default:
			return t, false
		}
	}
}
