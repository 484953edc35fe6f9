package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// refScanner is the JSON scanner as it was before it was tuned for speed:
// the simple oracle that FuzzScannerMatchesReference holds the fast one to,
// results and errors alike.
type refScanner struct {
	data []byte
	pos  int
}

func (s *refScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *refScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// expect consumes c after optional white space.
func (s *refScanner) expect(c byte) error {
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
func (s *refScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// strBytes reads a JSON string; without escapes the result aliases the
// input (no allocation).
func (s *refScanner) strBytes() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			v := s.data[start:s.pos]
			s.pos++
			if !utf8.Valid(v) {
				return nil, s.errorf("invalid UTF-8 in string")
			}
			return v, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, s.errorf("control character in string")
		}
		s.pos++
	}
	s.pos = start - 1
	v, err := s.str()
	return []byte(v), err
}

// str reads a JSON string.
func (s *refScanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.pos
	// Fast path: no escapes.
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			v := string(s.data[start:s.pos])
			s.pos++
			if !utf8.ValidString(v) {
				return "", s.errorf("invalid UTF-8 in string")
			}
			return v, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", s.errorf("control character in string")
		}
		s.pos++
	}
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

func (s *refScanner) hex4() (rune, error) {
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
func (s *refScanner) integer() (int, error) {
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

// refParseVocab parses {"token": id, ...}.
func refParseVocab(data []byte) (map[string]int, error) {
	s := &refScanner{data: data}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	vocab := make(map[string]int, len(data)/16)
	if s.peek() == '}' {
		s.pos++
		return vocab, nil
	}
	for {
		k, err := s.str()
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
		vocab[k] = v
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return vocab, nil
		default:
			return nil, s.errorf("want ',' or '}' in vocab")
		}
	}
}

// refParseMerges parses ["a b", ...] or [["a", "b"], ...], looking the two
// tokens up with id.
func refParseMerges(data []byte, id func(tok []byte) (int, bool)) ([][2]int32, error) {
	s := &refScanner{data: data}
	if s.peek() == 'n' && strings.HasPrefix(string(data[s.pos:]), "null") {
		return nil, nil
	}
	if err := s.expect('['); err != nil {
		return nil, err
	}
	merges := make([][2]int32, 0, len(data)/16)
	if s.peek() == ']' {
		s.pos++
		return merges, nil
	}
	for {
		var a, b []byte
		switch s.peek() {
		case '"':
			line, err := s.strBytes()
			if err != nil {
				return nil, err
			}
			i := bytes.IndexByte(line, ' ')
			if i < 0 || bytes.IndexByte(line[i+1:], ' ') >= 0 {
				return nil, fmt.Errorf("merge %d: %q is not two tokens separated by one space", len(merges), line)
			}
			a, b = line[:i], line[i+1:]
		case '[':
			s.pos++
			var err error
			if a, err = s.strBytes(); err != nil {
				return nil, err
			}
			if err := s.expect(','); err != nil {
				return nil, err
			}
			if b, err = s.strBytes(); err != nil {
				return nil, err
			}
			if err := s.expect(']'); err != nil {
				return nil, err
			}
		default:
			return nil, s.errorf("want a merge (string or pair)")
		}
		x, ok1 := id(a)
		y, ok2 := id(b)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("merge %d (%q %q) uses a token that is not in the vocabulary", len(merges), a, b)
		}
		merges = append(merges, [2]int32{int32(x), int32(y)})
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return merges, nil
		default:
			return nil, s.errorf("want ',' or ']' in merges")
		}
	}
}

// refMaxJSONDepth bounds the nesting of tokenizer.json (real files nest about
// six levels; encoding/json stops at 10000 with a less clear message).
const refMaxJSONDepth = 1000

