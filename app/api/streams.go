package api

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"golang.org/x/sys/unix"
)

// Content types of attach/logs/exec streams (API >= 1.42 names them).
const (
	rawStream         = "application/vnd.docker.raw-stream"
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// muxWriter frames writes for one stream of a multiplexed body: an 8-byte
// header (stream id, 3 zero bytes, big-endian length) before each chunk,
// the format stdcopy.StdCopy reads on the client side. The shared lock keeps
// stdout and stderr frames from interleaving mid-frame.
type muxWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream stdcopy.StdType
	flush  func()
}

func (m *muxWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var hdr [8]byte
	hdr[0] = byte(m.stream)
	written := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > 1<<20 {
			chunk = chunk[:1<<20]
		}
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(chunk)))
		if _, err := m.w.Write(hdr[:]); err != nil {
			return written, err
		}
		n, err := m.w.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[len(chunk):]
	}
	if m.flush != nil {
		m.flush()
	}
	return written, nil
}

// outputs returns the stdout/stderr writers for a stream body: raw (tty: one
// stream, no framing) or multiplexed.
func outputs(w io.Writer, tty bool, flush func()) (stdout, stderr io.Writer) {
	if tty {
		fw := &flushWriter{w: w, flush: flush}
		return fw, fw
	}
	mu := &sync.Mutex{}
	return &muxWriter{mu: mu, w: w, stream: stdcopy.Stdout, flush: flush},
		&muxWriter{mu: mu, w: w, stream: stdcopy.Stderr, flush: flush}
}

type flushWriter struct {
	mu    sync.Mutex
	w     io.Writer
	flush func()
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.w.Write(p)
	if err == nil && f.flush != nil {
		f.flush()
	}
	return n, err
}

// hijacked is a connection taken over from net/http for attach and exec:
// after the 101 (or 200) response the client's stdin comes in on it and the
// process output goes out.
type hijacked struct {
	conn net.Conn
	in   io.Reader // buffered bytes the HTTP server already read, then conn

	// gone is closed when the client is known to have disconnected.
	gone     chan struct{}
	goneOnce sync.Once
	// done is closed when the session ends (close).
	done      chan struct{}
	closeOnce sync.Once
}

// hijack answers the upgrade request and returns the raw connection.
func hijack(w http.ResponseWriter, r *http.Request, contentType string) (*hijacked, error) {
	rc := http.NewResponseController(w)
	conn, brw, err := rc.Hijack()
	if err != nil {
		return nil, err
	}
	// Clear any deadline the server set for reading the request.
	_ = conn.SetDeadline(timeZero)
	upgrade := r.Header.Get("Upgrade") != ""
	var status string
	if upgrade {
		status = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + contentType + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
	} else {
		status = "HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\n"
	}
	hdr := status + "Api-Version: " + MaxVersion + "\r\n\r\n"
	if _, err := conn.Write([]byte(hdr)); err != nil {
		conn.Close()
		return nil, err
	}
	var in io.Reader = conn
	if brw != nil && brw.Reader.Buffered() > 0 {
		in = io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)
	}
	return &hijacked{conn: conn, in: in, gone: make(chan struct{}), done: make(chan struct{})}, nil
}

// Write sends output to the client; a failed write marks the client gone.
func (h *hijacked) Write(p []byte) (int, error) {
	n, err := h.conn.Write(p)
	if err != nil {
		h.markGone()
	}
	return n, err
}

func (h *hijacked) markGone() { h.goneOnce.Do(func() { close(h.gone) }) }

// Read reads the client's stdin.
func (h *hijacked) Read(p []byte) (int, error) { return h.in.Read(p) }

// closeWrite tells the client the output is complete while still letting it
// finish sending (docker's half-close protocol), then closes.
func (h *hijacked) close() {
	h.closeOnce.Do(func() { close(h.done) })
	if cw, ok := h.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	h.conn.Close()
}

// watchDisconnect reads (and discards) from the client when it sends no
// stdin, so a client that hangs up is noticed: then cancel is called.
//
// EOF alone does not mean the client left: docker half-closes its side
// at once when it has no stdin to send and keeps reading the output. After
// EOF, the socket is polled for a full hang-up instead.
func (h *hijacked) watchDisconnect(cancel context.CancelFunc) {
	go func() {
		_, err := io.Copy(io.Discard, h.in)
		if err != nil {
			h.markGone()
			cancel()
			return
		}
		h.pollHangup(cancel)
	}()
}

// pollHangup checks once a second whether the peer has closed both
// directions (POLLHUP); the check stops when the session ends.
func (h *hijacked) pollHangup(cancel context.CancelFunc) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-h.gone:
			cancel()
			return
		case <-t.C:
			if peerHungUp(h.conn) {
				h.markGone()
				cancel()
				return
			}
		}
	}
}

// peerHungUp reports whether the connection's peer is gone entirely (not
// merely done sending).
func peerHungUp(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	hup := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			hup = fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return hup
}

// stdinReader passes the client's stdin through until it reaches EOF (the
// client half-closed: stdin is done, output may still flow; from then on
// a full hang-up is watched for) or fails (the client is gone: cancel).
type stdinReader struct {
	h       *hijacked
	cancel  context.CancelFunc
	eofOnce sync.Once
}

func (s *stdinReader) Read(p []byte) (int, error) {
	n, err := s.h.Read(p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			s.eofOnce.Do(func() { go s.h.pollHangup(s.cancel) })
		} else {
			s.h.markGone()
			s.cancel()
		}
	}
	return n, err
}

// timeZero clears a deadline.
var timeZero time.Time
