package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/internal/testutil"
)

// TestNumericFlagRanges: every numeric flag refuses values outside its
// range before any work, with one message naming the flag, the value and
// the valid range, and exit code 2.
func TestNumericFlagRanges(t *testing.T) {
	over := "1000"
	if runtime.NumCPU() >= 1000 {
		over = "100000"
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "-p", "x", "--threads", "-1"}, "--threads -1: want an integer in [0, "},
		{[]string{"generate", "-p", "x", "--threads", over}, "--threads " + over + ": want an integer in [0, "},
		{[]string{"generate", "-p", "x", "-t", over}, "--threads " + over + ": want"},
		{[]string{"generate", "-p", "x", "--top-p", "0"}, "--top-p 0: want a number in (0, 1]"},
		{[]string{"generate", "-p", "x", "-s", "-2"}, "or -1 for a random seed"},
		{[]string{"generate", "-p", "x", "--temp", "NaN"}, "--temperature NaN: want a number >= 0"},
		{[]string{"generate", "-p", "x", "-n", "-5"}, "--max-tokens -5: want an integer >= -1 (0: none, -1: up to the context"},
		{[]string{"collab", "fusion", "-m", "a", "-p", "x", "-n", "-2"}, "--max-tokens -2: want an integer >= -1"},
		{[]string{"generate", "-p", "x", "--repeat-penalty", "0"}, "--repeat-penalty 0: want a number in (0, 100]"},
		{[]string{"generate", "-p", "x", "-c", "-1"}, "--ctx-size -1: want an integer in [0, "},
		{[]string{"collab", "contrastive", "-m", "a", "-m", "b", "-p", "x", "--alpha", "1e308"}, "--alpha 1e+308: want a number in [0, 100]"},
		{[]string{"collab", "nudging", "-m", "a", "-m", "b", "-p", "x", "--gamma", "7"}, "--gamma 7: want a number in [0, 1]"},
		{[]string{"collab", "co-llm", "-m", "a", "-m", "b", "-p", "x", "--threshold", "1.5"}, "--threshold 1.5: want a number in [0, 1]"},
		{[]string{"collab", "cascade", "-m", "a", "-m", "b", "-m", "c", "-p", "x", "--threshold", "0.5,-0.1"}, "--threshold -0.1: want a number in [0, 1]"},
		{[]string{"collab", "speculative", "-m", "a", "-m", "b", "-p", "x", "--draft-tokens", "0"}, "--draft-tokens 0: want an integer in [1, 256]"},
		{[]string{"collab", "fusion", "-m", "a", "-m", "b", "-p", "x", "--weights", "1,-2"}, "--weights -2: want a number >= 0"},
		{[]string{"collab", "train-head", "-m", "a", "-m", "b", "--lr", "0"}, "--lr 0: want a number in (0, 10]"},
		{[]string{"eval", "-m", "a", "--dataset", "d", "--n", "-1"}, "--n -1: want an integer >= 0"},
		{[]string{"perplexity", "-f", "x", "--alpha", "-1"}, "--alpha -1: want a number in [0, 100]"},
		{[]string{"logits", "-m", "a", "--threads", "-2"}, "--threads -2: want"},
		{[]string{"bench", "speed", "-m", "a", "--gen-tokens", "0"}, "--gen-tokens 0: want an integer >= 1"},
		{[]string{"bench", "speed", "-m", "a", "--bandwidth", "-3"}, "--bandwidth -3: want a number >= 0"},
		{[]string{"search", "expo", "-m", "a", "--alpha", "0.3,1e308"}, "--alpha 1e+308: want a number in [0, 100]"},
		{[]string{"search", "dare-ties", "-m", "a", "--density", "1.5"}, "--density 1.5: want a number in [0, 1]"},
		{[]string{"merge", "--method", "ties", "-m", "a", "--density", "2"}, "--density 2: want a number in [0, 1]"},
		{[]string{"collab", "contrastive", "-m", "a", "-m", "b", "-p", "x", "--k", "0"}, "--k 0: want an integer >= 1"},
		{[]string{"collab", "debate", "-m", "a", "-m", "b", "-p", "x", "--top-p", "2"}, "--top-p 2: want a number in (0, 1]"},
		{[]string{"collab", "debate", "-m", "a", "-m", "b", "-p", "x", "--rounds", "0"}, "--rounds 0: want an integer >= 1"},
		// A bad --addr makes serve fail fast, not listen, if a range were lost.
		{[]string{"serve", "--max-seqs", "5000", "--addr", "bad::addr"}, "--max-seqs 5000: want an integer in [1, 4096]"},
		{[]string{"serve", "--max-body-bytes", "10", "--addr", "bad::addr"}, "--max-body-bytes 10: want an integer >= 1024"},
		{[]string{"sweep", "--workers", "-1"}, "--workers -1: want an integer >= 0"},
		{[]string{"score", "--workers", "-2"}, "--workers -2: want an integer >= 0"},
		{[]string{"train", "sft", "-m", "a", "--lora-alpha", "0"}, "--lora-alpha 0: want a number > 0"},
		{[]string{"train", "sft", "-m", "a", "--weight-decay", "-1"}, "--weight-decay -1: want a number >= 0"},
		{[]string{"train", "sft", "-m", "a", "--max-grad-norm", "-1"}, "--max-grad-norm -1: want a number >= 0 (0: no clipping"},
		{[]string{"train", "sft", "-m", "a", "--lr", "0"}, "--lr 0: want a number in (0, 10]"},
		{[]string{"train", "dpo", "-m", "a", "--lora-alpha", "-16"}, "--lora-alpha -16: want a number > 0"},
		{[]string{"train", "dpo", "-m", "a", "--weight-decay", "-0.1"}, "--weight-decay -0.1: want a number >= 0"},
		{[]string{"train", "grpo", "-m", "a", "--max-grad-norm", "-1"}, "--max-grad-norm -1: want a number >= 0"},
		{[]string{"train", "grpo", "-m", "a", "--lora-alpha", "0"}, "--lora-alpha 0: want a number > 0"},
		{[]string{"train", "sft", "-m", "a", "--lora-r", "0"}, "--lora-r 0: want an integer >= 1"},
		{[]string{"train", "sft", "-m", "a", "--steps", "0"}, "--steps 0: want an integer >= 1"},
		{[]string{"train", "sft", "-m", "a", "--batch-size", "-1"}, "--batch-size -1: want an integer >= 1"},
		{[]string{"train", "sft", "-m", "a", "--warmup", "-1"}, "--warmup -1: want an integer >= 0"},
		{[]string{"train", "dpo", "-m", "a", "--beta", "0"}, "--beta 0: want a number > 0"},
		{[]string{"train", "dpo", "-m", "a", "--rpo-alpha", "-1"}, "--rpo-alpha -1: want a number >= 0"},
		{[]string{"train", "dpo", "-m", "a", "--lora-dropout", "1"}, "--lora-dropout 1: want a number in [0, 0.99]"},
		{[]string{"train", "dpo", "-m", "a", "--grad-accum", "0"}, "--grad-accum 0: want an integer >= 1"},
		{[]string{"train", "grpo", "-m", "a", "--num-generations", "1"}, "--num-generations 1: want an integer >= 2"},
		{[]string{"train", "grpo", "-m", "a", "--max-completion-length", "0"}, "--max-completion-length 0: want an integer >= 1"},
		{[]string{"train", "grpo", "-m", "a", "--num-iterations", "0"}, "--num-iterations 0: want an integer >= 1"},
		{[]string{"train", "grpo", "-m", "a", "--steps", "-5"}, "--steps -5: want an integer >= 1"},
	} {
		out, errs, code := moco(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
		if n := strings.Count(errs, "\n"); n != 1 {
			t.Errorf("%v: %d lines on stderr, want one message", tc.args, n)
		}
	}
	// Two bad flags: one message each, on one line.
	_, errs, code := moco(t, "generate", "-p", "x", "--top-k", "-1", "--min-p", "2")
	if code != 2 || !strings.Contains(errs, "--top-k -1: want an integer >= 0") || !strings.Contains(errs, "--min-p 2: want a number in [0, 1]") {
		t.Errorf("two bad flags: exit %d, %q", code, errs)
	}
	// --help shows the ranges.
	_, help, _ := moco(t, "generate", "--help")
	if !strings.Contains(help, "(0: all cores; in [0, ") || !strings.Contains(help, `\n \r \t`) {
		t.Errorf("--help does not show the ranges and the escape rule:\n%s", help)
	}
}

