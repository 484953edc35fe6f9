package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// CodeOptions configures how coding items run. The defaults are MoCo's:
// 10 s per item, 512 MiB of address space, 5 MiB per written file.
type CodeOptions struct {
	Python     string        // interpreter; "": python3 on PATH
	Timeout    time.Duration // wall-clock limit per item; 0: 10 s (also the CPU-time limit)
	MemoryMB   int           // address-space limit; 0: 512
	FileSizeMB int           // largest file the code may write; 0: 5
	MaxOutput  int           // bytes of stdout and of stderr kept; 0: 64 KiB (the rest is read and dropped)
}

func (o CodeOptions) withDefaults() CodeOptions {
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 512
	}
	if o.FileSizeMB <= 0 {
		o.FileSizeMB = 5
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = 64 << 10
	}
	return o
}

// ErrNoPython is returned (wrapped) when coding items cannot run because
// the interpreter is missing.
var ErrNoPython = errors.New("python3 is not installed")

type codeScorer struct {
	o    ScorerOptions
	c    CodeOptions
	path string
}

func newCodeScorer(o ScorerOptions) (Scorer, error) {
	c := o.Code.withDefaults()
	path, err := exec.LookPath(c.Python)
	if err != nil {
		return nil, fmt.Errorf("%s (coding): %q not found, so its tests cannot run: %w", o.Dataset, c.Python, ErrNoPython)
	}
	return &codeScorer{o: o, c: c, path: path}, nil
}

func (*codeScorer) Metric() string        { return "pass@1" }
func (*codeScorer) Prompt(it Item) string { return inputOf(it) }

// Score runs the item's test (a check(candidate) function, as in HumanEval
// and MoCo's MBPP) against the generated code in a sandboxed python3.
func (s *codeScorer) Score(ctx context.Context, it Item, g string) (Scored, error) {
	test := rawString(it, "test")
	if test == "" {
		test = rawString(it, "test_code")
	}
	if lang := rawString(it, "language"); lang != "" && lang != "python" {
		return Scored{Note: "language " + lang + " is not supported"}, nil
	}
	prog, entry := BuildProgram(inputOf(it), g)
	if entry == "" {
		return Scored{Extracted: prog, Note: "no function defined"}, nil
	}
	if test == "" {
		return Scored{Extracted: prog, Note: "the item has no test"}, nil
	}
	full := prog + "\n\ncandidate = " + entry + "\n\n" + test + "\n\ncheck(candidate)\n"
	r, err := RunPython(ctx, s.path, full, s.c)
	if err != nil {
		return Scored{}, err
	}
	sc := Scored{Extracted: prog, Note: r.Note()}
	// Completed, unlike MoCo, which takes exit status 0 as a pass: code that
	// exits early (os._exit(0), sys.exit(0)) would otherwise skip the test.
	if r.ExitCode == 0 && !r.TimedOut && r.Completed && !strings.Contains(r.Stderr, "AssertionError") {
		sc.Score = 1
	}
	return sc, nil
}

var (
	reFenceLang = regexp.MustCompile("(?is)```(?:python|py|python3)?[ \\t]*\\n(.*?)```")
	reFenceAny  = regexp.MustCompile("(?s)```[^\\n]*\\n?(.*?)```")
	reDef       = regexp.MustCompile(`(?m)^def\s+([A-Za-z_]\w*)\s*\(`)
	reAnyDef    = regexp.MustCompile(`def\s+([A-Za-z_]\w*)\s*\(`)
	reAssert    = regexp.MustCompile(`assert\s+(?:not\s+)?\(?\s*([A-Za-z_]\w*)\s*\(`)
	reCodeStart = regexp.MustCompile(`(?m)^(?:def |from |import |class |@)`)
)

