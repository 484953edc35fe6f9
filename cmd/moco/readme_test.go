package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// readmeBlock is one fenced block of README.md.
type readmeBlock struct {
	lang, text, before string // before: the prose just above the fence
	section            string // the last ## heading above it
}

func readmeBlocks(t *testing.T, readme string) []readmeBlock {
	t.Helper()
	var blocks []readmeBlock
	var cur *readmeBlock
	var prose, section strings.Builder
	for _, line := range strings.Split(readme, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{lang: strings.TrimPrefix(line, "```"), before: prose.String(), section: section.String()}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
			prose.Reset()
		case cur != nil:
			cur.text += line + "\n"
		default:
			if strings.HasPrefix(line, "## ") {
				section.Reset()
				section.WriteString(strings.TrimPrefix(line, "## "))
			}
			prose.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatal("README.md has an unclosed code fence")
	}
	return blocks
}

// shellWords splits a command line as a POSIX shell would for the forms
// the README uses: words, '...', "..." (with \" and \\), a # comment, and
// one pipe. It returns the commands of the pipeline.
func shellWords(t *testing.T, line string) [][]string {
	t.Helper()
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			i = len(line)
		case c == '|':
			flush()
			cmds = append(cmds, words)
			words = nil
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unclosed ' in %q", line)
			}
			w.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`+"`", line[i+1]) >= 0 {
					i++
				}
				w.WriteByte(line[i])
			}
			if i == len(line) {
				t.Fatalf(`unclosed " in %q`, line)
			}
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return append(cmds, words)
}

// TestREADME runs the README's commands as printed, from the repository
// root: every moco command (and "go run ./cmd/moco"), piped input from
// echo included, must succeed. Commands that need ../shared skip when it is
// absent; /tmp paths are redirected to a temporary folder. It also checks
// that Setup keeps exactly two commands and that the library snippet
// builds and runs.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every README command")
	}
	root := testutil.RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(data))
	tmp := t.TempDir()
	t.Chdir(root)
	haveShared := testutil.SharedDir() != ""
	var ran, skipped int
	fromSkipped := map[string]bool{} // /tmp paths in skipped commands, as printed
	sawInstall := false
	saved := regexp.MustCompile("saved as `([^`/]+)`")
	for _, b := range blocks {
		switch b.lang {
		case "yaml":
			// Written where the README says, the repository root, for the
			// commands that follow; removed at the end.
			m := saved.FindStringSubmatch(b.before)
			if m == nil {
				continue // an illustration, not a file the commands read
			}
			path := filepath.Join(root, m[1])
			if _, err := os.Stat(path); err == nil {
				t.Fatalf("%s exists; the README test will not overwrite it", path)
			}
			if err := os.WriteFile(path, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(path) })
			continue
		case "sh":
		default:
			continue
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(b.text), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		if background(lines) {
			// A server session (moco serve &, then clients): serve's own
			// tests start a server; this test runs commands to completion.
			t.Logf("skipped a block that starts a background server: %q", lines[0])
			skipped += len(lines)
			continue
		}
		if b.section == "Setup" {
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "go run ./cmd/moco generate") || !strings.HasPrefix(lines[1], "go test ./...") {
				t.Errorf("Setup must keep exactly two commands (generate with the embedded model, go test ./...), has %q", lines)
			}
		}
		for _, line := range lines {
			pipeline := shellWords(t, line)
			if len(pipeline) > 2 {
				t.Errorf("%q: only 'echo ... | moco ...' pipelines are supported", line)
				continue
			}
			var stdin []byte
			args := pipeline[len(pipeline)-1]
			if len(pipeline) == 2 {
				if len(pipeline[0]) != 2 || pipeline[0][0] != "echo" {
					t.Errorf("%q: the pipe must start with echo 'TEXT'", line)
					continue
				}
				stdin = []byte(pipeline[0][1] + "\n")
			}
			switch {
			case len(args) >= 3 && args[0] == "go" && args[1] == "run" && args[2] == "./cmd/moco":
				args = args[3:]
			case len(args) >= 2 && args[0] == "go" && args[1] == "test":
				continue // this very test run
			case len(args) >= 2 && args[0] == "go" && args[1] == "install":
				sawInstall = sawInstall || args[2] == "github.com/mocolab/moco/cmd/moco@latest"
				continue // needs the network
			case len(args) > 0 && args[0] == "moco":
				args = args[1:]
			default:
				t.Errorf("%q: not a command this test can run", line)
				continue
			}
			// A command needs ../shared when an argument names it, names a
			// file that does (a config such as examples/*.yaml), or names a
			// /tmp file that a skipped command would have written.
			needsShared := false
			var tmpArgs []string
			for i, a := range args {
				needsShared = needsShared || strings.Contains(a, "../shared") || mentionsShared(a) || fromSkipped[a]
				if strings.HasPrefix(a, "/tmp/") {
					tmpArgs = append(tmpArgs, a)
					args[i] = filepath.Join(tmp, strings.TrimPrefix(a, "/tmp/"))
				}
			}
			if needsShared && !haveShared {
				for _, a := range tmpArgs {
					fromSkipped[a] = true
				}
				skipped++
				continue
			}
			var out, errb bytes.Buffer
			if code := runMain(args, bytes.NewReader(stdin), &out, &errb); code != 0 {
				t.Errorf("%s\nexit %d\nstdout %q\nstderr %q", line, code, out.String(), errb.String())
			}
			ran++
		}
	}
	if !sawInstall {
		t.Error("the README lacks 'go install github.com/mocolab/moco/cmd/moco@latest'")
	}
	t.Logf("ran %d README commands, skipped %d (../shared absent or a server session)", ran, skipped)
}

