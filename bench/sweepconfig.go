package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/internal/yamlerr"
)

// SweepConfig is a sweep: a model pool, methods over it, datasets, and the
// generation settings, read from YAML or JSON (JSON is YAML) with unknown
// fields refused.
//
//	models:                      # the pool: paths, or {name, path}
//	  - ../shared/models/skills-add
//	  - {name: rev, path: ../shared/models/skills-rev}
//	methods:                     # registry names, or {name, label, models, params}
//	  - single                   # every model of the pool alone
//	  - {name: fusion, params: {mode: prob-mean}}
//	  - {name: ties, label: ties-0.5, models: [base, add, rev], params: {base: base, density: 0.5}}
//	datasets:                    # paths, or {path, name, split, limit, prompt, domain, max_tokens, stop, choice_scoring}
//	  - {path: ../shared/datasets/skills_add.json, split: test, prompt: raw}
//	generation: {max_tokens: 16, temperature: 0, top_p: 1, stop: ["\n"], chat: false}
//	seed: 1
//	judge: path/to/judge-model   # for reward_model and noncompliance
//	noncompliance_keywords: false # true: without a judge, score noncompliance by MoCo's keyword rule
//	code_timeout: 10s
//	workers: 0                   # items at once (0: one per core); a model's or fusion/contrastive/nudging's items in flight decode in one batch
//	timing: true                 # record wall time per item (false: reproducible files)
type SweepConfig struct {
	Models      []ModelEntry   `yaml:"models"`
	Methods     []MethodEntry  `yaml:"methods"`
	Datasets    []DatasetEntry `yaml:"datasets"`
	Generation  Generation     `yaml:"generation"`
	Seed        uint64         `yaml:"seed"`
	Judge       string         `yaml:"judge"`
	CodeTimeout string         `yaml:"code_timeout"`
	Workers     int            `yaml:"workers"`
	Threads     int            `yaml:"threads"`
	Quant       string         `yaml:"quant"`
	CtxSize     int            `yaml:"ctx_size"`
	Timing      *bool          `yaml:"timing"`
	// NoncomplianceKeywords opts in to MoCo's keyword rule for
	// noncompliance datasets when no judge is configured (else they are
	// refused).
	NoncomplianceKeywords bool `yaml:"noncompliance_keywords"`

	// File is the config's path (for messages); paths in it are relative
	// to its folder.
	File string `yaml:"-"`
}

// ModelEntry is one model of the pool.
type ModelEntry struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
	// Base is the base model of a LoRA adapter folder (default: the
	// adapter's base_model_name_or_path).
	Base string `yaml:"base"`
	// URL, in place of Path, is an OpenAI-compatible endpoint serving
	// Model (default: Name), its API key in the environment variable
	// APIKeyEnv. It answers alone and in API- and text-level methods.
	// (Left out of Hash when empty, so results made before these fields
	// existed still resume.)
	URL       string `yaml:"url" json:",omitempty"`
	Model     string `yaml:"model" json:",omitempty"`
	APIKeyEnv string `yaml:"api_key_env" json:",omitempty"`
}

// MethodEntry is one method to run: a registry name, its parameters, the
// pool members it runs over (default: all), and its row label.
type MethodEntry struct {
	Name   string         `yaml:"name"`
	Label  string         `yaml:"label"`
	Models []string       `yaml:"models"`
	Params map[string]any `yaml:"params"`
}

// DatasetEntry is one dataset file and how it is run.
type DatasetEntry struct {
	Path      string   `yaml:"path"`
	Name      string   `yaml:"name"`   // default: the file's name without .json, as MoCo names tasks
	Split     string   `yaml:"split"`  // default: test
	Limit     int      `yaml:"limit"`  // 0: every item; else a seeded stratified sample
	Prompt    string   `yaml:"prompt"` // moco (default) or raw
	Domain    string   `yaml:"domain"` // for the report's domain averages
	MaxTokens int      `yaml:"max_tokens"`
	Stop      []string `yaml:"stop"`
	// ChoiceScoring is how multiple-choice items are scored: "generate"
	// (default: the option letter read from a generation) or "loglik" (the
	// option with the highest log-likelihood under the method; single,
	// fusion, contrastive, nudging and weight-level methods).
	ChoiceScoring string `yaml:"choice_scoring"`
}

