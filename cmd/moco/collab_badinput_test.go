package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
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
		{[]string{"collab", "debate", "-m", a, "-m", b, "--prompt", "q", "--summarizer", "z"}, 2, `no model "z" in the pool`},
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
