package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// This file checks the forward pass against a second, deliberately naive
// implementation in float64 that recomputes every position from scratch
// with an explicit causal and sliding-window mask. The models are tiny
// random-weight checkpoints built in memory for each family, so these
// tests need nothing from ../shared.

// synthBase is the shape every synthetic config starts from.
var synthBase = map[string]any{
	"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
	"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40,
	"max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
	"bos_token_id": 1, "eos_token_id": 2,
}

var synthCases = []struct {
	name  string
	dtype safetensors.DType
	cfg   map[string]any
}{
	{"llama-biases", safetensors.F32, map[string]any{"model_type": "llama", "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": false}},
	{"llama-linear-f16", safetensors.F16, map[string]any{"model_type": "llama", "tie_word_embeddings": true, "rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}},
	{"llama-dynamic", safetensors.F32, map[string]any{"model_type": "llama", "max_position_embeddings": 16, "rope_scaling": map[string]any{"rope_type": "dynamic", "factor": 2.0}}},
	{"llama-yarn", safetensors.F32, map[string]any{"model_type": "llama", "rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}}},
	{"llama-llama3", safetensors.F32, map[string]any{"model_type": "llama", "rope_theta": 500000.0, "rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}},
	{"mistral-window-bf16", safetensors.BF16, map[string]any{"model_type": "mistral", "sliding_window": 5, "head_dim": 12}},
	{"qwen2-window", safetensors.F32, map[string]any{"model_type": "qwen2", "tie_word_embeddings": true, "use_sliding_window": true, "max_window_layers": 1, "sliding_window": 5}},
	{"qwen3", safetensors.F32, map[string]any{"model_type": "qwen3", "head_dim": 16, "tie_word_embeddings": true}},
	{"gemma2", safetensors.F32, map[string]any{"model_type": "gemma2", "head_dim": 8, "query_pre_attn_scalar": 10, "attn_logit_softcapping": 0.8, "final_logit_softcapping": 2.0, "sliding_window": 5}},
	{"gemma3", safetensors.F32, map[string]any{"model_type": "gemma3_text", "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 5,
		"layer_types": []string{"sliding_attention", "full_attention"}, "rope_local_base_freq": 100.0, "rope_theta": 1e6, "rope_scaling": map[string]any{"rope_type": "linear", "factor": 8.0}}},
	{"olmo2", safetensors.F32, map[string]any{"model_type": "olmo2"}},
	{"olmo3-window", safetensors.F32, map[string]any{"model_type": "olmo3", "sliding_window": 5, "layer_types": []string{"sliding_attention", "full_attention"}}},
	{"phi3-window", safetensors.F32, map[string]any{"model_type": "phi3", "partial_rotary_factor": 0.5, "sliding_window": 5}},
	// Phi-4-mini's layout: partial rotary with longrope, the long factors
	// taking over past the original context (16) within the test's tokens.
	{"phi3-longrope", safetensors.F32, map[string]any{"model_type": "phi3", "partial_rotary_factor": 0.5, "original_max_position_embeddings": 16,
		"rope_scaling": map[string]any{"type": "longrope", "short_factor": []float64{1, 1.7}, "long_factor": []float64{4.5, 9}}}},
}

func synthConfig(t testing.TB, extra map[string]any) *Config {
	t.Helper()
	m := map[string]any{}
	for k, v := range synthBase {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	data, _ := json.Marshal(m)
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// synthShapes lists the tensors a checkpoint of c holds, in Hugging Face
// names.
func synthShapes(c *Config) map[string][]int {
	D, I, hd := c.HiddenSize, c.IntermediateSize, c.HeadDim
	q, kv := c.NumHeads*hd, c.NumKVHeads*hd
	s := map[string][]int{"model.embed_tokens.weight": {c.VocabSize, D}, "model.norm.weight": {D}}
	if !c.TieEmbeddings {
		s["lm_head.weight"] = []int{c.VocabSize, D}
	}
	for l := range c.NumLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		norms := map[string][]string{"pre": {"input_layernorm", "post_attention_layernorm"},
			"sandwich": {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"},
			"post":     {"post_attention_layernorm", "post_feedforward_layernorm"}}[c.Norms]
		for _, n := range norms {
			s[p+n+".weight"] = []int{D}
		}
		a, f := p+"self_attn.", p+"mlp."
		if c.FusedQKV {
			s[a+"qkv_proj.weight"] = []int{q + 2*kv, D}
			s[f+"gate_up_proj.weight"] = []int{2 * I, D}
		} else {
			s[a+"q_proj.weight"], s[a+"k_proj.weight"], s[a+"v_proj.weight"] = []int{q, D}, []int{kv, D}, []int{kv, D}
			s[f+"gate_proj.weight"], s[f+"up_proj.weight"] = []int{I, D}, []int{I, D}
		}
		s[a+"o_proj.weight"], s[f+"down_proj.weight"] = []int{D, q}, []int{D, I}
		if c.QKVBias {
			s[a+"q_proj.bias"], s[a+"k_proj.bias"], s[a+"v_proj.bias"] = []int{q}, []int{kv}, []int{kv}
		}
		if c.OBias {
			s[a+"o_proj.bias"] = []int{D}
		}
		if c.MLPBias {
			s[f+"gate_proj.bias"], s[f+"up_proj.bias"], s[f+"down_proj.bias"] = []int{I}, []int{I}, []int{D}
		}
		switch c.QKNorm {
		case "head":
			s[a+"q_norm.weight"], s[a+"k_norm.weight"] = []int{hd}, []int{hd}
		case "full":
			s[a+"q_norm.weight"], s[a+"k_norm.weight"] = []int{q}, []int{kv}
		}
	}
	return s
}

// synthModel builds a random-weight model of c stored as dtype and returns
// it with the weights the reference sees (the stored values, widened).
func synthModel(t testing.TB, c *Config, dtype safetensors.DType, seed uint64) (*Model, map[string][]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var tensors []*safetensors.Tensor
	ref := map[string][]float64{}
	for name, shape := range synthShapes(c) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			switch {
			case strings.HasSuffix(name, "norm.weight") && c.NormOffset == 0:
				v[i] = float32(1 + 0.1*rng.NormFloat64())
			case strings.HasSuffix(name, "norm.weight"), strings.HasSuffix(name, ".bias"):
				v[i] = float32(0.1 * rng.NormFloat64())
			default:
				v[i] = float32(0.3 * rng.NormFloat64())
			}
		}
		f32 := &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: f32Bytes(v)}
		st, err := safetensors.Convert(f32, dtype)
		if err != nil {
			t.Fatal(err)
		}
		st.Name = name
		wide, err := safetensors.ToF32(st)
		if err != nil {
			t.Fatal(err)
		}
		r := make([]float64, n)
		for i, x := range wide {
			r[i] = float64(x)
		}
		ref[name] = r
		tensors = append(tensors, st)
	}
	m, err := New(c, safetensors.NewMemSource(tensors), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m, ref
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

// refLogits is the naive float64 forward pass: every position's hidden
// state is computed with attention over an explicitly masked score row.
func refLogits(c *Config, w map[string][]float64, tokens []int) [][]float64 {
	D, hd, n := c.HiddenSize, c.HeadDim, len(tokens)
	nq, nkv := c.NumHeads, c.NumKVHeads
	off := float64(c.NormOffset)
	norm := func(x []float64, name string) []float64 {
		wt, ok := w[name]
		if !ok {
			return x
		}
		return rmsRef(x, wt, c.RMSNormEps, off)
	}
	// linear applies rows r0.. of matrix name (and its bias) to x.
	linear := func(x []float64, name string, r0, rows int) []float64 {
		m := w[name+".weight"]
		cols := len(x)
		y := make([]float64, rows)
		for i := range y {
			for j := range cols {
				y[i] += m[(r0+i)*cols+j] * x[j]
			}
			if b, ok := w[name+".bias"]; ok {
				y[i] += b[r0+i]
			}
		}
		return y
	}
	x := make([][]float64, n)
	for p, id := range tokens {
		x[p] = make([]float64, D)
		for j := range D {
			x[p][j] = w["model.embed_tokens.weight"][id*D+j] * float64(c.EmbedScale)
		}
	}
	for l := range c.NumLayers {
		pre := fmt.Sprintf("model.layers.%d.", l)
		a, f := pre+"self_attn.", pre+"mlp."
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for p := range n {
			h := norm(x[p], pre+"input_layernorm.weight")
			if c.FusedQKV {
				q[p] = linear(h, a+"qkv_proj", 0, nq*hd)
				k[p] = linear(h, a+"qkv_proj", nq*hd, nkv*hd)
				v[p] = linear(h, a+"qkv_proj", (nq+nkv)*hd, nkv*hd)
			} else {
				q[p], k[p], v[p] = linear(h, a+"q_proj", 0, nq*hd), linear(h, a+"k_proj", 0, nkv*hd), linear(h, a+"v_proj", 0, nkv*hd)
			}
			headNorm := func(y []float64, name string) {
				if c.QKNorm == "full" {
					copy(y, norm(y, name))
				} else if c.QKNorm == "head" {
					for i := 0; i < len(y); i += hd {
						copy(y[i:i+hd], norm(y[i:i+hd], name))
					}
				}
			}
			headNorm(q[p], a+"q_norm.weight")
			headNorm(k[p], a+"k_norm.weight")
			for i := 0; i < len(q[p]); i += hd {
				ropeRef(c, c.Sliding[l], p, q[p][i:i+hd])
			}
			for i := 0; i < len(k[p]); i += hd {
				ropeRef(c, c.Sliding[l], p, k[p][i:i+hd])
			}
		}
		for p := range n {
			att := make([]float64, nq*hd)
			for h := range nq {
				kh := h / (nq / nkv)
				scores := make([]float64, n)
				mx := math.Inf(-1)
				for j := range n {
					visible := j <= p && (!c.Sliding[l] || p-j < c.SlidingWindow)
					if !visible {
						scores[j] = math.Inf(-1)
						continue
					}
					var s float64
					for i := range hd {
						s += q[p][h*hd+i] * k[j][kh*hd+i]
					}
					s *= c.QueryScale
					if c.AttnSoftcap > 0 {
						s = c.AttnSoftcap * math.Tanh(s/c.AttnSoftcap)
					}
					scores[j] = s
					mx = math.Max(mx, s)
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					sum += scores[j]
				}
				for j := range scores {
					for i := range hd {
						att[h*hd+i] += scores[j] / sum * v[j][kh*hd+i]
					}
				}
			}
			o := linear(att, a+"o_proj", 0, D)
			if c.Norms != "pre" { // Llama's post_attention_layernorm is the MLP's input norm
				o = norm(o, pre+"post_attention_layernorm.weight")
			}
			for j := range D {
				x[p][j] += o[j]
			}
			var h []float64
			switch c.Norms {
			case "pre":
				h = norm(x[p], pre+"post_attention_layernorm.weight")
			case "sandwich":
				h = norm(x[p], pre+"pre_feedforward_layernorm.weight")
			default:
				h = x[p]
			}
			var g, u []float64
			if c.FusedGateUp {
				g, u = linear(h, f+"gate_up_proj", 0, c.IntermediateSize), linear(h, f+"gate_up_proj", c.IntermediateSize, c.IntermediateSize)
			} else {
				g, u = linear(h, f+"gate_proj", 0, c.IntermediateSize), linear(h, f+"up_proj", 0, c.IntermediateSize)
			}
			for i, z := range g {
				if c.Activation == "silu" {
					g[i] = z / (1 + math.Exp(-z)) * u[i]
				} else {
					g[i] = 0.5 * z * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(z+0.044715*z*z*z))) * u[i]
				}
			}
			d := norm(linear(g, f+"down_proj", 0, D), pre+"post_feedforward_layernorm.weight")
			for j := range D {
				x[p][j] += d[j]
			}
		}
	}
	head := "lm_head"
	if c.TieEmbeddings {
		head = "model.embed_tokens"
	}
	out := make([][]float64, n)
	for p := range n {
		out[p] = linear(norm(x[p], "model.norm.weight"), head, 0, c.VocabSize)
		if c.FinalSoftcap > 0 {
			for i, z := range out[p] {
				out[p][i] = c.FinalSoftcap * math.Tanh(z/c.FinalSoftcap)
			}
		}
	}
	return out
}

func rmsRef(x, w []float64, eps, off float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * r * (w[i] + off)
	}
	return y
}

// ropeRef rotates one head at position pos, computing each frequency from
// the Hugging Face formulas of the configured rope type.
func ropeRef(c *Config, sliding bool, pos int, x []float64) {
	dim := c.RotaryDim
	base, s := c.RopeTheta, c.RopeScaling
	if sliding && c.RopeLocalTheta > 0 {
		base, s = c.RopeLocalTheta, nil
	}
	mscale := 1.0
	if s != nil && s.Type == "dynamic" && pos+1 > s.OriginalMaxPositions {
		seq := float64(pos + 1)
		base *= math.Pow(s.Factor*seq/float64(s.OriginalMaxPositions)-(s.Factor-1), float64(dim)/float64(dim-2))
	}
	freq := make([]float64, dim/2)
	for i := range freq {
		freq[i] = 1 / math.Pow(base, float64(2*i)/float64(dim))
	}
	if s != nil {
		switch s.Type {
		case "linear":
			for i := range freq {
				freq[i] /= s.Factor
			}
		case "llama3":
			orig := float64(s.OriginalMaxPositions)
			for i, f := range freq {
				wl := 2 * math.Pi / f
				if wl > orig/s.LowFreqFactor {
					freq[i] = f / s.Factor
				} else if wl >= orig/s.HighFreqFactor {
					sm := (orig/wl - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
					freq[i] = (1-sm)*f/s.Factor + sm*f
				}
			}
		case "longrope":
			// _compute_longrope_parameters: the attention factor from
			// max_position_embeddings over the original context; the long
			// factors once the sequence (here, up to pos) outgrows it.
			ratio := float64(c.MaxPositions) / float64(s.OriginalMaxPositions)
			mscale = math.Sqrt(1 + math.Log(ratio)/math.Log(float64(s.OriginalMaxPositions)))
			ext := s.ShortFactor
			if pos+1 > s.OriginalMaxPositions {
				ext = s.LongFactor
			}
			for i := range freq {
				freq[i] = 1 / (ext[i] * math.Pow(base, float64(2*i)/float64(dim)))
			}
		case "yarn":
			mscale = 0.1*math.Log(s.Factor) + 1
			dimOf := func(rot float64) float64 {
				return float64(dim) * math.Log(float64(s.OriginalMaxPositions)/(rot*2*math.Pi)) / (2 * math.Log(base))
			}
			low, high := math.Max(math.Floor(dimOf(s.BetaFast)), 0), math.Min(math.Ceil(dimOf(s.BetaSlow)), float64(dim-1))
			for i, f := range freq {
				ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
				freq[i] = f/s.Factor*ramp + f*(1-ramp)
			}
		}
	}
	h := dim / 2
	for i, f := range freq {
		cs, sn := mscale*math.Cos(float64(pos)*f), mscale*math.Sin(float64(pos)*f)
		a, b := x[i], x[i+h]
		x[i], x[i+h] = a*cs-b*sn, b*cs+a*sn
	}
}

func synthTokens(n, vocab int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 11))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

// TestSyntheticFamilies compares every family's logits at every position
// with the naive reference, over more tokens than one chunk and many
// times the sliding window.
func TestSyntheticFamilies(t *testing.T) {
	for i, tc := range synthCases {
		t.Run(tc.name, func(t *testing.T) {
			c := synthConfig(t, tc.cfg)
			m, w := synthModel(t, c, tc.dtype, uint64(i))
			tokens := synthTokens(chunk+16, c.VocabSize, uint64(i))
			got, err := m.NewSession(256).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			want := refLogits(c, w, tokens)
			V := c.VocabSize
			var worst float64
			for p := range tokens {
				for j := range V {
					worst = math.Max(worst, math.Abs(float64(got[p*V+j])-want[p][j]))
				}
			}
			if worst > 1e-4 {
				t.Errorf("max |logit - reference| %.3g > 1e-4", worst)
			}
		})
	}
}

// TestIncrementalEqualsBatch feeds the same tokens token by token, in
// uneven pieces, and all at once: the logits must agree, since every row
// of a batched product equals the single-token product. AMX prefill (16
// tokens or more) adds in another order, so there the yardstick is the
// reference's.
func TestIncrementalEqualsBatch(t *testing.T) {
	tol := 1e-5
	if strings.Contains(kernels.Impl(), "amx") {
		tol = 1e-4
	}
	for i, tc := range synthCases {
		t.Run(tc.name, func(t *testing.T) {
			c := synthConfig(t, tc.cfg)
			m, _ := synthModel(t, c, tc.dtype, uint64(i))
			tokens := synthTokens(chunk+9, c.VocabSize, uint64(i)+100)
			V := c.VocabSize
			all, err := m.NewSession(256).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			one := m.NewSession(256)
			pieces := m.NewSession(256)
			for p, id := range tokens {
				lg, err := one.Forward([]int{id})
				if err != nil {
					t.Fatal(err)
				}
				assertClose(t, fmt.Sprintf("token-by-token position %d", p), lg, all[p*V:(p+1)*V], tol)
			}
			for p := 0; p < len(tokens); {
				q := min(len(tokens), p+1+p%7)
				lg, err := pieces.Forward(tokens[p:q])
				if err != nil {
					t.Fatal(err)
				}
				assertClose(t, fmt.Sprintf("pieces ending at %d", q-1), lg, all[(q-1)*V:q*V], tol)
				p = q
			}
		})
	}
}

// TestTruncate rewinds a session and feeds other tokens: the result must
// equal a fresh session fed the same sequence.
func TestTruncate(t *testing.T) {
	c := synthConfig(t, synthCases[5].cfg) // sliding window
	m, _ := synthModel(t, c, safetensors.F32, 5)
	a, b := synthTokens(30, c.VocabSize, 1), synthTokens(12, c.VocabSize, 2)
	s := m.NewSession(0)
	if _, err := s.Forward(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(20); err != nil {
		t.Fatal(err)
	}
	if s.Pos() != 20 {
		t.Fatalf("Pos %d after Truncate(20)", s.Pos())
	}
	got, err := s.ForwardAll(b)
	if err != nil {
		t.Fatal(err)
	}
	fresh := m.NewSession(0)
	want, err := fresh.ForwardAll(append(append([]int(nil), a[:20]...), b...))
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "after Truncate", got, want[20*c.VocabSize:], 1e-5)
	assertClose(t, "Hidden after Truncate", s.Hidden(), fresh.Hidden(), 1e-5)
	for _, n := range []int{-1, 33} {
		if err := s.Truncate(n); err == nil {
			t.Errorf("Truncate(%d) of a 32-token cache succeeded", n)
		}
	}
	s.Reset()
	if _, err := s.Forward(a[:20]); err != nil || s.Pos() != 20 {
		t.Fatalf("after Reset: Pos %d, err %v", s.Pos(), err)
	}
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > tol || math.IsNaN(d) {
			t.Fatalf("%s: value %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}
