package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mocolab/moco/tokenizer"
)

// Example is one SFT item in TRL's prompt/completion form.
type Example struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// ReadSFT reads JSONL with TRL's prompt and completion fields (blank lines
// skipped); an error names the offending line. The conversational
// "messages" form is refused for now: it needs the chat template.
func ReadSFT(r io.Reader) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &raw); err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if _, ok := raw["messages"]; ok {
			return nil, fmt.Errorf("line %d: the messages form is not supported yet (use prompt and completion)", line)
		}
		var ex Example
		if err := json.Unmarshal([]byte(text), &ex); err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if _, ok := raw["prompt"]; !ok || ex.Completion == "" {
			return nil, fmt.Errorf("line %d: want string fields prompt and a non-empty completion", line)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no examples")
	}
	return out, nil
}

// Tokenize turns an example into tokens and next-token targets scored on
// the completion (and the end-of-sequence token after it) only: BOS +
// prompt + completion + EOS.
func Tokenize(tok *tokenizer.Tokenizer, ex Example) (tokens, targets []int, err error) {
	p, err := tok.Encode(ex.Prompt, true)
	if err != nil {
		return nil, nil, err
	}
	c, err := tok.Encode(ex.Completion, false)
	if err != nil {
		return nil, nil, err
	}
	if eos := tok.EOS(); len(eos) > 0 {
		c = append(c, eos[0])
	}
	tokens = append(p, c...)
	targets = make([]int, len(tokens))
	for i := range targets {
		targets[i] = -100
		if i+1 >= len(p) && i+1 < len(tokens) {
			targets[i] = tokens[i+1]
		}
	}
	return tokens, targets, nil
}

// SFTConfig is a LoRA SFT run.
type SFTConfig struct {
	Steps, BatchSize, Warmup     int
	LR, WeightDecay, MaxGradNorm float64
	Seed                         uint64
	Rank                         int
	Alpha                        float64
	Targets                      []string // module names, e.g. q_proj
}

// Step is one optimizer step's record.
type Step struct {
	Step   int
	Loss   float64
	LR     float64
	Tokens int // scored tokens
	Seen   int // tokens through the model (prompt and completion)
	Norm   float64
	Time   time.Duration // since the run started
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

// SFT trains LoRA adapters on m (frozen) with AdamW, warm-up + cosine
// decay and gradient clipping; each step draws BatchSize examples with a
// seeded stream and minimises the mean cross-entropy over every scored
// token of the batch. progress, when not nil, sees every step. A
// non-finite loss stops the run before the update, so the adapters hold
// the last good step.
func SFT(ctx context.Context, m *Model[float32], tok *tokenizer.Tokenizer, data []Example, cfg SFTConfig, progress func(Step)) (*LoRA[float32], []Step, error) {
	lo, err := NewLoRA(m, cfg.Rank, cfg.Alpha, cfg.Targets, cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	m.LoRA, m.Frozen = lo, true
	type seq struct{ tokens, targets []int }
	seqs := make([]seq, len(data))
	for i, ex := range data {
		if seqs[i].tokens, seqs[i].targets, err = Tokenize(tok, ex); err != nil {
			return nil, nil, fmt.Errorf("example %d: %w", i+1, err)
		}
		if len(seqs[i].tokens) > m.Config.MaxPositions {
			return nil, nil, fmt.Errorf("example %d: %d tokens, more than the model's %d positions", i+1, len(seqs[i].tokens), m.Config.MaxPositions)
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xda7a))
	opt := NewAdamW(cfg.WeightDecay)
	params := lo.Params()
	var hist []Step
	start := time.Now()
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return lo, hist, err
		}
		batch := make([]seq, cfg.BatchSize)
		total, seen := 0, 0
		for i := range batch {
			batch[i] = seqs[rng.IntN(len(seqs))]
			seen += len(batch[i].tokens)
			for _, y := range batch[i].targets {
				if y >= 0 {
					total++
				}
			}
		}
		grads := map[string][]float32{}
		var loss float64
		for _, s := range batch {
			g := map[string][]float32{}
			l, n := m.Loss(s.tokens, s.targets, g)
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
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return lo, hist, fmt.Errorf("step %d: loss is %v; adapters kept at step %d", step+1, loss, step)
		}
		norm := ClipGradNorm(grads, cfg.MaxGradNorm)
		lr := CosineLR(cfg.LR, step, cfg.Warmup, cfg.Steps)
		opt.Update(params, grads, lr)
		st := Step{Step: step + 1, Loss: loss, LR: lr, Tokens: total, Seen: seen, Norm: norm, Time: time.Since(start)}
		hist = append(hist, st)
		if progress != nil {
			progress(st)
		}
	}
	return lo, hist, nil
}
