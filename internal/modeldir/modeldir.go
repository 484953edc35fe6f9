package modeldir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Check returns nil when dir is a folder that holds config.json, and
// otherwise an error that says what dir is instead. Loaders call it after
// a read inside dir failed, to replace "open dir/tokenizer.json: not a
// directory" with the reason.
func Check(dir string) error {
	if err := Folder(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
		return fmt.Errorf("%s is a PEFT adapter, not a model: merge it into its base model first (moco merge --method lora --base BASE -m %s --out DIR)", dir, dir)
	}
	return fmt.Errorf("%s: not a Hugging Face model folder (no config.json)", dir)
}

// Folder is Check without its look inside: nil when dir is a folder.
func Folder(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: no such model folder", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fileError(dir)
	}
	return nil
}

// fileError describes the file path given where a model folder was asked for.
func fileError(path string) error {
	const want = "moco reads Hugging Face model folders (config.json, *.safetensors, tokenizer.json)"
	head := make([]byte, 8)
	if f, err := os.Open(path); err == nil {
		n, _ := io.ReadFull(f, head)
		head = head[:n]
		f.Close()
	}
	switch {
	case bytes.HasPrefix(head, []byte("GGUF")):
		return fmt.Errorf("%s is a GGUF file (llama.cpp's format): %s", path, want)
	case strings.HasSuffix(path, ".safetensors") || strings.HasSuffix(path, ".safetensors.index.json"):
		return fmt.Errorf("%s is a file: give the folder that holds it (%s)", path, want)
	}
	return fmt.Errorf("%s is a file, not a model folder: %s", path, want)
}

// Wrap returns Check(dir)'s error when dir is not a model folder, and err
// otherwise: the error of a failed read inside dir, explained.
func Wrap(dir string, err error) error {
	if err == nil {
		return nil
	}
	if c := Check(dir); c != nil {
		return c
	}
	return err
}
