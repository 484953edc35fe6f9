package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/kernels"
)

// aloneRef decodes prompt alone in a Session: the logits before each
// generated token and the greedy ids.
func aloneRef(t *testing.T, m *Model, prompt []int, gen int) ([][]float32, []int) {
	t.Helper()
	s := m.NewSession(len(prompt) + gen)
	lg, err := s.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	var all [][]float32
	var ids []int
	for range gen {
		all = append(all, append([]float32(nil), lg...))
		id := argmax(lg)
		ids = append(ids, id)
		if lg, err = s.Forward([]int{id}); err != nil {
			t.Fatal(err)
		}
	}
	return all, ids
}

type batchCase struct {
	prompt []int
	join   int // step at which the sequence is added
}

// runBatch decodes every case greedily in one Batch, sequences joining at
// their step, and returns the logits before each generated token and the ids.
func runBatch(t *testing.T, m *Model, opts BatchOptions, cases []batchCase, gen int) ([][][]float32, [][]int) {
	t.Helper()
	b := m.NewBatch(opts)
	logits := make([][][]float32, len(cases))
	ids := make([][]int, len(cases))
	seqs := map[*Seq]int{}
	done := 0
	for step := 0; done < len(cases); step++ {
		if step > 10000 {
			t.Fatal("the batch makes no progress")
		}
		for i, c := range cases {
			if c.join == step {
				s, err := b.Add(c.prompt, len(c.prompt)+gen)
				if err != nil {
					t.Fatal(err)
				}
				seqs[s] = i
			}
		}
		for _, s := range b.Step() {
			i := seqs[s]
			logits[i] = append(logits[i], append([]float32(nil), s.Logits()...))
			id := argmax(s.Logits())
			ids[i] = append(ids[i], id)
			if len(ids[i]) == gen {
				b.Remove(s)
				done++
				continue
			}
			if err := s.Feed(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b.Len() != 0 || b.KVUsed() != 0 {
		t.Fatalf("after every sequence left: %d sequences, %d KV bytes reserved", b.Len(), b.KVUsed())
	}
	return logits, ids
}

// TestBatchEqualsSession decodes sequences of different lengths that join
// at different steps, with prefill chunked into small steps, and compares
// each with its own single-sequence greedy decoding: same ids, logits
// within the tolerance TestIncrementalEqualsBatch holds.
func TestBatchEqualsSession(t *testing.T) {
	tol := 1e-5
	if strings.Contains(kernels.Impl(), "amx") {
		tol = 1e-4
	}
	const gen = 6
	for i, tc := range synthCases {
		t.Run(tc.name, func(t *testing.T) {
			c := synthConfig(t, tc.cfg)
			m, _ := synthModel(t, c, tc.dtype, uint64(i))
			lim := m.ContextSize() - gen
			var cases []batchCase
			for j, n := range []int{1, 7, 40, 150, 3} {
				cases = append(cases, batchCase{prompt: synthTokens(min(n, lim), c.VocabSize, uint64(100*i+j)), join: []int{0, 2, 0, 5, 9}[j]})
			}
			got, gotIDs := runBatch(t, m, BatchOptions{StepTokens: 16, MaxSeqs: 8}, cases, gen)
			for j, bc := range cases {
				want, wantIDs := aloneRef(t, m, bc.prompt, gen)
				if fmt.Sprint(gotIDs[j]) != fmt.Sprint(wantIDs) {
					t.Fatalf("sequence %d: batched greedy ids %v, alone %v", j, gotIDs[j], wantIDs)
				}
				for k := range want {
					assertClose(t, fmt.Sprintf("sequence %d, token %d", j, k), got[j][k], want[k], tol)
				}
			}
		})
	}
}

// TestBatchStories decodes the shared stories260K checkpoint: twelve
// prompts of different lengths joining over the first steps.
func TestBatchStories(t *testing.T) {
	m, err := Load(testutil.Shared(t, "models/stories260K"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const gen = 20
	var cases []batchCase
	for j := range 12 {
		cases = append(cases, batchCase{prompt: synthTokens(1+j*11, m.Config.VocabSize, uint64(j)), join: j % 5})
	}
	_, gotIDs := runBatch(t, m, BatchOptions{StepTokens: 32, MaxSeqs: 12}, cases, gen)
	for j, bc := range cases {
		_, want := aloneRef(t, m, bc.prompt, gen)
		if fmt.Sprint(gotIDs[j]) != fmt.Sprint(want) {
			t.Fatalf("sequence %d: batched greedy ids %v, alone %v", j, gotIDs[j], want)
		}
	}
}

// TestBatchAdmission checks the KV budget: reservations add up, a
// sequence that does not fit now fails with ErrKVFull, one that never
// fits says so, and Remove gives the bytes back.
func TestBatchAdmission(t *testing.T) {
	c := synthConfig(t, synthCases[0].cfg)
	m, _ := synthModel(t, c, synthCases[0].dtype, 1)
	per := m.KVBytesPerPos()
	if want := int64(2 * 4 * c.NumLayers * c.NumKVHeads * c.HeadDim); per != want {
		t.Fatalf("KVBytesPerPos = %d, want %d", per, want)
	}
	b := m.NewBatch(BatchOptions{KVBytes: 100 * per, MaxSeqs: 2})
	a, err := b.Add([]int{1, 2, 3}, 60)
	if err != nil {
		t.Fatal(err)
	}
	if b.KVUsed() != 60*per {
		t.Fatalf("KVUsed = %d, want %d", b.KVUsed(), 60*per)
	}
	if _, err := b.Add([]int{1}, 41); !errors.Is(err, ErrKVFull) {
		t.Fatalf("Add past the budget: %v, want ErrKVFull", err)
	}
	if _, err := b.Add([]int{1}, 101); err == nil || errors.Is(err, ErrKVFull) || !strings.Contains(err.Error(), "whole budget") {
		t.Fatalf("Add of more than the whole budget: %v", err)
	}
	if _, err := b.Add([]int{1}, 300); err == nil || !strings.Contains(err.Error(), "context") {
		t.Fatalf("Add past the context: %v", err)
	}
	if _, err := b.Add(make([]int, 5), 4); err == nil {
		t.Fatal("a prompt longer than its positions was admitted")
	}
	if _, err := b.Add([]int{c.VocabSize}, 4); err == nil {
		t.Fatal("an out-of-vocabulary token was admitted")
	}
	s2, err := b.Add([]int{1}, 40)
	if err != nil {
		t.Fatal(err)
	}
	if b.Step() == nil || a.Pos() != 3 || s2.Pos() != 1 {
		t.Fatalf("after a step: positions %d and %d", a.Pos(), s2.Pos())
	}
	if b.Step() != nil {
		t.Fatal("a step with nothing queued returned sequences")
	}
	b.Remove(a)
	b.Remove(a)
	if b.KVUsed() != 40*per || b.Len() != 1 {
		t.Fatalf("after Remove: %d bytes, %d sequences", b.KVUsed(), b.Len())
	}
	if a.Feed(1) == nil {
		t.Fatal("Feed after Remove succeeded")
	}
	if _, err := b.Add([]int{1}, 60); err != nil {
		t.Fatalf("the freed bytes were not reusable: %v", err)
	}
	if _, err := b.Add([]int{1}, 1); !errors.Is(err, ErrBatchFull) {
		t.Fatalf("a third sequence: %v, want ErrBatchFull", err)
	}
	if err := s2.Feed(make([]int, 40)...); err == nil {
		t.Fatal("Feed past the reservation succeeded")
	}
}
