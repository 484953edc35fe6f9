package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// buildCharsmap builds a darts-clone trie for a few keys, giving every node
// its own offset, laid out as SentencePiece stores it.
func buildCharsmap(t *testing.T, rules [][2]string) string {
	t.Helper()
	trie := map[uint32]uint32{}
	var blob []byte
	next := uint32(1 << 12)
	newOffset := func() uint32 { next += 1 << 12; return next }
	rootOff := newOffset()
	trie[0] = rootOff << 10
	type node struct{ pos, off uint32 }
	nodes := map[string]node{"": {0, rootOff}}
	for _, r := range rules {
		key := r[0]
		for i := 1; i <= len(key); i++ {
			if _, ok := nodes[key[:i]]; ok && i < len(key) {
				continue
			}
			parent := nodes[key[:i-1]]
			pos := parent.pos ^ parent.off ^ uint32(key[i-1])
			off := newOffset()
			u := off<<10 | uint32(key[i-1])
			if i == len(key) {
				u |= 1 << 8
				trie[pos^off] = 1<<31 | uint32(len(blob))
				blob = append(append(blob, r[1]...), 0)
			}
			if old, taken := trie[pos]; taken && old != u {
				t.Fatalf("collision at %d", pos)
			}
			trie[pos] = u
			nodes[key[:i]] = node{pos, off}
		}
	}
	size := uint32(0)
	for p := range trie {
		size = max(size, p+1)
	}
	data := binary.LittleEndian.AppendUint32(nil, 4*size)
	for i := range size {
		data = binary.LittleEndian.AppendUint32(data, trie[i])
	}
	return base64.StdEncoding.EncodeToString(append(data, blob...))
}

func TestPrecompiled(t *testing.T) {
	cm := buildCharsmap(t, [][2]string{{"ﬁ", "fi"}, {"①", "1"}, {"e\u0301", "é"}, {"\u3000", " "}})
	js, _ := json.Marshal(map[string]string{"type": "Precompiled", "precompiled_charsmap": cm})
	n, err := newNormalizer(js)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{"ﬁne ①", "fine 1"},
		{"cafe\u0301", "café"},
		{"a\u3000b", "a b"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		if got := n.normalize(c.in); got != c.want {
			t.Errorf("normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "AAAA", base64.StdEncoding.EncodeToString([]byte{8, 0, 0, 0, 1})} {
		js, _ := json.Marshal(map[string]string{"type": "Precompiled", "precompiled_charsmap": bad})
		if n, err := newNormalizer(js); err == nil && n != nil {
			n.normalize("abc ﬁ") // must not panic
		}
	}
}
