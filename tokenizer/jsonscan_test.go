package tokenizer

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"
)

// FuzzJSONScanner checks the fast JSON scanner against encoding/json:
// whatever encoding/json accepts, the scanner reads the same way.
func FuzzJSONScanner(f *testing.F) {
	f.Add([]byte(`{"a": 1, "b\u00e9\n": 22, "\ud83d\ude00": 3}`))
	f.Add([]byte(`{"model": {"vocab": {"x": 0}, "merges": [["a", "b"], "c d"]}, "n": null, "t": [true, 1.5e3, {"k": "v"}]}`))
	f.Add([]byte(`["a b", "c d"]`))
	f.Add([]byte(`[["a\"", "b\\"]]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // the scanner rejects what encoding/json would patch with U+FFFD
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) == nil && obj != nil {
			got, err := splitObject(data)
			if err != nil {
				t.Fatalf("splitObject(%q): %v; encoding/json accepts it", data, err)
			}
			if len(got) != len(obj) {
				t.Fatalf("splitObject(%q): %d keys, encoding/json %d", data, len(got), len(obj))
			}
			for k, v := range obj {
				if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
					t.Fatalf("splitObject(%q)[%q] = %q, want %q", data, k, got[k], v)
				}
			}
		}
		var vocab map[string]int
		if json.Unmarshal(data, &vocab) == nil && vocab != nil {
			ok := true
			for _, id := range vocab {
				ok = ok && id >= 0
			}
			// encoding/json takes the last of duplicate keys, the scanner
			// too; numbers like 1.0 or 1e2 are not ids the scanner accepts.
			if got, err := parseVocab(data); ok && err == nil && !maps.Equal(got, vocab) {
				t.Fatalf("parseVocab(%q) = %v, want %v", data, got, vocab)
			}
		}
		var strs []string
		if json.Unmarshal(data, &strs) == nil {
			id := func(b []byte) (int, bool) { return len(b), true }
			got, err := parseMerges(data, id)
			if err == nil && len(got) != len(strs) {
				t.Fatalf("parseMerges(%q): %d merges, want %d", data, len(got), len(strs))
			}
		}
		var pairs [][]string
		if json.Unmarshal(data, &pairs) == nil && allPairs(pairs) {
			id := func(b []byte) (int, bool) { return len(b), true }
			got, err := parseMerges(data, id)
			if err != nil {
				t.Fatalf("parseMerges(%q): %v; encoding/json accepts it", data, err)
			}
			for i, p := range pairs {
				if got[i] != [2]int32{int32(len(p[0])), int32(len(p[1]))} {
					t.Fatalf("parseMerges(%q)[%d] = %v, want lengths of %q", data, i, got[i], p)
				}
			}
		}
	})
}

func allPairs(ps [][]string) bool {
	for _, p := range ps {
		if len(p) != 2 {
			return false
		}
	}
	return true
}

// TestJSONScannerSurrogates compares the scanner's reading of surrogate
// escapes with encoding/json's, the reference for every key of a vocabulary.
func TestJSONScannerSurrogates(t *testing.T) {
	for _, key := range []string{
		`\ud800\u0041`, `\ud800\udc00`, `\udc00\ud800`, `\ud800`, `\ud800x`,
		`\ud800\n`, `\ud83d\ude00\ud83d`, `\ud800\ud800\udc00`, `a\udfffb`,
	} {
		data := []byte(`{"` + key + `":7}`)
		var want map[string]int
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, err := parseVocab(data)
		if err != nil {
			t.Fatalf("parseVocab(%s): %v", data, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("parseVocab(%s) = %v, encoding/json %v", data, got, want)
		}
	}
}
