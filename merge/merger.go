package merge

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/mocolab/moco/internal/hugemem"
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
	Base   *Input // required by the task-vector methods, slerp, model_stock, expo, sce, arcee_fusion, nearswap, ram
	// Slices, when set, replace Models and Base: the output's layers are
	// the slices' layers in order (mergekit's slices:), see Slice.
	Slices []Slice
	Params Params
	// OutDType is the dtype of the merged floating-point tensors; "" keeps
	// the dtype of the base (or the first model). Arithmetic is in float32
	// with float64 accumulation whatever the dtypes.
	OutDType safetensors.DType
	// TruncateVocab allows inputs whose embedding and head differ in their
	// number of rows (vocabulary size): the merge keeps the common rows.
	TruncateVocab bool
	// RequireParams makes a parameter that mergekit requires an error when
	// no level sets it for a tensor, as mergekit's is (Config.Open sets
	// it): slerp's and nearswap's t, and the weight of each model besides
	// the base for linear, the task-vector methods, nuslerp and
	// multislerp. Otherwise slerp's t defaults to 0.5 and weights to 1
	// (nearswap needs t, nuslerp and multislerp every weight, either way).
	RequireParams bool
	Seed          uint64
	// ConfigOverrides are set in the output's config.json by WriteFolder
	// (which also sets num_hidden_layers to the layers that slices make).
	ConfigOverrides map[string]any

	pool *bufPool     // output buffers recycled by WriteFolder (nil: none)
	in   *inputReader // reads WriteFolder's inputs (nil: in place)
	// part, set by WriteFolder, takes the pieces of a large merged tensor
	// in order (see outBuf); nil: tensors are emitted whole.
	part func(name string, data []byte) error
}

// bufPool hands out the output buffers of the streaming merges from one
// region of memory, advised for huge pages, that WriteFolder sizes at
// twice the largest tensor, and takes them back once written. A buffer
// from the Go heap cost a page fault per 4 KB when fresh (the kernel
// zeroes each page) and the heap's own clearing when reused: more CPU time
// than the merge arithmetic of a bf16 tensor (narrowing into fresh heap
// buffers took 1.9 of dare_ties' 4.3 CPU seconds on a 0.5B model). Each
// buffer goes to the lowest offset where it fits (first fit), so once the
// first large tensor (the embeddings) is written, the tensors behind it
// reuse its pages, mapped and hot, and the region's touched part stays
// near the largest tensor plus what waits for the writer. When nothing
// fits, get falls back to the heap.
type bufPool struct {
	mu   sync.Mutex
	mem  []byte       // the region (nil: every buffer from the heap)
	rel  func() error // unmaps mem
	live []span       // buffers handed out and not yet returned, by offset
}

// span is a buffer of the region: bytes [off, end).
type span struct{ off, end int }

// bufAlign is the alignment of the buffers within the region.
const bufAlign = 64

// newBufPool returns a pool with a region of size bytes (0: none).
func newBufPool(size int) *bufPool {
	bp := &bufPool{}
	if size > 0 {
		if mem, rel, err := hugemem.Alloc(size); err == nil {
			bp.mem, bp.rel = mem, rel
		}
	}
	return bp
}

// get returns a buffer of n bytes (contents undefined).
func (bp *bufPool) get(n int) []byte {
	if bp == nil || n == 0 {
		return make([]byte, n)
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	at, i := 0, 0
	for ; i < len(bp.live) && bp.live[i].off-at < n; i++ {
		at = (bp.live[i].end + bufAlign - 1) &^ (bufAlign - 1)
	}
	if at+n > len(bp.mem) {
		return make([]byte, n)
	}
	bp.live = slices.Insert(bp.live, i, span{at, at + n})
	return bp.mem[at : at+n : at+n]
}

// put takes back a buffer get returned; other slices are ignored.
func (bp *bufPool) put(b []byte) {
	if bp == nil || cap(b) == 0 || len(bp.mem) == 0 {
		return
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(bp.mem))))
	if off < 0 || off >= len(bp.mem) { // wrapped around when below
		return
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	for i, sp := range bp.live {
		if sp.off == off {
			bp.live = slices.Delete(bp.live, i, i+1)
			return
		}
	}
}

