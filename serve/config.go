package serve

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/yamlerr"
)

// Config is what a server serves: model folders, remote OpenAI-compatible
// endpoints and collaboration recipes over them. As YAML:
//
//	models:
//	  - id: a
//	    path: /models/stories260K
//	  - id: b
//	    path: /models/llama2xs
//	  - id: gpt                # a remote model, served here too
//	    url: https://api.openai.com/v1
//	    model: gpt-4o-mini     # its name there (default: the id)
//	    api_key_env: OPENAI_API_KEY
//	recipes:
//	  - id: fusion-ab          # logit fusion of a and b
//	    method: fusion
//	    models: [a, b]
//	    params: {mode: logit-mean}
//	  - id: spec-a             # a, with b drafting
//	    method: speculative
//	    models: [a, b]
//	    params: {draft_tokens: 4}
//
// A recipe's method is any name of the collab registry ('moco collab
// --help' lists them) and its params are that method's, checked strictly.
// Remote models take part in API- and text-level recipes (routing, voting,
// debate, ...); the logit-level methods need every model's logits, so
// they refuse them.
type Config struct {
	Models  []ModelSpec  `yaml:"models"`
	Recipes []RecipeSpec `yaml:"recipes"`
}

// ModelSpec is one model served under ID: a model folder (Path), or an
// OpenAI-compatible endpoint (URL, the model's name there, and the
// environment variable holding the API key, if the endpoint wants one).
type ModelSpec struct {
	ID        string `yaml:"id"`
	Path      string `yaml:"path"`
	URL       string `yaml:"url"`
	Model     string `yaml:"model"`
	APIKeyEnv string `yaml:"api_key_env"`
}

// RecipeSpec is one collaboration method served under ID, over the models
// of this config named in Models.
type RecipeSpec struct {
	ID     string         `yaml:"id"`
	Method string         `yaml:"method"`
	Models []string       `yaml:"models"`
	Params map[string]any `yaml:"params"`
}

// ParseConfig decodes a YAML config strictly: unknown keys, a second
// document and missing fields are errors. Relative model paths are
// resolved against dir (the config file's folder). A path that names a
// LoRA adapter (an adapter folder, or mergekit's MODEL+LORA) is refused
// here, before any model loads: a model is served from a model folder.
func ParseConfig(data []byte, dir string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the config is empty")
		}
		return nil, fmt.Errorf("config: %w", yamlerr.Clean(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: holds more than one YAML document")
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		if m.ID == "" || (m.Path == "") == (m.URL == "") {
			return nil, fmt.Errorf("config: models[%d] needs an id and either a path (a model folder) or a url (an OpenAI-compatible endpoint)", i)
		}
		if m.URL != "" {
			if !collab.IsEndpointSpec(m.URL) {
				return nil, fmt.Errorf("config: models[%d] (%s): the url must start with http:// or https://, got %q", i, m.ID, m.URL)
			}
		} else if m.Model != "" || m.APIKeyEnv != "" {
			return nil, fmt.Errorf("config: models[%d] (%s): model and api_key_env are for a url, not a path", i, m.ID)
		}
		if seen[m.ID] {
			return nil, fmt.Errorf("config: the id %q is used twice", m.ID)
		}
		seen[m.ID] = true
		if m.Path != "" {
			if err := checkModelPath(m.Path, dir); err != nil {
				return nil, fmt.Errorf("config: models[%d] (%s): %w", i, m.ID, err)
			}
			c.Models[i].Path = resolve(m.Path, dir)
		}
	}
	for i, r := range c.Recipes {
		if r.ID == "" || r.Method == "" || len(r.Models) == 0 {
			return nil, fmt.Errorf("config: recipes[%d] needs an id, a method and models", i)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("config: the id %q is used twice", r.ID)
		}
		seen[r.ID] = true
		for _, id := range r.Models {
			if !hasModel(c.Models, id) {
				return nil, fmt.Errorf("config: recipe %q uses the model %q, which the config's models do not list", r.ID, id)
			}
		}
	}
	return &c, nil
}

// resolve is path relative to dir, when it is relative and dir is given.
func resolve(path, dir string) string {
	if !filepath.IsAbs(path) && dir != "" {
		return filepath.Join(dir, path)
	}
	return path
}

// checkModelPath refuses a model path that names a LoRA adapter where a
// model folder is needed: mergekit's MODEL+LORA (a model with an adapter
// merged in, which only merge configurations read), or an adapter folder.
// Either would fail only once the models before it had loaded, as a
// missing config.json. Paths that do not exist are left for loading to
// report.
func checkModelPath(path, dir string) error {
	p := resolve(path, dir)
	if _, err := os.Stat(p); err != nil {
		i := strings.LastIndex(path, "+")
		if i <= 0 || i == len(path)-1 {
			return nil
		}
		model, lora := resolve(path[:i], dir), resolve(path[i+1:], dir)
		if _, err := os.Stat(filepath.Join(lora, "adapter_config.json")); err != nil {
			return nil
		}
		return fmt.Errorf("path %s is MODEL+LORA (a model with a LoRA adapter merged in), which moco reads in merge configurations only; merge it first (moco merge --method lora --base %s -m %s --out DIR) and serve DIR", path, model, lora)
	}
	if _, err := os.Stat(filepath.Join(p, "config.json")); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(p, "adapter_config.json")); err == nil {
		return fmt.Errorf("path %s is a LoRA adapter, not a model folder; merge it into its base first (moco merge --method lora --base BASE -m %s --out DIR) and serve DIR", path, p)
	}
	return nil
}

