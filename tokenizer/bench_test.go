package tokenizer

import (
	"os"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// BenchmarkEncode measures encoding throughput over the reference corpus,
// on one core; b.SetBytes makes go test report MB/s. The first pass fills
// the per-word cache, as it would be filled in use.
func BenchmarkEncode(b *testing.B) {
	corpus := readCorpus(b)
	var texts []string
	size := 0
	for _, e := range corpus {
		texts = append(texts, e.Text)
		size += len(e.Text)
	}
	for _, name := range refNames {
		b.Run(name, func(b *testing.B) {
			tk := refTokenizer(b, name)
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, s := range texts {
					if _, err := tk.Encode(s, false); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkEncodeCold measures encoding with an empty word cache.
func BenchmarkEncodeCold(b *testing.B) {
	corpus := readCorpus(b)
	size := 0
	for _, e := range corpus {
		size += len(e.Text)
	}
	for _, name := range []string{"qwen3", "llama3"} {
		b.Run(name, func(b *testing.B) {
			tk := refTokenizer(b, name)
			b.SetBytes(int64(size))
			for b.Loop() {
				tk.mu.Lock()
				clear(tk.cache)
				tk.mu.Unlock()
				for _, e := range corpus {
					tk.Encode(e.Text, false)
				}
			}
		})
	}
}

// BenchmarkLoad measures building a tokenizer from tokenizer.json. It also
// reports the process's CPU time per load (the collector's included),
// which varies less than wall time on a shared machine.
func BenchmarkLoad(b *testing.B) {
	for _, name := range refNames {
		b.Run(name, func(b *testing.B) {
			dir := testutil.Shared(b, refDirs[name])
			data, err := os.ReadFile(dir + "/tokenizer.json")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			cpu0 := cpuSeconds()
			for b.Loop() {
				if _, err := New(data, nil); err != nil {
					b.Fatal(err)
				}
			}
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(cpu*1e3/float64(b.N), "cpu-ms/op")
			}
		})
	}
}

// BenchmarkStream measures streaming decode per token.
func BenchmarkStream(b *testing.B) {
	corpus := readCorpus(b)
	var text string
	for _, e := range corpus {
		text += e.Text
	}
	for _, name := range []string{"qwen3", "mistral-sp"} {
		b.Run(name, func(b *testing.B) {
			tk := refTokenizer(b, name)
			ids, _ := tk.Encode(text, false)
			b.ResetTimer()
			for b.Loop() {
				st := tk.NewStream(false)
				for _, id := range ids {
					st.Add(id)
				}
				st.Flush()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/token")
		})
	}
}
