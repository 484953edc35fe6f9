package engine

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// Options tune how a model is loaded and run.
type Options struct {
	// Threads sets the kernels' worker count (kernels.SetThreads) when > 0.
	Threads int
	// Quant is "" (use the weights as stored), "q8_0" (quantize every
	// matrix to blocks of 32 int8 weights at load) or "q4_0" (to blocks
	// of 32 4-bit weights, llama.cpp's Q4_0).
	Quant string
	// ContextSize is the number of positions NewSession(0) holds (0: the
	// model's max_position_embeddings, or DefaultContextSize when the
	// config has none). The KV cache is not allocated up front: it grows
	// as tokens arrive, so a large context costs memory only when used.
	ContextSize int
	// Mapped keeps matrices stored unquantized in the checkpoint's memory
	// map. By default Load reads them into private memory instead, on
	// Linux backed by transparent huge pages (safetensors.Resident): faster
	// generation, at the cost of the read at load and of memory that other
	// processes loading the same files cannot share. An embedding table
	// that is not also the output head stays mapped all the same: each
	// token reads one row of it. With Quant the stored matrices are read
	// from the map once, their pages released as each is done, and their
	// quantized forms go to huge pages instead. MOCO_WEIGHTS=mapped in the
	// environment sets Mapped.
	Mapped bool
}

// DefaultContextSize is the context of sessions of models whose config
// gives no max_position_embeddings.
const DefaultContextSize = 4096

// Model is a loaded checkpoint: its configuration and weights. Matrices
// stored as F32, BF16 or F16 are used in place from the file's memory
// (Options.Mapped says which kind); norm
// weights and biases are widened to float32. A Model is safe for
// concurrent use by several Sessions.
type Model struct {
	Config *Config
	// Warnings lists what loading tolerated but a user should know, such as
	// checkpoint tensors the architecture does not use (rotary inv_freq).
	Warnings []string

	embed  *kernels.Mat // VocabSize x HiddenSize, read a row per token
	norm   []float32    // final norm
	lmHead *kernels.Mat // VocabSize x HiddenSize (the embeddings when tied)
	layers []layer

	global, local rope // rotary frequencies of global layers and (RopeLocalTheta > 0) sliding layers

	src      safetensors.Source
	owned    bool // Close closes src (Load opened it)
	resident bool // src was read into private memory (Options.Mapped unset)
	// freeQuant frees the huge-page region that holds the matrices
	// quantized at load (quantizeAll); nil if they are on the Go heap.
	freeQuant func() error
	ctx       int // default session context (Options.ContextSize resolved)
}

// layer holds one transformer block's weights. Absent optional parts are
// nil: a nil norm is skipped, a nil bias is not added.
type layer struct {
	attnNorm, attnPostNorm []float32 // before attention, on its output
	ffnNorm, ffnPostNorm   []float32 // before the MLP, on its output
	qNorm, kNorm           []float32 // Config.QKNorm
	wq, wk, wv, wo         *kernels.Mat
	bq, bk, bv, bo         []float32
	gate, up, down         *kernels.Mat
	bGate, bUp, bDown      []float32
}

// Load opens the Hugging Face model folder dir: config.json,
// generation_config.json (optional) and model.safetensors or a sharded
// index.
func Load(dir string, opts Options) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	mapped := opts.Mapped || os.Getenv("MOCO_WEIGHTS") == "mapped"
	how := safetensors.Resident
	if mapped || opts.Quant != "" {
		how = safetensors.Mapped
	}
	var rowTables []string
	if how == safetensors.Resident {
		if rowTables, err = lookupOnly(dir, cfg); err != nil {
			return nil, err
		}
	}
	src, err := safetensors.OpenDirWith(dir, how, rowTables...)
	if err != nil {
		return nil, err
	}
	m, err := newModel(cfg, src, opts, !mapped)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.owned = true
	m.resident = how == safetensors.Resident
	return m, nil
}