// mentionsShared reports whether arg names a config file (YAML or JSON,
// relative to the working directory) whose text mentions ../shared; a text
// to score, such as README.md, may mention it without reading it.
func mentionsShared(arg string) bool {
	switch filepath.Ext(arg) {
	case ".yaml", ".yml", ".json":
	default:
		return false
	}
	if st, err := os.Stat(arg); err != nil || !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return false
	}
	b, err := os.ReadFile(arg)
	return err == nil && bytes.Contains(b, []byte("../shared"))
}

// background reports whether a block starts a command in the background.
func background(lines []string) bool {
	for _, l := range lines {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if strings.HasSuffix(strings.TrimSpace(l), "&") {
			return true
		}
	}
	return false
}

// TestREADMESnippet builds and runs the README's library snippet, a whole
// program, against this module on the stories260K test model, and checks
// the greedy text against reference_greedy.json's continuation.
func TestREADMESnippet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	root := testutil.RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var goSnippet string
	for _, b := range readmeBlocks(t, string(data)) {
		if b.lang == "go" {
			goSnippet = b.text
		}
	}
	tmp := t.TempDir()
	haveShared := testutil.SharedDir() != ""
	if goSnippet == "" {
		t.Fatal("the README has no Go snippet")
	}
	for _, want := range []string{"defer m.Close()", "EOS()"} {
		if !strings.Contains(goSnippet, want) {
			t.Errorf("the Go snippet lacks %q (it must close the model and stop at end-of-sequence)", want)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil || !haveShared {
		t.Skip("no go command or no ../shared model to run the snippet on")
	}
	dir := filepath.Join(root, "cmd", "moco", "testdata", "readme-snippet-"+filepath.Base(tmp))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(goSnippet), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "run", "./"+strings.TrimPrefix(dir, root+string(filepath.Separator)), testutil.Shared(t, "models/stories260K"))
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), ", there was a little girl named Lily. She loved to play outside in the park.") {
		t.Errorf("the Go snippet: %v\n%s", err, out)
	}
	t.Logf("the snippet printed %q", out)
}
