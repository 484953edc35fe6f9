package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/serve"
)

// runBenchServe is 'moco bench serve': N concurrent clients send a fixed
// number of completions to a server (--url), to a server it starts on
// loopback over --model, or (--in-process) straight to the batcher the
// server would use, the baseline of the server's overhead.
func runBenchServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench serve", stderr)
	url := fs.String("url", "", "base URL of a running server (e.g. http://127.0.0.1:8080); empty: start one on loopback over --model")
	apiKey := fs.String("api-key", "", "API key of the server at --url")
	modelID := fs.String("model-id", "", "model id to request (default: the server's first)")
	model := fs.StringP("model", "m", "", "model folder when no --url is given (default: the embedded stories260K)")
	inProcess := fs.Bool("in-process", false, "send the requests to the batcher directly, without HTTP (the baseline of the server's overhead)")
	clients := fs.Int("clients", 8, "concurrent clients")
	requests := fs.Int("requests", 32, "requests in all")
	prompt := fs.String("prompt", "Once upon a time", "prompt of every request")
	maxTokens := fs.Int("max-tokens", 64, "max_tokens of every request")
	stream := fs.Bool("stream", true, "stream the answers (server-sent events); TTFT is the first text")
	var threads int
	addThreadsFlag(fs, &threads)
	quant := fs.String("quant", "", `quantize the weights at load without --url: "" (as stored), q8_0 or q4_0`)
	maxSeqs := fs.Int("max-seqs", 64, "most sequences per batch without --url")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load (client, server and batcher in this process without --url) to this file (go tool pprof)")
	setRange(fs, "clients", between(1, 4096))
	setRange(fs, "requests", atLeast(1))
	setRange(fs, "max-tokens", atLeast(1))
	setRange(fs, "max-seqs", between(1, 4096))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco bench serve [--url URL | -m DIR [--in-process]] [--clients 8] [--requests 32] [--max-tokens 64] [--json]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *url != "" && (*model != "" || *inProcess) {
		return usagef("--url measures a running server: drop -m and --in-process")
	}
	ctx, stop := signalContext()
	defer stop()
	var do bench.LoadFunc
	where := *url
	if *url != "" {
		id := *modelID
		if id == "" {
			var err error
			if id, err = firstModel(ctx, *url, *apiKey); err != nil {
				return err
			}
		}
		h := &bench.HTTPLoad{BaseURL: *url, APIKey: *apiKey, Model: id, Prompt: *prompt, MaxTokens: *maxTokens, Stream: *stream}
		do = h.Do
	} else {
		m, tok, err := openModel(*model, engine.Options{Threads: threads, Quant: *quant})
		if err != nil {
			return err
		}
		defer m.Close()
		cfg := decode.BatcherConfig{MaxQueue: *requests, Batch: engine.BatchOptions{MaxSeqs: *maxSeqs}}
		if *inProcess {
			b := decode.NewBatcher(m, tok, cfg)
			defer b.Close()
			ids, err := (&decode.Generator{Tok: tok, ModelConfig: m.Config}).Encode(*prompt)
			if err != nil {
				return err
			}
			where = "in-process batcher"
			do = func(ctx context.Context, _ int) (bench.LoadSample, error) {
				start := time.Now()
				var s bench.LoadSample
				req := decode.BatchRequest{Prompt: ids, MaxTokens: *maxTokens}
				if *stream {
					req.Stream = func(c decode.Chunk) {
						if s.TTFT == 0 && c.Text != "" {
							s.TTFT = time.Since(start)
						}
					}
				}
				res, err := b.Generate(ctx, req)
				s.Latency, s.Tokens = time.Since(start), len(res.Tokens)
				if s.TTFT == 0 {
					s.TTFT = s.Latency
				}
				return s, err
			}
		} else {
			s := serve.New(serve.Options{Limits: serve.Limits{MaxTokens: max(4096, *maxTokens)}})
			defer s.Close()
			if err := s.AddModel("bench", m, tok, cfg); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: s.Handler()}
			go hs.Serve(ln)
			defer hs.Close()
			where = "http://" + ln.Addr().String()
			h := &bench.HTTPLoad{BaseURL: where, Model: "bench", Prompt: *prompt, MaxTokens: *maxTokens, Stream: *stream,
				Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}}
			do = h.Do
		}
	}
	fmt.Fprintf(stderr, "moco bench serve: %d requests from %d clients against %s\n", *requests, *clients, where)
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	rep, err := bench.RunLoad(ctx, *clients, *requests, do)
	if err != nil {
		return interrupted(ctx, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "clients %d, requests %d (%d failed), %d completion tokens in %.2f s\n", rep.Clients, rep.Requests, rep.Errors, rep.Tokens, rep.Seconds)
		fmt.Fprintf(stdout, "throughput   %10.2f tokens/s  %8.2f requests/s\n", rep.TokensPerSec, rep.RequestsPerS)
		fmt.Fprintf(stdout, "TTFT (s)     p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", rep.TTFT.P50, rep.TTFT.P90, rep.TTFT.P99, rep.TTFT.Max)
		fmt.Fprintf(stdout, "latency (s)  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", rep.Latency.P50, rep.Latency.P90, rep.Latency.P99, rep.Latency.Max)
		if rep.CPUSeconds > 0 && *url == "" {
			fmt.Fprintf(stdout, "cpu          %.2f s in this process, %.2f tokens per cpu-second\n", rep.CPUSeconds, float64(rep.Tokens)/rep.CPUSeconds)
		}
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed; the first: %s", rep.Errors, rep.Requests, rep.FirstError)
	}
	return nil
}

// firstModel asks the server at url for its first model id.
func firstModel(ctx context.Context, url, key string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/models", nil)
	if err != nil {
		return "", err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var list struct{ Data []struct{ ID string } }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || len(list.Data) == 0 {
		return "", fmt.Errorf("GET %s/v1/models: status %d, no model listed (%v); give --model-id", url, resp.StatusCode, err)
	}
	return list.Data[0].ID, nil
}
