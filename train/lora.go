package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mocolab/moco/safetensors"
)

// LoRA is a set of low-rank adapters: for each targeted weight W [out,
// in], A [r, in] and B [out, r], applied as y = x·Wᵀ + Scale·(x·Aᵀ)·Bᵀ
// (PEFT's LoRA with fan_in_fan_out false). Maps are keyed by the base
// tensor's name ("model.layers.0.self_attn.q_proj.weight").
//
// Dropout is PEFT's lora_dropout: while training, the adapter's input x
// (not the base weight's) has each element zeroed with probability
// Dropout and the rest scaled by 1/(1−Dropout) (torch.nn.Dropout), so
// y = x·Wᵀ + Scale·(dropout(x)·Aᵀ)·Bᵀ. It applies only while DropRNG is
// set (training); with DropRNG nil the adapter is in evaluation mode.
type LoRA[T Float] struct {
	R       int
	Alpha   float64
	Scale   T        // Alpha/R, or Alpha/√R with rsLoRA
	Modules []string // target module names, e.g. "q_proj"
	A, B    map[string][]T
	Dropout float64
	// DropRNG draws the dropout masks, in the order the forward pass
	// meets the adapters; a checkpoint saves its state.
	DropRNG *rand.PCG
}

// dropMask returns a fresh dropout mask of n elements (0 or
// 1/(1−Dropout)), or nil when dropout is off.
func (lo *LoRA[T]) dropMask(n int) []T {
	if lo.Dropout <= 0 || lo.DropRNG == nil {
		return nil
	}
	r := rand.New(lo.DropRNG)
	keep := T(1 / (1 - lo.Dropout))
	mask := make([]T, n)
	for i := range mask {
		if r.Float64() >= lo.Dropout {
			mask[i] = keep
		}
	}
	return mask
}

// peftName is PEFT's name for a base tensor's lora_A or lora_B.
func peftName(base, which string) string {
	return "base_model.model." + strings.TrimSuffix(base, ".weight") + ".lora_" + which + ".weight"
}

// modulePath maps a target module name to its place in a block.
var modulePath = map[string]string{
	"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
	"gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj",
}

