package merge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// FolderOptions controls how a merge is written as a model folder.
type FolderOptions struct {
	// ConfigDir holds the config.json (and generation_config.json) to copy;
	// TokenizerDir the tokenizer files. Both default to the first of Dirs.
	ConfigDir, TokenizerDir string
	// Dirs are the input folders, for the vocabulary check.
	Dirs []string
	// ShardSize is the largest shard in bytes (0: one file).
	ShardSize int64
	// AllowVocabMismatch skips the check that all tokenizers are identical.
	AllowVocabMismatch bool
	// Progress receives a progress line per tensor (nil: silent).
	Progress io.Writer
	// Force allows replacing an existing model folder at the output.
	Force bool
	// Notice receives one-line notices (stale temporary folders removed).
	Notice func(string)
	// ChatTemplate, when set, is written as the output's
	// chat_template.jinja, which takes priority over the copied
	// tokenizer_config.json's template (Config's chat_template).
	ChatTemplate string
}

// ErrVocabMismatch is wrapped by WriteFolder's error when the inputs'
// tokenizers differ and FolderOptions.AllowVocabMismatch is not set.
var ErrVocabMismatch = errors.New("vocabularies differ")

// OpenModel opens a model folder's tensors as an Input.
func OpenModel(dir string) (Input, error) {
	src, err := safetensors.OpenDir(dir)
	if err != nil {
		return Input{}, err
	}
	return Input{Name: dir, Src: src}, nil
}

// OpenModelRef opens a mergekit model reference: a model folder, or
// MODEL+LORA, the PEFT LoRA adapter folder LORA applied to the model
// folder MODEL at weight 1 (mergekit's syntax for a model with an adapter
// merged in). dir is the model folder, whose config, tokenizer and
// vocabulary stand for the reference. The Input's Src closes MODEL's
// files.
func OpenModelRef(ref string) (in Input, dir string, err error) {
	if _, statErr := os.Stat(ref); statErr != nil {
		if model, lora, ok := splitLoRARef(ref); ok {
			a, err := LoadAdapter(lora)
			if err != nil {
				return Input{}, "", fmt.Errorf("%s: the adapter: %w", ref, err)
			}
			base, err := OpenModel(model)
			if err != nil {
				return Input{}, "", fmt.Errorf("%s: the model: %w", ref, err)
			}
			src, err := ApplyLoRA(base.Src, []*Adapter{a}, []float64{1})
			if err != nil {
				base.Src.Close()
				return Input{}, "", fmt.Errorf("%s: %w", ref, err)
			}
			return Input{Name: ref, Src: closing{src, base.Src}}, model, nil
		}
	}
	in, err = OpenModel(ref)
	return in, ref, err
}

// splitLoRARef splits MODEL+LORA at its last "+" whose right side is a
// folder with adapter_config.json; ok is false for any other string.
func splitLoRARef(ref string) (model, lora string, ok bool) {
	i := strings.LastIndex(ref, "+")
	if i <= 0 || i == len(ref)-1 {
		return "", "", false
	}
	model, lora = ref[:i], ref[i+1:]
	if filepath.IsAbs(lora) { // a relative one is checked once resolved
		if _, err := os.Stat(filepath.Join(lora, "adapter_config.json")); err != nil {
			return "", "", false
		}
	}
	return model, lora, true
}

// closing is a Source whose Close also closes another (the files under an
// overlay).
type closing struct {
	safetensors.Source
	under safetensors.Source
}

func (c closing) Close() error {
	err := c.Source.Close()
	if uerr := c.under.Close(); err == nil {
		err = uerr
	}
	return err
}

