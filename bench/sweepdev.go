package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// How a sweep gives methods that learn or search their dev data.
//
// A method learns from a dataset's dev split when its registry spec says
// so (collab.Spec.Dev: routers, switch generation, LLM-Blender's ranker,
// heterogeneous swarms' graph search, contrastive's ranking of the pool for
// MoCo's rule, and the dev-scored weight searches of this package), reads
// per-model dev scores (collab.Spec.DevScores), or is one of the
// logit-level methods whose dev step lives outside the method: cascade's
// thresholds (dev_prompts) and Co-LLM's deferral head. Such a method
// is built once per dataset, not once per sweep, from that dataset's dev
// split only:
//
//   - "dev" is a file the sweep writes beside its results holding only the
//     dev split (no test key at all), with each exact/F1-match item's input
//     replaced by the prompt the sweep sends for it, so the method learns
//     on the prompts it will be asked;
//   - dev_max_tokens, dev_stop and dev_temperature default to the
//     dataset's generation settings;
//   - dev_scores are each pool model's dev accuracy, answering the dev
//     items alone with the sweep's settings and scorer;
//   - cascade gets the dev prompts, and co-llm a head trained on the dev
//     pairs (the marginal objective, as `moco collab train-head`), cached
//     beside the results; contrastive with explicit experts and
//     anti-experts (proxy-tuning's form) takes no dev set.
//
// Parameters set in the config are never overridden. A dataset without
// dev items leaves dev scores out (the method's defaults
// apply) and refuses the methods that must learn. A dataset evaluated
// on its dev split refuses such methods: they would be tested on what they
// learned from.

// devUse says what a method takes from the dev split (zero: nothing).
type devUse struct {
	file, scores, prompts, head bool
}

func (u devUse) any() bool { return u.file || u.scores || u.prompts || u.head }

// devNeeds returns what a row's method takes from the dev split, given
// the parameters its config entry sets.
func devNeeds(r methodRun) devUse {
	spec, _ := collab.Lookup(r.name)
	var u devUse
	has := func(k string) bool { _, ok := r.params[k]; return ok }
	u.file = spec.Dev && !has("dev")
	u.scores = spec.DevScores && !has("dev_scores")
	switch r.name {
	case "majority-vote":
		// Dev scores only break ties when tie is "dev"; otherwise every
		// pool model would answer the whole dev split for nothing.
		u.scores = u.scores && r.params["tie"] == "dev"
	case "slm-mux":
		// Its default tie rule is dev-based; the others need no scores.
		tie, set := r.params["tie"]
		u.scores = u.scores && (!set || tie == "dev-based")
	case "cascade":
		u.prompts = !has("thresholds") && !has("dev_prompts")
	case "contrastive":
		u.file = u.file && !has("experts") && !has("anti")
	case "co-llm":
		u.head = !has("head")
	}
	return u
}

// devSet is one dataset's dev split as the sweep asks it.
type devSet struct {
	file  string // dev-only dataset file
	items []Item
	reqs  []collab.Request

	mu     sync.Mutex
	scores map[string]float64 // pool model -> dev accuracy
}

// devPrep prepares the dev data of a sweep's datasets, lazily.
type devPrep struct {
	c       *SweepConfig
	dss     []*Dataset
	scorers []Scorer
	dir     string

	mu   sync.Mutex
	sets map[int]*devSet
}

// set returns dataset di's dev data, writing its dev-only file once.
func (p *devPrep) set(di int) (*devSet, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sets[di]; ok {
		return s, nil
	}
	d, e, sc := p.dss[di], p.c.Datasets[di], p.scorers[di]
	items, _ := d.Split("dev")
	if len(items) == 0 {
		return nil, fmt.Errorf("%s has no dev items", e.Name)
	}
	s := &devSet{items: items, scores: map[string]float64{}}
	var raw []map[string]json.RawMessage
	for _, it := range items {
		m := map[string]json.RawMessage{}
		for k, v := range it.Raw {
			m[k] = v
		}
		if d.TaskType != MultipleChoiceTask {
			b, _ := json.Marshal(sc.Prompt(it))
			m["input"] = b
			ref, _ := json.Marshal(Reference(d.TaskType, it))
			m["output"] = ref
		}
		raw = append(raw, m)
		s.reqs = append(s.reqs, buildRequest(p.c, "dev", d, e, sc, it))
	}
	b, err := json.Marshal(map[string]any{"dataset": d.Name, "task_type": d.TaskType, "dev": raw})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	s.file = filepath.Join(p.dir, e.Name+"-dev-"+hex.EncodeToString(sum[:6])+".json")
	if err := writeAtomic(s.file, b); err != nil {
		return nil, err
	}
	p.sets[di] = s
	return s, nil
}

