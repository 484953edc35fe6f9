package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// GRPO (Group Relative Policy Optimization, DeepSeekMath §4.1, Shao et al.
// 2024) with verifiable rewards, as TRL's GRPOTrainer computes it:
//
//  1. For each prompt, sample a group of G completions from the current
//     policy (base + LoRA adapters) through the engine, temperature 1, no
//     top-k/top-p, up to MaxCompletion tokens or the end-of-sequence token
//     (kept as the completion's last token, as TRL's completion mask does).
//  2. Reward each completion (a Reward function: the CLI passes the
//     evaluation's scorer of a task type).
//  3. Advantages per group: Â_i = (r_i − mean(r)) / (std(r) + 1e-4), std
//     Bessel-corrected (torch.std), the same Â for every token of o_i.
//  4. Per completion token t of o_i, with ρ = π_θ(o_t)/π_old(o_t):
//
//     ℓ_t = −min(ρ·Â, clip(ρ, 1−ε, 1+ε_high)·Â) + β·k3_t
//     k3_t = π_ref/π_θ − log(π_ref/π_θ) − 1   (Schulman's k3, ≥ 0)
//
//     where π_old is the policy that sampled the batch (ρ = 1 with one
//     iteration per batch, TRL's default num_iterations, so only the
//     gradient −Â·∇log π_θ remains) and π_ref the base with the adapters
//     disabled. Log-probabilities are those of logits/temperature, as TRL
//     computes them.
//  5. Reduce over tokens by LossType: "grpo" (DeepSeekMath's
//     1/G Σ_i 1/|o_i| Σ_t ℓ_t, averaged over the batch's sequences), "bnpo"
//     and "dapo" (Σ ℓ / Σ|o_i| over the batch), "dr_grpo"
//     (Σ ℓ / (B·MaxCompletion)). Under gradient accumulation they reduce
//     as TRL's: bnpo per micro-batch (the mean of the micro-batches' token
//     means), dapo over the whole accumulated batch (see grpoStepLoss).
//
// Defaults (DefaultGRPOConfig) are DeepSeekMath's and TRL ≤ 0.15's:
// num_generations 8, β 0.04, ε 0.2, loss_type "grpo", scale_rewards on,
// num_iterations 1, max_completion_length 256; temperature 1 is TRL's
// from 0.18 (0.9 before). TRL has since moved its defaults to β 0 (no
// reference model), loss_type "dapo" and (on its main branch, July 2026)
// max_completion_length 512; each is one setting away.
// Deviations: TRL's learning rate default (1e-6) is for full fine-tuning of
// large models; LoRA on small ones needs far more, so the CLI shares SFT's.

// GRPOExample is one GRPO prompt with the reference answer its reward
// reads (TRL's prompt column plus an answer column).
type GRPOExample struct {
	Prompt string
	Answer string
}

// ReadGRPO reads JSONL with a string "prompt" and an "answer" (a string, or
// a number kept as written); blank lines are skipped and an error names
// the offending line.
func ReadGRPO(r io.Reader) ([]GRPOExample, error) {
	return readJSONL(r, "examples", func(_ []byte, raw map[string]json.RawMessage) (GRPOExample, error) {
		var ex GRPOExample
		if err := json.Unmarshal(raw["prompt"], &ex.Prompt); err != nil || raw["prompt"] == nil || ex.Prompt == "" {
			return ex, errors.New("want a non-empty string field prompt")
		}
		a := bytes.TrimSpace(raw["answer"])
		var num json.Number
		switch {
		case len(a) > 0 && a[0] == '"' && json.Unmarshal(a, &ex.Answer) == nil:
		case len(a) > 0 && json.Unmarshal(a, &num) == nil:
			ex.Answer = num.String()
		default:
			return ex, errors.New("want a field answer (a string or a number)")
		}
		return ex, nil
	})
}

// Reward scores one completion of a prompt against its reference answer
// (1 is best for the evaluation's scorers). An error stops the run: it is
// for failures of the scorer itself, not for wrong answers.
type Reward func(prompt, completion, answer string) (float64, error)