// ExtractCode strips markdown fences: the last ```python block, else the
// last fenced block, else an unclosed opening fence's remainder, else the
// text itself. Leading indentation is kept (a HumanEval completion is a
// function body).
func ExtractCode(g string) string {
	if m := reFenceLang.FindAllStringSubmatch(g, -1); m != nil {
		return strings.TrimRight(m[len(m)-1][1], " \t\r\n")
	}
	if m := reFenceAny.FindAllStringSubmatch(g, -1); m != nil {
		return strings.TrimRight(m[len(m)-1][1], " \t\r\n")
	}
	if i := strings.Index(g, "```"); i >= 0 { // cut off before the fence closed
		rest := g[i+3:]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			return strings.TrimRight(rest[j+1:], " \t\r\n")
		}
	}
	lines := strings.Split(g, "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	return strings.TrimRight(strings.Join(lines, "\n"), " \t\r\n")
}

// BuildProgram turns a generation into the program to test and the name of
// the function under test. The entry point is the prompt's last top-level
// def (HumanEval) or the function its example assert calls (MBPP). A
// generation that defines the entry point is a full function (MBPP style,
// or a chat model repeating the signature); one that does not is a
// completion of the prompt's code (HumanEval style), so the two are joined.
// With no entry point known, the first function the code defines is tested,
// as MoCo does.
func BuildProgram(prompt, generation string) (program, entry string) {
	code := ExtractCode(generation)
	pcode := ""
	if loc := reCodeStart.FindStringIndex(prompt); loc != nil {
		pcode = prompt[loc[0]:]
	}
	if m := reDef.FindAllStringSubmatch(pcode, -1); m != nil {
		entry = m[len(m)-1][1]
	} else if m := reAssert.FindStringSubmatch(prompt); m != nil {
		entry = m[1]
	}
	defines := func(src, name string) bool {
		return regexp.MustCompile(`(?m)^\s*def\s+` + regexp.QuoteMeta(name) + `\s*\(`).MatchString(src)
	}
	switch {
	case entry != "" && defines(code, entry):
		return code, entry
	case entry != "" && pcode != "" && defines(pcode, entry) && strings.TrimSpace(code) != "":
		return strings.TrimRight(pcode, " \t\r\n") + "\n" + code, entry
	}
	if m := reAnyDef.FindStringSubmatch(code); m != nil {
		return code, m[1]
	}
	return code, ""
}

// PyResult is the outcome of one sandboxed run.
type PyResult struct {
	ExitCode       int
	TimedOut       bool
	Stdout, Stderr string // the first MaxOutput bytes of each
	Truncated      bool   // output beyond MaxOutput was dropped
	Sandboxed      bool   // ran in its own network namespace
	Completed      bool   // ran to its end: it did not exit or die part way
}

// Note summarises a run for a result line.
func (r PyResult) Note() string {
	var parts []string
	if r.TimedOut {
		parts = append(parts, "timed out")
	} else if r.ExitCode != 0 {
		parts = append(parts, fmt.Sprintf("exit %d", r.ExitCode))
		if tail := lastLine(r.Stderr); tail != "" {
			parts = append(parts, tail)
		}
	} else if !r.Completed {
		parts = append(parts, "exited before its end")
	}
	if r.Truncated {
		parts = append(parts, "output truncated")
	}
	if !r.Sandboxed {
		parts = append(parts, "unsandboxed (no network namespace)")
	}
	return strings.Join(parts, "; ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// pyPreamble runs before the program: it sets the resource limits (CPU
// seconds, address space, file size, processes, no core files) and installs
// an audit hook that refuses sockets, new processes and forks, then runs
// solution.py from its own temporary folder and, if that returns, writes
// the run's random token to doneFile (its path and open are bound before
// the program runs, which could change the folder or shadow open).
const pyPreamble = `import sys
try:
    import resource
    def _lim(r, v):
        try:
            resource.setrlimit(r, (v, v))
        except (ValueError, OSError):
            pass
    _lim(resource.RLIMIT_CPU, %d)
    _lim(resource.RLIMIT_AS, %d)
    _lim(resource.RLIMIT_FSIZE, %d)
    _lim(resource.RLIMIT_NPROC, 4)
    _lim(resource.RLIMIT_CORE, 0)
except ImportError:
    pass
def _moco_audit(event, args):
    if event.startswith(("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.system", "os.kill", "os.killpg", "pty.")):
        raise RuntimeError("sandbox: " + event + " is not allowed")
sys.addaudithook(_moco_audit)
del _moco_audit
def _moco_done(path=__import__("os").path.abspath("%s"), open=open):
    with open(path, "w") as f:
        f.write("%s")
__name__ = "__main__"
with open("solution.py") as _f:
    _src = _f.read()
exec(compile(_src, "solution.py", "exec"))
_moco_done()
`

// doneFile is where pyPreamble writes its token once the program has run to
// its end.
const doneFile = ".moco-done"

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	buf   bytes.Buffer
	max   int
	total int
}

func (c *capped) Write(p []byte) (int, error) {
	c.total += len(p)
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		c.buf.Write(p[:room])
	}
	return len(p), nil
}

