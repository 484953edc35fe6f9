package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/atomicfile"
)

func init() {
	register(&command{
		name:    "logits",
		summary: "write the logits at every position of a token sequence (float32 little-endian, positions x vocab)",
		run:     runLogits,
	})
}

func runLogits(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("logits", stderr)
	model := fs.StringP("model", "m", "", "model folder (Hugging Face layout; default: the embedded "+defaultModelName+")")
	idsFile := fs.String("ids-file", "", `token ids: a JSON list [1, 2, ...] or {"ids": [...]} ("-" reads stdin)`)
	out := fs.String("out", "", "output file: float32 little-endian, row-major [positions][vocab]")
	var threads int
	addThreadsFlag(fs, &threads)
	quant := fs.String("quant", "", "quantize the weights at load: q8_0 or q4_0")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco logits [--model DIR] --ids-file tokens.json --out FILE")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *idsFile == "":
		return usagef("--ids-file is required")
	case *out == "":
		return usagef("--out is required")
	}
	ids, err := readIDs(*idsFile, stdin)
	if err != nil {
		return err
	}
	opts := engine.Options{Threads: threads, Quant: *quant}
	var m *engine.Model
	if *model == "" {
		m, _, err = openDefaultModel(opts)
	} else {
		m, err = engine.Load(*model, opts) // ids need no tokenizer
	}
	if err != nil {
		return err
	}
	defer m.Close()
	s := m.NewSession(len(ids))
	logits, err := s.ForwardAll(ids)
	if err != nil {
		return err
	}
	return writeF32(*out, logits)
}

// readIDs reads a JSON list of token ids, or an object with an "ids" list.
func readIDs(path string, stdin io.Reader) ([]int, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	var ids []int
	if err := json.Unmarshal(data, &ids); err != nil {
		var obj struct {
			IDs []int `json:"ids"`
		}
		if err2 := json.Unmarshal(data, &obj); err2 != nil || obj.IDs == nil {
			return nil, fmt.Errorf("%s: want a JSON list of token ids or {\"ids\": [...]}", path)
		}
		ids = obj.IDs
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no token ids", path)
	}
	return ids, nil
}

// writeF32 writes v as little-endian float32 to path, through a temporary
// file in the same folder so that a failed run leaves no partial output.
func writeF32(path string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return atomicfile.WriteFile(path, b)
}
