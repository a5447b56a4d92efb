//go:build linux

package agent

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths that come from the host or from an image are resolved with
// openat2(RESOLVE_IN_ROOT): "..", absolute symlinks and the like all stay
// inside the container root, so nothing is read or written outside it.

// cleanInRoot makes p a clean, root-relative path and rejects ".." segments
// outright (a caller asking to climb out is a bug or an attack).
func cleanInRoot(p string) (string, error) {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("path %q climbs out with \"..\": use a path inside the container", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		c = "."
	}
	return c, nil
}

// openInRoot opens p (root-relative) under the directory root.
func openInRoot(root, p string, flags int, mode uint32) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	return openAt(rfd, p, flags, mode)
}

func openAt(dirfd int, p string, flags int, mode uint32) (*os.File, error) {
	fd, err := unix.Openat2(dirfd, p, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/" + p, Err: err}
	}
	return os.NewFile(uintptr(fd), "/"+p), nil
}

// mkdirAllInRoot creates p and its parents under root and returns an
// O_PATH handle to it.
func mkdirAllInRoot(root, p string, perm uint32) (*os.File, error) {
	p, err := cleanInRoot(p)
	if err != nil {
		return nil, err
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	if p == "." {
		return openAt(rfd, ".", unix.O_PATH|unix.O_DIRECTORY, 0)
	}
	segs := strings.Split(p, "/")
	for i := range segs {
		prefix := strings.Join(segs[:i+1], "/")
		f, err := openAt(rfd, prefix, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			if i == len(segs)-1 {
				return f, nil
			}
			f.Close()
			continue
		}
		parent, perr := openAt(rfd, path.Dir(prefix), unix.O_PATH|unix.O_DIRECTORY, 0)
		if perr != nil {
			return nil, perr
		}
		err = unix.Mkdirat(int(parent.Fd()), segs[i], perm)
		parent.Close()
		if err != nil && err != unix.EEXIST {
			return nil, &os.PathError{Op: "mkdir", Path: "/" + prefix, Err: err}
		}
		if i == len(segs)-1 {
			return openAt(rfd, prefix, unix.O_PATH|unix.O_DIRECTORY, 0)
		}
	}
	return nil, fmt.Errorf("mkdir %s: unreachable", p)
}

// fileInRoot creates p (and its parent directories) under root as an empty
// file unless something is there already, and returns an O_PATH handle to
// it: the mount point of a single-file bind.
func fileInRoot(root, p string) (*os.File, error) {
	p, err := cleanInRoot(p)
	if err != nil {
		return nil, err
	}
	if p == "." {
		return nil, fmt.Errorf("a file cannot be mounted on the container's root")
	}
	dir, err := mkdirAllInRoot(root, path.Dir(p), 0o755)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), path.Base(p), unix.O_CREAT|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil && err != unix.ELOOP {
		return nil, &os.PathError{Op: "create", Path: "/" + p, Err: err}
	}
	if err == nil {
		unix.Close(fd)
	}
	return openInRoot(root, p, unix.O_PATH, 0)
}

// fdPath names an open file for syscalls that take paths (mount targets).
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
