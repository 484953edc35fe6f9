package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/mocolab/moco/kernels"
	"github.com/mocolab/moco/safetensors"
)

// A stored Q8_0 checkpoint (QuantizeCheckpoint, `moco quantize`) is a model
// folder like its source, loadable with no re-quantization:
//
//   - every matrix that Options.Quant "q8_0" quantizes at load (each
//     layer's q, k, v, o, gate, up and down projections, fused or not, and
//     lm_head.weight) whose row length is a multiple of 32 is stored as two
//     tensors: NAME, dtype I8, shape [rows, cols], the int8 weights q, and
//     NAME.scales, dtype F16, shape [rows, cols/32], one scale d per block
//     of 32 consecutive weights of a row; weight j of row i is
//     q[i,j] * d[i, j/32]. These are llama.cpp's Q8_0 numbers (34 bytes per
//     32 weights), with the int8 values and the scales in two arrays;
//   - a model with tied embeddings gets lm_head.weight quantized from the
//     embeddings, which stay as stored (a token reads one row of them);
//   - every other tensor keeps its dtype and bytes;
//   - with type q4_0 (llama.cpp's Q4_0), NAME is instead dtype U8, shape
//     [rows, cols/2]: 16 bytes per block of 32 weights, byte j of a block
//     holding u[j] in its low nibble and u[j+16] in its high nibble, weight
//     (u-8)*d; NAME.scales as above (18 bytes per 32 weights in all);
//   - the header's __metadata__ says "moco.quantization": "q8_0" (or
//     "q4_0") and "moco.block_size": "32"; the other files of the folder
//     (config.json, tokenizer, ...) are copied unchanged.
//
// Load maps the I8 and U8 tensors in place like any other weights, so a
// stored model's resident memory is the part of its file a token reads,
// and its logits equal those of the source loaded with Options.Quant
// "q8_0" (or "q4_0") bit for bit.

// quantLayerMat matches the layer matrices Model.quantize quantizes.
var quantLayerMat = regexp.MustCompile(`^model\.layers\.\d+\.(self_attn\.(q|k|v|o|qkv)_proj|mlp\.(gate|up|down|gate_up)_proj)\.weight$`)

// ScalesSuffix ends the name of a stored Q8_0 matrix's scale tensor.
const ScalesSuffix = ".scales"

// QuantizeResult tells what QuantizeCheckpoint wrote.
type QuantizeResult struct {
	Quantized int   // matrices stored as Q8_0
	Kept      int   // tensors copied as they were
	Bytes     int64 // tensor data bytes written
}

