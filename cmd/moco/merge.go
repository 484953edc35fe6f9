package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mocolab/moco/merge"
)

func init() {
	register(&command{
		name:    "merge",
		summary: "merge checkpoints (mergekit YAML or flags): linear, ties, dare, della, slerp, nuslerp, multislerp, karcher, sce, model_stock, passthrough slices, expo, arcee_fusion, nearswap, ram, lora",
		run:     runMerge,
	})
}

func runMerge(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("merge", stderr)
	method := fs.String("method", "", "merge method: "+strings.Join(merge.Methods(), ", ")+", or lora (adapters into --base); arcee_fusion takes its quantiles over every entry, exactly, where mergekit samples 1e6 entries of a larger tensor at random")
	base := fs.String("base", "", "base model folder")
	models := fs.StringArrayP("model", "m", nil, "model folder (repeat; LoRA adapter folders with --method lora)")
	weights := fs.Float64Slice("weight", nil, "weight per model, in the order of -m (one value: all models; default 1 each, where a CONFIG.yaml must give every model's weight, as mergekit's)")
	densities := fs.Float64Slice("density", nil, "density per model (one value: all models)")
	params := fs.StringArray("param", nil, "global parameter key=value, e.g. lambda=0.8, t=0.3 (slerp; default 0.5, where a CONFIG.yaml must give t, as mergekit's; nearswap's t has no default), alpha=0.5, normalize=false, gamma=0.01, epsilon=0.15 (DELLA's default; 1e-5 for ram and ramplus_tl, whose r is 0.1 and alpha 0.2) (repeat); DARE and DELLA rescale survivors by 1/keep-probability as their papers do, rescale_l1=1 restores each delta's L1 norm instead, as mergekit's rescale does since its v0.1.0; rescale=1 on ties and breadcrumbs restores it too, as mergekit's")
	out := fs.String("out", "", "output model folder (or the second argument after CONFIG.yaml)")
	outDType := fs.String("out-dtype", "", "dtype of the merged weights: float32, bfloat16, float16 (default: the base's)")
	shardSize := fs.String("shard-size", "5GB", "largest safetensors shard (e.g. 500MB, 2GB); 0: one file")
	seed := fs.Uint64("seed", 0, "random seed of DARE and DELLA drops")
	truncVocab := fs.Bool("allow-vocab-mismatch", false, "merge models whose vocabularies differ, truncating embeddings and heads to the common rows")
	quiet := fs.BoolP("quiet", "q", false, "no progress bar")
	force := fs.Bool("force", false, "replace an existing, non-empty model folder at the output (a file, or a folder that is not a model folder, is never replaced)")
	asJSON := fs.Bool("json", false, "print a JSON object (method, models, out, seconds) on stdout when done")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the merge to this file (go tool pprof)")
	setRange(fs, "weight", between(-100, 100))
	setRange(fs, "density", between(0, 1))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco merge CONFIG.yaml OUT_DIR [flags]")
		fmt.Fprintln(stderr, "       moco merge --method ties --base B -m A -m C --weight 0.5 --density 0.5 --out DIR")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	shard, err := parseSize(*shardSize)
	if err != nil {
		return usagef("--shard-size: %v", err)
	}
	progress := progressOut(stderr)
	if *quiet {
		progress = nil
	}
	start := time.Now()
	var spec *merge.Spec
	var fo merge.FolderOptions
	switch {
	case fs.NArg() > 0:
		// The configuration says it all: a flag of the other form would
		// be silently dropped, and the merge not the one asked for.
		if *method != "" || len(*models) > 0 || fs.Changed("base") || fs.Changed("weight") || fs.Changed("density") || fs.Changed("param") {
			return usagef("give either CONFIG.yaml or --method/-m/--base/--weight/--density/--param flags, not both")
		}
		if fs.NArg() > 2 || (fs.NArg() == 1 && *out == "") {
			return usagef("want CONFIG.yaml OUT_DIR")
		}
		if fs.NArg() == 2 {
			*out = fs.Arg(1)
		}
		b, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		cfg, err := merge.ParseConfig(b)
		if err != nil {
			return err
		}
		spec, fo, err = cfg.Open(filepath.Dir(fs.Arg(0)))
		if err != nil {
			return err
		}
		if *outDType != "" {
			if spec.OutDType, err = merge.ParseDType(*outDType); err != nil {
				return usagef("%v", err)
			}
		}
	case *method == "lora":
		if fs.Changed("density") || fs.Changed("param") {
			return usagef("--method lora takes --weight per adapter; --density and --param are not read")
		}
		if *out == "" {
			return usagef("--out is required")
		}
		var closeBase func() error
		spec, fo, closeBase, err = loraSpec(*base, *models, *weights, *outDType)
		if err != nil {
			return err
		}
		defer closeBase()
	default:
		if *method == "" {
			return usagef("give CONFIG.yaml or --method")
		}
		if *out == "" {
			return usagef("--out is required")
		}
		spec, fo, err = specFromFlags(*method, *base, *models, *weights, *densities, *params, *outDType)
		if err != nil {
			return err
		}
	}
	defer spec.Close()
	spec.Seed = *seed
	spec.TruncateVocab = *truncVocab
	fo.AllowVocabMismatch = *truncVocab
	fo.ShardSize = shard
	fo.Progress = progress
	fo.Force = *force
	fo.Notice = func(m string) { fmt.Fprintln(stderr, "moco merge:", m) }
	ctx, stop := signalContext()
	defer stop()
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	err = merge.WriteFolder(ctx, spec, *out, fo)
	if errors.Is(err, merge.ErrVocabMismatch) {
		err = fmt.Errorf("%w (--allow-vocab-mismatch merges anyway, truncating embeddings and heads to the common rows)", err)
	}
	stopProfile()
	if err != nil {
		return interrupted(ctx, err)
	}
	names, name := inputNames(spec), spec.Method
	if *method == "lora" {
		names, name = *models, "lora" // the adapters, merged into the base by a linear "merge" of one model
	}
	fmt.Fprintf(stderr, "merged %d model(s) with %s into %s in %.1fs, peak RSS %s\n",
		len(names), name, *out, time.Since(start).Seconds(), peakRSS())
	if *asJSON {
		return writeJSON(stdout, map[string]any{"method": name, "models": names, "out": *out, "seconds": time.Since(start).Seconds()})
	}
	return nil
}

