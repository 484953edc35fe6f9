package safetensors

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestCheckOutPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("precious"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	model := filepath.Join(dir, "model")
	os.Mkdir(model, 0o755)
	os.WriteFile(filepath.Join(model, "config.json"), []byte("{}"), 0o644)
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(empty, link); err != nil && runtime.GOOS != "windows" {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		force bool
		want  string // "" ok, else a substring of the error
	}{
		{filepath.Join(dir, "new"), false, ""},
		{filepath.Join(dir, "new", "deeper"), false, ""},
		{empty, false, ""},
		{file, false, "is a file"},
		{file, true, "is a file"},
		{model, false, "not empty"},
		{model, true, ""},
		{other, false, "not empty"},
		{other, true, "not a model folder"},
		{link, true, "symbolic link"},
	} {
		if c.path == link && runtime.GOOS == "windows" {
			continue
		}
		err := CheckOutPath(c.path, c.force)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s force=%v: %v", filepath.Base(c.path), c.force, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s force=%v: got %v, want an error with %q", filepath.Base(c.path), c.force, err, c.want)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Fatal("the file was touched")
	}
}

func TestOutDirCommitReplacesAndAborts(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	// Abort leaves nothing.
	od, err := CreateOutDir(out, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(od.Tmp, "config.json"), []byte("1"), 0o644)
	od.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("abort left %v", ents)
	}
	// Commit into a missing target, then replace it with force.
	for i, force := range []bool{false, true} {
		od, err := CreateOutDir(out, force, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(filepath.Base(od.Tmp), ".out.tmp-p"+strconv.Itoa(os.Getpid())+"-") {
			t.Fatalf("temporary name %s does not carry the process id", od.Tmp)
		}
		os.WriteFile(filepath.Join(od.Tmp, "config.json"), []byte(strconv.Itoa(i)), 0o644)
		if err := od.Commit(); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "config.json")); string(b) != strconv.Itoa(i) {
			t.Fatalf("round %d: config.json holds %q", i, b)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("round %d: left %v beside out", i, ents)
		}
	}
	if _, err := CreateOutDir(out, false, nil); err == nil {
		t.Fatal("a non-empty folder was accepted without force")
	}
}

// deadPID returns the id of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	dead := deadPID(t)
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "model.safetensors"), []byte("x"), 0o644)
		return p
	}
	stale := mk(".out.tmp-p" + strconv.Itoa(dead) + "-123")
	live := mk(".out.tmp-p" + strconv.Itoa(os.Getppid()) + "-456") // our parent runs
	legacy := mk(".out.tmp-987654")
	other := mk(".outer.tmp-p" + strconv.Itoa(dead) + "-1") // another target's
	aside := mk(".out.old-p" + strconv.Itoa(dead) + "-abc") // killed mid-swap
	msgs := CleanStale(out)
	for _, c := range []struct {
		path   string
		exists bool
	}{{stale, false}, {live, true}, {legacy, true}, {other, true}, {aside, false}} {
		if _, err := os.Stat(c.path); (err == nil) != c.exists {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(c.path), err == nil, c.exists)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Errorf("the set-aside folder was not restored to %s: %v", out, err)
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{"removed " + stale, "restored " + out, legacy} {
		if !strings.Contains(joined, want) {
			t.Errorf("messages %q lack %q", joined, want)
		}
	}
	// With out present, a set-aside copy is simply removed.
	aside = mk(".out.old-p" + strconv.Itoa(dead) + "-def")
	CleanStale(out)
	if _, err := os.Stat(aside); err == nil {
		t.Error("a set-aside copy beside a present target was kept")
	}
}