// TestUnescape checks the one escape rule against llama.cpp's
// string_process_escapes (common/common.cpp), case by case.
func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a\nb`, "a\nb"},
		{`\r\t`, "\r\t"},
		{`\\n`, `\n`},
		{`\'\"`, `'"`},
		{`\x41\x4a`, "AJ"},
		{`\x4`, `\x4`},   // one hex digit: kept
		{`\xzz`, `\xzz`}, // not hex: kept
		{`\q`, `\q`},     // unknown escape: kept as typed
		{`end\`, `end\`}, // trailing backslash: kept
		{"plain", "plain"},
		{"Q: 1+1=\\nA:", "Q: 1+1=\nA:"},
	} {
		if got := unescape(tc.in); got != tc.want {
			t.Errorf("unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := unescapeAll([]string{`a\n`}, true); got[0] != `a\n` {
		t.Errorf("--no-escape changed %q", got[0])
	}
}

// TestStopEscapes: generate and eval read --stop '\n' the same way, as a
// newline.
func TestStopEscapes(t *testing.T) {
	base := []string{"generate", "-p", "Once upon a time", "--temp", "0", "-n", "60"}
	full, _, code := moco(t, base...)
	body := strings.TrimSuffix(full, "\n")
	i := strings.Index(body, "\n")
	if code != 0 || i < 0 {
		t.Skipf("the embedded model's greedy text has no newline to stop at: %q", full)
	}
	cut, _, _ := moco(t, append(base, "--stop", `\n`)...)
	if cut != body[:i]+"\n" {
		t.Errorf(`--stop '\n': got %q, want %q`, cut, body[:i]+"\n")
	}
	lit, _, _ := moco(t, append(base, "--stop", `\n`, "--no-escape")...)
	if lit != full {
		t.Errorf(`--stop '\n' --no-escape stopped early: %q`, lit)
	}

	ds := filepath.Join(t.TempDir(), "d.json")
	os.WriteFile(ds, []byte(`{"dataset":"t","task_type":"exact_match","test":[{"id":"a","input":"Q","output":"x"}]}`), 0o644)
	model := testutil.Shared(t, "models/skills-add")
	out, errs, code := moco(t, "eval", "-m", model, "--dataset", ds, "--stop", `\n`, "--json", "-q")
	var r struct {
		Settings struct{ Stop []string } `json:"settings"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || len(r.Settings.Stop) != 1 || r.Settings.Stop[0] != "\n" {
		t.Errorf(`eval --stop '\n': exit %d, settings %+v, stderr %q`, code, r.Settings, errs)
	}
}

