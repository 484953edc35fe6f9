package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mocolab/moco/tokenizer"
)

// Pair is one preference item in TRL's prompt/chosen/rejected form: the
// same prompt with a preferred and a dispreferred completion.
type Pair struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
}

// ReadDPO reads JSONL with TRL's prompt, chosen and rejected string fields
// (blank lines skipped); an error names the offending line. TRL's
// conversational form (lists of messages) and its implicit-prompt form
// (no prompt field) are refused: the first needs the chat template, the
// second a shared-prefix split.
func ReadDPO(r io.Reader) ([]Pair, error) {
	return readJSONL(r, "pairs", func(text []byte, raw map[string]json.RawMessage) (Pair, error) {
		var p Pair
		for _, k := range []string{"prompt", "chosen", "rejected"} {
			v, ok := raw[k]
			if !ok {
				return p, fmt.Errorf("missing field %q (want string fields prompt, chosen and rejected)", k)
			}
			if s := strings.TrimSpace(string(v)); strings.HasPrefix(s, "[") {
				return p, fmt.Errorf("field %q is a list: the conversational form is not supported yet (use strings)", k)
			}
		}
		if err := json.Unmarshal(text, &p); err != nil {
			return p, err
		}
		if p.Chosen == "" || p.Rejected == "" {
			return p, errors.New("chosen and rejected must be non-empty")
		}
		return p, nil
	})
}

// SeqLogProb returns the sum over scored positions (targets[t] ≥ 0) of
// log softmax(logits[t])[targets[t]] and the number of scored positions.
// When dlogits is not nil it adds coef times the sum's gradient with
// respect to the logits, coef·(onehot(target) − softmax), into it.
func SeqLogProb[T Float](dlogits, logits []T, targets []int, vocab int, coef float64) (float64, int) {
	var sum float64
	n := 0
	for t, y := range targets {
		if y < 0 {
			continue
		}
		n++
		row := logits[t*vocab : (t+1)*vocab]
		lse := logSumExp(row)
		sum += float64(row[y]) - lse
		if dlogits != nil {
			d := dlogits[t*vocab : (t+1)*vocab]
			for i, v := range row {
				d[i] -= T(coef * math.Exp(float64(v)-lse))
			}
			d[y] += T(coef)
		}
	}
	return sum, n
}

// Seq is a tokenized sequence with its next-token targets (negative:
// not scored), as Tokenize makes them.
type Seq struct{ Tokens, Targets []int }

// LogProb is the sum of the scored tokens' log-probabilities of s under
// the model as it is (with its adapters when set).
func (m *Model[T]) LogProb(s Seq) float64 {
	acts := m.Forward(s.Tokens)
	lp, _ := SeqLogProb[T](nil, acts.Logits, s.Targets, m.Config.VocabSize, 0)
	return lp
}

// RefLogProb is LogProb with the adapters disabled: the frozen base, DPO's
// reference model, without a second copy of the weights.
// It reads m without changing it, so it is safe beside other readers.
func (m *Model[T]) RefLogProb(s Seq) float64 {
	ref := *m // shares the weights
	ref.LoRA = nil
	return ref.LogProb(s)
}

// PairStats is one preference pair's DPO loss and the quantities TRL logs:
// the policy's summed log-probabilities and the implicit rewards
// β·(log π(y|x) − log π_ref(y|x)) of the chosen and rejected completions.
type PairStats struct {
	Loss                         float64 // the DPO loss alone, without RPO's term
	LogpChosen, LogpRejected     float64
	ChosenTokens                 int // scored tokens of the chosen completion
	RewardChosen, RewardRejected float64
}

// DPOLoss is the sigmoid DPO loss of Rafailov et al. (TRL's default
// loss_type "sigmoid", label smoothing 0) from summed log-probabilities:
//
//	z = β·((logπ(c) − logπ_ref(c)) − (logπ(r) − logπ_ref(r)))
//	loss = −log σ(z) = log(1 + e^(−z))
//
// It returns the loss and dloss/dz = −σ(−z).
func DPOLoss(logpC, logpR, refC, refR, beta float64) (loss, dz float64) {
	z := beta * ((logpC - refC) - (logpR - refR))
	// softplus(−z), stable for large |z|.
	if z > 0 {
		loss = math.Log1p(math.Exp(-z))
	} else {
		loss = -z + math.Log1p(math.Exp(z))
	}
	return loss, -1 / (1 + math.Exp(z))
}

