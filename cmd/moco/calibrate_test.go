package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/kernels"
)

// TestBenchSpeedCalibration runs `bench speed --json` in fresh processes
// sharing an empty cache folder: the first calibrates the kernels, the
// second reads the first's cache, MOCO_CALIBRATE=off keeps the family
// rules; each path's reason says which.
func TestBenchSpeedCalibration(t *testing.T) {
	model := synthTiny(t)
	cache := filepath.Join(t.TempDir(), "cache")
	paths := func(mode string) (calibrated, cached, rule int) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "bench", "speed", "--model", model, "--prompt-tokens", "4", "--gen-tokens", "2",
			"--repeats", "1", "--bandwidth", "10", "--threads", "1", "--json")
		// The cache folder of os.UserCacheDir on Linux, macOS and Windows.
		cmd.Env = append(os.Environ(), "MOCO_TEST_MAIN=1", "MOCO_CALIBRATE="+mode,
			"XDG_CACHE_HOME="+cache, "HOME="+cache, "LocalAppData="+cache)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("MOCO_CALIBRATE=%s: %v: %s", mode, err, stderr.String())
		}
		var res struct {
			Paths []kernels.Choice `json:"paths"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Paths) == 0 {
			t.Fatalf("MOCO_CALIBRATE=%s: %v in %s", mode, err, out)
		}
		for _, p := range res.Paths {
			switch {
			case p.Kernel == "selection": // MOCO_KERNELS's note
			case strings.HasPrefix(p.Reason, "calibrated ("):
				calibrated++
			case strings.HasPrefix(p.Reason, "cached calibration from "+cache):
				cached++
			case strings.HasPrefix(p.Reason, "cpu family rule: "):
				rule++
			default:
				t.Errorf("MOCO_CALIBRATE=%s: %+v: the reason does not say how the path was chosen", mode, p)
			}
		}
		return calibrated, cached, rule
	}
	c1, k1, r1 := paths("on")
	c2, k2, r2 := paths("on")
	c3, k3, r3 := paths("off")
	if kernels.Impl() == "avx512" && c1 == 0 {
		t.Errorf("AVX-512 without AMX: no path was calibrated")
	}
	if k1 != 0 || c2 != 0 || k2 != c1 || r2 != r1 {
		t.Errorf("first run: %d calibrated, %d cached, %d rules; second: %d, %d, %d; want the second to read all the first measured",
			c1, k1, r1, c2, k2, r2)
	}
	if c3 != 0 || k3 != 0 || r3 != c1+r1 {
		t.Errorf("MOCO_CALIBRATE=off: %d calibrated, %d cached, %d rules; want %d rules", c3, k3, r3, c1+r1)
	}
}

func TestCalibrateEnvUsage(t *testing.T) {
	t.Setenv("MOCO_CALIBRATE", "maybe")
	_, stderr, code := runCLI("generate", "--max-tokens", "1")
	if code != 2 || !strings.Contains(stderr, `MOCO_CALIBRATE="maybe"`) {
		t.Fatalf("exit %d, stderr %q; want 2 and the variable named", code, stderr)
	}
	// Commands that run no model do not read it.
	if _, stderr, code := runCLI("version"); code != 0 {
		t.Fatalf("version: exit %d: %s", code, stderr)
	}
}
