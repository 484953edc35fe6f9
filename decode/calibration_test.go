package decode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCalibrationFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cal.json")
	if _, err := LoadCalibration(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	in := CalibrationInputs{Method: "cascade", Models: []ModelPrint{{"a", "1"}, {"b", "2"}}, Dev: "d", Settings: map[string]string{"quantile": "0.5"}}
	c := &Calibration{Inputs: in, Thresholds: []float64{0.75}}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	got, err := LoadCalibration(path)
	if err != nil || got.Thresholds[0] != 0.75 || got.Mismatch(in) != "" {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, tc := range []struct {
		edit func(*CalibrationInputs)
		want string
	}{
		{func(x *CalibrationInputs) { x.Method = "contrastive" }, "made for cascade"},
		{func(x *CalibrationInputs) { x.Models = x.Models[:1] }, "2 models, not 1"},
		{func(x *CalibrationInputs) { x.Models = []ModelPrint{{"a", "1"}, {"c", "3"}} }, "model 2 (c)"},
		{func(x *CalibrationInputs) { x.Dev = "e" }, "dev set"},
		{func(x *CalibrationInputs) { x.Settings = map[string]string{"quantile": "0.6"} }, "quantile"},
		{func(x *CalibrationInputs) { x.Settings = map[string]string{"quantile": "0.5", "seed": "1"} }, "seed"},
	} {
		w := in
		w.Models = append([]ModelPrint(nil), in.Models...)
		tc.edit(&w)
		if m := got.Mismatch(w); !strings.Contains(m, tc.want) {
			t.Errorf("mismatch %q, want %q", m, tc.want)
		}
	}
	for _, body := range []string{`{"format": "other"}`, `{"format": "moco-calibration/1", "thresholdz": [1]}`, `[`} {
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := LoadCalibration(path); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}

func TestFingerprintModel(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"a": 1}`), 0o644)
	w := make([]byte, 3<<20)
	os.WriteFile(filepath.Join(dir, "model.safetensors"), w, 0o644)
	a, err := FingerprintModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	w[len(w)-1] = 1 // the last MiB is hashed
	os.WriteFile(filepath.Join(dir, "model.safetensors"), w, 0o644)
	b, _ := FingerprintModel(dir)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"a": 2}`), 0o644)
	c, _ := FingerprintModel(dir)
	if a == b || b == c || a == c {
		t.Errorf("fingerprints do not follow the content: %s %s %s", a, b, c)
	}
}

// FuzzLoadCalibration: any file either loads as a calibration of the
// current format or is refused; none panics.
func FuzzLoadCalibration(f *testing.F) {
	f.Add([]byte(`{"format": "moco-calibration/1", "inputs": {"method": "cascade", "models": [], "dev_sha256": "", "settings": {}}, "thresholds": [0.5]}`))
	f.Add([]byte(`{"format": "x"}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Skip()
		}
		c, err := LoadCalibration(p)
		if err == nil && c.Format != CalibrationFormat {
			t.Fatalf("format %q accepted", c.Format)
		}
		if err == nil {
			c.Mismatch(CalibrationInputs{})
		}
	})
}
