package tokenizer

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mocolab/moco/internal/stories260k"
	"golang.org/x/text/unicode/norm"
)

// FuzzNew checks that no tokenizer.json, however broken, makes New panic,
// and that a tokenizer it accepts encodes and decodes without panicking.
func FuzzNew(f *testing.F) {
	mini, err := os.ReadFile("testdata/bytelevel-mini.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mini[:2000], []byte(nil))
	f.Add(stories260k.Tokenizer, stories260k.TokenizerConfig)
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"added_tokens":[{"id":3,"content":"<s>","special":true}]}`), []byte(`{"bos_token":"<s>","add_bos_token":true}`))
	f.Add([]byte(`{"normalizer":{"type":"Sequence","normalizers":[{"type":"Replace","pattern":{"Regex":"\\s+(?!\\S)"},"content":"_"},{"type":"NFKC"}]},"pre_tokenizer":{"type":"Metaspace","prepend_scheme":"first"},"model":{"type":"BPE","vocab":{"▁":0,"a":1},"merges":[],"unk_token":"a"},"decoder":{"type":"Metaspace"}}`), []byte(nil))
	f.Add([]byte(`{"pre_tokenizer":{"type":"Split","pattern":{"String":"a"},"behavior":"MergedWithNext","invert":true},"model":{"vocab":{"a":0},"merges":["a a"]}}`), []byte(`{"eos_token":{"content":"a"}}`))
	f.Fuzz(func(t *testing.T, tj, cj []byte) {
		tk, err := New(tj, cj)
		if err != nil {
			return
		}
		for _, s := range []string{"", "a b", "  ab\n\tc ", "héllo wörld 123 <s>", "\u3000日本"} {
			ids, err := tk.Encode(s, true)
			if err != nil {
				t.Fatalf("Encode(%q): %v", s, err)
			}
			tk.Decode(ids, false)
			tk.Decode(ids, true)
		}
		tk.Decode([]int{-1, 0, 1, 2, 1 << 30}, false)
	})
}

// FuzzRoundTrip checks that a byte-level tokenizer loses nothing:
// decode(encode(s)) is s after the tokenizer's normalizer (NFC here).
func FuzzRoundTrip(f *testing.F) {
	for _, s := range scannerTexts {
		f.Add(s)
	}
	f.Add("<|im_start|>user\nhi<|im_end|><tool_call>")
	tk := mini(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			if _, err := tk.Encode(s, false); err == nil {
				t.Fatalf("Encode(%q) accepted invalid UTF-8", s)
			}
			return
		}
		ids, err := tk.Encode(s, false)
		if err != nil {
			t.Fatal(err)
		}
		// Added tokens are cut out before normalization, so normalize the
		// parts between them the same way.
		want := normalizeAround(s, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>"})
		if got := tk.Decode(ids, false); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
	})
}

// normalizeAround applies NFC to the text between the given tokens, cutting
// the leftmost, then longest, token first as the tokenizer does.
func normalizeAround(s string, toks []string) string {
	var b strings.Builder
	for len(s) > 0 {
		at, tok := -1, ""
		for _, x := range toks {
			if i := strings.Index(s, x); i >= 0 && (at < 0 || i < at || i == at && len(x) > len(tok)) {
				at, tok = i, x
			}
		}
		if at < 0 {
			b.WriteString(norm.NFC.String(s))
			break
		}
		b.WriteString(norm.NFC.String(s[:at]))
		b.WriteString(tok)
		s = s[at+len(tok):]
	}
	return b.String()
}

// FuzzStream checks the streaming decoder against the full decode for any
// id sequence, on a byte-level and a byte-fallback tokenizer.
func FuzzStream(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, false)
	f.Add([]byte{0xC3, 0, 0xA9, 0, 1, 0, 0xE2, 0, 0x82, 0, 0xAC, 0}, true)
	f.Add([]byte{3, 0, 200, 0, 1, 0, 2, 0, 1, 1, 0xdc, 5}, false)
	toks := []*Tokenizer{mini(f), embedded(f)}
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		for _, tk := range toks {
			ids := make([]int, 0, len(data)/2)
			for i := 0; i+1 < len(data); i += 2 {
				ids = append(ids, int(binary.LittleEndian.Uint16(data[i:]))%(tk.VocabSize()+3))
			}
			checkStream(t, tk, ids, skip, 64, 8)
			checkStream(t, tk, ids, skip, 3, 1)
		}
	})
}
