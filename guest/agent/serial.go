//go:build linux

package agent

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FindSerialPort returns the /dev node of the virtio-serial port with the
// given name. There is no udev in the initramfs, so /dev/virtio-ports/NAME
// does not exist; sysfs has the names.
func FindSerialPort(name string) (string, bool) {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(p)), true
		}
	}
	return "", false
}

// SerialListener makes a virtio-serial port look like a listener with one
// connection at a time: Accept opens the port once the host side is
// connected, and after that connection ends (the host went away) it waits
// for the host to come back and hands out a fresh one.
type SerialListener struct {
	path   string
	mu     sync.Mutex
	cur    *serialConn
	closed chan struct{}
	once   sync.Once
}

func NewSerialListener(path string) *SerialListener {
	return &SerialListener{path: path, closed: make(chan struct{})}
}

func (l *SerialListener) Accept() (net.Conn, error) {
	// Wait for the previous connection to end: the port is one byte pipe.
	l.mu.Lock()
	cur := l.cur
	l.mu.Unlock()
	if cur != nil {
		select {
		case <-cur.done:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	for {
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		// EBUSY right after the previous connection closed (the port allows
		// one opener and the close completes asynchronously): retry.
		f, err := os.OpenFile(l.path, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		// POLLHUP while the host side is not connected.
		hup := true
		if f != nil {
			fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
			unix.Poll(fds, 0)
			hup = fds[0].Revents&unix.POLLHUP != 0
		}
		if !hup {
			c := &serialConn{File: f, done: make(chan struct{})}
			l.mu.Lock()
			l.cur = c
			l.mu.Unlock()
			return c, nil
		}
		if f != nil {
			f.Close()
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

func (l *SerialListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *SerialListener) Addr() net.Addr { return serialAddr(l.path) }

type serialAddr string

func (a serialAddr) Network() string { return "virtio-serial" }
func (a serialAddr) String() string  { return string(a) }

// serialConn is the port as a net.Conn. A read of 0 bytes means the host
// disconnected (virtio_console returns EOF then).
type serialConn struct {
	*os.File
	done chan struct{}
	once sync.Once
}

func (c *serialConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.File.Close()
		close(c.done)
	})
	return err
}

func (c *serialConn) LocalAddr() net.Addr  { return serialAddr(c.Name()) }
func (c *serialConn) RemoteAddr() net.Addr { return serialAddr("host") }

func (c *serialConn) SetDeadline(t time.Time) error {
	if err := c.File.SetDeadline(t); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return err
	}
	return nil
}

func (c *serialConn) SetReadDeadline(t time.Time) error {
	if err := c.File.SetReadDeadline(t); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return err
	}
	return nil
}

func (c *serialConn) SetWriteDeadline(t time.Time) error {
	if err := c.File.SetWriteDeadline(t); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return err
	}
	return nil
}
