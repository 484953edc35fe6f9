package decode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mocolab/moco/internal/atomicfile"
)

// CalibrationFormat names the file format Calibration writes.
const CalibrationFormat = "moco-calibration/1"

// Calibration is what a method measured on a dev set (a cascade's
// thresholds, the contrastive ranking's per-model scores) saved with
// everything the measurement depends on, so a later run reuses it instead
// of measuring again, and notices when it no longer applies.
type Calibration struct {
	Format string            `json:"format"`
	Inputs CalibrationInputs `json:"inputs"`
	// Thresholds are a cascade's, one per level but the last.
	Thresholds []float64 `json:"thresholds,omitempty"`
	// Scores are one per model in Inputs.Models order (contrastive: dev
	// accuracy or mean NLL, as Inputs.Settings["rank"] says).
	Scores []float64 `json:"scores,omitempty"`
}

// CalibrationInputs identify a calibration: the method, the models (by
// content fingerprint, so a moved copy still matches and a retrained model
// does not), the dev set (by content hash and the sample drawn from it) and
// the settings that change the measurement.
type CalibrationInputs struct {
	Method   string            `json:"method"`
	Models   []ModelPrint      `json:"models"`
	Dev      string            `json:"dev_sha256"`
	Settings map[string]string `json:"settings"`
}

// ModelPrint names a model and fingerprints its files.
type ModelPrint struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

// Mismatch describes the first difference between the inputs c was
// measured with and want, or returns "" when they are the same.
func (c *Calibration) Mismatch(want CalibrationInputs) string {
	got := c.Inputs
	switch {
	case got.Method != want.Method:
		return fmt.Sprintf("it was made for %s, not %s", got.Method, want.Method)
	case len(got.Models) != len(want.Models):
		return fmt.Sprintf("it was made for %d models, not %d", len(got.Models), len(want.Models))
	case got.Dev != want.Dev:
		return "the dev set's content differs"
	}
	for i := range got.Models {
		if got.Models[i].Fingerprint != want.Models[i].Fingerprint {
			return fmt.Sprintf("model %d (%s) differs from the one calibrated (%s)", i+1, want.Models[i].Name, got.Models[i].Name)
		}
	}
	keys := make([]string, 0, len(got.Settings)+len(want.Settings))
	for k := range got.Settings {
		keys = append(keys, k)
	}
	for k := range want.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if got.Settings[k] != want.Settings[k] {
			return fmt.Sprintf("setting %s was %q, now %q", k, got.Settings[k], want.Settings[k])
		}
	}
	return ""
}

// LoadCalibration reads a calibration file. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func LoadCalibration(path string) (*Calibration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Calibration
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: not a calibration file: %v", path, err)
	}
	if c.Format != CalibrationFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, c.Format, CalibrationFormat)
	}
	return &c, nil
}

// Save writes c to path atomically: a temporary file in the same folder,
// synced, then renamed over path, so a reader never sees half a file.
func (c *Calibration) Save(path string) error {
	c.Format = CalibrationFormat
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

// FingerprintModel hashes a model folder's config.json, tokenizer.json and
// weight files (names, sizes, and the first and last MiB of each), enough
// to tell a retrained or different model from the same one without reading
// gigabytes. "" (the embedded default model) has a fixed print.
func FingerprintModel(dir string) (string, error) {
	if dir == "" {
		return "embedded-default", nil
	}
	h := sha256.New()
	for _, name := range []string{"config.json", "tokenizer.json", "adapter_config.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".safetensors") {
			continue
		}
		if err := hashEnds(h, filepath.Join(dir, e.Name())); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashEnds(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const chunk = 1 << 20
	fmt.Fprintf(h, "%s %d\n", filepath.Base(path), st.Size())
	if _, err := io.CopyN(h, f, min(chunk, st.Size())); err != nil {
		return err
	}
	if st.Size() > 2*chunk {
		if _, err := f.Seek(-chunk, io.SeekEnd); err != nil {
			return err
		}
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
	} else if st.Size() > chunk {
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
	}
	return nil
}

// HashFile returns the SHA-256 of a file's content, hex-encoded.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
