package train

import (
	"fmt"
	"sync"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// Model is a Llama-family model held for training: every weight as a
// dense slice of T under its Hugging Face tensor name. It supports the
// plain pre-norm Llama block (Llama, Mistral without sliding windows,
// SmolLM): no biases, no q/k norms, no soft-capping, SwiGLU, full-width
// default rotary embedding; Check names anything else.
type Model[T Float] struct {
	Config *engine.Config
	// Params maps tensor names to weights ([out, in] for linear maps).
	Params map[string][]T
	// LoRA, when set, adds its adapters to the targeted projections.
	LoRA *LoRA[T]
	// Frozen leaves the base weights without gradients (LoRA training):
	// Backward then fills only the adapters' gradients.
	Frozen bool
	freqs  []float64
	// wt keeps the transposes of frozen float32 weights (name → Wᵀ) for
	// the input gradients dX = dY·W; nil (a Model built as a literal)
	// means none are kept. A caller that changes a frozen weight must
	// not reuse the Model's kept transposes: build a new Model.
	wt *sync.Map
}

// LayerName returns the tensor name of a layer's weight, e.g.
// LayerName(3, "self_attn.q_proj") is
// "model.layers.3.self_attn.q_proj.weight".
func LayerName(l int, module string) string {
	return fmt.Sprintf("model.layers.%d.%s.weight", l, module)
}

// headName is the output head's tensor (the embedding when tied).
func (m *Model[T]) headName() string {
	if m.Config.TieEmbeddings {
		return "model.embed_tokens.weight"
	}
	return "lm_head.weight"
}

// CheckConfig returns an error naming the first feature of c that the
// training forward pass does not implement.
func CheckConfig(c *engine.Config) error {
	switch {
	case c.Norms != "pre":
		return fmt.Errorf("train: norm placement %q not supported (Llama's pre-norm only)", c.Norms)
	case c.QKVBias || c.OBias || c.MLPBias:
		return fmt.Errorf("train: projection biases not supported")
	case c.QKNorm != "":
		return fmt.Errorf("train: q/k norms not supported")
	case c.AttnSoftcap != 0 || c.FinalSoftcap != 0:
		return fmt.Errorf("train: soft-capping not supported")
	case c.Activation != "silu":
		return fmt.Errorf("train: activation %q not supported (silu only)", c.Activation)
	case c.RopeScaling != nil || c.RotaryDim != c.HeadDim:
		return fmt.Errorf("train: rope scaling or partial rotary not supported")
	case c.SlidingWindow > 0:
		return fmt.Errorf("train: sliding-window attention not supported")
	case c.EmbedScale != 1:
		return fmt.Errorf("train: embedding scale not supported")
	case c.FusedQKV || c.FusedGateUp:
		return fmt.Errorf("train: fused projections not supported")
	}
	return nil
}

// shapes lists every trainable tensor's name and element count.
func shapes(c *engine.Config) map[string]int {
	D, F, hd := c.HiddenSize, c.IntermediateSize, c.HeadDim
	q, kv := c.NumHeads*hd, c.NumKVHeads*hd
	s := map[string]int{"model.embed_tokens.weight": c.VocabSize * D, "model.norm.weight": D}
	if !c.TieEmbeddings {
		s["lm_head.weight"] = c.VocabSize * D
	}
	for l := range c.NumLayers {
		for mod, n := range map[string]int{
			"input_layernorm": D, "post_attention_layernorm": D,
			"self_attn.q_proj": q * D, "self_attn.k_proj": kv * D, "self_attn.v_proj": kv * D, "self_attn.o_proj": D * q,
			"mlp.gate_proj": F * D, "mlp.up_proj": F * D, "mlp.down_proj": D * F,
		} {
			s[LayerName(l, mod)] = n
		}
	}
	return s
}

// Load reads a model folder's config and weights (F32, F16 or BF16) into
// a Model[float32].
func Load(dir string) (*Model[float32], error) {
	c, err := engine.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	src, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return FromSource(c, src)
}

// FromSource builds a Model[float32] from a config and a tensor source,
// copying the weights.
func FromSource(c *engine.Config, src safetensors.Source) (*Model[float32], error) {
	if err := CheckConfig(c); err != nil {
		return nil, err
	}
	m := &Model[float32]{Config: c, Params: map[string][]float32{}, freqs: RopeFreqs(c.RopeTheta, c.HeadDim), wt: new(sync.Map)}
	for name, n := range shapes(c) {
		t, ok := src.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("train: tensor %s missing", name)
		}
		if t.NumElements() != n {
			return nil, fmt.Errorf("train: tensor %s has %d elements, want %d", name, t.NumElements(), n)
		}
		v, err := safetensors.ToF32(t)
		if err != nil {
			return nil, fmt.Errorf("train: tensor %s: %w", name, err)
		}
		m.Params[name] = append([]float32(nil), v...)
	}
	return m, nil
}

