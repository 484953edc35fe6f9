package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written scanners for the split patterns of GPT-2, Llama 3 and Qwen.
// The patterns use a lookahead, (?!\S), that Go's regexp rejects, and a
// backtracking engine is several times slower than the rest of encoding.
// Each scanner returns, at position i, the end of the match the regex would
// find there; every position starts a match, so the matches tile the text.
// scanner_test.go checks them against regexp2 running the original pattern.

const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Character classes of the patterns.
const (
	clOther = iota // [^\s\p{L}\p{N}]
	clLetter
	clNumber
	clSpace // \s other than \r and \n
	clNewline
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for c := range rune(utf8.RuneSelf) {
		asciiClass[c] = classOfRune(c)
	}
}

func classOfRune(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return clNewline
	case unicode.IsSpace(r):
		return clSpace
	case unicode.IsLetter(r):
		return clLetter
	case unicode.IsNumber(r):
		return clNumber
	}
	return clOther
}

// classAt returns the class of the character at s[i] and its size.
func classAt(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classOfRune(r), n
}

// run returns the end of the run of characters of class cl starting at i,
// and how many characters it holds (counting stops at limit).
func run(s string, i int, cl uint8, limit int) (int, int) {
	n := 0
	for i < len(s) && n < limit {
		c, size := classAt(s, i)
		if c != cl {
			break
		}
		i += size
		n++
	}
	return i, n
}

// contraction returns the end of 's 't 're 've 'm 'll 'd at i, or -1.
func contraction(s string, i int, fold bool) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return -1
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return i + 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return i + 3
		}
	}
	return -1
}

// spaceEnd handles the shared tail \s+(?!\S)|\s+ at i, where s[i] is white
// space: a run of white space, less its last character when a
// non-space follows and the run is longer than one character.
func spaceEnd(s string, i int) int {
	j, last := i, 0
	for j < len(s) {
		c, size := classAt(s, j)
		if c != clSpace && c != clNewline {
			break
		}
		j += size
		last = size
	}
	if j < len(s) && j-last > i {
		return j - last
	}
	return j
}

// A tiler is a finder whose matches cover the whole text, and which can
// cut a piece into them directly.
type tiler interface {
	tile(dst []piece, p piece) []piece
}

// gpt2Scanner implements patGPT2.
type gpt2Scanner struct{}

func (gpt2Scanner) findAll(s string, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		j := gpt2Next(s, i)
		dst = append(dst, [2]int{i, j})
		i = j
	}
	return dst
}

func (gpt2Scanner) tile(dst []piece, p piece) []piece {
	s := p.s
	for i := 0; i < len(s); {
		j := gpt2Next(s, i)
		dst = append(dst, piece{s[i:j], p.atStart && i == 0})
		i = j
	}
	return dst
}

func gpt2Next(s string, i int) int {
	if j := contraction(s, i, false); j > 0 {
		return j
	}
	c, _ := classAt(s, i)
	start := i
	if s[i] == ' ' && i+1 < len(s) {
		if c1, _ := classAt(s, i+1); c1 != clSpace && c1 != clNewline {
			start, c = i+1, c1
		}
	}
	if c == clSpace || c == clNewline {
		return spaceEnd(s, i)
	}
	j, _ := run(s, start, c, len(s))
	return j
}

// llama3Scanner implements patLlama3 (maxDigits 3) and patQwen (maxDigits 1).
type llama3Scanner struct{ maxDigits int }

func (l llama3Scanner) findAll(s string, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		j := l.next(s, i)
		dst = append(dst, [2]int{i, j})
		i = j
	}
	return dst
}

func (l llama3Scanner) tile(dst []piece, p piece) []piece {
	s := p.s
	for i := 0; i < len(s); {
		j := l.next(s, i)
		dst = append(dst, piece{s[i:j], p.atStart && i == 0})
		i = j
	}
	return dst
}

func (l llama3Scanner) next(s string, i int) int {
	if j := contraction(s, i, true); j > 0 {
		return j
	}
	c, size := classAt(s, i)
	switch c {
	case clLetter:
		j, _ := run(s, i, clLetter, len(s))
		return j
	case clNumber:
		j, _ := run(s, i, clNumber, l.maxDigits)
		return j
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c != clNewline && i+size < len(s) {
		if c1, _ := classAt(s, i+size); c1 == clLetter {
			j, _ := run(s, i+size, clLetter, len(s))
			return j
		}
	}
	// ' '?[^\s\p{L}\p{N}]+[\r\n]*
	start := -1
	if c == clOther {
		start = i
	} else if s[i] == ' ' && i+1 < len(s) {
		if c1, _ := classAt(s, i+1); c1 == clOther {
			start = i + 1
		}
	}
	if start >= 0 {
		j, _ := run(s, start, clOther, len(s))
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// \s*[\r\n]+: white space up to and including its last \r or \n.
	w, nl := i, -1
	for w < len(s) {
		c, size := classAt(s, w)
		if c == clNewline {
			nl = w
		} else if c != clSpace {
			break
		}
		w += size
	}
	if nl >= 0 {
		return nl + 1
	}
	return spaceEnd(s, i)
}

// knownScanner returns the hand-written scanner for pattern, or nil.
func knownScanner(pattern string) finder {
	switch pattern {
	case patGPT2:
		return gpt2Scanner{}
	case patLlama3:
		return llama3Scanner{3}
	case patQwen:
		return llama3Scanner{1}
	}
	return nil
}
