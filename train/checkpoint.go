package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// A checkpoint is a folder checkpoint-STEP holding everything an SFT run
// needs to go on bit for bit: the trainable weights (params.safetensors,
// F32, under the optimizer's names), AdamW's moments
// (optimizer.safetensors, m.NAME and v.NAME), and trainer_state.json (the
// steps done, AdamW's step count, the states of the batch and dropout
// random streams, the history for loss.csv, and a fingerprint of the
// base model, configuration and data that resuming must match). A LoRA
// run's checkpoint also holds the adapter in PEFT's format, usable as it
// is.
// The folder is written under a temporary name and renamed into place,
// so a checkpoint-STEP folder is always complete.

type trainerState[H any] struct {
	Step       int             `json:"step"`
	AdamStep   int             `json:"adam_step"`
	RNG        []byte          `json:"rng"`
	DropoutRNG []byte          `json:"dropout_rng,omitempty"`
	Elapsed    float64         `json:"elapsed_seconds"`
	History    []H             `json:"history"`
	Config     map[string]any  `json:"config"`
	Time       time.Time       `json:"time"`
	Extra      json.RawMessage `json:"extra,omitempty"`
}

// runState is the state of a run that a checkpoint holds, whatever the
// objective (SFT, DPO, GRPO): H is the objective's step record.
type runState[H any] struct {
	step    int // optimizer steps done
	params  map[string][]float32
	opt     *AdamW
	rng     *rand.PCG // batch draws (GRPO: prompt order and sampling)
	dropRNG *rand.PCG // LoRA dropout masks (nil without)
	hist    []H
	elapsed time.Duration // before this process
	// extra, when set, returns objective state beyond the above (saved as
	// trainer_state.json's "extra"); setExtra reads it back on resume.
	extra    func() (any, error)
	setExtra func(json.RawMessage) error
}

// hashSeqs is a fingerprint of tokenized data.
func hashSeqs(seqs ...[]int) string {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range seqs {
		binary.LittleEndian.PutUint64(b[:], uint64(len(v)))
		h.Write(b[:])
		for _, x := range v {
			binary.LittleEndian.PutUint64(b[:], uint64(x))
			h.Write(b[:])
		}
	}
	return fmt.Sprintf("fnv64a %016x", h.Sum64())
}

// baseModelKey is the fingerprint's key for the base model's identity
// (modelID). Checkpoints written before moco recorded it lack the key:
// they resume with a warning that the base model went unchecked.
const baseModelKey = "base_model"

// idSample is how many values of each tensor modelID reads.
const idSample = 64

// modelID identifies m's weights without reading them all: the head
// layout and constants of the config that the tensors' sizes do not
// show, and each tensor's name, size and idSample values spread evenly
// over it (another model, or a fine-tune of this one, differs in
// nearly every weight). It reads the weights as loaded, so a folder
// holding the same values in another dtype, which trains to the same
// bits, has the same identity.
func modelID(m *Model[float32]) string {
	c := m.Config
	h := fnv.New64a()
	fmt.Fprintf(h, "heads %d, kv heads %d, head dim %d, rope theta %g, norm eps %g\n", c.NumHeads, c.NumKVHeads, c.HeadDim, c.RopeTheta, c.RMSNormEps)
	var b [4]byte
	weights := 0
	for _, name := range sortedKeys(m.Params) {
		p := m.Params[name]
		weights += len(p)
		fmt.Fprintf(h, "%s %d\n", name, len(p))
		n := min(len(p), idSample)
		for i := range n {
			j := i
			if n > 1 {
				j = int(int64(i) * int64(len(p)-1) / int64(n-1)) // first and last included
			}
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(p[j]))
			h.Write(b[:])
		}
	}
	return fmt.Sprintf("%d tensors, %d weights, fnv64a %016x", len(m.Params), weights, h.Sum64())
}

// fingerprint lists what must not change across a resume of an SFT run
// of m (DPO's adds to it).
func fingerprint(m *Model[float32], cfg SFTConfig, seqs []Seq) map[string]any {
	var all [][]int
	for _, s := range seqs {
		all = append(all, s.Tokens, s.Targets)
	}
	fp := map[string]any{
		baseModelKey: modelID(m), "steps": cfg.Steps, "batch_size": cfg.BatchSize, "grad_accum": max(1, cfg.GradAccum), "warmup": cfg.Warmup,
		"lr": cfg.LR, "weight_decay": cfg.WeightDecay, "max_grad_norm": cfg.MaxGradNorm, "seed": cfg.Seed,
		"full": cfg.Full, "data": fmt.Sprintf("%d examples, %s", len(seqs), hashSeqs(all...)),
	}
	if !cfg.Full {
		fp["lora_r"], fp["lora_alpha"], fp["lora_targets"], fp["lora_dropout"] = cfg.Rank, cfg.Alpha, strings.Join(cfg.Targets, ","), cfg.Dropout
	}
	return fp
}

