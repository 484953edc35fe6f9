package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/mocolab/moco/engine"
)

// modelSummary is a model folder's config as the engine reads it: the shape
// and, in words, every setting that departs from a plain Llama.
type modelSummary struct {
	ModelType        string   `json:"model_type"`
	Architecture     string   `json:"architecture"`
	HiddenSize       int      `json:"hidden_size"`
	IntermediateSize int      `json:"intermediate_size"`
	NumLayers        int      `json:"num_layers"`
	NumHeads         int      `json:"num_heads"`
	NumKVHeads       int      `json:"num_kv_heads"`
	HeadDim          int      `json:"head_dim"`
	VocabSize        int      `json:"vocab_size"`
	MaxPositions     int      `json:"max_positions"`
	RMSNormEps       float64  `json:"rms_norm_eps"`
	RopeTheta        float64  `json:"rope_theta"`
	Activation       string   `json:"activation"`
	TieEmbeddings    bool     `json:"tie_embeddings"`
	BOS              int      `json:"bos"`
	EOS              []int    `json:"eos"`
	Features         []string `json:"features"`
}

// summarizeModel loads dir's config with the engine. A folder the engine
// cannot run is still inspected: the error is reported beside the listing.
func summarizeModel(dir string) (*modelSummary, string) {
	c, err := engine.LoadConfig(dir)
	if err != nil {
		return nil, oneLine(err.Error())
	}
	return &modelSummary{
		ModelType: c.ModelType, Architecture: c.Architecture,
		HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize,
		NumLayers: c.NumLayers, NumHeads: c.NumHeads, NumKVHeads: c.NumKVHeads, HeadDim: c.HeadDim,
		VocabSize: c.VocabSize, MaxPositions: c.MaxPositions,
		RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta, Activation: c.Activation,
		TieEmbeddings: c.TieEmbeddings, BOS: c.BOS, EOS: c.EOS,
		Features: modelFeatures(c),
	}, ""
}

// modelFeatures lists the settings of c that a plain Llama does not have.
func modelFeatures(c *engine.Config) []string {
	f := []string{}
	add := func(format string, args ...any) { f = append(f, fmt.Sprintf(format, args...)) }
	if s := c.RopeScaling; s != nil {
		desc := fmt.Sprintf("rope scaling %s, factor %s", s.Type, num(s.Factor))
		switch s.Type {
		case "llama3":
			desc += fmt.Sprintf(", low/high frequency factors %s/%s", num(s.LowFreqFactor), num(s.HighFreqFactor))
		case "yarn":
			desc += fmt.Sprintf(", beta fast/slow %s/%s", num(s.BetaFast), num(s.BetaSlow))
			if s.AttentionFactor != 0 {
				desc += ", attention factor " + num(s.AttentionFactor)
			}
		case "longrope":
			desc += fmt.Sprintf(", %d short and long factors, attention factor %.4g", len(s.ShortFactor), s.AttentionFactor)
		}
		if s.OriginalMaxPositions > 0 {
			desc += fmt.Sprintf(", original context %d", s.OriginalMaxPositions)
		}
		add("%s", desc)
	}
	if c.Multimodal {
		add("text model of a multimodal checkpoint (its vision tower is not loaded)")
	}
	if c.RopeLocalTheta != 0 {
		add("rope theta %s on sliding layers", num(c.RopeLocalTheta))
	}
	if c.RotaryDim != 0 && c.RotaryDim != c.HeadDim {
		add("partial rotary: %d of %d head dims", c.RotaryDim, c.HeadDim)
	}
	if c.SlidingWindow > 0 {
		var layers []string
		for i, s := range c.Sliding {
			if s {
				layers = append(layers, strconv.Itoa(i))
			}
		}
		add("sliding window %d on %d of %d layers (%s)", c.SlidingWindow, len(layers), c.NumLayers, strings.Join(layers, ","))
	}
	if c.AttnSoftcap != 0 {
		add("attention soft-capping %s", num(c.AttnSoftcap))
	}
	if c.FinalSoftcap != 0 {
		add("final logit soft-capping %s", num(c.FinalSoftcap))
	}
	if want := 1 / math.Sqrt(float64(c.HeadDim)); math.Abs(c.QueryScale-want) > 1e-12*want {
		add("query scale %.6g (1/sqrt(%.6g))", c.QueryScale, 1/(c.QueryScale*c.QueryScale))
	}
	var biases []string
	if c.QKVBias {
		biases = append(biases, "q/k/v")
	}
	if c.OBias {
		biases = append(biases, "o")
	}
	if c.MLPBias {
		biases = append(biases, "mlp")
	}
	if len(biases) > 0 {
		add("biases on %s", strings.Join(biases, ", "))
	}
	switch c.QKNorm {
	case "head":
		add("q/k norm per head")
	case "full":
		add("q/k norm over the full projection")
	}
	switch c.Norms {
	case "sandwich":
		add("sandwich norms (before and after each sublayer)")
	case "post":
		add("post norms (after each sublayer)")
	}
	if c.NormOffset != 0 {
		add("norm weights offset by %s", num(float64(c.NormOffset)))
	}
	if c.EmbedScale != 0 && c.EmbedScale != 1 {
		add("embeddings scaled by %s", num(float64(c.EmbedScale)))
	}
	if c.FusedQKV {
		add("fused qkv_proj")
	}
	if c.FusedGateUp {
		add("fused gate_up_proj")
	}
	if c.TieEmbeddings {
		add("tied embeddings")
	}
	return f
}

// num formats a float compactly (10000, 0.5, 1e-06).
func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func (m *modelSummary) print(w io.Writer) {
	fmt.Fprintf(w, "model: %s (%s)\n", m.Architecture, m.ModelType)
	fmt.Fprintf(w, "  hidden %d, intermediate %d, %d layers, %d heads, %d kv heads, head dim %d\n",
		m.HiddenSize, m.IntermediateSize, m.NumLayers, m.NumHeads, m.NumKVHeads, m.HeadDim)
	fmt.Fprintf(w, "  vocab %d, max positions %d, rms_norm_eps %s, rope_theta %s, activation %s\n",
		m.VocabSize, m.MaxPositions, num(m.RMSNormEps), num(m.RopeTheta), m.Activation)
	bos := "none"
	if m.BOS >= 0 {
		bos = strconv.Itoa(m.BOS)
	}
	fmt.Fprintf(w, "  bos %s, eos %v\n", bos, m.EOS)
	for _, f := range m.Features {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