// NewModel makes a Model over given parameters (tests build float64
// models this way); params must hold every tensor the config needs.
func NewModel[T Float](c *engine.Config, params map[string][]T) (*Model[T], error) {
	if err := CheckConfig(c); err != nil {
		return nil, err
	}
	for name, n := range shapes(c) {
		if len(params[name]) != n {
			return nil, fmt.Errorf("train: tensor %s has %d elements, want %d", name, len(params[name]), n)
		}
	}
	return &Model[T]{Config: c, Params: params, freqs: RopeFreqs(c.RopeTheta, c.HeadDim), wt: new(sync.Map)}, nil
}

// layerActs holds what one block's backward pass needs from its forward.
type layerActs[T Float] struct {
	xIn, a, q, k, v, p, o []T            // attention sublayer: input, normed, projections, probabilities, output
	xMid, b, g, u, h      []T            // MLP sublayer: input, normed, gate, up, SwiGLU
	z                     map[string][]T // x·Aᵀ of each LoRA-adapted projection
	xa, mask              map[string][]T // with LoRA dropout: the adapter's input after dropout, and the mask (0 or 1/(1−p))
}

// Acts is the saved forward state of one sequence.
type Acts[T Float] struct {
	tokens []int
	layers []layerActs[T]
	xFinal []T // residual stream after the last block
	normed []T // after the final norm
	Logits []T // [n, vocab]
}

// Forward runs the model over tokens (positions 0..n-1), keeping what
// Backward needs. It is the engine's forward pass written out again for
// one sequence with no cache.
func (m *Model[T]) Forward(tokens []int) *Acts[T] {
	c, P := m.Config, m.Params
	n, D, F, hd := len(tokens), c.HiddenSize, c.IntermediateSize, c.HeadDim
	qDim, kvDim := c.NumHeads*hd, c.NumKVHeads*hd
	eps, off := T(c.RMSNormEps), T(c.NormOffset)
	attn := Attn{N: n, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: hd}
	acts := &Acts[T]{tokens: tokens, layers: make([]layerActs[T], c.NumLayers)}

	x := make([]T, n*D)
	Embed(x, P["model.embed_tokens.weight"], tokens, D)
	for l := range c.NumLayers {
		w := func(mod string) []T { return P[LayerName(l, mod)] }
		s := &acts.layers[l]
		s.z, s.xa, s.mask = map[string][]T{}, map[string][]T{}, map[string][]T{}

		// Attention: x += o_proj(attn(rope(q), rope(k), v)) of the normed x.
		s.xIn = append([]T(nil), x...)
		s.a = make([]T, n*D)
		RMSNorm(s.a, x, w("input_layernorm"), D, eps, off)
		s.q, s.k, s.v = make([]T, n*qDim), make([]T, n*kvDim), make([]T, n*kvDim)
		m.linear(s, l, "self_attn.q_proj", s.q, s.a, n)
		m.linear(s, l, "self_attn.k_proj", s.k, s.a, n)
		m.linear(s, l, "self_attn.v_proj", s.v, s.a, n)
		Rope(s.q, n, c.NumHeads, hd, m.freqs, 0)
		Rope(s.k, n, c.NumKVHeads, hd, m.freqs, 0)
		s.o, s.p = make([]T, n*qDim), make([]T, c.NumHeads*n*n)
		AttnForward(attn, s.o, s.p, s.q, s.k, s.v)
		m.addLinear(s, l, "self_attn.o_proj", x, s.o, n)

		// MLP: x += down(silu(gate(b)) * up(b)) of the normed x.
		s.xMid = append([]T(nil), x...)
		s.b = make([]T, n*D)
		RMSNorm(s.b, x, w("post_attention_layernorm"), D, eps, off)
		s.g, s.u, s.h = make([]T, n*F), make([]T, n*F), make([]T, n*F)
		m.linear(s, l, "mlp.gate_proj", s.g, s.b, n)
		m.linear(s, l, "mlp.up_proj", s.u, s.b, n)
		SwiGLU(s.h, s.g, s.u)
		m.addLinear(s, l, "mlp.down_proj", x, s.h, n)
	}
	acts.xFinal = x
	acts.normed = make([]T, n*D)
	RMSNorm(acts.normed, x, P["model.norm.weight"], D, eps, off)
	acts.Logits = make([]T, n*c.VocabSize)
	Linear(acts.Logits, acts.normed, P[m.headName()], n, D, c.VocabSize)
	return acts
}

