package collab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/merge"
)

// Weight-level methods: every merge method of package merge is a Method.
// Building one merges the pool's checkpoints into a model folder (once: the
// folder is cached under a hash of the method, its parameters and the
// inputs' files, so a sweep's shards and resumed runs reuse it), loads it,
// and answers requests with the merged model alone.
//
// Parameters (all optional unless the method needs them):
//
//	base:      the pool member that is the base model (task-vector methods,
//	           slerp, model_stock, expo need one); it is not merged as a model
//	weights:   one weight per merged model, in pool order (default 1 each)
//	densities: one density per merged model (sparsifying methods)
//	density, lambda, gamma, epsilon, t, alpha, normalize, rescale, ...:
//	           mergekit's global parameters, those the method reads
//	           (merge.MethodParams; others are refused)
//	seed:      for the random sparsification of DARE and DELLA
//	dtype:     the merged tensors' dtype (default: the base's or first model's)
//	cache_dir: where merged folders are kept (default: the user cache
//	           folder's moco/merges; the sweep puts them beside its results)
type WeightParams struct {
	Base      string    `json:"base"`
	Weights   []float64 `json:"weights"`
	Densities []float64 `json:"densities"`
	Seed      uint64    `json:"seed"`
	DType     string    `json:"dtype"`
	CacheDir  string    `json:"cache_dir"`
}

// mergeGlobals are the global merge parameters a config may set: every
// parameter some merge method reads (the merge refuses one that its
// method does not), so that a method added to merge takes its
// parameters here too.
var mergeGlobals = func() []string {
	var all []string
	for _, name := range merge.Methods() {
		for _, k := range merge.MethodParams(name) {
			if !slices.Contains(all, k) {
				all = append(all, k)
			}
		}
	}
	slices.Sort(all)
	return all
}()

func init() {
	for _, name := range merge.Methods() {
		name := name
		Register(Spec{Name: name, Level: LevelWeight, MinModels: merge.MinInputs(name),
			Summary: "merge the pool's weights with " + name + " (mergekit semantics), then generate with the merged model",
			New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
				return newWeightMethod(ctx, name, pool, p)
			}})
	}
}

// weightMethod answers with a merged model.
type weightMethod struct {
	name  string
	local *Local
}

func (w *weightMethod) Name() string { return w.name }
func (w *weightMethod) Level() Level { return LevelWeight }
func (w *weightMethod) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out, err := w.local.Generate(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.name, err)
	}
	return out, nil
}

// LogLikelihood scores continuation after prompt under the merged model.
func (w *weightMethod) LogLikelihood(ctx context.Context, prompt, continuation string) (float64, int, error) {
	return w.local.LogLikelihood(ctx, prompt, continuation)
}

// Close releases the merged model.
func (w *weightMethod) Close() error { return w.local.Close() }

// MergedDir returns the folder holding the merged model.
func (w *weightMethod) MergedDir() string { return w.local.Dir }

var mergeLocks sync.Map // folder -> *sync.Mutex: one merge per folder in a process

