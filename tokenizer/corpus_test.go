package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// The five reference tokenizers of ../shared, by their corpus key.
var refDirs = map[string]string{
	"qwen3":      "fixtures/tokenizers/qwen3",
	"llama3":     "fixtures/tokenizers/llama3",
	"mistral-sp": "fixtures/tokenizers/mistral-sp",
	"gemma3":     "fixtures/tokenizers/gemma3",
	"tok512":     "models/stories260K",
}

var refNames = []string{"qwen3", "llama3", "mistral-sp", "gemma3", "tok512"}

type corpusEntry struct {
	Text    string            `json:"text"`
	IDs     map[string][]int  `json:"ids"`
	Decoded map[string]string `json:"decoded"`
}

var (
	tokCache   = map[string]*Tokenizer{}
	tokCacheMu sync.Mutex
)

// refTokenizer loads (once) the shared tokenizer called name.
func refTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	if name == "gemma3" && raceEnabled && testing.Short() {
		t.Skip("gemma3 loads slowly under -race; run without -short")
	}
	dir := testutil.Shared(t, refDirs[name])
	tokCacheMu.Lock()
	defer tokCacheMu.Unlock()
	if tk, ok := tokCache[name]; ok {
		return tk
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	tokCache[name] = tk
	return tk
}

// refTokenizerFile reads the shared tokenizer called name's tokenizer.json.
func refTokenizerFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.Shared(t, refDirs[name]), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	p := testutil.Shared(t, "fixtures/tokenizers/corpus.ref.jsonl")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var e corpusEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCorpusReference(t *testing.T) {
	corpus := readCorpus(t)
	for _, name := range refNames {
		t.Run(name, func(t *testing.T) {
			tk := refTokenizer(t, name)
			bad := 0
			for i, e := range corpus {
				want, ok := e.IDs[name]
				if !ok {
					t.Fatalf("corpus line %d has no ids for %s", i+1, name)
				}
				got, err := tk.Encode(e.Text, false)
				if err != nil {
					t.Errorf("line %d: Encode(%q): %v", i+1, e.Text, err)
					continue
				}
				if !slices.Equal(got, want) {
					bad++
					if bad <= 5 {
						t.Errorf("line %d: Encode(%q)\n got %v\nwant %v", i+1, e.Text, got, want)
					}
				}
				if d := tk.Decode(want, false); d != e.Decoded[name] {
					bad++
					if bad <= 5 {
						t.Errorf("line %d: Decode(%v)\n got %q\nwant %q", i+1, want, d, e.Decoded[name])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d texts differ", bad, len(corpus))
			}
		})
	}
}

// The byte-level tokenizers lose nothing: decoding the ids of a corpus
// text gives the text back, after the tokenizer's normalizer (NFC for
// qwen3) and clean-up (llama3's config asks for it).
func TestCorpusRoundTrip(t *testing.T) {
	corpus := readCorpus(t)
	for _, name := range []string{"qwen3", "llama3"} {
		t.Run(name, func(t *testing.T) {
			tk := refTokenizer(t, name)
			var specials []string
			for _, a := range tk.AddedTokens() {
				specials = append(specials, a.Content)
			}
			for i, e := range corpus {
				want := e.Text
				if tk.normalizer != nil {
					want = normalizeAround(want, specials)
				}
				if tk.cleanup {
					want = cleanUpSpaces(want)
				}
				if got := tk.Decode(e.IDs[name], false); got != want {
					t.Errorf("line %d: Decode(reference ids) = %q, want %q", i+1, got, want)
				}
			}
		})
	}
}