// Generation holds the sampling settings of every request.
type Generation struct {
	MaxTokens   int      `yaml:"max_tokens"`
	Temperature float64  `yaml:"temperature"`
	TopP        float64  `yaml:"top_p"`
	Stop        []string `yaml:"stop"`
	Chat        bool     `yaml:"chat"` // send prompts as a user message through the chat template
}

// checkKeys refuses mapping keys outside allowed, naming the line (yaml's
// strict mode does not reach custom unmarshalers).
func checkKeys(n *yaml.Node, what string, allowed ...string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("line %d: %s has no field %q (fields: %s)", n.Content[i].Line, what, k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// UnmarshalYAML reads a path, {name, path, base} or {name, url, model,
// api_key_env}.
func (m *ModelEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		m.Path = n.Value
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a model is a path, {name, path} or {name, url, model, api_key_env}", n.Line)
	}
	if err := checkKeys(n, "a model", "name", "path", "base", "url", "model", "api_key_env"); err != nil {
		return err
	}
	type plain ModelEntry
	return n.Decode((*plain)(m))
}

// UnmarshalYAML reads a method name or {name, label, models, params}.
func (m *MethodEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		m.Name = n.Value
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a method is a name or {name, label, models, params}", n.Line)
	}
	if err := checkKeys(n, "a method", "name", "label", "models", "params"); err != nil {
		return err
	}
	type plain MethodEntry
	return n.Decode((*plain)(m))
}

// UnmarshalYAML reads a path or {path, name, split, limit, prompt, domain, max_tokens, stop}.
func (d *DatasetEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		d.Path = n.Value
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a dataset is a path or {path, split, limit, ...}", n.Line)
	}
	if err := checkKeys(n, "a dataset", "path", "name", "split", "limit", "prompt", "domain", "max_tokens", "stop", "choice_scoring"); err != nil {
		return err
	}
	type plain DatasetEntry
	return n.Decode((*plain)(d))
}

