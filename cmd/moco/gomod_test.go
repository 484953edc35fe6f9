package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestGoModDirect: every module the repository's packages import is
// required in go.mod without "// indirect", and no module is required
// directly that nothing imports (what go mod tidy writes).
func TestGoModDirect(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root := testutil.RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	direct := map[string]bool{} // module path -> required without // indirect
	inBlock := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "require (":
			inBlock = true
			continue
		case line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inBlock:
			continue
		}
		if f := strings.Fields(line); len(f) >= 2 {
			direct[f[0]] = !strings.Contains(line, "// indirect")
		}
	}
	cmd := exec.Command(goBin, "list", "-f", `{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}`, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	used := map[string]bool{}
	for _, imp := range strings.Fields(string(out)) {
		best := ""
		for mod := range direct {
			if (imp == mod || strings.HasPrefix(imp, mod+"/")) && len(mod) > len(best) {
				best = mod
			}
		}
		if best != "" {
			used[best] = true
		}
	}
	for mod, isDirect := range direct {
		if used[mod] && !isDirect {
			t.Errorf("go.mod marks %s // indirect, but the module imports it (run go mod tidy)", mod)
		}
		if !used[mod] && isDirect {
			t.Errorf("go.mod requires %s directly, but nothing imports it (run go mod tidy)", mod)
		}
	}
}
