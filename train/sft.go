package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/mocolab/moco/tokenizer"
)

// Example is one SFT item in one of TRL's two forms: prompt/completion
// (loss on the completion), or conversational Messages (the model's chat
// template applied, loss on the assistant turns).
type Example struct {
	Prompt     string    `json:"prompt"`
	Completion string    `json:"completion"`
	Messages   []Message `json:"messages,omitempty"`
}

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ReadSFT reads JSONL in TRL's SFT forms: string fields prompt and
// completion, or messages (a list of {role, content} with at least one
// assistant turn). Blank lines are skipped; an error names the line.
func ReadSFT(r io.Reader) ([]Example, error) {
	return readJSONL(r, "examples", func(text []byte, raw map[string]json.RawMessage) (Example, error) {
		var ex Example
		if err := json.Unmarshal(text, &ex); err != nil {
			return ex, err
		}
		if _, ok := raw["messages"]; ok {
			return ex, checkMessages(ex.Messages)
		}
		if _, ok := raw["prompt"]; !ok || ex.Completion == "" {
			return ex, errors.New("want string fields prompt and a non-empty completion, or messages")
		}
		return ex, nil
	})
}

// readJSONL reads JSON lines (blank lines skipped, each at most 64 MiB),
// each an object, parsed by parse from its text and fields; an error names
// the line. No items at all is an error naming what was wanted.
func readJSONL[T any](r io.Reader, what string, parse func(text []byte, raw map[string]json.RawMessage) (T, error)) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(text, &raw); err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		item, err := parse(text, raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		out = append(out, item)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no " + what)
	}
	return out, nil
}

func checkMessages(ms []Message) error {
	assistant := false
	for i, m := range ms {
		switch m.Role {
		case "assistant":
			assistant = true
		case "system", "user", "tool":
		default:
			return fmt.Errorf("messages[%d]: role %q (want system, user, assistant or tool)", i, m.Role)
		}
	}
	if !assistant {
		return errors.New("messages: no assistant turn to learn from")
	}
	return nil
}

// Tokenize turns an example into tokens and next-token targets (−100 where
// not scored). Prompt/completion, as TRL's SFTTrainer: the text prompt +
// completion + the EOS token's text (unless the completion ends with it)
// is encoded whole, BOS first, and scored from the prompt's own token
// count (its encoding alone, BOS first) on; when the prompt's tokens are
// not a prefix of the whole's, TRL warns and scores from that count all
// the same, and so does this (PrepareSFT warns). Messages: see
// TokenizeChat. TokenizeSplit is the encoding apart that collab's methods
// train on.
func Tokenize(tok *tokenizer.Tokenizer, ex Example) (tokens, targets []int, err error) {
	tokens, targets, _, err = tokenizeExample(tok, ex, false)
	return tokens, targets, err
}

// TokenizeSplit is Tokenize with the prompt (BOS first) and the
// completion encoded apart and their ids joined, then the EOS id: the
// prompt's ids as a model sees them when it generates after them, the
// completion's as they encode on their own. A token never straddles the
// boundary, and a tokenizer that prefixes a space to every text
// (SentencePiece's dummy prefix) gives the completion one ("4" after
// "2+2=" is "▁", "4" on stories260K; "4" in Tokenize). Messages are
// tokenized as Tokenize does.
func TokenizeSplit(tok *tokenizer.Tokenizer, ex Example) (tokens, targets []int, err error) {
	tokens, targets, _, err = tokenizeExample(tok, ex, true)
	return tokens, targets, err
}

// tokenizeExample is Tokenize (split false) or TokenizeSplit; mismatch
// reports a prompt whose tokens are not a prefix of the whole's.
func tokenizeExample(tok *tokenizer.Tokenizer, ex Example, split bool) (tokens, targets []int, mismatch bool, err error) {
	if len(ex.Messages) > 0 {
		tokens, targets, err = TokenizeChat(tok, ex.Messages)
		return tokens, targets, false, err
	}
	var p []int
	if split {
		tokens, p, err = encodeSplit(tok, ex.Prompt, ex.Completion)
	} else {
		tokens, p, err = encodeJoint(tok, ex.Prompt, ex.Completion)
	}
	if err != nil {
		return nil, nil, false, err
	}
	n := len(p)
	return tokens, scoreFrom(tokens, func(i int) bool { return i >= n }), !hasPrefix(tokens, p), nil
}