// GroupAdvantages returns the advantages of rewards laid out group by
// group (g consecutive completions per prompt): r − mean of its group,
// divided by the group's Bessel-corrected standard deviation + 1e-4 when
// scale is true (TRL's scale_rewards="group"; false is Dr. GRPO's "none").
func GroupAdvantages(rewards []float64, g int, scale bool) []float64 {
	adv := make([]float64, len(rewards))
	for s := 0; s+g <= len(rewards); s += g {
		grp := rewards[s : s+g]
		var mean float64
		for _, r := range grp {
			mean += r
		}
		mean /= float64(g)
		var ss float64
		for _, r := range grp {
			ss += (r - mean) * (r - mean)
		}
		std := math.Sqrt(ss / float64(g-1))
		for i, r := range grp {
			adv[s+i] = r - mean
			if scale {
				adv[s+i] /= std + 1e-4
			}
		}
	}
	return adv
}

// GRPOObjective is the per-token objective and its reduction.
type GRPOObjective struct {
	Epsilon     float64 // lower clip: ρ ≥ 1−Epsilon
	EpsilonHigh float64 // upper clip: ρ ≤ 1+EpsilonHigh (0: Epsilon)
	Beta        float64 // weight of the k3 KL to the reference
	Temperature float64 // log-probabilities of logits/Temperature (0: 1)
	LossType    string  // grpo (""), bnpo, dapo or dr_grpo
	// MaxCompletion is dr_grpo's normalising constant.
	MaxCompletion int
}

// check names an unknown loss type.
func (o GRPOObjective) check() error {
	switch o.LossType {
	case "", "grpo", "bnpo", "dapo", "dr_grpo":
		return nil
	}
	return fmt.Errorf("loss type %q: want grpo, bnpo, dapo or dr_grpo", o.LossType)
}

// TokenLoss returns ℓ_t for a completion token with log-probability logp
// under the policy, oldLogp under the policy that sampled it, refLogp
// under the reference, and the sequence's advantage; dlogp is ∂ℓ/∂logp and
// clipped tells whether the clipped branch is the one in force (then the
// surrogate passes no gradient, as torch.clamp's does not).
func (o GRPOObjective) TokenLoss(logp, oldLogp, refLogp, adv float64) (loss, dlogp float64, clipped bool) {
	hi := o.EpsilonHigh
	if hi == 0 {
		hi = o.Epsilon
	}
	ratio := math.Exp(logp - oldLogp)
	l1 := ratio * adv
	l2 := min(max(ratio, 1-o.Epsilon), 1+hi) * adv
	if l1 <= l2 {
		loss, dlogp = -l1, -l1 // ∂(ρÂ)/∂logp = ρÂ
	} else {
		loss, clipped = -l2, true
	}
	if o.Beta != 0 {
		d := refLogp - logp
		loss += o.Beta * (math.Exp(d) - d - 1)
		dlogp += o.Beta * (1 - math.Exp(d))
	}
	return loss, dlogp, clipped
}

// Rollout is one sampled completion held for the loss.
type Rollout struct {
	Tokens    []int // prompt then completion
	Prompt    int   // number of prompt tokens (≥ 1)
	Advantage float64
	// OldLogp is the sampling policy's log-probability of each completion
	// token; nil means the current policy's, detached (ratio 1).
	OldLogp []float64
	// RefLogp is the reference's; needed when Beta is not 0.
	RefLogp []float64
}

// completion is the number of completion tokens.
func (r *Rollout) completion() int { return len(r.Tokens) - r.Prompt }

// GRPOStats describes one evaluation of the GRPO loss.
type GRPOStats struct {
	Loss      float64
	KL        float64 // mean k3 per completion token (0 when Beta is 0)
	ClipRatio float64 // share of completion tokens whose clipped branch is in force
	Tokens    int     // completion tokens
	Seen      int     // tokens through the model
}

// tokenLogps returns the log-softmax of logits/temp at each completion
// token, and the softmax rows when probs is true.
func tokenLogps[T Float](logits []T, r *Rollout, vocab int, temp float64, probs bool) (lp []float64, p [][]float64) {
	n := r.completion()
	lp = make([]float64, n)
	if probs {
		p = make([][]float64, n)
	}
	for j := range n {
		row := logits[(r.Prompt+j-1)*vocab : (r.Prompt+j)*vocab]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, float64(v)/temp)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v)/temp - mx)
		}
		lse := mx + math.Log(sum)
		lp[j] = float64(row[r.Tokens[r.Prompt+j]])/temp - lse
		if probs {
			q := make([]float64, vocab)
			for i, v := range row {
				q[i] = math.Exp(float64(v)/temp - lse)
			}
			p[j] = q
		}
	}
	return lp, p
}

