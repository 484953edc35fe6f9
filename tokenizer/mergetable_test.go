package tokenizer

import (
	"math/rand/v2"
	"testing"
)

func TestMergeTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tab := newMergeTable(4) // small, so that it grows
	ref := map[uint64]merge{}
	for i := range 20000 {
		k := pairKey(rng.IntN(3000), rng.IntN(3000))
		v := merge{int32(i), int32(rng.IntN(1 << 20))}
		_, dup := ref[k]
		if !dup {
			ref[k] = v
		}
		if stored := tab.add(k, v); stored == dup {
			t.Fatalf("add(%x) stored=%v, want %v", k, stored, !dup)
		}
	}
	for k, v := range ref {
		if got, ok := tab.get(k); !ok || got != v {
			t.Fatalf("get(%x) = %v, %v; want %v", k, got, ok, v)
		}
	}
	for range 20000 {
		k := pairKey(3000+rng.IntN(3000), rng.IntN(6000))
		if _, ok := tab.get(k); ok {
			t.Fatalf("get(%x) found a key never added", k)
		}
	}
}
