package container

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// execProc is one `exec` (created, then started once).
type execProc struct {
	id    string
	ctrID string
	req   container.ExecCreateRequest

	mu       sync.Mutex
	started  bool
	running  bool
	exitCode *int
	proc     Process
	pid      int
}

func (m *Manager) execCreate(ctx context.Context, ref string, req container.ExecCreateRequest) (string, error) {
	c, _, err := m.running(ref)
	if err != nil {
		return "", err
	}
	if len(req.Cmd) == 0 {
		return "", errf(ErrInvalid, "exec needs a command")
	}
	if req.Privileged {
		return "", errf(ErrNotImplemented, "exec --privileged is not supported")
	}
	e := &execProc{id: newID(), ctrID: c.rec.ID, req: req}
	m.mu.Lock()
	m.execs[e.id] = e
	m.mu.Unlock()
	m.emit(events.ActionExecCreate, c, map[string]string{"execID": e.id})
	return e.id, nil
}

func (m *Manager) getExec(id string) (*execProc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.execs[id]; ok {
		return e, nil
	}
	return nil, errf(ErrNotFound, "no such exec instance: %s", id)
}

func (m *Manager) execStart(ctx context.Context, id string, o ExecStartOptions) error {
	e, err := m.getExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errf(ErrConflict, "exec %s has already been started", id)
	}
	e.started = true
	e.mu.Unlock()
	c, rn, err := m.running(e.ctrID)
	if err != nil {
		return err
	}
	m.mu.Lock()
	cfg := c.rec.Config
	m.mu.Unlock()
	req := e.req
	spec := ProcessSpec{
		Args: req.Cmd, Env: mergeEnv(cfg.Env, req.Env), Cwd: req.WorkingDir, User: req.User, Tty: req.Tty,
	}
	if spec.Cwd == "" {
		spec.Cwd = cfg.WorkingDir
	}
	if spec.User == "" {
		spec.User = cfg.User
	}
	size := o.ConsoleSize
	if size == nil {
		size = req.ConsoleSize
	}
	if size != nil {
		spec.Rows, spec.Cols = size[0], size[1]
	}
	if req.AttachStdin && o.Stdin != nil && !o.Detach {
		spec.Stdin = o.Stdin
	}
	if (req.AttachStdout || req.Tty) && !o.Detach {
		spec.Stdout = o.Stdout
	}
	if req.AttachStderr && !req.Tty && !o.Detach {
		spec.Stderr = o.Stderr
	}
	proc, err := rn.guest.Start(ctx, spec, true)
	if err != nil {
		code := 127
		e.mu.Lock()
		e.exitCode = &code
		e.mu.Unlock()
		return errf(ErrInvalid, "exec %s: %v", req.Cmd[0], err)
	}
	e.mu.Lock()
	e.proc, e.running, e.pid = proc, true, proc.Pid()
	e.mu.Unlock()
	m.emit(events.ActionExecStart, c, map[string]string{"execID": e.id})
	finish := func() error {
		code, err := proc.Wait(context.Background())
		if err != nil {
			code = 255
		}
		e.mu.Lock()
		e.running, e.exitCode = false, &code
		e.mu.Unlock()
		m.emit(events.ActionExecDie, c, map[string]string{"execID": e.id, "exitCode": fmt.Sprint(code)})
		return err
	}
	if o.Detach {
		go finish()
		return nil
	}
	return finish()
}

func (m *Manager) execResize(ctx context.Context, id string, h, w uint) error {
	e, err := m.getExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	p, tty := e.proc, e.req.Tty
	e.mu.Unlock()
	if p == nil {
		return errf(ErrConflict, "exec %s is not running", id)
	}
	if !tty {
		return nil
	}
	return p.Resize(ctx, h, w)
}

func (m *Manager) execInspect(ctx context.Context, id string) (container.ExecInspectResponse, error) {
	e, err := m.getExec(id)
	if err != nil {
		return container.ExecInspectResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	pc := &container.ExecProcessConfig{Tty: e.req.Tty, Entrypoint: e.req.Cmd[0], Arguments: e.req.Cmd[1:], User: e.req.User}
	return container.ExecInspectResponse{
		ID: e.id, Running: e.running, ExitCode: e.exitCode, ProcessConfig: pc,
		OpenStdin: e.req.AttachStdin, OpenStdout: e.req.AttachStdout, OpenStderr: e.req.AttachStderr,
		ContainerID: e.ctrID, Pid: e.pid, DetachKeys: []byte(e.req.DetachKeys),
	}, nil
}

// execOutput runs args in the container and returns its combined output.
func (m *Manager) execOutput(ctx context.Context, ref string, args []string) (string, int, error) {
	_, rn, err := m.running(ref)
	if err != nil {
		return "", 0, err
	}
	var out bytes.Buffer
	proc, err := rn.guest.Start(ctx, ProcessSpec{Args: args, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cwd: "/", Stdout: &out, Stderr: &out}, true)
	if err != nil {
		return "", 0, fmt.Errorf("run %s in the container: %w", args[0], err)
	}
	code, err := proc.Wait(ctx)
	return out.String(), code, err
}
