package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/safetensors"
)

func init() {
	register(&command{
		name:    "inspect",
		summary: "list the tensors, dtypes, parameter count and config of a checkpoint",
		run:     runInspect,
	})
}

// inspectReport is what inspect prints; --json writes it as is.
type inspectReport struct {
	Path       string            `json:"path"`
	Files      []string          `json:"files"` // the safetensors files read
	Tensors    []inspectTensor   `json:"tensors"`
	Parameters int64             `json:"parameters"` // the model's weights (see weightCount)
	Bytes      int64             `json:"bytes"`
	DTypes     []dtypeTotal      `json:"dtypes"`
	Metadata   map[string]string `json:"metadata,omitempty"` // __metadata__ (of the first file)
	IndexSize  *int64            `json:"index_total_size,omitempty"`
	ConfigFile string            `json:"config_file,omitempty"` // config.json, or adapter_config.json of a PEFT adapter
	Config     map[string]any    `json:"config,omitempty"`      // its content
	Model      *modelSummary     `json:"model,omitempty"`       // the config as the engine reads it
	ModelError string            `json:"model_error,omitempty"`
	Check      *checkReport      `json:"check,omitempty"` // --check
}

type inspectTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Bytes int64  `json:"bytes"`
}

type dtypeTotal struct {
	DType      string `json:"dtype"`
	Tensors    int    `json:"tensors"`
	Parameters int64  `json:"parameters"`
	Bytes      int64  `json:"bytes"`
}

func runInspect(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr)
	asJSON := fs.Bool("json", false, "print a JSON object")
	check := fs.Bool("check", false, "scan every tensor for NaN and infinite values (exit 1 if any)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco inspect [--json] [--check] PATH")
		fmt.Fprintln(stderr, "PATH is a .safetensors file, a model.safetensors.index.json or a model folder.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one PATH (a .safetensors file, an index json or a model folder)")
	}
	var progress io.Writer
	if *check {
		progress = progressOut(stderr)
	}
	r, err := inspect(fs.Arg(0), *check, progress)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
		return r.Check.err()
	}
	if err := r.print(stdout); err != nil {
		return err
	}
	if r.Check != nil {
		r.Check.print(stdout)
	}
	return r.Check.err()
}

