package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/safetensors"
)

func init() {
	register(&command{
		name:    "synth",
		summary: "write a random-weight checkpoint of a given shape (for speed benchmarks)",
		run:     runSynth,
	})
}

func runSynth(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("synth", stderr)
	configPath := fs.String("config", "", "config.json giving the shape (any family the engine reads)")
	shape := fs.String("shape", "", "a built-in shape instead of --config: "+strings.Join(bench.ShapeNames(), ", "))
	out := fs.String("out", "", "output model folder (required)")
	dtype := fs.String("dtype", "bf16", "weight dtype: bf16, f16 or f32")
	seed := fs.Uint64("seed", 1, "random seed (the same seed writes the same bytes)")
	asJSON := fs.Bool("json", false, "print a JSON object (out, parameters, dtype) instead of a line")
	force := fs.Bool("force", false, "replace an existing, non-empty model folder at --out (a file, or a folder that is not a model folder, is never replaced)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco synth (--config config.json | --shape NAME) --out DIR [--dtype bf16|f16|f32] [--seed S]")
		fmt.Fprintln(stderr, "Writes weights drawn from N(0, 0.02^2) (norms 1), config.json and a byte-level tokenizer.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if (*configPath == "") == (*shape == "") {
		return usagef("give exactly one of --config and --shape")
	}
	var dt safetensors.DType
	switch strings.ToLower(*dtype) {
	case "bf16":
		dt = safetensors.BF16
	case "f16":
		dt = safetensors.F16
	case "f32":
		dt = safetensors.F32
	default:
		return usagef("--dtype %q: want bf16, f16 or f32", *dtype)
	}
	var cfg []byte
	var err error
	if *shape != "" {
		cfg, err = bench.ShapeConfig(*shape)
	} else {
		cfg, err = os.ReadFile(*configPath)
	}
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	n, err := synthCheckpoint(ctx, *out, cfg, dt, *seed, *force, func(m string) { fmt.Fprintln(stderr, "moco synth:", m) })
	if err != nil {
		return interrupted(ctx, err)
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"out": *out, "parameters": n, "dtype": dt})
	}
	fmt.Fprintf(stdout, "wrote %s: %d parameters, %s\n", *out, n, dt)
	return nil
}

// synthInit says how a tensor is filled.
type synthInit int

const (
	initNormal synthInit = iota // N(0, 0.02^2)
	initOnes                    // norm weights
)

type synthTensor struct {
	safetensors.Header
	init synthInit
}

// synthTensors lists the tensors of a checkpoint in the Hugging Face layout
// of the config's family, as the engine reads it (engine.ParseConfig
// decides the family switches: norms, biases, q/k norms, fused
// projections, tied embeddings).
func synthTensors(configJSON []byte) ([]synthTensor, error) {
	c, err := engine.ParseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	if c.VocabSize < synthVocab {
		return nil, fmt.Errorf("config: vocab_size %d is below the %d tokens of the byte-level tokenizer", c.VocabSize, synthVocab)
	}
	H, I, hd := c.HiddenSize, c.IntermediateSize, c.HeadDim
	q, kv := c.NumHeads*hd, c.NumKVHeads*hd
	var ts []synthTensor
	add := func(name string, init synthInit, shape ...int) {
		ts = append(ts, synthTensor{safetensors.Header{Name: name, Shape: shape}, init})
	}
	add("model.embed_tokens.weight", initNormal, c.VocabSize, H)
	for l := 0; l < c.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		switch c.Norms {
		case "pre":
			add(p+"input_layernorm.weight", initOnes, H)
			add(p+"post_attention_layernorm.weight", initOnes, H)
		case "sandwich":
			add(p+"input_layernorm.weight", initOnes, H)
			add(p+"post_attention_layernorm.weight", initOnes, H)
			add(p+"pre_feedforward_layernorm.weight", initOnes, H)
			add(p+"post_feedforward_layernorm.weight", initOnes, H)
		case "post":
			add(p+"post_attention_layernorm.weight", initOnes, H)
			add(p+"post_feedforward_layernorm.weight", initOnes, H)
		}
		a := p + "self_attn."
		if c.FusedQKV {
			add(a+"qkv_proj.weight", initNormal, q+2*kv, H)
		} else {
			add(a+"q_proj.weight", initNormal, q, H)
			add(a+"k_proj.weight", initNormal, kv, H)
			add(a+"v_proj.weight", initNormal, kv, H)
		}
		if c.QKVBias {
			add(a+"q_proj.bias", initNormal, q)
			add(a+"k_proj.bias", initNormal, kv)
			add(a+"v_proj.bias", initNormal, kv)
		}
		add(a+"o_proj.weight", initNormal, H, q)
		if c.OBias {
			add(a+"o_proj.bias", initNormal, H)
		}
		switch c.QKNorm {
		case "head":
			add(a+"q_norm.weight", initOnes, hd)
			add(a+"k_norm.weight", initOnes, hd)
		case "full":
			add(a+"q_norm.weight", initOnes, q)
			add(a+"k_norm.weight", initOnes, kv)
		}
		f := p + "mlp."
		if c.FusedGateUp {
			add(f+"gate_up_proj.weight", initNormal, 2*I, H)
		} else {
			add(f+"gate_proj.weight", initNormal, I, H)
			add(f+"up_proj.weight", initNormal, I, H)
		}
		add(f+"down_proj.weight", initNormal, H, I)
		if c.MLPBias {
			add(f+"gate_proj.bias", initNormal, I)
			add(f+"up_proj.bias", initNormal, I)
			add(f+"down_proj.bias", initNormal, H)
		}
	}
	add("model.norm.weight", initOnes, H)
	if !c.TieEmbeddings {
		add("lm_head.weight", initNormal, c.VocabSize, H)
	}
	return ts, nil
}

