package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/mocolab/moco/internal/modeldir"
)

// Config is a model's shape and the switches that select its family's
// variations of the one forward pass. ParseConfig fills it from a Hugging
// Face config.json; every family difference is a field here, never a
// separate code path.
type Config struct {
	ModelType    string // config.json model_type, e.g. "llama", "gemma2"
	Architecture string // config.json architectures[0]

	HiddenSize, IntermediateSize int
	NumLayers, NumHeads          int
	NumKVHeads, HeadDim          int
	VocabSize, MaxPositions      int
	RMSNormEps, RopeTheta        float64
	TieEmbeddings                bool
	BOS                          int   // -1 when the model declares none
	EOS                          []int // config.json and generation_config.json ids, merged

	// Activation of the gated MLP: "silu" (SwiGLU) or "gelu_pytorch_tanh" (GeGLU).
	Activation string
	// QKVBias and OBias load biases for the q/k/v and o projections
	// (Llama/Gemma/OLMo attention_bias sets both; Qwen2 has q/k/v only).
	QKVBias, OBias bool
	// MLPBias loads biases for gate, up and down (Llama mlp_bias).
	MLPBias bool
	// QKNorm is "" (none), "head" (an RMSNorm of head_dim applied to every
	// head, Qwen3/Gemma3) or "full" (an RMSNorm over the whole q and k
	// projections, OLMo2/3).
	QKNorm string
	// NormOffset is added to every RMSNorm weight: 1 for Gemma's (1 + w).
	NormOffset float32
	// Norms is where a block's RMSNorms sit: "pre" (Llama: before attention
	// and MLP), "sandwich" (Gemma2/3: before and after each sublayer) or
	// "post" (OLMo2/3: only after each sublayer, on its output).
	Norms string
	// EmbedScale multiplies the embeddings (Gemma: sqrt(hidden)); 1 otherwise.
	EmbedScale float32
	// AttnSoftcap and FinalSoftcap are cap values c of c*tanh(x/c) on the
	// attention scores and on the logits; 0 disables them (Gemma2).
	AttnSoftcap, FinalSoftcap float64
	// QueryScale multiplies the attention scores: 1/sqrt(head_dim) or, for
	// Gemma, 1/sqrt(query_pre_attn_scalar).
	QueryScale float64
	// SlidingWindow is the number of most recent positions (the query's
	// own included) a sliding layer attends to; Sliding marks those layers.
	SlidingWindow int
	Sliding       []bool
	// RotaryDim is the number of leading dimensions of each head that are
	// rotated (Phi-3 partial_rotary_factor); the rest pass unchanged.
	RotaryDim int
	// RopeScaling is the rotary scaling of global layers (nil: none).
	RopeScaling *RopeScaling
	// RopeLocalTheta, when nonzero, is the rotary base of sliding layers,
	// which use no scaling (Gemma3 rope_local_base_freq).
	RopeLocalTheta float64
	// FusedQKV and FusedGateUp read Phi-3's qkv_proj and gate_up_proj.
	FusedQKV, FusedGateUp bool
	// Multimodal marks the text model of a multimodal checkpoint (Gemma 3
	// 4B and up, model_type "gemma3"): its tensors are named under the
	// language model ("language_model.model.", or "model.language_model."
	// since transformers 4.52), and the vision tower's are not read.
	Multimodal bool

	// Generation holds generation_config.json's default sampling.
	Generation Generation
}

// RopeScaling is config.json's rope_scaling.
type RopeScaling struct {
	Type   string  // "linear", "dynamic", "llama3", "yarn" or "longrope"
	Factor float64 // all types (longrope: max_position_embeddings / OriginalMaxPositions)
	// llama3, yarn and longrope: the context length the model was trained with.
	OriginalMaxPositions int
	LowFreqFactor        float64 // llama3
	HighFreqFactor       float64 // llama3
	BetaFast, BetaSlow   float64 // yarn
	AttentionFactor      float64 // yarn and longrope: scale of cos and sin (0: derived from Factor)
	// longrope (Phi-3 128k, Phi-3.5, Phi-4-mini): each rotated pair's
	// wavelength is stretched by its short factor within the original
	// context and by its long factor beyond it.
	ShortFactor, LongFactor []float64
}

// Generation is the default sampling of generation_config.json. Zero
// values mean "not given". It is read for callers that want it: moco's
// commands take their sampling from their flags and ignore it, as
// llama.cpp does (transformers' generate applies it).
type Generation struct {
	DoSample          bool
	Temperature       float64
	TopK              int
	TopP              float64
	MinP              float64
	RepetitionPenalty float64
	MaxNewTokens      int
}

