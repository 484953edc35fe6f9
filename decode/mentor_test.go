package decode

import (
	"slices"
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
	// With Share 0 -> default 0.25; with agreeing models nothing is patched.
	m := &Mentor{Generator: markov(gen), Mentor: markov(gen), Head: &Head{W: []float64{1}}, EOS: []int{3}}
	got, err := m.Run([]int{0}, nil)
	if err != nil || !slices.Equal(got, []int{1, 2}) || m.Patches != 0 {
		t.Errorf("agreeing models: %v, %v, %d patches", got, err, m.Patches)
	}
}
