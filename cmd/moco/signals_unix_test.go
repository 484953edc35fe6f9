//go:build unix

package main

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

// child returns the moco command run by this test binary (see TestMain),
// its progress slowed by slow per stderr write.
func child(slow string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MOCO_TEST_MAIN=1", "MOCO_TEST_SLOW_STDERR="+slow)
	return cmd
}

// TestMergeSIGTERM sends a real SIGTERM to a merge at its first progress
// line: exit status 143 and nothing left behind.
func TestMergeSIGTERM(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	dir := t.TempDir()
	cmd := child("300ms", "merge", "--method", "ties", "--base", m("skills-base"), "-m", m("skills-add"), "-m", m("skills-sort"),
		"--density", "0.3", "--out", filepath.Join(dir, "out"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "merge [") {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("no progress line: %q", seen.String())
		}
		seen.WriteByte(b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := bufio.NewReader(r).ReadString(0)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want status 143; stderr %q", err, seen.String()+rest)
	}
	if !strings.Contains(rest, "\nmoco merge: interrupted by SIGTERM") {
		t.Errorf("stderr after the signal: %q", rest)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}

// TestMergeSIGKILL kills merges at random points: the output is either
// absent (the previous state) or a complete model folder, never a partial
// one, and the next run removes what the killed ones left.
func TestMergeSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills several merges")
	}
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	ref, err := safetensors.OpenDir(m("skills-base"))
	if err != nil {
		t.Fatal(err)
	}
	nTensors := len(ref.Names())
	ref.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := []string{"merge", "--method", "della", "--base", m("skills-base"), "-m", m("skills-add"), "-m", m("skills-rev"),
		"--density", "0.5", "--out", out, "--force"}
	complete := func() bool {
		src, err := safetensors.OpenDir(out)
		if err != nil {
			return false
		}
		defer src.Close()
		for _, f := range []string{"config.json", "tokenizer.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				return false
			}
		}
		return len(src.Names()) == nTensors
	}
	// Time one complete run, to kill the others before, during or after.
	start := time.Now()
	if b, err := child("50ms", args...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	span := time.Since(start) * 13 / 10
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kinds := map[string]int{}
	for i := 0; i < 8; i++ {
		if r.IntN(2) == 0 {
			os.RemoveAll(out) // start from nothing half of the time
		}
		cmd := child("50ms", args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(r.Int64N(int64(span))))
		cmd.Process.Kill()
		cmd.Wait()
		if ents, _ := os.ReadDir(dir); len(ents) > 1 || (len(ents) == 1 && ents[0].Name() != "out") {
			kinds["temporary folder left"]++
		}
		_, err := os.Lstat(out)
		switch {
		case os.IsNotExist(err):
			kinds["absent"]++
		case complete():
			kinds["complete"]++
		default:
			ents, _ := os.ReadDir(out)
			t.Fatalf("kill %d left a partial output: %v", i, ents)
		}
	}
	t.Logf("outcomes: %v", kinds)
	cmd := child("0s", args...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v: %s", err, b)
	}
	if !complete() {
		t.Fatal("final run: output incomplete")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("the next run did not clean up: %v (stderr %s)", names, b)
	}
}

// TestEvalSIGTERM sends a real SIGTERM to an eval at its first progress
// line: exit status 143 (not SIGINT's 130), the interruption on a line of
// its own, and the score of the items done so far on stdout.
func TestEvalSIGTERM(t *testing.T) {
	models := testutil.Shared(t, "models")
	data := testutil.Shared(t, "datasets")
	cmd := child("300ms", "eval", "-m", filepath.Join(models, "skills-base"), "--dataset", filepath.Join(data, "skills_mix.json"), "--json")
	stderr, _ := cmd.StderrPipe()
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "eval [") {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("no progress line: %q", seen.String())
		}
		seen.WriteByte(b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := r.ReadString(0)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want status 143; stderr %q", err, seen.String()+rest)
	}
	if !strings.Contains(rest, "\nmoco eval: interrupted by SIGTERM") {
		t.Errorf("stderr after the signal: %q", rest)
	}
	if !strings.Contains(stdout.String(), `"interrupted": true`) {
		t.Errorf("stdout lacks the partial result: %q", stdout.String())
	}
}