// CompletionLogps returns the model's log-probabilities of a rollout's
// completion tokens (of logits/temp; temp 0 means 1). With the adapters
// removed (m.LoRA nil) it gives the reference's.
func (m *Model[T]) CompletionLogps(r *Rollout, temp float64) []float64 {
	if temp == 0 {
		temp = 1
	}
	acts := m.Forward(r.Tokens[:len(r.Tokens)-1])
	lp, _ := tokenLogps(acts.Logits, r, m.Config.VocabSize, temp, false)
	return lp
}

// GRPOLoss returns the GRPO loss of a batch of rollouts (groups need not
// be contiguous: advantages are already in the rollouts) and, when grads
// is not nil, adds its gradient for every trainable weight into grads.
func (m *Model[T]) GRPOLoss(rs []Rollout, o GRPOObjective, grads map[string][]T) (GRPOStats, error) {
	return m.grpoLoss(rs, o, grads, 1, 0)
}

// grpoLoss is GRPOLoss with every rollout's weight multiplied by scale
// and, when tokens > 0, dapo's token count replaced by it (the count of
// the whole accumulated batch).
func (m *Model[T]) grpoLoss(rs []Rollout, o GRPOObjective, grads map[string][]T, scale float64, tokens int) (GRPOStats, error) {
	temp := o.Temperature
	if temp == 0 {
		temp = 1
	}
	var st GRPOStats
	for i := range rs {
		if rs[i].Prompt < 1 || rs[i].completion() < 1 {
			return st, fmt.Errorf("rollout %d: %d prompt and %d completion tokens, want at least one of each", i, rs[i].Prompt, rs[i].completion())
		}
		if o.Beta != 0 && len(rs[i].RefLogp) != rs[i].completion() {
			return st, fmt.Errorf("rollout %d: %d reference log-probabilities for %d completion tokens", i, len(rs[i].RefLogp), rs[i].completion())
		}
		if rs[i].OldLogp != nil && len(rs[i].OldLogp) != rs[i].completion() {
			return st, fmt.Errorf("rollout %d: %d old log-probabilities for %d completion tokens", i, len(rs[i].OldLogp), rs[i].completion())
		}
		st.Tokens += rs[i].completion()
	}
	// weight[i] is the factor of rollout i's token losses in the batch loss.
	if tokens <= 0 || o.LossType != "dapo" {
		tokens = st.Tokens
	}
	weight := func(i int) float64 {
		switch o.LossType {
		case "bnpo", "dapo":
			return scale / float64(tokens)
		case "dr_grpo":
			return scale / float64(len(rs)*max(1, o.MaxCompletion))
		default:
			return scale / float64(len(rs)*rs[i].completion())
		}
	}
	if err := o.check(); err != nil {
		return st, err
	}
	if len(rs) == 0 {
		return st, nil
	}
	V := m.Config.VocabSize
	var clipped int
	for i := range rs {
		r := &rs[i]
		in := r.Tokens[:len(r.Tokens)-1]
		st.Seen += len(in)
		acts := m.Forward(in)
		lp, probs := tokenLogps(acts.Logits, r, V, temp, grads != nil)
		w := weight(i)
		var dl []T
		if grads != nil {
			dl = make([]T, len(acts.Logits))
		}
		for j, logp := range lp {
			old, ref := logp, 0.0 // nil OldLogp: the current policy, detached
			if r.OldLogp != nil {
				old = r.OldLogp[j]
			}
			if o.Beta != 0 {
				ref = r.RefLogp[j]
				d := ref - logp
				st.KL += math.Exp(d) - d - 1
			}
			loss, dlogp, c := o.TokenLoss(logp, old, ref, r.Advantage)
			if c {
				clipped++
			}
			st.Loss += w * loss
			if grads == nil || dlogp == 0 {
				continue
			}
			// ∂logp/∂logit_v = (onehot_v − p_v)/temp.
			row := dl[(r.Prompt+j-1)*V : (r.Prompt+j)*V]
			g := w * dlogp / temp
			for v, p := range probs[j] {
				row[v] -= T(g * p)
			}
			row[r.Tokens[r.Prompt+j]] += T(g)
		}
		if grads != nil {
			m.Backward(acts, dl, grads)
		}
	}
	st.KL /= float64(st.Tokens)
	st.ClipRatio = float64(clipped) / float64(st.Tokens)
	return st, nil
}

