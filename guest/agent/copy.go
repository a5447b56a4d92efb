//go:build linux

package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

func (a *Agent) containerRoot() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.container == nil {
		return "", status.Error(codes.FailedPrecondition, "no container in this VM yet: call CreateContainer first")
	}
	return a.container.root, nil
}

// frameReader turns the CopyIn stream into an io.Reader of tar bytes.
type frameReader struct {
	stream api.Agent_CopyInServer
	buf    []byte
}

func (r *frameReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		f, err := r.stream.Recv()
		if err != nil {
			return 0, err
		}
		r.buf = f.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// CopyIn extracts a tar into a directory of the container. Every entry is
// created relative to the container root with RESOLVE_IN_ROOT, and names
// with ".." are refused, so nothing lands outside the container.
func (a *Agent) CopyIn(stream api.Agent_CopyInServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	root, err := a.containerRoot()
	if err != nil {
		return err
	}
	dest, err := cleanInRoot(first.Path)
	if err != nil {
		return status.Error(codes.InvalidArgument, "copy in: "+err.Error())
	}
	if d, err := openInRoot(root, dest, unix.O_PATH|unix.O_DIRECTORY, 0); err != nil {
		return status.Errorf(codes.NotFound, "copy in: destination directory %s: %v", first.Path, unwrapPathErr(err))
	} else {
		d.Close()
	}
	tr := tar.NewReader(&frameReader{stream: stream, buf: first.Data})
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// Drain whatever trails the archive so the client's CloseAndRecv completes.
			io.Copy(io.Discard, &frameReader{stream: stream})
			// A client-streaming RPC must answer, or the client sees
			// "cardinality violation".
			return stream.SendAndClose(&api.Empty{})
		}
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "copy in: reading the tar stream: %v", err)
		}
		if err := extractEntry(root, dest, h, tr); err != nil {
			return status.Errorf(codes.InvalidArgument, "copy in: %s: %v", h.Name, err)
		}
	}
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func extractEntry(root, dest string, h *tar.Header, r io.Reader) error {
	name, err := cleanInRoot(h.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	full := path.Join(dest, name)
	parent, err := mkdirAllInRoot(root, path.Dir(full), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	base := path.Base(full)
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, mode); err != nil && err != unix.EEXIST {
			return err
		}
	case tar.TypeReg:
		unix.Unlinkat(pfd, base, 0)
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), base)
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		unix.Unlinkat(pfd, base, 0)
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := cleanInRoot(path.Join(dest, h.Linkname))
		if err != nil {
			return err
		}
		tf, err := openInRoot(root, target, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("hard link target %s: %w", h.Linkname, err)
		}
		defer tf.Close()
		unix.Unlinkat(pfd, base, 0)
		if err := unix.Linkat(int(tf.Fd()), "", pfd, base, unix.AT_EMPTY_PATH); err != nil {
			return err
		}
		return nil
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|mode, 0); err != nil {
			return err
		}
	default:
		return nil // devices and others are not copied into containers
	}
	unix.Fchownat(pfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW)
	if h.Typeflag != tar.TypeSymlink {
		unix.Fchmodat(pfd, base, mode, 0)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

// chunkWriter sends tar bytes as Chunk messages.
type chunkWriter struct{ stream api.Agent_CopyOutServer }

func (w chunkWriter) Write(p []byte) (int, error) {
	if err := w.stream.Send(&api.Chunk{Data: append([]byte(nil), p...)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CopyOut streams a tar of one path of the container; the path is resolved
// inside the root, and the walk never follows symlinks.
func (a *Agent) CopyOut(req *api.CopyOutRequest, stream api.Agent_CopyOutServer) error {
	root, err := a.containerRoot()
	if err != nil {
		return err
	}
	rel, err := cleanInRoot(req.Path)
	if err != nil {
		return status.Error(codes.InvalidArgument, "copy out: "+err.Error())
	}
	f, err := openInRoot(root, rel, unix.O_PATH, 0)
	if err != nil {
		return status.Errorf(codes.NotFound, "copy out: %s: %v", req.Path, unwrapPathErr(err))
	}
	defer f.Close()
	// Walk the real path of what was resolved inside the root (walking the
	// /proc/self/fd magic link would stop at the link itself).
	base, err := os.Readlink(fdPath(f))
	if err != nil || (base != root && !strings.HasPrefix(base, root+"/")) {
		return status.Errorf(codes.Internal, "copy out: %s resolved outside the container root", req.Path)
	}
	name := path.Base("/" + rel)
	if rel == "." {
		name = "."
	}
	bw := newBufferedChunks(stream)
	tw := tar.NewWriter(bw)
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return nil // sockets and the like are skipped
		}
		relName := strings.TrimPrefix(strings.TrimPrefix(p, base), "/")
		h.Name = path.Join(name, relName)
		if info.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			rf, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, rf)
			rf.Close()
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return status.Errorf(codes.Aborted, "copy out %s: %v", req.Path, err)
	}
	return nil
}

type bufferedChunks struct {
	w   chunkWriter
	buf []byte
}

func newBufferedChunks(s api.Agent_CopyOutServer) *bufferedChunks {
	return &bufferedChunks{w: chunkWriter{s}, buf: make([]byte, 0, 64<<10)}
}

func (b *bufferedChunks) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(b.buf[len(b.buf):cap(b.buf)], p)
		b.buf = b.buf[:len(b.buf)+k]
		p = p[k:]
		if len(b.buf) == cap(b.buf) {
			if err := b.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (b *bufferedChunks) Flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
