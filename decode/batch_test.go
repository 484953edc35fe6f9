package decode_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestBatcherGreedyReference decodes the reference prompt among others in
// one batch: its ids must be the independent implementation's.
func TestBatcherGreedyReference(t *testing.T) {
	var ref struct {
		Prompt []int `json:"prompt_ids_with_bos"`
		Greedy []int `json:"greedy_continuation_ids"`
	}
	b, err := os.ReadFile(testutil.Shared(t, "models/stories260K/reference_greedy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	m, tok := load(t, "stories260K")
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{EOS: []int{}})
	defer bt.Close()
	var wg sync.WaitGroup
	results := make([]decode.BatchResult, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() {
			p := ref.Prompt
			if i > 0 { // other prompts in the same batch
				p = append([]int{1}, ref.Prompt[1+i:]...)
			}
			results[i], errs[i] = bt.Generate(context.Background(), decode.BatchRequest{Prompt: p, MaxTokens: len(ref.Greedy)})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(results[0].Tokens, ref.Greedy) {
		t.Errorf("batched greedy ids\n got %v\nwant %v", results[0].Tokens, ref.Greedy)
	}
	if results[0].Finish != decode.FinishLength || results[0].PromptTokens != len(ref.Prompt) {
		t.Errorf("finish %q, prompt tokens %d", results[0].Finish, results[0].PromptTokens)
	}
}

// TestBatcherEqualsSingle runs prompts of different lengths with their own
// sampling settings and stop strings concurrently, joining at different
// times: each text must be what single-sequence generation (NewMethod
// "single", the Session and Lockstep path) gives for it.
func TestBatcherEqualsSingle(t *testing.T) {
	m, tok := load(t, "stories260K")
	type tc struct {
		prompt string
		smp    decode.SamplerConfig
		max    int
		stop   []string
	}
	var cases []tc
	words := strings.Fields("Once upon a time there was a little girl named Lily who loved to play in the park with her dog")
	for i := range 12 {
		c := tc{prompt: strings.Join(words[:1+i*len(words)/12], " "), max: 10 + 7*i}
		if i%3 == 1 {
			c.smp = decode.SamplerConfig{Temperature: 0.9, TopP: 0.9, Seed: uint64(i)}
		}
		if i%4 == 2 {
			c.stop = []string{"."}
		}
		cases = append(cases, c)
	}
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{Batch: engine.BatchOptions{MaxSeqs: 5, StepTokens: 8}})
	defer bt.Close()
	got := make([]decode.BatchResult, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			g := &decode.Generator{Tok: tok}
			ids, err := g.Encode(c.prompt)
			if err != nil {
				errs[i] = err
				return
			}
			var streamed strings.Builder
			got[i], errs[i] = bt.Generate(context.Background(), decode.BatchRequest{Prompt: ids, Sampler: c.smp, MaxTokens: c.max, Stop: c.stop,
				Stream: func(ch decode.Chunk) { streamed.WriteString(ch.Text) }})
			if errs[i] == nil && streamed.String() != got[i].Text {
				errs[i] = fmt.Errorf("streamed %q, result %q", streamed.String(), got[i].Text)
			}
		})
	}
	wg.Wait()
	for i, c := range cases {
		if errs[i] != nil {
			t.Fatalf("prompt %d: %v", i, errs[i])
		}
		one, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{Method: "single", Sampler: c.smp, MaxTokens: c.max, Stop: c.stop})
		if err != nil {
			t.Fatal(err)
		}
		want, err := one.Generate(c.prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Text != want {
			t.Errorf("prompt %d (%q): batched %q, alone %q", i, c.prompt, got[i].Text, want)
		}
	}
	st := bt.Stats()
	if st.Completed != int64(len(cases)) || st.KVUsed != 0 || st.Active != 0 || st.Queued != 0 {
		t.Errorf("stats after the run: %+v", st)
	}
	if st.StepRows <= st.Steps {
		t.Errorf("no step held more than one sequence: %d rows in %d steps", st.StepRows, st.Steps)
	}
}

