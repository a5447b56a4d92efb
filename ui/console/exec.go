package console

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/moby/moby/client"
)

// DefaultShell starts bash when the image has it and sh otherwise, in one
// exec (no extra round trip to probe the image).
var DefaultShell = []string{"/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; fi; exec /bin/sh"}

// ExecOptions says what to run in the container.
type ExecOptions struct {
	Cmd        []string // default DefaultShell
	User       string
	WorkingDir string
	Env        []string
}

// ExecConn is a Conn to a process started with the Docker engine API's exec
// endpoints (`exec -it`) on Berth's engine socket.
type ExecConn struct {
	cli    *client.Client
	id     string
	hj     client.HijackedResponse
	once   sync.Once
	closed chan struct{}
}

// DialExec creates and attaches an interactive exec with a TTY of
// cols×rows in container (name or ID).
func DialExec(ctx context.Context, cli *client.Client, container string, opts ExecOptions, cols, rows int) (*ExecConn, error) {
	cmd := opts.Cmd
	if len(cmd) == 0 {
		cmd = DefaultShell
	}
	size := client.ConsoleSize{Height: uint(rows), Width: uint(cols)}
	env := append([]string{"TERM=xterm-256color"}, opts.Env...)
	created, err := cli.ExecCreate(ctx, container, client.ExecCreateOptions{
		User: opts.User, TTY: true, ConsoleSize: size, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Env: env, WorkingDir: opts.WorkingDir, Cmd: cmd,
	})
	if err != nil {
		return nil, fmt.Errorf("open a shell in %s: %w", container, err)
	}
	att, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: size})
	if err != nil {
		return nil, fmt.Errorf("attach to the shell in %s: %w", container, err)
	}
	return &ExecConn{cli: cli, id: created.ID, hj: att.HijackedResponse, closed: make(chan struct{})}, nil
}

// With a TTY the attach stream is raw (not multiplexed), so reads pass
// straight through.
func (c *ExecConn) Read(p []byte) (int, error) { return c.hj.Reader.Read(p) }

func (c *ExecConn) Write(p []byte) (int, error) { return c.hj.Conn.Write(p) }

func (c *ExecConn) Resize(cols, rows int) error {
	_, err := c.cli.ExecResize(context.Background(), c.id, client.ExecResizeOptions{Height: uint(rows), Width: uint(cols)})
	return err
}

// Close closes the attach connection: the shell sees its input end (and the
// engine hangs up its terminal).
func (c *ExecConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	c.hj.Close()
	return nil
}

// ExitCode asks the engine for the exec's exit status.
func (c *ExecConn) ExitCode() (int, error) {
	r, err := c.cli.ExecInspect(context.Background(), c.id, client.ExecInspectOptions{})
	if err != nil {
		return -1, err
	}
	if r.Running {
		return -1, fmt.Errorf("exec %s still running", c.id)
	}
	return r.ExitCode, nil
}

var _ Conn = (*ExecConn)(nil)
var _ io.Reader = (*LocalPTY)(nil)

// EngineDialer returns a Dialer that opens `exec -it` sessions through cli
// (the app's client of its own engine socket), for NewRegistry.
func EngineDialer(cli *client.Client, opts ExecOptions) Dialer {
	return func(ctx context.Context, container string, cols, rows int) (Conn, error) {
		return DialExec(ctx, cli, container, opts, cols, rows)
	}
}
