package tokenizer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// splitTokenizerJSON is a byte-level BPE tokenizer.json whose pre-tokenizer
// is a Split on pattern.
func splitTokenizerJSON(t *testing.T, pattern string) []byte {
	t.Helper()
	vocab := map[string]int{}
	for i := 0; i < 256; i++ {
		vocab[string(rune(i))] = i
	}
	tj := map[string]any{
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	data, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRegexCatastrophicBacktracking: a Split pattern that backtracks
// exponentially fails with an error naming the pattern instead of running
// for minutes (regexp2 alone takes over 50 s on this input).
func TestRegexCatastrophicBacktracking(t *testing.T) {
	const pattern = `(\w+\s?)*$`
	tk, err := New(splitTokenizerJSON(t, pattern), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Encode("hello world", false); err != nil {
		t.Fatalf("ordinary text: %v", err)
	}
	start := time.Now()
	_, err = tk.Encode(strings.Repeat("a", 28)+"!", false)
	took := time.Since(start)
	var te *RegexTimeoutError
	if !errors.As(err, &te) || te.Pattern != pattern || !strings.Contains(err.Error(), "regex") {
		t.Fatalf("Encode: err = %v, want a RegexTimeoutError naming %q", err, pattern)
	}
	if took > 10*regexTimeout {
		t.Errorf("Encode took %v, limit %v", took, regexTimeout)
	}
}

// TestStandardPatternsKeepScanners: the bound on regexp2 does not send the
// standard pre-tokenizer patterns to it; they keep their linear scanners.
func TestStandardPatternsKeepScanners(t *testing.T) {
	for _, p := range scannerPatterns {
		f, err := compileRegex(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, slow := f.(backtracking); slow {
			t.Errorf("pattern %.30q compiled to regexp2, want its scanner", p)
		}
	}
}
