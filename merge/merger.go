package merge

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"

	"github.com/mocolab/moco/safetensors"
)

// Input is one checkpoint taking part in a merge.
type Input struct {
	Name   string             // shown in messages (usually the folder)
	Src    safetensors.Source // its tensors (memory-mapped or in memory)
	Params Params             // per-model parameters (weight, density, ...)
}

// Spec describes a merge: the method, the models, the optional base, and
// the global parameters, which per-model parameters override.
type Spec struct {
	Method string
	Models []Input
	Base   *Input // required by the task-vector methods, slerp, model_stock, expo
	Params Params
	// OutDType is the dtype of the merged floating-point tensors; "" keeps
	// the dtype of the base (or the first model). Arithmetic is in float32
	// with float64 accumulation whatever the dtypes.
	OutDType safetensors.DType
	// TruncateVocab allows inputs whose embedding and head differ in their
	// number of rows (vocabulary size): the merge keeps the common rows.
	TruncateVocab bool
	Seed          uint64
	// ConfigOverrides are set in the output's config.json (passthrough
	// slices set num_hidden_layers).
	ConfigOverrides map[string]any
}

// method describes how a merge method treats its inputs.
type method struct {
	needsBase  bool
	sparsify   string
	consensus  string
	normalize  bool // default of the normalize parameter
	rescale    bool // default of the rescale parameter
	minModels  int
	maxModels  int // 0: no limit
	taskVector bool
}

var methods = map[string]method{
	"linear":           {normalize: true, minModels: 1},
	"task_arithmetic":  {needsBase: true, taskVector: true, minModels: 1},
	"ties":             {needsBase: true, taskVector: true, sparsify: SparsifyMagnitude, consensus: "sum", normalize: true, minModels: 1},
	"dare_linear":      {needsBase: true, taskVector: true, sparsify: SparsifyRandom, rescale: true, minModels: 1},
	"dare_ties":        {needsBase: true, taskVector: true, sparsify: SparsifyRandom, consensus: "sum", rescale: true, minModels: 1},
	"breadcrumbs":      {needsBase: true, taskVector: true, sparsify: SparsifyOutliers, minModels: 1},
	"breadcrumbs_ties": {needsBase: true, taskVector: true, sparsify: SparsifyOutliers, consensus: "sum", minModels: 1},
	"della":            {needsBase: true, taskVector: true, sparsify: SparsifyMagPrune, consensus: "sum", normalize: true, rescale: true, minModels: 1},
	"della_linear":     {needsBase: true, taskVector: true, sparsify: SparsifyMagPrune, rescale: true, minModels: 1},
	"slerp":            {needsBase: true, minModels: 1, maxModels: 1},
	"model_stock":      {needsBase: true, minModels: 2},
	"expo":             {needsBase: true, minModels: 1, maxModels: 1},
}