// grpoStepLoss is the loss of one optimizer step over batch split into
// accum equal micro-batches, with its gradient added into grads, reduced
// as TRL does under gradient accumulation: grpo, bnpo and dr_grpo take
// each micro-batch's loss divided by accum (for grpo and dr_grpo the same
// as one big batch; for bnpo the mean of the micro-batches' token means),
// dapo divides the sum over every micro-batch's tokens by the token count
// of the whole batch (TRL's num_items_in_batch), again one big batch's.
// KL and ClipRatio are token means over the whole batch.
func (m *Model[T]) grpoStepLoss(batch []Rollout, o GRPOObjective, accum int, grads map[string][]T) (GRPOStats, error) {
	if accum < 1 || len(batch) == 0 || len(batch)%accum != 0 {
		return GRPOStats{}, fmt.Errorf("%d rollouts do not split into %d micro-batches", len(batch), accum)
	}
	tokens := 0
	for i := range batch {
		tokens += batch[i].completion()
	}
	scale := 1 / float64(accum)
	if o.LossType == "dapo" {
		scale = 1
	}
	if accum == 1 {
		return m.grpoLoss(batch, o, grads, 1, 0)
	}
	var st GRPOStats
	var kl, clip float64
	n := len(batch) / accum
	for mb := range accum {
		s, err := m.grpoLoss(batch[mb*n:(mb+1)*n], o, grads, scale, tokens)
		if err != nil {
			return st, err
		}
		st.Loss += s.Loss
		kl += s.KL * float64(s.Tokens)
		clip += s.ClipRatio * float64(s.Tokens)
		st.Tokens += s.Tokens
		st.Seen += s.Seen
	}
	st.KL, st.ClipRatio = kl/float64(st.Tokens), clip/float64(st.Tokens)
	return st, nil
}

// GRPOConfig is a LoRA GRPO run.
type GRPOConfig struct {
	Steps int
	// BatchSize counts completions per micro-batch: BatchSize /
	// NumGenerations prompts, each sampled NumGenerations times.
	BatchSize, NumGenerations int
	// GradAccum is the number of micro-batches per optimizer step (0
	// means 1): a step samples BatchSize·GradAccum completions at once
	// (TRL's generation batch, its advantages computed per group) and
	// accumulates their gradient BatchSize at a time.
	GradAccum     int
	MaxCompletion int // most tokens sampled per completion
	// NumIterations is μ: optimizer steps per generated batch (ratios
	// leave 1 from the second).
	NumIterations                int
	Warmup                       int
	LR, WeightDecay, MaxGradNorm float64
	Temperature                  float64
	Beta, Epsilon, EpsilonHigh   float64
	LossType                     string
	ScaleRewards                 bool
	Seed                         uint64
	Rank                         int
	Alpha                        float64
	Targets                      []string
	// Dropout is PEFT's lora_dropout, applied in the loss's forward pass
	// only: sampling, the reference and the old log-probabilities run the
	// adapters in evaluation mode.
	Dropout float64
	// Adapter, when set, is trained from where it stands instead of a
	// fresh PEFT initialisation (Rank, Alpha and Targets are then unused).
	Adapter *LoRA[float32]
	// SaveEvery, CheckpointDir and Resume are SFT's (see SFTConfig): a
	// checkpoint also holds the prompt order and, mid-way through a
	// batch's NumIterations, the batch itself.
	SaveEvery     int
	CheckpointDir string
	Resume        string
	// Warn receives warnings; nil drops them.
	Warn func(string)
}