// families maps each supported model_type to the architectures that use it.
var families = map[string][]string{
	"llama":       {"LlamaForCausalLM"},
	"mistral":     {"MistralForCausalLM"},
	"qwen2":       {"Qwen2ForCausalLM"},
	"qwen3":       {"Qwen3ForCausalLM"},
	"gemma2":      {"Gemma2ForCausalLM"},
	"gemma3_text": {"Gemma3ForCausalLM"},
	"olmo2":       {"Olmo2ForCausalLM"},
	"olmo3":       {"Olmo3ForCausalLM"},
	"phi3":        {"Phi3ForCausalLM"},
}

// rawConfig is the subset of config.json that moco reads. Pointers tell
// "absent or null" from zero.
type rawConfig struct {
	ModelType         string          `json:"model_type"`
	Architectures     []string        `json:"architectures"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumLayers         int             `json:"num_hidden_layers"`
	NumHeads          int             `json:"num_attention_heads"`
	NumKVHeads        *int            `json:"num_key_value_heads"`
	HeadDim           *int            `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	MaxPositions      *int            `json:"max_position_embeddings"`
	OrigMaxPositions  *int            `json:"original_max_position_embeddings"`
	RMSNormEps        *float64        `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeLocalBaseFreq *float64        `json:"rope_local_base_freq"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	TieEmbeddings     *bool           `json:"tie_word_embeddings"`
	BOS               json.RawMessage `json:"bos_token_id"`
	EOS               json.RawMessage `json:"eos_token_id"`
	HiddenAct         *string         `json:"hidden_act"`
	HiddenActivation  *string         `json:"hidden_activation"`
	AttentionBias     *bool           `json:"attention_bias"`
	MLPBias           *bool           `json:"mlp_bias"`
	QueryPreAttn      *float64        `json:"query_pre_attn_scalar"`
	AttnSoftcap       *float64        `json:"attn_logit_softcapping"`
	FinalSoftcap      *float64        `json:"final_logit_softcapping"`
	SlidingWindow     *int            `json:"sliding_window"`
	SlidingPattern    *int            `json:"sliding_window_pattern"`
	LayerTypes        []string        `json:"layer_types"`
	UseSlidingWindow  *bool           `json:"use_sliding_window"`
	MaxWindowLayers   *int            `json:"max_window_layers"`
	PartialRotary     *float64        `json:"partial_rotary_factor"`
}

