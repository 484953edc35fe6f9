package engine

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// benchModel is a small random Llama-shaped model: big enough that the
// matrix products dominate, small enough for a quick run.
func benchModel(b *testing.B, dtype safetensors.DType) *Model {
	c := synthConfig(b, map[string]any{"model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
		"num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 4, "vocab_size": 2048, "max_position_embeddings": 1024})
	m, _ := synthModel(b, c, dtype, 1)
	return m
}

// BenchmarkPrefill feeds a 128-token prompt as one batch.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b, safetensors.BF16)
	s := m.NewSession(256)
	tokens := synthTokens(128, m.Config.VocabSize, 3)
	b.ResetTimer()
	for b.Loop() {
		s.Reset()
		if _, err := s.Forward(tokens); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(tokens))/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode feeds one token at a time after a 128-token prompt.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b, safetensors.BF16)
	s := m.NewSession(1024)
	tokens := synthTokens(128, m.Config.VocabSize, 3)
	b.ResetTimer()
	for b.Loop() {
		if s.Pos() == s.MaxSeq() {
			s.Truncate(128)
		}
		if s.Pos() == 0 {
			s.Forward(tokens)
		}
		if _, err := s.Forward(tokens[:1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkBatchDecode steps 1, 2, 4, 8 and 16 sequences that decode one
// token each per step, after a 32-token prompt each: tokens/s is the
// aggregate generation throughput. MOCO_BENCH_MODEL names a model folder
// to use instead of the small random one (e.g. moco synth --shape
// qwen2.5-0.5b), MOCO_BENCH_THREADS the threads.
func BenchmarkBatchDecode(b *testing.B) {
	m := benchModel(b, safetensors.BF16)
	if dir := os.Getenv("MOCO_BENCH_MODEL"); dir != "" {
		var err error
		if m, err = Load(dir, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	if n, _ := strconv.Atoi(os.Getenv("MOCO_BENCH_THREADS")); n > 0 {
		kernels.SetThreads(n)
	}
	const prompt, room = 32, 512
	for _, n := range []int{1, 2, 4, 8, 16} {
		b.Run(fmt.Sprintf("seqs=%d", n), func(b *testing.B) {
			batch := m.NewBatch(BatchOptions{MaxSeqs: n, KVBytes: int64(n*(prompt+room)) * m.KVBytesPerPos()})
			seqs := make([]*Seq, n)
			fill := func() {
				for i := range seqs {
					batch.Remove(seqs[i])
					s, err := batch.Add(synthTokens(prompt, m.Config.VocabSize, uint64(i)), prompt+room)
					if err != nil {
						b.Fatal(err)
					}
					seqs[i] = s
				}
				for batch.Step() != nil {
				}
			}
			fill()
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for b.Loop() {
				if seqs[0].Pos() >= prompt+room-1 {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				for _, s := range seqs {
					if err := s.Feed(1); err != nil {
						b.Fatal(err)
					}
				}
				if len(batch.Step()) != n {
					b.Fatal("not every sequence was stepped")
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tokens/s")
			// On a machine shared with other work the wall clock measures
			// the scheduler: tokens per CPU second times the threads is
			// what the threads would do running alone.
			if cpu := cpuSeconds() - cpu0; cpu0 > 0 && cpu > 0 {
				b.ReportMetric(float64(b.N*n)/cpu*float64(kernels.Threads()), "cpu-tokens/s")
			}
		})
	}
}

// cpuSeconds is the process's user and system CPU time from
// /proc/self/stat (Linux), 0 where that is unavailable.
func cpuSeconds() float64 {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // clock ticks (USER_HZ, 100 on Linux)
}
