package atomicfile

import (
	"os"
	"path/filepath"
)

// Perm is the mode of the files WriteFile writes: readable by all, as
// os.WriteFile(path, data, 0o666) gives under the common umask 022
// (os.CreateTemp alone would leave them private to their owner, which
// hides a sweep's results or a calibration from the rest of a team).
const Perm = 0o644

// WriteFile writes data to path through a temporary file beside it. The
// folder must exist.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(Perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