func hasModel(ms []ModelSpec, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// LoadConfig reads and parses a YAML config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// BuildOptions say how Build loads models and sets up their batchers.
type BuildOptions struct {
	Engine  engine.Options
	Batcher decode.BatcherConfig
	Server  Options
	// Progress, when set, receives a line per model loaded.
	Progress func(format string, args ...any)
}

// Build loads every model of c, builds its recipes through the collab
// registry and returns the server and a function that closes the
// server and the models. A recipe's members generate text through their
// model's batcher, so text-level methods share the batch; fusion,
// contrastive and nudging recipes step all their models in one lockstep
// batch of their own (every request of the recipe in it); the other
// logit-level methods run their own sessions over the same weights, a
// request at a time per RecipeConcurrency slot.
func Build(ctx context.Context, c *Config, opts BuildOptions) (*Server, func(), error) {
	s := New(opts.Server)
	var locals []*collab.Local
	closeAll := func() {
		s.Close()
		for _, l := range locals {
			l.Close()
		}
	}
	members := map[string]collab.Member{}
	contexts := map[string]int{}
	for _, ms := range c.Models {
		if err := ctx.Err(); err != nil {
			closeAll()
			return nil, nil, err
		}
		if ms.URL != "" {
			// A remote model: a pool member, and served under its id as
			// the single method over it (requests are forwarded).
			model := cmp.Or(ms.Model, ms.ID)
			ep, err := collab.NewEndpoint(ms.URL, model, ms.APIKeyEnv)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("model %s: %w", ms.ID, err)
			}
			ep.ModelName = ms.ID
			members[ms.ID] = ep.Member()
			m, err := collab.New(ctx, "single", []collab.Member{members[ms.ID]}, nil)
			if err == nil {
				err = s.AddRecipe(ms.ID, m, nil, 0)
			}
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("model %s: %w", ms.ID, err)
			}
			if opts.Progress != nil {
				opts.Progress("%s: %s at %s", ms.ID, model, ms.URL)
			}
			continue
		}
		l, err := collab.LoadLocal(ms.Path, opts.Engine)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("model %s: %w", ms.ID, err)
		}
		l.ModelName = ms.ID
		locals = append(locals, l)
		if err := s.AddModel(ms.ID, l.Model, l.Tok, opts.Batcher); err != nil {
			closeAll()
			return nil, nil, err
		}
		e := s.lookup(ms.ID)
		// The model as a recipe member answers through the served model's
		// batcher, so that the requests of text-level methods (debate,
		// voting, ...) share the batch with everything else the server runs.
		l.UseBatcher(e.batcher.(*decode.Batcher))
		members[ms.ID] = l.Member()
		contexts[ms.ID] = e.context
		if opts.Progress != nil {
			opts.Progress("loaded %s from %s", ms.ID, ms.Path)
		}
	}
	for _, r := range c.Recipes {
		pool := make([]collab.Member, len(r.Models))
		ctxLen := 1 << 30
		var first *collab.Local // renders and counts prompts
		for i, id := range r.Models {
			pool[i] = members[id]
			if l, ok := pool[i].Local.(*collab.Local); ok {
				ctxLen = min(ctxLen, contexts[id])
				if first == nil {
					first = l
				}
			}
		}
		m, err := collab.New(ctx, r.Method, pool, collab.Params(r.Params))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("recipe %s: %w", r.ID, err)
		}
		if first == nil {
			ctxLen = 0 // remote models only: they check their own limits
		}
		// Fusion, contrastive and nudging share one lockstep batch among
		// their requests, as a model's requests share its batcher.
		lb, lerr := collab.LockstepBatcher(m, decode.LockstepBatcherConfig{Batch: opts.Batcher.Batch, MaxQueue: opts.Batcher.MaxQueue, Context: opts.Batcher.Context})
		if lerr == nil {
			err = s.AddBatchedRecipe(r.ID, m, first, lb)
		} else {
			err = s.AddRecipe(r.ID, m, first, ctxLen)
		}
		if err != nil {
			if lb != nil {
				lb.Close()
			}
			closeAll()
			return nil, nil, err
		}
		if opts.Progress != nil {
			opts.Progress("recipe %s: %s over %v", r.ID, r.Method, r.Models)
		}
	}
	return s, closeAll, nil
}
