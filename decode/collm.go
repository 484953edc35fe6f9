package decode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mocolab/moco/safetensors"
)

// CoLLMMode is how Co-LLM uses the deferral probability.
type CoLLMMode int

const (
	// Defer takes the assistant's token when the deferral probability
	// exceeds the threshold, the base's otherwise.
	Defer CoLLMMode = iota
	// Compose samples from (1-p)*p_base + p*p_assistant at every step.
	Compose
)

// ParseCoLLMMode reads "defer" or "compose".
func ParseCoLLMMode(s string) (CoLLMMode, error) {
	switch s {
	case "defer", "":
		return Defer, nil
	case "compose":
		return Compose, nil
	}
	return 0, fmt.Errorf("unknown Co-LLM mode %q (want defer or compose)", s)
}

// CoLLM lets a base model defer single tokens to an assistant (MoCo method
// #7): a logistic head on the base's last hidden state gives the deferral
// probability p at each position.
//
// CoLLM reads the base's hidden state at every position, which only a
// session keeps, so it runs one prompt at a time (Lockstep) and
// LockstepBatcher refuses it.
type CoLLM struct {
	Base, Assistant int
	Head            *Head
	Mode            CoLLMMode
	// Threshold above which Defer mode defers, used as given
	// (DefaultThreshold is the usual; at 0 every token is deferred).
	Threshold float64
	// WarmUp, when > 0, lowers the threshold linearly from 1 at the first
	// token to Threshold at token WarmUp (the Co-LLM paper uses 15).
	WarmUp int

	pb, pa []float64
}

// DefaultThreshold is Co-LLM's default deferral threshold.
const DefaultThreshold = 0.5

// Combine implements Combiner.
func (c *CoLLM) Combine(dst []float32, s *Step) error {
	n := len(s.Logits)
	if c.Base < 0 || c.Base >= n || c.Assistant < 0 || c.Assistant >= n {
		return fmt.Errorf("co-llm: model indexes %d, %d out of range (%d models)", c.Base, c.Assistant, n)
	}
	if c.Head == nil {
		return errors.New("co-llm: no deferral head")
	}
	h := s.Hidden(c.Base)
	if len(h) != len(c.Head.W) {
		return fmt.Errorf("co-llm: head has %d inputs but the base model's hidden size is %d", len(c.Head.W), len(h))
	}
	p := c.Head.Prob(h)
	s.Defer = p
	if c.Mode == Compose {
		s.Source = "compose"
		if len(c.pb) != len(dst) {
			c.pb, c.pa = make([]float64, len(dst)), make([]float64, len(dst))
		}
		SoftmaxInto(c.pb, s.Logits[c.Base], 1)
		SoftmaxInto(c.pa, s.Logits[c.Assistant], 1)
		for j := range dst {
			dst[j] = float32(math.Log((1-p)*c.pb[j] + p*c.pa[j]))
		}
		return nil
	}
	thr := c.Threshold
	if c.WarmUp > 0 && s.Index < c.WarmUp {
		thr = 1 - (1-thr)*float64(s.Index)/float64(c.WarmUp)
	}
	src := c.Base
	s.Source = "base"
	if p > thr {
		src = c.Assistant
		s.Source = "assistant"
	}
	copy(dst, s.Logits[src])
	return nil
}

// Head is a logistic deferral head: p = sigmoid(W·h + B).
type Head struct {
	W []float64
	B float64
}

