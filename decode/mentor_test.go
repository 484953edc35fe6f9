package decode

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMentor(t *testing.T) {
	// Token 3 is EOS. Generator: 0->1->2->EOS. Mentor: 0->2->1->EOS.
	gen := [][]float64{{0, .9, .1, 0}, {0, 0, .9, .1}, {0, .1, 0, .9}, {1, 0, 0, 0}}
	men := [][]float64{{0, .1, .9, 0}, {0, .1, 0, .9}, {0, .9, 0, .1}, {1, 0, 0, 0}}
	tests := []struct {
		mentorWins bool
		want       []int
		choices    [][2][]int
	}{
		// Mentor wins: [2 1] is kept, then at 1 the patches are [2 EOS] and [EOS].
		{true, []int{2, 1}, [][2][]int{{{1, 2}, {2, 1}}, {{2, 3}, {3}}}},
		// Generator wins: [1 2], then at 2 the patches are [EOS] and [1 EOS].
		{false, []int{1, 2}, [][2][]int{{{1, 2}, {2, 1}}, {{3}, {1, 3}}}},
	}
	for _, tc := range tests {
		var seen [][2][]int
		m := &Mentor{
			Generator: markov(gen), Mentor: markov(men), Share: 1, PatchLen: 2, EOS: []int{3}, MaxTokens: 10,
			Choose: func(h, a, b []int) (bool, error) {
				seen = append(seen, [2][]int{slices.Clone(a), slices.Clone(b)})
				return tc.mentorWins, nil
			},
		}
		got, err := m.Run([]int{0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("mentor wins %v: got %v, want %v", tc.mentorWins, got, tc.want)
		}
		if len(seen) != len(tc.choices) {
			t.Fatalf("choices %v, want %v", seen, tc.choices)
		}
		for i := range seen {
			if !slices.Equal(seen[i][0], tc.choices[i][0]) || !slices.Equal(seen[i][1], tc.choices[i][1]) {
				t.Errorf("choice %d: %v, want %v", i, seen[i], tc.choices[i])
			}
		}
		if m.Patches != 2 || (m.MentorWins == 2) != tc.mentorWins {
			t.Errorf("counts: %d patches, %d mentor wins", m.Patches, m.MentorWins)
		}
	}
	// With agreeing models nothing is patched.
	m := &Mentor{Generator: markov(gen), Mentor: markov(gen), Share: DefaultMentorShare, Head: &Head{W: []float64{1}}, HeadThreshold: DefaultThreshold, EOS: []int{3}}
	got, err := m.Run([]int{0}, nil)
	if err != nil || !slices.Equal(got, []int{1, 2}) || m.Patches != 0 {
		t.Errorf("agreeing models: %v, %v, %d patches", got, err, m.Patches)
	}
}

// wordsTable is a 6-token toy: 0 BOS, 1 " a" (word start), 2 "b"
// (continues a word), 3 " c" (word start), 4 "d", 5 EOS.
func wordStarts6() []bool { return []bool{true, true, false, true, false, true} }

// TestMentorWords checks the word-level comparison of MoCo's
// complete_next_word on hand-built chains: the generator writes " a" "b"
// " c" "d" EOS, the mentor " a" "b" " a" EOS.
func TestMentorWords(t *testing.T) {
	// next-token tables by last token (one-hot-ish rows).
	row := func(id int) []float64 {
		p := make([]float64, 6)
		for i := range p {
			p[i] = 0.01
		}
		p[id] = 0.95
		return p
	}
	genNext := map[int]int{0: 1, 1: 2, 2: 3, 3: 4, 4: 5}
	menNext := map[int]int{0: 1, 1: 2, 2: 1, 3: 5, 4: 5}
	table := func(next map[int]int) [][]float64 {
		tb := make([][]float64, 6)
		for i := range tb {
			tb[i] = row(next[i])
		}
		return tb
	}
	var chosen [][2][]int
	m := &Mentor{
		Generator: markov(table(genNext)), Mentor: markov(table(menNext)), Share: 1, PatchLen: 3,
		WordStart: wordStarts6(), EOS: []int{5}, MaxTokens: 20,
		Choose: func(h, a, b []int) (bool, error) {
			chosen = append(chosen, [2][]int{slices.Clone(a), slices.Clone(b)})
			return false, nil
		},
	}
	got, err := m.Run([]int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Word 1: both " a b": same word, no patch. Word 2: generator " c d",
	// mentor " a b": patches of 3 from [0 1 2]: [3 4 EOS] and [1 2 1].
	if !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("got %v, want [1 2 3 4]", got)
	}
	want := [][2][]int{{{3, 4, 5}, {1, 2, 1}}}
	if len(chosen) != 1 || !slices.Equal(chosen[0][0], want[0][0]) || !slices.Equal(chosen[0][1], want[0][1]) {
		t.Errorf("patches %v, want %v", chosen, want)
	}
	if m.Words != 2 || m.Checks != 2 || m.Patches != 1 || m.MentorWins != 0 {
		t.Errorf("words %d checks %d patches %d wins %d, want 2 2 1 0", m.Words, m.Checks, m.Patches, m.MentorWins)
	}

	// A word stops after WordTolerance continuation tokens: "b" forever.
	loop := markov(table(map[int]int{0: 1, 1: 2, 2: 2}))
	m2 := &Mentor{Sampler: m.Sampler, WordStart: wordStarts6(), EOS: []int{5}}
	lg, _ := loop.Forward([]int{0})
	for _, tol := range []int{1, 2, 5} {
		loop.Truncate(1)
		w, err := m2.word(loop, lg, tol)
		if err != nil || len(w.toks) != 1+tol || w.next != nil || loop.Pos() != tol+1 {
			t.Errorf("tolerance %d: word %v (%v), next %v, session at %d", tol, w.toks, err, w.next, loop.Pos())
		}
	}
}

// TestMentorCheckPoints checks that the consulted words are drawn at
// random with probability Share, differ between prompts and seeds, and
// repeat for the same seed and prompt.
func TestMentorCheckPoints(t *testing.T) {
	// Every token is a word and the models always disagree, so every
	// consultation drafts patches: the trace marks the consulted words.
	run := func(seed uint64, prompt []int, share float64) (int, string) {
		var pattern []byte
		m := &Mentor{Generator: fixed(0.9, 0.1), Mentor: fixed(0.1, 0.9), Share: share, Seed: seed, MaxTokens: 200, PatchLen: 1,
			Choose: func(h, a, b []int) (bool, error) { return false, nil },
			Trace: func(ts TraceStep) {
				if ts.Source == "generator patch" {
					pattern = append(pattern, 'x')
				} else {
					pattern = append(pattern, '.')
				}
			}}
		got, err := m.Run(prompt, nil)
		if err != nil || len(got) != 200 || m.Words != 200 || m.Patches != m.Checks {
			t.Fatalf("%v: %d tokens, %d words, %d checks, %d patches", err, len(got), m.Words, m.Checks, m.Patches)
		}
		return m.Checks, string(pattern)
	}
	if n, _ := run(1, []int{0}, 0); n != 0 {
		t.Errorf("share 0: %d checks of 200 words, want none", n)
	}
	for _, share := range []float64{0.25, 0.5} {
		n, a := run(1, []int{0}, share)
		if want := 200 * share; math.Abs(float64(n)-want) > 4*math.Sqrt(want) {
			t.Errorf("share %v: %d checks of 200 words", share, n)
		}
		if strings.Count(a, "x") != n {
			t.Errorf("trace %s has not %d patches", a, n)
		}
		_, a2 := run(1, []int{0}, share)
		_, b := run(1, []int{1, 0}, share)
		_, c := run(2, []int{0}, share)
		if a != a2 {
			t.Error("same seed and prompt, different check points")
		}
		if a == b || a == c {
			t.Errorf("share %v: the same check points for another prompt or seed:\n%s\n%s\n%s", share, a, b, c)
		}
	}
	if n, _ := run(1, []int{0}, 1); n != 200 {
		t.Errorf("share 1: %d checks of 200", n)
	}
}