// synthChunk is the number of values drawn from one seeded generator, so the
// output does not depend on how many goroutines draw them.
const synthChunk = 1 << 20

// synthCheckpoint writes a random checkpoint of the shape in configJSON to
// out and returns its parameter count. It writes into a temporary folder
// renamed into place when complete (safetensors.OutDir: out must be absent
// or empty, or with force a model folder), and stops between tensors when
// ctx is cancelled, leaving out as it was.
func synthCheckpoint(ctx context.Context, out string, configJSON []byte, dt safetensors.DType, seed uint64, force bool, notice func(string)) (int64, error) {
	ts, err := synthTensors(configJSON)
	if err != nil {
		return 0, err
	}
	od, err := safetensors.CreateOutDir(out, force, notice)
	if err != nil {
		return 0, err
	}
	defer od.Abort() // nothing after Commit
	dir := od.Tmp
	headers := make([]safetensors.Header, len(ts))
	for i := range ts {
		ts[i].DType = dt
		headers[i] = ts[i].Header
	}
	w, err := safetensors.CreateSharded(dir, headers, 0, map[string]string{"format": "pt", "moco": "synth"})
	if err != nil {
		return 0, err
	}
	var params int64
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return 0, err
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		params += int64(n)
		if err := w.Write(t.Name, synthData(t.init, n, dt, seed, uint64(i))); err != nil {
			w.Abort()
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	cfg, err := synthConfigJSON(configJSON, dt)
	if err != nil {
		return 0, err
	}
	files := map[string][]byte{
		"config.json":            cfg,
		"generation_config.json": []byte(fmt.Sprintf("{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n", synthBOS, synthEOS)),
		"tokenizer.json":         byteTokenizerJSON(),
		"tokenizer_config.json":  []byte("{\n  \"add_bos_token\": false,\n  \"bos_token\": \"<|bos|>\",\n  \"eos_token\": \"<|eos|>\"\n}\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return 0, err
		}
	}
	return params, od.Commit()
}

// synthData returns n values of a tensor encoded as dt. Chunks are drawn in
// parallel, each from its own generator seeded by (seed, tensor, chunk).
func synthData(init synthInit, n int, dt safetensors.DType, seed, tensor uint64) []byte {
	size := dt.Size()
	out := make([]byte, n*size)
	put := func(i int, v float32) {
		switch dt {
		case safetensors.BF16:
			binary.LittleEndian.PutUint16(out[2*i:], safetensors.F32ToBF16(v))
		case safetensors.F16:
			binary.LittleEndian.PutUint16(out[2*i:], safetensors.F32ToF16(v))
		default:
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	}
	if init == initOnes {
		for i := 0; i < n; i++ {
			put(i, 1)
		}
		return out
	}
	chunks := (n + synthChunk - 1) / synthChunk
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for c := 0; c < chunks; c++ {
		next <- c
	}
	close(next)
	for g := 0; g < min(chunks, runtime.GOMAXPROCS(0)); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				r := rand.New(rand.NewPCG(seed, tensor<<32|uint64(c)))
				for i := c * synthChunk; i < min(n, (c+1)*synthChunk); i++ {
					put(i, float32(0.02*r.NormFloat64()))
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// The byte-level tokenizer: ids 0-255 are the bytes, then two specials.
const (
	synthBOS   = 256
	synthEOS   = 257
	synthVocab = 258
)

// synthConfigJSON is the input config with the tokenizer's special ids and
// the weight dtype filled in.
func synthConfigJSON(configJSON []byte, dt safetensors.DType) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(configJSON, &m); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	m["bos_token_id"] = synthBOS
	m["eos_token_id"] = synthEOS
	m["torch_dtype"] = map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F16: "float16", safetensors.F32: "float32"}[dt]
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

// byteTokenizerJSON returns a Hugging Face tokenizer.json for a byte-level
// BPE without merges: every byte is one token, spelled with GPT-2's
// byte-to-character map, plus <|bos|> and <|eos|>.
func byteTokenizerJSON() []byte {
	vocab := make(map[string]int, 256)
	for b, r := range gpt2ByteChars() {
		vocab[string(r)] = b
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	tok := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   []any{special(synthBOS, "<|bos|>"), special(synthEOS, "<|eos|>")},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": nil,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []any{},
		},
	}
	b, _ := json.MarshalIndent(tok, "", "  ") // plain maps and slices always marshal
	return append(b, '\n')
}

// gpt2ByteChars maps each byte to the printable character that byte-level
// BPE spells it with: printable Latin-1 bytes stand for themselves, the
// others take the code points from 256 up, in byte order.
func gpt2ByteChars() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
	}
	return m
}