// inputNames are the names of the models a spec merges: its Models, or
// for slices (passthrough, frankenmerges) every source model once, in
// order of first use.
func inputNames(spec *merge.Spec) []string {
	var names []string
	for _, m := range spec.Models {
		names = append(names, m.Name)
	}
	for _, sl := range spec.Slices {
		for _, src := range sl.Sources {
			if !slices.Contains(names, src.Name) {
				names = append(names, src.Name)
			}
		}
	}
	return names
}

// specFromFlags builds a Spec from --method/--base/-m flags.
func specFromFlags(method, base string, models []string, weights, densities []float64, params []string, outDType string) (*merge.Spec, merge.FolderOptions, error) {
	var fo merge.FolderOptions
	if len(models) == 0 {
		return nil, fo, usagef("give at least one -m MODEL")
	}
	perModel := func(name string, v []float64) ([]float64, error) {
		switch len(v) {
		case 0:
			return nil, nil
		case 1:
			all := make([]float64, len(models))
			for i := range all {
				all[i] = v[0]
			}
			return all, nil
		case len(models):
			return v, nil
		}
		return nil, usagef("%d values of --%s for %d models", len(v), name, len(models))
	}
	w, err := perModel("weight", weights)
	if err != nil {
		return nil, fo, err
	}
	d, err := perModel("density", densities)
	if err != nil {
		return nil, fo, err
	}
	// As --param, and as a configuration's parameters: a value the method
	// does not read is an error, not a silent no-op.
	known := merge.MethodParams(method)
	reads := "its parameters: " + strings.Join(known, ", ")
	if len(known) == 0 {
		reads = "it reads none"
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"weight", w}, {"density", d}} {
		if known != nil && f.v != nil && !slices.Contains(known, f.name) {
			return nil, fo, usagef("--%s: not read by %s (%s)", f.name, method, reads)
		}
	}
	od, err := merge.ParseDType(outDType)
	if err != nil {
		return nil, fo, usagef("%v", err)
	}
	spec := &merge.Spec{Method: method, Params: merge.Params{}, OutDType: od}
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fo, usagef("--param %q: want key=value", p)
		}
		if known != nil && !slices.Contains(known, k) {
			return nil, fo, usagef("--param %s: not read by %s (%s)", k, method, reads)
		}
		f, err := parseParamValue(v)
		if err != nil {
			return nil, fo, usagef("--param %s: %v", k, err)
		}
		spec.Params[k] = merge.Scalar(f)
	}
	if base != "" {
		in, err := merge.OpenModel(base)
		if err != nil {
			return nil, fo, err
		}
		spec.Base = &in
		fo.Dirs = append(fo.Dirs, base)
	}
	for i, m := range models {
		in, err := merge.OpenModel(m)
		if err != nil {
			spec.Close()
			return nil, fo, err
		}
		in.Params = merge.Params{}
		if w != nil {
			in.Params["weight"] = merge.Scalar(w[i])
		}
		if d != nil {
			in.Params["density"] = merge.Scalar(d[i])
		}
		spec.Models = append(spec.Models, in)
		fo.Dirs = append(fo.Dirs, m)
	}
	return spec, fo, nil
}

