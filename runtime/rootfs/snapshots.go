package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/berth-dev/berth/runtime/atomicfile"
	"github.com/berth-dev/berth/runtime/ext4"
)

// builds counts snapshot builds (tests check that concurrent requests build once).
var builds atomic.Int64

// DefaultSize is the apparent size of snapshots and clones (sparse).
const DefaultSize = 64 << 30

// Snapshots keeps one flattened ext4 per image under Dir. Concurrent requests
// for the same key build once: singleflight inside the process, a file lock
// across processes. Finished snapshots are published with a rename, so a
// snapshot file that exists is always complete.
type Snapshots struct {
	Dir  string
	Size int64            // apparent image size; 0 = DefaultSize
	Warn func(msg string) // skipped or normalised tar entries
	sf   singleflight.Group
}

// Path is where the snapshot for key lives (built or not).
func (s *Snapshots) Path(key string) string {
	return filepath.Join(s.Dir, fileName(key)+".ext4")
}

// fileName turns a key (e.g. "sha256:…" or "sha256:…@linux/arm64") into a
// safe file name.
func fileName(key string) string {
	var b strings.Builder
	for _, c := range key {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	return strings.TrimLeft(b.String(), ".")
}

// Key is the snapshot key for an image: its manifest digest and platform.
func Key(manifestDigest string, p *v1.Platform) string {
	if p == nil {
		return manifestDigest
	}
	return manifestDigest + "@" + p.String()
}

// Snapshot returns the path of img's snapshot, building it if needed.
func (s *Snapshots) Snapshot(ctx context.Context, img v1.Image, key string) (string, error) {
	if key == "" {
		return "", errors.New("empty snapshot key")
	}
	out := s.Path(key)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	for {
		_, err, _ := s.sf.Do(key, func() (any, error) {
			return nil, s.build(ctx, img, key)
		})
		// A shared build fails with the context of the caller that started
		// it; when that caller gave up but we did not, build again.
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		if err != nil {
			return "", err
		}
		return out, nil
	}
}

// Get is Snapshot (the name used in SEAMS.md).
func (s *Snapshots) Get(ctx context.Context, img v1.Image, key string) (string, error) {
	return s.Snapshot(ctx, img, key)
}

func (s *Snapshots) build(ctx context.Context, img v1.Image, key string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	name := fileName(key)
	out := s.Path(key)
	unlock, err := lockFile(filepath.Join(s.Dir, "."+name+".lock"))
	if err != nil {
		return fmt.Errorf("lock snapshot %s: %w", key, err)
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return nil // another process built it while we waited
	}
	builds.Add(1)
	// Temp files of this key left by a crashed builder (we hold its lock).
	if old, _ := filepath.Glob(filepath.Join(s.Dir, ".build-"+name+"-*")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
	}
	size := s.Size
	if size == 0 {
		size = DefaultSize
	}
	return atomicfile.Write(out, 0o600, ".build-"+name+"-*", func(f *os.File) error {
		return Build(ctx, f, img, ext4.Options{Size: size, Warn: s.Warn})
	})
}

// Remove deletes key's snapshot (containers cloned from it keep their copy).
func (s *Snapshots) Remove(key string) error {
	err := os.Remove(s.Path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Clone makes dst a private copy-on-write copy of snapshot: a reflink
// (clonefile on macOS, FICLONE on Linux) when the filesystem can, otherwise
// a sparse copy of only the data regions. dst must not exist.
func (s *Snapshots) Clone(snapshot, dst string) error { return Clone(snapshot, dst) }

// Clone is Snapshots.Clone.
func Clone(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("clone %s: destination exists", dst)
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := cloneFile(src, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("clone %s: %w", filepath.Base(src), err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
