package merge

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mocolab/moco/internal/yamlerr"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// Config is a mergekit merge configuration (the subset moco implements:
// models: or slices: with per-model and per-slice parameters, merge_method,
// base_model, global parameters, dtype, out_dtype, tokenizer_source,
// tokenizer: with a source, chat_template, and MODEL+LORA references).
// Unknown keys are errors, named with their line.
type Config struct {
	Method          string           `yaml:"merge_method"`
	BaseModel       string           `yaml:"base_model"`
	Models          []ModelConfig    `yaml:"models"`
	Slices          []SliceConfig    `yaml:"slices"`
	Parameters      Params           `yaml:"parameters"`
	DType           string           `yaml:"dtype"`
	OutDType        string           `yaml:"out_dtype"`
	TokenizerSource string           `yaml:"tokenizer_source"`
	Tokenizer       *TokenizerConfig `yaml:"tokenizer"`
	// ChatTemplate sets the output's chat template, as mergekit's
	// chat_template does: "auto" (the template most of the input models
	// share), or a Jinja template's text. mergekit's built-in template
	// names (chatml, llama3, ...) are not bundled: give the text.
	ChatTemplate string `yaml:"chat_template"`
}

// TokenizerConfig is mergekit's newer tokenizer: section. Its source
// means what tokenizer_source does, but defaults to union, as mergekit's
// does; tokens (embeddings for chosen tokens) and pad_to_multiple_of
// (padding the vocabulary) are not implemented.
type TokenizerConfig struct {
	Source          string         `yaml:"source"`
	Tokens          map[string]any `yaml:"tokens"`
	PadToMultipleOf int            `yaml:"pad_to_multiple_of"`
}

// ModelConfig is one entry of models:.
type ModelConfig struct {
	Model      string `yaml:"model"`
	Parameters Params `yaml:"parameters"`
}

// SliceConfig is one entry of slices:.
type SliceConfig struct {
	Sources    []SourceConfig `yaml:"sources"`
	BaseModel  string         `yaml:"base_model"` // overrides the global base_model in this slice
	Parameters Params         `yaml:"parameters"`
}

// SourceConfig is one source of a slice: a model's layers [from, to).
type SourceConfig struct {
	Model      string `yaml:"model"`
	LayerRange []int  `yaml:"layer_range"`
	Parameters Params `yaml:"parameters"`
}

// ParseConfig reads a mergekit YAML configuration strictly: unknown keys
// (a mistyped densty: or base_modle:) and parameters that the method does
// not read are errors that name the key and its line.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("merge config: empty")
		}
		return nil, fmt.Errorf("merge config: %w", yamlerr.Clean(err))
	}
	if c.Method == "" {
		return nil, fmt.Errorf("merge config: no merge_method")
	}
	if (len(c.Models) == 0) == (len(c.Slices) == 0) {
		return nil, fmt.Errorf("merge config: give exactly one of models: and slices:")
	}
	for i, m := range c.Models {
		if m.Model == "" {
			return nil, fmt.Errorf("merge config: models[%d] has no model path", i)
		}
	}
	for i, sl := range c.Slices {
		if len(sl.Sources) == 0 {
			return nil, fmt.Errorf("merge config: slices[%d] has no sources", i)
		}
		for j, src := range sl.Sources {
			if src.Model == "" {
				return nil, fmt.Errorf("merge config: slices[%d].sources[%d] has no model path", i, j)
			}
			if len(src.LayerRange) != 2 || src.LayerRange[0] < 0 || src.LayerRange[1] <= src.LayerRange[0] {
				return nil, fmt.Errorf("merge config: slices[%d].sources[%d]: layer_range must be [from, to) with 0 <= from < to, got %v", i, j, src.LayerRange)
			}
		}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("merge config: %w", err)
	}
	if err := yamlerr.CheckInts(&root, c); err != nil {
		return nil, fmt.Errorf("merge config: %w", err)
	}
	if known := MethodParams(c.Method); known != nil {
		if err := checkParamNames(&root, c.Method, known); err != nil {
			return nil, fmt.Errorf("merge config: %w", err)
		}
	}
	return &c, nil
}

// checkParamNames walks the YAML tree and reports the first key under a
// parameters: mapping that the method does not read.
func checkParamNames(n *yaml.Node, method string, known []string) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "parameters" && v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					name := v.Content[j]
					if !slices.Contains(known, name.Value) {
						list := "its parameters: " + strings.Join(known, ", ")
						if len(known) == 0 {
							list = "it reads none"
						}
						return fmt.Errorf("line %d: parameter %q is not read by %s (%s)", name.Line, name.Value, method, list)
					}
				}
				continue
			}
			if err := checkParamNames(v, method, known); err != nil {
				return err
			}
		}
	}
	for _, c := range n.Content {
		if n.Kind != yaml.MappingNode {
			if err := checkParamNames(c, method, known); err != nil {
				return err
			}
		}
	}
	return nil
}

