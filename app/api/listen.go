package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ListenUnix opens the engine's unix socket at path so that no client ever
// sees it with a mode wider than 0600: the socket is bound under a temporary
// name, chmod'ed, and only then renamed into place (rename is atomic, and the
// data root itself is 0700).
//
// A socket that answers belongs to another running engine: ListenUnix refuses
// rather than stealing it. A socket nobody answers on is a leftover of an
// engine that died and is removed. A non-socket file at path is never touched.
func ListenUnix(path string) (net.Listener, error) {
	if err := checkSocketFree(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The listener would unlink the temporary name on Close; the socket lives
	// under the final name, which unixListener.Close removes itself.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("chmod engine socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("publish engine socket %s: %w", path, err)
	}
	ul := &unixListener{UnixListener: l, path: path}
	if fi, err := os.Stat(path); err == nil {
		ul.id, _ = fi.Sys().(*syscall.Stat_t)
	}
	return ul, nil
}

// unixListener removes its socket file on Close, but only if the file is still
// the one it created (a second engine started after a crash may own it now).
type unixListener struct {
	*net.UnixListener
	path string
	id   *syscall.Stat_t
}

// Addr is the socket's published path (it was bound under a temporary name).
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	if fi, err := os.Lstat(l.path); err == nil && l.id != nil {
		if cur, ok := fi.Sys().(*syscall.Stat_t); ok && cur.Ino == l.id.Ino && cur.Dev == l.id.Dev {
			os.Remove(l.path)
		}
	}
	return l.UnixListener.Close()
}

// checkSocketFree returns nil when path does not exist or was a stale socket
// (which it removes).
func checkSocketFree(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("engine socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; move it away and start the engine again", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another Berth engine is already serving on %s (stop it first, or use another --data-root)", path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale engine socket %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("engine socket %s exists but cannot be checked: %w", path, err)
}

// ListenTCP listens on a tcp:// address. The Docker API gives whoever can
// reach it root-equivalent control of every container, so this is only ever
// done on an explicit request, and the caller warns.
func ListenTCP(hostURL string) (net.Listener, error) {
	addr, ok := strings.CutPrefix(hostURL, "tcp://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("--host %q: expected tcp://HOST:PORT", hostURL)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", hostURL, err)
	}
	return l, nil
}

// ListenHosts opens what `berth daemon --host` asks for, in Docker's
// syntax: unix:///path or tcp://host:port. With no hosts it opens only the
// data root's socket (defaultSocket). Every tcp:// listener is reported
// through warn first: whoever reaches it controls every container.
// On error, listeners opened so far are closed.
func ListenHosts(defaultSocket string, hosts []string, warn func(string)) ([]net.Listener, error) {
	if len(hosts) == 0 {
		hosts = []string{"unix://" + defaultSocket}
	}
	var out []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	for _, h := range hosts {
		switch {
		case strings.HasPrefix(h, "unix://"):
			p := strings.TrimPrefix(h, "unix://")
			if !filepath.IsAbs(p) {
				return fail(fmt.Errorf("--host %q: the socket path must be absolute", h))
			}
			l, err := ListenUnix(p)
			if err != nil {
				return fail(err)
			}
			out = append(out, l)
		case strings.HasPrefix(h, "tcp://"):
			if warn != nil {
				warn(fmt.Sprintf("WARNING: serving the Docker API on %s without TLS: anyone who can connect controls every container (and can read any file Berth can)", h))
			}
			l, err := ListenTCP(h)
			if err != nil {
				return fail(err)
			}
			out = append(out, l)
		default:
			return fail(fmt.Errorf("--host %q: use unix:///path or tcp://host:port", h))
		}
	}
	return out, nil
}