// skipValue moves past one JSON value, checking only its bracket and
// string structure (the parts handed to encoding/json are validated there).
func (s *refScanner) skipValue() error {
	depth := 0
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
			if depth > refMaxJSONDepth {
				return s.errorf("JSON nested deeper than %d levels (limit)", refMaxJSONDepth)
			}
			continue
		case '}', ']':
			if depth == 0 {
				return s.errorf("unexpected %q", c)
			}
			s.pos++
			depth--
		case ',', ':':
			if depth == 0 {
				return s.errorf("unexpected %q", c)
			}
			s.pos++
			continue
		default: // a number, true, false or null
			start := s.pos
			for s.pos < len(s.data) && !strings.ContainsRune(" \t\r\n,:]}[{\"", rune(s.data[s.pos])) {
				s.pos++
			}
			if s.pos == start {
				return s.errorf("unexpected %q", c)
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// refSplitObject returns the raw values of a JSON object's keys, sharing
// data's memory: the large vocabulary is never copied.
func refSplitObject(data []byte) (map[string]json.RawMessage, error) {
	s := &refScanner{data: data}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if s.peek() == '}' {
		s.pos++
	} else {
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
			if err := s.skipValue(); err != nil {
				return nil, err
			}
			out[k] = data[start:s.pos]
			c := s.peek()
			s.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return nil, s.errorf("want ',' or '}' in object")
			}
		}
	}
	if s.peek() != 0 {
		return nil, s.errorf("data after the end of the object")
	}
	return out, nil
}

// FuzzScannerMatchesReference checks that the tuned scanner reads any input
// exactly as the reference scanner does: the same values, the same errors.
func FuzzScannerMatchesReference(f *testing.F) {
	f.Add([]byte(`{"a": 1, "b\u00e9\n": 22, "\ud83d\ude00": 3}`))
	f.Add([]byte(`{"model": {"vocab": {"x": 0}, "merges": [["a", "b"], "c d"]}, "n": null, "t": [true, 1.5e3, {"k": "v"}]}`))
	f.Add([]byte(`["a b", "c d"]`))
	f.Add([]byte(`[["a\"", "b\\"]]`))
	f.Add([]byte("{\"\xc4\xa0a\": 1, \"\xff\": 2}"))
	f.Add([]byte("[\"a \xe2\x82\", \"b\x01\"]"))
	f.Add([]byte("{\"a\": [1, {\"b\": \"\xc3\"}], \"c\": tru\x00e}"))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(what string, err, ref error) bool {
			t.Helper()
			if (err == nil) != (ref == nil) || err != nil && err.Error() != ref.Error() {
				t.Fatalf("%s(%q): error %v, reference %v", what, data, err, ref)
			}
			return err == nil
		}
		got, err := splitObject(data)
		want, ref := refSplitObject(data)
		if same("splitObject", err, ref) && !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("splitObject(%q) = %q, reference %q", data, got, want)
		}
		vocab, err := parseVocab(data)
		refVocab, ref := refParseVocab(data)
		if same("parseVocab", err, ref) && !maps.Equal(vocab, refVocab) {
			t.Fatalf("parseVocab(%q) = %v, reference %v", data, vocab, refVocab)
		}
		if l, err := scanVocab(data); err == nil {
			x, err := newVocabIndex(l)
			if err != nil {
				t.Fatal(err)
			}
			checkIndex(t, x, refVocab)
		}
		// Ids by length, refusing the tokens that start with "x".
		id := func(b []byte) (int, bool) { return len(b), !bytes.HasPrefix(b, []byte("x")) }
		merges, err := parseMerges(data, id)
		refMerges, ref := refParseMerges(data, id)
		if same("parseMerges", err, ref) && !slices.Equal(merges, refMerges) {
			t.Fatalf("parseMerges(%q) = %v, reference %v", data, merges, refMerges)
		}
	})
}

