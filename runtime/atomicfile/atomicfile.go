// Package atomicfile publishes a file all at once: it is written to a temp
// file in the destination's directory, flushed to disk and renamed into
// place, so a reader (or the next start after a crash) sees either the old
// file or the whole new one, never a half-written one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write creates path with mode perm from what write puts into the temp file.
// The temp file is named by pattern (os.CreateTemp syntax; "" means
// ".<name>.tmp-*") so callers can find and remove leftovers of a crash. On
// any error the temp file is removed and path is untouched.
func Write(path string, perm os.FileMode, pattern string, write func(f *os.File) error) error {
	dir := filepath.Dir(path)
	if pattern == "" {
		pattern = "." + filepath.Base(path) + ".tmp-*"
	}
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	// The rename itself is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