// TestLlamaFlags: llama.cpp's short flags and names give the same run as
// the long ones; sampling without -s draws a random seed (shown by
// --verbose), and -s fixes it.
func TestLlamaFlags(t *testing.T) {
	long, _, c1 := moco(t, "generate", "--prompt", "Tom", "--max-tokens", "12", "--temperature", "0.7", "--seed", "9", "--threads", "1", "--ctx-size", "64")
	short, _, c2 := moco(t, "generate", "-p", "Tom", "-n", "12", "--temp", "0.7", "-s", "9", "-t", "1", "-c", "64")
	alias, _, c3 := moco(t, "generate", "-p", "Tom", "--n-predict", "12", "--temp", "0.7", "-s", "9")
	if c1 != 0 || c2 != 0 || c3 != 0 || long != short || long != alias || long == "" {
		t.Errorf("long %q (%d), short %q (%d), aliases %q (%d)", long, c1, short, c2, alias, c3)
	}
	f := filepath.Join(t.TempDir(), "p.txt")
	os.WriteFile(f, []byte("Tom"), 0o644)
	if got, _, _ := moco(t, "generate", "-f", f, "-n", "12", "--temp", "0.7", "-s", "9"); got != long {
		t.Errorf("-f FILE: %q, want %q", got, long)
	}

	seed := regexp.MustCompile(`seed: (\d+)`)
	seeds := map[string]bool{}
	for range 3 {
		_, errs, code := moco(t, "generate", "-p", "Tom", "-n", "1", "--verbose")
		m := seed.FindStringSubmatch(errs)
		if code != 0 || m == nil {
			t.Fatalf("--verbose printed no seed: exit %d, %q", code, errs)
		}
		seeds[m[1]] = true
	}
	if len(seeds) < 2 {
		t.Errorf("three runs without -s used the same seed %v", seeds)
	}
	if _, errs, _ := moco(t, "generate", "-p", "Tom", "-n", "1", "-v", "-s", "42"); !strings.Contains(errs, "seed: 42\n") {
		t.Errorf("-s 42 --verbose: %q", errs)
	}
	if _, errs, _ := moco(t, "generate", "-p", "Tom", "-n", "1", "-v", "--temp", "0"); !strings.Contains(errs, "seed: 0\n") {
		t.Errorf("greedy runs need no random seed: %q", errs)
	}
}

