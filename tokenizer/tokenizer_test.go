package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/internal/testutil"
)

func embedded(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func mini(t testing.TB) *Tokenizer {
	t.Helper()
	data, err := os.ReadFile("testdata/bytelevel-mini.json")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := New(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// The embedded default encodes the reference prompt, BOS included, to the
// ids an independent implementation produced.
func TestEmbeddedPromptWithBOS(t *testing.T) {
	data, err := os.ReadFile("testdata/stories260k_prompt.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompt string `json:"prompt"`
		IDs    []int  `json:"ids"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	tk := embedded(t)
	got, err := tk.Encode(ref.Prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ref.IDs) {
		t.Fatalf("Encode(prompt, true)\n got %v\nwant %v", got, ref.IDs)
	}
	if tk.BOS() != 1 || !slices.Equal(tk.EOS(), []int{2}) {
		t.Errorf("BOS %d EOS %v, want 1 [2]", tk.BOS(), tk.EOS())
	}
	if got := tk.Decode(ref.IDs, true); got != ref.Prompt {
		t.Errorf("Decode(skip special) = %q, want the prompt", got)
	}
	if got := tk.Decode(ref.IDs, false); got != "<s> "+ref.Prompt {
		t.Errorf("Decode = %q, want <s> and the prompt", got)
	}
}

// The shared stories260K folder gives the reference ids with BOS too.
func TestSharedStoriesWithBOS(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	data, err := os.ReadFile(dir + "/reference_greedy.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompt string `json:"prompt"`
		IDs    []int  `json:"prompt_ids_with_bos"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Encode(ref.Prompt, true)
	if err != nil || !slices.Equal(got, ref.IDs) {
		t.Fatalf("Encode = %v, %v; want %v", got, err, ref.IDs)
	}
}

func TestCompare(t *testing.T) {
	load := func(name string) *Tokenizer {
		tk, err := Load(testutil.Shared(t, "models/"+name))
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	stories, xs, eric := load("stories260K"), load("llama2xs"), load("eric260K")
	if err := stories.Compare(xs); err != nil {
		t.Errorf("stories260K vs llama2xs: %v, want identical", err)
	}
	if err := stories.Compare(eric); err == nil {
		t.Errorf("stories260K vs eric260K: nil, want a difference")
	} else {
		t.Logf("stories260K vs eric260K: %v", err)
	}
	if err := embedded(t).Compare(stories); err != nil {
		t.Errorf("embedded vs stories260K: %v", err)
	}
	if err := embedded(t).Compare(mini(t)); err == nil {
		t.Errorf("embedded vs bytelevel-mini: nil, want a difference")
	}
}

// Every shared tokenizer knows its BOS and EOS as its config says.
func TestSpecials(t *testing.T) {
	cases := []struct {
		name      string
		bos       int
		eos       []int
		withBOS   []int // Encode("a", true)
		vocabSize int
	}{
		{"qwen3", -1, []int{151645}, []int{64}, 151669},
		{"llama3", 128000, []int{128001}, []int{64}, 128256},
		{"mistral-sp", 1, []int{2}, []int{1, 264}, 32000},
		{"gemma3", 2, []int{106}, []int{2, 236746}, 262145},
		{"tok512", 1, []int{2}, []int{1, 261}, 512},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := refTokenizer(t, c.name)
			if tk.BOS() != c.bos || !slices.Equal(tk.EOS(), c.eos) {
				t.Errorf("BOS %d EOS %v, want %d %v", tk.BOS(), tk.EOS(), c.bos, c.eos)
			}
			got, err := tk.Encode("a", true)
			if err != nil || !slices.Equal(got, c.withBOS) {
				t.Errorf("Encode(a, true) = %v, %v; want %v", got, err, c.withBOS)
			}
			if tk.VocabSize() != c.vocabSize {
				t.Errorf("VocabSize = %d, want %d", tk.VocabSize(), c.vocabSize)
			}
			for _, id := range c.eos {
				if !tk.IsSpecial(id) {
					t.Errorf("IsSpecial(%d) = false", id)
				}
				if got, ok := tk.TokenID(tk.TokenString(id)); !ok || got != id {
					t.Errorf("TokenID(TokenString(%d)) = %d, %v", id, got, ok)
				}
			}
		})
	}
}

// Special-token strings in the text are encoded as those tokens, and
// skipped on decode when asked.
func TestSpecialTokensInText(t *testing.T) {
	tk := mini(t)
	ids, err := tk.Encode("<|im_start|>hi<|im_end|>", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 3 || ids[0] != 1501 || ids[len(ids)-1] != 1502 {
		t.Fatalf("ids %v: want 1501 first and 1502 last", ids)
	}
	if got := tk.Decode(ids, true); got != "hi" {
		t.Errorf("Decode(skip special) = %q, want hi", got)
	}
	if got := tk.Decode(ids, false); got != "<|im_start|>hi<|im_end|>" {
		t.Errorf("Decode = %q", got)
	}
	// <tool_call> is added but not special: never skipped.
	ids, _ = tk.Encode("<tool_call>", false)
	if !slices.Equal(ids, []int{1503}) || tk.Decode(ids, true) != "<tool_call>" {
		t.Errorf("<tool_call>: ids %v decode %q", ids, tk.Decode(ids, true))
	}
}

func TestUnsupportedComponents(t *testing.T) {
	base := `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`
	cases := []struct {
		json, want string
	}{
		{`{"model": {"type": "Fancy", "vocab": {"a": 0}}}`, `model type "Fancy" is not supported`},
		{`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}`, "dropout"},
		{strings.Replace(base, `{"model"`, `{"normalizer": {"type": "Nmt"}, "model"`, 1), "Nmt"},
		{strings.Replace(base, `{"model"`, `{"pre_tokenizer": {"type": "UnicodeScripts"}, "model"`, 1), "UnicodeScripts"},
		{strings.Replace(base, `{"model"`, `{"decoder": {"type": "CTC"}, "model"`, 1), "CTC"},
		{strings.Replace(base, `{"model"`, `{"post_processor": {"type": "Foo"}, "model"`, 1), "Foo"},
		{`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`, "not in the vocabulary"},
		{`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}`, "unk_token"},
		{`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}`, "id 0"},
		{`{"model": null}`, "no model"},
		{`[1, 2]`, "tokenizer.json"},
	}
	for _, c := range cases {
		_, err := New([]byte(c.json), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%s) = %v, want an error naming %q", c.json, err, c.want)
		}
	}
	if _, err := New([]byte(base), nil); err != nil {
		t.Errorf("New(minimal) = %v", err)
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	if _, err := embedded(t).Encode("a\xffb", false); err == nil {
		t.Error("Encode(invalid UTF-8) gave no error")
	}
}

// A hand-built BPE exercising merges in rank order, unk fusing, byte
// fallback, and the continuing-subword prefix and end-of-word suffix.
func TestBPEModel(t *testing.T) {
	cases := []struct {
		name, model, text string
		want              []int
	}{
		{"rank order", `{"type":"BPE","vocab":{"a":0,"b":1,"c":2,"ab":3,"bc":4,"abc":5},"merges":["b c","a b","ab c"]}`,
			"abc", []int{0, 4}}, // b c outranks a b, and a+bc is no merge
		{"pair merges", `{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"aba":3},"merges":[["a","b"],["ab","a"]]}`,
			"ababa", []int{2, 3}},
		{"fuse unk", `{"type":"BPE","vocab":{"<unk>":0,"a":1},"merges":[],"unk_token":"<unk>","fuse_unk":true}`,
			"xya", []int{0, 1}},
		{"no fuse unk", `{"type":"BPE","vocab":{"<unk>":0,"a":1},"merges":[],"unk_token":"<unk>"}`,
			"xya", []int{0, 0, 1}},
		{"no unk drops", `{"type":"BPE","vocab":{"a":1},"merges":[]}`, "xa", []int{1}},
		{"byte fallback", `{"type":"BPE","vocab":{"<unk>":0,"<0xC3>":1,"<0xA9>":2,"a":3},"merges":[],"unk_token":"<unk>","byte_fallback":true}`,
			"éa", []int{1, 2, 3}},
		{"prefix", `{"type":"BPE","vocab":{"a":0,"##b":1,"##c":2,"a##b":9,"ab":3,"##bc":4},"merges":["##b ##c"],"continuing_subword_prefix":"##"}`,
			"abc", []int{0, 4}},
		{"suffix", `{"type":"BPE","vocab":{"a":0,"b</w>":1,"ab</w>":2},"merges":["a b</w>"],"end_of_word_suffix":"</w>"}`,
			"ab", []int{2}},
		{"ignore merges", `{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"abab":3},"merges":["a b"],"ignore_merges":true}`,
			"abab", []int{3}},
		{"merges without ignore", `{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"abab":3},"merges":["a b"]}`,
			"abab", []int{2, 2}},
	}
	for _, c := range cases {
		tk, err := New([]byte(`{"model":`+c.model+`}`), nil)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, err := tk.Encode(c.text, false)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, %v; want %v", c.name, c.text, got, err, c.want)
		}
	}
}

// A long word without spaces must not take quadratic time per merge; this
// also checks the heap against a straightforward merge loop.
func TestMergeAllMatchesNaive(t *testing.T) {
	tk := mini(t)
	m := tk.model.(*bpe)
	if !m.haveLevels {
		t.Fatal("bytelevel-mini should take the byte-table path")
	}
	texts := []string{"Hello world", strings.Repeat("abcabc the ", 50), "ĠĠĠĠĠĠĠĠ", "internationalization", "é😀\x00\xff"}
	for _, s := range texts {
		w := byteLevelString(s)
		got := m.encodeWord(w)
		want := naiveBPE(m, w)
		if !slices.Equal(got, want) {
			t.Errorf("%q: heap %v, naive %v", s, got, want)
		}
		if got := m.encodeBytes(s); !slices.Equal(got, want) {
			t.Errorf("%q: from bytes %v, naive %v", s, got, want)
		}
	}
}

// naiveBPE repeatedly merges the lowest-ranked adjacent pair, leftmost
// first: the textbook definition.
func naiveBPE(m *bpe, word string) []int {
	var ids []int
	for _, r := range word {
		id, _ := m.vocab.get(string(r))
		ids = append(ids, id)
	}
	for {
		best, at := int32(-1), -1
		var newID int32
		for i := 0; i+1 < len(ids); i++ {
			if mg, ok := m.merges.get(pairKey(ids[i], ids[i+1])); ok && (best < 0 || mg.rank < best) {
				best, at, newID = mg.rank, i, mg.newID
			}
		}
		if at < 0 {
			return ids
		}
		ids = append(ids[:at+1], ids[at+2:]...)
		ids[at] = int(newID)
	}
}

func TestStreamMatchesDecode(t *testing.T) {
	check := func(t *testing.T, tk *Tokenizer, ids []int, skip bool) {
		t.Helper()
		checkStream(t, tk, ids, skip, 64, 8)
		checkStream(t, tk, ids, skip, 3, 1) // slide the window at every chance
	}
	corpus := readCorpus(t)
	for _, name := range refNames {
		t.Run(name, func(t *testing.T) {
			tk := refTokenizer(t, name)
			step, random := 1, 100
			if testing.Short() {
				step, random = 8, 20
			}
			for i := 0; i < len(corpus); i += step {
				check(t, tk, corpus[i].IDs[name], false)
				check(t, tk, corpus[i].IDs[name], true)
			}
			// Byte tokens, partial UTF-8 and clean-up cases.
			check(t, tk, []int{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}, false)
			// Random ids, drawn mostly from the low ids (bytes, short
			// pieces, punctuation) where the hard cases are.
			rng := rand.New(rand.NewPCG(7, uint64(len(name))))
			for range random {
				ids := make([]int, rng.IntN(20))
				for i := range ids {
					if rng.IntN(4) == 0 {
						ids[i] = rng.IntN(tk.VocabSize())
					} else {
						ids[i] = rng.IntN(600)
					}
				}
				check(t, tk, ids, rng.IntN(2) == 0)
			}
		})
	}
}

// The pieces of ids, each taken with a few ids of context, join up to
// their Decode, and the piece of a byte token is its byte.
func TestPiece(t *testing.T) {
	check := func(t *testing.T, tk *Tokenizer, ids []int) {
		t.Helper()
		ids = slices.DeleteFunc(slices.Clone(ids), tk.IsSpecial)
		var b strings.Builder
		for i, id := range ids {
			b.WriteString(tk.Piece(ids[max(0, i-4):i], id))
		}
		want := tk.Decode(ids, true)
		if tk.cleanup && b.String() == tk.join(tk.dec, tk.tokenStrings(ids, true)) {
			want = b.String() // clean-up removed text across tokens
		}
		if b.String() != want {
			t.Fatalf("ids %v: pieces %q, decode %q", ids, b.String(), want)
		}
	}
	corpus := readCorpus(t)
	for _, name := range refNames {
		t.Run(name, func(t *testing.T) {
			tk := refTokenizer(t, name)
			for _, e := range corpus {
				if utf8.ValidString(e.Decoded[name]) {
					check(t, tk, e.IDs[name])
				}
			}
		})
	}
	t.Run("bytelevel", func(t *testing.T) {
		tk := mini(t)
		for _, e := range corpus {
			ids, err := tk.Encode(e.Text, false)
			if err != nil {
				t.Fatal(err)
			}
			check(t, tk, ids)
		}
	})

	// "ü" is <0xC3><0xBC> to stories260K, and the space before it a
	// token of its own: each piece is the bytes its token adds.
	tk := embedded(t)
	ids, err := tk.Encode("Once upon a time, there was ü", false)
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	for i, id := range ids {
		pieces = append(pieces, tk.Piece(ids[:i], id))
	}
	want := []string{"Once", " upon", " a", " time", ",", " there", " was", " ", "\xc3", "\xbc"}
	if !slices.Equal(pieces, want) {
		t.Errorf("pieces %q, want %q", pieces, want)
	}
}

// checkStream decodes ids through a Stream whose window slides at window
// tokens keeping keep, and compares with Decode.
func checkStream(t testing.TB, tk *Tokenizer, ids []int, skip bool, window, keep int) {
	t.Helper()
	st := tk.NewStream(skip)
	st.window, st.keep, st.slideAt = window, keep, window
	var b strings.Builder
	for _, id := range ids {
		inc := st.Add(id)
		if !utf8.ValidString(inc) {
			t.Fatalf("increment %q is not valid UTF-8", inc)
		}
		b.WriteString(inc)
	}
	b.WriteString(st.Flush())
	if want := tk.Decode(ids, skip); b.String() != want {
		t.Fatalf("ids %v (window %d): stream %q, decode %q", ids, window, b.String(), want)
	}
}

// The window of a long stream stays short: streaming is linear.
func TestStreamWindowSlides(t *testing.T) {
	corpus := readCorpus(t)
	var b strings.Builder
	for _, e := range corpus {
		b.WriteString(e.Text)
	}
	text := b.String()
	names := refNames
	if testing.Short() {
		names = []string{"qwen3", "tok512"}
	}
	for _, name := range names {
		tk := refTokenizer(t, name)
		ids, err := tk.Encode(text, false)
		if err != nil {
			t.Fatal(err)
		}
		st := tk.NewStream(false)
		var out strings.Builder
		longest := 0
		for _, id := range ids {
			out.WriteString(st.Add(id))
			longest = max(longest, len(st.toks))
		}
		out.WriteString(st.Flush())
		if out.String() != tk.Decode(ids, false) {
			t.Errorf("%s: stream differs from Decode", name)
		}
		if longest > 200 {
			t.Errorf("%s: window grew to %d tokens over %d ids", name, longest, len(ids))
		}
	}
}

// Encode and Stream may be used from many goroutines at once (the word
// cache is shared); results must not depend on it.
func TestConcurrentEncode(t *testing.T) {
	tk := mini(t)
	texts := append([]string(nil), scannerTexts...)
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i], _ = tk.Encode(s, false)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for k := range 50 {
				i := (g*7 + k) % len(texts)
				got, err := tk.Encode(texts[i], false)
				if err == nil && !slices.Equal(got, want[i]) {
					err = fmt.Errorf("Encode(%q) = %v, want %v", texts[i], got, want[i])
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Cutting SentencePiece segments before "▁" (to cache the parts) gives the
// ids of BPE over the whole segment.
func TestChunksMatchWholeSegments(t *testing.T) {
	alphabet := []rune{' ', ' ', 'a', 'b', 'e', 'h', 't', 'T', '.', ',', '\n', 'é', '日', '😀', '\u0378', '▁'}
	rng := rand.New(rand.NewPCG(3, 4))
	mistral := func() *Tokenizer {
		tk, err := Load(testutil.Shared(t, refDirs["mistral-sp"]))
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	for _, load := range []func() *Tokenizer{func() *Tokenizer { return embedded(t) }, mistral} {
		tk, whole := load(), load()
		if !tk.spChunks {
			t.Fatal("tokenizer not chunkable")
		}
		whole.spChunks = false
		for range 300 {
			rs := make([]rune, rng.IntN(30))
			for i := range rs {
				rs[i] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(rs)
			a, _ := tk.Encode(s, false)
			b, _ := whole.Encode(s, false)
			if !slices.Equal(a, b) {
				t.Fatalf("%q: chunked %v, whole %v", s, a, b)
			}
		}
	}
}

// Tokenizer.Chat comes from tokenizer_config.json: nil without a
// template, an error for a broken one.
func TestChatWiring(t *testing.T) {
	if tk := embedded(t); tk.Chat != nil {
		t.Error("embedded stories260K has no chat template, but Chat is set")
	}
	base := []byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`)
	tk, err := New(base, []byte(`{"chat_template":"{% for m in messages %}{{ m.content }}{% endfor %}"}`))
	if err != nil || tk.Chat == nil {
		t.Fatalf("New with a template: Chat %v, err %v", tk.Chat, err)
	}
	out, err := tk.Chat.Render([]map[string]any{{"role": "user", "content": "hi"}}, ChatOptions{})
	if err != nil || out != "hi" {
		t.Errorf("Render = %q, %v", out, err)
	}
	// A broken template leaves tokenization working and reports itself.
	broken, err := New(base, []byte(`{"chat_template":"{% if %}"}`))
	if err != nil {
		t.Fatalf("a broken chat template stopped the tokenizer: %v", err)
	}
	if broken.Chat != nil || broken.ChatErr == nil {
		t.Errorf("broken template: Chat %v, ChatErr %v; want nil and an error", broken.Chat, broken.ChatErr)
	}
	if tk := refTokenizer(t, "qwen3"); tk.Chat == nil {
		t.Error("qwen3 has a chat template, but Chat is nil")
	}
}

// After Flush, a stream starts over: the next ids decode as a new text.
func TestStreamFlushEnds(t *testing.T) {
	tk := embedded(t)
	a, _ := tk.Encode("Lily saw", false)
	b, _ := tk.Encode("a ball.", false)
	st := tk.NewStream(true)
	var out strings.Builder
	for _, id := range a {
		out.WriteString(st.Add(id))
	}
	out.WriteString(st.Flush())
	out.WriteString("|")
	for _, id := range b {
		out.WriteString(st.Add(id))
	}
	out.WriteString(st.Flush())
	if want := tk.Decode(a, true) + "|" + tk.Decode(b, true); out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestBPEMergeResults checks every merge's result id against a plain
// vocabulary lookup: loading guesses most of them from the merge before.
// The hand-built cases put the empty token ("" also marks a gap in the id
// table) and a prefix in the way of the guess.
func TestBPEMergeResults(t *testing.T) {
	var models []*bpe
	for _, name := range refNames {
		if m, ok := refTokenizer(t, name).model.(*bpe); ok {
			models = append(models, m)
		}
	}
	for _, model := range []string{
		`{"type":"BPE","vocab":{"x":0,"xx":1,"":5},"merges":["x x"," "]}`,
		`{"type":"BPE","vocab":{"x":0,"":1,"xx":2},"merges":[" ","x x"," x"]}`,
		`{"type":"BPE","vocab":{"a":0,"##b":1,"ab":2,"##bb":3,"abb":4},"merges":["a ##b","##b ##b","ab ##b"],"continuing_subword_prefix":"##"}`,
	} {
		tk, err := New([]byte(`{"model":`+model+`}`), nil)
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		models = append(models, tk.model.(*bpe))
	}
	for _, m := range models {
		for rank, ab := range m.mergeAB {
			a, b := m.tokens[ab[0]], strings.TrimPrefix(m.tokens[ab[1]], m.prefix)
			if m.prefix == "" {
				b = m.tokens[ab[1]]
			}
			want, ok := m.vocab.get(a + b)
			got, found := m.merges.get(pairKey(int(ab[0]), int(ab[1])))
			if !ok || !found || got.rank == int32(rank) && got.newID != int32(want) {
				t.Fatalf("merge %d (%q %q): %+v, %v; want result %d", rank, a, b, got, found, want)
			}
		}
	}
}

// TestNewKeepsInput: New leaves the caller's bytes alone, also when keys
// that differ only in case override the model or its vocabulary and
// merges (encoding/json wrote their values over the input, where the
// fields pointed), and such keys still take precedence.
func TestNewKeepsInput(t *testing.T) {
	for _, c := range []struct {
		tj   string
		want string // the token of id 0
	}{
		{`{"model":{"vocab":{"a":0},"merges":null,"Vocab":{"b":0}}}`, "b"},
		{`{"model":{"vocab":{},"merges":[],"Vocab":{"b":0,"c":1,"bc":2},"Merges":["b c"]}}`, "b"},
		{`{"model":{"vocab":{"a":0},"merges":[]},"MODEL":{"vocab":{"b":0},"merges":[]}}`, "b"},
	} {
		data := []byte(c.tj)
		tk, err := New(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.tj, err)
		}
		if string(data) != c.tj {
			t.Errorf("New changed its input\n%s\nto\n%s", c.tj, data)
		}
		if got := tk.TokenString(0); got != c.want {
			t.Errorf("%s: token 0 is %q, want %q", c.tj, got, c.want)
		}
	}
}

// TestLoadErrors pins the errors of broken models, in particular which of
// several comes first: loading reads the vocabulary and merges while it
// splits the file, and merges' results while it reads them, but reports
// what it did when it did these one after the other.
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct{ tj, want string }{
		{`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}`,
			`tokenizer: model merges: merge 0 result "ab" is not in the vocabulary`},
		{`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b","b a"]}}`,
			`tokenizer: model merges: merge 1 result "ba" is not in the vocabulary`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b","a"]}}`,
			`tokenizer: model merges: merge 1: "a" is not two tokens separated by one space`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b",["a","c"]]}}`,
			`tokenizer: model merges: merge 1 ("a" "c") uses a token that is not in the vocabulary`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b"],"unk_token":"<unk>"}}`,
			`tokenizer: model: unk_token "<unk>" is not in the vocabulary`},
		{`{"model":{"vocab":{"a":0,"##b":1,"a##b":2},"merges":["a ##b"],"continuing_subword_prefix":"##"}}`,
			`tokenizer: model merges: merge 0 result "ab" is not in the vocabulary`},
		{`{"model":{"vocab":{"a":0,"##b":1,"ab":2},"merges":["a ##b", "ab ##b"],"continuing_subword_prefix":"##"}}`,
			`tokenizer: model merges: merge 1 result "abb" is not in the vocabulary`},
		{`{"model":{"merges":["a b"],"vocab":{"a":0,"b":1}}}`,
			`tokenizer: model merges: merge 0 result "ab" is not in the vocabulary`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b"]},"x":}`,
			`tokenizer: tokenizer.json: offset 54: unexpected '}'`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b"],"dropout":0.5}}`,
			`tokenizer: BPE dropout 0.5 is not supported (it makes tokenization random)`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":{"a":"b"}}}`,
			`tokenizer: model merges: offset 0: unexpected '{', want '['`},
		{`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[{"id":"x"}]}`,
			`tokenizer: tokenizer.json: json: cannot unmarshal string into Go struct field AddedToken.added_tokens.id of type int`},
		{`{"model":{"vocab":{"a":0,"b":1},"merges":["a b"]},"added_tokens":[{"id":"x"}]}`,
			`tokenizer: tokenizer.json: json: cannot unmarshal string into Go struct field AddedToken.added_tokens.id of type int`},
		{`{"model":{"vocab":{"a":"0"},"merges":[]}}`,
			`tokenizer: model vocab: offset 5: want a non-negative integer id`},
		{`{"model":{"vocab":{"a":0,"b":20000000},"merges":[]}}`,
			`tokenizer: model vocab: id 20000000 is implausibly large`},
	} {
		_, err := New([]byte(c.tj), nil)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.tj, err, c.want)
		}
	}
	// Merges are looked up in batches: errors within and across them. The
	// chain a+b, ab+b, abb+b, ... gives 40 merges to insert bad ones into.
	chain := func(insert map[int]string) string {
		vocab := map[string]int{"a": 0, "b": 1}
		var merges []string
		for i, prev := 0, "a"; i < 40; i++ {
			if m, ok := insert[i]; ok {
				merges = append(merges, m)
			}
			vocab[prev+"b"] = len(vocab)
			merges = append(merges, prev+" b")
			prev += "b"
		}
		data, err := json.Marshal(map[string]any{"model": map[string]any{"vocab": vocab, "merges": merges}})
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for _, c := range []struct {
		insert map[int]string
		want   string
	}{
		{map[int]string{20: "a c", 22: "x"}, `merge 20 ("a" "c") uses a token that is not in the vocabulary`},
		{map[int]string{3: "c a", 5: "ab"}, `merge 3 ("c" "a") uses a token that is not in the vocabulary`},
		{map[int]string{17: "q b"}, `merge 17 ("q" "b") uses a token that is not in the vocabulary`},
		{map[int]string{35: "a b b"}, `merge 35: "a b b" is not two tokens separated by one space`},
		{map[int]string{15: "a c", 31: "z z"}, `merge 15 ("a" "c") uses a token that is not in the vocabulary`},
	} {
		_, err := New([]byte(chain(c.insert)), nil)
		if want := "tokenizer: model merges: " + c.want; err == nil || err.Error() != want {
			t.Errorf("%v:\n got %v\nwant %s", c.insert, err, want)
		}
	}
}

// TestAddedTokensKeys: when keys that differ only in case, or a repeated
// key, give the added tokens, the one encoding/json takes wins, as when it
// read them all (the scanner reads them only when there is one such key).
// The JSON escape \u212a stands for the Kelvin sign.
func TestAddedTokensKeys(t *testing.T) {
	const model = `"model":{"vocab":{"a":0},"merges":[]}`
	for _, c := range []struct {
		tj   string
		want AddedToken
	}{
		{`{` + model + `,"added_tokens":[{"id":3,"content":"<s>"}],"ADDED_TOKENS":[{"id":4,"content":"<t>"}]}`,
			AddedToken{ID: 3, Content: "<s>"}},
		{`{` + model + `,"Added_Tokens":[{"id":4,"content":"<t>"}],"added_tokens":[{"id":3,"content":"<s>","special":true}]}`,
			AddedToken{ID: 3, Content: "<s>", Special: true}},
		{`{` + model + `,"added_tokens":[{"id":3,"content":"<s>","special":true}],"added_tokens":[{"id":5,"content":"<u>"}]}`,
			AddedToken{ID: 5, Content: "<u>"}},
		{`{` + model + `,"added_tokens":[{"Id":3,"content":"<s>","special":true}]}`,
			AddedToken{ID: 3, Content: "<s>", Special: true}},
		// The Kelvin sign folds to k, and sorts after it.
		{`{` + model + `,"added_tokens":[{"id":3,"content":"<s>"}],"added_toKens":[{"id":4,"content":"<t>"}]}`,
			AddedToken{ID: 4, Content: "<t>"}},
	} {
		tk, err := New([]byte(c.tj), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.tj, err)
		}
		if got := tk.AddedTokens(); len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: added tokens %+v, want [%+v]", c.tj, got, c.want)
		}
	}
}
