package decode_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
)

// BenchmarkLockstepBatch generates B prompts of different lengths (greedy,
// no EOS, batchTokens tokens each) with logit fusion of two models, two
// ways: "seq" one prompt after the other through Lockstep over sessions
// (the one-at-a-time path), "batch" all together through LockstepBatch.
// It reports items/s and the process CPU seconds per item; compare the
// two in one sitting, interleaved:
//
//	go test -c ./decode && for i in 1 2 3; do ./decode.test -test.run - -test.bench 'LockstepBatch/tiny/B=8/'; done
//
// "tiny" is stories260K + llama2xs (../shared); "large" is the two model
// folders MOCO_LOCKSTEP_BENCH names (comma-separated, the same folder twice
// is fine, e.g. a SmolLM2-135M folder: two 135M models' worth of weights).
func BenchmarkLockstepBatch(b *testing.B) {
	type pair struct {
		name   string
		models func(b *testing.B) []*engine.Model
	}
	pairs := []pair{{"tiny", func(b *testing.B) []*engine.Model {
		s, _ := load(b, "stories260K")
		x, _ := load(b, "llama2xs")
		return []*engine.Model{s, x}
	}}}
	if env := os.Getenv("MOCO_LOCKSTEP_BENCH"); env != "" {
		pairs = append(pairs, pair{"large", func(b *testing.B) []*engine.Model {
			dirs := strings.Split(env, ",")
			if len(dirs) != 2 {
				b.Skip("MOCO_LOCKSTEP_BENCH names two model folders")
			}
			var ms []*engine.Model
			for _, d := range dirs {
				m, err := engine.Load(d, engine.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { m.Close() })
				ms = append(ms, m)
			}
			return ms
		}})
	}
	for _, p := range pairs {
		b.Run(p.name, func(b *testing.B) {
			models := p.models(b)
			vocab := min(models[0].Config.VocabSize, models[1].Config.VocabSize)
			// Touch every weight first (they may be mapped from disk).
			warm := &decode.Lockstep{Sessions: sessions(models...), Vocab: vocab, MaxTokens: 2}
			if _, err := warm.Run([]int{1, 2}, nil); err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{1, 4, 8, 16} {
				var reqs []decode.LockstepRequest
				for i := range n {
					prompt := []int{1}
					for k := range 4 + 7*(i%5) { // 5 to 33 tokens
						prompt = append(prompt, 3+(i*31+k*17)%(vocab-3))
					}
					reqs = append(reqs, decode.LockstepRequest{Prompt: prompt, MaxTokens: batchTokens})
				}
				b.Run(fmt.Sprintf("B=%d/seq", n), func(b *testing.B) {
					l := &decode.Lockstep{Sessions: sessions(models...), Combiner: &decode.Fusion{}, Vocab: vocab, MaxTokens: batchTokens}
					benchItems(b, n, func() {
						for _, r := range reqs {
							if got, err := l.Run(r.Prompt, nil); err != nil || len(got) != batchTokens {
								b.Fatalf("%d tokens, %v", len(got), err)
							}
						}
					})
				})
				b.Run(fmt.Sprintf("B=%d/batch", n), func(b *testing.B) {
					lb := &decode.LockstepBatch{Models: models, Vocab: vocab, NewCombiner: func() decode.Combiner { return &decode.Fusion{} }}
					benchItems(b, n, func() {
						got, err := lb.Run(context.Background(), reqs)
						if err != nil || len(got[n-1]) != batchTokens {
							b.Fatalf("%v", err)
						}
					})
				})
				// The first model alone in the same batch: twice its cost
				// is what the fusion batch would cost without the
				// lockstep loop's own work.
				b.Run(fmt.Sprintf("B=%d/one-model", n), func(b *testing.B) {
					lb := &decode.LockstepBatch{Models: models[:1], Vocab: vocab}
					benchItems(b, n, func() {
						got, err := lb.Run(context.Background(), reqs)
						if err != nil || len(got[n-1]) != batchTokens {
							b.Fatalf("%v", err)
						}
					})
				})
			}
		})
	}
}

const batchTokens = 32

// benchItems times run (n items each) and reports items/s and CPU s/item.
func benchItems(b *testing.B, n int, run func()) {
	c0, t0 := cpuTime(), time.Now()
	for b.Loop() {
		run()
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	items := float64(b.N * n)
	b.ReportMetric(items/wall.Seconds(), "items/s")
	b.ReportMetric(cpu.Seconds()/items, "cpu-s/item")
}