// DefaultGRPOConfig returns DeepSeekMath's GRPO settings (TRL ≤ 0.15's
// defaults) for the objective and SFT's for the optimizer.
func DefaultGRPOConfig() GRPOConfig {
	return GRPOConfig{Steps: 100, BatchSize: 16, NumGenerations: 8, MaxCompletion: 256, NumIterations: 1,
		LR: 3e-3, MaxGradNorm: 1, Temperature: 1, Beta: 0.04, Epsilon: 0.2, LossType: "grpo", ScaleRewards: true,
		Seed: 1, Rank: 8, Alpha: 16, Targets: []string{"q_proj", "v_proj", "down_proj"}}
}

// GRPOStep is one optimizer step's record.
type GRPOStep struct {
	Step          int
	Loss          float64
	Reward        float64 // mean reward of the batch's completions
	RewardStd     float64 // mean over groups of the within-group standard deviation
	KL            float64 // mean k3 per completion token
	ClipRatio     float64
	CompletionLen float64 // mean completion tokens
	LR, Norm      float64
	Tokens, Seen  int
	Time          time.Duration // since the run started
}

func (s *GRPOStep) stamp(step int, lr, norm float64, t time.Duration) {
	s.Step, s.LR, s.Norm, s.Time = step, lr, norm, t
}

// PolicyEngine returns an engine model running m's weights with its
// adapters folded in (W + Scale·B·A), for sampling from the current policy
// with the engine's KV cache and kernels.
func PolicyEngine(m *Model[float32]) (*engine.Model, error) {
	var ts []*safetensors.Tensor
	for _, name := range sortedKeys(m.Params) {
		w := m.Params[name]
		if m.LoRA != nil && m.LoRA.A[name] != nil {
			in, out := m.dims(modulePathOf(name))
			w = append([]float32(nil), w...)
			a, b, r := m.LoRA.A[name], m.LoRA.B[name], m.LoRA.R
			for o := range out {
				row := w[o*in : (o+1)*in]
				for k := range r {
					s := m.LoRA.Scale * b[o*r+k]
					if s == 0 {
						continue
					}
					for i, v := range a[k*in : (k+1)*in] {
						row[i] += s * v
					}
				}
			}
		}
		data := make([]byte, 4*len(w))
		for i, v := range w {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		shape := []int{len(w)}
		if strings.HasSuffix(name, "_proj.weight") || name == "model.embed_tokens.weight" || name == "lm_head.weight" {
			rows := m.Config.VocabSize
			if strings.Contains(name, "model.layers.") {
				_, rows = m.dims(modulePathOf(name))
			}
			shape = []int{rows, len(w) / rows}
		}
		ts = append(ts, &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: data})
	}
	return engine.New(m.Config, safetensors.NewMemSource(ts), engine.Options{})
}

// SampleGroup draws n completions of prompt from em at temperature temp
// (plain multinomial sampling over the whole vocabulary, TRL's defaults
// top_p 1, top_k 0), each of at most maxNew tokens and ending after the
// first token in eos, which is kept. The prompt is prefilled once.
func SampleGroup(ctx context.Context, em *engine.Model, prompt []int, n, maxNew int, temp float64, eos map[int]bool, rng *rand.Rand) ([][]int, error) {
	s := em.NewSession(len(prompt) + maxNew)
	first, err := s.Forward(prompt)
	if err != nil {
		return nil, err
	}
	first = append([]float32(nil), first...)
	out := make([][]int, n)
	p := make([]float64, len(first))
	for i := range out {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.Truncate(len(prompt)); err != nil {
			return nil, err
		}
		logits := first
		for len(out[i]) < maxNew {
			t := sampleToken(p, logits, temp, rng)
			out[i] = append(out[i], t)
			if eos[t] || len(out[i]) == maxNew {
				break
			}
			if logits, err = s.Forward([]int{t}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// sampleToken draws a token from softmax(logits/temp) (p is scratch).
func sampleToken(p []float64, logits []float32, temp float64, rng *rand.Rand) int {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = max(mx, float64(v)/temp)
	}
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v)/temp - mx)
		sum += p[i]
	}
	u := rng.Float64() * sum
	for i, v := range p {
		if u < v {
			return i
		}
		u -= v
	}
	return len(p) - 1
}

