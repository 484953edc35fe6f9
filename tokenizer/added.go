package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token of tokenizer.json's added_tokens: matched in the
// text before the model runs, and given its id directly.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text: leftmost match first, longest
// among those starting there, as the reference's Aho-Corasick does.
type addedMatcher struct {
	tokens []AddedToken
	pats   []string         // what is matched (content, maybe normalized)
	next   map[uint64]int32 // (node<<8 | byte) -> child node
	term   []int32          // node -> index in tokens, or -1
	first  [256]bool
}

func newAddedMatcher(tokens []AddedToken, pats []string) *addedMatcher {
	m := &addedMatcher{tokens: tokens, pats: pats, next: map[uint64]int32{}, term: []int32{-1}}
	for i, p := range pats {
		if p == "" {
			continue
		}
		m.first[p[0]] = true
		node := int32(0)
		for j := 0; j < len(p); j++ {
			k := uint64(node)<<8 | uint64(p[j])
			c, ok := m.next[k]
			if !ok {
				c = int32(len(m.term))
				m.term = append(m.term, -1)
				m.next[k] = c
			}
			node = c
		}
		if m.term[node] < 0 { // the first token with this content wins
			m.term[node] = int32(i)
		}
	}
	return m
}

// longest returns the token index and end of the longest match at i.
func (m *addedMatcher) longest(s string, i int) (int, int) {
	best, end := -1, -1
	node := int32(0)
	for j := i; j < len(s); j++ {
		c, ok := m.next[uint64(node)<<8|uint64(s[j])]
		if !ok {
			break
		}
		node = c
		if t := m.term[node]; t >= 0 {
			best, end = int(t), j+1
		}
	}
	return best, end
}

// A segment is a part of the input: text for the model (id < 0) or an
// added token. atStart marks a segment at offset 0 of the input.
type segment struct {
	s       string
	id      int
	atStart bool
}

// split cuts seg into text and added-token segments, appending to dst.
func (m *addedMatcher) split(dst []segment, seg segment) []segment {
	s := seg.s
	if m == nil || len(m.tokens) == 0 {
		return append(dst, seg)
	}
	last := 0 // end of the previous match
	emit := func(a, b int) {
		if b > a {
			dst = append(dst, segment{s[a:b], -1, seg.atStart && a == 0})
		}
	}
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		t, end := m.longest(s, i)
		if t < 0 {
			i++
			continue
		}
		tok := &m.tokens[t]
		start := i
		if tok.SingleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:start])
			after, _ := utf8.DecodeRuneInString(s[end:])
			if start > 0 && isWord(before) || end < len(s) && isWord(after) {
				i = end // the reference drops the match without looking inside it
				continue
			}
		}
		if tok.LStrip {
			start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), last)
		}
		if tok.RStrip {
			end = len(s) - len(strings.TrimLeftFunc(s[end:], unicode.IsSpace))
		}
		emit(last, start)
		dst = append(dst, segment{s[start:end], tok.ID, false})
		last, i = end, end
	}
	emit(last, len(s))
	return dst
}