// UnmarshalYAML reads a scalar, a gradient list, or a list of
// {filter, value} entries.
func (p *Param) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := scalar(n)
		if err != nil {
			return err
		}
		p.Values = []float64{v}
		return nil
	case yaml.SequenceNode:
		if len(n.Content) > 0 && n.Content[0].Kind == yaml.MappingNode {
			for _, e := range n.Content {
				var f struct {
					Filter string    `yaml:"filter"`
					Value  yaml.Node `yaml:"value"`
				}
				if err := e.Decode(&f); err != nil {
					return err
				}
				var inner Param
				if err := inner.UnmarshalYAML(&f.Value); err != nil {
					return err
				}
				p.Filters = append(p.Filters, FilteredParam{Filter: f.Filter, Values: inner.Values})
			}
			return nil
		}
		for _, e := range n.Content {
			v, err := scalar(e)
			if err != nil {
				return err
			}
			p.Values = append(p.Values, v)
		}
		return nil
	}
	return fmt.Errorf("line %d: a parameter must be a number, a list of numbers or a list of {filter, value}", n.Line)
}

func scalar(n *yaml.Node) (float64, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("line %d: want a number", n.Line)
	}
	switch strings.ToLower(n.Value) {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		return 0, fmt.Errorf("line %d: %q is not a number", n.Line, n.Value)
	}
	return v, nil
}

// ParseDType maps mergekit and safetensors dtype names to a DType.
func ParseDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "float32", "f32", "fp32":
		return safetensors.F32, nil
	case "bfloat16", "bf16":
		return safetensors.BF16, nil
	case "float16", "f16", "fp16", "half":
		return safetensors.F16, nil
	}
	return "", fmt.Errorf("unknown dtype %q (want float32, bfloat16 or float16)", s)
}