// RunPython runs a program in python3 in its own temporary folder, with a
// minimal environment, the resource limits and audit hook of pyPreamble,
// its own process group (killed whole at the timeout), bounded captured
// output, and its own network namespace where the OS allows it.
// PyResult.Completed says whether the program ran to its end, by a token
// drawn for this run that the program does not know in advance.
func RunPython(ctx context.Context, python, program string, o CodeOptions) (PyResult, error) {
	o = o.withDefaults()
	dir, err := os.MkdirTemp("", "moco-code-")
	if err != nil {
		return PyResult{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "solution.py"), []byte(program), 0o600); err != nil {
		return PyResult{}, err
	}
	cpu := int(o.Timeout.Seconds() + 0.999)
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return PyResult{}, err
	}
	token := hex.EncodeToString(nonce[:])
	pre := fmt.Sprintf(pyPreamble, cpu, o.MemoryMB<<20, o.FileSizeMB<<20, doneFile, token)
	if err := os.WriteFile(filepath.Join(dir, "run.py"), []byte(pre), 0o600); err != nil {
		return PyResult{}, err
	}
	mode := netnsMode(python)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cmd := exec.Command(python, "-I", "run.py")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C", "PYTHONHASHSEED=0",
		"PYTHONDONTWRITEBYTECODE=1", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1"}
	setSandbox(cmd, mode)
	var stdout, stderr = &capped{max: o.MaxOutput}, &capped{max: o.MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return PyResult{}, fmt.Errorf("starting %s: %w", python, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	timedOut := false
	select {
	case werr = <-done:
	case <-ctx.Done():
		timedOut = true
		killGroup(cmd)
		werr = <-done
	}
	killGroup(cmd) // stragglers left in the group
	r := PyResult{TimedOut: timedOut, Stdout: stdout.buf.String(), Stderr: stderr.buf.String(), Sandboxed: mode != 0,
		Truncated: stdout.total > o.MaxOutput || stderr.total > o.MaxOutput}
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	if werr != nil && r.ExitCode == 0 {
		r.ExitCode = -1
	}
	if b, err := os.ReadFile(filepath.Join(dir, doneFile)); err == nil && string(b) == token {
		r.Completed = true
	}
	if err := parent.Err(); err != nil {
		return r, err // the caller gave up, not the program
	}
	return r, nil
}

var (
	netnsMu    sync.Mutex
	netnsCache = map[string]int{}
)

// netnsMode finds (once per interpreter) how a child can be started in a
// new network namespace here: a sandboxModes entry, or 0 for not at all.
func netnsMode(python string) int {
	netnsMu.Lock()
	defer netnsMu.Unlock()
	if v, ok := netnsCache[python]; ok {
		return v
	}
	mode := 0
	for _, m := range sandboxModes {
		cmd := exec.Command(python, "-c", "pass")
		setSandbox(cmd, m)
		if cmd.Run() == nil {
			mode = m
			break
		}
	}
	netnsCache[python] = mode
	return mode
}
