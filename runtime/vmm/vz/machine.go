package vz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/runtime/vmm"
)

// vmState mirrors vz v3.7.1's VirtualMachineState numbering; the darwin file
// asserts at compile time (and so under darwincheck) that the two agree.
type vmState int

const (
	stateStopped vmState = iota
	stateRunning
	statePaused
	stateError
	stateStarting
	statePausing
	stateResuming
	stateStopping
	stateSaving
	stateRestoring
)

func (s vmState) String() string {
	names := [...]string{"stopped", "running", "paused", "error", "starting", "pausing", "resuming", "stopping", "saving", "restoring"}
	if s >= 0 && int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// hypervisor is the little of a *vz.VirtualMachine that machine needs. The
// darwin file implements it; tests use a fake.
type hypervisor interface {
	// connect opens a host→guest vsock connection.
	connect(port uint32) (net.Conn, error)
	// retryable reports whether a connect error means "nobody listens yet"
	// (ECONNRESET from Virtualization.framework) rather than a real failure.
	retryable(err error) bool
	canStop() bool
	stop() error // hard stop: the guest gets no say
	requestStop() (bool, error)
	canPause() bool
	pause() error
	canResume() bool
	resume() error
}

// machine implements vmm.Machine over a hypervisor.
type machine struct {
	hv         hypervisor
	consoleLog string
	// keep holds every object vz must not lose to the garbage collector
	// while the VM runs: v3.7.1 releases the ObjC VM in a finalizer and
	// hands raw file descriptors to the framework without dup'ing them.
	keep []any

	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	err     error
	stopped bool // Kill or RequestStop was called: a stop is expected
	last    vmState
}

// newMachine starts the one goroutine that reads the VM's state
// notifications (several readers would steal each other's events).
func newMachine(hv hypervisor, states <-chan vmState, consoleLog string, keep ...any) *machine {
	m := &machine{hv: hv, consoleLog: consoleLog, keep: keep, done: make(chan struct{}), last: stateStarting}
	go m.watch(states)
	return m
}

func (m *machine) watch(states <-chan vmState) {
	// The goroutine references m, so m.keep — the VM and its files — stays
	// reachable for as long as the VM can still change state.
	defer runtime.KeepAlive(m.keep)
	for s := range states {
		m.mu.Lock()
		m.last = s
		m.mu.Unlock()
		switch s {
		case stateStopped:
			m.finish(nil)
			return
		case stateError:
			m.finish(fmt.Errorf("vz: the VM stopped with an error%s", tailNote(m.consoleLog)))
			return
		}
	}
	m.finish(errors.New("vz: the VM's state notifications ended unexpectedly"))
}

func (m *machine) finish(err error) {
	m.once.Do(func() {
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(m.done)
	})
}

func (m *machine) Done() <-chan struct{} { return m.done }

func (m *machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *machine) PID() int { return 0 }

// State is the last state the framework reported (for diagnostics).
func (m *machine) State() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last.String()
}

// Kill stops the VM at once. It returns once the framework has stopped it;
// Done closes when the state notification arrives.
func (m *machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	if m.hv.canStop() {
		if err := m.hv.stop(); err != nil {
			return fmt.Errorf("vz: stop: %w", err)
		}
		return nil
	}
	// macOS 11 has no hard stop: ask the guest (the agent powers off on the
	// power key) and let the caller wait on Done.
	if _, err := m.hv.requestStop(); err != nil {
		return fmt.Errorf("vz: request stop: %w", err)
	}
	return nil
}

// Pause freezes the VM (docker pause).
func (m *machine) Pause() error {
	if err := m.running("pause"); err != nil {
		return err
	}
	if !m.hv.canPause() {
		return fmt.Errorf("vz: the VM cannot be paused in its state (%s)", m.State())
	}
	if err := m.hv.pause(); err != nil {
		return fmt.Errorf("vz: pause: %w", err)
	}
	return nil
}

// Resume continues a paused VM.
func (m *machine) Resume() error {
	if err := m.running("resume"); err != nil {
		return err
	}
	if !m.hv.canResume() {
		return fmt.Errorf("vz: the VM cannot be resumed in its state (%s)", m.State())
	}
	if err := m.hv.resume(); err != nil {
		return fmt.Errorf("vz: resume: %w", err)
	}
	return nil
}

func (m *machine) running(what string) error {
	select {
	case <-m.done:
		return fmt.Errorf("vz: %s: the VM has stopped", what)
	default:
		return nil
	}
}

// Shutdown asks the guest to power off (the virtual power button) and waits
// for it until ctx ends, then stops the VM hard. Graceful container stops go
// through the agent first; this is the fallback when the agent is gone.
func (m *machine) Shutdown(ctx context.Context) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	if ok, err := m.hv.requestStop(); err != nil || !ok {
		return m.Kill()
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return m.Kill()
	}
}

// DialAgent connects to the agent's vsock port, retrying while the guest is
// still booting (the framework answers ECONNRESET until something listens).
func (m *machine) DialAgent(ctx context.Context) (net.Conn, error) {
	return dialRetry(ctx, m.done, func() (net.Conn, bool, error) {
		c, err := m.hv.connect(vmm.AgentPort)
		if err != nil {
			return nil, m.hv.retryable(err), err
		}
		return c, false, nil
	}, agentBackoff, func() error {
		if err := m.Err(); err != nil {
			return err
		}
		return errors.New("vz: the VM powered off")
	}, m.consoleLog)
}

// agentBackoff is the wait before attempt n+1: short at first (a small guest
// is up in well under a second), doubling to a ceiling so a slow boot costs
// at most 250 ms of extra latency.
func agentBackoff(attempt int) time.Duration {
	d := 10 * time.Millisecond
	for i := 0; i < attempt && d < 250*time.Millisecond; i++ {
		d *= 2
	}
	if d > 250*time.Millisecond {
		d = 250 * time.Millisecond
	}
	return d
}

// dialRetry runs try until it succeeds, fails for good, the VM stops (done)
// or ctx ends. Errors name the port and end with the console log's last lines,
// which is where a kernel that cannot boot says why.
func dialRetry(ctx context.Context, done <-chan struct{}, try func() (net.Conn, bool, error),
	backoff func(int) time.Duration, stopErr func() error, consoleLog string) (net.Conn, error) {
	var last error
	for attempt := 0; ; attempt++ {
		select {
		case <-done:
			return nil, fmt.Errorf("vz: the VM stopped before its agent answered on vsock port %d: %v%s", vmm.AgentPort, stopErr(), tailNote(consoleLog))
		default:
		}
		c, retry, err := try()
		if err == nil {
			return c, nil
		}
		if !retry {
			return nil, fmt.Errorf("vz: connecting to the agent on vsock port %d: %w", vmm.AgentPort, err)
		}
		last = err
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("vz: the agent did not answer on vsock port %d (%v; last error: %v)%s", vmm.AgentPort, ctx.Err(), last, tailNote(consoleLog))
		case <-done:
			t.Stop()
		case <-t.C:
		}
	}
}

// tailNote formats the console log's last lines for an error message, or ""
// when there is nothing to show.
func tailNote(path string) string {
	lines := vmm.ConsoleTail(path, 0, 8)
	if len(lines) == 0 {
		return ""
	}
	return "; last console lines:\n  " + strings.Join(lines, "\n  ")
}
