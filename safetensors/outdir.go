package safetensors

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OutDir is a model folder being written. Files go into a temporary folder
// beside the target, named .NAME.tmp-pPID-RANDOM after the writing process,
// and Commit renames it into place, so the target only ever holds the
// previous state or a complete result. A process killed while writing
// leaves its temporary folder behind; the next CreateOutDir for the same
// target removes it once the process is gone (see CleanStale).
//
// The target may be absent or an empty folder. A non-empty folder is
// replaced only with force, and only when it looks like a model folder
// (config.json or a .safetensors file): a mistyped path never destroys a
// user's folder. An existing file, link or anything else that is not a
// folder is always refused.
type OutDir struct {
	Path string // the target folder
	Tmp  string // the temporary folder to write into
	done bool
}

// Our temporary names: "." + base + tmpInfix + "p" + pid + "-" + random.
const (
	tmpInfix = ".tmp-"
	oldInfix = ".old-"
)

// CheckOutPath reports whether a model folder may be written at path: it
// does not exist, is an empty folder, or (with force) a model folder.
func CheckOutPath(path string, force bool) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		what := "a file"
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			what = "a symbolic link"
		case !fi.Mode().IsRegular():
			what = "not a folder"
		}
		return fmt.Errorf("%s exists and is %s; refusing to replace it (choose a new folder name)", path, what)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%s already exists and is not empty (use --force to replace a model folder)", path)
	}
	for _, e := range ents {
		if e.Name() == "config.json" || strings.HasSuffix(e.Name(), ".safetensors") {
			return nil
		}
	}
	return fmt.Errorf("%s is not empty and holds no config.json or .safetensors: not a model folder, refusing to replace it even with --force", path)
}

// CreateOutDir checks the target (CheckOutPath), removes stale temporary
// folders that earlier, dead processes left beside it (reported through
// notice when not nil), and creates the temporary folder to write into.
func CreateOutDir(path string, force bool, notice func(string)) (*OutDir, error) {
	path = filepath.Clean(path)
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	for _, m := range CleanStale(path) {
		if notice != nil {
			notice(m)
		}
	}
	if err := CheckOutPath(path, force); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(path)+tmpInfix+"p"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it private
		os.RemoveAll(tmp)
		return nil, err
	}
	return &OutDir{Path: path, Tmp: tmp}, nil
}

// Commit moves the temporary folder into place. A non-empty target (allowed
// by force) is first renamed aside and removed after the swap; if the swap
// fails, it is put back.
func (o *OutDir) Commit() error {
	if o.done {
		return fmt.Errorf("%s: already committed or aborted", o.Path)
	}
	if err := syncDir(o.Tmp); err != nil {
		return err
	}
	aside := ""
	if ents, err := os.ReadDir(o.Path); err == nil {
		if len(ents) == 0 {
			if err := os.Remove(o.Path); err != nil {
				return err
			}
		} else {
			aside = filepath.Join(filepath.Dir(o.Path), "."+filepath.Base(o.Path)+oldInfix+"p"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
			if err := os.Rename(o.Path, aside); err != nil {
				return err
			}
		}
	} else if _, serr := os.Lstat(o.Path); serr == nil {
		return CheckOutPath(o.Path, true) // became a file meanwhile
	}
	if err := os.Rename(o.Tmp, o.Path); err != nil {
		if aside != "" {
			os.Rename(aside, o.Path)
		}
		return err
	}
	o.done = true
	if aside != "" {
		os.RemoveAll(aside)
	}
	return syncDir(filepath.Dir(o.Path))
}

// Abort removes the temporary folder. It does nothing after Commit.
func (o *OutDir) Abort() {
	if o.done {
		return
	}
	o.done = true
	os.RemoveAll(o.Tmp)
}

// CleanStale removes the temporary folders of our naming beside path whose
// writing process no longer runs, and returns a line for each folder
// removed or left alone. A replaced folder set aside (.NAME.old-pPID-*) by
// a process killed in the middle of the swap is renamed back when path is
// missing, so the previous state returns. Folders of the older naming
// (.NAME.tmp-DIGITS, without the process id) are reported, not removed.
func CleanStale(path string) []string {
	path = filepath.Clean(path)
	parent, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var msgs []string
	for _, e := range ents {
		name := e.Name()
		var rest string
		var old bool
		switch {
		case strings.HasPrefix(name, "."+base+tmpInfix):
			rest = name[len(base)+1+len(tmpInfix):]
		case strings.HasPrefix(name, "."+base+oldInfix):
			rest, old = name[len(base)+1+len(oldInfix):], true
		default:
			continue
		}
		full := filepath.Join(parent, name)
		pid, ok := parseOwner(rest)
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s looks like an unfinished write of an older moco; remove it if no moco is writing %s", full, path))
			continue
		}
		if pid == os.Getpid() || processAlive(pid) {
			continue // being written now
		}
		if old {
			if _, err := os.Lstat(path); os.IsNotExist(err) {
				if os.Rename(full, path) == nil {
					msgs = append(msgs, fmt.Sprintf("restored %s from %s (process %d was killed while replacing it)", path, full, pid))
				}
				continue
			}
		}
		if err := os.RemoveAll(full); err == nil {
			msgs = append(msgs, fmt.Sprintf("removed %s, left by process %d, which is gone", full, pid))
		}
	}
	return msgs
}

// parseOwner reads "pPID-..." and returns PID.
func parseOwner(s string) (int, bool) {
	if !strings.HasPrefix(s, "p") {
		return 0, false
	}
	num, _, ok := strings.Cut(s[1:], "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	return pid, err == nil && pid > 0
}
