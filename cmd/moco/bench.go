package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/kernels"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "benchmarks: 'moco bench speed' measures tokens/s against the bandwidth limit",
		run:     runBench,
	})
}

func runBench(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "Usage: moco bench speed --model DIR [flags]   (run 'moco bench speed --help')")
		fmt.Fprintln(stderr, "       moco bench serve [--url URL | -m DIR] [flags]   (run 'moco bench serve --help')")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return usagef("missing benchmark name (speed, serve)")
	}
	switch args[0] {
	case "speed":
		return runBenchSpeed(args[1:], stdout, stderr)
	case "serve":
		return runBenchServe(args[1:], stdout, stderr)
	}
	return usagef("unknown benchmark %q (known: speed, serve)", args[0])
}

func runBenchSpeed(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench speed", stderr)
	model := fs.StringP("model", "m", "", "model folder (required; 'moco synth' writes random ones)")
	var threadsV int
	addThreadsFlag(fs, &threadsV)
	threads := &threadsV
	pp := fs.Int("prompt-tokens", 128, "prompt tokens processed as one batch (pp)")
	tg := fs.Int("gen-tokens", 64, "tokens generated one at a time (tg)")
	quant := fs.String("quant", "", "quantize weights at load: q8_0 or q4_0")
	mapped := fs.Bool("mapped", false, "use the weights in the file's memory map, as llama.cpp does, instead of reading them into huge pages (also MOCO_WEIGHTS=mapped)")
	repeats := fs.Int("repeats", 3, "measurements per figure (the median is reported)")
	bw := fs.Float64("bandwidth", 0, "memory bandwidth in GB/s")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurements to this file (go tool pprof)")
	setRange(fs, "prompt-tokens", atLeast(1))
	setRange(fs, "gen-tokens", atLeast(1))
	setRange(fs, "repeats", between(1, 1000))
	setRange(fs, "bandwidth", atLeast(0).withNote("0: measure in-process"))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco bench speed --model DIR [--threads N] [--prompt-tokens 128] [--gen-tokens 64] [--quant q8_0|q4_0] [--mapped] [--repeats 3] [--bandwidth GB/s] [--json] [--cpuprofile F]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *model == "" {
		return usagef("--model is required: a model folder (moco synth --shape qwen2.5-0.5b --out DIR writes one of a real shape with random weights)")
	}
	if *quant != "" && *quant != "q8_0" && *quant != "q4_0" {
		return usagef("--quant %q: want q8_0 or q4_0", *quant)
	}
	kernels.SetThreads(*threads)
	m, err := engine.Load(*model, engine.Options{Threads: *threads, Quant: *quant, Mapped: *mapped})
	if err != nil {
		return err
	}
	defer m.Close()
	maxSeq := max(*pp, *tg) + 1
	newSession := func() (bench.Forwarder, error) { return m.NewSession(maxSeq), nil }
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res, err := bench.MeasureSpeed(newSession, m.WeightBytes(), bench.SpeedOptions{
		PromptTokens: *pp, GenTokens: *tg, Repeats: *repeats, Bandwidth: *bw,
		Vocab: min(256, m.Config.VocabSize),
	})
	if err != nil {
		return err
	}
	res.Model = filepath.Base(filepath.Clean(*model))
	res.Quant = *quant
	res.Weights = "mapped"
	if m.Resident() {
		res.Weights = "resident"
	}
	if *asJSON {
		return res.WriteJSON(stdout)
	}
	res.WriteTable(stdout)
	return nil
}

// startCPUProfile writes a CPU profile to path (none when path is empty)
// until the returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
