package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// TestServeCommand starts moco serve on a free port with the embedded
// model, answers a completion, and shuts down gracefully on the stop
// signal while a stream is running: the command returns 0.
func TestServeCommand(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	old := serveStop
	serveStop = func() (context.Context, context.CancelFunc) { return ctx, stop }
	defer func() { serveStop = old }()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- runMain([]string{"serve", "--addr", "127.0.0.1:0", "--shutdown-timeout", "200ms", "--threads", "1"}, nil, io.Discard, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("no listening line; exit %d", <-code)
	}
	resp, err := http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Choices []struct{ Text string }
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(out.Choices) != 1 || out.Choices[0].Text == "" {
		t.Fatalf("completion: %d %+v", resp.StatusCode, out)
	}
	// A long stream is running when the stop signal comes.
	resp, err = http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"model": "stories260K", "prompt": "x", "max_tokens": 480, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if first, _ := br.ReadString('\n'); resp.StatusCode != 200 || !strings.HasPrefix(first, "data: ") {
		t.Fatalf("stream: %d %q", resp.StatusCode, first)
	}
	stop()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after the stop signal", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("moco serve did not stop within the grace period")
	}
	// The stream ended: finished, or cut with an error event.
	if rest, _ := io.ReadAll(br); !strings.Contains(string(rest), "[DONE]") && !strings.Contains(string(rest), "shutting_down") {
		t.Fatalf("the stream ended with %q", rest)
	}
}

// TestBenchServe runs the load generator against a loopback server and
// in-process: every request answered with its max_tokens.
func TestBenchServe(t *testing.T) {
	for _, extra := range [][]string{nil, {"--in-process"}, {"--stream=false"}} {
		args := append([]string{"bench", "serve", "--requests", "8", "--clients", "3", "--max-tokens", "5", "--json", "--prompt", "Tom and"}, extra...)
		out, errs, code := moco(t, args...)
		var rep struct {
			Requests, Errors int
			Tokens           int                        `json:"completion_tokens"`
			TPS              float64                    `json:"tokens_per_second"`
			Latency          struct{ P50, Max float64 } `json:"latency_seconds"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
			t.Fatalf("%v: exit %d, %v\n%s\n%s", extra, code, err, out, errs)
		}
		if rep.Requests != 8 || rep.Errors != 0 || rep.Tokens != 40 || rep.TPS <= 0 || rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P50 {
			t.Fatalf("%v: %+v", extra, rep)
		}
	}
	if _, errs, code := moco(t, "bench", "serve", "--url", "http://127.0.0.1:1", "--in-process"); code != 2 {
		t.Fatalf("--url with --in-process: exit %d %s", code, errs)
	}
}

// TestServeConfigLoRA: a config whose second model is MODEL+LORA is
// refused before the first model loads, naming the entry.
func TestServeConfigLoRA(t *testing.T) {
	models := testutil.Shared(t, "models")
	cfg := filepath.Join(t.TempDir(), "serve.yaml")
	y := fmt.Sprintf("models:\n  - {id: a, path: %s}\n  - {id: b, path: %s+%s}\n",
		filepath.Join(models, "skills-base"), filepath.Join(models, "skills-base"), filepath.Join(models, "skills-lora-add"))
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI("serve", "--config", cfg, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, cfg+": config: models[1] (b)") || !strings.Contains(stderr, "MODEL+LORA") || strings.Contains(stderr, "loaded a") {
		t.Errorf("exit %d, stderr %q; want the entry refused before any model loads", code, stderr)
	}
}