// GRPO trains LoRA adapters on m (frozen) with GRPO on data, rewarding
// completions with reward; each of cfg.Steps optimizer steps (AdamW,
// warm-up + cosine decay, clipping, as SFT) uses
// BatchSize·GradAccum/NumGenerations prompts drawn in seeded epochs,
// sampled NumGenerations times each (a new batch every NumIterations
// steps). progress, when not nil, sees every step. Checkpoints and resume
// are SFT's; a non-finite loss or gradient stops the run before the
// update, so the adapters (and the checkpoints on disk) hold the last
// good step.
func GRPO(ctx context.Context, m *Model[float32], tok *tokenizer.Tokenizer, data []GRPOExample, reward Reward, cfg GRPOConfig, progress func(GRPOStep)) (*LoRA[float32], []GRPOStep, error) {
	G := cfg.NumGenerations
	switch {
	case G < 2:
		return nil, nil, fmt.Errorf("num generations %d: want at least 2 (advantages compare a group)", G)
	case cfg.BatchSize < G || cfg.BatchSize%G != 0:
		return nil, nil, fmt.Errorf("batch size %d is not a positive multiple of num generations %d", cfg.BatchSize, G)
	case cfg.MaxCompletion < 1 || cfg.Steps < 1:
		return nil, nil, fmt.Errorf("max completion length and steps must be positive")
	case cfg.Temperature <= 0:
		return nil, nil, fmt.Errorf("temperature %g: want > 0 (the loss reads logits/temperature)", cfg.Temperature)
	case cfg.Epsilon < 0 || cfg.EpsilonHigh < 0 || cfg.Beta < 0:
		return nil, nil, fmt.Errorf("epsilon and beta must not be negative")
	case cfg.Dropout < 0 || cfg.Dropout >= 1:
		return nil, nil, fmt.Errorf("LoRA dropout %v: want 0 ≤ p < 1", cfg.Dropout)
	case cfg.GradAccum < 0 || cfg.SaveEvery < 0:
		return nil, nil, fmt.Errorf("gradient accumulation %d, save every %d: must not be negative", cfg.GradAccum, cfg.SaveEvery)
	}
	obj := GRPOObjective{Epsilon: cfg.Epsilon, EpsilonHigh: cfg.EpsilonHigh, Beta: cfg.Beta, Temperature: cfg.Temperature,
		LossType: cfg.LossType, MaxCompletion: cfg.MaxCompletion}
	if err := obj.check(); err != nil {
		return nil, nil, err
	}
	iters := max(1, cfg.NumIterations)
	accum := max(1, cfg.GradAccum)
	fp := map[string]any{
		"steps": cfg.Steps, "batch_size": cfg.BatchSize, "grad_accum": accum, "num_generations": G, "max_completion": cfg.MaxCompletion,
		"num_iterations": iters, "warmup": cfg.Warmup, "lr": cfg.LR, "weight_decay": cfg.WeightDecay, "max_grad_norm": cfg.MaxGradNorm,
		"temperature": cfg.Temperature, "beta": cfg.Beta, "epsilon": cfg.Epsilon, "epsilon_high": cfg.EpsilonHigh,
		"loss_type": cfg.LossType, "scale_rewards": cfg.ScaleRewards, "seed": cfg.Seed, "lora_dropout": cfg.Dropout,
		baseModelKey: modelID(m),
	}
	lo := cfg.Adapter
	if lo == nil {
		var err error
		if lo, err = NewLoRA(m, cfg.Rank, cfg.Alpha, cfg.Targets, cfg.Seed); err != nil {
			return nil, nil, err
		}
		fp["lora_r"], fp["lora_alpha"], fp["lora_targets"] = cfg.Rank, cfg.Alpha, strings.Join(cfg.Targets, ",")
	} else {
		fp["adapter"] = hashParams(lo.Params())
	}
	m.LoRA, m.Frozen = lo, true
	lo.Dropout, lo.DropRNG = cfg.Dropout, nil
	defer func() { lo.DropRNG = nil }() // evaluation mode after training
	prompts := make([][]int, len(data))
	answers := make([]int, 0, len(data))
	for i, ex := range data {
		// A prompt rendered by a chat template may already start with BOS.
		special := tok.BOS() < 0 || !strings.HasPrefix(ex.Prompt, tok.TokenString(tok.BOS()))
		p, err := tok.Encode(ex.Prompt, special)
		if err != nil {
			return nil, nil, fmt.Errorf("example %d: %w", i+1, err)
		}
		if len(p) < 1 || len(p) >= m.Config.MaxPositions {
			return nil, nil, fmt.Errorf("example %d: %d prompt tokens leave no room in the model's %d positions", i+1, len(p), m.Config.MaxPositions)
		}
		prompts[i] = p
		for _, b := range []byte(ex.Answer + "\x00") {
			answers = append(answers, int(b))
		}
	}
	fp["data"] = fmt.Sprintf("%d prompts, %s", len(data), hashSeqs(append(prompts, answers)...))
	eos := map[int]bool{}
	for _, t := range tok.EOS() {
		eos[t] = true
	}
	run := &runState[GRPOStep]{opt: NewAdamW(cfg.WeightDecay), rng: rand.NewPCG(cfg.Seed, 0x6790), params: lo.Params()}
	if cfg.Dropout > 0 {
		run.dropRNG = rand.NewPCG(cfg.Seed, 0xd209) // the loss's dropout masks
	}
	var st grpoState
	run.extra = func() (any, error) {
		x := st
		if run.step%iters == 0 {
			x.Batch, x.Info = nil, GRPOStep{} // the next step samples anew
		}
		return x, nil
	}
	run.setExtra = func(raw json.RawMessage) error {
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("GRPO state: %w", err)
		}
		if run.step%iters != 0 && len(st.Batch) != cfg.BatchSize*accum {
			return fmt.Errorf("GRPO state: %d rollouts of the batch in use, want %d", len(st.Batch), cfg.BatchSize*accum)
		}
		return st.check(len(data), m.Config.VocabSize, m.Config.MaxPositions)
	}
	if cfg.Resume != "" {
		if err := loadCheckpoint(cfg.Resume, run, fp, cfg.Warn); err != nil {
			return nil, nil, err
		}
	}
	lc := loopConfig{steps: cfg.Steps, warmup: cfg.Warmup, lr: cfg.LR, maxNorm: cfg.MaxGradNorm,
		saveEvery: cfg.SaveEvery, dir: cfg.CheckpointDir, fp: fp, lo: lo, m: m}
	err := runLoop(ctx, run, lc, func(step int) (map[string][]float32, float64, GRPOStep, error) {
		next := st
		if step%iters == 0 {
			var err error
			if next, err = grpoBatch(ctx, m, tok, data, prompts, st.Order, reward, eos, rand.New(run.rng), cfg, accum); err != nil {
				return nil, 0, GRPOStep{}, fmt.Errorf("step %d: %w", step+1, err)
			}
		}
		grads := map[string][]float32{}
		lo.DropRNG = run.dropRNG
		ls, err := m.grpoStepLoss(next.Batch, obj, accum, grads)
		lo.DropRNG = nil
		if err != nil {
			return nil, 0, GRPOStep{}, err
		}
		st = next // the step is done: its batch and prompt order hold
		rec := st.Info
		rec.Loss, rec.KL, rec.ClipRatio, rec.Tokens, rec.Seen = ls.Loss, ls.KL, ls.ClipRatio, ls.Tokens, ls.Seen
		return grads, ls.Loss, rec, nil
	}, progress)
	return lo, run.hist, err
}