// release unmaps the region; no buffer of it may be used afterwards.
func (bp *bufPool) release() {
	if bp == nil || bp.rel == nil {
		return
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.rel()
	bp.mem, bp.rel, bp.live = nil, nil, nil
}

// Slice is one output slice of mergekit's slices: syntax: its output layers
// follow those of the slices before it, and output layer k of the slice
// merges layer From+k of every source with the Spec's method. All sources
// span the same number of layers. The tensors outside the layers come from
// the first slice's sources (embeddings: names with "embed" or "wte") or
// the last slice's (final norm, head), merged the same way. A slice with a
// single source and the passthrough method copies layers: a frankenmerge.
type Slice struct {
	Sources []SliceSource
	Base    int    // index of the base model among Sources; -1: none
	Params  Params // the slice's parameters: above the Spec's, below the sources' own
}

// SliceSource is one model's layer range in a Slice: layers [From, To).
// Its Params are the model's parameters within the slice.
type SliceSource struct {
	Input
	From, To int
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
	params     []string // parameter names the method reads (global or per model)
	// required are the parameters mergekit requires (required=True):
	// weight for each model besides the base, the others merge-wide.
	required []string
	// noDefault are required parameters that moco has no default for
	// either: a Spec built in Go must set them too (nearswap's t, a
	// distance on the weights' scale).
	noDefault []string
}

// Parameter names of the task-vector family, as mergekit's generalized
// task arithmetic (int8_mask is accepted and has no effect here).
var taskParams = []string{"weight", "density", "lambda", "normalize", "rescale", "rescale_l1", "int8_mask"}

var needWeight = []string{"weight"} // mergekit requires each model's weight

var methods = map[string]method{
	"linear":           {normalize: true, minModels: 1, params: []string{"weight", "normalize"}, required: needWeight},
	"task_arithmetic":  {needsBase: true, taskVector: true, minModels: 1, params: taskParams, required: needWeight},
	"ties":             {needsBase: true, taskVector: true, sparsify: SparsifyMagnitude, consensus: "sum", normalize: true, minModels: 1, params: taskParams, required: needWeight},
	"dare_linear":      {needsBase: true, taskVector: true, sparsify: SparsifyRandom, rescale: true, minModels: 1, params: taskParams, required: needWeight},
	"dare_ties":        {needsBase: true, taskVector: true, sparsify: SparsifyRandom, consensus: "sum", rescale: true, minModels: 1, params: taskParams, required: needWeight},
	"breadcrumbs":      {needsBase: true, taskVector: true, sparsify: SparsifyOutliers, minModels: 1, params: append([]string{"gamma"}, taskParams...), required: needWeight},
	"breadcrumbs_ties": {needsBase: true, taskVector: true, sparsify: SparsifyOutliers, consensus: "sum", minModels: 1, params: append([]string{"gamma"}, taskParams...), required: needWeight},
	"della":            {needsBase: true, taskVector: true, sparsify: SparsifyMagPrune, consensus: "sum", normalize: true, rescale: true, minModels: 1, params: append([]string{"epsilon"}, taskParams...), required: needWeight},
	"della_linear":     {needsBase: true, taskVector: true, sparsify: SparsifyMagPrune, rescale: true, minModels: 1, params: append([]string{"epsilon"}, taskParams...), required: needWeight},
	"slerp":            {needsBase: true, minModels: 1, maxModels: 1, params: []string{"t"}, required: []string{"t"}},
	"nuslerp":          {minModels: 2, maxModels: 2, params: []string{"weight", "nuslerp_row_wise", "nuslerp_flatten"}, required: needWeight},
	"multislerp":       {minModels: 1, params: []string{"weight", "normalize_weights", "eps"}, required: needWeight},
	"karcher":          {minModels: 1, params: []string{"max_iter", "tol"}},
	"sce":              {needsBase: true, minModels: 1, params: []string{"select_topk", "int8_mask"}},
	"model_stock":      {needsBase: true, minModels: 2, params: []string{"filter_wise"}},
	"passthrough":      {minModels: 1, maxModels: 1, params: []string{"scale"}},
	"expo":             {needsBase: true, minModels: 1, maxModels: 1, params: []string{"alpha"}},
	"arcee_fusion":     {needsBase: true, minModels: 1, maxModels: 1},
	"nearswap":         {needsBase: true, minModels: 1, maxModels: 1, params: []string{"t"}, required: []string{"t"}, noDefault: []string{"t"}},
	"ram":              {needsBase: true, minModels: 1, params: []string{"epsilon"}},
	"ramplus_tl":       {needsBase: true, minModels: 1, params: []string{"epsilon", "r", "alpha"}},
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

// MinInputs returns the fewest models a merge method takes, its base
// (when it needs one) included; 0 for an unknown method.
func MinInputs(name string) int {
	m, ok := methods[name]
	if !ok {
		return 0
	}
	if m.needsBase {
		return m.minModels + 1
	}
	return m.minModels
}

// MethodParams returns the parameter names a merge method reads (globally,
// per slice or per model), sorted; nil for an unknown method, and empty
// (not nil) for one that reads none (arcee_fusion).
func MethodParams(name string) []string {
	m, ok := methods[name]
	if !ok {
		return nil
	}
	p := append([]string{}, m.params...)
	sort.Strings(p)
	return p
}

// planned is one output tensor.
type planned struct {
	name  string
	dtype safetensors.DType
	shape []int
	rows  int  // rows kept (vocabulary truncation), or shape[0]
	merge bool // floating point: merged; otherwise copied from the reference
	// ins are the inputs of this tensor (the base first when hasBase) and
	// names the tensor's name in each (slices rename layers).
	ins     []*Input
	names   []string
	hasBase bool
	params  Params  // the slice's parameters
	t       float64 // position for gradient parameters, as mergekit's
	pool    *bufPool
	in      *inputReader                         // Spec.in: where in-place inputs lie in their files
	part    func(name string, data []byte) error // Spec.part
	sent    bool                                 // the merged tensor went to part in pieces
}

// model returns model i of p (not counting the base) and its tensor name.
func (p *planned) model(i int) (*Input, string) {
	if p.hasBase {
		i++
	}
	return p.ins[i], p.names[i]
}

func (p *planned) nModels() int {
	if p.hasBase {
		return len(p.ins) - 1
	}
	return len(p.ins)
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

// OutLayers returns the number of layers of the output: the sum of the
// slices' lengths, or the reference model's layers.
func (s *Spec) OutLayers() int {
	if len(s.Slices) == 0 {
		all := s.inputs()
		if len(all) == 0 {
			return 0
		}
		return countLayers(all[0].Src.Names())
	}
	n := 0
	for _, sl := range s.Slices {
		if len(sl.Sources) > 0 {
			n += sl.Sources[0].To - sl.Sources[0].From
		}
	}
	return n
}

// configEdits are the config.json changes of the output.
func (s *Spec) configEdits() map[string]any {
	e := map[string]any{}
	for k, v := range s.ConfigOverrides {
		e[k] = v
	}
	if len(s.Slices) > 0 {
		e["num_hidden_layers"] = s.OutLayers()
	}
	return e
}

func (s *Spec) check() (method, error) {
	m, ok := methods[s.Method]
	if !ok {
		return m, fmt.Errorf("unknown merge method %q (known: %s)", s.Method, strings.Join(Methods(), ", "))
	}
	if s.OutDType != "" && s.OutDType != safetensors.F32 && s.OutDType != safetensors.F16 && s.OutDType != safetensors.BF16 {
		return m, fmt.Errorf("output dtype %s: want F32, F16 or BF16", s.OutDType)
	}
	if len(s.Slices) > 0 {
		if len(s.Models) > 0 || s.Base != nil {
			return m, fmt.Errorf("give either slices or models and a base, not both")
		}
		for i, sl := range s.Slices {
			if sl.Base >= len(sl.Sources) {
				return m, fmt.Errorf("slice %d: base index %d of %d sources", i, sl.Base, len(sl.Sources))
			}
			n := len(sl.Sources)
			if sl.Base >= 0 {
				n--
			}
			if err := m.checkCount(s.Method, sl.Base >= 0, n); err != nil {
				return m, fmt.Errorf("slice %d: %w", i, err)
			}
		}
		return m, nil
	}
	return m, m.checkCount(s.Method, s.Base != nil, len(s.Models))
}

func (m method) checkCount(name string, hasBase bool, n int) error {
	if m.needsBase && !hasBase {
		return fmt.Errorf("%s needs a base model", name)
	}
	if n < m.minModels || (m.maxModels > 0 && n > m.maxModels) {
		if m.maxModels == m.minModels {
			return fmt.Errorf("%s takes exactly %d model(s) besides the base, got %d", name, m.minModels, n)
		}
		return fmt.Errorf("%s needs at least %d model(s) besides the base, got %d", name, m.minModels, n)
	}
	return nil
}

// inputs returns the distinct inputs of the Spec, the base first.
func (s *Spec) inputs() []*Input {
	var all []*Input
	if s.Base != nil {
		all = append(all, s.Base)
	}
	for i := range s.Models {
		all = append(all, &s.Models[i])
	}
	seen := map[safetensors.Source]bool{}
	for i := range s.Slices {
		for j := range s.Slices[i].Sources {
			in := &s.Slices[i].Sources[j].Input
			if !seen[in.Src] {
				seen[in.Src] = true
				all = append(all, in)
			}
		}
	}
	return all
}

// gradientPos is mergekit's position of output layer k of a slice of n
// layers: k/(n-1), and 1 for a single layer.
func gradientPos(k, n int) float64 {
	if n > 1 {
		return float64(k) / float64(n-1)
	}
	return 1
}

func (s *Spec) plan() ([]planned, error) {
	m, err := s.check()
	if err != nil {
		return nil, err
	}
	var out []planned
	if len(s.Slices) > 0 {
		out, err = s.planSlices()
	} else {
		out, err = s.planModels()
	}
	if err != nil {
		return nil, err
	}
	keys := m.noDefault
	if s.RequireParams {
		keys = m.required
	}
	for _, key := range keys {
		if key != "weight" && !s.setAnywhere(key) {
			return nil, fmt.Errorf("missing required parameter %s for %s: no level sets it (--param %s=VALUE, or a configuration's parameters:)", key, s.Method, key)
		}
	}
	for i := range out {
		if err := s.checkRequired(keys, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setAnywhere reports whether any level of s sets the parameter key: the
// merge's, a model's, a slice's or a slice source's. One that none sets
// is worth saying so before checking tensor by tensor.
func (s *Spec) setAnywhere(key string) bool {
	has := func(p Params) bool { _, ok := p[key]; return ok }
	if has(s.Params) {
		return true
	}
	for _, in := range s.Models {
		if has(in.Params) {
			return true
		}
	}
	if s.Base != nil && has(s.Base.Params) {
		return true
	}
	for _, sl := range s.Slices {
		if has(sl.Params) {
			return true
		}
		for _, src := range sl.Sources {
			if has(src.Params) {
				return true
			}
		}
	}
	return false
}

// checkRequired reports the first of the required parameters keys that
// no level sets for p (a filtered list may cover only some tensors).
func (s *Spec) checkRequired(keys []string, p *planned) error {
	if !p.merge {
		return nil
	}
	for _, key := range keys {
		if key != "weight" {
			if _, ok := s.lookup(p, -1, key); !ok {
				return fmt.Errorf("tensor %s: missing required parameter %s", p.name, key)
			}
			continue
		}
		for i := 0; i < p.nModels(); i++ {
			if _, ok := s.lookup(p, i, key); !ok {
				in, _ := p.model(i)
				return fmt.Errorf("tensor %s: missing required parameter %s for model %s", p.name, key, in.Name)
			}
		}
	}
	return nil
}

// planModels plans a merge of whole models (no slices).
func (s *Spec) planModels() ([]planned, error) {
	all := s.inputs()
	ref := all[0]
	names := append([]string(nil), ref.Src.Names()...)
	sort.Strings(names)
	nLayers := countLayers(names)
	var out []planned
	for _, name := range names {
		ns := make([]string, len(all))
		for i := range ns {
			ns[i] = name
		}
		t := 0.0 // tensors outside the layers: mergekit reads their parameters at 0
		if l := layerOf(name); l >= 0 {
			t = gradientPos(l, nLayers)
		}
		p, err := s.planTensor(name, all, ns, s.Base != nil, nil, t)
		if err != nil {
			return nil, err
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

// planTensor checks that tensor names[i] of every input lines up with the
// first input's and returns the output tensor name.
func (s *Spec) planTensor(name string, ins []*Input, names []string, hasBase bool, params Params, t float64) (planned, error) {
	ref := ins[0]
	rt, ok := ref.Src.Tensor(names[0])
	if !ok {
		return planned{}, fmt.Errorf("tensor %s: missing from %s", names[0], ref.Name)
	}
	p := planned{name: name, dtype: rt.DType, shape: append([]int(nil), rt.Shape...), merge: isFloat(rt.DType),
		ins: ins, names: names, hasBase: hasBase, params: params, t: t}
	if len(p.shape) > 0 {
		p.rows = p.shape[0]
	}
	for i, in := range ins[1:] {
		tn := names[i+1]
		t, ok := in.Src.Tensor(tn)
		if !ok {
			return planned{}, fmt.Errorf("tensor %s: missing from %s (architectures differ?)", tn, in.Name)
		}
		if !slices.Equal(t.Shape, rt.Shape) {
			vocab := len(t.Shape) == 2 && len(rt.Shape) == 2 && t.Shape[1] == rt.Shape[1] && isVocabTensor(name)
			if !vocab {
				return planned{}, fmt.Errorf("tensor %s: shape %v in %s but %v in %s", tn, t.Shape, in.Name, rt.Shape, ref.Name)
			}
			if !s.TruncateVocab {
				return planned{}, fmt.Errorf("tensor %s: %d vocabulary rows in %s but %d in %s (allow truncating to the common vocabulary to merge anyway)",
					name, t.Shape[0], in.Name, rt.Shape[0], ref.Name)
			}
			p.rows = min(p.rows, t.Shape[0])
		}
		if isFloat(t.DType) != p.merge {
			return planned{}, fmt.Errorf("tensor %s: dtype %s in %s but %s in %s", tn, t.DType, in.Name, rt.DType, ref.Name)
		}
	}
	if len(p.shape) > 0 {
		p.shape[0] = p.rows
	}
	if p.merge && s.OutDType != "" {
		p.dtype = s.OutDType
	}
	return p, nil
}

// sliceInputs returns a slice's inputs, the base first.
func sliceInputs(sl *Slice) ([]*Input, bool) {
	var ins []*Input
	if sl.Base >= 0 {
		ins = append(ins, &sl.Sources[sl.Base].Input)
	}
	for j := range sl.Sources {
		if j != sl.Base {
			ins = append(ins, &sl.Sources[j].Input)
		}
	}
	return ins, sl.Base >= 0
}

// sliceFrom returns the first layer of each input of sliceInputs.
func sliceFrom(sl *Slice) []int {
	var f []int
	if sl.Base >= 0 {
		f = append(f, sl.Sources[sl.Base].From)
	}
	for j, src := range sl.Sources {
		if j != sl.Base {
			f = append(f, src.From)
		}
	}
	return f
}

// isPreWeight reports whether a tensor outside the layers comes before them
// (the embeddings) rather than after (final norm, head).
func isPreWeight(name string) bool {
	return strings.Contains(name, "embed") || strings.Contains(name, "wte")
}

func (s *Spec) planSlices() ([]planned, error) {
	for i, sl := range s.Slices {
		n := -1
		for _, src := range sl.Sources {
			layers := countLayers(src.Src.Names())
			if src.From < 0 || src.To <= src.From || src.To > layers {
				return nil, fmt.Errorf("slice %d: layer_range [%d, %d] of %s, which has %d layers", i, src.From, src.To, src.Name, layers)
			}
			if n >= 0 && src.To-src.From != n {
				return nil, fmt.Errorf("slice %d: all sources must span the same number of layers (%d and %d)", i, n, src.To-src.From)
			}
			n = src.To - src.From
		}
	}
	first, last := &s.Slices[0], &s.Slices[len(s.Slices)-1]
	ref := first.Sources[0].Src
	names := append([]string(nil), ref.Names()...)
	sort.Strings(names)
	var out []planned
	outside := func(sl *Slice, pre bool) error {
		ins, hasBase := sliceInputs(sl)
		for _, name := range names {
			if layerOf(name) >= 0 || isPreWeight(name) != pre {
				continue
			}
			ns := make([]string, len(ins))
			for i := range ns {
				ns[i] = name
			}
			p, err := s.planTensor(name, ins, ns, hasBase, sl.Params, 0)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	}
	if err := outside(first, true); err != nil {
		return nil, err
	}
	layer := 0
	for si := range s.Slices {
		sl := &s.Slices[si]
		ins, hasBase := sliceInputs(sl)
		from := sliceFrom(sl)
		n := sl.Sources[0].To - sl.Sources[0].From
		for k := 0; k < n; k++ {
			var layerNames []string
			for _, name := range ins[0].Src.Names() {
				if layerOf(name) == from[0]+k {
					layerNames = append(layerNames, name)
				}
			}
			sort.Strings(layerNames)
			for _, name := range layerNames {
				ns := make([]string, len(ins))
				for i := range ins {
					ns[i] = withLayer(name, from[i]+k)
				}
				p, err := s.planTensor(withLayer(name, layer), ins, ns, hasBase, sl.Params, gradientPos(k, n))
				if err != nil {
					return nil, fmt.Errorf("slice %d: %w", si, err)
				}
				out = append(out, p)
			}
			layer++
		}
	}
	if err := outside(last, false); err != nil {
		return nil, err
	}
	return out, nil
}

// withLayer returns name with its layer index replaced by l.
func withLayer(name string, l int) string {
	loc := layerRE.FindStringSubmatchIndex(name)
	if loc == nil {
		return name
	}
	return name[:loc[2]] + strconv.Itoa(l) + name[loc[3]:]
}

// isVocabTensor reports whether a tensor's rows are vocabulary entries.
func isVocabTensor(name string) bool {
	return strings.Contains(name, "embed_tokens") || strings.Contains(name, "lm_head") || strings.Contains(name, "wte")
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16
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
	for k := range ps {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := &ps[k]
		var t *safetensors.Tensor
		if p.merge {
			t, err = s.mergeTensor(ctx, m, p)
		} else {
			rt, _ := p.ins[0].Src.Tensor(p.names[0])
			t = &safetensors.Tensor{Name: p.name, DType: rt.DType, Shape: p.shape, Data: rt.Data}
		}
		if err != nil {
			return fmt.Errorf("tensor %s: %w", p.name, err)
		}
		if !p.sent { // else its pieces went to s.part as they were merged
			if err := emit(t); err != nil {
				return err
			}
		}
		if progress != nil {
			progress(k+1, len(ps), p.name)
		}
	}
	return nil
}

// releaseInputs tells the sources of p's inputs that the merge is done
// with ts, their tensors for p (safetensors.Release): the pages of a
// file's map that a tensor read in place touched leave the process's
// memory, so that the peak holds the inputs of one large tensor (an
// untied model's embeddings, then its head), not of all of them.
func releaseInputs(p *planned, ts []*safetensors.Tensor) {
	for i, t := range ts {
		if t != nil {
			safetensors.Release(p.ins[i].Src, t.Data)
		}
	}
}

// value looks parameter key up for model i of p (-1: not a per-model
// parameter), as mergekit's ConfigReader: the model's own parameters (at
// its tensor name), then the slice's, then the global ones (at the output
// name); def when none sets it.
func (s *Spec) value(p *planned, i int, key string, def float64) float64 {
	v, ok := s.lookup(p, i, key)
	if !ok {
		return def
	}
	return v
}

func (s *Spec) lookup(p *planned, i int, key string) (float64, bool) {
	if i >= 0 {
		in, name := p.model(i)
		if q, ok := in.Params[key]; ok {
			if v, ok := q.AtPos(name, p.t); ok {
				return v, true
			}
		}
	}
	if q, ok := p.params[key]; ok {
		if v, ok := q.AtPos(p.name, p.t); ok {
			return v, true
		}
	}
	if q, ok := s.Params[key]; ok {
		if v, ok := q.AtPos(p.name, p.t); ok {
			return v, true
		}
	}
	return 0, false
}

func (s *Spec) flag(p *planned, key string, def bool) bool {
	d := 0.0
	if def {
		d = 1
	}
	return s.value(p, -1, key, d) != 0
}

func (s *Spec) mergeTensor(ctx context.Context, m method, p *planned) (*safetensors.Tensor, error) {
	p.pool, p.part, p.in = s.pool, s.part, s.in
	n := 1
	for _, d := range p.shape {
		n *= d
	}
	ts := make([]*safetensors.Tensor, len(p.ins))
	for i, in := range p.ins {
		ts[i], _ = in.Src.Tensor(p.names[i])
	}
	defer releaseInputs(p, ts) // the merged tensor never aliases its inputs
	ts, release, err := s.in.load(ts)
	if err != nil {
		return nil, err
	}
	defer release()
	nm := p.nModels()
	hasBase := p.hasBase
	w := make([]float64, nm)
	for i := range w {
		w[i] = s.value(p, i, "weight", 1)
	}
	if s.Method == "linear" && hasBase {
		// mergekit's linear ignores base_model unless it is listed.
		ts, hasBase = ts[1:], false
	}
	if s.Method == "karcher" && hasBase {
		// mergekit's Karcher mean takes the base as one more model.
		hasBase = false
	}
	if s.Method == "nuslerp" || s.Method == "multislerp" {
		for i := 0; i < nm; i++ {
			if _, ok := s.lookup(p, i, "weight"); !ok {
				in, _ := p.model(i)
				return nil, fmt.Errorf("%s needs a weight for every model; %s has none", s.Method, in.Name)
			}
		}
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
			Density:   make([]float64, nm),
			Gamma:     s.value(p, -1, "gamma", 0.01),
			Epsilon:   s.value(p, -1, "epsilon", 0.15),
			Normalize: s.flag(p, "normalize", m.normalize),
			Rescale:   s.flag(p, "rescale", m.rescale),
			RescaleL1: s.value(p, -1, "rescale_l1", 0) != 0,
			Lambda:    s.value(p, -1, "lambda", 1),
			Cols:      cols,
			Seed:      s.Seed ^ hashName(p.name),
		}
		for i := range o.Density {
			o.Density[i] = s.value(p, i, "density", 1)
		}
		if err := o.check(nm); err != nil {
			return nil, err
		}
		o = o.withL1()
	}

	// Element-wise methods stream through each tensor in chunks.
	switch {
	case s.Method == "linear":
		div := 1.0
		if s.flag(p, "normalize", m.normalize) {
			if div = sum(w); math.Abs(div) < 1e-12 {
				return nil, fmt.Errorf("linear: weights sum to zero, cannot normalize")
			}
		}
		return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			linearInto(dst, xs, w, div)
		})
	case s.Method == "passthrough":
		scale := s.value(p, 0, "scale", 1)
		return streamTensor(p, ts[len(ts)-1:], n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			for j, v := range xs[0] {
				dst[j] = float32(float64(v) * scale)
			}
		})
	case s.Method == "expo":
		alpha := s.value(p, -1, "alpha", 0.3)
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
	case m.taskVector:
		return streamSelect(ctx, p, ts, n, w, o)
	case s.Method == "nearswap":
		t, _ := s.lookup(p, -1, "t") // plan saw that it is set
		return streamTensor(p, ts, n, func(dst []float32, xs [][]float32, _ int, _ [][]float32) {
			nearSwap(dst, xs[0], xs[1], t)
		})
	case s.Method == "ram" || s.Method == "ramplus_tl":
		return streamRAM(ctx, p, ts, n, s.ramOptions(p))
	case s.Method == "arcee_fusion":
		return streamFusion(ctx, p, ts, n, cols)
	case s.Method == "sce":
		return s.streamSCE(ctx, p, ts, n)
	case s.Method == "slerp" || s.Method == "nuslerp" || s.Method == "multislerp" || s.Method == "karcher" || s.Method == "model_stock":
		return s.streamSpherical(ctx, p, ts, n, hasBase, w)
	}

	return nil, fmt.Errorf("method %s has no tensor rule", s.Method)
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
