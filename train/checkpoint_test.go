package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoveCheckpoints removes checkpoint-STEP folders and the temporary
// folders of killed saves, and nothing else.
func TestRemoveCheckpoints(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"checkpoint-2", "checkpoint-10", ".checkpoint-12.tmp", "checkpoint-best", "12.tmp", ".checkpoint-x.tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"checkpoint-3", "adapter_config.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removed, " "); got != ".checkpoint-12.tmp checkpoint-10 checkpoint-2" {
		t.Errorf("removed %s", got)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if got := strings.Join(left, " "); got != ".checkpoint-x.tmp 12.tmp adapter_config.json checkpoint-3 checkpoint-best logs" {
		t.Errorf("left %s", got)
	}
	if removed, err := RemoveCheckpoints(filepath.Join(dir, "none")); err != nil || removed != nil {
		t.Errorf("a folder that does not exist: %v, %v", removed, err)
	}
}
