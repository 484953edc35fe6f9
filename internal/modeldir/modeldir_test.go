package modeldir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	d := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model := filepath.Dir(write("model/config.json", "{}"))
	adapter := filepath.Dir(write("adapter/adapter_config.json", "{}"))
	empty := filepath.Join(d, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string // "" for no error
	}{
		{model, ""},
		{filepath.Join(d, "missing"), "no such model folder"},
		{write("q.gguf", "GGUF\x03\x00\x00\x00"), "is a GGUF file"},
		{write("renamed.bin", "GGUF\x03\x00\x00\x00"), "is a GGUF file"},
		{write("model.safetensors", "\x08\x00\x00\x00\x00\x00\x00\x00{}      "), "give the folder that holds it"},
		{write("notes.txt", "hi"), "is a file, not a model folder"},
		{adapter, "is a PEFT adapter, not a model"},
		{empty, "no config.json"},
	} {
		err := Check(tc.path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Check(%s) = %v, want nil", tc.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%s) = %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
}