// accuracy is a pool model's dev accuracy on dataset di, answering alone.
func (p *devPrep) accuracy(ctx context.Context, di int, m collab.Member) (float64, error) {
	s, err := p.set(di)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.scores[m.Name]; ok {
		return v, nil
	}
	out, err := m.Gen.Generate(ctx, s.reqs)
	if err != nil {
		return 0, fmt.Errorf("%s answering the dev split of %s: %w", m.Name, p.c.Datasets[di].Name, err)
	}
	if len(out) != len(s.reqs) {
		return 0, fmt.Errorf("%s: %d answers to %d dev items", m.Name, len(out), len(s.reqs))
	}
	total := 0.0
	for i, r := range out {
		sc, err := p.scorers[di].Score(ctx, s.items[i], r.Text)
		if err != nil {
			return 0, err
		}
		total += sc.Score
	}
	v := total / float64(len(out))
	s.scores[m.Name] = v
	return v, nil
}

// prepare returns the pool and parameters a row's method is built with for
// dataset di: the config's, completed from the dev split as devNeeds says.
func (p *devPrep) prepare(ctx context.Context, r methodRun, di int, pool []collab.Member, params collab.Params) ([]collab.Member, collab.Params, error) {
	u := devNeeds(r)
	if !u.any() {
		return pool, params, nil
	}
	e := p.c.Datasets[di]
	if dev, _ := p.dss[di].Split("dev"); len(dev) == 0 {
		// Dev scores are optional: without dev items the method keeps its
		// own defaults. The rest cannot do without.
		u.scores = false
		if !u.any() {
			return pool, params, nil
		}
		return nil, nil, fmt.Errorf("%s has no dev items to learn from", e.Name)
	}
	s, err := p.set(di)
	if err != nil {
		return nil, nil, err
	}
	if u.file {
		params["dev"] = s.file
		req := s.reqs[0]
		if _, ok := params["dev_max_tokens"]; !ok {
			params["dev_max_tokens"] = req.MaxTokens
		}
		if _, ok := params["dev_stop"]; !ok && len(req.Stop) > 0 {
			params["dev_stop"] = req.Stop
		}
		if _, ok := params["dev_temperature"]; !ok && req.Temperature > 0 {
			params["dev_temperature"] = req.Temperature
		}
	}
	var scores []float64
	if u.scores {
		for _, m := range pool {
			v, err := p.accuracy(ctx, di, m)
			if err != nil {
				return nil, nil, err
			}
			scores = append(scores, v)
		}
	}
	if u.scores {
		params["dev_scores"] = scores
	}
	if u.prompts {
		var ps []string
		for _, it := range s.items {
			ps = append(ps, p.scorers[di].Prompt(it))
		}
		params["dev_prompts"] = ps
	}
	if u.head {
		path, err := p.head(ctx, r, di, s, pool)
		if err != nil {
			return nil, nil, fmt.Errorf("%s on %s: training the deferral head on dev: %w", r.label, e.Name, err)
		}
		params["head"] = path
	}
	return pool, params, nil
}

// head trains (or reuses) a Co-LLM deferral head on dataset di's dev
// pairs, as `moco collab train-head` does with its defaults.
func (p *devPrep) head(ctx context.Context, r methodRun, di int, s *devSet, pool []collab.Member) (string, error) {
	if len(pool) != 2 {
		return "", fmt.Errorf("co-llm takes two models, got %d", len(pool))
	}
	ls, err := collab.Locals("co-llm", pool)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", r.label, pool[0].Name, pool[1].Name, s.file)
	path := filepath.Join(p.dir, r.label+"-"+p.c.Datasets[di].Name+"-head-"+hex.EncodeToString(h.Sum(nil)[:6])+".safetensors")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	ms := []*engine.Model{ls[0].Model, ls[1].Model}
	toks := []*tokenizer.Tokenizer{ls[0].Tok, ls[1].Tok}
	vocab, err := decode.SharedVocab(ms, toks, []string{pool[0].Name, pool[1].Name})
	if err != nil {
		return "", err
	}
	eos := decode.EOSIDs(toks[0], ms...)
	task := p.dss[di].TaskType
	var pairs []decode.HeadPair
	for i, it := range s.items {
		prompt := s.reqs[i].Prompt
		ref := Reference(task, it)
		pi, err := toks[0].Encode(prompt, true)
		if err != nil {
			return "", err
		}
		ri, err := toks[0].Encode(answerSep(prompt, ref)+ref, false)
		if err != nil {
			return "", err
		}
		if len(eos) > 0 {
			ri = append(ri, eos[0])
		}
		if n := ms[0].NewSession(0).MaxSeq(); len(pi)+len(ri) > n {
			continue // longer than the context: cannot be teacher-forced
		}
		pairs = append(pairs, decode.HeadPair{Prompt: pi, Reference: ri})
	}
	if len(pairs) == 0 {
		return "", fmt.Errorf("no dev pair fits the models' context")
	}
	d, err := decode.CollectHeadDataContext(ctx, ms[0].NewSession(0), ms[1].NewSession(0), vocab, pairs)
	if err != nil {
		return "", err
	}
	hd, err := decode.TrainHead(d, decode.HeadTrainConfig{})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := hd.Save(tmp); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// answerSep is what goes between a prompt and its reference answer when
// teacher-forcing: a space unless either side already has whitespace there
// (as `moco collab train-head`).
func answerSep(prompt, answer string) string {
	if strings.TrimRight(prompt, " \n\t") != prompt || strings.TrimLeft(answer, " \n\t") != answer {
		return ""
	}
	return " "
}