// TestRepeatPenaltyCLI: --repeat-penalty changes greedy text that repeats
// itself, and 1 (the default) is off.
func TestRepeatPenaltyCLI(t *testing.T) {
	base := []string{"generate", "-p", "Once upon a time", "--temp", "0", "-n", "40"}
	plain, _, _ := moco(t, base...)
	one, _, _ := moco(t, append(base, "--repeat-penalty", "1")...)
	pen, _, code := moco(t, append(base, "--repeat-penalty", "1.5")...)
	if code != 0 || one != plain || pen == plain {
		t.Errorf("plain %q\npenalty 1 %q\npenalty 1.5 %q (exit %d)", plain, one, pen, code)
	}
	off, _, _ := moco(t, append(base, "--repeat-penalty", "1.5", "--repeat-last-n", "0")...)
	if off != plain {
		t.Errorf("--repeat-last-n 0 should turn the penalty off: %q", off)
	}
}

// TestContextSizeFlag: -c bounds the session and the error names the real
// limit and the flag.
func TestContextSizeFlag(t *testing.T) {
	_, errs, code := moco(t, "generate", "-p", strings.Repeat("Once upon a time ", 10), "-c", "8", "-n", "4")
	if code != 1 || !strings.Contains(errs, "context size of 8 positions") || !strings.Contains(errs, "--ctx-size") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	_, errs, code = moco(t, "generate", "-p", "Tom", "-n", "4", "-v", "--temp", "0")
	if code != 0 || !strings.Contains(errs, "context size: 512 positions") {
		t.Errorf("default context: exit %d, stderr %q (stories260K has max_position_embeddings 512)", code, errs)
	}
}

func TestVersion(t *testing.T) {
	out, errs, code := moco(t, "version")
	if code != 0 || !strings.HasPrefix(out, "moco ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("exit %d, %q, %q", code, out, errs)
	}
	out, _, _ = moco(t, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Go != runtime.Version() || v.Version == "" {
		t.Errorf("--json: %v %+v", err, v)
	}
}

// TestGenerateJSON: generate --json prints one object with the text and
// the settings that made it.
func TestGenerateJSON(t *testing.T) {
	text, _, _ := moco(t, "generate", "-p", "Tom", "-n", "10", "-s", "3")
	out, errs, code := moco(t, "generate", "-p", "Tom", "-n", "10", "-s", "3", "--json")
	var r generateResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("exit %d, %q, %q", code, out, errs)
	}
	if r.Text+"\n" != text || r.Seed != 3 || r.Prompt != "Tom" || r.Tokens < 1 || r.Tokens > 10 || r.Settings["temperature"] != 0.8 {
		t.Errorf("got %+v, want the text %q", r, text)
	}
}

// TestLineProgress: off a terminal, '\r' redraws become whole lines at most
// every progressEvery, and the final state of a bar is printed once.
func TestLineProgress(t *testing.T) {
	var b strings.Builder
	now := time.Unix(0, 0)
	p := &lineProgress{w: &b, every: 5 * time.Second, now: func() time.Time { return now }}
	for k := 1; k <= 10; k++ {
		p.Write([]byte("\rbar " + strings.Repeat("=", k) + "   "))
		now = now.Add(time.Second)
	}
	p.Write([]byte("\n"))
	p.Write([]byte("plain line\n"))
	want := "bar =\nbar =====\nbar ==========\nplain line\n" // a line shows the state the next redraw replaces
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("a carriage return reached a non-terminal")
	}
	if w := progressOut(&b); w == any(&b) {
		t.Error("progressOut passed a buffer through as if it were a terminal")
	}
}

// TestStepLine: a training run resumed after 2 of 10 steps prints steps 3
// and 4; the rate counts only this run's share of the time (hand-derived:
// 4 s over 4 steps, 2 of them this run's, 300 tokens: 150 tokens/s) and
// the ETA the steps left at the average step time.
func TestStepLine(t *testing.T) {
	var b strings.Builder
	p := newStepLine(&b, false, 10)
	p.step(3, 100, 3*time.Second, "loss 1.0000")
	p.step(4, 200, 4*time.Second, "loss 0.5000")
	p.end()
	want := "step 3/10  loss 1.0000  100 tok/s  ETA 7s\nstep 4/10  loss 0.5000  150 tok/s  ETA 6s\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	var q strings.Builder
	p = newStepLine(&q, true, 10)
	p.step(1, 100, time.Second, "loss 1.0000")
	p.end()
	if q.Len() != 0 {
		t.Errorf("quiet run printed %q", q.String())
	}
}

