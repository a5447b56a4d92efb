// Package console runs interactive terminal sessions into containers and
// keeps them alive independently of any window: a Session owns the process
// connection and a terminal model (ui/term), a window only attaches to it.
// It also builds the commands that hand a session off to the user's own
// terminal application.
package console

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/creack/pty"
)

// Conn is a running process with a terminal: its output (Read), its input
// (Write), its window size, and its end. Close ends the process (or detaches
// from it when the far side cannot be killed); Read then returns an error.
type Conn interface {
	io.Reader
	io.Writer
	Resize(cols, rows int) error
	Close() error
}

// ExitCoder is implemented by connections that learn the process's exit
// status once Read has returned io.EOF.
type ExitCoder interface {
	ExitCode() (int, error)
}

// LocalPTY is a Conn to a local process under a pseudo-terminal. Berth uses
// it for host shells and tests; container sessions use ExecConn.
type LocalPTY struct {
	f    *os.File
	cmd  *exec.Cmd
	done chan struct{}
	code int
	err  error
}

// StartLocal starts argv under a new pseudo-terminal of cols×rows.
func StartLocal(argv []string, env []string, cols, rows int) (*LocalPTY, error) {
	if len(argv) == 0 {
		return nil, errors.New("console: no command to run")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		return nil, err
	}
	c := &LocalPTY{f: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			c.code = 128 + int(ws.Signal())
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			c.err = err
		}
		close(c.done)
	}()
	return c, nil
}

func (c *LocalPTY) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err != nil && n == 0 {
		// Linux reports EIO on the master once the child side is gone.
		<-c.done
		return 0, io.EOF
	}
	return n, nil
}

func (c *LocalPTY) Write(p []byte) (int, error) { return c.f.Write(p) }

func (c *LocalPTY) Resize(cols, rows int) error {
	return pty.Setsize(c.f, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
}

// Close hangs up the terminal (the shell gets SIGHUP, as when a terminal
// window closes) and waits for the process.
func (c *LocalPTY) Close() error {
	select {
	case <-c.done:
	default:
		c.cmd.Process.Signal(syscall.SIGHUP)
	}
	err := c.f.Close()
	<-c.done
	return err
}

// ExitCode returns the exit status (128+signal if killed).
func (c *LocalPTY) ExitCode() (int, error) {
	<-c.done
	return c.code, c.err
}
