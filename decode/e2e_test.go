package decode_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// load opens a shared model folder with its tokenizer.
func load(t testing.TB, name string) (*engine.Model, *tokenizer.Tokenizer) {
	t.Helper()
	return testmodel.Load(t, testutil.Shared(t, filepath.Join("models", name)))
}

func sessions(ms ...*engine.Model) []decode.Session {
	out := make([]decode.Session, len(ms))
	for i, m := range ms {
		out[i] = m.NewSession(0)
	}
	return out
}

func TestFusionReference(t *testing.T) {
	var ref struct {
		IDs     []int              `json:"ids_with_bos"`
		N       int                `json:"n_predicted"`
		Single  map[string]float64 `json:"mean_nll"`
		LogLin  float64            `json:"mean_nll_loglinear_fusion_equal_weights"`
		ProbAvg float64            `json:"mean_nll_probability_average"`
	}
	b, err := os.ReadFile(testutil.Shared(t, "models/fusion_reference_stories260K_llama2xs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	s, stok := load(t, "stories260K")
	x, xtok := load(t, "llama2xs")
	vocab, err := decode.SharedVocab([]*engine.Model{s, x}, []*tokenizer.Tokenizer{stok, xtok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		models []*engine.Model
		comb   decode.Combiner
		want   float64
	}{
		{"stories260K", []*engine.Model{s}, nil, ref.Single["stories260K"]},
		{"llama2xs", []*engine.Model{x}, nil, ref.Single["llama2xs"]},
		{"logit-mean", []*engine.Model{s, x}, &decode.Fusion{}, ref.LogLin},
		{"prob-mean", []*engine.Model{s, x}, &decode.Fusion{Mode: decode.ProbMean}, ref.ProbAvg},
		{"self-fusion", []*engine.Model{s, s}, &decode.Fusion{}, ref.Single["stories260K"]},
		{"self-fusion prob-mean", []*engine.Model{s, s}, &decode.Fusion{Mode: decode.ProbMean}, ref.Single["stories260K"]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sum, n, err := decode.NLL(sessions(tc.models...), tc.comb, vocab, ref.IDs)
			if err != nil {
				t.Fatal(err)
			}
			if n != ref.N {
				t.Fatalf("scored %d tokens, want %d", n, ref.N)
			}
			if got := sum / float64(n); math.Abs(got-tc.want) > 1e-4 {
				t.Errorf("mean NLL %.6f, want %.6f", got, tc.want)
			}
		})
	}
}

// TestGreedyReference checks the single-model loop (Collab "single") against
// the independent greedy continuation of stories260K.
func TestGreedyReference(t *testing.T) {
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
	m, _ := load(t, "stories260K")
	l := &decode.Lockstep{Sessions: sessions(m), MaxTokens: len(ref.Greedy)}
	got, err := l.Run(ref.Prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ref.Greedy) {
		t.Errorf("greedy ids\n got %v\nwant %v", got, ref.Greedy)
	}
	// Self-fusion generates the same text.
	l2 := &decode.Lockstep{Sessions: sessions(m, m), Combiner: &decode.Fusion{}, MaxTokens: len(ref.Greedy)}
	got2, err := l2.Run(ref.Prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got2, ref.Greedy) {
		t.Errorf("self-fusion ids\n got %v\nwant %v", got2, ref.Greedy)
	}
}

func TestSpeculativeSharedModels(t *testing.T) {
	target, tok := load(t, "stories260K")
	draft, _ := load(t, "llama2xs")
	prompt, err := tok.Encode("Once upon a time, there was a little dog", true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	l := &decode.Lockstep{Sessions: sessions(target), MaxTokens: n, Vocab: tok.VocabSize()}
	want, err := l.Run(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	for _, k := range []int{1, 3, 5} {
		sp := &decode.Speculative{Target: target.NewSession(0), Draft: draft.NewSession(0), K: k, MaxTokens: n, Vocab: tok.VocabSize()}
		got, err := sp.Run(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("k=%d: speculative greedy differs from the target alone\n got %v\nwant %v", k, got, want)
		}
		t.Logf("k=%d: accepted %d of %d draft tokens", k, sp.Accepted, sp.Proposed)
	}
}

func TestVocabularyMismatchRejected(t *testing.T) {
	s, stok := load(t, "stories260K")
	e, etok := load(t, "eric260K")
	_, err := decode.SharedVocab([]*engine.Model{e, s}, []*tokenizer.Tokenizer{etok, stok}, []string{"eric260K", "stories260K"})
	if err == nil || !strings.Contains(err.Error(), "do not share a vocabulary") {
		t.Fatalf("eric260K + stories260K: err = %v, want a vocabulary error", err)
	}
	if _, err := decode.NewMethod([]*engine.Model{s, e}, []*tokenizer.Tokenizer{stok, etok}, decode.MethodConfig{Method: "fusion"}); err == nil {
		t.Fatal("NewMethod accepted eric260K + stories260K")
	}
}

// TestMethodsEndToEnd runs every method on stories260K + llama2xs through
// the text API and checks each produces text and honors stop strings.
func TestMethodsEndToEnd(t *testing.T) {
	s, stok := load(t, "stories260K")
	x, xtok := load(t, "llama2xs")
	ms := []*engine.Model{s, x}
	toks := []*tokenizer.Tokenizer{stok, xtok}
	head := &decode.Head{W: make([]float64, s.Config.HiddenSize), B: 0.1} // always defers a little (p≈0.52)
	for _, cfg := range []decode.MethodConfig{
		{Method: "single"},
		{Method: "fusion"},
		{Method: "fusion", Mode: "prob-mean", Weights: []float64{2, 1}},
		{Method: "contrastive", Alpha: 0.2},
		{Method: "nudging"},
		{Method: "cascade", DevPrompts: []string{"Tom had a ball.", "The sun was hot."}},
		{Method: "co-llm", Head: head},
		{Method: "co-llm", Head: head, CoLLMMode: "compose"},
		{Method: "mentor", Share: new(0.5)},
		{Method: "speculative"},
		{Method: "fusion", Sampler: decode.SamplerConfig{Temperature: 0.8, TopP: 0.9, Seed: 3}},
	} {
		cfg.MaxTokens = 40
		var trace []decode.TraceStep
		cfg.Trace = func(ts decode.TraceStep) { trace = append(trace, ts) }
		c, err := decode.NewMethod(ms, toks, cfg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Method, err)
		}
		var w strings.Builder
		text, err := c.Generate("Once upon a time", &w)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Method, err)
		}
		if text == "" || w.String() != text || len(trace) == 0 {
			t.Errorf("%s: text %q (streamed %q), %d trace steps", cfg.Method, text, w.String(), len(trace))
		}
		t.Logf("%-12s %q", cfg.Method, text)
		// Stop strings cut the text before them.
		if i := strings.Index(text, " "); i > 0 {
			cfg.Stop = []string{text[i : i+1]}
			c, _ := decode.NewMethod(ms, toks, cfg)
			cut, err := c.Generate("Once upon a time", nil)
			if err != nil || cut != text[:i] {
				t.Errorf("%s with stop %q: %q, %v; want %q", cfg.Method, cfg.Stop[0], cut, err, text[:i])
			}
		}
	}
}

func TestCoLLMHeadOnSkills(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a head")
	}
	small, tok := load(t, "skills-small")
	add, atok := load(t, "skills-add")
	var ds struct {
		Dev []struct{ Input, Output string } `json:"dev"`
	}
	b, err := os.ReadFile(testutil.Shared(t, "datasets/skills_add.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	var pairs []decode.HeadPair
	for _, it := range ds.Dev[:40] {
		p, _ := tok.Encode(it.Input, true)
		r, _ := tok.Encode(it.Output, false)
		pairs = append(pairs, decode.HeadPair{Prompt: p, Reference: append(r, tok.EOS()...)})
	}
	d, err := decode.CollectHeadData(small.NewSession(0), add.NewSession(0), tok.VocabSize(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decode.TrainHead(d, decode.HeadTrainConfig{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	h2, err := decode.LoadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := decode.NewMethod([]*engine.Model{small, add}, []*tokenizer.Tokenizer{tok, atok}, decode.MethodConfig{Method: "co-llm", Head: h2, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Generate(ds.Dev[0].Input, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("co-llm on %q: %q (want %q)", ds.Dev[0].Input, out, ds.Dev[0].Output)
}

// TestChatPrompt renders a chat template that writes the BOS text itself:
// the prompt must then start with exactly one BOS.
func TestChatPrompt(t *testing.T) {
	cfg := []byte(`{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>",
		"chat_template": "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"}`)
	tok, err := tokenizer.New(stories260k.Tokenizer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	text, err := decode.ChatPrompt(tok, "Tell me a story")
	if err != nil {
		t.Fatal(err)
	}
	if text != "<s>user: Tell me a story\nassistant:" {
		t.Fatalf("rendered %q", text)
	}
	g := &decode.Generator{Tok: tok, Chat: true}
	ids, err := g.Encode("Tell me a story")
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != tok.BOS() || ids[1] == tok.BOS() {
		t.Errorf("chat prompt ids %v: want exactly one leading BOS", ids[:4])
	}
	plain, _ := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if _, err := decode.ChatPrompt(plain, "x"); err == nil || !strings.Contains(err.Error(), "chat template") {
		t.Errorf("no template: err = %v", err)
	}
}

// TestMentorSkills is the reproduction: skills-base (generator)
// and skills-add (mentor) answer 289+623 differently (911 and 912 alone,
// greedy), so consulting the mentor at every word must draft patches, and
// the patches must be each model's own greedy answer.
func TestMentorSkills(t *testing.T) {
	base, btok := load(t, "skills-base")
	add, atok := load(t, "skills-add")
	ms, toks := []*engine.Model{base, add}, []*tokenizer.Tokenizer{btok, atok}
	const prompt = "Q: 289+623=\nA:"
	alone := func(m *engine.Model, tok *tokenizer.Tokenizer) string {
		c, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{Method: "single", MaxTokens: 16})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Generate(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gb, ga := alone(base, btok), alone(add, atok)
	if gb == ga {
		t.Fatalf("the models agree (%q): no test", gb)
	}
	for _, useMentor := range []bool{false, true} {
		c, err := decode.NewMethod(ms, toks, decode.MethodConfig{Method: "mentor", Share: new(1.0), MaxTokens: 16})
		if err != nil {
			t.Fatal(err)
		}
		var patches [][2]string
		c.Mentor.Choose = func(h, a, b []int) (bool, error) {
			patches = append(patches, [2]string{btok.Decode(a, true), btok.Decode(b, true)})
			return useMentor, nil
		}
		var logps []float64
		out, err := c.GenerateContext(context.Background(), prompt, nil, func(tk decode.Token) bool {
			logps = append(logps, tk.LogProb())
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Mentor.Patches < 1 || len(patches) < 1 || patches[0] != [2]string{gb, ga} {
			t.Errorf("patches %d, first %q; want [%q %q]", c.Mentor.Patches, patches, gb, ga)
		}
		want := gb
		if useMentor {
			want = ga
		}
		if out != want {
			t.Errorf("mentor wins %v: %q, want %q", useMentor, out, want)
		}
		for _, lp := range logps {
			if !(lp <= 0) || math.IsInf(lp, -1) {
				t.Errorf("log-probabilities %v", logps)
			}
		}
	}
	// NewMethod's default chooser asks the generator MoCo's question.
	c, err := decode.NewMethod(ms, toks, decode.MethodConfig{Method: "mentor", Share: new(1.0), MaxTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Generate(prompt, nil)
	if err != nil || (out != gb && out != ga) || c.Mentor.Patches != 1 {
		t.Errorf("default chooser: %q, %v, %d patches", out, err, c.Mentor.Patches)
	}
}

// TestCascadeOneModel: a cascade of one model has no threshold to
// calibrate and answers like the model alone.
func TestCascadeOneModel(t *testing.T) {
	s, tok := load(t, "stories260K")
	ms, toks := []*engine.Model{s}, []*tokenizer.Tokenizer{tok}
	var got [2]string
	for i, method := range []string{"single", "cascade"} {
		c, err := decode.NewMethod(ms, toks, decode.MethodConfig{Method: method, MaxTokens: 20})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if got[i], err = c.Generate("Once upon a time", nil); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
	if got[0] != got[1] {
		t.Errorf("cascade of one model: %q, want the model's own %q", got[1], got[0])
	}
}

// TestCascadeCalibrationCancelled: NewMethodContext stops a cascade's
// calibration with the context's error.
func TestCascadeCalibrationCancelled(t *testing.T) {
	s, stok := load(t, "stories260K")
	x, xtok := load(t, "llama2xs")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := decode.NewMethodContext(ctx, []*engine.Model{s, x}, []*tokenizer.Tokenizer{stok, xtok},
		decode.MethodConfig{Method: "cascade", DevPrompts: []string{"Tom had a ball."}, MaxTokens: 20})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled calibration: %v, want context.Canceled", err)
	}
}

// TestRepeatPenaltyKeepsMethods: with a repeat penalty, greedy
// speculative decoding is still the target's own greedy output, and a
// mentor that is never consulted leaves the generator's own text.
func TestRepeatPenaltyKeepsMethods(t *testing.T) {
	s, stok := load(t, "stories260K")
	x, xtok := load(t, "llama2xs")
	smp := decode.SamplerConfig{RepeatPenalty: 1.5, RepeatLastN: 64}
	generate := func(cfg decode.MethodConfig) string {
		cfg.Sampler, cfg.MaxTokens = smp, 40
		c, err := decode.NewMethod([]*engine.Model{s, x}, []*tokenizer.Tokenizer{stok, xtok}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		text, err := c.Generate("Once upon a time", nil)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	alone := generate(decode.MethodConfig{Method: "single"})
	for _, cfg := range []decode.MethodConfig{{Method: "speculative"}, {Method: "mentor", Share: new(0.0)}} {
		if got := generate(cfg); got != alone {
			t.Errorf("%s with a repeat penalty:\n%q\nwant the first model's own\n%q", cfg.Method, got, alone)
		}
	}
}

// TestGeneratorContinueAndCancel: with Continue the text is what the
// tokens add after the prompt's text (Decode of the whole less Decode of
// the prompt: stories260K's decoder drops a text's first space), without
// it Decode of the tokens alone; and a generation cancelled while text is
// held back (a possible start of a stop string) still returns that text.
func TestGeneratorContinueAndCancel(t *testing.T) {
	m, tok := load(t, "stories260K")
	newGen := func(stop []string) *decode.Collab {
		c, err := decode.NewMethod([]*engine.Model{m}, []*tokenizer.Tokenizer{tok}, decode.MethodConfig{Method: "single", MaxTokens: 8, Stop: stop, Sampler: decode.SamplerConfig{}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	prompt, err := tok.Encode("Once", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, cont := range []bool{false, true} {
		c := newGen(nil)
		c.Continue = cont
		var ids []int
		text, err := c.GenerateContext(context.Background(), "Once", nil, func(tk decode.Token) bool { ids = append(ids, tk.ID); return true })
		if err != nil {
			t.Fatal(err)
		}
		want := tok.Decode(ids, true)
		if cont {
			want = strings.TrimPrefix(tok.Decode(append(slices.Clone(prompt), ids...), true), tok.Decode(prompt, true))
			if !strings.HasPrefix(want, " ") {
				t.Fatalf("the continuation %q starts with no space: the test proves nothing", want)
			}
		}
		if text != want {
			t.Errorf("Continue %v: %q, want %q", cont, text, want)
		}
	}

	// Cancelled after five tokens whose text ends with the start of a stop
	// string: the held-back end comes back too.
	var ids []int
	if _, err := newGen(nil).GenerateContext(context.Background(), "Once", nil, func(tk decode.Token) bool { ids = append(ids, tk.ID); return true }); err != nil {
		t.Fatal(err)
	}
	want := tok.Decode(ids[:5], true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	got, err := newGen([]string{want[len(want)-3:] + "\x00never"}).GenerateContext(ctx, "Once", nil, func(decode.Token) bool {
		if n++; n == 5 {
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) || got != want {
		t.Errorf("cancelled: %q, %v; want %q and the cancellation", got, err, want)
	}
}

// TestContinueLoneSpace: a continuation whose only token is "▁" (id 410
// in stories260K's vocabulary, nothing alone at the start of a text) is a
// space after the prompt. The batchers end their text through the same
// textLead.rest.
func TestContinueLoneSpace(t *testing.T) {
	_, tok := load(t, "stories260K")
	const space = 410
	if tok.TokenString(space) != "▁" {
		t.Fatalf("token %d is %q", space, tok.TokenString(space))
	}
	g := &decode.Generator{Tok: tok, Continue: true, Run: func(_ context.Context, _ []int, emit func(decode.Token) bool) ([]int, error) {
		emit(decode.Token{ID: space})
		return []int{space}, nil
	}}
	if text, err := g.Generate("Once", nil); err != nil || text != " " {
		t.Errorf("Generator: %q, %v; want a space", text, err)
	}
}
