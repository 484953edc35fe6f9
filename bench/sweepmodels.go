package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/merge"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// adapterBase returns the base model folder of a PEFT LoRA adapter folder
// (one with adapter_config.json and no config.json): the entry's base if
// given, else the adapter's base_model_name_or_path, relative to the
// adapter folder. ok is false for an ordinary model folder.
func adapterBase(path, base string) (string, bool, error) {
	if _, err := os.Stat(filepath.Join(path, "config.json")); err == nil {
		return "", false, nil
	}
	b, err := os.ReadFile(filepath.Join(path, "adapter_config.json"))
	if err != nil {
		return "", false, fmt.Errorf("%s is not a model folder (no config.json) nor a LoRA adapter (no adapter_config.json)", path)
	}
	if base == "" {
		var ac struct {
			Base string `json:"base_model_name_or_path"`
		}
		if err := json.Unmarshal(b, &ac); err != nil || ac.Base == "" {
			return "", true, fmt.Errorf("%s: a LoRA adapter without base_model_name_or_path: give the model's base", path)
		}
		base = ac.Base
		if !filepath.IsAbs(base) {
			base = filepath.Join(path, base)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "config.json")); err != nil {
		return "", true, fmt.Errorf("%s: the adapter's base %s is not a model folder", path, base)
	}
	return base, true, nil
}

// adapterLocal is a LoRA adapter merged into its base in memory.
type adapterLocal struct {
	*collab.Local
	src safetensors.Source
}

func (a *adapterLocal) Close() error {
	a.Local.Close()
	return a.src.Close()
}

// loadMember loads a pool model: a model folder, or a LoRA adapter applied
// to its base (weight 1). Adapters have no Dir, so weight-level methods,
// which merge folders, refuse them by name.
func loadMember(e ModelEntry, opts engine.Options) (collab.Member, func() error, error) {
	if e.URL != "" {
		ep, err := collab.NewEndpoint(e.URL, cmp.Or(e.Model, e.Name), e.APIKeyEnv)
		if err != nil {
			return collab.Member{}, nil, err
		}
		ep.ModelName = e.Name
		return ep.Member(), func() error { return nil }, nil
	}
	base, isAdapter, err := adapterBase(e.Path, e.Base)
	if err != nil {
		return collab.Member{}, nil, err
	}
	if !isAdapter {
		l, err := collab.LoadLocal(e.Path, opts)
		if err != nil {
			return collab.Member{}, nil, err
		}
		l.ModelName = e.Name
		return l.Member(), l.Close, nil
	}
	a, err := merge.LoadAdapter(e.Path)
	if err != nil {
		return collab.Member{}, nil, err
	}
	src, err := safetensors.OpenDir(base)
	if err != nil {
		return collab.Member{}, nil, err
	}
	merged, err := merge.ApplyLoRA(src, []*merge.Adapter{a}, []float64{1})
	if err != nil {
		src.Close()
		return collab.Member{}, nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	cfg, err := engine.LoadConfig(base)
	if err != nil {
		src.Close()
		return collab.Member{}, nil, err
	}
	m, err := engine.New(cfg, merged, opts)
	if err != nil {
		src.Close()
		return collab.Member{}, nil, err
	}
	tok, err := tokenizer.Load(base)
	if err != nil {
		src.Close()
		return collab.Member{}, nil, err
	}
	l := &adapterLocal{Local: collab.NewLocal(e.Name, "", m, tok), src: src}
	adapterDirs.Store(l.Local, e.Path)
	return collab.Member{Name: e.Name, Gen: l.Local, Local: l.Local}, l.Close, nil
}