// encodeJoint encodes prompt + completion + the EOS token's text (unless
// the completion ends with it) whole, with the tokenizer's special tokens
// (BOS), as TRL does, and the prompt alone the same way.
func encodeJoint(tok *tokenizer.Tokenizer, prompt, completion string) (whole, p []int, err error) {
	if eos := tok.EOS(); len(eos) > 0 {
		if s := tok.TokenString(eos[0]); !strings.HasSuffix(completion, s) {
			completion += s
		}
	}
	if p, err = tok.Encode(prompt, true); err != nil {
		return nil, nil, err
	}
	whole, err = tok.Encode(prompt+completion, true)
	return whole, p, err
}

// encodeSplit encodes the prompt (BOS first) and the completion apart and
// joins their ids, then the EOS id.
func encodeSplit(tok *tokenizer.Tokenizer, prompt, completion string) (joined, p []int, err error) {
	if p, err = tok.Encode(prompt, true); err != nil {
		return nil, nil, err
	}
	c, err := tok.Encode(completion, false)
	if err != nil {
		return nil, nil, err
	}
	if eos := tok.EOS(); len(eos) > 0 {
		c = append(c, eos[0])
	}
	return append(append([]int(nil), p...), c...), p, nil
}

func hasPrefix(s, prefix []int) bool {
	return len(prefix) <= len(s) && slices.Equal(s[:len(prefix)], prefix)
}

// scoreFrom returns next-token targets: targets[i] = tokens[i+1] where
// scored(i+1), else −100.
func scoreFrom(tokens []int, scored func(int) bool) []int {
	targets := make([]int, len(tokens))
	for i := range targets {
		targets[i] = -100
		if i+1 < len(tokens) && scored(i+1) {
			targets[i] = tokens[i+1]
		}
	}
	return targets
}

// TokenizeChat renders a conversation with the tokenizer's chat template
// and scores the assistant turns only (TRL's assistant_only_loss=True;
// its default scores every token). The
// template has no generation markers in general, so the assistant spans
// come from renders of growing prefixes: for each assistant turn i, the
// render of messages[:i] with the generation prompt must extend the text
// so far, and the render of messages[:i+1] must extend that; what the
// turn adds (its content and the template's end-of-turn text) is scored.
// Each span is encoded on its own (BOS first unless the template writes
// it), so a token never straddles a span boundary. Turns after the last
// assistant one teach nothing and are left out.
func TokenizeChat(tok *tokenizer.Tokenizer, msgs []Message) (tokens, targets []int, err error) {
	if tok.Chat == nil {
		return nil, nil, errors.New("the model has no chat template, so the messages form cannot be rendered (use prompt and completion)")
	}
	if tok.ChatErr != nil {
		return nil, nil, fmt.Errorf("the model's chat template cannot be used: %w", tok.ChatErr)
	}
	render := func(n int, gen bool) (string, error) {
		ms := make([]map[string]any, n)
		for i, m := range msgs[:n] {
			ms[i] = map[string]any{"role": m.Role, "content": m.Content}
		}
		return tok.Chat.Render(ms, tokenizer.ChatOptions{AddGenerationPrompt: gen})
	}
	var scored []bool
	text := ""
	add := func(s string, score bool) error {
		special := len(tokens) == 0
		if bos := tok.BOS(); special && bos >= 0 && strings.HasPrefix(s, tok.TokenString(bos)) {
			special = false
		}
		ids, err := tok.Encode(s, special)
		if err != nil {
			return err
		}
		tokens = append(tokens, ids...)
		for range ids {
			scored = append(scored, score)
		}
		text += s
		return nil
	}
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		p, err := render(i, true)
		if err != nil {
			return nil, nil, err
		}
		f, err := render(i+1, false)
		if err != nil {
			return nil, nil, err
		}
		if !strings.HasPrefix(p, text) || !strings.HasPrefix(f, p) {
			return nil, nil, fmt.Errorf("messages[%d]: the chat template does not render the conversation as growing prefixes, so the assistant turns cannot be told apart", i)
		}
		if err := add(p[len(text):], false); err != nil {
			return nil, nil, err
		}
		if err := add(f[len(p):], true); err != nil {
			return nil, nil, err
		}
	}
	return tokens, scoreFrom(tokens, func(i int) bool { return scored[i] }), nil
}