// Prob returns the deferral probability for hidden state h.
func (hd *Head) Prob(h []float32) float64 {
	z := hd.B
	for i, x := range h {
		z += hd.W[i] * float64(x)
	}
	return sigmoid(z)
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus(z) = log(1 + e^z), computed without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// HeadData is a training set for a Head: per position of the reference
// continuations, the base's hidden state, a 0/1 pseudo-label (assistant
// right where the base is wrong), and both models' log-probabilities of the
// reference token (what the marginal likelihood needs).
type HeadData struct {
	X                  [][]float32
	Y                  []float64
	LogPBase, LogPAsst []float64
}

// Objectives of TrainHead.
const (
	// MarginalObjective is the Co-LLM paper's (Shen et al. 2024): maximize
	// the likelihood of the reference with the deferral decision as a
	// latent variable, log((1-p) P_base(x_t) + p P_assistant(x_t)) summed
	// over the positions, p the head's deferral probability.
	MarginalObjective = "marginal"
	// PseudoLabelObjective fits the head to 0/1 labels: 1 where the
	// assistant's argmax is the reference token and the base's is not
	// (the weak supervision the paper uses to initialize the head).
	PseudoLabelObjective = "pseudo"
)

// MarginalLoss returns the mean negative marginal log-likelihood of the
// reference tokens, -mean_t log((1-p_t) P_base + p_t P_assistant) with p_t
// = sigmoid(W·h_t + B), plus l2/2 * |W|^2, and its gradient. Its gradient
// in z_t is p_t - r_t, r_t = sigmoid(z_t + log P_assistant - log P_base)
// the posterior probability that the assistant produced token t.
func (hd *Head) MarginalLoss(d *HeadData, l2 float64) (loss float64, gW []float64, gB float64) {
	gW = make([]float64, len(hd.W))
	n := float64(len(d.X))
	for i, x := range d.X {
		z := hd.B
		for j, v := range x {
			z += hd.W[j] * float64(v)
		}
		la, lb := d.LogPBase[i], d.LogPAsst[i]
		// log((1-p) e^la + p e^lb) with log p = -softplus(-z), log(1-p) = -softplus(z)
		loss -= logAddExp(la-softplus(z), lb-softplus(-z)) / n
		dz := (sigmoid(z) - sigmoid(z+lb-la)) / n
		for j, v := range x {
			gW[j] += dz * float64(v)
		}
		gB += dz
	}
	for j, w := range hd.W {
		loss += l2 / 2 * w * w
		gW[j] += l2 * w
	}
	return loss, gW, gB
}

func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// Loss returns the weighted logistic loss of the head on d and its
// gradient: the mean over positions of c*(-y log p - (1-y) log(1-p)) with
// c = posWeight for positive labels and 1 otherwise, plus l2/2 * |W|^2.
func (hd *Head) Loss(d *HeadData, posWeight, l2 float64) (loss float64, gW []float64, gB float64) {
	gW = make([]float64, len(hd.W))
	n := float64(len(d.X))
	for i, x := range d.X {
		z := hd.B
		for j, v := range x {
			z += hd.W[j] * float64(v)
		}
		y, c := d.Y[i], 1.0
		if y > 0.5 {
			c = posWeight
		}
		// -log p = softplus(-z); -log(1-p) = softplus(z)
		loss += c * (y*softplus(-z) + (1-y)*softplus(z)) / n
		dz := c * (sigmoid(z) - y) / n
		for j, v := range x {
			gW[j] += dz * float64(v)
		}
		gB += dz
	}
	for j, w := range hd.W {
		loss += l2 / 2 * w * w
		gW[j] += l2 * w
	}
	return loss, gW, gB
}

// HeadTrainConfig sets up TrainHead; zero fields take the defaults.
type HeadTrainConfig struct {
	// Objective is MarginalObjective (default, the paper's) or
	// PseudoLabelObjective.
	Objective string
	Epochs    int     // full-batch Adam steps (default 500)
	LR        float64 // Adam learning rate (default 0.01)
	L2        float64 // weight decay (default 1e-4)
	PosWeight float64 // pseudo-labels: weight of positive labels (default: negatives/positives)
}

// TrainHead fits a deferral head to d with full-batch Adam, on the
// marginal likelihood of the references (the Co-LLM paper's objective,
// with the base and assistant frozen: moco trains only the head, where the
// paper also fine-tunes the base) or on the pseudo-labels' weighted
// logistic loss. It starts from zero weights (p = 1/2 everywhere), so it is
// deterministic.
func TrainHead(d *HeadData, cfg HeadTrainConfig) (*Head, error) {
	if len(d.X) == 0 || len(d.X) != len(d.Y) {
		return nil, fmt.Errorf("co-llm head: %d inputs and %d labels", len(d.X), len(d.Y))
	}
	switch cfg.Objective {
	case "":
		cfg.Objective = MarginalObjective
	case MarginalObjective, PseudoLabelObjective:
	default:
		return nil, fmt.Errorf("co-llm head: unknown objective %q (want %s or %s)", cfg.Objective, MarginalObjective, PseudoLabelObjective)
	}
	if cfg.Objective == MarginalObjective && (len(d.LogPBase) != len(d.X) || len(d.LogPAsst) != len(d.X)) {
		return nil, fmt.Errorf("co-llm head: the marginal objective needs both models' log-probabilities at each of the %d positions", len(d.X))
	}
	dim := len(d.X[0])
	var pos float64
	for i, x := range d.X {
		if len(x) != dim {
			return nil, fmt.Errorf("co-llm head: input %d has size %d, want %d", i, len(x), dim)
		}
		pos += d.Y[i]
	}
	if cfg.Epochs <= 0 {
		cfg.Epochs = 500
	}
	if cfg.LR <= 0 {
		cfg.LR = 0.01
	}
	if cfg.L2 == 0 {
		cfg.L2 = 1e-4
	}
	if cfg.PosWeight <= 0 {
		cfg.PosWeight = 1
		if pos > 0 {
			cfg.PosWeight = (float64(len(d.Y)) - pos) / pos
		}
	}
	hd := &Head{W: make([]float64, dim)}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	m, v := make([]float64, dim+1), make([]float64, dim+1)
	for t := 1; t <= cfg.Epochs; t++ {
		var gW []float64
		var gB float64
		if cfg.Objective == MarginalObjective {
			_, gW, gB = hd.MarginalLoss(d, cfg.L2)
		} else {
			_, gW, gB = hd.Loss(d, cfg.PosWeight, cfg.L2)
		}
		c1, c2 := 1-math.Pow(b1, float64(t)), 1-math.Pow(b2, float64(t))
		for j := 0; j <= dim; j++ {
			g := gB
			if j < dim {
				g = gW[j]
			}
			m[j] = b1*m[j] + (1-b1)*g
			v[j] = b2*v[j] + (1-b2)*g*g
			step := cfg.LR * (m[j] / c1) / (math.Sqrt(v[j]/c2) + eps)
			if j < dim {
				hd.W[j] -= step
			} else {
				hd.B -= step
			}
		}
	}
	return hd, nil
}

// HeadPair is one training sequence: a prompt and its reference
// continuation, as token ids.
type HeadPair struct {
	Prompt, Reference []int
}

// CollectHeadData teacher-forces each pair through base and assistant and
// records, at every continuation position, the base's hidden state before
// the reference token, both models' log-probabilities of it, and the
// pseudo-label 1 where the assistant's argmax is the reference token and
// the base's is not (Co-LLM's weak supervision).
func CollectHeadData(base, assistant Session, vocab int, pairs []HeadPair) (*HeadData, error) {
	return CollectHeadDataContext(context.Background(), base, assistant, vocab, pairs)
}

// CollectHeadDataContext is CollectHeadData, stopping with ctx's error
// when ctx is done (checked before each pair).
func CollectHeadDataContext(ctx context.Context, base, assistant Session, vocab int, pairs []HeadPair) (*HeadData, error) {
	d := &HeadData{}
	for k, p := range pairs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(p.Prompt) == 0 {
			return nil, fmt.Errorf("co-llm head: pair %d has an empty prompt", k)
		}
		base.Reset()
		assistant.Reset()
		lb, err := base.Forward(p.Prompt)
		if err != nil {
			return nil, err
		}
		la, err := assistant.Forward(p.Prompt)
		if err != nil {
			return nil, err
		}
		for i, ref := range p.Reference {
			if vocab > 0 {
				lb, la = lb[:vocab], la[:vocab]
			}
			d.X = append(d.X, append([]float32(nil), base.Hidden()...))
			y := 0.0
			if Argmax(la) == ref && Argmax(lb) != ref {
				y = 1
			}
			d.Y = append(d.Y, y)
			if ref < 0 || ref >= len(lb) || ref >= len(la) {
				return nil, fmt.Errorf("co-llm head: pair %d: token %d outside the vocabulary", k, ref)
			}
			d.LogPBase = append(d.LogPBase, LogSoftmaxAt(lb, ref))
			d.LogPAsst = append(d.LogPAsst, LogSoftmaxAt(la, ref))
			if i+1 == len(p.Reference) {
				break
			}
			if lb, err = base.Forward([]int{ref}); err != nil {
				return nil, err
			}
			if la, err = assistant.Forward([]int{ref}); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// Save writes the head as a small safetensors file: "weight" (F32, [dim])
// and "bias" (F32, [1]).
func (hd *Head) Save(path string) error {
	w := make([]byte, 4*len(hd.W))
	for i, x := range hd.W {
		binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(float32(x)))
	}
	b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(hd.B)))
	return safetensors.WriteFile(path, []*safetensors.Tensor{
		{Name: "weight", DType: safetensors.F32, Shape: []int{len(hd.W)}, Data: w},
		{Name: "bias", DType: safetensors.F32, Shape: []int{1}, Data: b},
	}, map[string]string{"format": "moco-deferral-head", "hidden_size": strconv.Itoa(len(hd.W))})
}

// LoadHead reads a head written by Save.
func LoadHead(path string) (*Head, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	get := func(name string) ([]float32, error) {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("%s: not a deferral head (no %q tensor)", path, name)
		}
		x, err := t.F32()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		return x, nil
	}
	w, err := get("weight")
	if err != nil {
		return nil, err
	}
	b, err := get("bias")
	if err != nil {
		return nil, err
	}
	if len(w) == 0 || len(b) != 1 {
		return nil, fmt.Errorf("%s: deferral head needs a non-empty weight and one bias", path)
	}
	hd := &Head{W: make([]float64, len(w)), B: float64(b[0])}
	for i, x := range w {
		hd.W[i] = float64(x)
	}
	return hd, nil
}