// linear computes y = x·Wᵀ for a block's projection, plus the LoRA
// update Scale·(x·Aᵀ)·Bᵀ when the projection is adapted (x·Aᵀ is kept
// for the backward pass).
func (m *Model[T]) linear(s *layerActs[T], l int, path string, y, x []T, n int) {
	in, out := m.dims(path)
	name := LayerName(l, path)
	Linear(y, x, m.Params[name], n, in, out)
	if m.LoRA == nil || m.LoRA.A[name] == nil {
		return
	}
	r := m.LoRA.R
	if mask := m.LoRA.dropMask(n * in); mask != nil {
		xa := make([]T, n*in)
		for i, v := range x {
			xa[i] = v * mask[i]
		}
		x, s.xa[name], s.mask[name] = xa, xa, mask
	}
	z, up := make([]T, n*r), make([]T, n*out)
	Linear(z, x, m.LoRA.A[name], n, in, r)
	Linear(up, z, m.LoRA.B[name], n, r, out)
	for i, v := range up {
		y[i] += m.LoRA.Scale * v
	}
	s.z[name] = z
}

// addLinear adds linear's output into y (a residual branch).
func (m *Model[T]) addLinear(s *layerActs[T], l int, path string, y, x []T, n int) {
	_, out := m.dims(path)
	tmp := make([]T, n*out)
	m.linear(s, l, path, tmp, x, n)
	for i, v := range tmp {
		y[i] += v
	}
}

// linearBackward is linear's backward: dx += dy·W (+ the adapter's path)
// and the gradients of W (unless frozen) and of A and B, which go under
// PEFT's names (peftName).
func (m *Model[T]) linearBackward(s *layerActs[T], l int, path string, dx, dy, x []T, n int, g func(string, int) []T) {
	in, out := m.dims(path)
	name := LayerName(l, path)
	m.weightBackward(name, dx, dy, x, n, in, out, g)
	if m.LoRA == nil || m.LoRA.A[name] == nil {
		return
	}
	// y_lora = Scale·z·Bᵀ with z = x·Aᵀ.
	r := m.LoRA.R
	sdy := make([]T, len(dy))
	for i, v := range dy {
		sdy[i] = m.LoRA.Scale * v
	}
	dz := make([]T, n*r)
	LinearBackward(dz, g(peftName(name, "B"), out*r), sdy, s.z[name], m.LoRA.B[name], n, r, out)
	mask := s.mask[name]
	if mask == nil {
		LinearBackward(dx, g(peftName(name, "A"), r*in), dz, x, m.LoRA.A[name], n, in, r)
		return
	}
	// Dropout scaled the adapter's input: x_a = x∘mask.
	dxa := make([]T, n*in)
	LinearBackward(dxa, g(peftName(name, "A"), r*in), dz, s.xa[name], m.LoRA.A[name], n, in, r)
	for i, v := range dxa {
		dx[i] += v * mask[i]
	}
}

// weightBackward is LinearBackward for the base weight under name: dx +=
// dy·W, and dW += dyᵀ·x unless the base is frozen. A frozen float32
// weight's product uses its transpose, made on first use and kept, so the
// backward pass runs the kernels' y = x·Wᵀ form without transposing W
// again for every sequence.
func (m *Model[T]) weightBackward(name string, dx, dy, x []T, n, in, out int, g func(string, int) []T) {
	w := m.Params[name]
	if !m.Frozen {
		LinearBackward(dx, g(name, in*out), dy, x, w, n, in, out)
		return
	}
	w32, ok := as32(w)
	if !ok || m.wt == nil {
		LinearBackward(dx, nil, dy, x, w, n, in, out)
		return
	}
	v, ok := m.wt.Load(name)
	if !ok {
		t := make([]float32, len(w32))
		kernels.Transpose(t, w32, out, in)
		v, _ = m.wt.LoadOrStore(name, t)
	}
	dx32, _ := as32(dx)
	dy32, _ := as32(dy)
	kernels.MatMulAdd(dx32, v.([]float32), dy32, n, in, out)
}

