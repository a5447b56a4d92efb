package container

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/ext4"
)

// Copying out of a stopped container: nothing writes its root disk, so it
// is read directly with runtime/ext4. The tar stream is the one the agent
// writes for a running container (guest/agent CopyOut): the path resolved
// inside the root (symlinks followed, also the last one; ".." stops at /),
// entries named from the requested path's base name, walked depth first
// in name order, hard links as full copies, no xattrs.

// maxLinks is the kernel's limit on symlinks followed in one lookup.
const maxLinks = 40

// errStopWalk ends an ext4 walk early once the copied subtree is behind.
var errStopWalk = errors.New("stop walk")

// withStoppedDisk runs fn on the container's root disk if it is not
// running, holding c.op so it cannot start meanwhile. ran is false when
// the container runs (or began to): the caller uses the agent then.
func (m *Manager) withStoppedDisk(c *ctr, fn func(rd *ext4.Reader) error) (ran bool, err error) {
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	running := c.run != nil
	_, still := m.byID[c.rec.ID]
	m.mu.Unlock()
	if !still { // removed while we waited for c.op
		return true, errf(ErrNotFound, "no such container: %s", c.rec.Name)
	}
	if running {
		return false, nil
	}
	f, err := os.Open(c.rootfs())
	if err != nil {
		return true, fmt.Errorf("open root filesystem of %s: %w", c.rec.Name, err)
	}
	defer f.Close()
	rd, err := ext4.Open(f)
	if err != nil {
		return true, fmt.Errorf("read root filesystem of %s: %w", c.rec.Name, err)
	}
	return true, fn(rd)
}

// diskEntry is what path resolution needs of a file.
type diskEntry struct {
	mode fs.FileMode
	link string
}

// diskPaths indexes every path of the disk ("" is the root).
func diskPaths(rd *ext4.Reader) (map[string]diskEntry, error) {
	ents := map[string]diskEntry{}
	err := rd.Walk(func(e *ext4.Entry) error {
		ents[e.Path] = diskEntry{mode: e.Mode, link: e.Link}
		return nil
	})
	return ents, err
}

// resolveOnDisk resolves the cleaned absolute container path p the way
// openat2(RESOLVE_IN_ROOT) does: absolute symlink targets start at the
// container's root and ".." never climbs above it. It returns the
// resolved path ("" for the root).
func resolveOnDisk(p string, ents map[string]diskEntry) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", errf(ErrInvalid, "path %q contains a NUL byte", p)
	}
	pending := strings.Split(p, "/")
	cur, links := "", 0
	for len(pending) > 0 {
		comp := pending[0]
		pending = pending[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			if cur = path.Dir(cur); cur == "." || cur == "/" {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, comp)
		e, ok := ents[next]
		if !ok {
			return "", errf(ErrNotFound, "no such file or directory in the container: %s", p)
		}
		if e.mode&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", errf(ErrInvalid, "%s: too many levels of symbolic links", p)
			}
			if strings.HasPrefix(e.link, "/") {
				cur = ""
			}
			pending = append(strings.Split(e.link, "/"), pending...)
			continue
		}
		if !e.mode.IsDir() && slicesHasName(pending) {
			return "", errf(ErrNotFound, "no such file or directory in the container: %s (%s is not a directory)", p, "/"+next)
		}
		cur = next
	}
	return cur, nil
}

// slicesHasName reports whether components still name something.
func slicesHasName(comps []string) bool {
	for _, c := range comps {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// diskHeader is the tar header the agent writes for e (tar.FileInfoHeader
// of the file), named name; ok is false for files tar cannot hold.
func diskHeader(e *ext4.Entry, name string) (h *tar.Header, ok bool) {
	h = &tar.Header{
		Name: name, Mode: int64(e.Mode.Perm()) | modeBitsOf(e.Mode),
		Uid: int(e.Uid), Gid: int(e.Gid),
		ModTime: e.Mtime, AccessTime: e.Atime, ChangeTime: e.Ctime,
	}
	switch t := e.Mode.Type(); {
	case e.Mode.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case e.Mode.IsRegular():
		h.Typeflag = tar.TypeReg
		h.Size = e.Size
	case t == fs.ModeSymlink:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.Link
	case t == fs.ModeDevice|fs.ModeCharDevice:
		h.Typeflag = tar.TypeChar
		h.Devmajor, h.Devminor = int64(e.Major), int64(e.Minor)
	case t == fs.ModeDevice:
		h.Typeflag = tar.TypeBlock
		h.Devmajor, h.Devminor = int64(e.Major), int64(e.Minor)
	case t == fs.ModeNamedPipe:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, false // sockets
	}
	return h, true
}

// modeBitsOf is setuid/setgid/sticky in tar's numeric form (fs.FileMode
// keeps them outside the permission bits).
func modeBitsOf(m fs.FileMode) int64 {
	var b int64
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// archiveName is the name of the copied path's own entry: its base name,
// "." for the root (as the agent names it).
func archiveName(p string) string {
	if p == "/" {
		return "."
	}
	return path.Base(p)
}

// walkResolved calls fn for the resolved path target and everything under
// it, in the agent's order, with the entry's name in the archive.
func walkResolved(rd *ext4.Reader, target, name string, fn func(e *ext4.Entry, name string) error) error {
	inside := false
	err := rd.Walk(func(e *ext4.Entry) error {
		var rel string
		switch {
		case e.Path == target:
		case target == "":
			rel = e.Path
		case strings.HasPrefix(e.Path, target+"/"):
			rel = e.Path[len(target)+1:]
		default:
			if inside {
				return errStopWalk // the subtree is contiguous in the walk
			}
			return nil
		}
		inside = true
		return fn(e, path.Join(name, rel))
	})
	if errors.Is(err, errStopWalk) {
		return nil
	}
	return err
}

// statOnDisk is StatPath for a stopped container.
func statOnDisk(rd *ext4.Reader, p string) (container.PathStat, error) {
	ents, err := diskPaths(rd)
	if err != nil {
		return container.PathStat{}, err
	}
	target, err := resolveOnDisk(p, ents)
	if err != nil {
		return container.PathStat{}, err
	}
	var st container.PathStat
	found := false
	err = walkResolved(rd, target, archiveName(p), func(e *ext4.Entry, name string) error {
		h, ok := diskHeader(e, name)
		if !ok {
			return errf(ErrInvalid, "%s is a socket: it cannot be copied", p)
		}
		// What the agent's tar stream says of it: seconds, since the
		// writer rounds ModTime when no format is asked for.
		st = container.PathStat{Name: path.Base(p), Size: h.Size, Mode: h.FileInfo().Mode(),
			Mtime: h.ModTime.Round(time.Second), LinkTarget: h.Linkname}
		found = true
		return errStopWalk
	})
	if err == nil && !found {
		err = errf(ErrNotFound, "no such file or directory in the container: %s", p)
	}
	return st, err
}

// copyOutOfDisk is CopyFrom for a stopped container.
func copyOutOfDisk(rd *ext4.Reader, p string, w io.Writer) error {
	ents, err := diskPaths(rd)
	if err != nil {
		return err
	}
	target, err := resolveOnDisk(p, ents)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	err = walkResolved(rd, target, archiveName(p), func(e *ext4.Entry, name string) error {
		h, ok := diskHeader(e, name)
		if !ok {
			return nil // sockets are skipped, as by the agent
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		r, err := rd.OpenFile(e)
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(tw, r, buf); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
