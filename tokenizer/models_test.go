package tokenizer

import (
	"slices"
	"testing"
)

func TestWordPieceAndUnigram(t *testing.T) {
	cases := []struct {
		name, json, text string
		want             []int
		decoded          string
	}{
		{"wordpiece", `{"pre_tokenizer":{"type":"BertPreTokenizer"},"decoder":{"type":"WordPiece"},"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"un":1,"##aff":2,"##able":3,"u":4,"##n":5}}}`,
			"unaffable, un unx", []int{1, 2, 3, 0, 1, 0}, "unaffable [UNK] un [UNK]"},
		{"wordpiece max chars", `{"model":{"type":"WordPiece","max_input_chars_per_word":3,"vocab":{"[UNK]":0,"u":1,"##u":2}}}`,
			"uuuu", []int{0}, ""},
		// Paths for "abc": ab+c = -5.5 beats a+b+c = -6; an unknown
		// character scores min(-3) - 10, and unknown runs fuse.
		{"wordlevel", `{"pre_tokenizer":{"type":"WhitespaceSplit"},"model":{"type":"WordLevel","unk_token":"<u>","vocab":{"<u>":0,"hi":1,"there":2}}}`,
			"hi there you", []int{1, 2, 0}, ""},
		{"unigram", `{"model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0],["a",-1],["b",-2],["ab",-2.5],["c",-3]]}}`,
			"abcxxa", []int{3, 4, 0, 1}, ""},
		{"unigram byte fallback", `{"model":{"type":"Unigram","unk_id":0,"byte_fallback":true,"vocab":[["<unk>",0],["a",-1],["<0x78>",-5],["<0xC3>",-5]]}}`,
			"xaé", []int{2, 1, 0}, ""},
	}
	for _, c := range cases {
		tk, err := New([]byte(c.json), nil)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, err := tk.Encode(c.text, false)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, %v; want %v", c.name, c.text, got, err, c.want)
		}
		if c.decoded != "" {
			if d := tk.Decode(got, false); d != c.decoded {
				t.Errorf("%s: Decode = %q, want %q", c.name, d, c.decoded)
			}
		}
	}
	if _, err := New([]byte(`{"model":{"type":"Unigram","vocab":[["a",0]]}}`), nil); err == nil {
		t.Error("Unigram without unk_id accepted")
	}
	if _, err := New([]byte(`{"model":{"type":"WordPiece","vocab":{"a":0}}}`), nil); err == nil {
		t.Error("WordPiece without its unk token accepted")
	}
}

// TestSharedIDNamesLeastPair: a vocabulary whose tokens share ids is
// refused naming the least shared id and its two least tokens, whatever
// order the map yields them in (run it many times: map order varies).
func TestSharedIDNamesLeastPair(t *testing.T) {
	vocab := map[string]int{"z": 3, "b": 3, "y": 1, "x": 1, "c": 1, "a": 0}
	const want = `id 1 is used by both "c" and "x"`
	for range 50 {
		_, err := idTable(vocab)
		if err == nil || err.Error() != want {
			t.Fatalf("idTable: %v, want %s", err, want)
		}
	}
}