// QuantizeCheckpoint writes the model folder in to out with its matrices in
// format typ ("q8_0" or "q4_0"); see above for the layout. The source is loaded first,
// so a folder the engine cannot run is refused. out is written atomically
// (a temporary folder renamed into place); an existing model folder is
// replaced only with force. progress, when not nil, hears about the work.
func QuantizeCheckpoint(ctx context.Context, in, out, typ string, force bool, progress func(string)) (*QuantizeResult, error) {
	qdt := map[string]safetensors.DType{"q8_0": safetensors.I8, "q4_0": safetensors.U8}[typ]
	if qdt == "" {
		return nil, fmt.Errorf("unknown quantization type %q (want q8_0 or q4_0)", typ)
	}
	if progress == nil {
		progress = func(string) {}
	}
	if abs(in) == abs(out) {
		return nil, fmt.Errorf("the output folder is the input folder %s", in)
	}
	cfg, err := LoadConfig(in)
	if err != nil {
		return nil, err
	}
	if cfg.Multimodal {
		// Its config.json describes the vision tower too, which a
		// text-only quantized folder would not hold.
		return nil, fmt.Errorf("%s: a multimodal checkpoint (model_type gemma3) cannot be stored quantized; load it with --quant instead", in)
	}
	src, err := safetensors.OpenDir(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if _, err := New(cfg, src, Options{}); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	for _, name := range src.Names() {
		if t, _ := src.Tensor(name); t.DType == safetensors.I8 || t.DType == safetensors.U8 {
			return nil, fmt.Errorf("%s: tensor %s is already %s: the model is quantized", in, name, t.DType)
		}
	}

	// The plan: each output tensor and where its data comes from.
	type item struct {
		h     safetensors.Header
		from  *safetensors.Tensor
		quant bool // from is a float matrix to quantize (h is its I8 part)
	}
	var plan []item
	addQuant := func(name string, t *safetensors.Tensor) bool {
		if len(t.Shape) != 2 || t.Shape[1]%kernels.BlockSize != 0 || t.Shape[0]*t.Shape[1] == 0 {
			return false
		}
		rows, cols := t.Shape[0], t.Shape[1]
		shape := []int{rows, cols}
		if qdt == safetensors.U8 {
			shape[1] /= 2 // Q4_0: two weights a byte
		}
		plan = append(plan, item{h: safetensors.Header{Name: name, DType: qdt, Shape: shape}, from: t, quant: true})
		plan = append(plan, item{h: safetensors.Header{Name: name + ScalesSuffix, DType: safetensors.F16, Shape: []int{rows, cols / kernels.BlockSize}}})
		return true
	}
	res := &QuantizeResult{}
	for _, name := range src.Names() {
		t, _ := src.Tensor(name)
		if name == "lm_head.weight" && cfg.TieEmbeddings {
			continue // the engine uses the embeddings; so does the quantized head
		}
		if (quantLayerMat.MatchString(name) || name == "lm_head.weight") && addQuant(name, t) {
			res.Quantized++
			continue
		}
		plan = append(plan, item{h: safetensors.Header{Name: name, DType: t.DType, Shape: t.Shape}, from: t})
		res.Kept++
	}
	if cfg.TieEmbeddings {
		if e, ok := src.Tensor("model.embed_tokens.weight"); ok && addQuant("lm_head.weight", e) {
			res.Quantized++
		}
	}
	headers := make([]safetensors.Header, len(plan))
	for i, it := range plan {
		headers[i] = it.h
	}

	od, err := safetensors.CreateOutDir(out, force, progress)
	if err != nil {
		return nil, err
	}
	defer od.Abort() // nothing after Commit
	w, err := safetensors.CreateSharded(od.Tmp, headers, 0, map[string]string{
		"format": "pt", "moco.quantization": typ, "moco.block_size": fmt.Sprint(kernels.BlockSize),
	})
	if err != nil {
		return nil, err
	}
	var scales []byte // the scales of the matrix just written
	matrix := 0       // matrices quantized so far
	// One buffer of each kind for every matrix: the writer has copied a
	// tensor's data once Write returns. Fresh buffers per matrix were
	// fresh memory each time, zeroed by the kernel on first touch.
	var qbuf []byte
	var sbuf []uint16
	for _, it := range plan {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return nil, err
		}
		var data []byte
		switch {
		case it.quant:
			// it.h is the quantized part: one byte per element of its shape.
			nq, ns := it.h.Shape[0]*it.h.Shape[1], it.from.Shape[0]*it.from.Shape[1]/kernels.BlockSize
			qbuf = slices.Grow(qbuf[:0], nq)[:nq]
			sbuf = slices.Grow(sbuf[:0], ns)[:ns]
			q, err := quantizeTensor(it.from, typ, qbuf, sbuf)
			if err != nil {
				w.Abort()
				return nil, fmt.Errorf("tensor %s: %w", it.h.Name, err)
			}
			data = q.Q4
			if q.Type == kernels.Q8_0 {
				data = asBytes(q.Q)
			}
			scales = slices.Grow(scales[:0], 2*len(q.Scales))[:2*len(q.Scales)]
			for j, s := range q.Scales {
				binary.LittleEndian.PutUint16(scales[2*j:], s)
			}
			if matrix%8 == 0 {
				progress(fmt.Sprintf("quantizing %s (matrix %d of %d)", it.h.Name, matrix+1, res.Quantized))
			}
			matrix++
		case it.from == nil:
			data = scales
		default:
			data = it.from.Data
		}
		if err := w.Write(it.h.Name, data); err != nil {
			w.Abort()
			return nil, err
		}
		res.Bytes += int64(len(data))
		if it.from != nil {
			// Done with the stored form (the embeddings of a tied model
			// are read once more, from the page cache): its pages of the
			// map need not stay in the process's memory.
			safetensors.Release(src, it.from.Data)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := copyModelFiles(in, od.Tmp); err != nil {
		return nil, err
	}
	return res, od.Commit()
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// quantizeTensor quantizes a float matrix tensor to typ (q8_0 or q4_0),
// into q (its Rows*Cols weights' bytes) and scales (Rows*Cols/BlockSize).
func quantizeTensor(t *safetensors.Tensor, typ string, q []byte, scales []uint16) (*kernels.Mat, error) {
	m := &kernels.Mat{Rows: t.Shape[0], Cols: t.Shape[1]}
	switch t.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
		if err := floatMat(m, t); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("dtype %s cannot be quantized (want F32, BF16 or F16)", t.DType)
	}
	var qm *kernels.Mat
	if typ == "q4_0" {
		qm = kernels.QuantizeQ4Into(m, q, scales)
	} else {
		qm = kernels.QuantizeQ8Into(m, bytesAs[int8](q), scales)
	}
	if qm == m {
		return nil, fmt.Errorf("%dx%d cannot be split into blocks of %d", m.Rows, m.Cols, kernels.BlockSize)
	}
	return qm, nil
}

// copyModelFiles copies the regular files of in other than the weights
// (config, generation config, tokenizer, chat template, ...) into dir.
func copyModelFiles(in, dir string) error {
	ents, err := os.ReadDir(in)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(name, ".safetensors") || name == "model.safetensors.index.json" || strings.HasPrefix(name, ".") {
			continue
		}
		if err := copyFile(filepath.Join(in, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	r, err := os.Open(from)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
