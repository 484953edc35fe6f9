package serve

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// metrics counts requests and tokens and writes them, with the batchers'
// state, in Prometheus' text format.
type metrics struct {
	s        *Server
	mu       sync.Mutex
	requests map[reqKey]int64
	prompt   map[string]int64
	gen      map[string]int64

	// Generated tokens sampled once a second, for the tokens/s gauge over
	// the last rateWindow seconds.
	samples []rateSample
	quit    chan struct{}
	once    sync.Once
}

type reqKey struct {
	path string
	code int
}

type rateSample struct {
	at     time.Time
	tokens int64
}

const rateWindow = 10

func newMetrics(s *Server) *metrics {
	m := &metrics{s: s, requests: map[reqKey]int64{}, prompt: map[string]int64{}, gen: map[string]int64{}, quit: make(chan struct{})}
	go m.sampleLoop()
	return m
}

func (m *metrics) stop() { m.once.Do(func() { close(m.quit) }) }

func (m *metrics) sampleLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case now := <-t.C:
			total := m.totalGenerated()
			m.mu.Lock()
			m.samples = append(m.samples, rateSample{now, total})
			if len(m.samples) > rateWindow+1 {
				m.samples = m.samples[1:]
			}
			m.mu.Unlock()
		}
	}
}

func (m *metrics) totalGenerated() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, v := range m.gen {
		n += v
	}
	return n
}

func (m *metrics) request(path string, code int) {
	switch path {
	case "/v1/models", "/v1/completions", "/v1/chat/completions", "/metrics":
	default:
		path = "other" // unbounded paths must not make unbounded series
	}
	m.mu.Lock()
	m.requests[reqKey{path, code}]++
	m.mu.Unlock()
}

func (m *metrics) tokens(model string, prompt, gen int) {
	m.mu.Lock()
	m.prompt[model] += int64(prompt)
	m.gen[model] += int64(gen)
	m.mu.Unlock()
}

func (m *metrics) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.writeTo(w)
	m.request("/metrics", http.StatusOK)
}

func (m *metrics) writeTo(w io.Writer) {
	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].path != keys[j].path {
			return keys[i].path < keys[j].path
		}
		return keys[i].code < keys[j].code
	})
	fmt.Fprintln(w, "# HELP moco_requests_total HTTP requests answered, by endpoint and status code (499: the client left).")
	fmt.Fprintln(w, "# TYPE moco_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "moco_requests_total{endpoint=%q,code=\"%d\"} %d\n", k.path, k.code, m.requests[k])
	}
	rate := 0.0
	if n := len(m.samples); n >= 2 {
		a, b := m.samples[0], m.samples[n-1]
		rate = float64(b.tokens-a.tokens) / b.at.Sub(a.at).Seconds()
	}
	prompt, gen := copyMap(m.prompt), copyMap(m.gen)
	m.mu.Unlock()

	fmt.Fprintln(w, "# HELP moco_tokens_per_second Tokens generated per second over all models, averaged over the last 10 seconds.")
	fmt.Fprintln(w, "# TYPE moco_tokens_per_second gauge")
	fmt.Fprintf(w, "moco_tokens_per_second %s\n", strconv.FormatFloat(rate, 'g', 6, 64))
	ids := m.s.IDs()
	series := func(name, typ, help string, value func(id string, e *entry) (float64, bool)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, id := range ids {
			e := m.s.lookup(id)
			if v, ok := value(id, e); ok {
				fmt.Fprintf(w, "%s{model=%q} %s\n", name, id, strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
	}
	series("moco_prompt_tokens_total", "counter", "Prompt tokens of answered requests.", func(id string, _ *entry) (float64, bool) {
		return float64(prompt[id]), true
	})
	series("moco_generated_tokens_total", "counter", "Tokens generated for answered requests.", func(id string, _ *entry) (float64, bool) {
		return float64(gen[id]), true
	})
	series("moco_queue_depth", "gauge", "Requests waiting for room in the batch (recipes: waiting or running).", func(_ string, e *entry) (float64, bool) {
		if e.batcher != nil {
			return float64(e.batcher.Stats().Queued), true
		}
		return float64(len(e.slots)), true
	})
	series("moco_batch_size", "gauge", "Sequences in the batch now (recipes: requests running).", func(_ string, e *entry) (float64, bool) {
		if e.batcher != nil {
			return float64(e.batcher.Stats().Active), true
		}
		return float64(len(e.running)), true
	})
	series("moco_kv_cache_bytes", "gauge", "KV cache bytes reserved by the batch's sequences.", func(_ string, e *entry) (float64, bool) {
		if e.batcher == nil {
			return 0, false
		}
		return float64(e.batcher.Stats().KVUsed), true
	})
	series("moco_kv_cache_budget_bytes", "gauge", "The batch's KV cache budget.", func(_ string, e *entry) (float64, bool) {
		if e.batcher == nil {
			return 0, false
		}
		return float64(e.batcher.Stats().KVBudget), true
	})
	series("moco_batch_steps_total", "counter", "Forward passes of the batch.", func(_ string, e *entry) (float64, bool) {
		if e.batcher == nil {
			return 0, false
		}
		return float64(e.batcher.Stats().Steps), true
	})
	series("moco_batch_rows_total", "counter", "Sequences stepped, summed over steps (divided by the steps: the mean batch size).", func(_ string, e *entry) (float64, bool) {
		if e.batcher == nil {
			return 0, false
		}
		return float64(e.batcher.Stats().StepRows), true
	})
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