// TestCollabHelpListsEveryMethod: 'moco collab --help' and the message for
// a missing METHOD name every method collab runs, from each level (the
// API- and text-level ones used to be listed only under a method's own
// --help, so a user could not find them).
func TestCollabHelpListsEveryMethod(t *testing.T) {
	_, help, code := moco(t, "collab", "--help")
	if code != 0 {
		t.Fatalf("collab --help: exit %d", code)
	}
	_, missing, _ := moco(t, "collab")
	want := []string{"fusion", "contrastive", "nudging", "cascade", "co-llm", "mentor", "speculative", "train-head"}
	for _, s := range collab.Specs() {
		if s.Level == collab.LevelAPI || s.Level == collab.LevelText {
			want = append(want, s.Name)
		}
	}
	if len(want) < 8+10 {
		t.Fatalf("only %d methods registered: %v", len(want), want)
	}
	for _, m := range want {
		if !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(m)+` `).MatchString(help) && m != "train-head" {
			t.Errorf("collab --help has no line for %s", m)
		}
		if !strings.Contains(missing, " "+m+",") && !strings.Contains(missing, " "+m+" ") {
			t.Errorf("the missing-METHOD message does not name %s: %q", m, missing)
		}
	}
}

// TestHelpShowsEachNoteOnce: every --help starts "Usage: moco", and no
// flag's help line repeats a parenthetical
// next to itself (a range set twice, or a usage text that already carried its range's
// note, once printed "(0: all) (0: all; >= 0)" and "(>= 1) (>= 1)").
func TestHelpShowsEachNoteOnce(t *testing.T) {
	var cmds [][]string
	for name := range commands {
		cmds = append(cmds, []string{name, "--help"})
	}
	for _, sub := range []string{"bench speed", "collab fusion", "collab debate", "collab train-head", "train sft", "train dpo", "train grpo",
		"sweep report", "sweep merge", "search swarms", "search greedy-soup", "search lorahub", "search expo", "search dare-ties", "bench serve"} {
		cmds = append(cmds, append(strings.Fields(sub), "--help"))
	}
	paren := regexp.MustCompile(`\(([^()]+)\)`)
	for _, args := range cmds {
		_, help, _ := moco(t, args...)
		if !strings.HasPrefix(help, "Usage: moco ") {
			t.Errorf("%v: --help starts %q, want \"Usage: moco ...\"", args[:len(args)-1], strings.SplitN(help, "\n", 2)[0])
		}
		for _, line := range strings.Split(help, "\n") {
			notes := map[string]bool{} // "0:" of "(0: all cores)"
			for _, m := range paren.FindAllStringSubmatch(line, -1) {
				if strings.Contains(line, "("+m[1]+") ("+m[1]) {
					t.Errorf("%v: %q repeats (%s", args[:len(args)-1], strings.TrimSpace(line), m[1])
				}
				if v, _, ok := strings.Cut(m[1], ": "); ok && !strings.Contains(v, " ") {
					if notes[v] {
						t.Errorf("%v: %q says what %s means twice", args[:len(args)-1], strings.TrimSpace(line), v)
					}
					notes[v] = true
				}
			}
		}
	}
}

// TestMaxTokensZero: -n means the same in generate and collab: 0 generates
// nothing and -1 up to the context, as llama.cpp's -n does.
func TestMaxTokensZero(t *testing.T) {
	s := testutil.Shared(t, "models/stories260K")
	for _, cmd := range [][]string{{"generate", "-m", s}, {"collab", "fusion", "-m", s}} {
		out, errs, code := moco(t, append(cmd, "-p", "Once upon a time", "--temp", "0", "-n", "0")...)
		if code != 0 || out != "" {
			t.Errorf("%s -n 0: exit %d, stdout %q, stderr %q; want nothing", cmd[0], code, out, errs)
		}
	}
	out, _, code := moco(t, "collab", "fusion", "-m", s, "-p", "Tom", "-n", "0", "--json")
	var r collabResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Text != "" || r.Method != "fusion" {
		t.Errorf("collab -n 0 --json: exit %d, %q", code, out)
	}
	gen, _, c1 := moco(t, "generate", "-m", s, "-p", "Once upon a time", "--temp", "0", "-n", "-1")
	fus, _, c2 := moco(t, "collab", "fusion", "-m", s, "-p", "Once upon a time", "--temp", "0", "-n", "-1")
	if c1 != 0 || c2 != 0 || gen != fus || len(strings.Fields(gen)) < 50 {
		t.Errorf("-n -1: generate %q (exit %d), collab %q (exit %d); want the same long text", gen, c1, fus, c2)
	}
}