// DPOPair computes one pair's DPO loss against the given reference
// log-probabilities and, when grads is not nil, adds into grads (for every
// weight the model trains: the adapters when Frozen) the gradient of
//
//	weight·loss − nll·log π(chosen)
//
// the second term being RPO's negative log-likelihood of the chosen
// completion (nll = 0 for plain DPO).
func (m *Model[T]) DPOPair(chosen, rejected Seq, refC, refR, beta, weight, nll float64, grads map[string][]T) PairStats {
	V := m.Config.VocabSize
	ac, ar := m.Forward(chosen.Tokens), m.Forward(rejected.Tokens)
	var dc, dr []T
	if grads != nil {
		dc, dr = make([]T, len(ac.Logits)), make([]T, len(ar.Logits))
	}
	// The log-probability gradients with coefficient 1 first; the loss's
	// chain factor is known only once both log-probabilities are.
	lc, nc := SeqLogProb(dc, ac.Logits, chosen.Targets, V, 1)
	lr, _ := SeqLogProb(dr, ar.Logits, rejected.Targets, V, 1)
	loss, dz := DPOLoss(lc, lr, refC, refR, beta)
	st := PairStats{Loss: loss, LogpChosen: lc, LogpRejected: lr, ChosenTokens: nc, RewardChosen: beta * (lc - refC), RewardRejected: beta * (lr - refR)}
	if grads == nil {
		return st
	}
	// dloss/dlogπ(c) = dz·β, dloss/dlogπ(r) = −dz·β.
	kc, kr := T(weight*dz*beta-nll), T(-weight*dz*beta)
	for i := range dc {
		dc[i] *= kc
	}
	for i := range dr {
		dr[i] *= kr
	}
	m.Backward(ac, dc, grads)
	m.Backward(ar, dr, grads)
	return st
}

// DPOConfig is a LoRA DPO run: the SFT settings plus β.
type DPOConfig struct {
	SFTConfig
	Beta float64
	// RPOAlpha, when positive, adds RPO's term (Pang et al. 2024, TRL's
	// rpo_alpha): RPOAlpha times the token-mean negative log-likelihood
	// of the batch's chosen completions. 0 is plain DPO (TRL's default).
	RPOAlpha float64
	// Threads is how many pairs of a batch run at once (0: GOMAXPROCS).
	// The result does not depend on it: each pair's gradient is summed
	// in the batch's order.
	Threads int
}

// DPOStep is one optimizer step's record: the SFT record (Loss is the
// batch's mean DPO loss; Tokens counts the scored tokens of both
// completions) plus TRL's logged means over the batch.
type DPOStep struct {
	Step
	RewardChosen, RewardRejected float64 // rewards/chosen, rewards/rejected
	Margin                       float64 // rewards/margins: mean of chosen − rejected
	Accuracy                     float64 // rewards/accuracies: share with chosen > rejected
	LogpChosen, LogpRejected     float64 // logps/chosen, logps/rejected
	NLL                          float64 // nll_loss: token-mean NLL of the chosen completions (Loss includes RPOAlpha·NLL)
}

