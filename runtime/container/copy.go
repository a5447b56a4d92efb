package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/runtime/ext4"
)

func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += int64(st.Blocks) * 512
				} else {
					n += info.Size()
				}
			}
		}
		return nil
	})
	return n
}

func cleanContainerPath(p string) (string, error) {
	if p == "" {
		return "", errf(ErrInvalid, "empty path")
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p), nil
}

func (m *Manager) statPath(ctx context.Context, ref, p string) (container.PathStat, error) {
	p, err := cleanContainerPath(p)
	if err != nil {
		return container.PathStat{}, err
	}
	c, rn, err := m.running(ref)
	if errors.Is(err, ErrNotFound) {
		return container.PathStat{}, err
	}
	if rn == nil {
		var st container.PathStat
		ran, err := m.withStoppedDisk(c, func(rd *ext4.Reader) (err error) {
			st, err = statOnDisk(rd, p)
			return err
		})
		if ran {
			return st, err
		}
		if c, rn, err = m.running(ref); err != nil { // it started meanwhile
			return container.PathStat{}, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rn.guest.CopyOut(ctx, p, pw)) }()
	defer pr.Close()
	h, err := tar.NewReader(pr).Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errf(ErrNotFound, "no such file or directory in the container: %s", p)
		}
		return container.PathStat{}, err
	}
	return container.PathStat{Name: path.Base(p), Size: h.Size, Mode: h.FileInfo().Mode(), Mtime: h.ModTime, LinkTarget: h.Linkname}, nil
}

func (m *Manager) copyFrom(ctx context.Context, ref, p string, w io.Writer) error {
	p, err := cleanContainerPath(p)
	if err != nil {
		return err
	}
	c, rn, err := m.running(ref)
	if errors.Is(err, ErrNotFound) {
		return err
	}
	ran := false
	if rn == nil {
		ran, err = m.withStoppedDisk(c, func(rd *ext4.Reader) error { return copyOutOfDisk(rd, p, w) })
		if !ran {
			c, rn, err = m.running(ref) // it started meanwhile
		}
	}
	if !ran && err == nil {
		err = rn.guest.CopyOut(ctx, p, w)
	}
	if err != nil {
		return err
	}
	m.emit(events.ActionArchivePath, c, map[string]string{"path": p})
	return nil
}

// copyTo checks the whole archive on the host before anything reaches the
// container: an entry that would escape the destination is refused and
// nothing is extracted.
func (m *Manager) copyTo(ctx context.Context, ref, dir string, archive io.Reader, o CopyToOptions) error {
	dir, err := cleanContainerPath(dir)
	if err != nil {
		return err
	}
	c, rn, err := m.running(ref)
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		// Writing the ext4 from the host would need a writer that edits a
		// filesystem in place; the agent does it once the VM runs.
		return errf(ErrNotImplemented, "copying into a stopped container is not supported by Berth: start it first (docker start %s), then copy", ref)
	}
	tmpDir := m.cfg.Root.Tmp()
	os.MkdirAll(tmpDir, 0o700)
	spool, err := os.CreateTemp(tmpDir, "copy-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	tr := tar.NewReader(archive)
	tw := tar.NewWriter(spool)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errf(ErrInvalid, "the archive is not a valid tar: %v", err)
		}
		if err := safeEntry(h); err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := rn.guest.CopyIn(ctx, dir, spool); err != nil {
		return err
	}
	m.emit(events.ActionExtractToDir, c, map[string]string{"path": dir})
	return nil
}

// safeEntry refuses names and hard-link targets that leave the destination.
func safeEntry(h *tar.Header) error {
	bad := func(what, p string) error {
		return errf(ErrInvalid, "refusing archive entry %q: %s %q points outside the destination directory", h.Name, what, p)
	}
	if escapes(h.Name) {
		return bad("path", h.Name)
	}
	if h.Typeflag == tar.TypeLink && escapes(h.Linkname) {
		return bad("hard link", h.Linkname)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock,
		tar.TypeXHeader, tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	case tar.TypeRegA:
		return nil
	}
	return errf(ErrInvalid, "archive entry %q has unsupported type %q", h.Name, h.Typeflag)
}

func escapes(p string) bool {
	if strings.HasPrefix(p, "/") {
		p = strings.TrimLeft(p, "/") // absolute names are taken relative to the destination, like tar does
	}
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

func (m *Manager) export(ctx context.Context, ref string, w io.Writer) error {
	c, rn, err := m.running(ref)
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if rn != nil {
		// The guest owns the disk while it runs: ask the agent.
		if err := rn.guest.CopyOut(ctx, "/", w); err != nil {
			return err
		}
	} else {
		// Stopped: nothing writes the disk, read the ext4 directly.
		c.op.Lock()
		defer c.op.Unlock()
		f, err := os.Open(c.rootfs())
		if err != nil {
			return err
		}
		defer f.Close()
		rd, err := ext4.Open(f)
		if err != nil {
			return fmt.Errorf("read root filesystem of %s: %w", ref, err)
		}
		if err := rd.WriteTar(w); err != nil {
			return err
		}
	}
	m.emit(events.ActionExport, c, nil)
	return nil
}