// grpoState is what a GRPO checkpoint holds beyond SFT's: the rest of
// the epoch's prompt order and, while NumIterations steps share it, the
// batch in use with its reward statistics.
type grpoState struct {
	Order []int     `json:"order"`
	Batch []Rollout `json:"batch,omitempty"`
	Info  GRPOStep  `json:"info"`
}

// check refuses a state that would index past the data, the vocabulary
// or the context: trainer_state.json is a file a user can edit.
func (st *grpoState) check(examples, vocab, positions int) error {
	for _, k := range st.Order {
		if k < 0 || k >= examples {
			return fmt.Errorf("GRPO state: prompt order names example %d of %d", k, examples)
		}
	}
	for i, r := range st.Batch {
		n := r.completion()
		switch {
		case r.Prompt < 1 || n < 0 || len(r.Tokens) > positions:
			return fmt.Errorf("GRPO state: rollout %d: %d prompt tokens of %d", i+1, r.Prompt, len(r.Tokens))
		case (r.OldLogp != nil && len(r.OldLogp) != n) || (r.RefLogp != nil && len(r.RefLogp) != n):
			return fmt.Errorf("GRPO state: rollout %d: log-probabilities for %d and %d tokens, want %d", i+1, len(r.OldLogp), len(r.RefLogp), n)
		}
		for _, t := range r.Tokens {
			if t < 0 || t >= vocab {
				return fmt.Errorf("GRPO state: rollout %d: token %d outside the vocabulary of %d", i+1, t, vocab)
			}
		}
	}
	return nil
}