// FuzzReadModelAhead checks that reading the model while splitting
// tokenizer.json changes nothing: the same fields and errors as
// splitObject, and the same model (or error) as building it from scratch.
func FuzzReadModelAhead(f *testing.F) {
	for _, s := range []string{
		`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[]}`,
		`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}}`,
		`{"model":{"merges":["a b"],"vocab":{"a":0,"b":1,"ab":2}}}`,
		`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"vocab":{"b":0,"a":1,"ab":2}}}`,
		`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"vocab":{"a":0}}}`,
		`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a c"]}}`,
		`{"model":{"vocab":{"a":0,"a":1,"ab":2},"merges":["a a"]}}`,
		`{"model":{"vocab":{"a":0},"merges":null,"Vocab":{"b":0}}}`,
		`{"model":{"vocab":{"a":0},"merges":[]},"MODEL":{"vocab":{"b":0}}}`,
		`{"model":{"vocab":{"a":0},"merges":[]},"model":{"vocab":{"b":0},"merges":[]}}`,
		`{"model":{"vocab":{"a":0} "merges":[]},"x":1}`,
		`{"model":{"vocab":{"a":0},"x":[[[]]],"merges":[]}}`,
		`{"model":{"type":"WordPiece","vocab":{"[UNK]":0,"a":1}}}`,
		`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"dropout":0.5}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, pre, err := splitTokenizerFile(data)
		want, ref := splitObject(data)
		if (err == nil) != (ref == nil) || err != nil && err.Error() != ref.Error() {
			t.Fatalf("splitTokenizerFile(%q): error %v, splitObject %v", data, err, ref)
		}
		if err != nil {
			return
		}
		if !maps.EqualFunc(fields, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("splitTokenizerFile(%q) = %q, splitObject %q", data, fields, want)
		}
		raw, ok := fields["model"]
		if !ok {
			return
		}
		m, err := newModel(raw, pre)
		mRef, ref := newModel(raw, nil)
		if (err == nil) != (ref == nil) || err != nil && err.Error() != ref.Error() {
			t.Fatalf("newModel(%q): error %v, from scratch %v", data, err, ref)
		}
		if err == nil && !reflect.DeepEqual(m, mRef) {
			t.Fatalf("newModel(%q) = %+v, from scratch %+v", data, m, mRef)
		}
	})
}

// TestReadModelAhead: the fixtures' vocabularies and merges are read while
// tokenizer.json is split, not scanned again, into the same models.
func TestReadModelAhead(t *testing.T) {
	for _, name := range refNames {
		data := refTokenizerFile(t, name)
		fields, pre, err := splitTokenizerFile(data)
		if err != nil || pre == nil || pre.tokens == nil || pre.merges == nil {
			t.Errorf("%s: the model was not read ahead (%v)", name, err)
			continue
		}
		if !sameBytes(pre.raw, fields["model"]) || !sameBytes(pre.vocabRaw, pre.fields["vocab"]) || !sameBytes(pre.mergesRaw, pre.fields["merges"]) {
			t.Errorf("%s: what was read ahead is not what newBPE gets", name)
		}
		m, err := newModel(fields["model"], pre)
		if err != nil {
			t.Fatal(err)
		}
		if b := m.(*bpe); b.vocab != pre.vocabIdx || &b.tokens[0] != &pre.tokens[0] {
			t.Errorf("%s: newBPE did not use the vocabulary read ahead", name)
		}
		mRef, err := newModel(fields["model"], nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, mRef) {
			t.Errorf("%s: the model read ahead differs from the one built from scratch", name)
		}
	}
}

// FuzzAddedTokens: whatever parseAddedTokens reads, encoding/json reads
// the same way.
func FuzzAddedTokens(f *testing.F) {
	for _, s := range []string{
		`[{"id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]`,
		`[{"id":7,"content":"a\u00e9\n\ud83d\ude00","special":true},{"content":"x","id":12}]`,
		`[]`, `null`, `[{}]`, `[null]`, `[{"ID": 3}]`, `[{"id": 03}]`, `[{"id": -1}]`, `[{"id": 1e2}]`,
		`[{"id": 1, "id": 2}]`, `[{"special": truex}]`, `[{"special": null}]`, `[{"lstrip": true,}]`,
		`[{"id": 2147483648}]`, `[{"content": "\ud800"}]`, `[{"extra": 1}]`, `[{"id": 1}] x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := parseAddedTokens(data)
		if !ok {
			return
		}
		var want []AddedToken
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("parseAddedTokens(%q) read what encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseAddedTokens(%q) = %+v, encoding/json %+v", data, got, want)
		}
	})
}

// TestAddedTokensFast: the fixtures' added tokens take the scanner's path,
// and come out as encoding/json reads them.
func TestAddedTokensFast(t *testing.T) {
	for _, name := range refNames {
		data := refTokenizerFile(t, name)
		fields, err := splitObject(data)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseAddedTokens(fields["added_tokens"])
		var want []AddedToken
		if err := json.Unmarshal(fields["added_tokens"], &want); err != nil {
			t.Fatal(err)
		}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parseAddedTokens: %v, equal to encoding/json's: %v", name, ok, reflect.DeepEqual(got, want))
		}
	}
}
