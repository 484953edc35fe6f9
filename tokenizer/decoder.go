package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A decoder turns token strings back into text. Like the reference, each
// step maps a list of strings to a list of strings, so steps compose.
type decoder interface {
	decode(tokens []string) []string
}

type decoderSeq []decoder

func (q decoderSeq) decode(t []string) []string {
	for _, d := range q {
		t = d.decode(t)
	}
	return t
}

// byteLevelDecoder undoes the byte-level alphabet. A token with a
// character outside the alphabet is taken as its own UTF-8 bytes. With
// raw, bytes that are not valid UTF-8 are kept as they are.
type byteLevelDecoder struct{ raw bool }

func (d byteLevelDecoder) decode(t []string) []string {
	var buf []byte
	for _, tok := range t {
		n := len(buf)
		for _, r := range tok {
			b, ok := runeToByteFast(r)
			if !ok {
				buf = append(buf[:n], tok...)
				break
			}
			buf = append(buf, b)
		}
	}
	if d.raw {
		return []string{string(buf)}
	}
	return []string{lossyUTF8(buf)}
}

func runeToByteFast(r rune) (byte, bool) {
	if r < 256 && byteToRune[r] == r {
		return byte(r), true
	}
	if r >= 256 && r < 256+68 {
		b, ok := runeToByte[r]
		return b, ok
	}
	return 0, false
}

// lossyUTF8 converts b to a string, replacing each maximal invalid
// subsequence with one U+FFFD, as Rust's from_utf8_lossy and Python's
// errors="replace" do (Go's conversion would replace byte by byte).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart returns the length of the invalid sequence at the start
// of b: a lead byte followed by as many valid continuation bytes as it
// allows before the sequence breaks (at least 1).
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}

// metaspaceDecoder turns the replacement character back into spaces,
// dropping it from the first token when a prefix was added.
type metaspaceDecoder struct {
	replacement rune
	strip       bool
}

func (m metaspaceDecoder) decode(t []string) []string {
	out := make([]string, len(t))
	for i, tok := range t {
		var b strings.Builder
		for _, r := range tok {
			if r == m.replacement {
				if i == 0 && m.strip {
					continue
				}
				r = ' '
			}
			b.WriteRune(r)
		}
		out[i] = b.String()
	}
	return out
}

type replaceDecoder struct {
	pat     finder
	content string
}

func (r replaceDecoder) decode(t []string) []string {
	out := make([]string, len(t))
	lit, isLit := r.pat.(literal)
	for i, tok := range t {
		if isLit {
			out[i] = strings.ReplaceAll(tok, string(lit), r.content)
		} else {
			out[i] = replace(r).normalize(tok)
		}
	}
	return out
}

// byteFallbackDecoder turns runs of <0xNN> tokens into text; a run that is
// not valid UTF-8 becomes one U+FFFD per byte, or with raw stays as it is.
type byteFallbackDecoder struct{ raw bool }

func byteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(tok[3:5], 16, 8)
	return byte(v), err == nil
}

func (d byteFallbackDecoder) decode(t []string) []string {
	out := make([]string, 0, len(t))
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if d.raw || utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, tok := range t {
		if b, ok := byteToken(tok); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

// rawDecoder returns d with its byte decoders keeping invalid UTF-8, so
// that a token's bytes can be told apart from the text around them.
func rawDecoder(d decoder) decoder {
	switch v := d.(type) {
	case decoderSeq:
		q := make(decoderSeq, len(v))
		for i, x := range v {
			q[i] = rawDecoder(x)
		}
		return q
	case byteLevelDecoder:
		return byteLevelDecoder{raw: true}
	case byteFallbackDecoder:
		return byteFallbackDecoder{raw: true}
	}
	return d
}

type fuseDecoder struct{}

func (fuseDecoder) decode(t []string) []string { return []string{strings.Join(t, "")} }

// stripDecoder removes up to start leading and stop trailing content
// characters from every token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (s stripDecoder) decode(t []string) []string {
	out := make([]string, len(t))
	for i, tok := range t {
		for k := 0; k < s.start; k++ {
			r, n := utf8.DecodeRuneInString(tok)
			if n == 0 || r != s.content {
				break
			}
			tok = tok[n:]
		}
		for k := 0; k < s.stop; k++ {
			r, n := utf8.DecodeLastRuneInString(tok)
			if n == 0 || r != s.content {
				break
			}
			tok = tok[:len(tok)-n]
		}
		out[i] = tok
	}
	return out
}

// wordPieceDecoder joins WordPiece tokens: the prefix marks a continuation,
// other tokens get a space before them.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (w wordPieceDecoder) decode(t []string) []string {
	out := make([]string, len(t))
	for i, tok := range t {
		if i > 0 {
			if strings.HasPrefix(tok, w.prefix) {
				tok = tok[len(w.prefix):]
			} else {
				tok = " " + tok
			}
		}
		if w.cleanup {
			tok = cleanUpSpaces(tok)
		}
		out[i] = tok
	}
	return out
}

// cleanUpSpaces is transformers' clean_up_tokenization: plain string
// replacements, one after another.
func cleanUpSpaces(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	for _, r := range cleanUpPairs {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

var cleanUpPairs = [][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

type decoderJSON struct {
	Type           string            `json:"type"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        patternJSON       `json:"pattern"`
	Content        string            `json:"content"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	Prefix         *string           `json:"prefix"`
	Cleanup        *bool             `json:"cleanup"`
}

func newDecoder(raw json.RawMessage) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var j decoderJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("decoder: %v", err)
	}
	switch j.Type {
	case "Sequence":
		var q decoderSeq
		for _, r := range j.Decoders {
			d, err := newDecoder(r)
			if err != nil {
				return nil, err
			}
			if d != nil {
				q = append(q, d)
			}
		}
		return q, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "Metaspace":
		m := metaspaceDecoder{replacement: '▁', strip: true}
		if j.Replacement != "" {
			r, n := utf8.DecodeRuneInString(j.Replacement)
			if n != len(j.Replacement) {
				return nil, fmt.Errorf("decoder Metaspace: replacement %q is not one character", j.Replacement)
			}
			m.replacement = r
		}
		if strings.EqualFold(j.PrependScheme, "never") || j.PrependScheme == "" && j.AddPrefixSpace != nil && !*j.AddPrefixSpace {
			m.strip = false
		}
		return m, nil
	case "Replace":
		f, err := j.Pattern.finder()
		if err != nil {
			return nil, fmt.Errorf("decoder Replace: %v", err)
		}
		return replaceDecoder{f, j.Content}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		r, n := utf8.DecodeRuneInString(j.Content)
		if n == 0 || n != len(j.Content) {
			return nil, fmt.Errorf("decoder Strip: content %q is not one character", j.Content)
		}
		if j.Start < 0 || j.Stop < 0 {
			return nil, fmt.Errorf("decoder Strip: negative start or stop")
		}
		return stripDecoder{r, j.Start, j.Stop}, nil
	case "WordPiece":
		w := wordPieceDecoder{prefix: "##", cleanup: true}
		if j.Prefix != nil {
			w.prefix = *j.Prefix
		}
		if j.Cleanup != nil {
			w.cleanup = *j.Cleanup
		}
		return w, nil
	}
	return nil, fmt.Errorf("decoder %q is not supported", j.Type)
}
