package kernels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCalibration replaces the knobs with one fake knob of candidates a, b
// and c whose measured times are ns, and the cache folder with a temporary
// one. It returns the knob's selected candidate (-1 before any) and the
// number of measurements taken.
func fakeCalibration(t *testing.T, ns ...time.Duration) (picked, measured *int, dir string) {
	t.Helper()
	picked, measured, dir = new(int), new(int), t.TempDir()
	*picked = -1
	k := &knob{
		kernel: "fake kernel",
		cands:  []string{"a", "b", "c"}[:len(ns)],
		use:    func(i int) { *picked = i },
		bench:  func() func() { return func() {} },
	}
	oldKnobs, oldMeasure, oldDir := knobs, measure, cacheDir
	t.Cleanup(func() {
		knobs, measure, cacheDir = oldKnobs, oldMeasure, oldDir
		resetCalibration()
	})
	knobs = func() []*knob { return []*knob{k} }
	measure = func(ctx context.Context, k *knob) ([]time.Duration, error) {
		*measured++
		return ns, nil
	}
	cacheDir = func() (string, error) { return dir, nil }
	resetCalibration()
	t.Setenv("MOCO_CALIBRATE", "")
	return picked, measured, dir
}

func fakeChoice(t *testing.T) Choice {
	t.Helper()
	for _, c := range Choices() {
		if c.Kernel == "fake kernel" {
			return c
		}
	}
	t.Fatalf("Choices has no entry for the calibrated kernel: %v", Choices())
	return Choice{}
}

func TestPickFastest(t *testing.T) {
	for _, c := range []struct {
		ns   []int64
		want int
	}{
		{[]int64{100, 200}, 0},
		{[]int64{200, 100}, 1},
		{[]int64{102, 100}, 0},      // within 3%: the family rule's pick stays
		{[]int64{104, 100}, 1},      // beyond it
		{[]int64{200, 101, 100}, 1}, // the earlier of two within 3%
		{[]int64{200, 110, 100}, 2},
		{[]int64{7}, 0},
	} {
		if got := pickFastest(c.ns); got != c.want {
			t.Errorf("pickFastest(%v) = %d, want %d", c.ns, got, c.want)
		}
	}
}

func TestCalibratePicksFaster(t *testing.T) {
	picked, measured, dir := fakeCalibration(t, 200, 100)
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if *picked != 1 || *measured != 1 {
		t.Fatalf("picked candidate %d after %d measurements, want 1 after 1", *picked, *measured)
	}
	want := Choice{"fake kernel", "b", "calibrated (100 ns vs 200 ns for a)"}
	if c := fakeChoice(t); c != want {
		t.Fatalf("Choices: %+v, want %+v", c, want)
	}
	// A second call in the same process does nothing.
	if err := Calibrate(context.Background()); err != nil || *measured != 1 {
		t.Fatalf("second Calibrate: err %v, %d measurements", err, *measured)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernels-*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want one", files)
	}
}