// Backward adds into grads (tensor name → gradient, allocated here when
// missing) the gradient of a loss whose gradient with respect to the
// logits is dlogits, for every weight of the model.
func (m *Model[T]) Backward(acts *Acts[T], dlogits []T, grads map[string][]T) {
	c, P := m.Config, m.Params
	n, D, F, hd := len(acts.tokens), c.HiddenSize, c.IntermediateSize, c.HeadDim
	qDim, kvDim := c.NumHeads*hd, c.NumKVHeads*hd
	eps, off := T(c.RMSNormEps), T(c.NormOffset)
	attn := Attn{N: n, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: hd}
	g := func(name string, size int) []T {
		if grads[name] == nil {
			grads[name] = make([]T, size)
		}
		return grads[name]
	}
	// gw is a base weight's gradient, nil when the base is frozen.
	gw := func(name string) []T {
		if m.Frozen {
			return nil
		}
		return g(name, len(P[name]))
	}

	// Head and final norm.
	dNormed := make([]T, n*D)
	m.weightBackward(m.headName(), dNormed, dlogits, acts.normed, n, D, c.VocabSize, g)
	dx := make([]T, n*D) // gradient of the residual stream
	RMSNormBackward(dx, gw("model.norm.weight"), dNormed, acts.xFinal, P["model.norm.weight"], D, eps, off)

	for l := c.NumLayers - 1; l >= 0; l-- {
		w := func(mod string) []T { return P[LayerName(l, mod)] }
		gl := func(mod string) []T { return gw(LayerName(l, mod)) }
		s := &acts.layers[l]

		// MLP: the residual passes dx through and the branch adds to it.
		dh := make([]T, n*F)
		m.linearBackward(s, l, "mlp.down_proj", dh, dx, s.h, n, g)
		dg, du := make([]T, n*F), make([]T, n*F)
		SwiGLUBackward(dg, du, dh, s.g, s.u)
		db := make([]T, n*D)
		m.linearBackward(s, l, "mlp.gate_proj", db, dg, s.b, n, g)
		m.linearBackward(s, l, "mlp.up_proj", db, du, s.b, n, g)
		RMSNormBackward(dx, gl("post_attention_layernorm"), db, s.xMid, w("post_attention_layernorm"), D, eps, off)

		// Attention.
		do := make([]T, n*qDim)
		m.linearBackward(s, l, "self_attn.o_proj", do, dx, s.o, n, g)
		dq, dk, dv := make([]T, n*qDim), make([]T, n*kvDim), make([]T, n*kvDim)
		AttnBackward(attn, dq, dk, dv, do, s.p, s.q, s.k, s.v)
		RopeBackward(dq, n, c.NumHeads, hd, m.freqs, 0)
		RopeBackward(dk, n, c.NumKVHeads, hd, m.freqs, 0)
		da := make([]T, n*D)
		m.linearBackward(s, l, "self_attn.q_proj", da, dq, s.a, n, g)
		m.linearBackward(s, l, "self_attn.k_proj", da, dk, s.a, n, g)
		m.linearBackward(s, l, "self_attn.v_proj", da, dv, s.a, n, g)
		RMSNormBackward(dx, gl("input_layernorm"), da, s.xIn, w("input_layernorm"), D, eps, off)
	}
	if !m.Frozen {
		EmbedBackward(gw("model.embed_tokens.weight"), dx, acts.tokens, D)
	}
}

// Loss runs Forward and Backward for one sequence with next-token targets
// (targets[t] is the token expected after position t; negative targets
// are not scored) and returns the mean loss over scored positions.
func (m *Model[T]) Loss(tokens, targets []int, grads map[string][]T) (float64, int) {
	acts := m.Forward(tokens)
	var dl []T
	if grads != nil {
		dl = make([]T, len(acts.Logits))
	}
	loss, count := CrossEntropy(dl, acts.Logits, targets, m.Config.VocabSize)
	if grads != nil && count > 0 {
		m.Backward(acts, dl, grads)
	}
	return loss, count
}
