package tokenizer

import (
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkIndex fails unless x maps exactly what want maps.
func checkIndex(t *testing.T, x *vocabIndex, want map[string]int) {
	t.Helper()
	if x.len() != len(want) {
		t.Fatalf("len() = %d, want %d", x.len(), len(want))
	}
	for k, v := range want {
		if id, ok := x.get(k); !ok || id != v {
			t.Fatalf("get(%q) = %d, %v; want %d", k, id, ok, v)
		}
		if id, ok := x.getBytes([]byte(k)); !ok || id != v {
			t.Fatalf("getBytes(%q) = %d, %v; want %d", k, id, ok, v)
		}
	}
	if got := maps.Collect(x.all()); !maps.Equal(got, want) {
		t.Fatalf("all() = %v, want %v", got, want)
	}
	// In batches, present keys among absent ones.
	var toks [][]byte
	for k := range want {
		toks = append(toks, []byte(k), []byte(k+"\x00"))
	}
	ids := make([]int32, maxBatch)
	for i := 0; i < len(toks); i += maxBatch {
		batch := toks[i:min(i+maxBatch, len(toks))]
		x.getBatch(batch, ids)
		for j, tok := range batch {
			id, ok := want[string(tok)]
			if !ok {
				id = -1
			}
			if ids[j] != int32(id) {
				t.Fatalf("getBatch: %q has id %d, want %d", tok, ids[j], id)
			}
		}
	}
}

// TestVocabIndex holds the index to the map of the same list: duplicate
// keys (the last wins), the empty key, prefixes of keys, absent keys.
func TestVocabIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 100, 5000} {
		l := &vocabList{}
		var buf []byte
		for i := range n {
			k := strconv.Itoa(rng.IntN(n + 1)) // repeats
			if i%10 == 3 {
				k = k[:len(k)-1] // "" and prefixes
			}
			buf = append(buf, k...)
			l.ends = append(l.ends, len(buf))
			l.ids = append(l.ids, int32(rng.IntN(1<<20)))
		}
		l.keys = string(buf)
		x, err := newVocabIndex(l)
		if err != nil {
			t.Fatal(err)
		}
		want := l.toMap()
		checkIndex(t, x, want)
		for i := range 2 * n {
			k := "x" + strconv.Itoa(i)
			if _, ok := x.get(k); ok {
				t.Fatalf("get(%q) found a key never added", k)
			}
		}
	}
}