// ParseConfig reads a Hugging Face config.json. It refuses model types,
// architectures, activations and rope scalings that the forward pass does
// not implement, naming the field.
func ParseConfig(configJSON []byte) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(configJSON, &r); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	archs, ok := families[r.ModelType]
	if r.ModelType == "gemma3" {
		// The multimodal Gemma 3 (4B and up): its text model, whose
		// tensors Load finds under the language model's prefix.
		text, err := gemma3Text(configJSON)
		if err != nil {
			return nil, err
		}
		c, err := ParseConfig(text)
		if err != nil {
			return nil, fmt.Errorf("%w (in text_config)", err)
		}
		c.Multimodal = true
		return c, nil
	}
	if !ok {
		return nil, fmt.Errorf("config.json: model_type %q is not supported (supported: %s)", r.ModelType, supportedTypes())
	}
	c := &Config{ModelType: r.ModelType}
	for _, a := range r.Architectures {
		if !slices.Contains(archs, a) {
			return nil, fmt.Errorf("config.json: architectures %q is not supported for model_type %q (want %v)", a, r.ModelType, archs)
		}
	}
	c.Architecture = archs[0]

	c.HiddenSize, c.IntermediateSize = r.HiddenSize, r.IntermediateSize
	c.NumLayers, c.NumHeads = r.NumLayers, r.NumHeads
	c.VocabSize = r.VocabSize
	if r.MaxPositions != nil {
		// Absent, the context length is unknown (0); given, it must be one.
		if c.MaxPositions = *r.MaxPositions; c.MaxPositions <= 0 {
			return nil, fmt.Errorf("config.json: max_position_embeddings must be positive, got %d", c.MaxPositions)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumLayers},
		{"num_attention_heads", c.NumHeads}, {"vocab_size", c.VocabSize}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("config.json: %s must be positive, got %d", f.name, f.v)
		}
	}
	if err := c.checkBounds(); err != nil {
		return nil, err
	}
	c.NumKVHeads = c.NumHeads
	if r.NumKVHeads != nil {
		c.NumKVHeads = *r.NumKVHeads
	}
	if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
		return nil, fmt.Errorf("config.json: num_key_value_heads %d must be positive and divide num_attention_heads %d", c.NumKVHeads, c.NumHeads)
	}
	c.HeadDim = c.HiddenSize / c.NumHeads
	if r.HeadDim != nil {
		c.HeadDim = *r.HeadDim
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return nil, fmt.Errorf("config.json: head_dim %d must be positive and even", c.HeadDim)
	}
	if err := c.checkBounds(); err != nil {
		return nil, err
	}

	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		c.RMSNormEps = *r.RMSNormEps
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		return nil, fmt.Errorf("config.json: rms_norm_eps %v must be positive", c.RMSNormEps)
	}
	c.RopeTheta = 10000
	if c.ModelType == "gemma3_text" {
		c.RopeTheta = 1e6
	}
	if r.RopeTheta != nil {
		c.RopeTheta = *r.RopeTheta
	}
	if c.RopeTheta <= 0 {
		return nil, fmt.Errorf("config.json: rope_theta %v must be positive", c.RopeTheta)
	}

	// Hugging Face ties by default in Gemma only; Llama-family configs
	// default to separate lm_head weights.
	c.TieEmbeddings = c.ModelType == "gemma2" || c.ModelType == "gemma3_text"
	if r.TieEmbeddings != nil {
		c.TieEmbeddings = *r.TieEmbeddings
	}
	var err error
	if c.BOS, err = parseBOS(r.BOS); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if c.EOS, err = parseIDs("eos_token_id", r.EOS); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if err := c.checkIDs("config.json"); err != nil {
		return nil, err
	}

	// Activation: Gemma names it hidden_activation, the others hidden_act.
	c.Activation = "silu"
	if c.ModelType == "gemma2" || c.ModelType == "gemma3_text" {
		c.Activation = "gelu_pytorch_tanh"
	}
	field := "hidden_act"
	if r.HiddenActivation != nil {
		c.Activation, field = *r.HiddenActivation, "hidden_activation"
	} else if r.HiddenAct != nil {
		c.Activation = *r.HiddenAct
	}
	if c.Activation != "silu" && c.Activation != "gelu_pytorch_tanh" {
		return nil, fmt.Errorf("config.json: %s %q is not supported (want silu or gelu_pytorch_tanh)", field, c.Activation)
	}

	// Family switches.
	c.Norms, c.EmbedScale, c.QueryScale = "pre", 1, 1/math.Sqrt(float64(c.HeadDim))
	attnBias := r.AttentionBias != nil && *r.AttentionBias
	switch c.ModelType {
	case "llama", "gemma2", "gemma3_text", "olmo2", "olmo3", "qwen3":
		c.QKVBias, c.OBias = attnBias, attnBias
	case "qwen2":
		c.QKVBias = true
	}
	c.MLPBias = c.ModelType == "llama" && r.MLPBias != nil && *r.MLPBias
	switch c.ModelType {
	case "qwen3":
		c.QKNorm = "head"
	case "olmo2", "olmo3":
		c.QKNorm, c.Norms = "full", "post"
	case "phi3":
		c.FusedQKV, c.FusedGateUp = true, true
	case "gemma2", "gemma3_text":
		c.Norms, c.NormOffset = "sandwich", 1
		c.EmbedScale = float32(math.Sqrt(float64(c.HiddenSize)))
		if r.QueryPreAttn != nil {
			if *r.QueryPreAttn <= 0 {
				return nil, fmt.Errorf("config.json: query_pre_attn_scalar %v must be positive", *r.QueryPreAttn)
			}
			c.QueryScale = 1 / math.Sqrt(*r.QueryPreAttn)
		}
		if c.ModelType == "gemma3_text" {
			c.QKNorm = "head"
			c.RopeLocalTheta = 10000
			if r.RopeLocalBaseFreq != nil {
				c.RopeLocalTheta = *r.RopeLocalBaseFreq
			}
		}
	}
	if r.AttnSoftcap != nil {
		c.AttnSoftcap = *r.AttnSoftcap
	}
	if r.FinalSoftcap != nil {
		c.FinalSoftcap = *r.FinalSoftcap
	}
	if c.AttnSoftcap < 0 || c.FinalSoftcap < 0 {
		return nil, errors.New("config.json: attn_logit_softcapping and final_logit_softcapping must not be negative")
	}

	c.RotaryDim = c.HeadDim
	if r.PartialRotary != nil {
		f := *r.PartialRotary
		c.RotaryDim = int(float64(c.HeadDim) * f)
		if f <= 0 || f > 1 || c.RotaryDim%2 != 0 || c.RotaryDim == 0 {
			return nil, fmt.Errorf("config.json: partial_rotary_factor %v gives %d rotary dims of %d (must be even and positive)", f, c.RotaryDim, c.HeadDim)
		}
	}
	if c.RopeScaling, err = parseRopeScaling(r.RopeScaling, c.MaxPositions, r.OrigMaxPositions); err != nil {
		return nil, err
	}
	if s := c.RopeScaling; s != nil && s.Type == "longrope" && len(s.ShortFactor) != c.RotaryDim/2 {
		return nil, fmt.Errorf("config.json: rope_scaling longrope has %d short and long factors, want one per rotated pair (%d)", len(s.ShortFactor), c.RotaryDim/2)
	}
	if err := c.parseSliding(&r); err != nil {
		return nil, err
	}
	return c, nil
}

