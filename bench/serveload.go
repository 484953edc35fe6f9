package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is the load generator of 'moco bench serve': N concurrent
// clients send a fixed number of requests and the report gives the
// aggregate generation throughput, time to first token and latency
// percentiles.

// LoadSample is what one request produced.
type LoadSample struct {
	Tokens  int           // completion tokens
	TTFT    time.Duration // to the first generated text (streaming), else the whole latency
	Latency time.Duration
}

// LoadFunc sends request number i and reports it.
type LoadFunc func(ctx context.Context, i int) (LoadSample, error)

// Percentiles summarize durations, in seconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// LoadReport is the outcome of a load run.
type LoadReport struct {
	Clients      int         `json:"clients"`
	Requests     int         `json:"requests"`
	Errors       int         `json:"errors"`
	FirstError   string      `json:"first_error,omitempty"`
	Seconds      float64     `json:"seconds"`
	Tokens       int         `json:"completion_tokens"`
	TokensPerSec float64     `json:"tokens_per_second"`
	RequestsPerS float64     `json:"requests_per_second"`
	TTFT         Percentiles `json:"ttft_seconds"`
	Latency      Percentiles `json:"latency_seconds"`
	// CPUSeconds is this process's CPU time during the run (Linux; 0
	// elsewhere): with the server in this process, tokens per CPU second
	// compare loads on a machine shared with other work, where the wall
	// clock measures the scheduler.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// RunLoad sends requests requests from clients concurrent clients, each
// client sending its next request when the last one is answered.
func RunLoad(ctx context.Context, clients, requests int, do LoadFunc) (LoadReport, error) {
	if clients < 1 || requests < 1 {
		return LoadReport{}, errors.New("bench: the load needs at least one client and one request")
	}
	rep := LoadReport{Clients: clients, Requests: requests}
	next := make(chan int)
	var mu sync.Mutex
	var ttft, lat []float64
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), ProcessCPUSeconds()
	for range clients {
		wg.Go(func() {
			for i := range next {
				s, err := do(ctx, i)
				mu.Lock()
				if err != nil {
					if rep.Errors++; rep.FirstError == "" {
						rep.FirstError = err.Error()
					}
				} else {
					rep.Tokens += s.Tokens
					ttft = append(ttft, s.TTFT.Seconds())
					lat = append(lat, s.Latency.Seconds())
				}
				mu.Unlock()
			}
		})
	}
	for i := range requests {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	if cpu0 > 0 {
		rep.CPUSeconds = ProcessCPUSeconds() - cpu0
	}
	rep.TokensPerSec = float64(rep.Tokens) / rep.Seconds
	rep.RequestsPerS = float64(len(lat)) / rep.Seconds
	rep.TTFT, rep.Latency = percentiles(ttft), percentiles(lat)
	return rep, ctx.Err()
}

// ProcessCPUSeconds is the process's user and system CPU time from
// /proc/self/stat (Linux), 0 where that is unavailable.
func ProcessCPUSeconds() float64 {
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
	return (u + st) / 100 // clock ticks of USER_HZ, 100 on Linux
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	at := func(q float64) float64 { return v[min(len(v)-1, int(q*float64(len(v))))] }
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: v[len(v)-1]}
}

// HTTPLoad is a LoadFunc that posts a completion to an OpenAI-compatible
// server: prompt, max_tokens, temperature 0, streamed when stream is set
// (then TTFT is the first text event).
type HTTPLoad struct {
	Client    *http.Client
	BaseURL   string // e.g. http://127.0.0.1:8080
	APIKey    string
	Model     string
	Prompt    string
	MaxTokens int
	Stream    bool
}

// Do sends one request.
func (h *HTTPLoad) Do(ctx context.Context, _ int) (LoadSample, error) {
	body, _ := json.Marshal(map[string]any{"model": h.Model, "prompt": h.Prompt, "max_tokens": h.MaxTokens,
		"temperature": 0, "stream": h.Stream, "stream_options": streamOpts(h.Stream)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.BaseURL, "/")+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return LoadSample{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+h.APIKey)
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return LoadSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return LoadSample{}, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	var s LoadSample
	type usage struct {
		CompletionTokens int `json:"completion_tokens"`
	}
	if !h.Stream {
		var out struct{ Usage usage }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return s, err
		}
		s.Latency = time.Since(start)
		s.TTFT, s.Tokens = s.Latency, out.Usage.CompletionTokens
		return s, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var ev struct {
			Choices []struct{ Text string }
			Usage   *usage
			Error   *struct{ Message string }
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return s, fmt.Errorf("bad event %q: %w", data, err)
		}
		if ev.Error != nil {
			return s, errors.New(ev.Error.Message)
		}
		if s.TTFT == 0 && len(ev.Choices) > 0 && ev.Choices[0].Text != "" {
			s.TTFT = time.Since(start)
		}
		if ev.Usage != nil {
			s.Tokens = ev.Usage.CompletionTokens
		}
	}
	s.Latency = time.Since(start)
	if s.TTFT == 0 {
		s.TTFT = s.Latency
	}
	return s, sc.Err()
}

func streamOpts(stream bool) any {
	if !stream {
		return nil
	}
	return map[string]bool{"include_usage": true}
}
