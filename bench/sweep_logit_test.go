package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestSweepLogitBatchWorkers: with many workers the items of fusion,
// contrastive and nudging decode together in their method's lockstep
// batch; the results file (timing off, so reproducible) must be the one a
// single worker writes, every item answered alone, greedy and with
// seeded sampling.
func TestSweepLogitBatchWorkers(t *testing.T) {
	add := testutil.Shared(t, "models/skills-add")
	rev := testutil.Shared(t, "models/skills-rev")
	ds := testutil.Shared(t, "datasets/skills_mix.json")
	dir := t.TempDir()
	for _, temp := range []string{"0", "0.8"} {
		cfgText := "models: [{name: add, path: " + add + "}, {name: rev, path: " + rev + "}]\n" +
			"methods: [fusion, {name: contrastive, params: {experts: [0], anti: [1], alpha: 0.5}}, nudging]\n" +
			"datasets: [{path: " + ds + ", limit: 10, prompt: raw}]\n" +
			"generation: {max_tokens: 8, temperature: " + temp + "}\ntiming: false\n"
		cfgPath := filepath.Join(dir, "s.yaml")
		os.WriteFile(cfgPath, []byte(cfgText), 0o644)
		var files [][]byte
		for _, w := range []int{1, 8} {
			c, dss, err := LoadSweepConfig(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "r"+temp+string(rune('a'+w))+".jsonl")
			sum, err := RunSweep(context.Background(), c, dss, SweepOptions{Out: out, Workers: w})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Ran != 30 {
				t.Fatalf("workers %d: ran %d items, want 30", w, sum.Ran)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
		}
		if !bytes.Contains(files[0], []byte(`"output":"`)) {
			t.Fatalf("no outputs: %s", files[0])
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Errorf("temperature %s: 8 workers wrote\n%s\none worker\n%s", temp, files[1], files[0])
		}
	}
}
