package merge

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mocolab/moco/safetensors"
)

// Adapter is a PEFT LoRA adapter: for each target weight W (out x in) a pair
// A (r x in) and B (out x r), applied as W + (alpha/r) * B @ A.
type Adapter struct {
	Dir     string
	R       int
	Alpha   float64
	Scale   float64              // alpha/r, or alpha/sqrt(r) with use_rslora
	Targets []string             // base tensor names, sorted
	A, B    map[string][]float32 // by base tensor name
	shapeA  map[string][2]int
}

// LoadAdapter reads adapter_config.json and adapter_model.safetensors.
func LoadAdapter(dir string) (*Adapter, error) {
	b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, err
	}
	var cfg struct {
		PeftType string  `json:"peft_type"`
		R        int     `json:"r"`
		Alpha    float64 `json:"lora_alpha"`
		RSLoRA   bool    `json:"use_rslora"`
		FanInOut bool    `json:"fan_in_fan_out"`
		DoRA     bool    `json:"use_dora"`
		Bias     string  `json:"bias"`
		// Per-module ranks and alphas change a module's scale.
		RankPattern  map[string]json.RawMessage `json:"rank_pattern"`
		AlphaPattern map[string]json.RawMessage `json:"alpha_pattern"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s/adapter_config.json: %w", dir, err)
	}
	if cfg.PeftType != "" && cfg.PeftType != "LORA" {
		return nil, fmt.Errorf("%s: peft_type %s, want LORA", dir, cfg.PeftType)
	}
	if cfg.R <= 0 || cfg.FanInOut {
		return nil, fmt.Errorf("%s: unsupported adapter (r=%d, fan_in_fan_out=%v)", dir, cfg.R, cfg.FanInOut)
	}
	switch {
	case cfg.DoRA:
		return nil, fmt.Errorf("%s: a DoRA adapter (use_dora); only plain LoRA is supported", dir)
	case cfg.Bias != "" && cfg.Bias != "none":
		return nil, fmt.Errorf("%s: bias %q: adapters that train biases are not supported", dir, cfg.Bias)
	case len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0:
		return nil, fmt.Errorf("%s: per-module ranks or alphas (rank_pattern, alpha_pattern) are not supported", dir)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a := &Adapter{Dir: dir, R: cfg.R, Alpha: cfg.Alpha, Scale: cfg.Alpha / float64(cfg.R),
		A: map[string][]float32{}, B: map[string][]float32{}, shapeA: map[string][2]int{}}
	if cfg.RSLoRA {
		a.Scale = cfg.Alpha / math.Sqrt(float64(cfg.R))
	}
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		var target string
		var isA bool
		switch {
		case strings.HasSuffix(name, ".lora_A.weight"):
			target, isA = strings.TrimSuffix(name, ".lora_A.weight")+".weight", true
		case strings.HasSuffix(name, ".lora_B.weight"):
			target = strings.TrimSuffix(name, ".lora_B.weight") + ".weight"
		default:
			return nil, fmt.Errorf("%s: tensor %s is not a LoRA A or B matrix", dir, name)
		}
		target = strings.TrimPrefix(target, "base_model.model.")
		if len(t.Shape) != 2 || isA && t.Shape[0] != cfg.R || !isA && t.Shape[1] != cfg.R {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, want a matrix of rank r = %d", dir, name, t.Shape, cfg.R)
		}
		x, err := safetensors.ToF32(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		x = append([]float32(nil), x...) // the file closes
		if isA {
			a.A[target] = x
			a.shapeA[target] = [2]int{t.Shape[0], t.Shape[1]}
		} else {
			a.B[target] = x
		}
	}
	for t := range a.A {
		if a.B[t] == nil {
			return nil, fmt.Errorf("%s: %s has lora_A but no lora_B", dir, t)
		}
		a.Targets = append(a.Targets, t)
	}
	if len(a.Targets) != len(a.B) {
		return nil, fmt.Errorf("%s: lora_B without lora_A", dir)
	}
	sort.Strings(a.Targets)
	return a, nil
}

// ApplyLoRA composes adapters with weights w (LoraHub: A = sum w_i A_i,
// B = sum w_i B_i) and returns base with W += scale * B @ A for every
// target, as a Source whose changed tensors live in memory (in the base's
// dtype) and whose others alias base. One adapter with weight 1 is the plain
// merge of an adapter into its base model.
func ApplyLoRA(base safetensors.Source, adapters []*Adapter, w []float64) (safetensors.Source, error) {
	if len(adapters) == 0 || len(w) != len(adapters) {
		return nil, fmt.Errorf("%d weights for %d adapters", len(w), len(adapters))
	}
	ref := adapters[0]
	for _, a := range adapters[1:] {
		if a.R != ref.R || a.Scale != ref.Scale || strings.Join(a.Targets, ",") != strings.Join(ref.Targets, ",") {
			return nil, fmt.Errorf("adapters %s and %s differ in rank, alpha or target modules", ref.Dir, a.Dir)
		}
	}
	over := map[string]*safetensors.Tensor{}
	for _, name := range ref.Targets {
		t, ok := base.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("adapter target %s is not in the base model", name)
		}
		sa := ref.shapeA[name]
		r, in := sa[0], sa[1]
		if len(t.Shape) != 2 || t.Shape[1] != in || len(ref.B[name]) != t.Shape[0]*r {
			return nil, fmt.Errorf("tensor %s: shape %v does not fit the adapter (A %dx%d, B %dx%d)", name, t.Shape, r, in, len(ref.B[name])/max(r, 1), r)
		}
		out := t.Shape[0]
		for _, a := range adapters[1:] {
			if a.shapeA[name] != sa || len(a.B[name]) != len(ref.B[name]) {
				return nil, fmt.Errorf("adapters %s and %s differ in the shape of %s (A %v and %v): made for different models?", ref.Dir, a.Dir, name, sa, a.shapeA[name])
			}
		}
		A := make([]float32, r*in)
		B := make([]float32, out*r)
		for i, a := range adapters {
			wi := float32(w[i])
			for j, v := range a.A[name] {
				A[j] += wi * v
			}
			for j, v := range a.B[name] {
				B[j] += wi * v
			}
		}
		x, err := safetensors.ToF32(t)
		if err != nil {
			return nil, err
		}
		W := append([]float32(nil), x...)
		s := float32(ref.Scale)
		for o := 0; o < out; o++ {
			row := W[o*in : (o+1)*in]
			for k := 0; k < r; k++ {
				c := s * B[o*r+k]
				if c == 0 {
					continue
				}
				ak := A[k*in : (k+1)*in]
				for j := range row {
					row[j] += c * ak[j]
				}
			}
		}
		nt, err := fromF32(name, t.Shape, W, t.DType)
		if err != nil {
			return nil, err
		}
		over[name] = nt
	}
	return &overlay{base: base, over: over}, nil
}

// overlay is a Source that replaces some tensors of a base Source.
type overlay struct {
	base safetensors.Source
	over map[string]*safetensors.Tensor
}

func (o *overlay) Tensor(name string) (*safetensors.Tensor, bool) {
	if t, ok := o.over[name]; ok {
		return t, true
	}
	return o.base.Tensor(name)
}

func (o *overlay) Names() []string { return o.base.Names() }

// Release passes b on to the base (safetensors.Release): the tensors the
// overlay does not replace are the base's.
func (o *overlay) Release(b []byte) { safetensors.Release(o.base, b) }

// Close does not close the base, which the caller owns.
func (o *overlay) Close() error { return nil }
