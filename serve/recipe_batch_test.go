package serve

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestFusionRecipeBatched: concurrent requests to the fusion recipe share
// its lockstep batch; each answer (greedy or seeded, streamed or not) must
// be the text decode's sequential fusion loop (NewMethod: Lockstep over
// sessions, one prompt alone) gives with the same settings, logprobs come
// back, and the recipe's batch shows in /metrics.
func TestFusionRecipeBatched(t *testing.T) {
	s, ts := newTestServer(t, BuildOptions{})
	var models []*engine.Model
	var toks []*tokenizer.Tokenizer
	for _, name := range []string{"stories260K", "llama2xs"} {
		m, tok := testmodel.Load(t, testutil.Shared(t, "models/"+name))
		models, toks = append(models, m), append(toks, tok)
	}
	alone := func(prompt string, maxTokens int, temp float64, seed uint64) (string, []float64) {
		c, err := decode.NewMethod(models, toks, decode.MethodConfig{Method: "fusion", MaxTokens: maxTokens,
			Sampler: decode.SamplerConfig{Temperature: temp, TopP: 1, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		var lps []float64
		var ids []int
		if _, err := c.GenerateContext(t.Context(), prompt, nil, func(tk decode.Token) bool {
			lps = append(lps, tk.LogProb())
			ids = append(ids, tk.ID)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return continuation(t, toks[0], prompt, ids), lps
	}
	prompts := []string{"Once upon a time", "Lily", "The big red ball rolled down the hill and", "Tom saw"}
	type request struct {
		body string
		want string
		lps  []float64
	}
	// The references first, so that the requests below start together:
	// computed inside each request's goroutine, as before, they could
	// finish one after another on a busy machine and never share a step.
	reqs := make([]request, 8)
	for i := range reqs {
		p, n, temp, seed := prompts[i%4], 8+3*i, 0.0, uint64(40+i)
		if i%2 == 1 {
			temp = 0.9
		}
		reqs[i].want, reqs[i].lps = alone(p, n, temp, seed)
		reqs[i].body = fmt.Sprintf(`{"model": "fusion-ab", "prompt": %q, "max_tokens": %d, "temperature": %v, "seed": %d, "logprobs": 1}`, p, n, temp, seed)
		if i == 3 {
			reqs[i].body = fmt.Sprintf(`{"model": "fusion-ab", "prompt": %q, "max_tokens": %d, "temperature": %v, "seed": %d, "stream": true}`, p, n, temp, seed)
		}
	}
	check := func(i int, r request) {
		if i == 3 {
			resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(r.body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var got strings.Builder
			for _, ev := range readSSE(t, resp.Body) {
				got.WriteString(ev["choices"].([]any)[0].(map[string]any)["text"].(string))
			}
			if got.String() != r.want {
				t.Errorf("request %d streamed %q, alone %q", i, got.String(), r.want)
			}
			return
		}
		code, out := post(t, ts.URL+"/v1/completions", r.body)
		if code != 200 {
			t.Errorf("request %d: %d %v", i, code, out)
			return
		}
		if got := choiceText(t, out, false); got != r.want {
			t.Errorf("request %d: %q, alone %q", i, got, r.want)
		}
		lp := out["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any)["token_logprobs"].([]any)
		if len(lp) != len(r.lps) {
			t.Errorf("request %d: %d logprobs for %d tokens", i, len(lp), len(r.lps))
			return
		}
		for k := range lp {
			if math.Abs(lp[k].(float64)-r.lps[k]) > 1e-4 {
				t.Errorf("request %d token %d: logprob %v, alone %v", i, k, lp[k], r.lps[k])
			}
		}
	}
	// Requests sent together still need not overlap on a loaded machine
	// (each lasts a few milliseconds), so a round that never batched is
	// sent again; every round's answers are checked.
	batcher := s.lookup("fusion-ab").batcher
	for round := 1; ; round++ {
		before := batcher.Stats()
		startGate := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range reqs {
			wg.Go(func() {
				<-startGate
				check(i, r)
			})
		}
		close(startGate)
		wg.Wait()
		st := batcher.Stats()
		if st.Completed != before.Completed+8 || st.Active != 0 {
			t.Fatalf("fusion-ab batch after round %d: %+v (before %+v)", round, st, before)
		}
		if st.StepRows-before.StepRows > st.Steps-before.Steps {
			if round > 1 {
				t.Logf("the requests shared a step in round %d", round)
			}
			break
		}
		if t.Failed() {
			return // the answers were wrong: said above
		}
		if round == 5 {
			t.Fatalf("fusion-ab batch: no step held two requests in %d rounds: %+v", round, st)
		}
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `moco_batch_steps_total{model="fusion-ab"}`) {
		t.Errorf("no batch steps for fusion-ab in /metrics:\n%s", b)
	}
}