// Bounds on the dimensions that size allocations, far above any published
// model (Llama 3.1 405B: 126 layers, hidden 16384, intermediate 53248;
// vocabularies reach 262144). A config beyond them is corrupt or hostile;
// within them, New checks every dimension against the checkpoint's tensors
// before anything sized by the config is allocated.
const (
	maxLayers       = 1 << 10
	maxHidden       = 1 << 17
	maxIntermediate = 1 << 20
	maxHeads        = 1 << 12
	maxHeadDim      = 1 << 12
	maxVocab        = 1 << 23
)

// checkBounds refuses dimensions beyond the bounds above.
func (c *Config) checkBounds() error {
	for _, f := range []struct {
		name   string
		v, max int
	}{{"num_hidden_layers", c.NumLayers, maxLayers}, {"hidden_size", c.HiddenSize, maxHidden},
		{"intermediate_size", c.IntermediateSize, maxIntermediate}, {"num_attention_heads", c.NumHeads, maxHeads},
		{"num_key_value_heads", c.NumKVHeads, maxHeads}, {"head_dim", c.HeadDim, maxHeadDim}, {"vocab_size", c.VocabSize, maxVocab}} {
		if f.v > f.max {
			return fmt.Errorf("config.json: %s %d exceeds the limit of %d (a corrupt config?)", f.name, f.v, f.max)
		}
	}
	return nil
}

// checkIDs refuses BOS and EOS ids outside the vocabulary.
func (c *Config) checkIDs(file string) error {
	if c.BOS >= c.VocabSize {
		return fmt.Errorf("%s: bos_token_id %d is outside the vocabulary (vocab_size %d)", file, c.BOS, c.VocabSize)
	}
	for _, id := range c.EOS {
		if id >= c.VocabSize {
			return fmt.Errorf("%s: eos_token_id %d is outside the vocabulary (vocab_size %d)", file, id, c.VocabSize)
		}
	}
	return nil
}

// parseSliding fills SlidingWindow and Sliding from sliding_window and
// layer_types (or, for older configs, the family's fixed pattern).
func (c *Config) parseSliding(r *rawConfig) error {
	c.Sliding = make([]bool, c.NumLayers)
	if r.LayerTypes != nil && len(r.LayerTypes) != c.NumLayers {
		return fmt.Errorf("config.json: layer_types has %d entries for %d layers", len(r.LayerTypes), c.NumLayers)
	}
	for i, t := range r.LayerTypes {
		switch t {
		case "full_attention":
		case "sliding_attention":
			c.Sliding[i] = true
		default:
			return fmt.Errorf("config.json: layer_types[%d] %q is not supported (want full_attention or sliding_attention)", i, t)
		}
	}
	if r.SlidingWindow != nil {
		c.SlidingWindow = *r.SlidingWindow
	}
	if r.LayerTypes == nil {
		for i := range c.Sliding {
			switch c.ModelType {
			case "mistral", "phi3":
				c.Sliding[i] = true
			case "qwen2", "qwen3":
				c.Sliding[i] = r.UseSlidingWindow != nil && *r.UseSlidingWindow &&
					r.MaxWindowLayers != nil && i >= *r.MaxWindowLayers
			case "gemma2":
				c.Sliding[i] = i%2 == 0
			case "gemma3_text":
				p := 6
				if r.SlidingPattern != nil {
					p = *r.SlidingPattern
				}
				c.Sliding[i] = p <= 0 || (i+1)%p != 0
			}
		}
	}
	if c.SlidingWindow <= 0 {
		// Without a window every layer is global (Mistral and Phi-3 with
		// sliding_window null).
		if c.SlidingWindow < 0 {
			return fmt.Errorf("config.json: sliding_window %d must not be negative", c.SlidingWindow)
		}
		c.SlidingWindow = 0
		clear(c.Sliding)
	}
	return nil
}