// moduleOrder lists the modules of modulePath in a block's order.
var moduleOrder = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LoadLoRA reads a PEFT adapter folder (adapter_config.json and
// adapter_model.safetensors) for m's shapes. target_modules may be a list
// of module names or, as PEFT also writes it, a string (a regular
// expression over module paths, or "all-linear"); either way the file's
// tensors must be the A and B matrices of the supported modules in every
// layer, and nothing else: modules_to_save, embedding adapters and
// adapters on some layers only are refused, not silently dropped.
func LoadLoRA(dir string, m *Model[float32]) (*LoRA[float32], error) {
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, err
	}
	var cfg struct {
		PeftType      string          `json:"peft_type"`
		Dropout       float64         `json:"lora_dropout"`
		R             int             `json:"r"`
		Alpha         float64         `json:"lora_alpha"`
		RSLoRA        bool            `json:"use_rslora"`
		FanInOut      bool            `json:"fan_in_fan_out"`
		Targets       json.RawMessage `json:"target_modules"`
		ModulesToSave []string        `json:"modules_to_save"`
		DoRA          bool            `json:"use_dora"`
		Bias          string          `json:"bias"`
		// Per-module ranks and alphas change a module's scale.
		RankPattern  map[string]json.RawMessage `json:"rank_pattern"`
		AlphaPattern map[string]json.RawMessage `json:"alpha_pattern"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "adapter_config.json"), err)
	}
	if cfg.PeftType != "LORA" || cfg.R <= 0 || cfg.FanInOut {
		return nil, fmt.Errorf("%s: want a LORA adapter with r > 0 and fan_in_fan_out false", dir)
	}
	if cfg.DoRA || cfg.Bias != "" && cfg.Bias != "none" || len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0 {
		return nil, fmt.Errorf("%s: want plain LoRA: DoRA (use_dora), trained biases (bias) and per-module ranks or alphas (rank_pattern, alpha_pattern) are not supported", dir)
	}
	if len(cfg.ModulesToSave) > 0 {
		return nil, fmt.Errorf("%s: modules_to_save %v: adapters that also store whole modules are not supported", dir, cfg.ModulesToSave)
	}
	// A list names the modules; a string selects them by a pattern that
	// the tensors, checked below, stand for.
	var listed []string
	if err := json.Unmarshal(cfg.Targets, &listed); len(cfg.Targets) > 0 && err != nil {
		var pattern string
		if json.Unmarshal(cfg.Targets, &pattern) != nil || pattern == "" {
			return nil, fmt.Errorf("%s: target_modules: want a list of module names or a string, got %s", dir, cfg.Targets)
		}
	}
	for _, mod := range listed {
		if _, ok := modulePath[mod]; !ok {
			return nil, fmt.Errorf("%s: target module %q not supported", dir, mod)
		}
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := m.Config
	moduleOf := map[string]string{} // PEFT tensor name -> module
	for l := range c.NumLayers {
		for mod, path := range modulePath {
			for _, which := range []string{"A", "B"} {
				moduleOf[peftName(LayerName(l, path), which)] = mod
			}
		}
	}
	present := map[string]bool{}
	for _, name := range f.Names() {
		mod, ok := moduleOf[name]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is not the LoRA A or B matrix of a layer's %s: moco cannot apply it", dir, name, strings.Join(moduleOrder, ", "))
		}
		if listed != nil && !slices.Contains(listed, mod) {
			return nil, fmt.Errorf("%s: tensor %s: %s is not among target_modules %v", dir, name, mod, listed)
		}
		present[mod] = true
	}
	targets := listed
	if targets == nil {
		for _, mod := range moduleOrder {
			if present[mod] {
				targets = append(targets, mod)
			}
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%s: no LoRA matrices", dir)
	}
	lo := &LoRA[float32]{R: cfg.R, Alpha: cfg.Alpha, Modules: targets, Dropout: cfg.Dropout, A: map[string][]float32{}, B: map[string][]float32{}}
	lo.Scale = float32(cfg.Alpha / float64(cfg.R))
	if cfg.RSLoRA {
		lo.Scale = float32(cfg.Alpha / math.Sqrt(float64(cfg.R)))
	}
	for l := range c.NumLayers {
		for _, mod := range targets {
			path := modulePath[mod]
			base := LayerName(l, path)
			in, out := m.dims(path)
			for _, which := range []string{"A", "B"} {
				t, ok := f.Tensor(peftName(base, which))
				if !ok {
					return nil, fmt.Errorf("%s: tensor %s missing (moco adapts a module in every layer)", dir, peftName(base, which))
				}
				want := cfg.R * in
				if which == "B" {
					want = out * cfg.R
				}
				if t.NumElements() != want {
					return nil, fmt.Errorf("%s: tensor %s has %d elements, want %d", dir, t.Name, t.NumElements(), want)
				}
				v, err := safetensors.ToF32(t)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", t.Name, err)
				}
				v = append([]float32(nil), v...)
				if which == "A" {
					lo.A[base] = v
				} else {
					lo.B[base] = v
				}
			}
		}
	}
	return lo, nil
}

// dims returns a block module's input and output widths.
func (m *Model[T]) dims(path string) (in, out int) {
	c := m.Config
	D, F := c.HiddenSize, c.IntermediateSize
	q, kv := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	switch path {
	case "self_attn.q_proj":
		return D, q
	case "self_attn.k_proj", "self_attn.v_proj":
		return D, kv
	case "self_attn.o_proj":
		return q, D
	case "mlp.gate_proj", "mlp.up_proj":
		return D, F
	case "mlp.down_proj":
		return F, D
	}
	panic("train: unknown module " + path)
}