// ParseSweepConfig decodes a config strictly and checks everything that
// can be checked without touching files: at least one model, method and
// dataset, known method names and pool sizes, splits, limits, prompt styles.
// Errors name the field (models[2].path, datasets[0].split, ...).
func ParseSweepConfig(data []byte) (*SweepConfig, error) {
	var c SweepConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty config")
		}
		return nil, yamlerr.Clean(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("more than one YAML document")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlerr.Clean(err)
	}
	if err := yamlerr.CheckInts(&doc, c); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *SweepConfig) check() error {
	if len(c.Models) == 0 {
		return fmt.Errorf("models: the pool is empty (list model folders)")
	}
	names := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		switch {
		case m.URL != "" && m.Path != "":
			return fmt.Errorf("models[%d]: give a path or a url, not both", i)
		case m.URL != "":
			if !collab.IsEndpointSpec(m.URL) {
				return fmt.Errorf("models[%d].url: %q does not start with http:// or https://", i, m.URL)
			}
			if m.Base != "" {
				return fmt.Errorf("models[%d].base: a LoRA adapter's base is for a path, not a url", i)
			}
			if m.Name == "" {
				m.Name = m.Model
			}
			if m.Name == "" {
				return fmt.Errorf("models[%d]: an endpoint needs a name or a model", i)
			}
		case m.Path == "":
			return fmt.Errorf("models[%d].path: empty", i)
		case m.Model != "" || m.APIKeyEnv != "":
			return fmt.Errorf("models[%d]: model and api_key_env are for a url, not a path", i)
		}
		if m.Name == "" {
			m.Name = filepath.Base(filepath.Clean(m.Path))
		}
		if names[m.Name] {
			return fmt.Errorf("models[%d].name: %q is used twice (give each model a distinct name)", i, m.Name)
		}
		names[m.Name] = true
	}
	if len(c.Methods) == 0 {
		return fmt.Errorf("methods: none listed (\"single\" runs every model alone)")
	}
	labels := map[string]bool{}
	for i := range c.Methods {
		m := &c.Methods[i]
		spec, ok := collab.Lookup(m.Name)
		if !ok {
			var known []string
			for _, s := range collab.Specs() {
				known = append(known, s.Name)
			}
			return fmt.Errorf("methods[%d].name: unknown method %q (known: %s)", i, m.Name, strings.Join(known, ", "))
		}
		for j, name := range m.Models {
			if !names[name] {
				return fmt.Errorf("methods[%d].models[%d]: %q is not a model of the pool", i, j, name)
			}
		}
		n := len(m.Models)
		if n == 0 {
			n = len(c.Models)
		}
		if m.Name != "single" || len(m.Models) > 0 {
			if n < spec.MinModels || spec.MaxModels > 0 && n > spec.MaxModels {
				return fmt.Errorf("methods[%d]: %s takes %s models, it would get %d (set models:)", i, m.Name, countRange(spec), n)
			}
		}
		if m.Label == "" {
			m.Label = m.Name
			if m.Name == "single" && len(m.Models) == 1 {
				m.Label = m.Models[0]
			}
		}
		if m.Name != "single" || len(m.Models) > 0 {
			if labels[m.Label] || names[m.Label] && m.Name != "single" {
				return fmt.Errorf("methods[%d].label: %q names two rows (give a distinct label)", i, m.Label)
			}
			labels[m.Label] = true
		}
	}
	if len(c.Datasets) == 0 {
		return fmt.Errorf("datasets: none listed")
	}
	for i := range c.Datasets {
		d := &c.Datasets[i]
		if d.Path == "" {
			return fmt.Errorf("datasets[%d].path: empty", i)
		}
		if d.Split == "" {
			d.Split = "test"
		}
		if d.Split != "dev" && d.Split != "test" {
			return fmt.Errorf("datasets[%d].split: %q (want dev or test)", i, d.Split)
		}
		if d.Limit < 0 {
			return fmt.Errorf("datasets[%d].limit: %d (want 0 for all, or a positive count)", i, d.Limit)
		}
		if d.Prompt != "" && d.Prompt != "moco" && d.Prompt != "raw" {
			return fmt.Errorf("datasets[%d].prompt: %q (want moco or raw)", i, d.Prompt)
		}
		if d.ChoiceScoring != "" && d.ChoiceScoring != ChoiceGenerate && d.ChoiceScoring != ChoiceLoglik {
			return fmt.Errorf("datasets[%d].choice_scoring: %q (want generate or loglik)", i, d.ChoiceScoring)
		}
		if d.MaxTokens < 0 {
			return fmt.Errorf("datasets[%d].max_tokens: %d is negative", i, d.MaxTokens)
		}
	}
	g := c.Generation
	switch {
	case g.MaxTokens < 0:
		return fmt.Errorf("generation.max_tokens: %d is negative", g.MaxTokens)
	case g.Temperature < 0:
		return fmt.Errorf("generation.temperature: %g is negative", g.Temperature)
	case g.TopP < 0 || g.TopP > 1:
		return fmt.Errorf("generation.top_p: %g (want 0 to 1)", g.TopP)
	case c.Workers < 0:
		return fmt.Errorf("workers: %d is negative", c.Workers)
	case c.Threads < 0:
		return fmt.Errorf("threads: %d is negative", c.Threads)
	case c.CtxSize < 0:
		return fmt.Errorf("ctx_size: %d is negative", c.CtxSize)
	case c.Quant != "" && c.Quant != "q8_0":
		return fmt.Errorf("quant: %q (want \"\" or q8_0)", c.Quant)
	}
	if c.CodeTimeout != "" {
		d, err := time.ParseDuration(c.CodeTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("code_timeout: %q is not a positive duration (e.g. 10s)", c.CodeTimeout)
		}
	}
	return nil
}

func countRange(s collab.Spec) string {
	switch {
	case s.MaxModels == 0:
		return fmt.Sprintf("%d or more", s.MinModels)
	case s.MinModels == s.MaxModels:
		return fmt.Sprint(s.MinModels)
	}
	return fmt.Sprintf("%d to %d", s.MinModels, s.MaxModels)
}

