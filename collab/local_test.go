package collab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// headerParams sums the element counts of every tensor in a safetensors
// file by reading its JSON header directly: an independent count.
func headerParams(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	var total int64
	for k, v := range h {
		if k == "__metadata__" {
			continue
		}
		var e struct{ Shape []int64 }
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		p := int64(1)
		for _, d := range e.Shape {
			p *= d
		}
		total += p
	}
	return total
}

func TestParamCount(t *testing.T) {
	for _, name := range []string{"stories260K", "llama2xs", "skills-base", "skills-small"} {
		dir := testutil.Shared(t, "models/"+name)
		cfg, err := engine.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ParamCount(cfg), headerParams(t, filepath.Join(dir, "model.safetensors")); got != want {
			t.Errorf("%s: ParamCount %d, the checkpoint holds %d", name, got, want)
		}
	}
}

// TestLocalGreedy checks greedy generation against the continuation an
// independent implementation computed (reference_greedy.json).
func TestLocalGreedy(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	var ref struct {
		Prompt   string `json:"prompt"`
		PromptID []int  `json:"prompt_ids_with_bos"`
		Greedy   []int  `json:"greedy_continuation_ids"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "reference_greedy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	l, err := LoadLocal(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := l.Tok.Decode(ref.Greedy, true)
	ctx := context.Background()
	n := len(ref.Greedy)
	// Two requests in one batch, the second cut by a stop string, and a
	// chat request: stories260K has no template, so one user message is
	// sent as it is.
	res, err := l.Generate(ctx, []Request{
		{Prompt: ref.Prompt, MaxTokens: n},
		{Prompt: ref.Prompt, MaxTokens: n, Stop: []string{"ball"}},
		{Messages: []Message{{Role: "user", Content: ref.Prompt}}, MaxTokens: n},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != want {
		t.Fatalf("greedy text\n got %q\nwant %q", res[0].Text, want)
	}
	if res[0].PromptTokens != len(ref.PromptID) || res[0].CompletionTokens != n {
		t.Errorf("tokens %d+%d, want %d+%d", res[0].PromptTokens, res[0].CompletionTokens, len(ref.PromptID), n)
	}
	wantFLOPs := 2 * float64(headerParams(t, filepath.Join(dir, "model.safetensors"))) * float64(len(ref.PromptID)+n)
	if res[0].FLOPs != wantFLOPs || res[0].ForwardTokens != int64(len(ref.PromptID)+n) {
		t.Errorf("FLOPs %g over %d tokens, want %g", res[0].FLOPs, res[0].ForwardTokens, wantFLOPs)
	}
	cut, _, _ := strings.Cut(want, "ball")
	if res[1].Text != cut {
		t.Errorf("with stop: got %q, want %q", res[1].Text, cut)
	}
	if res[2].Text != want {
		t.Errorf("chat without a template: got %q, want %q", res[2].Text, want)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Generate(cancelled, []Request{{Prompt: ref.Prompt}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	// Sampling: the same seed gives the same text, another seed another.
	s := func(seed uint64) string {
		r, err := l.Generate(ctx, []Request{{Prompt: "Once", MaxTokens: 30, Temperature: 1, TopP: 0.95, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		return r[0].Text
	}
	if a, b, c := s(1), s(1), s(2); a != b || a == c {
		t.Errorf("seeded sampling: %q %q %q", a, b, c)
	}
}

func TestFitPrompt(t *testing.T) {
	ids := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		limit, maxNew, wantNew int
		want                   []int
	}{
		{20, 5, 5, ids},
		{20, 0, 10, ids},
		{12, 4, 4, []int{1, 4, 5, 6, 7, 8, 9, 10}},
		{12, 0, 3, []int{1, 3, 4, 5, 6, 7, 8, 9, 10}},
		{12, 10, 6, []int{1, 6, 7, 8, 9, 10}},
	} {
		got, n := fitPrompt(ids, tc.limit, tc.maxNew, 1)
		if n != tc.wantNew || !equalInts(got, tc.want) {
			t.Errorf("fitPrompt(limit %d, maxNew %d) = %v, %d; want %v, %d", tc.limit, tc.maxNew, got, n, tc.want, tc.wantNew)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLogitMethods checks that the registry's logit-level methods run
// decode's loops with the given parameters: the same text as decode's
// NewMethod called directly, and clear errors for bad input.
func TestLogitMethods(t *testing.T) {
	pool, closeAll, err := LoadPool([]string{testutil.Shared(t, "models/stories260K"), testutil.Shared(t, "models/llama2xs")}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	ls, _ := Locals("test", pool)
	ctx := context.Background()
	prompt := "Once upon a time"
	direct := func(cfg decode.MethodConfig) string {
		cfg.MaxTokens = 24
		cfg.Sampler = decode.SamplerConfig{}
		c, err := decode.NewMethod([]*engine.Model{ls[0].Model, ls[1].Model}, []*tokenizer.Tokenizer{ls[0].Tok, ls[1].Tok}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Generate(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		method string
		params Params
		cfg    decode.MethodConfig
	}{
		{"fusion", Params{"mode": "prob-mean", "weights": []float64{0.7, 0.3}}, decode.MethodConfig{Method: "fusion", Mode: "prob-mean", Weights: []float64{0.7, 0.3}}},
		{"contrastive", Params{"alpha": 0.5}, decode.MethodConfig{Method: "contrastive", Alpha: 0.5}},
		{"nudging", nil, decode.MethodConfig{Method: "nudging", Gamma: new(decode.DefaultGamma)}},
		{"nudging", Params{"gamma": 0.0}, decode.MethodConfig{Method: "nudging", Gamma: new(0.0)}},
		{"speculative", Params{"draft_tokens": 3}, decode.MethodConfig{Method: "speculative", DraftTokens: 3}},
	} {
		m, err := New(ctx, tc.method, pool, tc.params)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if m.Level() != LevelLogit {
			t.Errorf("%s: level %s", tc.method, m.Level())
		}
		res, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxTokens: 24}})
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if want := direct(tc.cfg); res[0].Text != want {
			t.Errorf("%s: got %q, decode gives %q", tc.method, res[0].Text, want)
		}
		if res[0].FLOPs <= 0 || res[0].CompletionTokens == 0 {
			t.Errorf("%s: no cost counted: %+v", tc.method, res[0])
		}
	}
	eric, closeEric, err := LoadPool([]string{testutil.Shared(t, "models/eric260K")}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEric()
	remote := Member{Name: "remote", Gen: echo{"remote"}}
	for _, tc := range []struct {
		method string
		pool   []Member
		params Params
		err    string
	}{
		{"fusion", pool, Params{"gamma": 0.3}, `unknown field "gamma"`},
		{"fusion", []Member{pool[0], eric[0]}, nil, "do not share a vocabulary"},
		{"fusion", []Member{pool[0], remote}, nil, "remote is not a model loaded in this process"},
		{"nudging", append(pool, pool[0]), nil, "at most 2 models"},
		{"co-llm", pool, nil, "needs a deferral head"},
		{"single", pool, nil, "at most 1 models"},
		{"cascade", pool, nil, "thresholds or dev prompts"},
	} {
		_, err := New(ctx, tc.method, tc.pool, tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.method, err, tc.err)
		}
	}
	single, err := New(ctx, "single", pool[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := single.Generate(ctx, []Request{{Prompt: prompt, MaxTokens: 24}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pool[0].Gen.Generate(ctx, []Request{{Prompt: prompt, MaxTokens: 24}})
	if a[0].Text != b[0].Text || single.Name() != "stories260K" {
		t.Errorf("single %q (%s), the model alone %q", a[0].Text, single.Name(), b[0].Text)
	}
}

// TestLocalBatchedEqualsSessions: Local.Generate decodes its requests
// together in the batcher; each answer must equal the one a session of its
// own gives (runLocal with the single method, the engine's Session path):
// greedy and seeded sampling, prompts of different lengths, stop strings
// and token limits, with two calls in flight at once so that sequences
// join the batch at different steps.
func TestLocalBatchedEqualsSessions(t *testing.T) {
	for _, name := range []string{"stories260K", "skills-base"} {
		t.Run(name, func(t *testing.T) {
			dir := testutil.Shared(t, "models/"+name)
			l, err := LoadLocal(dir, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			prompts := []string{"Once upon a time", "Q: 12+30=?\nA:", "The", "Lily and Ben went to the park. They saw a big dog and", "Q: sort 3 1 2\nA:"}
			var reqs []Request
			for i, p := range prompts {
				reqs = append(reqs,
					Request{Prompt: p, MaxTokens: 8 + 5*i},
					Request{Prompt: p, MaxTokens: 24, Stop: []string{"\n", "."}},
					Request{Prompt: p, MaxTokens: 20, Temperature: 0.8, TopP: 0.9, Seed: uint64(7 + i)},
				)
			}
			ctx := context.Background()
			want := make([]Response, len(reqs))
			for i, r := range reqs {
				if want[i], err = runLocal(ctx, []*Local{l}, decode.MethodConfig{Method: "single"}, r); err != nil {
					t.Fatal(err)
				}
			}
			half := len(reqs) / 2
			var got1, got2 []Response
			var err1, err2 error
			done := make(chan struct{})
			go func() { got1, err1 = l.Generate(ctx, reqs[:half]); close(done) }()
			got2, err2 = l.Generate(ctx, reqs[half:])
			<-done
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			got := append(got1, got2...)
			sampled := 0
			for i := range reqs {
				g, w := got[i], want[i]
				if g.Text != w.Text || g.PromptTokens != w.PromptTokens || g.CompletionTokens != w.CompletionTokens || g.FLOPs != w.FLOPs {
					t.Errorf("request %d %+v:\nbatched %q (%d+%d tokens)\nsession %q (%d+%d tokens)", i, reqs[i], g.Text, g.PromptTokens, g.CompletionTokens, w.Text, w.PromptTokens, w.CompletionTokens)
				}
				if reqs[i].Temperature > 0 && w.CompletionTokens > 0 {
					sampled++
				}
			}
			if sampled == 0 {
				t.Error("no sampled request generated anything: the sampling comparison is empty")
			}
			// The batcher's loop updates its gauges after answering: wait
			// for it to free every sequence's cache.
			st := l.Batcher().Stats()
			for deadline := time.Now().Add(5 * time.Second); (st.KVUsed != 0 || st.Active != 0) && time.Now().Before(deadline); st = l.Batcher().Stats() {
				time.Sleep(time.Millisecond)
			}
			if st.Completed != int64(len(reqs)) || st.KVUsed != 0 || st.Active != 0 {
				t.Errorf("batcher stats after the run: %+v", st)
			}
		})
	}
}

// TestLocalOverBudget: a request longer than the whole KV budget of the
// batcher runs in a session of its own (the same answer) instead of
// failing.
func TestLocalOverBudget(t *testing.T) {
	dir := testutil.Shared(t, "models/stories260K")
	l, err := LoadLocal(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := decode.NewBatcher(l.Model, l.Tok, decode.BatcherConfig{Batch: engine.BatchOptions{KVBytes: 16 * l.Model.KVBytesPerPos()}})
	defer b.Close()
	l.UseBatcher(b)
	r := Request{Prompt: "Once upon a time", MaxTokens: 30}
	want, err := runLocal(context.Background(), []*Local{l}, decode.MethodConfig{Method: "single"}, r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Generate(context.Background(), []Request{r})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Text != want.Text || got[0].CompletionTokens != 30 {
		t.Errorf("over the budget: %q (%d tokens), want %q", got[0].Text, got[0].CompletionTokens, want.Text)
	}
	if n := b.Stats().Completed; n != 0 {
		t.Errorf("the batcher ran %d requests, want 0", n)
	}
}
