package kernels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mocolab/moco/internal/atomicfile"
)

// Start-up calibration. The CPU family rule (choices) picks most paths, but
// some it cannot settle: where two kernels are both correct, which one is
// faster depends on the core, the caches and the memory, not on the
// instruction set. Calibrate times the candidates of each such choice (a
// knob) on a small product and keeps the fastest; the result is cached per
// CPU, so later starts only read a file.
//
// A knob's candidates give the same results bit for bit, or differ only
// inside a mode the user opted into (the bf16-activation mode, whose tests
// accept each): calibration never changes what the default mode computes,
// and tests, which do not calibrate, stay deterministic.

// knob is one choice that calibration may settle.
type knob struct {
	kernel string      // the Choice it refines (Choice.Kernel)
	cands  []string    // candidate names by preference; cands[0] is the family rule's pick
	exact  bool        // the candidates' results are identical bit for bit
	use    func(i int) // selects candidate i
	// bench prepares the representative product and returns a function
	// that computes it once, on the calling goroutine only, with whichever
	// candidate is selected.
	bench func() func()
}

// knobResult is how one knob was settled: the candidates' times (the
// fastest of the rounds) and the pick.
type knobResult struct {
	Kernel     string   `json:"kernel"`
	Candidates []string `json:"candidates"`
	Path       string   `json:"path"` // the pick, one of Candidates
	NS         []int64  `json:"ns"`   // per candidate
}

// calibFile is the cache file's content.
type calibFile struct {
	Key   string       `json:"key"`
	Knobs []knobResult `json:"knobs"`
}

// calibVersion is part of the cache key: raise it when a kernel that a
// knob chooses among changes speed, so that caches written before are
// measured again. (The key also holds the module's version, and the git
// revision where the build recorded it. A stale cache costs speed only:
// every candidate is correct. MOCO_CALIBRATE=force renews it.)
const calibVersion = 4

const (
	calibRounds = 15 // timed runs of each candidate, after one warm-up
	// calibMargin: another candidate replaces the family rule's pick only
	// when it is faster by more than this fraction (noise on a shared
	// machine is a few percent).
	calibMargin = 0.03
)

var (
	// knobs lists the choices calibration may settle on this CPU with its
	// current selection (archKnobs). Tests replace it.
	knobs = archKnobs

	// measure times each candidate of k on its bench: the fastest of
	// calibRounds runs, the candidates taking turns. Tests replace it.
	measure = measureKnob

	// cacheDir is the folder of the cache files. Tests replace it.
	cacheDir = func() (string, error) {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(d, "moco"), nil
	}
)

// calib holds what the last Calibrate found.
var calib struct {
	sync.Mutex
	done    bool
	from    string // the cache file the results were read from; "" when measured
	results map[string]knobResult
}

// Calibrate settles, for this CPU, the kernel choices the CPU family rule
// leaves open (see Choices: their reasons say "calibrated" or "cached
// calibration"), by timing each candidate for a few milliseconds, under
// 200 ms in all. The result is cached in the user's cache folder
// (os.UserCacheDir()/moco/kernels-*.json), keyed by the CPU's name, its
// instruction sets and the kernels' version, so later starts read it; an
// unreadable or stale cache is measured again and rewritten.
//
// MOCO_CALIBRATE in the environment: "off" keeps the family rules, "force"
// measures again even when a cache exists; empty or "on" is the default.
// Calibration runs once per process (again with "force"); it switches
// kernels, so it must not run beside MatVec or MatMul: call it at start-up,
// before a model is loaded. Nothing calls it implicitly; the moco command
// calls it before commands that run models. Candidates compute the same
// results bit for bit, except in the opt-in bf16-activation mode, where
// the mode's kernels (VDPBF16PS or widening) may be chosen.
func Calibrate(ctx context.Context) error {
	mode := os.Getenv("MOCO_CALIBRATE")
	switch mode {
	case "", "on", "force":
	case "off":
		return nil
	default:
		return fmt.Errorf("MOCO_CALIBRATE=%q: want on, off or force", mode)
	}
	calib.Lock()
	defer calib.Unlock()
	if calib.done && mode != "force" {
		return nil
	}
	ks := knobs()
	if len(ks) == 0 {
		calib.done = true
		return nil
	}
	key := calibKey()
	file := ""
	if dir, err := cacheDir(); err == nil {
		sum := sha256.Sum256([]byte(key))
		file = filepath.Join(dir, "kernels-"+hex.EncodeToString(sum[:8])+".json")
	}
	if mode != "force" && file != "" {
		if data, err := os.ReadFile(file); err == nil {
			if res, err := parseCalibration(data, key, ks); err == nil {
				applyCalibration(ks, res, file)
				return nil
			}
		}
	}
	var res []knobResult
	for _, k := range ks {
		d, err := measure(ctx, k)
		if err != nil {
			k.use(0)
			return err
		}
		r := knobResult{Kernel: k.kernel, Candidates: k.cands}
		for _, x := range d {
			r.NS = append(r.NS, max(1, x.Nanoseconds()))
		}
		r.Path = k.cands[pickFastest(r.NS)]
		k.use(slices.Index(k.cands, r.Path)) // the later knobs are timed with this one settled
		res = append(res, r)
	}
	applyCalibration(ks, res, "")
	if file != "" {
		writeCalibration(file, calibFile{Key: key, Knobs: res}) // on failure, the next start measures again
	}
	return nil
}