// SFTConfig is an SFT run: LoRA adapters on a frozen base, or every
// weight (Full).
type SFTConfig struct {
	Steps, BatchSize, Warmup     int
	LR, WeightDecay, MaxGradNorm float64
	Seed                         uint64
	Rank                         int
	Alpha                        float64
	Targets                      []string // module names, e.g. q_proj
	// Dropout is PEFT's lora_dropout (see LoRA).
	Dropout float64
	// GradAccum is the number of micro-batches of BatchSize examples per
	// optimizer step (0 means 1). The step's gradient is the token-
	// weighted mean over all of them, the same as one batch of
	// BatchSize·GradAccum examples.
	GradAccum int
	// Full trains every weight instead of adapters (small models): the
	// model's Params are updated in place.
	Full bool
	// MaxLength caps an example's tokens (0: the model's positions). A
	// longer example is refused, or with Truncate cut to MaxLength (its
	// tail, usually response, is lost) with a warning.
	MaxLength int
	Truncate  bool
	// SplitPrompt tokenizes prompt/completion examples with TokenizeSplit
	// instead of Tokenize (TRL's): for completions a model generated
	// after the prompt's ids (collab's maft and sparta), so that the
	// training sequence starts with the prompt's ids as the model saw
	// them.
	SplitPrompt bool
	// Warn receives warnings; nil drops them.
	Warn func(string)
	// With SaveEvery > 0, a checkpoint (CheckpointDir/checkpoint-STEP) is
	// written every SaveEvery steps and when ctx stops the run.
	SaveEvery     int
	CheckpointDir string
	// Resume is a checkpoint folder to continue from; the run then goes
	// on bit for bit as if it had never stopped. The checkpoint must be
	// of the same base model, settings and data; one that records no
	// base model (an older moco's) resumes with a warning.
	Resume string
}

// Step is one optimizer step's record.
type Step struct {
	Step   int
	Loss   float64
	LR     float64
	Tokens int // scored tokens
	Seen   int // tokens through the model (prompt and completion)
	Norm   float64
	Time   time.Duration // since the run started (resumed runs count the time before)
}

// NewLoRA initialises adapters the way PEFT does: A uniform in
// ±1/√in (kaiming_uniform with a=√5), B zero, from a seeded stream.
func NewLoRA(m *Model[float32], rank int, alpha float64, targets []string, seed uint64) (*LoRA[float32], error) {
	rng := rand.New(rand.NewPCG(seed, 0x1057))
	lo := &LoRA[float32]{R: rank, Alpha: alpha, Scale: float32(alpha / float64(rank)), Modules: targets,
		A: map[string][]float32{}, B: map[string][]float32{}}
	for l := range m.Config.NumLayers {
		for _, mod := range targets {
			path, ok := modulePath[mod]
			if !ok {
				return nil, fmt.Errorf("target module %q not supported (want q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", mod)
			}
			in, out := m.dims(path)
			a := make([]float32, rank*in)
			bound := 1 / math.Sqrt(float64(in))
			for i := range a {
				a[i] = float32((2*rng.Float64() - 1) * bound)
			}
			lo.A[LayerName(l, path)], lo.B[LayerName(l, path)] = a, make([]float32, out*rank)
		}
	}
	return lo, nil
}

// PrepareSFT tokenizes data for m, enforcing cfg's length limit.
func PrepareSFT(m *Model[float32], tok *tokenizer.Tokenizer, data []Example, cfg SFTConfig) ([]Seq, error) {
	limit := m.Config.MaxPositions
	if cfg.MaxLength > 0 {
		limit = min(limit, cfg.MaxLength)
	}
	seqs := make([]Seq, 0, len(data))
	cut, dropped, mismatched := 0, 0, 0
	for i, ex := range data {
		tokens, targets, mismatch, err := tokenizeExample(tok, ex, cfg.SplitPrompt)
		if err != nil {
			return nil, fmt.Errorf("example %d: %w", i+1, err)
		}
		if mismatch {
			mismatched++
		}
		if len(tokens) > limit {
			if !cfg.Truncate {
				return nil, fmt.Errorf("example %d: %d tokens, more than the limit of %d (the model's positions or the maximum length); truncate to cut it", i+1, len(tokens), limit)
			}
			// As Hugging Face truncates input_ids and labels alike: the
			// last kept position's label fell off.
			tokens, targets = tokens[:limit], targets[:limit]
			targets[limit-1] = -100
			cut++
		}
		scored := false
		for _, y := range targets {
			scored = scored || y >= 0
		}
		if !scored {
			if cfg.Truncate {
				dropped++
				continue
			}
			return nil, fmt.Errorf("example %d: no token to score", i+1)
		}
		seqs = append(seqs, Seq{tokens, targets})
	}
	if mismatched > 0 && cfg.Warn != nil {
		cfg.Warn(fmt.Sprintf("%d of %d examples: the prompt's tokens are not a prefix of prompt + completion's; the loss starts after the prompt's token count all the same (as TRL, which warns too)", mismatched, len(data)))
	}
	if cut > 0 && cfg.Warn != nil {
		cfg.Warn(fmt.Sprintf("truncated %d of %d examples to %d tokens; %d left with no response token were dropped", cut, len(data), limit, dropped))
	}
	if len(seqs) == 0 {
		return nil, errors.New("no example left to train on")
	}
	return seqs, nil
}

