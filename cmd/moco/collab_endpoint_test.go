package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
)

// startServe runs `moco serve` as a child process (this test binary with
// MOCO_TEST_MAIN=1, see TestMain) on a free loopback port and returns its
// base URL; the process is stopped when the test ends.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"serve", "--addr", "127.0.0.1:0", "--threads", "1", "--shutdown-timeout", "1s"}, args...)...)
	cmd.Env = append(os.Environ(), "MOCO_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		re := regexp.MustCompile(`listening on (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case base, ok := <-found:
		if !ok {
			t.Fatal("moco serve exited without listening")
		}
		return base
	case <-time.After(30 * time.Second):
		t.Fatal("moco serve did not start listening within 30 s")
	}
	return ""
}

// TestCollabOverServedEndpoint is issue 13's end-to-end check of the HTTP
// backend: a second moco process serves skills-add, and a majority vote
// over a pool of the same model loaded here and that endpoint gets, from
// the endpoint, exactly the greedy answer the local model gives (the two
// decoders are independent: the server's continuous batcher and the
// in-process session). Both appear in the trace, and the vote is 2 of 2.
func TestCollabOverServedEndpoint(t *testing.T) {
	dir := testutil.Shared(t, "models/skills-add")
	base := startServe(t, "-m", dir)
	pool, closeAll, err := collab.OpenPool([]string{dir, base + "/v1#skills-add"},
		collab.PoolOptions{Engine: engine.Options{Threads: 1}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if pool[1].Name != "skills-add#2" {
		t.Fatalf("endpoint member named %q", pool[1].Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := collab.New(ctx, "majority-vote", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts := []string{"Q: 289+623=\nA:", "Q: 17+45=\nA:", "Q: reverse abc\nA:"}
	var first string
	for i, p := range prompts {
		req := collab.Request{Prompt: p, MaxTokens: 12, Temperature: 0, Stop: []string{"\n"}}
		local, err := pool[0].Gen.Generate(ctx, []collab.Request{req})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(ctx, []collab.Request{req})
		if err != nil {
			t.Fatal(err)
		}
		r := res[0]
		var answers = map[string]string{}
		for _, e := range r.Trace {
			if e.Step == "answer" {
				answers[e.From] = e.Text
			}
		}
		if len(answers) != 2 {
			t.Fatalf("%q: trace %+v", p, r.Trace)
		}
		t.Logf("%q -> %q", p, local[0].Text)
		if i == 0 {
			first = local[0].Text
		}
		if strings.TrimSpace(local[0].Text) == "" {
			t.Fatalf("%q: the local model answered nothing", p)
		}
		if answers["skills-add#2"] != local[0].Text || answers["skills-add"] != local[0].Text {
			t.Errorf("%q: endpoint answered %q, in-process %q, the local greedy answer is %q", p, answers["skills-add#2"], answers["skills-add"], local[0].Text)
		}
		if r.Text != local[0].Text || !strings.Contains(r.Trace[len(r.Trace)-1].Note, "with 2 of 2 votes") {
			t.Errorf("%q: vote %q (%s)", p, r.Text, r.Trace[len(r.Trace)-1].Note)
		}
	}
	// The same pool through the CLI, the endpoint given on the command line.
	var out, errb strings.Builder
	if code := runMain([]string{"collab", "majority-vote", "-m", dir, "-m", base + "#skills-add", "--threads", "1",
		"--prompt", `Q: 289+623=\nA:`, "--temperature", "0", "-n", "12", "--stop", `\n`}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := strings.TrimSuffix(out.String(), "\n"); got != first {
		t.Fatalf("CLI answered %q, the local greedy answer is %q", got, first)
	}
}
