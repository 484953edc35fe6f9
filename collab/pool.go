package collab

import (
	"fmt"
	"strings"
	"time"

	"github.com/mocolab/moco/engine"
)

// PoolOptions configures OpenPool.
type PoolOptions struct {
	Engine engine.Options // for model folders
	// KeyEnv names the environment variable holding the endpoints' API key
	// ("" for servers without keys).
	KeyEnv      string
	Timeout     time.Duration // per request attempt to an endpoint (0: Endpoint's default)
	Concurrency int           // requests in flight per endpoint (0: Endpoint's default)
}

// IsEndpointSpec reports whether a pool spec names an HTTP endpoint.
func IsEndpointSpec(spec string) bool {
	return strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://")
}

// OpenPool opens a pool from specs: a model folder is loaded in this
// process (LoadLocal); "http(s)://HOST[:PORT][/v1]#MODEL" is an
// OpenAI-compatible endpoint serving MODEL. Names are the folders' base
// names or the endpoints' model names, made unique by "#2", "#3" suffixes.
// The returned function closes the local models.
func OpenPool(specs []string, o PoolOptions) ([]Member, func(), error) {
	var locals []*Local
	closeAll := func() {
		for _, l := range locals {
			l.Close()
		}
	}
	seen := map[string]int{}
	unique := func(name string) string {
		seen[name]++
		if n := seen[name]; n > 1 {
			return fmt.Sprintf("%s#%d", name, n)
		}
		return name
	}
	var pool []Member
	for _, s := range specs {
		if IsEndpointSpec(s) {
			base, model, ok := strings.Cut(s, "#")
			if !ok || model == "" {
				closeAll()
				return nil, func() {}, fmt.Errorf("endpoint %q: name the model after a #, as in http://host:8000/v1#MODEL", s)
			}
			e, err := NewEndpoint(base, model, o.KeyEnv)
			if err != nil {
				closeAll()
				return nil, func() {}, err
			}
			e.Timeout, e.Concurrency = o.Timeout, o.Concurrency
			e.ModelName = unique(model)
			pool = append(pool, e.Member())
			continue
		}
		l, err := LoadLocal(s, o.Engine)
		if err != nil {
			closeAll()
			return nil, func() {}, err
		}
		l.ModelName = unique(l.ModelName)
		locals = append(locals, l)
		pool = append(pool, l.Member())
	}
	return pool, closeAll, nil
}

// LoadPool loads each folder as a Local: OpenPool for folders only.
func LoadPool(dirs []string, opts engine.Options) ([]Member, func(), error) {
	for _, d := range dirs {
		if IsEndpointSpec(d) {
			return nil, func() {}, fmt.Errorf("%s is an endpoint, not a model folder", d)
		}
	}
	return OpenPool(dirs, PoolOptions{Engine: opts})
}