// Open turns the configuration into a Spec, opening every model folder
// once (paths relative to dir). It also returns folder options naming the
// config, tokenizer and vocabulary-check folders. Close the Spec's sources
// when done.
//
// tokenizer_source: base (or absent) copies the tokenizer of the base model
// (else the first model); a model path copies that model's tokenizer,
// which must have the same vocabulary as the merged models (moco does not
// permute embeddings to another vocabulary). union (mergekit's merged
// vocabulary with embeddings rebuilt for the new tokens) is not supported;
// the tokenizer: section's source means the same.
//
// As in mergekit, a parameter the method requires (slerp's t, each
// model's weight: see Spec.RequireParams) is an error when missing.
//
// A model may be written MODEL+LORA, as in mergekit: the PEFT LoRA
// adapter folder LORA applied to the model folder MODEL (weight 1) before
// merging (see OpenModelRef).
func (c *Config) Open(dir string) (*Spec, FolderOptions, error) {
	var fo FolderOptions
	abs := func(p string) string {
		if filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	// path resolves a model reference; both sides of MODEL+LORA are
	// relative to dir.
	path := func(p string) string {
		if _, err := os.Stat(abs(p)); err != nil {
			if model, lora, ok := splitLoRARef(p); ok {
				return abs(model) + "+" + abs(lora)
			}
		}
		return abs(p)
	}
	out := c.OutDType
	if out == "" {
		out = c.DType
	}
	od, err := ParseDType(out)
	if err != nil {
		return nil, fo, err
	}
	if _, err := ParseDType(c.DType); err != nil {
		return nil, fo, err
	}
	s := &Spec{Method: c.Method, Params: c.Parameters, OutDType: od, RequireParams: true}
	if _, ok := methods[c.Method]; !ok {
		return nil, fo, fmt.Errorf("unknown merge method %q (known: %s)", c.Method, strings.Join(Methods(), ", "))
	}
	tokSrc, tokKey := c.TokenizerSource, "tokenizer_source"
	if t := c.Tokenizer; t != nil {
		switch {
		case c.TokenizerSource != "":
			return nil, fo, fmt.Errorf("give tokenizer_source or tokenizer:, not both")
		case len(t.Tokens) > 0:
			return nil, fo, fmt.Errorf("tokenizer.tokens is not supported (moco does not build embeddings for chosen tokens)")
		case t.PadToMultipleOf > 1:
			return nil, fo, fmt.Errorf("tokenizer.pad_to_multiple_of is not supported (moco does not pad the vocabulary)")
		case t.Source == "":
			return nil, fo, fmt.Errorf("tokenizer: without a source means union in mergekit, which is not supported (moco keeps the models' common vocabulary; give source: base or a model path)")
		}
		tokSrc, tokKey = t.Source, "tokenizer.source"
	}
	if tokSrc == "union" {
		return nil, fo, fmt.Errorf("%s: union is not supported (moco keeps the models' common vocabulary; use base or a model path)", tokKey)
	}
	opened := map[string]*Input{}
	fail := func(err error) (*Spec, FolderOptions, error) {
		for _, in := range opened {
			in.Src.Close()
		}
		return nil, fo, err
	}
	open := func(p string) (Input, error) {
		p = path(p)
		if in, ok := opened[p]; ok {
			return Input{Name: in.Name, Src: in.Src}, nil
		}
		in, modelDir, err := OpenModelRef(p)
		if err != nil {
			return Input{}, err
		}
		opened[p] = &in
		fo.Dirs = append(fo.Dirs, modelDir)
		return in, nil
	}
	if len(c.Slices) > 0 {
		if c.BaseModel != "" {
			if _, err := open(c.BaseModel); err != nil { // the base's folder leads: config and tokenizer
				return fail(err)
			}
		}
		for i, sc := range c.Slices {
			baseName := c.BaseModel
			if sc.BaseModel != "" {
				baseName = sc.BaseModel
			}
			sl := Slice{Base: -1, Params: sc.Parameters}
			for _, src := range sc.Sources {
				in, err := open(src.Model)
				if err != nil {
					return fail(err)
				}
				in.Params = src.Parameters
				if baseName != "" && path(src.Model) == path(baseName) && c.Method != "linear" {
					sl.Base = len(sl.Sources)
				}
				sl.Sources = append(sl.Sources, SliceSource{Input: in, From: src.LayerRange[0], To: src.LayerRange[1]})
			}
			if m := methods[c.Method]; m.needsBase && sl.Base < 0 {
				return fail(fmt.Errorf("slices[%d]: %s needs its base model %q among the slice's sources", i, c.Method, baseName))
			}
			s.Slices = append(s.Slices, sl)
		}
	} else {
		base := ""
		if c.BaseModel != "" && c.Method != "linear" {
			base = path(c.BaseModel)
			in, err := open(c.BaseModel)
			if err != nil {
				return fail(err)
			}
			s.Base = &in
		}
		for _, m := range c.Models {
			if path(m.Model) == base {
				continue // the base takes part as the base, not as a model
			}
			in, err := open(m.Model)
			if err != nil {
				return fail(err)
			}
			in.Params = m.Parameters
			s.Models = append(s.Models, in)
		}
	}
	inputs := slices.Clone(fo.Dirs) // the merged models' folders, before a tokenizer_source joins them
	switch tokSrc {
	case "", "base":
		fo.TokenizerDir = fo.Dirs[0]
		if c.BaseModel != "" {
			fo.TokenizerDir = path(c.BaseModel)
		}
	default:
		fo.TokenizerDir = path(tokSrc)
		if !slices.Contains(fo.Dirs, fo.TokenizerDir) {
			// Its vocabulary must match the models': check it with theirs.
			fo.Dirs = append(fo.Dirs, fo.TokenizerDir)
		}
	}
	if fo.ChatTemplate, err = chooseChatTemplate(c.ChatTemplate, inputs); err != nil {
		return fail(err)
	}
	return s, fo, nil
}

// chooseChatTemplate resolves chat_template as mergekit's merge does: ""
// keeps the tokenizer folder's; "auto" takes the template found most often
// among the models' folders (the first of equals, none when none has
// one); other text must be a Jinja template (20 or more characters with a
// "{"), as mergekit requires of a template that is not a built-in name.
func chooseChatTemplate(spec string, dirs []string) (string, error) {
	switch {
	case spec == "":
		return "", nil
	case spec == "auto":
		count := map[string]int{}
		var order []string // templates in order of first appearance
		for _, d := range dirs {
			ct, err := tokenizer.ReadChatTemplate(d)
			if err != nil {
				return "", fmt.Errorf("chat_template: auto: %s: %w", d, err)
			}
			if ct == nil {
				continue
			}
			src, ok := ct.Source("")
			if src = strings.TrimSpace(src); !ok || src == "" {
				continue
			}
			if count[src] == 0 {
				order = append(order, src)
			}
			count[src]++
		}
		best := ""
		for _, src := range order { // Counter.most_common: the first of equals
			if best == "" || count[src] > count[best] {
				best = src
			}
		}
		return best, nil
	case len(spec) < 20 || !strings.Contains(spec, "{"):
		return "", fmt.Errorf("chat_template %q: give auto or a Jinja template's text (mergekit's built-in template names are not bundled with moco)", spec)
	}
	return spec, nil
}

// Close closes the sources of the Spec's inputs.
func (s *Spec) Close() error {
	var first error
	for _, in := range s.inputs() {
		if err := in.Src.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
