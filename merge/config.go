package merge

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mocolab/moco/safetensors"
)

// Config is a mergekit merge configuration (the subset moco implements:
// models with per-model parameters, merge_method, base_model, global
// parameters, dtype, out_dtype, tokenizer_source).
type Config struct {
	Method          string        `yaml:"merge_method"`
	BaseModel       string        `yaml:"base_model"`
	Models          []ModelConfig `yaml:"models"`
	Parameters      Params        `yaml:"parameters"`
	DType           string        `yaml:"dtype"`
	OutDType        string        `yaml:"out_dtype"`
	TokenizerSource string        `yaml:"tokenizer_source"`
	Slices          yaml.Node     `yaml:"slices"`
}

// ModelConfig is one entry of models:.
type ModelConfig struct {
	Model      string `yaml:"model"`
	Parameters Params `yaml:"parameters"`
}

// ParseConfig reads a mergekit YAML configuration.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("merge config: %w", err)
	}
	if c.Slices.Kind != 0 {
		return nil, fmt.Errorf("merge config: slices: are not supported (use models:)")
	}
	if c.Method == "" {
		return nil, fmt.Errorf("merge config: no merge_method")
	}
	if len(c.Models) == 0 {
		return nil, fmt.Errorf("merge config: no models")
	}
	for i, m := range c.Models {
		if m.Model == "" {
			return nil, fmt.Errorf("merge config: models[%d] has no model path", i)
		}
	}
	return &c, nil
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
// (paths relative to dir). It also returns folder options naming the
// config and tokenizer sources. Close the Spec's sources when done.
func (c *Config) Open(dir string) (*Spec, FolderOptions, error) {
	var fo FolderOptions
	path := func(p string) string {
		if filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
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
	s := &Spec{Method: c.Method, Params: c.Parameters, OutDType: od}
	if _, ok := methods[c.Method]; !ok {
		return nil, fo, fmt.Errorf("unknown merge method %q (known: %s)", c.Method, strings.Join(Methods(), ", "))
	}
	opened := []safetensors.Source{}
	fail := func(err error) (*Spec, FolderOptions, error) {
		for _, src := range opened {
			src.Close()
		}
		return nil, fo, err
	}
	base := ""
	if c.BaseModel != "" && c.Method != "linear" {
		base = path(c.BaseModel)
		in, err := OpenModel(base)
		if err != nil {
			return fail(err)
		}
		opened = append(opened, in.Src)
		s.Base = &in
		fo.Dirs = append(fo.Dirs, base)
	}
	for _, m := range c.Models {
		p := path(m.Model)
		if p == base {
			continue // the base takes part as the base, not as a model
		}
		in, err := OpenModel(p)
		if err != nil {
			return fail(err)
		}
		opened = append(opened, in.Src)
		in.Params = m.Parameters
		s.Models = append(s.Models, in)
		fo.Dirs = append(fo.Dirs, p)
	}
	switch c.TokenizerSource {
	case "", "base":
		fo.TokenizerDir = fo.Dirs[0]
	case "union":
		return fail(fmt.Errorf("tokenizer_source: union is not supported"))
	default:
		fo.TokenizerDir = path(c.TokenizerSource)
	}
	return s, fo, nil
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
