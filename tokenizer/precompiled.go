package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// precompiled is SentencePiece's compiled normalization rules
// (precompiled_charsmap): a darts-clone double-array trie from UTF-8
// sequences to offsets of NUL-terminated replacements.
type precompiled struct {
	trie       []uint32
	normalized []byte
}

func newPrecompiled(charsmap string) (normalizer, error) {
	data, err := base64.StdEncoding.DecodeString(charsmap)
	if err != nil {
		return nil, fmt.Errorf("normalizer Precompiled: charsmap: %v", err)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("normalizer Precompiled: charsmap too short")
	}
	size := int(binary.LittleEndian.Uint32(data))
	if size%4 != 0 || size > len(data)-4 || size == 0 {
		return nil, fmt.Errorf("normalizer Precompiled: bad trie size %d", size)
	}
	p := &precompiled{trie: make([]uint32, size/4), normalized: data[4+size:]}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	return p, nil
}

// lookup returns the replacement of the shortest prefix of key that the
// trie holds (darts-clone's common prefix search, first result).
func (p *precompiled) lookup(key string) (string, bool) {
	unit := func(i uint32) (uint32, bool) {
		if int(i) >= len(p.trie) {
			return 0, false
		}
		return p.trie[i], true
	}
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	u, _ := unit(0)
	pos := offset(u)
	for i := 0; i < len(key); i++ {
		c := uint32(key[i])
		if c == 0 {
			break
		}
		pos ^= c
		u, ok := unit(pos)
		if !ok || u&(1<<31|0xFF) != c {
			return "", false
		}
		pos ^= offset(u)
		if u>>8&1 == 1 {
			leaf, ok := unit(pos)
			if !ok {
				return "", false
			}
			v := int(leaf & (1<<31 - 1))
			if v >= len(p.normalized) {
				return "", false
			}
			end := v
			for end < len(p.normalized) && p.normalized[end] != 0 {
				end++
			}
			return string(p.normalized[v:end]), true
		}
	}
	return "", false
}

// normalize replaces each grapheme cluster shorter than 6 bytes as a whole
// when the trie knows it, else each character, as the reference does.
func (p *precompiled) normalize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		g := s[i : i+graphemeLen(s[i:])]
		i += len(g)
		if len(g) < 6 {
			if r, ok := p.lookup(g); ok {
				b.WriteString(r)
				continue
			}
		}
		for j := 0; j < len(g); {
			_, n := utf8.DecodeRuneInString(g[j:])
			if r, ok := p.lookup(g[j : j+n]); ok {
				b.WriteString(r)
			} else {
				b.WriteString(g[j : j+n])
			}
			j += n
		}
	}
	return b.String()
}

// graphemeLen approximates the length of the extended grapheme cluster at
// the start of s: a character with the marks, joiners, variation selectors
// and emoji modifiers after it, CR LF, or a pair of regional indicators.
func graphemeLen(s string) int {
	r, n := utf8.DecodeRuneInString(s)
	if r == '\r' && strings.HasPrefix(s[n:], "\n") {
		return n + 1
	}
	if r >= 0x1F1E6 && r <= 0x1F1FF {
		if r2, n2 := utf8.DecodeRuneInString(s[n:]); r2 >= 0x1F1E6 && r2 <= 0x1F1FF {
			return n + n2
		}
		return n
	}
	if r < 0x20 || r == 0x7F {
		return n
	}
	for n < len(s) {
		r2, n2 := utf8.DecodeRuneInString(s[n:])
		switch {
		case unicode.In(r2, unicode.Mn, unicode.Me, unicode.Mc),
			r2 == 0x200D, r2 >= 0xFE00 && r2 <= 0xFE0F, r2 >= 0x1F3FB && r2 <= 0x1F3FF:
			n += n2
			if r2 == 0x200D && n < len(s) { // a joiner glues the next character on
				_, n3 := utf8.DecodeRuneInString(s[n:])
				n += n3
			}
		default:
			return n
		}
	}
	return n
}
