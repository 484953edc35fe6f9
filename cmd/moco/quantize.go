package main

import (
	"fmt"
	"io"
	"time"

	"github.com/mocolab/moco/engine"
)

func init() {
	register(&command{
		name:    "quantize",
		summary: "store a model's matrices as Q8_0 or Q4_0 (loads with no re-quantization)",
		run:     runQuantize,
	})
}

func runQuantize(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", stderr)
	typ := fs.String("type", "q8_0", "quantization, llama.cpp's blocks of 32 weights with an f16 scale: q8_0 (int8) or q4_0 (4-bit)")
	force := fs.Bool("force", false, "replace an existing model folder at OUT (a file, or a folder that is not a model folder, is never replaced)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco quantize IN OUT [--type q8_0|q4_0] [--force] [--json]")
		fmt.Fprintln(stderr, "Writes the model folder IN to OUT with each layer's projections and the output matrix as")
		fmt.Fprintln(stderr, "int8 (q8_0: I8 tensors) or 4-bit (q4_0: U8 tensors, two weights a byte) weights plus one")
		fmt.Fprintln(stderr, "f16 scale per 32 weights (NAME.scales tensors); other tensors and files are copied. The")
		fmt.Fprintln(stderr, "result loads like any model folder, with no re-quantization, and computes what --quant TYPE")
		fmt.Fprintln(stderr, "computes at load. OUT is written atomically. The layout is documented in engine/quantize.go.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want IN and OUT folders, got %d arguments", fs.NArg())
	}
	if *typ != "q8_0" && *typ != "q4_0" {
		return usagef("--type %q: want q8_0 or q4_0", *typ)
	}
	in, out := fs.Arg(0), fs.Arg(1)
	ctx, stop := signalContext()
	defer stop()
	start := time.Now()
	res, err := engine.QuantizeCheckpoint(ctx, in, out, *typ, *force, func(m string) { fmt.Fprintln(stderr, "moco quantize:", m) })
	if err != nil {
		return interrupted(ctx, err)
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{
			"in": in, "out": out, "type": *typ, "quantized_tensors": res.Quantized, "kept_tensors": res.Kept,
			"bytes": res.Bytes, "seconds": time.Since(start).Seconds(),
		})
	}
	fmt.Fprintf(stdout, "wrote %s: %d matrices as %s, %d tensors kept, %.1f MB in %.1f s\n",
		out, res.Quantized, *typ, res.Kept, float64(res.Bytes)/1e6, time.Since(start).Seconds())
	return nil
}