// WriteFolder merges s into a complete model folder at out: config.json with
// torch_dtype (and vocab_size after truncation), the tokenizer files, and the
// safetensors (sharded with an index past ShardSize). Everything is written
// into a temporary folder beside out, named after this process, and renamed
// into place at the end (safetensors.OutDir), so out either holds its
// previous state or is complete, also when the process is killed. out must
// not exist or be an empty folder; with Force it may be a model folder,
// which is replaced. Stale temporary folders of killed earlier runs are
// removed first. When ctx is cancelled the merge stops between tensors
// (or chunks of a large one), removes its temporary folder and returns
// ctx's error.
func WriteFolder(ctx context.Context, s *Spec, out string, o FolderOptions) error {
	if len(o.Dirs) == 0 {
		return fmt.Errorf("no input folders")
	}
	if o.ConfigDir == "" {
		o.ConfigDir = o.Dirs[0]
	}
	if o.TokenizerDir == "" {
		o.TokenizerDir = o.Dirs[0]
	}
	if err := safetensors.CheckOutPath(out, o.Force); err != nil {
		return err
	}
	if !o.AllowVocabMismatch {
		if err := sameTokenizers(o.Dirs); err != nil {
			return err
		}
	}
	headers, err := s.Plan()
	if err != nil {
		return err
	}
	cfg, err := outConfig(o.ConfigDir, headers, s.configEdits())
	if err != nil {
		return err
	}
	od, err := safetensors.CreateOutDir(out, o.Force, o.Notice)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			od.Abort()
		}
	}()
	tmp := od.Tmp
	w, err := safetensors.CreateSharded(tmp, headers, o.ShardSize, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	var last time.Time
	// Write the tensors while the next ones are merged: writing is serial
	// I/O, merging is parallel arithmetic, so the two overlap well. Merged
	// tensors wait for the writer up to a quarter of the largest tensor's
	// bytes (or one tensor), so that a long write (the embeddings come
	// first) does not hold up the merges of the small tensors behind it,
	// as a queue of one tensor did; with the tensor being written and the
	// one being merged, at most three of the largest are held, as before,
	// and the queue's bytes stay small beside them (a quarter: about what
	// DELLA merges while the embeddings of a 0.5B model are written; half
	// raised the peak RSS of linear and ties by 0.15-0.3 GB).
	var most int
	for _, h := range headers {
		n := h.DType.Size()
		for _, d := range h.Shape {
			n *= d
		}
		most = max(most, n)
	}
	// A tensor merged in pieces (see outBuf) goes to the queue piece by
	// piece, each a tensor named as the whole with part set.
	type item struct {
		t    *safetensors.Tensor
		part bool
	}
	queue := make(chan item, len(headers)+64)
	var qmu sync.Mutex
	qcond := sync.NewCond(&qmu)
	queued := 0 // bytes handed to the writer that it has not started on
	// The output buffers come from a region of twice the largest tensor
	// (see bufPool), unmapped once the merge and the writer are done.
	pool := newBufPool(2 * most)
	s.pool = pool
	defer func() { s.pool = nil; pool.release() }()
	s.in = newInputReader(s.inputs(), most)
	defer func() { s.in.close(); s.in = nil }()
	done := make(chan struct{})
	var writeErr atomic.Value // error: the first failed write
	ins := s.inputs()
	go func() {
		defer close(done)
		for it := range queue {
			t := it.t
			qmu.Lock()
			queued -= len(t.Data)
			qcond.Signal()
			qmu.Unlock()
			if writeErr.Load() == nil {
				write := w.Write
				if it.part {
					write = w.WritePart
				}
				if err := write(t.Name, t.Data); err != nil {
					writeErr.Store(err)
				}
				pool.put(t.Data) // written: the next tensor may reuse it
				for _, in := range ins {
					safetensors.Release(in.Src, t.Data) // a tensor copied through aliases its input
				}
			}
		}
	}()
	send := func(t *safetensors.Tensor, part bool) error {
		if e := writeErr.Load(); e != nil {
			return e.(error) // stop merging once the output is broken
		}
		qmu.Lock()
		for queued > 0 && queued+len(t.Data) > most/4 {
			qcond.Wait()
		}
		queued += len(t.Data)
		qmu.Unlock()
		queue <- item{t, part}
		return nil
	}
	s.part = func(name string, data []byte) error {
		return send(&safetensors.Tensor{Name: name, Data: data}, true)
	}
	defer func() { s.part = nil }()
	err = s.Merge(ctx, func(t *safetensors.Tensor) error {
		return send(t, false)
	}, func(k, total int, name string) {
		if o.Progress != nil && (k == total || time.Since(last) > 200*time.Millisecond) {
			last = time.Now()
			fmt.Fprintf(o.Progress, "\rmerge [%-30s] %d/%d tensors", bar(k, total, 30), k, total)
			if k == total {
				fmt.Fprintln(o.Progress)
			}
		}
	})
	close(queue)
	<-done
	if e := writeErr.Load(); err == nil && e != nil {
		err = e.(error)
	}
	if err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	if err := copyIfExists(filepath.Join(o.ConfigDir, "generation_config.json"), filepath.Join(tmp, "generation_config.json")); err != nil {
		return err
	}
	files, err := tokenizer.Files(o.TokenizerDir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, f)), 0o755); err != nil {
			return err
		}
		if err := copyIfExists(filepath.Join(o.TokenizerDir, f), filepath.Join(tmp, f)); err != nil {
			return err
		}
	}
	if o.ChatTemplate != "" {
		if err := os.WriteFile(filepath.Join(tmp, "chat_template.jinja"), []byte(o.ChatTemplate), 0o644); err != nil {
			return err
		}
	}
	if err := od.Commit(); err != nil {
		return err
	}
	ok = true
	return nil
}

func bar(done, total, width int) string {
	n := 0
	if total > 0 {
		n = done * width / total
	}
	return string(bytes.Repeat([]byte("#"), n))
}

// outConfig rewrites config.json for the merged tensors: torch_dtype from the
// dtype of the merged weights and vocab_size from the embedding rows.
func outConfig(dir string, headers []safetensors.Header, overrides map[string]any) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	for _, h := range headers {
		if isFloat(h.DType) {
			cfg["torch_dtype"] = torchDType(h.DType)
		}
		if isVocabTensor(h.Name) && len(h.Shape) == 2 {
			if v, ok := cfg["vocab_size"].(float64); ok && int(v) > h.Shape[0] {
				cfg["vocab_size"] = h.Shape[0]
			}
		}
	}
	for k, v := range overrides {
		cfg[k] = v
	}
	return json.MarshalIndent(cfg, "", "  ")
}

func torchDType(d safetensors.DType) string {
	switch d {
	case safetensors.BF16:
		return "bfloat16"
	case safetensors.F16:
		return "float16"
	}
	return "float32"
}

// sameTokenizers checks that every folder has the same tokenizer as the first.
func sameTokenizers(dirs []string) error {
	first, err := os.ReadFile(filepath.Join(dirs[0], "tokenizer.json"))
	if err != nil {
		return nil // no tokenizer to compare (bare checkpoints)
	}
	var ref *tokenizer.Tokenizer
	for _, d := range dirs[1:] {
		b, err := os.ReadFile(filepath.Join(d, "tokenizer.json"))
		if err != nil || bytes.Equal(b, first) {
			continue
		}
		if ref == nil {
			if ref, err = tokenizer.Load(dirs[0]); err != nil {
				return fmt.Errorf("%s: %w", dirs[0], err)
			}
		}
		t, err := tokenizer.Load(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		if err := ref.Compare(t); err != nil {
			return fmt.Errorf("%w: %s and %s: %v", ErrVocabMismatch, dirs[0], d, err)
		}
	}
	return nil
}

func copyIfExists(from, to string) error {
	b, err := os.ReadFile(from)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