func parseParamValue(v string) (float64, error) {
	switch strings.ToLower(v) {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	}
	return strconv.ParseFloat(v, 64)
}

// loraSpec is base with adapters applied (weights default to 1 each), as a
// Spec that copies its one model; closeBase closes the base's files.
func loraSpec(base string, adapters []string, weights []float64, outDType string) (spec *merge.Spec, fo merge.FolderOptions, closeBase func() error, err error) {
	if base == "" || len(adapters) == 0 {
		return nil, fo, nil, usagef("--method lora needs --base and at least one -m ADAPTER")
	}
	if len(weights) == 0 {
		for range adapters {
			weights = append(weights, 1)
		}
	}
	if len(weights) != len(adapters) {
		return nil, fo, nil, usagef("%d weights for %d adapters", len(weights), len(adapters))
	}
	od, err := merge.ParseDType(outDType)
	if err != nil {
		return nil, fo, nil, usagef("%v", err)
	}
	var as []*merge.Adapter
	for _, d := range adapters {
		a, err := merge.LoadAdapter(d)
		if err != nil {
			return nil, fo, nil, err
		}
		as = append(as, a)
	}
	in, err := merge.OpenModel(base)
	if err != nil {
		return nil, fo, nil, err
	}
	src, err := merge.ApplyLoRA(in.Src, as, weights)
	if err != nil {
		in.Src.Close()
		return nil, fo, nil, err
	}
	spec = &merge.Spec{Method: "linear", Models: []merge.Input{{Name: base, Src: src}}, OutDType: od}
	return spec, merge.FolderOptions{Dirs: []string{base}}, in.Src.Close, nil
}

// parseSize reads a byte count with an optional KB/MB/GB suffix (powers of 1000,
// as mergekit's --max-shard-size) or KiB/MiB/GiB.
func parseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, x := range []struct {
		suf string
		m   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(u, x.suf) {
			u, mult = strings.TrimSuffix(u, x.suf), x.m
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(u), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return int64(f * float64(mult)), nil
}

// peakRSS returns the process's peak resident set size (VmHWM).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
			}
		}
	}
	return "unknown"
}
