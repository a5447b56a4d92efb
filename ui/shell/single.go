package shell

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Instance makes the app single-instance: the first launch holds a lock in
// the data root and listens on a small socket; a second launch finds the
// lock taken, asks the first to come forward, and exits.
type Instance struct {
	lock *os.File
	ln   net.Listener
}

// ErrAlreadyRunning is returned by Acquire when another instance runs (it
// has been asked to show itself).
var ErrAlreadyRunning = errors.New("Berth is already running")

// Acquire takes the single-instance lock in dir. When another instance holds
// it, Acquire sends it "focus" and returns ErrAlreadyRunning. onFocus is
// called (from a goroutine) whenever a later launch asks this one to show.
func Acquire(dir string, onFocus func()) (*Instance, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "app.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if ferr := askFocus(dir); ferr != nil {
				return nil, fmt.Errorf("%w (and it did not answer: %v)", ErrAlreadyRunning, ferr)
			}
			return nil, ErrAlreadyRunning
		}
		return nil, fmt.Errorf("single-instance lock: %w", err)
	}
	// We hold the lock, so any socket file left is stale.
	sock := filepath.Join(dir, "app.sock")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("single-instance socket: %w", err)
	}
	os.Chmod(sock, 0o600)
	in := &Instance{lock: f, ln: ln}
	go in.serve(onFocus)
	return in, nil
}

func (in *Instance) serve(onFocus func()) {
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.TrimSpace(line) == "focus" && onFocus != nil {
			onFocus()
		}
		c.Write([]byte("ok\n"))
		c.Close()
	}
}

func askFocus(dir string) error {
	c, err := net.DialTimeout("unix", filepath.Join(dir, "app.sock"), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("focus\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// Release gives up the lock (at quit).
func (in *Instance) Release() {
	if in == nil {
		return
	}
	in.ln.Close()
	unix.Flock(int(in.lock.Fd()), unix.LOCK_UN)
	in.lock.Close()
}