// hashParams is a fingerprint of named tensors.
func hashParams(p map[string][]float32) string {
	var all [][]int
	for _, name := range sortedKeys(p) {
		v := make([]int, 0, len(name)+len(p[name]))
		for _, b := range []byte(name) {
			v = append(v, int(b))
		}
		for _, x := range p[name] {
			v = append(v, int(math.Float32bits(x)))
		}
		all = append(all, v)
	}
	return hashSeqs(all...)
}

// grpoBatch samples and rewards one batch of BatchSize·accum completions
// (groups of NumGenerations) with the current policy, its prompts taken
// from order (the rest of the epoch; a new seeded permutation when it
// runs out), and fills in the log-probabilities the loss needs: the
// reference's when Beta is not 0, the sampling policy's when the batch
// serves more than one iteration. It returns the batch, its statistics
// and the order left.
func grpoBatch(ctx context.Context, m *Model[float32], tok *tokenizer.Tokenizer, data []GRPOExample, prompts [][]int,
	order []int, reward Reward, eos map[int]bool, rng *rand.Rand, cfg GRPOConfig, accum int) (grpoState, error) {
	G := cfg.NumGenerations
	total := cfg.BatchSize * accum
	em, err := PolicyEngine(m)
	if err != nil {
		return grpoState{}, err
	}
	defer em.Close()
	var (
		rs      []Rollout
		rewards []float64
		info    GRPOStep
	)
	for range total / G {
		if len(order) == 0 { // seeded epochs over the data (TRL shuffles)
			order = rng.Perm(len(data))
		}
		k := order[0]
		order = order[1:]
		p := prompts[k]
		maxNew := min(cfg.MaxCompletion, m.Config.MaxPositions-len(p))
		comps, err := SampleGroup(ctx, em, p, G, maxNew, cfg.Temperature, eos, rng)
		if err != nil {
			return grpoState{}, err
		}
		var mean, ss float64
		grp := make([]float64, G)
		for i, c := range comps {
			text := c
			if eos[text[len(text)-1]] {
				text = text[:len(text)-1]
			}
			r, err := reward(data[k].Prompt, tok.Decode(text, true), data[k].Answer)
			if err != nil {
				return grpoState{}, fmt.Errorf("reward of example %d: %w", k+1, err)
			}
			grp[i] = r
			mean += r / float64(G)
			info.CompletionLen += float64(len(c)) / float64(total)
			rs = append(rs, Rollout{Tokens: append(append([]int(nil), p...), c...), Prompt: len(p)})
		}
		for _, r := range grp {
			ss += (r - mean) * (r - mean)
		}
		info.Reward += mean / float64(total/G)
		info.RewardStd += math.Sqrt(ss/float64(G-1)) / float64(total/G)
		rewards = append(rewards, grp...)
	}
	for i, a := range GroupAdvantages(rewards, G, cfg.ScaleRewards) {
		rs[i].Advantage = a
	}
	for i := range rs {
		if cfg.NumIterations > 1 {
			rs[i].OldLogp = m.CompletionLogps(&rs[i], cfg.Temperature)
		}
		if cfg.Beta != 0 {
			lo := m.LoRA
			m.LoRA = nil // the reference: the base, adapters disabled
			rs[i].RefLogp = m.CompletionLogps(&rs[i], cfg.Temperature)
			m.LoRA = lo
		}
	}
	return grpoState{Order: order, Batch: rs, Info: info}, nil
}