func newWeightMethod(ctx context.Context, name string, pool []Member, p Params) (Method, error) {
	var q WeightParams
	globals := merge.Params{}
	typed := Params{}
	for k, v := range p {
		isGlobal := false
		for _, g := range mergeGlobals {
			isGlobal = isGlobal || k == g
		}
		if !isGlobal {
			typed[k] = v
			continue
		}
		if reads := merge.MethodParams(name); !slices.Contains(reads, k) {
			list := "its parameters: " + strings.Join(reads, ", ")
			if len(reads) == 0 {
				list = "it reads none"
			}
			return nil, inputErrorf("%s: parameter %s is not read by %s (%s)", name, k, name, list)
		}
		f, err := number(v)
		if err != nil {
			return nil, inputErrorf("%s: parameter %s: %w", name, k, err)
		}
		globals[k] = merge.Scalar(f)
	}
	if err := typed.Decode(&q); err != nil {
		return nil, inputErrorf("%s: %w (merge parameters: %s, base, weights, densities, seed, dtype, cache_dir)", name, err, strings.Join(mergeGlobals, ", "))
	}
	var base *Member
	var models []Member
	for i := range pool {
		if pool[i].Dir == "" {
			return nil, inputErrorf("%s merges weights: %s is not a local model folder", name, pool[i].Name)
		}
		if q.Base != "" && pool[i].Name == q.Base {
			base = &pool[i]
			continue
		}
		models = append(models, pool[i])
	}
	if q.Base != "" && base == nil {
		return nil, inputErrorf("%s: base %q is not a model of the pool", name, q.Base)
	}
	if len(models) == 0 {
		return nil, inputErrorf("%s: no models to merge besides the base", name)
	}
	if q.Weights != nil && len(q.Weights) != len(models) {
		return nil, inputErrorf("%s: %d weights for %d models", name, len(q.Weights), len(models))
	}
	if q.Densities != nil && len(q.Densities) != len(models) {
		return nil, inputErrorf("%s: %d densities for %d models", name, len(q.Densities), len(models))
	}
	od, err := merge.ParseDType(q.DType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cache := q.CacheDir
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("%s: no cache folder (set cache_dir): %w", name, err)
		}
		cache = filepath.Join(d, "moco", "merges")
	}
	key, err := mergeKey(name, base, models, q, globals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := filepath.Join(cache, name+"-"+key)
	mu, _ := mergeLocks.LoadOrStore(out, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if !complete(out) {
		spec := &merge.Spec{Method: name, Params: globals, OutDType: od, Seed: q.Seed}
		fo := merge.FolderOptions{}
		open := func(m Member) (merge.Input, error) {
			in, err := merge.OpenModel(m.Dir)
			in.Name = m.Name
			in.Params = merge.Params{}
			return in, err
		}
		if base != nil {
			in, err := open(*base)
			if err != nil {
				return nil, err
			}
			spec.Base = &in
			fo.Dirs = append(fo.Dirs, base.Dir)
		}
		for i, m := range models {
			in, err := open(m)
			if err != nil {
				spec.Close()
				return nil, err
			}
			if q.Weights != nil {
				in.Params["weight"] = merge.Scalar(q.Weights[i])
			}
			if q.Densities != nil {
				in.Params["density"] = merge.Scalar(q.Densities[i])
			}
			spec.Models = append(spec.Models, in)
			fo.Dirs = append(fo.Dirs, m.Dir)
		}
		if err := os.MkdirAll(cache, 0o755); err != nil {
			spec.Close()
			return nil, err
		}
		err := merge.WriteFolder(ctx, spec, out, fo)
		spec.Close()
		if err != nil && !complete(out) { // another process may have finished it first
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	opts := engine.Options{}
	for _, m := range pool {
		if l, ok := m.Local.(*Local); ok {
			opts.ContextSize = l.Model.ContextSize()
			break
		}
	}
	l, err := LoadLocal(out, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: loading the merged model: %w", name, err)
	}
	l.ModelName = name
	return &weightMethod{name: name, local: l}, nil
}

// complete reports whether dir holds a finished model folder (WriteFolder
// renames it into place whole, so config.json means done).
func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "config.json"))
	return err == nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("want a number, got %v", v)
}

// mergeKey hashes what decides a merge's result: the method, parameters,
// and each input's folder with the sizes and times of its files.
func mergeKey(name string, base *Member, models []Member, q WeightParams, globals merge.Params) (string, error) {
	h := sha256.New()
	q.CacheDir = ""
	pj, _ := json.Marshal(q)
	gk := make([]string, 0, len(globals))
	for k := range globals {
		gk = append(gk, k)
	}
	sort.Strings(gk)
	fmt.Fprintf(h, "%s\n%s\n", name, pj)
	for _, k := range gk {
		fmt.Fprintf(h, "%s=%v\n", k, globals[k].Values)
	}
	all := models
	if base != nil {
		all = append([]Member{*base}, models...)
		fmt.Fprintln(h, "base")
	}
	for _, m := range all {
		abs, err := filepath.Abs(m.Dir)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "model %s\n", abs)
		ents, err := os.ReadDir(abs)
		if err != nil {
			return "", err
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