// quantizedHead reports whether src carries a stored quantized output head
// (QuantizeCheckpoint writes one beside a tied model's embeddings).
func quantizedHead(src safetensors.Source) bool {
	t, ok := src.Tensor("lm_head.weight")
	return ok && (t.DType == safetensors.I8 || t.DType == safetensors.U8)
}

// lookupOnly names the tensors of the model in dir that Load leaves in the
// file's memory map when it reads the rest into private memory: the
// embedding table when it is not also the output head. A token reads one
// row of it, so a private copy would cost its whole size for rows most
// text never uses: a third of a stored Q8_0 Qwen2.5-0.5B, a gigabyte of
// an untied 8B model in bf16.
func lookupOnly(dir string, cfg *Config) ([]string, error) {
	const embed = "model.embed_tokens.weight"
	if !cfg.TieEmbeddings {
		return []string{embed}, nil
	}
	peek, err := safetensors.OpenDir(dir) // the headers only: mapping reads nothing
	if err != nil {
		return nil, err
	}
	defer peek.Close()
	if quantizedHead(peek) {
		return []string{embed}, nil
	}
	return nil, nil
}

// New builds a model from cfg and the tensors of src, which must stay open
// while the model is used (the weights alias it). Close does not close src.
func New(cfg *Config, src safetensors.Source, opts Options) (*Model, error) {
	return newModel(cfg, src, opts, false)
}

