package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mocolab/moco/internal/atomicfile"
	"github.com/mocolab/moco/safetensors"
)

// AdamW is PyTorch's torch.optim.AdamW (decoupled weight decay, bias-
// corrected moments): per step t, for parameter θ with gradient g,
//
//	θ ← θ·(1 − lr·wd)
//	m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	θ ← θ − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)
//
// The weight decay skips biases and normalisation weights, as Hugging
// Face's Trainer (and so TRL) groups the parameters it hands AdamW (see
// decays). The zero value is not usable; NewAdamW sets PyTorch's defaults.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Step                           int
	M, V                           map[string][]float32
}

// NewAdamW returns AdamW with PyTorch's defaults (β 0.9, 0.999, eps 1e-8)
// and the given weight decay (PyTorch's default is 0.01).
func NewAdamW(weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay,
		M: map[string][]float32{}, V: map[string][]float32{}}
}

// Update applies one step with learning rate lr to every parameter that
// has a gradient (params and grads keyed alike), in sorted name order.
func (o *AdamW) Update(params, grads map[string][]float32, lr float64) {
	o.Step++
	c1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	c2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	for _, name := range sortedKeys(grads) {
		p, g := params[name], grads[name]
		if o.M[name] == nil {
			o.M[name], o.V[name] = make([]float32, len(p)), make([]float32, len(p))
		}
		m, v := o.M[name], o.V[name]
		wd := o.WeightDecay
		if !decays(name) {
			wd = 0
		}
		for i := range p {
			gi := float64(g[i])
			x := float64(p[i]) * (1 - lr*wd)
			mi := o.Beta1*float64(m[i]) + (1-o.Beta1)*gi
			vi := o.Beta2*float64(v[i]) + (1-o.Beta2)*gi*gi
			m[i], v[i] = float32(mi), float32(vi)
			p[i] = float32(x - lr*(mi/c1)/(math.Sqrt(vi/c2)+o.Eps))
		}
	}
}

// noDecay are the name patterns of Hugging Face's Trainer's
// get_decay_parameter_names, matched against the lower-cased name.
var noDecay = regexp.MustCompile(`bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)`)

// decays tells whether AdamW's weight decay applies to the named
// parameter: not to biases and normalisation weights (input_layernorm,
// post_attention_layernorm, model.norm), as Hugging Face's Trainer
// decides it; LoRA's matrices, the projections and the embeddings decay.
func decays(name string) bool { return !noDecay.MatchString(strings.ToLower(name)) }

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// CosineLR is the learning rate at step (0-based) of total steps: linear
// warm-up from 0 over warmup steps, then cosine decay to 0 (transformers'
// get_cosine_schedule_with_warmup).
func CosineLR(peak float64, step, warmup, total int) float64 {
	if step < warmup {
		return peak * float64(step) / float64(max(1, warmup))
	}
	progress := float64(step-warmup) / float64(max(1, total-warmup))
	return peak * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
}

// ClipGradNorm scales every gradient down so that their global L2 norm is
// at most maxNorm (torch.nn.utils.clip_grad_norm_, factor
// maxNorm/(norm+1e-6) when norm exceeds it) and returns the norm before
// clipping. maxNorm <= 0 clips nothing, as in Hugging Face's Trainer
// (max_grad_norm 0), rather than zeroing every gradient.
func ClipGradNorm(grads map[string][]float32, maxNorm float64) float64 {
	var ss float64
	for _, name := range sortedKeys(grads) { // fixed order: a seed reproduces the norm bit for bit
		for _, v := range grads[name] {
			ss += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(ss)
	if c := maxNorm / (norm + 1e-6); maxNorm > 0 && c < 1 {
		for _, g := range grads {
			for i := range g {
				g[i] = float32(float64(g[i]) * c)
			}
		}
	}
	return norm
}

// Params returns the adapters' matrices under PEFT's names: the map an
// optimizer updates (the slices alias the adapter's).
func (lo *LoRA[T]) Params() map[string][]T {
	p := map[string][]T{}
	for base, a := range lo.A {
		p[peftName(base, "A")] = a
		p[peftName(base, "B")] = lo.B[base]
	}
	return p
}

// SaveLoRA writes a PEFT adapter folder (adapter_config.json and
// adapter_model.safetensors, F32, PEFT's tensor names), each file
// atomically. baseModel is recorded as base_model_name_or_path.
func SaveLoRA(dir string, lo *LoRA[float32], m *Model[float32], baseModel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var tensors []*safetensors.Tensor
	for _, name := range sortedKeys(lo.A) {
		in, out := m.dims(modulePathOf(name))
		for _, which := range []string{"A", "B"} {
			v, shape := lo.A[name], []int{lo.R, in}
			if which == "B" {
				v, shape = lo.B[name], []int{out, lo.R}
			}
			data := make([]byte, 4*len(v))
			for i, x := range v {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
			}
			tensors = append(tensors, &safetensors.Tensor{Name: peftName(name, which), DType: safetensors.F32, Shape: shape, Data: data})
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": baseModel,
		"r": lo.R, "lora_alpha": lo.Alpha, "target_modules": lo.Modules, "lora_dropout": lo.Dropout,
		"bias": "none", "fan_in_fan_out": false, "inference_mode": true,
	}
	b, err := json.MarshalIndent(cfg, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "adapter_config.json"), append(b, '\n'))
}

// modulePathOf returns "self_attn.q_proj" for
// "model.layers.3.self_attn.q_proj.weight".
func modulePathOf(base string) string {
	for _, p := range modulePath {
		if len(base) > len(p)+7 && base[len(base)-len(p)-7:len(base)-7] == p {
			return p
		}
	}
	panic(fmt.Sprintf("train: %s is not a block projection", base))
}