// DPO trains LoRA adapters on m (frozen) with the sigmoid DPO loss against
// the frozen base as reference (the same weights with the adapters off,
// hence without dropout), plus RPO's likelihood term when cfg.RPOAlpha > 0,
// AdamW, warm-up + cosine decay and gradient clipping. Each step draws
// BatchSize pairs with a seeded stream and minimises their mean loss.
// Sequences are tokenized by TokenizePair, as TRL does (with
// cfg.SplitPrompt as TokenizeSplit does; completion and EOS scored).
// The reference log-probabilities are computed once per pair, the first
// time it is drawn. Of the SFT settings, DPO uses SplitPrompt, LoRA
// dropout (in the policy's forward passes), GradAccum (a step
// averages BatchSize·GradAccum pairs, processed BatchSize at a time; RPO's
// NLL is each micro-batch's token mean, averaged, as in TRL), MaxLength
// (longer pairs are refused), and SFT's checkpoints and resume (the same
// folders; a resumed run goes on bit for bit); it refuses Full and
// Truncate. A non-finite loss or gradient stops the run before the
// update, so the adapters (and the checkpoints on disk) hold the last
// good step.
func DPO(ctx context.Context, m *Model[float32], tok *tokenizer.Tokenizer, data []Pair, cfg DPOConfig, progress func(DPOStep)) (*LoRA[float32], []DPOStep, error) {
	switch {
	case cfg.Beta <= 0:
		return nil, nil, fmt.Errorf("beta %v: must be positive", cfg.Beta)
	case cfg.Dropout < 0 || cfg.Dropout >= 1:
		return nil, nil, fmt.Errorf("LoRA dropout %v: want 0 ≤ p < 1", cfg.Dropout)
	case cfg.Full:
		return nil, nil, errors.New("DPO trains LoRA adapters only (the reference is the base with them off)")
	case cfg.Truncate:
		return nil, nil, errors.New("DPO does not truncate pairs: a pair longer than the limit is refused")
	}
	lo, err := NewLoRA(m, cfg.Rank, cfg.Alpha, cfg.Targets, cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	lo.Dropout = cfg.Dropout
	m.LoRA, m.Frozen = lo, true
	limit := m.Config.MaxPositions
	if cfg.MaxLength > 0 {
		limit = min(limit, cfg.MaxLength)
	}
	// Gradient accumulation: the step's loss is the mean over every pair
	// of every micro-batch, the same as one batch of BatchSize·GradAccum.
	accum := max(1, cfg.GradAccum)
	batchSize := cfg.BatchSize * accum
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	items := make([]dpoItem, len(data))
	mismatched := 0
	for i, p := range data {
		var mismatch bool
		if items[i].c, items[i].r, mismatch, err = tokenizePair(tok, p, cfg.SplitPrompt); err != nil {
			return nil, nil, fmt.Errorf("pair %d: %w", i+1, err)
		}
		if mismatch {
			mismatched++
		}
		for _, s := range []Seq{items[i].c, items[i].r} {
			if len(s.Tokens) > limit {
				return nil, nil, fmt.Errorf("pair %d: %d tokens, more than the limit of %d", i+1, len(s.Tokens), limit)
			}
		}
	}
	if mismatched > 0 && cfg.Warn != nil {
		cfg.Warn(fmt.Sprintf("%d of %d pairs: the prompt's tokens are not a prefix of prompt + chosen's or prompt + rejected's; the prompt's own tokens are kept, followed by the whole's after as many tokens (as TRL, which warns too)", mismatched, len(data)))
	}
	var all [][]int
	for i := range items {
		all = append(all, items[i].c.Tokens, items[i].c.Targets, items[i].r.Tokens, items[i].r.Targets)
	}
	fp := fingerprint(m, cfg.SFTConfig, nil)
	fp["data"] = fmt.Sprintf("%d pairs, %s", len(items), hashSeqs(all...))
	fp["beta"], fp["rpo_alpha"] = cfg.Beta, cfg.RPOAlpha
	run := &runState[DPOStep]{opt: NewAdamW(cfg.WeightDecay), rng: rand.NewPCG(cfg.Seed, 0xda7a), params: lo.Params()}
	if cfg.Resume != "" {
		if err := loadCheckpoint(cfg.Resume, run, fp, cfg.Warn); err != nil {
			return nil, nil, err
		}
	}
	lc := loopConfig{steps: cfg.Steps, warmup: cfg.Warmup, lr: cfg.LR, maxNorm: cfg.MaxGradNorm,
		saveEvery: cfg.SaveEvery, dir: cfg.CheckpointDir, fp: fp, lo: lo, m: m}
	err = runLoop(ctx, run, lc, func(step int) (map[string][]float32, float64, DPOStep, error) {
		draw := rand.New(run.rng)
		batch := make([]*dpoItem, batchSize)
		for i := range batch {
			batch[i] = &items[draw.IntN(len(items))]
		}
		grads, st := dpoStep(m, batch, cfg, step, threads)
		return grads, st.Loss, st, nil
	}, progress)
	return lo, run.hist, err
}

// TokenizePair tokenizes a preference pair as TRL's DPOTrainer does:
// the prompt encoded alone (BOS first), and each of prompt + chosen and
// prompt + rejected with the EOS token's text (unless the completion ends
// with it) encoded whole; each sequence is the prompt's tokens followed
// by the whole's from the prompt's token count on, and is scored there.
// When the prompt's tokens are a prefix of the whole's, as they usually
// are, the sequence is the whole's tokens; when not, TRL warns and keeps
// the prompt's tokens all the same (DPO warns).
func TokenizePair(tok *tokenizer.Tokenizer, p Pair) (chosen, rejected Seq, err error) {
	chosen, rejected, _, err = tokenizePair(tok, p, false)
	return chosen, rejected, err
}

// tokenizePair is TokenizePair, or with split each completion tokenized
// as TokenizeSplit does; mismatch reports a prompt whose tokens are not a
// prefix of a whole's.
func tokenizePair(tok *tokenizer.Tokenizer, p Pair, split bool) (chosen, rejected Seq, mismatch bool, err error) {
	seq := func(completion string) (Seq, error) {
		var whole, prompt []int
		var err error
		if split {
			whole, prompt, err = encodeSplit(tok, p.Prompt, completion)
		} else {
			whole, prompt, err = encodeJoint(tok, p.Prompt, completion)
		}
		if err != nil {
			return Seq{}, err
		}
		if !hasPrefix(whole, prompt) {
			mismatch = true
		}
		n := len(prompt)
		if !split && len(whole) <= n {
			return Seq{}, errors.New("the completion adds no token to the prompt's")
		}
		tokens := append(append([]int(nil), prompt...), whole[n:]...)
		return Seq{tokens, scoreFrom(tokens, func(i int) bool { return i >= n })}, nil
	}
	if chosen, err = seq(p.Chosen); err != nil {
		return Seq{}, Seq{}, false, fmt.Errorf("chosen: %w", err)
	}
	if rejected, err = seq(p.Rejected); err != nil {
		return Seq{}, Seq{}, false, fmt.Errorf("rejected: %w", err)
	}
	return chosen, rejected, mismatch, nil
}

// dpoItem is a tokenized pair with its reference log-probabilities.
type dpoItem struct {
	c, r       Seq
	refC, refR float64
	once       sync.Once // computes refC and refR the first time the pair is drawn
}

// dpoStep returns the gradient (for m's trainable weights) and the record
// of one step's loss over batch: len(batch)/BatchSize micro-batches of
// BatchSize pairs, each pair weighted 1/len(batch), RPO's NLL the mean
// over micro-batches of each one's token mean. Only one micro-batch's
// pair gradients are held at a time; they are added in the batch's
// order, so the result does not depend on threads.
func dpoStep[T Float](m *Model[T], batch []*dpoItem, cfg DPOConfig, step, threads int) (map[string][]T, DPOStep) {
	var st DPOStep
	batchSize := len(batch)
	accum := batchSize / cfg.BatchSize
	w := 1 / float64(batchSize)
	lo := m.LoRA
	grads := map[string][]T{}
	for mb := range accum {
		micro := batch[mb*cfg.BatchSize : (mb+1)*cfg.BatchSize]
		chosenTokens := 0
		for _, it := range micro {
			for _, y := range it.c.Targets {
				if y >= 0 {
					chosenTokens++
				}
			}
		}
		// RPO's NLL is the token mean over the micro-batch's chosen
		// completions, averaged over the micro-batches (as TRL's
		// per-micro-batch loss divided by the accumulation steps).
		nll := 0.0
		if cfg.RPOAlpha > 0 && chosenTokens > 0 {
			nll = cfg.RPOAlpha / float64(chosenTokens*accum)
		}
		pairStats := make([]PairStats, len(micro))
		pairGrads := make([]map[string][]T, len(micro))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(threads, len(micro)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < len(micro); i = int(next.Add(1) - 1) {
					it := micro[i]
					it.once.Do(func() { it.refC, it.refR = m.RefLogProb(it.c), m.RefLogProb(it.r) })
					pairGrads[i] = map[string][]T{}
					pm := m
					if cfg.Dropout > 0 {
						// Each pair draws its masks from its own stream,
						// so the run does not depend on the threads.
						mc, lw := *m, *lo
						lw.DropRNG = rand.NewPCG(cfg.Seed^0xd0, uint64(step)*uint64(batchSize)+uint64(mb*cfg.BatchSize+i))
						mc.LoRA = &lw
						pm = &mc
					}
					pairStats[i] = pm.DPOPair(it.c, it.r, it.refC, it.refR, cfg.Beta, w, nll, pairGrads[i])
				}
			}()
		}
		wg.Wait()
		for i, it := range micro {
			for name, v := range pairGrads[i] {
				if grads[name] == nil {
					grads[name] = make([]T, len(v))
				}
				acc := grads[name]
				for j, x := range v {
					acc[j] += x
				}
			}
			ps := pairStats[i]
			st.Loss += w * ps.Loss
			st.RewardChosen += w * ps.RewardChosen
			st.RewardRejected += w * ps.RewardRejected
			st.Margin += w * (ps.RewardChosen - ps.RewardRejected)
			if ps.RewardChosen > ps.RewardRejected {
				st.Accuracy += w
			}
			st.LogpChosen += w * ps.LogpChosen
			st.LogpRejected += w * ps.LogpRejected
			if chosenTokens > 0 {
				st.NLL -= ps.LogpChosen / float64(chosenTokens*accum)
			}
			for _, s := range []Seq{it.c, it.r} {
				st.Seen += len(s.Tokens)
				for _, y := range s.Targets {
					if y >= 0 {
						st.Tokens++
					}
				}
			}
		}
	}
	st.Loss += cfg.RPOAlpha * st.NLL
	return grads, st
}

// FoldLoRA adds the adapters into the base weights (W += Scale·B·A) and
// removes them, so that a further run trains new adapters on the result
// (as PEFT's merge_and_unload before the next round of training).
func (m *Model[T]) FoldLoRA() {
	lo := m.LoRA
	if lo == nil {
		return
	}
	for name, a := range lo.A {
		in, out := m.dims(modulePathOf(name))
		w, b, r := m.Params[name], lo.B[name], lo.R
		for o := range out {
			row := w[o*in : (o+1)*in]
			for k := range r {
				s := lo.Scale * b[o*r+k]
				for i, v := range a[k*in : (k+1)*in] {
					row[i] += s * v
				}
			}
		}
	}
	m.LoRA = nil
	if m.wt != nil {
		m.wt.Clear() // the kept transposes are of the old weights
	}
}