// newModel is New; with arena, matrices quantized at load go to a region
// backed by huge pages (quantizeAll), which only Load's Close frees.
func newModel(cfg *Config, src safetensors.Source, opts Options, arena bool) (*Model, error) {
	switch opts.Quant {
	case "", "q8_0", "q4_0":
	default:
		return nil, fmt.Errorf("unknown quantization %q (want q8_0, q4_0 or none)", opts.Quant)
	}
	if opts.ContextSize < 0 {
		return nil, fmt.Errorf("context size %d is negative", opts.ContextSize)
	}
	if opts.Threads > 0 {
		kernels.SetThreads(opts.Threads)
	}
	if cfg.Multimodal {
		var err error
		if src, err = newTextModel(src); err != nil {
			return nil, err
		}
	}
	if err := cfg.checkBounds(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, src: src, ctx: opts.ContextSize}
	if m.ctx == 0 {
		m.ctx = cfg.MaxPositions
	}
	if m.ctx <= 0 {
		m.ctx = DefaultContextSize
	}
	l := loader{src: src, cfg: cfg, used: map[string]bool{}}
	c := cfg
	qDim, kvDim := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim

	m.embed = l.mat("model.embed_tokens.weight", c.VocabSize, c.HiddenSize)
	m.norm = l.vec("model.norm.weight", c.HiddenSize)
	if c.TieEmbeddings && quantizedHead(src) {
		m.lmHead = l.mat("lm_head.weight", c.VocabSize, c.HiddenSize)
	} else if c.TieEmbeddings {
		m.lmHead = m.embed
	} else {
		m.lmHead = l.mat("lm_head.weight", c.VocabSize, c.HiddenSize)
	}
	m.layers = make([]layer, c.NumLayers)
	for i := range m.layers {
		w := &m.layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		switch c.Norms {
		case "pre":
			w.attnNorm = l.vec(p+"input_layernorm.weight", c.HiddenSize)
			w.ffnNorm = l.vec(p+"post_attention_layernorm.weight", c.HiddenSize)
		case "sandwich":
			w.attnNorm = l.vec(p+"input_layernorm.weight", c.HiddenSize)
			w.attnPostNorm = l.vec(p+"post_attention_layernorm.weight", c.HiddenSize)
			w.ffnNorm = l.vec(p+"pre_feedforward_layernorm.weight", c.HiddenSize)
			w.ffnPostNorm = l.vec(p+"post_feedforward_layernorm.weight", c.HiddenSize)
		case "post":
			w.attnPostNorm = l.vec(p+"post_attention_layernorm.weight", c.HiddenSize)
			w.ffnPostNorm = l.vec(p+"post_feedforward_layernorm.weight", c.HiddenSize)
		}
		a := p + "self_attn."
		if c.FusedQKV {
			// Phi-3 stacks q, k and v rows; split the matrix into row views.
			qkv := l.mat(a+"qkv_proj.weight", qDim+2*kvDim, c.HiddenSize)
			w.wq, w.wk, w.wv = rows(qkv, 0, qDim), rows(qkv, qDim, kvDim), rows(qkv, qDim+kvDim, kvDim)
		} else {
			w.wq = l.mat(a+"q_proj.weight", qDim, c.HiddenSize)
			w.wk = l.mat(a+"k_proj.weight", kvDim, c.HiddenSize)
			w.wv = l.mat(a+"v_proj.weight", kvDim, c.HiddenSize)
		}
		w.wo = l.mat(a+"o_proj.weight", c.HiddenSize, qDim)
		if c.QKVBias {
			w.bq = l.vec(a+"q_proj.bias", qDim)
			w.bk = l.vec(a+"k_proj.bias", kvDim)
			w.bv = l.vec(a+"v_proj.bias", kvDim)
		}
		if c.OBias {
			w.bo = l.vec(a+"o_proj.bias", c.HiddenSize)
		}
		switch c.QKNorm {
		case "head":
			w.qNorm = l.vec(a+"q_norm.weight", c.HeadDim)
			w.kNorm = l.vec(a+"k_norm.weight", c.HeadDim)
		case "full":
			w.qNorm = l.vec(a+"q_norm.weight", qDim)
			w.kNorm = l.vec(a+"k_norm.weight", kvDim)
		}
		f := p + "mlp."
		if c.FusedGateUp {
			// Phi-3 stacks the gate rows first, then the up rows.
			gu := l.mat(f+"gate_up_proj.weight", 2*c.IntermediateSize, c.HiddenSize)
			w.gate, w.up = rows(gu, 0, c.IntermediateSize), rows(gu, c.IntermediateSize, c.IntermediateSize)
		} else {
			w.gate = l.mat(f+"gate_proj.weight", c.IntermediateSize, c.HiddenSize)
			w.up = l.mat(f+"up_proj.weight", c.IntermediateSize, c.HiddenSize)
		}
		w.down = l.mat(f+"down_proj.weight", c.HiddenSize, c.IntermediateSize)
		if c.MLPBias {
			w.bGate = l.vec(f+"gate_proj.bias", c.IntermediateSize)
			w.bUp = l.vec(f+"up_proj.bias", c.IntermediateSize)
			w.bDown = l.vec(f+"down_proj.bias", c.HiddenSize)
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	var err error
	if m.Warnings, err = l.unused(); err != nil {
		return nil, err
	}
	switch opts.Quant {
	case "q8_0":
		m.freeQuant = m.quantizeAll(kernels.Q8_0, arena)
	case "q4_0":
		m.freeQuant = m.quantizeAll(kernels.Q4_0, arena)
	}
	m.global = newRope(c.RopeTheta, c.RotaryDim, c.RopeScaling)
	if c.RopeLocalTheta > 0 {
		m.local = newRope(c.RopeLocalTheta, c.RotaryDim, nil)
	}
	return m, nil
}

// matrixSlots lists where the model keeps every matrix the forward pass
// multiplies by: the output head (the embedding table when tied) and each
// layer's seven.
func (m *Model) matrixSlots() []**kernels.Mat {
	out := []**kernels.Mat{&m.lmHead}
	for i := range m.layers {
		w := &m.layers[i]
		out = append(out, &w.wq, &w.wk, &w.wv, &w.wo, &w.gate, &w.up, &w.down)
	}
	return out
}

// Resident reports whether Load read the weights into private memory
// (safetensors.Resident; on Linux only, elsewhere the file stays mapped)
// rather than using the file's memory map.
func (m *Model) Resident() bool { return m.resident }

// ContextSize is the number of positions NewSession(0) holds: the
// Options.ContextSize the model was loaded with, else the model's
// max_position_embeddings, else DefaultContextSize.
func (m *Model) ContextSize() int { return m.ctx }

// Close releases the weights' memory when Load opened it.
func (m *Model) Close() error {
	if m == nil || !m.owned || m.src == nil {
		return nil
	}
	err := m.src.Close()
	m.src = nil
	if m.freeQuant != nil {
		if e := m.freeQuant(); err == nil {
			err = e
		}
		m.freeQuant = nil
	}
	return err
}

// WeightBytes is the number of weight bytes one generated token reads:
// every layer's matrices and norms, the final norm, the output matrix and
// one embedding row.
func (m *Model) WeightBytes() int64 {
	n := int64(4*len(m.norm)) + matBytes(m.embed)/int64(max(1, m.embed.Rows))
	for _, p := range m.matrixSlots() {
		n += matBytes(*p)
	}
	for i := range m.layers {
		w := &m.layers[i]
		for _, v := range [][]float32{w.attnNorm, w.attnPostNorm, w.ffnNorm, w.ffnPostNorm, w.qNorm, w.kNorm,
			w.bq, w.bk, w.bv, w.bo, w.bGate, w.bUp, w.bDown} {
			n += int64(4 * len(v))
		}
	}
	return n
}

func matBytes(m *kernels.Mat) int64 {
	e := int64(m.Rows) * int64(m.Cols)
	switch m.Type {
	case kernels.F32:
		return 4 * e
	case kernels.BF16, kernels.F16:
		return 2 * e
	case kernels.Q4_0:
		return e/2 + 2*e/kernels.BlockSize // two weights a byte and an f16 scale per block
	default:
		return e + 2*e/kernels.BlockSize // int8 weights and an f16 scale per block
	}
}

// rows returns the view of n rows of m starting at row r0 (no copy).
func rows(m *kernels.Mat, r0, n int) *kernels.Mat {
	if m == nil {
		return nil
	}
	v := &kernels.Mat{Rows: n, Cols: m.Cols, Type: m.Type}
	lo, hi := r0*m.Cols, (r0+n)*m.Cols
	switch {
	case m.F32 != nil:
		v.F32 = m.F32[lo:hi:hi]
	case m.Type == kernels.Q8_0:
		v.Q = m.Q[lo:hi:hi]
		v.Scales = m.Scales[lo/kernels.BlockSize : hi/kernels.BlockSize : hi/kernels.BlockSize]
	case m.Type == kernels.Q4_0:
		v.Q4 = m.Q4[lo/2 : hi/2 : hi/2]
		v.Scales = m.Scales[lo/kernels.BlockSize : hi/kernels.BlockSize : hi/kernels.BlockSize]
	default:
		v.Half = m.Half[lo:hi:hi]
	}
	return v
}

// loader reads tensors from a Source, checking names and shapes. The first
// error sticks and later calls return nil, so New reads straight through.
type loader struct {
	src  safetensors.Source
	cfg  *Config
	err  error
	used map[string]bool // tensors read
}

// optionalTensor matches tensors that checkpoints carry but the forward pass
// does not need: rotary frequencies some exporters save (the engine derives
// them from the config).
var optionalTensor = regexp.MustCompile(`(^|\.)rotary_emb\.inv_freq$`)

// layerTensor matches a tensor of a numbered decoder layer.
var layerTensor = regexp.MustCompile(`^model\.layers\.(\d+)\.`)

// unused checks that the architecture consumed every tensor of the
// checkpoint. Layers beyond num_hidden_layers and unknown tensors are
// errors (a config that does not describe the checkpoint would otherwise
// run a different model); known optional tensors, and a separate lm_head
// of a model with tied embeddings (transformers ignores it too), come back
// as warnings.
func (l *loader) unused() ([]string, error) {
	var unknown, optional []string
	extraLayers := -1
	for _, name := range l.src.Names() {
		if l.used[name] {
			continue
		}
		if optionalTensor.MatchString(name) || name == "lm_head.weight" && l.cfg.TieEmbeddings {
			optional = append(optional, name)
			continue
		}
		if m := layerTensor.FindStringSubmatch(name); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n >= l.cfg.NumLayers {
				extraLayers = max(extraLayers, n)
				continue
			}
		}
		unknown = append(unknown, name)
	}
	if extraLayers >= 0 {
		return nil, fmt.Errorf("the checkpoint has layers up to model.layers.%d, but config.json's num_hidden_layers is %d", extraLayers, l.cfg.NumLayers)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("the checkpoint has %d tensors that model_type %s does not use: %s", len(unknown), l.cfg.ModelType, listSome(unknown))
	}
	if len(optional) > 0 {
		return []string{fmt.Sprintf("ignoring %d checkpoint tensors the forward pass does not need: %s", len(optional), listSome(optional))}, nil
	}
	return nil, nil
}

// listSome joins up to 5 names, saying how many more there are.
func listSome(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}

func (l *loader) tensor(name string, shape ...int) *safetensors.Tensor {
	if l.err != nil {
		return nil
	}
	t, ok := l.src.Tensor(name)
	l.used[name] = true
	if !ok {
		l.err = fmt.Errorf("tensor %s is missing (model_type %s)", name, l.cfg.ModelType)
		return nil
	}
	if !slices.Equal(t.Shape, shape) {
		l.err = fmt.Errorf("tensor %s has shape %v, the config implies %v", name, t.Shape, shape)
		return nil
	}
	return t
}

// mat returns a rows x cols matrix that aliases the tensor's data.
func (l *loader) mat(name string, rows, cols int) *kernels.Mat {
	shape := []int{rows, cols}
	if t, ok := l.src.Tensor(name); ok && t.DType == safetensors.U8 && cols%2 == 0 {
		shape[1] /= 2 // Q4_0: two weights a byte
	}
	t := l.tensor(name, shape...)
	if t == nil {
		return nil
	}
	m := &kernels.Mat{Rows: rows, Cols: cols}
	var err error
	switch t.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
		err = floatMat(m, t)
	case safetensors.I8, safetensors.U8:
		// Q8_0 or Q4_0 as QuantizeCheckpoint stores them: the weights
		// here, one f16 scale per block of 32 in NAME.scales.
		if cols%kernels.BlockSize != 0 {
			err = fmt.Errorf("a %s (quantized) matrix needs a row length that is a multiple of %d, not %d", t.DType, kernels.BlockSize, cols)
			break
		}
		if t.DType == safetensors.I8 {
			m.Type = kernels.Q8_0
			m.Q, err = t.I8()
		} else {
			m.Type = kernels.Q4_0
			m.Q4, err = t.U8()
		}
		if err != nil {
			break
		}
		st := l.tensor(name+ScalesSuffix, rows, cols/kernels.BlockSize)
		if st == nil {
			return nil
		}
		if st.DType != safetensors.F16 {
			err = fmt.Errorf("%s%s is %s, want F16 scales", name, ScalesSuffix, st.DType)
			break
		}
		m.Scales, err = st.U16()
	default:
		err = fmt.Errorf("dtype %s is not supported (want F32, BF16, F16, or I8 or U8 with F16 scales)", t.DType)
	}
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	return m
}

// floatMat points m at the F32, BF16 or F16 data of t and sets its type.
func floatMat(m *kernels.Mat, t *safetensors.Tensor) error {
	var err error
	switch t.DType {
	case safetensors.F32:
		m.Type = kernels.F32
		m.F32, err = t.F32()
	case safetensors.BF16:
		m.Type = kernels.BF16
		m.Half, err = t.U16()
	case safetensors.F16:
		m.Type = kernels.F16
		m.Half, err = t.U16()
	default:
		err = fmt.Errorf("dtype %s is not a float type (want F32, BF16 or F16)", t.DType)
	}
	return err
}

// vec returns a norm weight or bias widened to float32.
func (l *loader) vec(name string, n int) []float32 {
	t := l.tensor(name, n)
	if t == nil {
		return nil
	}
	v, err := safetensors.ToF32(t)
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			l.err = fmt.Errorf("tensor %s holds %v", name, x)
			return nil
		}
	}
	return v
}
