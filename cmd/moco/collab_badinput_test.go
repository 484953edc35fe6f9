package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCollabBadInput is issue 13's bad-input list through the CLI: each
// case is refused with one line naming the problem, usage errors (unknown
// method, empty or too small a pool, bad parameters, a cycle in the
// swarms graph) exit 2, an endpoint answering malformed JSON exits 1, and
// nothing hangs. Endpoints stand in for models, so no model files are
// needed: the constructors refuse before any request is sent.
func TestCollabBadInput(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"choices": [{"text": "12"`))
	}))
	defer srv.Close()
	a, b := srv.URL+"#a", srv.URL+"#b"
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"collab", "nope", "-m", a, "--prompt", "q"}, 2, `unknown method "nope"`},
		{[]string{"collab", "majority-vote", "--prompt", "q"}, 2, "give the pool with -m"},
		{[]string{"collab", "debate", "-m", a, "--prompt", "q"}, 2, "debate needs at least 2 models, the pool has 1"},
		{[]string{"collab", "majority-vote", "-m", a, "-m", b, "--prompt", "q", "--tie", "random"}, 2, "tie must be first or dev"},
		{[]string{"collab", "debate", "-m", a, "-m", b, "--prompt", "q", "--param", "rouds=2"}, 2, `unknown field "rouds"`},
		{[]string{"collab", "slm-mux", "-m", a, "--prompt", "q", "--tie", "first"}, 2, "tie must be dev-based, model-order or random"},
		{[]string{"collab", "slm-mux", "-m", a, "-m", b, "--prompt", "q", "--dev-scores", "0.5"}, 2, "1 dev scores for 2 models"},
		{[]string{"collab", "slm-mux", "-m", a, "--prompt", "q", "--param", "samples_per_model=0"}, 2, "samples_per_model must be at least 1"},
		{[]string{"collab", "debate", "-m", a, "-m", b, "--prompt", "q", "--summarizer", "z"}, 2, `no model "z" in the pool`},
		{[]string{"collab", "debate", "-m", a, "-m", b, "--prompt", "q", "--task-type", "exact_match"}, 2, "--task-type does not apply to debate (it has no task_type parameter)"},
		{[]string{"collab", "majority-vote", "-m", a, "-m", b, "--prompt", "q", "--rounds", "2"}, 2, "--rounds does not apply to majority-vote"},
		{[]string{"collab", "heterogeneous-swarms", "-m", a, "-m", b, "--prompt", "q", "--param", "graph=[[0,1],[1,0]]"}, 2, "the graph has a cycle"},
		{[]string{"collab", "structure", "-m", a, "-m", b, "--prompt", "q", "--structure", "mesh"}, 2, "unknown structure_type"},
		{[]string{"collab", "majority-vote", "-m", a, "-m", b, "--prompt", "q", "--timeout", "5s"}, 1, "malformed JSON in the answer"},
	} {
		var out, errb strings.Builder
		done := make(chan int, 1)
		go func() { done <- runMain(c.args, nil, &out, &errb) }()
		var code int
		select {
		case code = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%v hangs", c.args)
		}
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if code != c.code || !strings.Contains(lines[len(lines)-1], c.msg) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args[:2], code, errb.String(), c.code, c.msg)
		}
	}
	if hits.Load() == 0 {
		t.Error("the malformed-JSON case never reached the server")
	}
}

// TestCollabTextTrace: a text-level method's --trace file holds one JSON
// line per event (here majority vote's two answers, endpoints standing
// in for the models, and its vote), readable by the rest of a team (0644), and
// nothing else is left in its folder.
func TestCollabTextTrace(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"choices":[{"index":0,"text":"12"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.jsonl")
	_, errs, code := moco(t, "collab", "majority-vote", "-m", srv.URL+"#a", "-m", srv.URL+"#b", "--prompt", "6+6?", "--trace", trace)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Round            int
			Step, From, Text string
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", e.Round, e.Step, e.From, e.Text))
	}
	if want := "1 answer a 12,1 answer b 12,1 vote majority-vote 12"; strings.Join(got, ",") != want {
		t.Errorf("events %q, want %q", got, want)
	}
	// The summary counts the two answers as calls, not the vote.
	if !strings.Contains(errs, "majority-vote: 2 model calls, 6 prompt + 2 generated tokens") {
		t.Errorf("summary line %q, want 2 model calls and the endpoints' usage", errs)
	}
	if st, err := os.Stat(trace); err == nil && runtime.GOOS != "windows" && st.Mode().Perm() != 0o644 {
		t.Errorf("trace mode %v, want 0644", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("folder holds %v, want the trace alone", ents)
	}
}

// TestCollabTextSeed: a text-level method sampling without -s draws a
// seed, as generate does, and reports it; -s and greedy calls keep theirs.
// The endpoints record the seed each request carries.
func TestCollabTextSeed(t *testing.T) {
	var mu sync.Mutex
	var seeds []float64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		s, _ := req["seed"].(float64)
		seeds = append(seeds, s)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"choices": [{"text": "12", "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}`))
	}))
	defer srv.Close()
	run := func(extra ...string) (reported float64, sent []float64) {
		t.Helper()
		mu.Lock()
		seeds = nil
		mu.Unlock()
		args := append([]string{"collab", "majority-vote", "-m", srv.URL + "#a", "-m", srv.URL + "#b", "--prompt", "6+6?", "--json"}, extra...)
		out, errs, code := moco(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, errs)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return res["seed"].(float64), append([]float64(nil), seeds...)
	}
	r1, s1 := run()
	r2, _ := run()
	if r1 == r2 || len(s1) != 2 || s1[0] != r1 || s1[1] != r1 {
		t.Errorf("without -s: reported seeds %v and %v, sent %v: want a fresh seed each run, sent with every call", r1, r2, s1)
	}
	if r, s := run("-s", "7"); r != 7 || s[0] != 7 {
		t.Errorf("-s 7: reported %v, sent %v", r, s)
	}
	// Greedy requests draw one too: a method may sample anyway (slm-mux).
	if r, s := run("--temperature", "0"); s[0] != r {
		t.Errorf("greedy: reported %v, sent %v", r, s)
	}
	if r, s := run("--temperature", "0", "-s", "0"); r != 0 || s[0] != 0 {
		t.Errorf("greedy with -s 0: reported %v, sent %v", r, s)
	}
}