// inspect opens path and gathers the report; with check, it also scans
// every tensor for NaN and Inf, writing progress to progress.
func inspect(path string, check bool, progress io.Writer) (*inspectReport, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	r := &inspectReport{Path: path}
	adapter := st.IsDir() && isAdapter(path)
	var src safetensors.Source
	if adapter {
		src, err = openAny(filepath.Join(path, adapterWeights), false)
	} else {
		src, err = openAny(path, st.IsDir())
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if st.IsDir() {
		r.ConfigFile = "config.json"
		if adapter {
			r.ConfigFile = "adapter_config.json"
		}
		if r.Config, err = readConfig(filepath.Join(path, r.ConfigFile)); err != nil {
			return nil, err
		}
		if r.Config == nil {
			r.ConfigFile = ""
		} else if !adapter {
			r.Model, r.ModelError = summarizeModel(path)
		}
	}
	switch s := src.(type) {
	case *safetensors.File:
		r.Files = []string{s.Path}
		r.Metadata = s.Metadata
	case *safetensors.Sharded:
		for _, f := range s.Files() {
			r.Files = append(r.Files, f.Path)
		}
		if len(s.Files()) > 0 {
			r.Metadata = s.Files()[0].Metadata
		}
		if n, ok := s.Metadata["total_size"].(float64); ok {
			size := int64(n)
			r.IndexSize = &size
		}
	}
	totals := map[safetensors.DType]*dtypeTotal{}
	names := append([]string(nil), src.Names()...)
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	for _, name := range names {
		t, _ := src.Tensor(name)
		n := weightCount(src, r, name, t)
		b := int64(len(t.Data))
		r.Tensors = append(r.Tensors, inspectTensor{Name: name, DType: string(t.DType), Shape: t.Shape, Bytes: b})
		r.Parameters += n
		r.Bytes += b
		d := totals[t.DType]
		if d == nil {
			d = &dtypeTotal{DType: string(t.DType)}
			totals[t.DType] = d
		}
		d.Tensors++
		d.Parameters += n
		d.Bytes += b
	}
	for _, d := range totals {
		r.DTypes = append(r.DTypes, *d)
	}
	sort.Slice(r.DTypes, func(i, j int) bool { return r.DTypes[i].DType < r.DTypes[j].DType })
	if check {
		r.Check = checkTensors(src, names, progress)
	}
	return r, nil
}

// weightCount returns the number of the model's weights that tensor t
// holds: its elements, except in a checkpoint `moco quantize` wrote
// (engine.QuantizeCheckpoint), where a Q4_0 byte holds two weights, the
// scale tensors hold none, and a tied model's quantized head is its
// embeddings again.
func weightCount(src safetensors.Source, r *inspectReport, name string, t *safetensors.Tensor) int64 {
	n := int64(t.NumElements())
	if r.Metadata["moco.quantization"] == "" {
		return n
	}
	if base, ok := strings.CutSuffix(name, engine.ScalesSuffix); ok {
		if _, ok := src.Tensor(base); ok {
			return 0
		}
	}
	if _, ok := src.Tensor(name + engine.ScalesSuffix); !ok {
		return n
	}
	if name == "lm_head.weight" && r.Model != nil && r.Model.TieEmbeddings {
		return 0
	}
	if t.DType == safetensors.U8 {
		n *= 2
	}
	return n
}

// openAny opens a model folder, an index json or a single file.
func openAny(path string, isDir bool) (safetensors.Source, error) {
	switch {
	case isDir:
		return safetensors.OpenDir(path)
	case strings.HasSuffix(path, ".json"):
		s, err := safetensors.OpenIndex(path)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

const adapterWeights = "adapter_model.safetensors"

// isAdapter reports whether dir holds a PEFT adapter rather than a model:
// adapter weights and no model weights.
func isAdapter(dir string) bool {
	for _, name := range []string{safetensors.SingleName, safetensors.IndexName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return false
		}
	}
	_, err := os.Stat(filepath.Join(dir, adapterWeights))
	return err == nil
}

// readConfig reads a JSON config file, or returns nil if there is none.
func readConfig(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // print numbers as written (1e-05, 10000.0 -> 10000)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func (r *inspectReport) print(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d tensors, %s parameters, %s bytes", r.Path, len(r.Tensors), group(r.Parameters), group(r.Bytes))
	if len(r.Files) > 1 {
		fmt.Fprintf(w, " in %d shards", len(r.Files))
	}
	fmt.Fprintln(w)
	if r.IndexSize != nil && *r.IndexSize != r.Bytes {
		fmt.Fprintf(w, "note: the index says total_size %d, the shards hold %d bytes of tensors\n", *r.IndexSize, r.Bytes)
	}
	if len(r.Metadata) > 0 {
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprint(w, "metadata:")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%s", k, r.Metadata[k])
		}
		fmt.Fprintln(w)
	}

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "dtype\ttensors\tparameters\tbytes\t")
	for _, d := range r.DTypes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", d.DType, d.Tensors, group(d.Parameters), group(d.Bytes))
	}
	tw.Flush()

	if r.Model != nil {
		fmt.Fprintln(w)
		r.Model.print(w)
	}
	if r.ModelError != "" {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "moco cannot run this model: %s\n", r.ModelError)
	}
	if r.Config != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s:\n", r.ConfigFile)
		printConfig(w, r.Config)
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tdtype\tshape")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.DType, shapeString(t.Shape))
	}
	return tw.Flush()
}

// printConfig lists every top-level key of config.json with its value as
// compact JSON, sorted by key.
func printConfig(w io.Writer, cfg map[string]any) {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, k := range keys {
		v, err := json.Marshal(cfg[k])
		if err != nil {
			v = []byte(fmt.Sprint(cfg[k]))
		}
		fmt.Fprintf(tw, "  %s:\t%s\n", k, v)
	}
	tw.Flush()
}

func shapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// group writes n with thousands separators: 260032 -> 260,032.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// naturalLess orders names with digit runs compared as numbers, so that
// layers.2 comes before layers.10.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na := strings.TrimLeft(a[:da], "0")
			nb := strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			if da != db { // same value, fewer leading zeros first
				return da < db
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
