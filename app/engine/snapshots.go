package engine

// Interim rootfs snapshots until runtime/rootfs lands: one ext4 per image
// digest built with runtime/ext4, cloned per container with FICLONE or a
// sparse copy.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/ext4"
)

type snapshots struct {
	dir string
	mu  sync.Mutex
	per map[string]*sync.Mutex
}

func newSnapshots(root dataroot.Root) (*snapshots, error) {
	if err := os.MkdirAll(root.Snapshots(), 0o700); err != nil {
		return nil, err
	}
	return &snapshots{dir: root.Snapshots(), per: map[string]*sync.Mutex{}}, nil
}

func (s *snapshots) lock(key string) func() {
	s.mu.Lock()
	m := s.per[key]
	if m == nil {
		m = &sync.Mutex{}
		s.per[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *snapshots) Snapshot(ctx context.Context, img v1.Image, key string) (string, error) {
	name := strings.NewReplacer(":", "-", "/", "-").Replace(key) + ".ext4"
	out := filepath.Join(s.dir, name)
	defer s.lock(key)()
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	var ops []ext4.LayerOpener
	for _, l := range layers {
		ops = append(ops, l.Uncompressed)
	}
	tmp, err := os.CreateTemp(s.dir, ".build-*.ext4")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	w, err := ext4.NewWriter(tmp, ext4.Options{Size: 8 << 30})
	if err != nil {
		tmp.Close()
		return "", err
	}
	if err := w.AddLayers(ops); err != nil {
		w.Close()
		tmp.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	tmp.Close()
	return out, os.Rename(tmp.Name(), out)
}

func (s *snapshots) Clone(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := cloneFile(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

func cloneFile(out, in *os.File) error {
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	st, err := in.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	// Copy only the data extents: the image is a mostly-empty sparse file.
	fd := int(in.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no more data
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return fmt.Errorf("clone root filesystem: %w", err)
		}
		off = hole
	}
	return nil
}
