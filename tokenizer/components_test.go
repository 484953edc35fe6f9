package tokenizer

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func preStrings(t *testing.T, js, text string) []string {
	t.Helper()
	pt, err := newPreTokenizer(json.RawMessage(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	var out []string
	for _, p := range pt.split(nil, piece{text, true}) {
		out = append(out, p.s)
	}
	return out
}

// Expected pieces are the examples of the Hugging Face tokenizers
// documentation (SplitDelimiterBehavior and the pre-tokenizer pages).
func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		js, text string
		want     []string
	}{
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"Removed","invert":false}`, "the-final--countdown",
			[]string{"the", "final", "countdown"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"Isolated","invert":false}`, "the-final--countdown",
			[]string{"the", "-", "final", "-", "-", "countdown"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithPrevious","invert":false}`, "the-final--countdown",
			[]string{"the-", "final-", "-", "countdown"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithNext","invert":false}`, "the-final--countdown",
			[]string{"the", "-final", "-", "-countdown"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"Contiguous","invert":false}`, "the-final--countdown",
			[]string{"the", "-", "final", "--", "countdown"}},
		{`{"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Removed","invert":true}`, "a12b345c",
			[]string{"12", "345"}},
		{`{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Removed","invert":false}`, "a\u3000b c",
			[]string{"a", "b", "c"}}, // Unicode \s, as in the reference
		{`{"type":"Whitespace"}`, "Hey man!! How's it going?",
			[]string{"Hey", "man", "!!", "How", "'", "s", "it", "going", "?"}},
		{`{"type":"WhitespaceSplit"}`, "Hey man!!  How's\tit", []string{"Hey", "man!!", "How's", "it"}},
		{`{"type":"Digits","individual_digits":true}`, "Call 123 please", []string{"Call ", "1", "2", "3", " please"}},
		{`{"type":"Digits","individual_digits":false}`, "Call 123 please", []string{"Call ", "123", " please"}},
		{`{"type":"Punctuation"}`, "Hey, man!", []string{"Hey", ",", " man", "!"}},
		{`{"type":"BertPreTokenizer"}`, "Hey, man!", []string{"Hey", ",", "man", "!"}},
		{`{"type":"CharDelimiterSplit","delimiter":"x"}`, "axbxxc", []string{"a", "b", "c"}},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}`, "Hey friend!",
			[]string{"▁Hey", "▁friend!"}},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"never","split":true}`, "Hey friend!",
			[]string{"Hey", "▁friend!"}},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`, "Hey friend!",
			[]string{"▁Hey▁friend!"}},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":true}`, "a b", []string{"▁a", "▁b"}},
		{`{"type":"ByteLevel","add_prefix_space":true,"use_regex":true}`, "Hello my friend",
			[]string{"ĠHello", "Ġmy", "Ġfriend"}},
		{`{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}`, "é a", []string{"Ã©Ġa"}},
		{`{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Digits","individual_digits":true}]}`, "ab12 c3",
			[]string{"ab", "1", "2", "c", "3"}},
	}
	for _, c := range cases {
		if got := preStrings(t, c.js, c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s on %q:\n got %q\nwant %q", c.js, c.text, got, c.want)
		}
	}
}

func TestMetaspaceFirstOnlyAtStart(t *testing.T) {
	pt, _ := newPreTokenizer(json.RawMessage(`{"type":"Metaspace","prepend_scheme":"first"}`))
	got := pt.split(nil, piece{"b c", false})
	if got[0].s != "b" {
		t.Errorf("prepend_scheme first added a prefix after the start: %q", got[0].s)
	}
}

func TestNormalizers(t *testing.T) {
	cases := []struct {
		js, in, want string
	}{
		{`{"type":"NFC"}`, "e\u0301", "é"},
		{`{"type":"NFD"}`, "é", "e\u0301"},
		{`{"type":"NFKC"}`, "ﬁ①", "fi1"},
		{`{"type":"NFKD"}`, "ﬁé", "fie\u0301"},
		{`{"type":"Lowercase"}`, "HeLLo ÀİΣ", "hello ài\u0307σ"},
		{`{"type":"Strip","left":true,"right":false}`, " \t a \n", "a \n"},
		{`{"type":"Strip","left":true,"right":true}`, "\u3000 a \n", "a"},
		{`{"type":"Replace","pattern":{"String":"  "},"content":" "}`, "a    b", "a  b"},
		{`{"type":"Replace","pattern":{"Regex":" {2,}"},"content":"_"}`, "a    b c", "a_b c"},
		{`{"type":"Replace","pattern":{"Regex":"^ +| +$"},"content":""}`, "  a b  ", "a b"},
		{`{"type":"Prepend","prepend":"▁"}`, "a", "▁a"},
		{`{"type":"Prepend","prepend":"▁"}`, "", ""},
		{`{"type":"StripAccents"}`, "e\u0301te\u0301", "ete"},
		{`{"type":"BertNormalizer"}`, "Héllo\tWörld\u0000\u200b 中文", "hello world  中  文 "},
		{`{"type":"BertNormalizer","clean_text":false,"handle_chinese_chars":false,"strip_accents":false,"lowercase":true}`, "Héllo\t中", "héllo\t中"},
		{`{"type":"Sequence","normalizers":[{"type":"Lowercase"},{"type":"Replace","pattern":{"String":"a"},"content":"b"}]}`, "AaC", "bbc"},
	}
	for _, c := range cases {
		n, err := newNormalizer(json.RawMessage(c.js))
		if err != nil {
			t.Errorf("%s: %v", c.js, err)
			continue
		}
		if got := n.normalize(c.in); got != c.want {
			t.Errorf("%s on %q = %q, want %q", c.js, c.in, got, c.want)
		}
	}
}