// TestBatcherCancelFreesCache cancels a running request from its stream:
// it returns the context's error and its KV reservation is freed.
func TestBatcherCancelFreesCache(t *testing.T) {
	m, tok := load(t, "stories260K")
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{EOS: []int{}})
	defer bt.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chunks := 0
	_, err := bt.Generate(ctx, decode.BatchRequest{Prompt: []int{1, 403}, MaxTokens: 200, Stream: func(decode.Chunk) {
		if chunks++; chunks == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for bt.Stats().KVUsed != 0 || bt.Stats().Active != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled request still holds the cache: %+v", bt.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	// The batcher keeps serving.
	if res, err := bt.Generate(context.Background(), decode.BatchRequest{Prompt: []int{1, 403}, MaxTokens: 3}); err != nil || len(res.Tokens) != 3 {
		t.Fatalf("after a cancellation: %v, %d tokens", err, len(res.Tokens))
	}
}

// TestBatcherQueueAndErrors fills a one-sequence batch and a one-slot
// queue: the next request fails with ErrQueueFull; bad requests fail
// before queueing.
func TestBatcherQueueAndErrors(t *testing.T) {
	m, tok := load(t, "stories260K")
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{MaxQueue: 1, Batch: engine.BatchOptions{MaxSeqs: 1}, EOS: []int{}})
	defer bt.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		_, errs[0] = bt.Generate(ctx, decode.BatchRequest{Prompt: []int{1}, MaxTokens: 250, Stream: func(decode.Chunk) { once.Do(func() { close(started) }) }})
	})
	<-started
	wg.Go(func() { _, errs[1] = bt.Generate(ctx, decode.BatchRequest{Prompt: []int{1}, MaxTokens: 5}) })
	for bt.Stats().Queued != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := bt.Generate(ctx, decode.BatchRequest{Prompt: []int{1}, MaxTokens: 5}); !errors.Is(err, decode.ErrQueueFull) {
		t.Errorf("third request: %v, want ErrQueueFull", err)
	}
	cancel()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("request %d after cancel: %v", i, err)
		}
	}
	for _, bad := range []decode.BatchRequest{
		{},
		{Prompt: []int{1}, MaxTokens: -1},
		{Prompt: []int{1}, Sampler: decode.SamplerConfig{Temperature: -1}},
		{Prompt: []int{1, 100000}},
		{Prompt: make([]int, bt.Context())},
		{Prompt: []int{1}, TopLogprobs: -2},
	} {
		if _, err := bt.Generate(context.Background(), bad); err == nil {
			t.Errorf("request %+v was accepted", bad)
		}
	}
}

// TestBatcherLogprobs compares the reported log-probabilities with
// LogSoftmaxAt of a plain Session's logits, and the tokens' texts with
// the text.
func TestBatcherLogprobs(t *testing.T) {
	m, tok := load(t, "stories260K")
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{EOS: []int{}})
	defer bt.Close()
	prompt := []int{1, 403, 407}
	res, err := bt.Generate(context.Background(), decode.BatchRequest{Prompt: prompt, MaxTokens: 8, Logprobs: true, TopLogprobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, lp := range res.Logprobs {
		text.WriteString(lp.Text)
		if lp.Top[0].Text != lp.Text {
			t.Errorf("token %q: its top alternative is %q", lp.Text, lp.Top[0].Text)
		}
	}
	if text.String() != res.Text || !strings.Contains(res.Text, " ") {
		t.Errorf("the tokens' texts join up to %q, want %q", text.String(), res.Text)
	}
	s := m.NewSession(0)
	lg, _ := s.Forward(prompt)
	for i, lp := range res.Logprobs {
		want := decode.LogSoftmaxAt(lg, res.Tokens[i])
		if math.Abs(lp.Logprob-want) > 1e-9 || lp.Token != res.Tokens[i] {
			t.Fatalf("token %d: logprob %v of %d, want %v", i, lp.Logprob, lp.Token, want)
		}
		if len(lp.Top) != 3 || lp.Top[0].Token != res.Tokens[i] || lp.Top[1].Logprob > lp.Top[0].Logprob {
			t.Fatalf("token %d: top %+v", i, lp.Top)
		}
		lg, _ = s.Forward([]int{res.Tokens[i]})
	}
}

// TestBatcherContinue checks that a request that continues its prompt
// gets the text Decode gives the whole sequence after the prompt's text
// (stories260K's SentencePiece decoder drops the first word's space of a
// text alone), with logprob texts joining up to it, on both batchers;
// without Continue the text is Decode of the generated tokens alone.
func TestBatcherContinue(t *testing.T) {
	m, tok := load(t, "stories260K")
	bt := decode.NewBatcher(m, tok, decode.BatcherConfig{EOS: []int{}})
	defer bt.Close()
	lb, err := decode.NewLockstepBatcher([]*engine.Model{m}, tok, nil, decode.LockstepBatcherConfig{EOS: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	prompt, err := tok.Encode("Once", true)
	if err != nil {
		t.Fatal(err)
	}
	for name, gen := range map[string]func(context.Context, decode.BatchRequest) (decode.BatchResult, error){
		"batcher": bt.Generate, "lockstep": lb.Generate,
	} {
		for _, cont := range []bool{false, true} {
			var streamed strings.Builder
			res, err := gen(context.Background(), decode.BatchRequest{Prompt: prompt, MaxTokens: 6, Logprobs: true, Continue: cont,
				Stream: func(c decode.Chunk) { streamed.WriteString(c.Text) }})
			if err != nil {
				t.Fatal(err)
			}
			want := tok.Decode(res.Tokens, true)
			if cont {
				all := tok.Decode(append(slices.Clone(prompt), res.Tokens...), true)
				want = strings.TrimPrefix(all, tok.Decode(prompt, true))
				if !strings.HasPrefix(want, " ") {
					t.Fatalf("%s: the continuation %q of %q starts with no space: the test proves nothing", name, want, "Once")
				}
			}
			var pieces strings.Builder
			for _, lp := range res.Logprobs {
				pieces.WriteString(lp.Text)
			}
			if res.Text != want || streamed.String() != want || pieces.String() != want {
				t.Errorf("%s, Continue %v: text %q, streamed %q, logprob texts %q; want %q", name, cont, res.Text, streamed.String(), pieces.String(), want)
			}
		}
	}
}