// pickFastest returns the index of the first time within calibMargin of
// the fastest: candidates come in order of preference, the family rule's
// pick first, and one replaces an earlier one only when it is faster by
// more than noise.
func pickFastest(ns []int64) int {
	best := slices.Min(ns)
	for i, t := range ns {
		if float64(t) <= float64(best)*(1+calibMargin) {
			return i
		}
	}
	return 0 // not reached
}

// measureKnob is measure: one warm-up run of each candidate, then
// calibRounds rounds in which each runs once, the order turning from round
// to round; each candidate's time is its fastest run (the least disturbed
// by other work on the machine).
func measureKnob(ctx context.Context, k *knob) ([]time.Duration, error) {
	run := k.bench()
	n := len(k.cands)
	best := make([]time.Duration, n)
	for r := -1; r < calibRounds; r++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := range n {
			i := (j + r + 1) % n
			k.use(i)
			t0 := time.Now()
			run()
			d := time.Since(t0)
			if r >= 0 && (best[i] == 0 || d < best[i]) {
				best[i] = d
			}
		}
	}
	return best, nil
}

// applyCalibration selects each knob's pick and records the results for
// Choices; from is the cache file they came from, or "".
func applyCalibration(ks []*knob, res []knobResult, from string) {
	calib.results = map[string]knobResult{}
	for i, k := range ks {
		k.use(slices.Index(k.cands, res[i].Path))
		calib.results[k.kernel] = res[i]
	}
	calib.done, calib.from = true, from
}

// resetCalibration forgets the calibration (selecting paths again, as
// tests do, restores the family rules).
func resetCalibration() {
	calib.Lock()
	calib.done, calib.from, calib.results = false, "", nil
	calib.Unlock()
}

// calibrationReason returns the reason Choices gives for a calibrated
// kernel, and whether it was calibrated.
func calibrationReason(kernel string) (path, reason string, ok bool) {
	calib.Lock()
	defer calib.Unlock()
	r, ok := calib.results[kernel]
	if !ok {
		return "", "", false
	}
	pick := slices.Index(r.Candidates, r.Path)
	var others []string
	for i, c := range r.Candidates {
		if i != pick {
			others = append(others, fmt.Sprintf("%d ns for %s", r.NS[i], c))
		}
	}
	why := fmt.Sprintf("(%d ns vs %s", r.NS[pick], strings.Join(others, ", "))
	if slices.Min(r.NS) < r.NS[pick] {
		why += fmt.Sprintf("; within %.0f%% of the fastest, the earlier candidate kept", 100*calibMargin)
	}
	why += ")"
	if calib.from != "" {
		return r.Path, "cached calibration from " + calib.from + " " + why, true
	}
	return r.Path, "calibrated " + why, true
}

// calibratedKernels lists the kernels calibration settled, in order.
func calibratedKernels() []string {
	calib.Lock()
	defer calib.Unlock()
	var ks []string
	for k := range calib.results {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// calibKey identifies what a calibration holds for: the CPU, its
// instruction sets as the kernels use them, and the kernels' version.
func calibKey() string {
	key := fmt.Sprintf("%s|%s|%s|v%d", cpuInfo, simdName, cpuFeatures(), calibVersion)
	if bi, ok := debug.ReadBuildInfo(); ok {
		key += "|" + bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				key += "|" + s.Key + "=" + s.Value
			}
		}
	}
	return key
}

// parseCalibration reads a cache file written for key and checks it against
// the knobs: each must be present with the same candidates, a pick among
// them and a positive time for each.
func parseCalibration(data []byte, key string, ks []*knob) ([]knobResult, error) {
	var f calibFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Key != key {
		return nil, errors.New("written for another CPU or kernel version")
	}
	res := make([]knobResult, len(ks))
	for i, k := range ks {
		j := slices.IndexFunc(f.Knobs, func(r knobResult) bool { return r.Kernel == k.kernel })
		if j < 0 {
			return nil, fmt.Errorf("no entry for %q", k.kernel)
		}
		r := f.Knobs[j]
		if !slices.Equal(r.Candidates, k.cands) || !slices.Contains(r.Candidates, r.Path) || len(r.NS) != len(r.Candidates) {
			return nil, fmt.Errorf("entry for %q does not fit its candidates %q", k.kernel, k.cands)
		}
		for _, t := range r.NS {
			if t <= 0 {
				return nil, fmt.Errorf("entry for %q: time %d", k.kernel, t)
			}
		}
		res[i] = r
	}
	return res, nil
}

// writeCalibration writes f to file through a temporary file, so that a
// reader never sees half of it.
func writeCalibration(file string, f calibFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(file, append(data, '\n'))
}