func TestDecoders(t *testing.T) {
	cases := []struct {
		js   string
		toks []string
		want string
	}{
		{`{"type":"ByteLevel"}`, []string{"ĠHello", "Ġw", "orld", "Ã©"}, " Hello worldé"},
		{`{"type":"ByteLevel"}`, []string{"âĤ"}, "\uFFFD"}, // an unfinished € is one U+FFFD
		{`{"type":"ByteLevel"}`, []string{"<|x|>", "a b"}, "<|x|>a b"},
		{`{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}`,
			[]string{"<0x61>", "<0xE2>", "<0x82>", "<0xAC>", "b"}, "a€b"},
		{`{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}`,
			[]string{"<0xE2>", "<0x82>", "x", "<0xFF>"}, "\uFFFD\uFFFDx\uFFFD"},
		{`{"type":"Strip","content":" ","start":1,"stop":1}`, []string{"  a  "}, " a "},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"}`, []string{"▁Hey", "▁friend"}, "Hey friend"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`, []string{"▁Hey", "▁friend"}, " Hey friend"},
		{`{"type":"Replace","pattern":{"String":"▁"},"content":" "}`, []string{"▁a▁", "b"}, " a b"},
		{`{"type":"WordPiece","prefix":"##","cleanup":true}`, []string{"I", "do", "n't", "##ing", "."}, "I don'ting."},
	}
	for _, c := range cases {
		d, err := newDecoder(json.RawMessage(c.js))
		if err != nil {
			t.Errorf("%s: %v", c.js, err)
			continue
		}
		if got := strings.Join(d.decode(c.toks), ""); got != c.want {
			t.Errorf("%s on %q = %q, want %q", c.js, c.toks, got, c.want)
		}
	}
}

// Replacement characters as Python's bytes.decode("utf-8", "replace")
// gives them (one per maximal invalid subpart).
func TestLossyUTF8(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe2\x82", "\uFFFD"},
		{"\xe2\x82A", "\uFFFDA"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xf0\x9f\x98\x80", "😀"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xe0\x80", "\uFFFD\uFFFD"},
		{"a\xffb", "a\uFFFDb"},
	}
	for _, c := range cases {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCleanUpSpaces(t *testing.T) {
	in := "Hello , world ! I do n't know . He 's here ? They 're , we 've , I 'm"
	want := "Hello, world! I don't know. He's here? They're, we've, I'm"
	if got := cleanUpSpaces(in); got != want {
		t.Errorf("cleanUpSpaces:\n got %q\nwant %q", got, want)
	}
}

func TestAddedTokenOptions(t *testing.T) {
	base := `{"model":{"type":"BPE","vocab":{"a":0,"b":1," ":2},"merges":[]},"added_tokens":[%s]}`
	cases := []struct {
		added, text string
		want        []int
	}{
		{`{"id":9,"content":"ab","special":true}`, "aab b", []int{0, 9, 2, 1}},
		{`{"id":9,"content":"ab","lstrip":true}`, "a  ab b", []int{0, 9, 2, 1}},
		{`{"id":9,"content":"ab","rstrip":true}`, "a ab  b", []int{0, 2, 9, 1}},
		{`{"id":9,"content":"ab","single_word":true}`, "aab ab", []int{0, 0, 1, 2, 9}},
		{`{"id":9,"content":"a","special":true},{"id":8,"content":"ab","special":true}`, "aab", []int{9, 8}},
	}
	for _, c := range cases {
		tk, err := New([]byte(strings.Replace(base, "%s", c.added, 1)), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.added, err)
		}
		got, err := tk.Encode(c.text, false)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, %v; want %v", c.added, c.text, got, err, c.want)
		}
	}
}

func TestPostProcessors(t *testing.T) {
	vocab := `"model":{"type":"BPE","vocab":{"a":0,"<s>":1,"</s>":2},"merges":[]}`
	cases := []struct {
		post, config string
		want         []int
	}{
		{`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}`,
			``, []int{1, 0, 2}},
		{`{"type":"TemplateProcessing","single":"<s> $A </s>","special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}`,
			``, []int{1, 0, 2}},
		{`{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",1]}`, ``, []int{1, 0, 2}},
		{`{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"BertProcessing","sep":["</s>",2],"cls":["<s>",1]}]}`, ``, []int{1, 0, 2}},
		{`{"type":"ByteLevel"}`, `{"bos_token":"<s>","eos_token":"</s>","add_bos_token":true,"add_eos_token":true}`, []int{1, 0, 2}},
		{`{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",1]}`, `{"bos_token":"<s>","eos_token":"</s>","add_eos_token":false}`, []int{1, 0}},
		{`null`, `{"bos_token":{"content":"<s>","special":true},"add_bos_token":true}`, []int{1, 0}},
	}
	for _, c := range cases {
		var cfg []byte
		if c.config != "" {
			cfg = []byte(c.config)
		}
		tk, err := New([]byte(`{`+vocab+`,"post_processor":`+c.post+`}`), cfg)
		if err != nil {
			t.Errorf("%s: %v", c.post, err)
			continue
		}
		got, _ := tk.Encode("a", true)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s with config %s: Encode(a, true) = %v, want %v", c.post, c.config, got, c.want)
		}
	}
}