func supportedTypes() string {
	ts := make([]string, 0, len(families))
	for t := range families {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return fmt.Sprint(ts)
}

// parseRopeScaling reads rope_scaling (null, or an object with "type" or
// "rope_type"); topOrig is config.json's own original_max_position_embeddings
// (Phi-3 keeps it there).
func parseRopeScaling(raw json.RawMessage, maxPos int, topOrig *int) (*RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r struct {
		Type            string    `json:"type"`
		RopeType        string    `json:"rope_type"`
		Factor          *float64  `json:"factor"`
		Orig            int       `json:"original_max_position_embeddings"`
		Low             *float64  `json:"low_freq_factor"`
		High            *float64  `json:"high_freq_factor"`
		BetaFast        *float64  `json:"beta_fast"`
		BetaSlow        *float64  `json:"beta_slow"`
		AttentionFactor *float64  `json:"attention_factor"`
		Short           []float64 `json:"short_factor"`
		Long            []float64 `json:"long_factor"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("config.json: rope_scaling: %w", err)
	}
	t := r.RopeType
	if t == "" {
		t = r.Type
	}
	switch t {
	case "default":
		return nil, nil
	case "su":
		t = "longrope" // its name in Phi-3's first configs
	}
	s := &RopeScaling{Type: t, OriginalMaxPositions: r.Orig}
	switch t {
	case "linear", "dynamic", "llama3", "yarn":
	case "longrope":
		return parseLongRope(s, r.Short, r.Long, r.Factor, r.AttentionFactor, maxPos, topOrig)
	default:
		return nil, fmt.Errorf("config.json: rope_scaling type %q is not supported (want linear, dynamic, llama3, yarn or longrope)", t)
	}
	if r.Factor == nil || *r.Factor <= 0 {
		return nil, fmt.Errorf("config.json: rope_scaling %s needs a positive factor", t)
	}
	s.Factor = *r.Factor
	if s.OriginalMaxPositions <= 0 {
		s.OriginalMaxPositions = maxPos
	}
	switch t {
	case "llama3":
		if r.Low == nil || r.High == nil || *r.High <= *r.Low || r.Orig <= 0 {
			return nil, errors.New("config.json: rope_scaling llama3 needs low_freq_factor < high_freq_factor and original_max_position_embeddings")
		}
		s.LowFreqFactor, s.HighFreqFactor = *r.Low, *r.High
	case "yarn":
		s.BetaFast, s.BetaSlow = 32, 1
		if r.BetaFast != nil {
			s.BetaFast = *r.BetaFast
		}
		if r.BetaSlow != nil {
			s.BetaSlow = *r.BetaSlow
		}
		if r.AttentionFactor != nil {
			s.AttentionFactor = *r.AttentionFactor
		}
	case "dynamic":
		if s.OriginalMaxPositions <= 0 {
			return nil, errors.New("config.json: rope_scaling dynamic needs max_position_embeddings")
		}
	}
	return s, nil
}

// parseLongRope completes a longrope scaling as Hugging Face's
// _compute_longrope_parameters does: the original context is config.json's
// original_max_position_embeddings (or rope_scaling's, or else
// max_position_embeddings); where it is given, the factor is
// max_position_embeddings over it; and the attention factor, unless given,
// is sqrt(1 + ln(factor) / ln(original context)) for factors above 1.
func parseLongRope(s *RopeScaling, short, long []float64, factor, attn *float64, maxPos int, topOrig *int) (*RopeScaling, error) {
	if len(short) == 0 || len(short) != len(long) {
		return nil, fmt.Errorf("config.json: rope_scaling longrope needs short_factor and long_factor lists of one length (got %d and %d)", len(short), len(long))
	}
	for _, f := range append(slices.Clip(short), long...) {
		if !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("config.json: rope_scaling longrope factors must be positive and finite, got %v", f)
		}
	}
	s.ShortFactor, s.LongFactor = short, long
	if topOrig != nil {
		s.OriginalMaxPositions = *topOrig
	}
	if s.OriginalMaxPositions < 0 {
		return nil, fmt.Errorf("config.json: original_max_position_embeddings must be positive, got %d", s.OriginalMaxPositions)
	}
	switch {
	case s.OriginalMaxPositions > 0 && maxPos > 0:
		s.Factor = float64(maxPos) / float64(s.OriginalMaxPositions)
	case s.OriginalMaxPositions <= 0 && maxPos > 0:
		s.OriginalMaxPositions = maxPos
		if factor != nil {
			s.Factor = *factor
		}
	default:
		return nil, errors.New("config.json: rope_scaling longrope needs max_position_embeddings")
	}
	s.AttentionFactor = 1
	switch {
	case attn != nil:
		if !(*attn > 0) || math.IsInf(*attn, 0) {
			return nil, fmt.Errorf("config.json: rope_scaling attention_factor must be positive, got %v", *attn)
		}
		s.AttentionFactor = *attn
	case s.Factor > 1:
		if s.OriginalMaxPositions < 2 {
			return nil, fmt.Errorf("config.json: rope_scaling longrope: original_max_position_embeddings %d is too small", s.OriginalMaxPositions)
		}
		s.AttentionFactor = math.Sqrt(1 + math.Log(s.Factor)/math.Log(float64(s.OriginalMaxPositions)))
	}
	return s, nil
}

func parseBOS(raw json.RawMessage) (int, error) {
	ids, err := parseIDs("bos_token_id", raw)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return -1, nil
	}
	return ids[0], nil
}

// parseIDs reads a token id field that may be null, an integer or a list.
// Its errors leave the file to the caller: config.json and
// generation_config.json both hold these fields.
func parseIDs(field string, raw json.RawMessage) ([]int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		if one < 0 {
			return nil, fmt.Errorf("%s %d is negative", field, one)
		}
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s must be an integer or a list of integers, got %s", field, raw)
	}
	for _, id := range list {
		if id < 0 {
			return nil, fmt.Errorf("%s %d is negative", field, id)
		}
	}
	return list, nil
}

// mergeGeneration folds generation_config.json into c: its eos ids join
// c.EOS, its bos id fills a missing one, and its sampling defaults fill
// c.Generation.
func (c *Config) mergeGeneration(data []byte) error {
	var g struct {
		BOS         json.RawMessage `json:"bos_token_id"`
		EOS         json.RawMessage `json:"eos_token_id"`
		DoSample    bool            `json:"do_sample"`
		Temperature float64         `json:"temperature"`
		// Counts are read as numbers: transformers writes what it was
		// given, so a checkpoint may say 20.0 (moco only reports them).
		TopK              float64 `json:"top_k"`
		TopP              float64 `json:"top_p"`
		MinP              float64 `json:"min_p"`
		RepetitionPenalty float64 `json:"repetition_penalty"`
		MaxNewTokens      float64 `json:"max_new_tokens"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("generation_config.json: %w", err)
	}
	eos, err := parseIDs("eos_token_id", g.EOS)
	if err != nil {
		return fmt.Errorf("generation_config.json: %w", err)
	}
	for _, id := range eos {
		if !slices.Contains(c.EOS, id) {
			c.EOS = append(c.EOS, id)
		}
	}
	if c.BOS < 0 {
		if c.BOS, err = parseBOS(g.BOS); err != nil {
			return fmt.Errorf("generation_config.json: %w", err)
		}
	}
	if err := c.checkIDs("generation_config.json"); err != nil {
		return err
	}
	c.Generation = Generation{DoSample: g.DoSample, Temperature: g.Temperature, TopK: clampInt(g.TopK), TopP: g.TopP,
		MinP: g.MinP, RepetitionPenalty: g.RepetitionPenalty, MaxNewTokens: clampInt(g.MaxNewTokens)}
	return nil
}

// clampInt is x as an int, truncated, and 0 where x is no usable count
// (negative, NaN or past int32).
func clampInt(x float64) int {
	if !(x >= 0) || x > math.MaxInt32 {
		return 0
	}
	return int(x)
}

// LoadConfig reads dir/config.json and, when present,
// dir/generation_config.json.
func LoadConfig(dir string) (*Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, modeldir.Wrap(dir, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	gen, err := os.ReadFile(filepath.Join(dir, "generation_config.json"))
	switch {
	case err == nil:
		if err := c.mergeGeneration(gen); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	return c, nil
}