// jsonRoundTrip returns fp as it reads back from JSON, so that a
// fingerprint read from a checkpoint compares equal.
func jsonRoundTrip(fp map[string]any) map[string]any {
	raw, _ := json.Marshal(fp)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

func f32Tensor(name string, v []float32) *safetensors.Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return &safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int{len(v)}, Data: data}
}

func saveCheckpoint[H any](dir string, run *runState[H], fp map[string]any, lo *LoRA[float32], m *Model[float32]) error {
	final := filepath.Join(dir, fmt.Sprintf("checkpoint-%d", run.step))
	tmp := filepath.Join(dir, fmt.Sprintf(".checkpoint-%d.tmp", run.step))
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	var ps, os_ []*safetensors.Tensor
	for _, name := range sortedKeys(run.params) {
		ps = append(ps, f32Tensor(name, run.params[name]))
	}
	for _, name := range sortedKeys(run.opt.M) {
		os_ = append(os_, f32Tensor("m."+name, run.opt.M[name]), f32Tensor("v."+name, run.opt.V[name]))
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, "params.safetensors"), ps, nil); err != nil {
		return err
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, "optimizer.safetensors"), os_, nil); err != nil {
		return err
	}
	st := trainerState[H]{Step: run.step, AdamStep: run.opt.Step, Elapsed: run.elapsed.Seconds(), History: run.hist, Config: fp, Time: time.Now().UTC()}
	var err error
	if run.extra != nil {
		x, err := run.extra()
		if err != nil {
			return err
		}
		if st.Extra, err = json.Marshal(x); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if st.RNG, err = run.rng.MarshalBinary(); err != nil {
		return err
	}
	if run.dropRNG != nil {
		if st.DropoutRNG, err = run.dropRNG.MarshalBinary(); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "trainer_state.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if lo != nil {
		if err := SaveLoRA(tmp, lo, m, ""); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// loopConfig is what runLoop needs of a run's settings.
type loopConfig struct {
	steps, warmup int
	lr, maxNorm   float64
	// With saveEvery > 0, checkpoints go to dir/checkpoint-STEP every
	// saveEvery steps and when ctx stops the run; fp is the fingerprint
	// a resume must match; lo (nil for full fine-tuning) is written
	// beside the weights as a PEFT adapter.
	saveEvery int
	dir       string
	fp        map[string]any
	lo        *LoRA[float32]
	m         *Model[float32]
}

// record is a step record that runLoop stamps once the update is done.
type record[H any] interface {
	*H
	stamp(step int, lr, norm float64, t time.Duration)
}

// runLoop drives the optimizer steps of a run from run.step to c.steps,
// the same for every objective: one computes step's gradient (of
// run.params), loss and record; runLoop clips the gradient, stops on a
// non-finite loss or norm before the update (so the weights and the
// checkpoints on disk hold the last good step; the error says which),
// applies AdamW with warm-up and cosine decay, stamps and keeps the
// record, and writes checkpoints. When ctx stops the run (between steps,
// or inside one, which then returns ctx's error) the steps done since the
// last checkpoint are saved first. A failed one must leave any state of
// its own as it found it; runLoop restores run's random streams itself.
func runLoop[H any, P record[H]](ctx context.Context, run *runState[H], c loopConfig,
	one func(step int) (grads map[string][]float32, loss float64, rec H, err error), progress func(H)) error {
	start := time.Now()
	saved := run.step
	save := func() error {
		if c.saveEvery <= 0 {
			return nil
		}
		run.elapsed += time.Since(start)
		start = time.Now()
		if err := saveCheckpoint(c.dir, run, c.fp, c.lo, c.m); err != nil {
			return err
		}
		saved = run.step
		return nil
	}
	stopped := func(err error) error {
		if run.step > saved {
			if serr := save(); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	for run.step < c.steps {
		step := run.step
		if err := ctx.Err(); err != nil {
			return stopped(err)
		}
		rng := *run.rng
		var drop rand.PCG
		if run.dropRNG != nil {
			drop = *run.dropRNG
		}
		grads, loss, rec, err := one(step)
		if err != nil {
			*run.rng = rng
			if run.dropRNG != nil {
				*run.dropRNG = drop
			}
			if ctx.Err() != nil {
				return stopped(err)
			}
			return err
		}
		norm := ClipGradNorm(grads, c.maxNorm)
		if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
			ck := ""
			if c.saveEvery > 0 {
				ck = fmt.Sprintf(" (last checkpoint: step %d)", saved)
			}
			return fmt.Errorf("step %d: loss %v, gradient norm %v; stopped with the weights of step %d%s", step+1, loss, norm, step, ck)
		}
		lr := CosineLR(c.lr, step, c.warmup, c.steps)
		run.opt.Update(run.params, grads, lr)
		run.step++
		P(&rec).stamp(run.step, lr, norm, run.elapsed+time.Since(start))
		run.hist = append(run.hist, rec)
		if progress != nil {
			progress(rec)
		}
		if c.saveEvery > 0 && run.step%c.saveEvery == 0 {
			if err := save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// LatestCheckpoint returns the checkpoint-STEP folder of dir with the
// highest STEP.
func LatestCheckpoint(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	best, bestStep := "", -1
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !ok || !e.IsDir() {
			continue
		}
		if s, err := strconv.Atoi(n); err == nil && s > bestStep {
			best, bestStep = filepath.Join(dir, e.Name()), s
		}
	}
	if best == "" {
		return "", fmt.Errorf("%s: no checkpoint-STEP folder", dir)
	}
	return best, nil
}

// RemoveCheckpoints removes the checkpoint-STEP folders of dir, and the
// .checkpoint-STEP.tmp folders a killed save leaves, returning their
// names: a new run into dir must not leave an earlier run's checkpoints
// beside its own, where LatestCheckpoint would pick the highest STEP of
// either. A dir that does not exist holds none.
func RemoveCheckpoints(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if tmp, isTmp := strings.CutPrefix(e.Name(), ".checkpoint-"); isTmp {
			n, ok = strings.CutSuffix(tmp, ".tmp")
		}
		if _, err := strconv.Atoi(n); !ok || err != nil || !e.IsDir() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// RemoveOtherOutputs removes from dir the files an earlier run wrote
// there that a new run will not replace, returning their names: before a
// LoRA run, a full run's model folder (SaveModel's model.safetensors,
// config.json, generation_config.json and tokenizer files), or dir would
// be both a model folder and an adapter folder; before a full run from
// the model folder src, a LoRA run's adapter (SaveLoRA's
// adapter_config.json and adapter_model.safetensors), and the generation
// and tokenizer files of an earlier full run's source that src lacks
// (SaveModel copies only those src has), which would change how dir
// tokenizes and generates. Only the names SaveModel and SaveLoRA write
// are removed (the tokenizer files as tokenizer.Files lists them), never
// a wider pattern that could take a file of the user's; other files are
// kept. A dir that does not exist holds none.
func RemoveOtherOutputs(dir, src string, full bool) ([]string, error) {
	toks, err := tokenizer.Files(dir)
	if err != nil {
		return nil, err
	}
	names := append([]string{"config.json", "generation_config.json", "model.safetensors"}, toks...)
	if full {
		writes, err := modelFiles(src)
		if err != nil {
			return nil, err
		}
		stale := []string{"adapter_config.json", "adapter_model.safetensors"}
		for _, name := range names {
			if name != "model.safetensors" && !slices.Contains(writes, name) {
				stale = append(stale, name)
			}
		}
		names = stale
	}
	return RemoveFiles(dir, names)
}

// RemoveFiles removes the files of dir named in names (paths relative to
// dir) that exist, returning the names removed; folders are left alone,
// and a file's own folder inside dir goes once it is empty (SaveModel's
// additional_chat_templates).
func RemoveFiles(dir string, names []string) ([]string, error) {
	var removed []string
	for _, name := range names {
		path := filepath.Join(dir, name)
		st, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		if st.IsDir() {
			continue
		}
		if err := os.Remove(path); err != nil {
			return removed, err
		}
		removed = append(removed, name)
		if d := filepath.Dir(name); d != "." {
			os.Remove(filepath.Join(dir, d)) // fails, keeping it, while it holds other files
		}
	}
	return removed, nil
}

// modelFiles are the files SaveModel copies from the model folder src,
// paths relative to it: config.json, and the generation and tokenizer
// files src has.
func modelFiles(src string) ([]string, error) {
	files := []string{"config.json"}
	if _, err := os.Stat(filepath.Join(src, "generation_config.json")); err == nil {
		files = append(files, "generation_config.json")
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	toks, err := tokenizer.Files(src)
	return append(files, toks...), err
}

// loadCheckpoint reads the checkpoint in dir into run, refusing one whose
// fingerprint differs from fp; warn (when not nil) hears of one that
// records no base model.
func loadCheckpoint[H any](dir string, run *runState[H], fp map[string]any, warn func(string)) error {
	b, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	var st trainerState[H]
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("resume: %s: %w", filepath.Join(dir, "trainer_state.json"), err)
	}
	fp = jsonRoundTrip(fp)
	keys := make([]string, 0, len(fp))
	for k := range fp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		was, ok := st.Config[k]
		if k == baseModelKey && !ok {
			if warn != nil {
				warn(fmt.Sprintf("resume: %s records no %s (written by an older moco): the base model could not be checked", dir, baseModelKey))
			}
			continue
		}
		a, _ := json.Marshal(fp[k])
		c, _ := json.Marshal(was)
		if string(a) != string(c) {
			must := "have the same settings and data"
			if k == baseModelKey {
				must = "start from the base model the checkpoint was trained from"
			}
			return fmt.Errorf("resume: %s: %s was %s, now %s; a resumed run must %s", dir, k, c, a, must)
		}
	}
	if err := run.rng.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("resume: random stream: %w", err)
	}
	if (run.dropRNG != nil) != (st.DropoutRNG != nil) {
		return fmt.Errorf("resume: %s: dropout stream present %v, expected %v", dir, st.DropoutRNG != nil, run.dropRNG != nil)
	}
	if run.dropRNG != nil {
		if err := run.dropRNG.UnmarshalBinary(st.DropoutRNG); err != nil {
			return fmt.Errorf("resume: dropout stream: %w", err)
		}
	}
	read := func(file string, want map[string][]float32) error {
		f, err := safetensors.Open(filepath.Join(dir, file))
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		defer f.Close()
		if len(f.Names()) != len(want) {
			return fmt.Errorf("resume: %s holds %d tensors, want %d", file, len(f.Names()), len(want))
		}
		for name, dst := range want {
			t, ok := f.Tensor(name)
			if !ok || t.DType != safetensors.F32 || t.NumElements() != len(dst) {
				return fmt.Errorf("resume: %s: tensor %s missing or of the wrong size", file, name)
			}
			v, err := safetensors.ToF32(t)
			if err != nil {
				return err
			}
			copy(dst, v)
		}
		return nil
	}
	if err := read("params.safetensors", run.params); err != nil {
		return err
	}
	f, err := safetensors.Open(filepath.Join(dir, "optimizer.safetensors"))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	moments := map[string][]float32{}
	for _, tn := range f.Names() {
		kind, name, _ := strings.Cut(tn, ".")
		p, ok := run.params[name]
		if !ok || (kind != "m" && kind != "v") {
			f.Close()
			return fmt.Errorf("resume: optimizer.safetensors: tensor %s is no moment of a trained weight", tn)
		}
		if kind == "m" {
			run.opt.M[name] = make([]float32, len(p))
			moments[tn] = run.opt.M[name]
		} else {
			run.opt.V[name] = make([]float32, len(p))
			moments[tn] = run.opt.V[name]
		}
	}
	f.Close()
	if err := read("optimizer.safetensors", moments); err != nil {
		return err
	}
	if st.Step < 0 || len(st.History) != st.Step {
		return errors.New("resume: trainer_state.json: step and history disagree")
	}
	run.step, run.opt.Step, run.hist = st.Step, st.AdamStep, st.History
	if run.setExtra != nil {
		if err := run.setExtra(st.Extra); err != nil {
			return fmt.Errorf("resume: %s: %w", dir, err)
		}
	}
	run.elapsed = time.Duration(st.Elapsed * float64(time.Second))
	return nil
}

// SaveModel writes m's weights as a model folder (model.safetensors in
// F32 with Hugging Face's names and shapes) with the config, tokenizer
// and generation files copied from the source folder src: the output of
// full fine-tuning, loadable by the engine and by transformers.
func SaveModel(dir string, m *Model[float32], src string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := m.Config
	var ts []*safetensors.Tensor
	for _, name := range sortedKeys(m.Params) {
		t := f32Tensor(name, m.Params[name])
		switch {
		case strings.HasSuffix(name, "norm.weight"):
		case name == "model.embed_tokens.weight" || name == "lm_head.weight":
			t.Shape = []int{c.VocabSize, c.HiddenSize}
		default:
			in, out := m.dims(modulePathOf(name))
			t.Shape = []int{out, in}
		}
		ts = append(ts, t)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	files, err := modelFiles(src)
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if f == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(src, f), err)
			}
			cfg["torch_dtype"] = "float32"
			if b, err = json.MarshalIndent(cfg, "", " "); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
