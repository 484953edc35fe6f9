package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// TestMain lets tests run the moco command in a child process: with
// MOCO_TEST_MAIN=1 the test binary is moco. MOCO_TEST_SLOW_STDERR (a
// duration) makes every write to stderr (the progress lines) sleep, so a
// test can signal or kill a merge in the middle.
func TestMain(m *testing.M) {
	if os.Getenv("MOCO_TEST_MAIN") == "1" {
		var stderr interface{ Write([]byte) (int, error) } = os.Stderr
		if d, err := time.ParseDuration(os.Getenv("MOCO_TEST_SLOW_STDERR")); err == nil {
			stderr = slowWriter{d}
		}
		os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, stderr))
	}
	// The tests that run models would calibrate the kernels (see
	// runsModels) into the user's cache folder; they keep the family rules
	// unless a test asks (TestBenchSpeedCalibration).
	if _, ok := os.LookupEnv("MOCO_CALIBRATE"); !ok {
		os.Setenv("MOCO_CALIBRATE", "off")
	}
	os.Exit(m.Run())
}

type slowWriter struct{ d time.Duration }

func (w slowWriter) Write(b []byte) (int, error) {
	n, err := os.Stderr.Write(b)
	time.Sleep(w.d)
	return n, err
}

// signalOnWrite is a stderr that delivers a fake signal at the first
// progress line and then waits long enough for the merge to notice it.
type signalOnWrite struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	sig  func()
	sent bool
}

func (w *signalOnWrite) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent && bytes.Contains(b, []byte("[")) {
		w.sent = true
		w.sig()
		time.Sleep(50 * time.Millisecond)
	}
	return w.buf.Write(b)
}

// TestMergeInterrupted cancels a merge with a (simulated) SIGINT at its
// first progress line: exit 130, a newline after the progress line, no
// output and no temporary folder left.
func TestMergeInterrupted(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	// The command registers its channel from its own goroutine; a mutex
	// hands it to the goroutine that sends the signal. A signal set in
	// pending is delivered the moment the command registers.
	var mu sync.Mutex
	var ch chan<- os.Signal
	var pending os.Signal
	current := func() chan<- os.Signal { mu.Lock(); defer mu.Unlock(); return ch }
	old := notifySignals
	notifySignals = func(c chan<- os.Signal) {
		mu.Lock()
		defer mu.Unlock()
		ch = c
		if pending != nil {
			c <- pending // the channel is buffered: this never blocks
			pending = nil
		}
	}
	defer func() { notifySignals = old }()
	for _, c := range []struct {
		sig  os.Signal
		code int
		args []string
	}{
		{os.Interrupt, 130, []string{"merge", "--method", "ties", "--base", m("skills-base"), "-m", m("skills-add"), "-m", m("skills-rev"), "--density", "0.5"}},
		{syscall.SIGTERM, 143, []string{"merge", "--method", "linear", "-m", m("skills-add"), "-m", m("skills-rev")}},
		{os.Interrupt, 130, []string{"synth", "--shape", "smollm2-135m", "--dtype", "f32"}},
	} {
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		w := &signalOnWrite{sig: func() { current() <- c.sig }}
		mu.Lock()
		ch = nil
		if c.args[0] == "synth" {
			// synth prints no progress: signal before it starts.
			w.sent = true
			pending = c.sig
		}
		mu.Unlock()
		code := runMain(append(c.args, "--out", out), nil, &bytes.Buffer{}, w)
		errs := w.buf.String()
		if code != c.code {
			t.Fatalf("%s: exit %d, want %d; stderr %q", c.args[0], code, c.code, errs)
		}
		if !strings.Contains(errs, "\nmoco "+c.args[0]+": interrupted by ") {
			t.Errorf("%s: stderr %q lacks the interruption on a line of its own", c.args[0], errs)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: interrupted run left %v", c.args[0], ents)
		}
	}
}

// TestOutputNeverDestroyed: merge, search and synth refuse an existing file
// and a non-empty folder at --out, leave them as they were, and replace a
// model folder only with --force.
func TestOutputNeverDestroyed(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := func(n string) string { return filepath.Join(models, n) }
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("precious"), 0o644)
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "mine.txt"), []byte("mine"), 0o644)
	ds := filepath.Join(testutil.Shared(t, "datasets"), "skills_add.json")
	mergeArgs := []string{"merge", "-q", "--method", "linear", "-m", m("skills-add"), "-m", m("skills-rev")}
	cmds := map[string][]string{
		"merge":  mergeArgs,
		"search": {"search", "expo", "-m", m("skills-base"), "-m", m("skills-add"), "--dataset", ds, "--dev-samples", "1"},
		"synth":  {"synth", "--shape", "smollm2-135m"},
	}
	for name, args := range cmds {
		for _, c := range []struct {
			out, want string
			force     bool
		}{
			{file, "is a file", false},
			{file, "is a file", true},
			{full, "not empty", false},
			{full, "not a model folder", true},
		} {
			a := append(append([]string(nil), args...), "--out", c.out)
			if c.force {
				a = append(a, "--force")
			}
			_, errs, code := runCLI(a...)
			if code == 0 || !strings.Contains(errs, c.want) {
				t.Errorf("%s --out %s force=%v: exit %d, stderr %q, want %q", name, filepath.Base(c.out), c.force, code, errs, c.want)
			}
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Fatal("the file at --out was changed")
	}
	if b, _ := os.ReadFile(filepath.Join(full, "mine.txt")); string(b) != "mine" {
		t.Fatal("the folder at --out was changed")
	}
	// A model folder is replaced with --force only.
	out := filepath.Join(dir, "merged")
	if _, errs, code := runCLI(append(mergeArgs, "--out", out)...); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, errs)
	}
	if _, errs, code := runCLI(append(mergeArgs, "--out", out)...); code == 0 || !strings.Contains(errs, "--force") {
		t.Fatalf("second merge into a model folder: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := runCLI(append(mergeArgs, "--out", out, "--force")...); code != 0 {
		t.Fatalf("merge --force: exit %d: %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("left beside the outputs: %v", ents)
	}
}

// TestSearchDevSampleDefaults: search scores every dev item unless told
// otherwise, and --dev-samples draws a stratified sample (bench.Sample).
func TestSearchDevSampleDefaults(t *testing.T) {
	_, errs, _ := runCLI("search", "--help")
	var line string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "--dev-samples") {
			line = l
		}
	}
	if line == "" || strings.Contains(line, "(default") || !strings.Contains(line, "stratified") || !strings.Contains(line, "0: all") {
		t.Errorf("--dev-samples help: %q", line)
	}
}