func TestCalibrationCacheRoundTrip(t *testing.T) {
	picked, measured, dir := fakeCalibration(t, 300, 100, 200)
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A new start: the cache is read, nothing is measured.
	resetCalibration()
	*picked = -1
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if *picked != 1 || *measured != 1 {
		t.Fatalf("picked %d after %d measurements, want 1 read from the cache after 1", *picked, *measured)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernels-*.json"))
	want := Choice{"fake kernel", "b", "cached calibration from " + files[0] + " (100 ns vs 300 ns for a, 200 ns for c)"}
	if c := fakeChoice(t); len(files) != 1 || c != want {
		t.Fatalf("Choices: %+v, want %+v", c, want)
	}
}

func TestCalibrationCorruptCache(t *testing.T) {
	_, measured, dir := fakeCalibration(t, 100, 200)
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernels-*.json"))
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"", "{", "not json", `{"key": 1}`,
		strings.Replace(string(good), `"a"`, `"x"`, 1),                 // other candidates
		strings.Replace(string(good), `"path": "a"`, `"path": "z"`, 1), // a pick that is none of them
		strings.Replace(string(good), `"key": "`, `"key": "other|`, 1), // another CPU
		strings.Replace(string(good), "100,", "-100,", 1),
	} {
		if bad == string(good) {
			t.Fatalf("corruption %q changed nothing", bad)
		}
		if err := os.WriteFile(files[0], []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		resetCalibration()
		before := *measured
		if err := Calibrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if *measured != before+1 {
			t.Fatalf("cache %q was not measured again", bad)
		}
		if got, _ := os.ReadFile(files[0]); string(got) != string(good) {
			t.Fatalf("cache %q rewritten as %q, want %q", bad, got, good)
		}
	}
	// An unwritable cache folder: calibration still holds for this process.
	cacheDir = func() (string, error) { return filepath.Join(files[0], "not-a-dir"), nil }
	resetCalibration()
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := fakeChoice(t); !strings.HasPrefix(c.Reason, "calibrated (") {
		t.Fatalf("Choices with an unwritable cache: %+v", c)
	}
}

func TestCalibrateEnv(t *testing.T) {
	picked, measured, _ := fakeCalibration(t, 200, 100)
	t.Setenv("MOCO_CALIBRATE", "off")
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if *picked != -1 || *measured != 0 || slices.ContainsFunc(Choices(), func(c Choice) bool { return c.Kernel == "fake kernel" }) {
		t.Fatalf("MOCO_CALIBRATE=off: picked %d, %d measurements, Choices %v", *picked, *measured, Choices())
	}
	for _, c := range Choices() {
		if !strings.HasPrefix(c.Reason, "cpu family rule: ") {
			t.Errorf("MOCO_CALIBRATE=off: %+v does not name the family rule", c)
		}
	}
	t.Setenv("MOCO_CALIBRATE", "on")
	if err := Calibrate(context.Background()); err != nil || *measured != 1 {
		t.Fatalf("MOCO_CALIBRATE=on: err %v, %d measurements", err, *measured)
	}
	// force measures again in the same process and despite the cache.
	t.Setenv("MOCO_CALIBRATE", "force")
	for want := 2; want <= 3; want++ {
		resetCalibration()
		if err := Calibrate(context.Background()); err != nil || *measured != want {
			t.Fatalf("MOCO_CALIBRATE=force: err %v, %d measurements, want %d", err, *measured, want)
		}
	}
	t.Setenv("MOCO_CALIBRATE", "maybe")
	if err := Calibrate(context.Background()); err == nil || !strings.Contains(err.Error(), "MOCO_CALIBRATE") {
		t.Fatalf("MOCO_CALIBRATE=maybe: err %v", err)
	}
}

func TestCalibrateCanceled(t *testing.T) {
	picked, _, _ := fakeCalibration(t, 200, 100)
	measure = measureKnob
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Calibrate(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Calibrate: %v", err)
	}
	if *picked != 0 {
		t.Fatalf("canceled Calibrate left candidate %d selected, want the family rule's", *picked)
	}
}

// TestCalibrateRealKnobs runs this CPU's knobs with fake times that make
// the last candidate the fastest, and checks that Choices reports it and
// that selecting a path again restores the family rule.
func TestCalibrateRealKnobs(t *testing.T) {
	ks := knobs()
	if len(ks) == 0 {
		t.Skipf("nothing to calibrate on %s with the %s kernels", cpuInfo.Arch, Impl())
	}
	defer selectPath(Impl())
	selectPath(Impl()) // the family rules, whatever tests before left selected
	before := Choices()
	_, _, _ = fakeCalibration(t)
	knobs = archKnobs
	measure = func(ctx context.Context, k *knob) ([]time.Duration, error) {
		d := make([]time.Duration, len(k.cands))
		for i := range d {
			d[i] = time.Duration(1000 - i*100)
		}
		return d, nil
	}
	if err := Calibrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := Choices()
	for _, k := range ks {
		i := slices.IndexFunc(after, func(c Choice) bool { return c.Kernel == k.kernel })
		if i < 0 || !strings.HasPrefix(after[i].Reason, "calibrated (") {
			t.Fatalf("%s: no calibrated choice in %v", k.kernel, after)
		}
		if k.exact && after[i].Path == before[i].Path {
			t.Errorf("%s: path %q did not change with the pick %q", k.kernel, after[i].Path, k.cands[len(k.cands)-1])
		}
	}
	selectPath(Impl())
	if got := Choices(); !slices.Equal(got, before) {
		t.Fatalf("selectPath did not restore the family rules:\n%v\nwant\n%v", got, before)
	}
}

func FuzzParseCalibration(f *testing.F) {
	ks := []*knob{
		{kernel: "k1", cands: []string{"a", "b"}},
		{kernel: "k2", cands: []string{"x", "y", "z"}},
	}
	f.Add([]byte(`{"key":"K","knobs":[{"kernel":"k1","candidates":["a","b"],"path":"b","ns":[2,1]},` +
		`{"kernel":"k2","candidates":["x","y","z"],"path":"x","ns":[1,2,3]}]}`))
	f.Add([]byte(`{"key":"K","knobs":[{"kernel":"k1","candidates":["a","b"],"path":"c","ns":[2,1]}]}`))
	f.Add([]byte(`{"key":"K","knobs":[{"kernel":"k1","candidates":["a"],"path":"a","ns":[0]}]}`))
	f.Add([]byte(`{"key":"K","knobs":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := parseCalibration(data, "K", ks)
		if err != nil {
			return
		}
		if len(res) != len(ks) {
			t.Fatalf("%d results for %d knobs", len(res), len(ks))
		}
		for i, r := range res {
			if r.Kernel != ks[i].kernel || !slices.Contains(ks[i].cands, r.Path) || len(r.NS) != len(ks[i].cands) {
				t.Fatalf("result %+v does not fit knob %q %q", r, ks[i].kernel, ks[i].cands)
			}
		}
		// What was accepted round-trips through the writer.
		file := filepath.Join(t.TempDir(), "c.json")
		if err := writeCalibration(file, calibFile{Key: "K", Knobs: res}); err != nil {
			t.Fatal(err)
		}
		data2, _ := os.ReadFile(file)
		res2, err := parseCalibration(data2, "K", ks)
		if err != nil || !slices.EqualFunc(res, res2, func(a, b knobResult) bool {
			return a.Kernel == b.Kernel && a.Path == b.Path && slices.Equal(a.NS, b.NS) && slices.Equal(a.Candidates, b.Candidates)
		}) {
			t.Fatalf("round trip: %v, %+v, want %+v", err, res2, res)
		}
	})
}
