package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

var scannerPatterns = []string{patGPT2, patLlama3, patQwen}

// scannerTexts stress the alternatives of the patterns: contractions in
// both cases, white-space runs before letters and at the end, \r\n runs,
// digit runs, punctuation with a leading space, non-ASCII letters, marks,
// numbers and spaces.
var scannerTexts = []string{
	"", " ", "  ", "\n", " \n \n", "\t\t x", "a", "Hello world", "Hello  world  ",
	"I'm you're they've we'll she'd it's don't", "I'M YOU'RE THEY'VE WE'LL SHE'D IT'S DON'T",
	"'s 'S 'x ' 'll'", "12345 1234567 ١٢٣٤ ½ Ⅻ", "$hello ,world !!! ... ?!\n\n",
	"a\r\nb\r\n\r\n  \r\n c", "foo   \n\n   bar", "x\u3000\u3000y\u00a0z\u2028w",
	"naïve café déjà-vu", "日本語のテキスト。中文，标点！", "emoji 😀👍🏽 family 👨‍👩‍👧",
	"e\u0301 combining\u0301\u0301 marks", "    def f(x):\n        return x**2  # comment\n",
	"tabs\tand\vvertical\fform", "endsWithSpaces   ", "  leading", "__init__ ___", "a.b.c", "'''",
	"\u0085nel\u0085", "   !", " !", "!!!\n\r\n", "ab12cd345ef6789",
}

// regexpBoundaries runs pattern with regexp2, the reference engine.
func regexpBoundaries(t testing.TB, re *regexp2.Regexp, s string) [][2]int {
	t.Helper()
	return backtracking{re}.findAll(s, nil)
}

func TestScannersMatchRegexp2(t *testing.T) {
	for _, p := range scannerPatterns {
		re := regexp2.MustCompile(p, regexp2.None)
		sc := knownScanner(p)
		for _, s := range scannerTexts {
			want := regexpBoundaries(t, re, s)
			got := sc.findAll(s, nil)
			if !slices.Equal(got, want) {
				t.Errorf("pattern %.20q, text %q:\n got %v\nwant %v", p, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}

func pieces(s string, b [][2]int) []string {
	var out []string
	for _, m := range b {
		out = append(out, s[m[0]:m[1]])
	}
	return out
}

func FuzzScanners(f *testing.F) {
	for _, s := range scannerTexts {
		f.Add(s)
	}
	res := make([]*regexp2.Regexp, len(scannerPatterns))
	for i, p := range scannerPatterns {
		res[i] = regexp2.MustCompile(p, regexp2.None)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for i, p := range scannerPatterns {
			want := regexpBoundaries(t, res[i], s)
			got := knownScanner(p).findAll(s, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("pattern %.20q, text %q:\n got %q\nwant %q", p, s, pieces(s, got), pieces(s, want))
			}
		}
	})
}

func TestKnownScannerOnlyForExactPatterns(t *testing.T) {
	if knownScanner(patGPT2+"|x") != nil || knownScanner(strings.ToUpper(patQwen)) != nil {
		t.Error("a modified pattern got a hand-written scanner")
	}
	f, err := compileRegex(`\s+(?!\S)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(backtracking); !ok {
		t.Errorf("lookahead pattern compiled to %T, want the backtracking engine", f)
	}
	f, _ = compileRegex(` {2,}`)
	if _, ok := f.(goRegexp); !ok {
		t.Errorf("plain pattern compiled to %T, want Go's regexp", f)
	}
}

// Random strings over an alphabet of the characters the patterns treat
// specially, checked against regexp2.
func TestScannersRandom(t *testing.T) {
	alphabet := []rune{' ', ' ', 'a', 'B', '1', '2', '\'', 's', 'L', 'l', 'e', 'R', '\n', '\r', '\t', '!', '.', 'é',
		'\u3000', '\u00a0', '\u0085', '١', '½', '日', '\u0301', '😀', '_', '$'}
	rng := rand.New(rand.NewPCG(1, 2))
	res := make([]*regexp2.Regexp, len(scannerPatterns))
	for i, p := range scannerPatterns {
		res[i] = regexp2.MustCompile(p, regexp2.None)
	}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		rs := make([]rune, rng.IntN(24))
		for i := range rs {
			rs[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := string(rs)
		for i, p := range scannerPatterns {
			want := regexpBoundaries(t, res[i], s)
			if got := knownScanner(p).findAll(s, nil); !slices.Equal(got, want) {
				t.Fatalf("pattern %.20q, text %q:\n got %q\nwant %q", p, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}