// Methods returns the names of the merge methods, sorted.
func Methods() []string {
	var s []string
	for k := range methods {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// planned is one output tensor.
type planned struct {
	name  string
	dtype safetensors.DType
	shape []int
	rows  int  // rows kept (vocabulary truncation), or shape[0]
	merge bool // floating point: merged; otherwise copied from the reference
}

// Plan checks that the inputs line up and returns the headers of the output
// in order. Every tensor of the reference model (the base, else the first
// model) must exist in every input with the same shape; embeddings and heads
// may differ in rows only with TruncateVocab.
func (s *Spec) Plan() ([]safetensors.Header, error) {
	ps, err := s.plan()
	if err != nil {
		return nil, err
	}
	hs := make([]safetensors.Header, len(ps))
	for i, p := range ps {
		hs[i] = safetensors.Header{Name: p.name, DType: p.dtype, Shape: p.shape}
	}
	return hs, nil
}

func (s *Spec) check() (method, error) {
	m, ok := methods[s.Method]
	if !ok {
		return m, fmt.Errorf("unknown merge method %q (known: %s)", s.Method, strings.Join(Methods(), ", "))
	}
	if m.needsBase && s.Base == nil {
		return m, fmt.Errorf("%s needs a base model", s.Method)
	}
	n := len(s.Models)
	if n < m.minModels || (m.maxModels > 0 && n > m.maxModels) {
		if m.maxModels == m.minModels {
			return m, fmt.Errorf("%s takes exactly %d model(s) besides the base, got %d", s.Method, m.minModels, n)
		}
		return m, fmt.Errorf("%s needs at least %d model(s) besides the base, got %d", s.Method, m.minModels, n)
	}
	if s.OutDType != "" && s.OutDType != safetensors.F32 && s.OutDType != safetensors.F16 && s.OutDType != safetensors.BF16 {
		return m, fmt.Errorf("output dtype %s: want F32, F16 or BF16", s.OutDType)
	}
	return m, nil
}

func (s *Spec) inputs() []*Input {
	var all []*Input
	if s.Base != nil {
		all = append(all, s.Base)
	}
	for i := range s.Models {
		all = append(all, &s.Models[i])
	}
	return all
}

func (s *Spec) plan() ([]planned, error) {
	if _, err := s.check(); err != nil {
		return nil, err
	}
	all := s.inputs()
	ref := all[0]
	names := append([]string(nil), ref.Src.Names()...)
	sort.Strings(names)
	var out []planned
	for _, name := range names {
		rt, _ := ref.Src.Tensor(name)
		p := planned{name: name, dtype: rt.DType, shape: append([]int(nil), rt.Shape...), merge: isFloat(rt.DType)}
		if len(p.shape) > 0 {
			p.rows = p.shape[0]
		}
		for _, in := range all[1:] {
			t, ok := in.Src.Tensor(name)
			if !ok {
				return nil, fmt.Errorf("tensor %s: missing from %s (architectures differ?)", name, in.Name)
			}
			if !sameShape(t.Shape, rt.Shape) {
				vocab := len(t.Shape) == 2 && len(rt.Shape) == 2 && t.Shape[1] == rt.Shape[1] && isVocabTensor(name)
				if !vocab {
					return nil, fmt.Errorf("tensor %s: shape %v in %s but %v in %s", name, t.Shape, in.Name, rt.Shape, ref.Name)
				}
				if !s.TruncateVocab {
					return nil, fmt.Errorf("tensor %s: %d vocabulary rows in %s but %d in %s (allow truncating to the common vocabulary to merge anyway)",
						name, t.Shape[0], in.Name, rt.Shape[0], ref.Name)
				}
				p.rows = min(p.rows, t.Shape[0])
			}
			if isFloat(t.DType) != p.merge {
				return nil, fmt.Errorf("tensor %s: dtype %s in %s but %s in %s", name, t.DType, in.Name, rt.DType, ref.Name)
			}
		}
		if len(p.shape) > 0 {
			p.shape[0] = p.rows
		}
		if p.merge && s.OutDType != "" {
			p.dtype = s.OutDType
		}
		out = append(out, p)
	}
	for _, in := range all[1:] {
		for _, name := range in.Src.Names() {
			if _, ok := ref.Src.Tensor(name); !ok {
				return nil, fmt.Errorf("tensor %s: in %s but not in %s (architectures differ?)", name, in.Name, ref.Name)
			}
		}
	}
	return out, nil
}

// isVocabTensor reports whether a tensor's rows are vocabulary entries.
func isVocabTensor(name string) bool {
	return strings.Contains(name, "embed_tokens") || strings.Contains(name, "lm_head") || strings.Contains(name, "wte")
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Merge computes the merged tensors one at a time, in the order of Plan, and
// hands each to emit (which may keep it). At most one tensor of each input
// (widened to float32) and the output are held at once. progress, when not
// nil, is called after each tensor. Merge checks ctx before each tensor and
// returns its error once it is cancelled.
func (s *Spec) Merge(ctx context.Context, emit func(t *safetensors.Tensor) error, progress func(done, total int, name string)) error {
	m, err := s.check()
	if err != nil {
		return err
	}
	ps, err := s.plan()
	if err != nil {
		return err
	}
	all := s.inputs()
	nLayers := countLayers(all[0].Src.Names())
	for k, p := range ps {
		if err := ctx.Err(); err != nil {
			return err
		}
		var t *safetensors.Tensor
		if p.merge {
			t, err = s.mergeTensor(m, p, all, nLayers)
		} else {
			rt, _ := all[0].Src.Tensor(p.name)
			t = &safetensors.Tensor{Name: p.name, DType: rt.DType, Shape: p.shape, Data: rt.Data}
		}
		if err != nil {
			return fmt.Errorf("tensor %s: %w", p.name, err)
		}
		if err := emit(t); err != nil {
			return err
		}
		if progress != nil {
			progress(k+1, len(ps), p.name)
		}
	}
	return nil
}

// param looks a parameter up for model in (nil: global only) at a tensor.
func (s *Spec) param(in *Input, key, tensor string, layer, nLayers int, def float64) float64 {
	if in != nil {
		if p, ok := in.Params[key]; ok {
			if v, ok := p.At(tensor, layer, nLayers); ok {
				return v
			}
		}
	}
	if p, ok := s.Params[key]; ok {
		if v, ok := p.At(tensor, layer, nLayers); ok {
			return v
		}
	}
	return def
}

func (s *Spec) flag(key, tensor string, layer, nLayers int, def bool) bool {
	d := 0.0
	if def {
		d = 1
	}
	return s.param(nil, key, tensor, layer, nLayers, d) != 0
}

func (s *Spec) mergeTensor(m method, p planned, all []*Input, nLayers int) (*safetensors.Tensor, error) {
	layer := layerOf(p.name)
	n := 1
	for _, d := range p.shape {
		n *= d
	}
	ts := make([]*safetensors.Tensor, len(all))
	for i, in := range all {
		ts[i], _ = in.Src.Tensor(p.name)
	}
	hasBase := s.Base != nil
	if s.Method == "linear" && hasBase {
		// mergekit's linear ignores base_model unless it is listed.
		ts, hasBase = ts[1:], false
	}
	w := make([]float64, len(s.Models))
	for i := range s.Models {
		w[i] = s.param(&s.Models[i], "weight", p.name, layer, nLayers, 1)
	}
	cols := 0
	if len(p.shape) >= 2 {
		cols = p.shape[len(p.shape)-1]
	}
	var o TaskOptions
	if m.taskVector {
		o = TaskOptions{
			Sparsify:  m.sparsify,
			Consensus: m.consensus,
			Density:   make([]float64, len(s.Models)),
			Gamma:     s.param(nil, "gamma", p.name, layer, nLayers, 0.01),
			Epsilon:   s.param(nil, "epsilon", p.name, layer, nLayers, 0.15),
			Normalize: s.flag("normalize", p.name, layer, nLayers, m.normalize),
			Rescale:   s.flag("rescale", p.name, layer, nLayers, m.rescale),
			RescaleL1: s.param(nil, "rescale_l1", p.name, layer, nLayers, 0) != 0,
			Lambda:    s.param(nil, "lambda", p.name, layer, nLayers, 1),
			Cols:      cols,
			Seed:      s.Seed ^ hashName(p.name),
		}
		for i := range s.Models {
			o.Density[i] = s.param(&s.Models[i], "density", p.name, layer, nLayers, 1)
		}
		if err := o.check(len(s.Models)); err != nil {
			return nil, err
		}
	}

	// Element-wise methods stream through each tensor in chunks.
	switch {
	case s.Method == "linear":
		div := 1.0
		if s.flag("normalize", p.name, layer, nLayers, m.normalize) {
			if div = sum(w); math.Abs(div) < 1e-12 {
				return nil, fmt.Errorf("linear: weights sum to zero, cannot normalize")
			}
		}
		return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			for j := range dst {
				var acc float64
				for i, x := range xs {
					acc += w[i] * float64(x[j])
				}
				dst[j] = float32(acc / div)
			}
		})
	case s.Method == "expo":
		alpha := s.param(nil, "alpha", p.name, layer, nLayers, 0.3)
		return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			src, tgt := xs[0], xs[1]
			for j := range dst {
				t := float64(tgt[j])
				dst[j] = float32(t + alpha*(t-float64(src[j])))
			}
		})
	case m.taskVector && o.elementwise():
		lambda := o.Lambda
		if lambda == 0 {
			lambda = 1 // as TaskMerge
		}
		return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, k int, ds [][]float32) {
			taskChunk(dst, xs[0], xs[1:], w, o, lambda, k, ds)
		})
	}

	// The rest needs whole tensors (ranks, norms, angles).
	xs := make([][]float32, len(ts))
	for i, t := range ts {
		x, err := safetensors.ToF32(t)
		if err != nil {
			return nil, err
		}
		xs[i] = x[:n] // vocabulary truncation keeps the leading rows
	}
	dst := make([]float32, n)
	models := xs
	var base []float32
	if hasBase {
		base, models = xs[0], xs[1:]
	}
	var err error
	switch {
	case m.taskVector:
		err = TaskMerge(dst, base, models, w, o)
	case s.Method == "slerp":
		err = Slerp(dst, base, models[0], s.param(nil, "t", p.name, layer, nLayers, 0.5))
	case s.Method == "model_stock":
		fw := 0
		if s.flag("filter_wise", p.name, layer, nLayers, false) {
			fw = cols
		}
		err = ModelStock(dst, base, models, fw)
	default:
		err = fmt.Errorf("method %s has no tensor rule", s.Method)
	}
	if err != nil {
		return nil, err
	}
	return fromF32(p.name, p.shape, dst, p.dtype)
}

// fromF32 packs float32 values into a tensor of dtype d.
func fromF32(name string, shape []int, x []float32, d safetensors.DType) (*safetensors.Tensor, error) {
	t := &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: f32Bytes(x)}
	if d == safetensors.F32 {
		return t, nil
	}
	return safetensors.Convert(t, d)
}

func hashName(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// MergeToMemory runs the merge and returns the result as an in-memory
// Source, for scoring candidates without touching the disk.
func (s *Spec) MergeToMemory(ctx context.Context) (safetensors.Source, error) {
	var ts []*safetensors.Tensor
	err := s.Merge(ctx, func(t *safetensors.Tensor) error {
		ts = append(ts, t)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return safetensors.NewMemSource(ts), nil
}