func (s *Step) stamp(step int, lr, norm float64, t time.Duration) {
	s.Step, s.LR, s.Norm, s.Time = step, lr, norm, t
}

// SFT trains m on data with AdamW, warm-up + cosine decay and gradient
// clipping: LoRA adapters on the frozen base (returned; m.LoRA is set), or
// with cfg.Full every weight in place (the LoRA returned is nil). Each
// step draws BatchSize·GradAccum examples with a seeded stream and
// minimises the mean cross-entropy over every scored token of them.
// progress, when not nil, sees every step. A non-finite loss or gradient
// stops the run before the update, so the weights (and the checkpoints
// on disk) hold the last good step; the error says which.
func SFT(ctx context.Context, m *Model[float32], tok *tokenizer.Tokenizer, data []Example, cfg SFTConfig, progress func(Step)) (*LoRA[float32], []Step, error) {
	seqs, err := PrepareSFT(m, tok, data, cfg)
	if err != nil {
		return nil, nil, err
	}
	return SFTSeqs(ctx, m, seqs, cfg, progress)
}

// SFTSeqs is SFT on tokenized examples.
func SFTSeqs(ctx context.Context, m *Model[float32], seqs []Seq, cfg SFTConfig, progress func(Step)) (*LoRA[float32], []Step, error) {
	run := &runState[Step]{opt: NewAdamW(cfg.WeightDecay), rng: rand.NewPCG(cfg.Seed, 0xda7a)}
	var lo *LoRA[float32]
	if cfg.Full {
		m.LoRA, m.Frozen = nil, false
		run.params = m.Params
	} else {
		var err error
		if lo, err = NewLoRA(m, cfg.Rank, cfg.Alpha, cfg.Targets, cfg.Seed); err != nil {
			return nil, nil, err
		}
		if cfg.Dropout < 0 || cfg.Dropout >= 1 {
			return nil, nil, fmt.Errorf("LoRA dropout %v: want 0 ≤ p < 1", cfg.Dropout)
		}
		lo.Dropout = cfg.Dropout
		if cfg.Dropout > 0 {
			lo.DropRNG = rand.NewPCG(cfg.Seed, 0xd209)
			run.dropRNG = lo.DropRNG
		}
		m.LoRA, m.Frozen = lo, true
		run.params = lo.Params()
	}
	fp := fingerprint(m, cfg, seqs)
	if cfg.Resume != "" {
		if err := loadCheckpoint(cfg.Resume, run, fp, cfg.Warn); err != nil {
			return nil, nil, err
		}
	}
	defer func() {
		if lo != nil {
			lo.DropRNG = nil // evaluation mode from here on
		}
	}()
	accum := max(1, cfg.GradAccum)
	lc := loopConfig{steps: cfg.Steps, warmup: cfg.Warmup, lr: cfg.LR, maxNorm: cfg.MaxGradNorm,
		saveEvery: cfg.SaveEvery, dir: cfg.CheckpointDir, fp: fp, lo: lo, m: m}
	err := runLoop(ctx, run, lc, func(int) (map[string][]float32, float64, Step, error) {
		batch := make([]Seq, cfg.BatchSize*accum)
		total, seen := 0, 0
		draw := rand.New(run.rng)
		for i := range batch {
			batch[i] = seqs[draw.IntN(len(seqs))]
			seen += len(batch[i].Tokens)
			for _, y := range batch[i].Targets {
				if y >= 0 {
					total++
				}
			}
		}
		grads := map[string][]float32{}
		var loss float64
		for _, s := range batch {
			g := map[string][]float32{}
			l, n := m.Loss(s.Tokens, s.Targets, g)
			w := float64(n) / float64(total)
			loss += l * w
			for name, v := range g {
				if grads[name] == nil {
					grads[name] = make([]float32, len(v))
				}
				acc := grads[name]
				for i, x := range v {
					acc[i] += float32(w) * x
				}
			}
		}
		return grads, loss, Step{Loss: loss, Tokens: total, Seen: seen}, nil
	}, progress)
	return lo, run.hist, err
}