// signalOnOutput is a stdout that delivers a fake signal at the first
// write, then waits long enough for the command to notice it.
type signalOnOutput struct {
	buf bytes.Buffer
	sig func()
}

func (w *signalOnOutput) Write(b []byte) (int, error) {
	if w.sig != nil {
		w.sig()
		w.sig = nil
		time.Sleep(50 * time.Millisecond)
	}
	return w.buf.Write(b)
}

// TestCollabInterrupted: Ctrl-C in the middle of a logit-level collab run
// ends it like generate: exit 130, the message on its own line, and a
// trace of whole JSON lines.
func TestCollabInterrupted(t *testing.T) {
	models := testutil.Shared(t, "models")
	var ch chan<- os.Signal
	old := notifySignals
	notifySignals = func(c chan<- os.Signal) { ch = c }
	defer func() { notifySignals = old }()
	trace := filepath.Join(t.TempDir(), "trace.jsonl")
	out := &signalOnOutput{sig: func() {
		if ch != nil { // nil: the command does not listen for signals
			ch <- os.Interrupt
		}
	}}
	var errs bytes.Buffer
	code := runMain([]string{"collab", "fusion", "-m", filepath.Join(models, "stories260K"), "-m", filepath.Join(models, "llama2xs"),
		"-p", "Once upon a time", "--temperature", "0", "-n", "200", "--trace", trace}, nil, out, &errs)
	if code != 130 || !strings.Contains(errs.String(), "\nmoco collab: interrupted by SIGINT") {
		t.Fatalf("exit %d, stderr %q; want 130 and the interruption", code, errs.String())
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("trace line %q is not JSON", l)
		}
	}
	if n := strings.Count(out.buf.String(), " "); len(lines) > 20 || n > 20 {
		t.Errorf("%d trace lines, stdout %q: the run went on after the signal", len(lines), out.buf.String())
	}
}

// TestCollabDevInterrupted: Ctrl-C also ends the dev passes before the
// generation, contrastive's scoring of each model and the cascade's
// calibration, with exit 130 and nothing saved.
func TestCollabDevInterrupted(t *testing.T) {
	models := testutil.Shared(t, "models")
	s, x := filepath.Join(models, "stories260K"), filepath.Join(models, "llama2xs")
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev.jsonl")
	var lines strings.Builder
	for i := range 8 {
		fmt.Fprintf(&lines, "{\"prompt\": \"Tom had %d red balls. Tom\", \"answer\": \"had\"}\n", i)
	}
	os.WriteFile(dev, []byte(lines.String()), 0o644)
	var ch chan<- os.Signal
	old := notifySignals
	defer func() { notifySignals = old }()
	common := []string{"-m", s, "-m", x, "-p", "Once upon a time", "--temperature", "0", "-n", "16", "--dev", dev}

	// Contrastive: the signal comes as the first model's score is printed.
	notifySignals = func(c chan<- os.Signal) { ch = c }
	errs := &signalOnOutput{sig: func() {
		if ch != nil { // nil: the scoring does not listen for signals
			ch <- os.Interrupt
		}
	}}
	cal := filepath.Join(dir, "contrastive.json")
	var out bytes.Buffer
	code := runMain(append([]string{"collab", "contrastive", "--calibration", cal}, common...), nil, &out, errs)
	if code != 130 || !strings.Contains(errs.buf.String(), "\nmoco collab: interrupted by SIGINT") ||
		strings.Count(errs.buf.String(), "dev accuracy") != 1 || out.Len() != 0 {
		t.Errorf("contrastive: exit %d, stdout %q, stderr %q; want 130 after the first model's score", code, out.String(), errs.buf.String())
	}
	if _, err := os.Stat(cal); err == nil {
		t.Error("contrastive: an interrupted dev pass saved its calibration")
	}

	// Cascade: the signal comes before the calibration starts.
	notifySignals = func(c chan<- os.Signal) { c <- os.Interrupt }
	cal = filepath.Join(dir, "cascade.json")
	var stderr bytes.Buffer
	out.Reset()
	code = runMain(append([]string{"collab", "cascade", "--calibration", cal}, common...), nil, &out, &stderr)
	if code != 130 || !strings.Contains(stderr.String(), "\nmoco collab: interrupted by SIGINT") || out.Len() != 0 {
		t.Errorf("cascade: exit %d, stdout %q, stderr %q; want 130", code, out.String(), stderr.String())
	}
	if _, err := os.Stat(cal); err == nil {
		t.Error("cascade: the calibration ran to the end and was saved")
	}
}