// LoadSweepConfig reads and checks a config file, then the files it names:
// every model folder must hold a config.json, every dataset must parse
// and validate (LoadDataset) and hold items in its split. Paths are made
// relative to the config's folder. Errors name the file and the field;
// nothing here loads a model.
func LoadSweepConfig(path string) (*SweepConfig, []*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	c, err := ParseSweepConfig(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	c.File = path
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range c.Models {
		m := &c.Models[i]
		if m.URL != "" {
			continue
		}
		m.Path = abs(m.Path)
		if m.Base != "" {
			m.Base = abs(m.Base)
		}
		if _, _, err := adapterBase(m.Path, m.Base); err != nil {
			return nil, nil, fmt.Errorf("%s: models[%d].path: %w", path, i, err)
		}
	}
	// File parameters (a trained method's dev set, a deferral head) are
	// relative to the config's folder too.
	for i := range c.Methods {
		for k, v := range c.Methods[i].Params {
			if s, ok := v.(string); ok && s != "" && !filepath.IsAbs(s) {
				if _, err := os.Stat(filepath.Join(dir, s)); err == nil {
					c.Methods[i].Params[k] = filepath.Join(dir, s)
				}
			}
		}
	}
	if c.Judge != "" {
		c.Judge = abs(c.Judge)
		if _, err := os.Stat(filepath.Join(c.Judge, "config.json")); err != nil {
			return nil, nil, fmt.Errorf("%s: judge: %s is not a model folder (no config.json)", path, c.Judge)
		}
	}
	var ds []*Dataset
	seen := map[string]bool{}
	for i := range c.Datasets {
		e := &c.Datasets[i]
		e.Path = abs(e.Path)
		d, err := LoadDataset(e.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: datasets[%d].path: %w", path, i, err)
		}
		if e.Name == "" {
			// As MoCo, which names a task by its file: culturebench.json
			// calls itself culturebench_hard inside.
			e.Name = strings.TrimSuffix(filepath.Base(e.Path), filepath.Ext(e.Path))
		}
		key := e.Name + "/" + e.Split
		if seen[key] {
			return nil, nil, fmt.Errorf("%s: datasets[%d]: %s %s is listed twice (give one a distinct name)", path, i, e.Name, e.Split)
		}
		seen[key] = true
		items, _ := d.Split(e.Split)
		if len(items) == 0 {
			return nil, nil, fmt.Errorf("%s: datasets[%d].split: %s has no %s items", path, i, e.Path, e.Split)
		}
		// Only multiple choice has options to weigh; elsewhere loglik
		// would be silently ignored.
		if e.ChoiceScoring == ChoiceLoglik && d.TaskType != MultipleChoiceTask {
			return nil, nil, fmt.Errorf("%s: datasets[%d].choice_scoring: loglik is for %s datasets; %s is %s", path, i, MultipleChoiceTask, e.Name, d.TaskType)
		}
		ds = append(ds, d)
	}
	return c, ds, nil
}

// TimingOn reports whether wall times are recorded (the default).
func (c *SweepConfig) TimingOn() bool { return c.Timing == nil || *c.Timing }

// Hash identifies everything that decides a result line's content: models
// (by path), methods with parameters, generation settings, seed, judge and
// per-dataset prompts and token limits. Limits and shards are not part of
// it (they choose items, not their results), so a sweep can be resumed
// with a larger limit.
func (c *SweepConfig) Hash() string {
	type ds struct {
		Path, Name, Split, Prompt string
		MaxTokens                 int
		Stop                      []string
		Choice                    string `json:",omitempty"`
	}
	v := struct {
		Models  []ModelEntry
		Methods []MethodEntry
		Data    []ds
		Gen     Generation
		Seed    uint64
		Judge   string
		Code    string
		Quant   string
		Ctx     int
		NCKeys  bool `json:",omitempty"`
	}{c.Models, c.Methods, nil, c.Generation, c.Seed, c.Judge, c.CodeTimeout, c.Quant, c.CtxSize, c.NoncomplianceKeywords}
	for _, d := range c.Datasets {
		v.Data = append(v.Data, ds{d.Path, d.Name, d.Split, d.Prompt, d.MaxTokens, d.Stop, d.ChoiceScoring})
	}
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
