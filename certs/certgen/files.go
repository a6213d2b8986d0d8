package certgen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ensureWritableDir creates dir if it is missing (but not its parents: a typo, or running
// outside the repository root, should fail instead of scattering keys) and checks up front
// that files can be written there, so that a failure never leaves half the files rotated.
func ensureWritableDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create output directory %q: %w (its parent must exist: run from the repository root, or pass --out-dir)", dir, err)
		}
	case err != nil:
		return fmt.Errorf("output directory %q: %w", dir, err)
	case !info.IsDir():
		return fmt.Errorf("output directory %q exists and is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("output directory %q is not writable: %w", dir, err)
	}
	name := probe.Name()
	_ = probe.Close()
	return os.Remove(name)
}

// writeFileAtomic replaces path with data: it writes a temporary file in the same directory,
// syncs it, and renames it over path, so that a reader (kubectl kustomize, a webhook watching
// its --cert-dir) sees either the old file or the new one, never a partial one.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600, so a key is never readable by others, not even briefly.
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
