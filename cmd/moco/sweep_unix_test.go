//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// sweepFixture writes a small sweep config over two skills models (both
// alone, and their fusion) on 40 items of skills_mix, without wall times
// so that result files are reproducible byte for byte.
func sweepFixture(t *testing.T) (dir, cfg string) {
	t.Helper()
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	dir = t.TempDir()
	cfg = filepath.Join(dir, "sweep.yaml")
	y := fmt.Sprintf(`models: [%s, %s]
methods: [single, {name: fusion, params: {mode: prob-mean}}]
datasets: [{path: %s, prompt: raw, limit: 40}]
generation: {max_tokens: 12}
seed: 7
workers: 2
timing: false
`, filepath.Join(models, "skills-add"), filepath.Join(models, "skills-rev"), filepath.Join(data, "skills_mix.json"))
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

func runChild(t *testing.T, args ...string) {
	t.Helper()
	cmd := child("0s", args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("moco %v: %v\n%s", args, err, errb.String())
	}
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// TestSweepKillResume: a sweep killed with SIGKILL midway and run again
// ends with the same results file as a run never interrupted.
func TestSweepKillResume(t *testing.T) {
	dir, cfg := sweepFixture(t)
	want := filepath.Join(dir, "whole.jsonl")
	runChild(t, "sweep", cfg, "-q", "--out", want)
	if n := countLines(want); n != 120 {
		t.Fatalf("uninterrupted run: %d lines, want 3 x 40", n)
	}

	got := filepath.Join(dir, "killed.jsonl")
	cmd := child("0s", "sweep", cfg, "-q", "--out", got, "--workers", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countLines(got) < 15 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	n := countLines(got)
	if n >= 120 {
		t.Skip("the sweep finished before it could be killed")
	}
	t.Logf("killed after %d lines", n)
	runChild(t, "sweep", cfg, "-q", "--out", got)
	a, _ := os.ReadFile(want)
	b, _ := os.ReadFile(got)
	if !bytes.Equal(a, b) {
		t.Errorf("resumed results differ from an uninterrupted run (%d vs %d bytes)", len(b), len(a))
	}
}

// TestSweepShards: four shards run as four processes and merged equal a
// one-process run byte for byte.
func TestSweepShards(t *testing.T) {
	dir, cfg := sweepFixture(t)
	whole := filepath.Join(dir, "whole.jsonl")
	runChild(t, "sweep", cfg, "-q", "--out", whole)
	var cmds []*bytes.Buffer
	errc := make(chan error, 4)
	var parts []string
	for i := 0; i < 4; i++ {
		out := filepath.Join(dir, fmt.Sprintf("shard%d.jsonl", i))
		parts = append(parts, out)
		cmd := child("0s", "sweep", cfg, "-q", "--shard", fmt.Sprintf("%d/4", i), "--out", out, "--workers", "1")
		var eb bytes.Buffer
		cmd.Stderr = &eb
		cmds = append(cmds, &eb)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { errc <- cmd.Wait() }()
	}
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			t.Fatalf("a shard failed: %v", err)
		}
	}
	total := 0
	for _, p := range parts {
		n := countLines(p)
		if n == 0 || n == 120 {
			t.Errorf("%s has %d lines: shards should split the items", p, n)
		}
		total += n
	}
	if total != 120 {
		t.Errorf("shards hold %d lines, want 120", total)
	}
	merged := filepath.Join(dir, "merged.jsonl")
	// Two of the four shards: refused, naming the others; --partial merges.
	some := filepath.Join(dir, "some.jsonl")
	if _, errs, code := runCLI("sweep", "merge", "--out", some, parts[0], parts[2]); code == 0 || !strings.Contains(errs, "not given: 1/4, 3/4") {
		t.Errorf("merge of 2 of 4 shards: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := runCLI("sweep", "merge", "--partial", "--out", some, parts[0], parts[2]); code != 0 || !strings.Contains(errs, "warning: incomplete") {
		t.Errorf("--partial merge: exit %d, stderr %q", code, errs)
	}
	runChild(t, append([]string{"sweep", "merge", "--out", merged}, parts...)...)
	a, _ := os.ReadFile(whole)
	b, _ := os.ReadFile(merged)
	if !bytes.Equal(a, b) {
		t.Errorf("merged shards differ from the one-process run (%d vs %d bytes)", len(b), len(a))
	}
}

// TestSweepMergeReadsOnce: sweep merge reads each results file once, so a
// pipe (a named pipe here; process substitution alike) with its meta file
// beside it merges; a second read would wait for a writer that is gone.
func TestSweepMergeReadsOnce(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "shard.jsonl")
	if err := syscall.Mkfifo(in, 0o600); err != nil {
		t.Skip("no named pipes here:", err)
	}
	lines := `{"method":"m","name":"single","level":"single","dataset":"d","split":"test","id":"1","index":0,"score":1}` + "\n" +
		`{"method":"m","name":"single","level":"single","dataset":"d","split":"test","id":"2","index":1,"score":0}` + "\n"
	if err := os.WriteFile(in+".meta.json", []byte(`{"config_hash": "h", "config": "c.yaml", "items": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(in, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.WriteString(lines)
		f.Close()
	}()
	out := filepath.Join(dir, "merged.jsonl")
	type result struct {
		errs string
		code int
	}
	done := make(chan result, 1)
	go func() {
		_, errs, code := runCLI("sweep", "merge", "--out", out, in)
		done <- result{errs, code}
	}()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.errs)
		}
	case <-time.After(10 * time.Second):
		// Let the waiting reader go (it reads nothing) before failing.
		if f, err := os.OpenFile(in, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("the merge opened the results file a second time")
	}
	if b, _ := os.ReadFile(out); countLines(out) != 2 {
		t.Errorf("merged file:\n%s", b)
	}
}

// TestSweepMergeLocked: sweep merge refuses an output file whose lock
// another process holds (a sweep still appending to it) with the message
// a second sweep gets, and leaves the file alone.
func TestSweepMergeLocked(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "shard.jsonl")
	if err := os.WriteFile(in, []byte(`{"method":"m","name":"single","level":"single","dataset":"d","split":"test","id":"1","score":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in+".meta.json", []byte(`{"config_hash": "h", "config": "c.yaml", "items": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "merged.jsonl")
	testutil.HoldLock(t, out+".lock")
	_, errs, code := runCLI("sweep", "merge", "--out", out, in)
	if want := "moco sweep: " + out + ": another sweep is writing it (" + out + ".lock is locked)\n"; code != 1 || errs != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errs, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused merge wrote its output")
	}
}
