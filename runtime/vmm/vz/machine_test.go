package vz

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errReset = errors.New("connection reset (fake ECONNRESET)")

// fakeHV plays Virtualization.framework: connect fails with errReset until
// `failures` attempts have been made, then hands out one end of a pipe.
type fakeHV struct {
	mu          sync.Mutex
	failures    int
	fatal       error
	attempts    int
	stops       int
	requests    int
	canHardStop bool
	states      chan vmState
	onRequest   func()
	paused      bool // plays the framework's pause state for canPause/canResume
}

func (f *fakeHV) connect(port uint32) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fatal != nil {
		return nil, f.fatal
	}
	if f.attempts <= f.failures {
		return nil, errReset
	}
	c, _ := net.Pipe()
	return c, nil
}
func (f *fakeHV) retryable(err error) bool { return errors.Is(err, errReset) }
func (f *fakeHV) canPause() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.paused
}
func (f *fakeHV) canResume() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused
}
func (f *fakeHV) pause() error {
	f.mu.Lock()
	f.paused = true
	f.mu.Unlock()
	f.states <- statePaused
	return nil
}
func (f *fakeHV) resume() error {
	f.mu.Lock()
	f.paused = false
	f.mu.Unlock()
	f.states <- stateRunning
	return nil
}
func (f *fakeHV) canStop() bool { return f.canHardStop }
func (f *fakeHV) stop() error {
	f.mu.Lock()
	f.stops++
	f.mu.Unlock()
	f.states <- stateStopping
	f.states <- stateStopped
	return nil
}
func (f *fakeHV) requestStop() (bool, error) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if f.onRequest != nil {
		f.onRequest()
	}
	return true, nil
}

func newFake(t *testing.T) (*fakeHV, *machine, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "console.log")
	f := &fakeHV{canHardStop: true, states: make(chan vmState, 16)}
	f.states <- stateStarting
	f.states <- stateRunning
	return f, newMachine(f, f.states, log), log
}

func waitDone(t *testing.T, m *machine) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
}

func TestDialAgentRetriesWhileGuestBoots(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	f.failures = 4
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.DialAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if f.attempts != 5 {
		t.Errorf("attempts = %d, want 5", f.attempts)
	}
}

func TestDialAgentStopsOnRealError(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	f.fatal = errors.New("no such device")
	_, err := m.DialAgent(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vsock port 1024") || !strings.Contains(err.Error(), "no such device") {
		t.Fatalf("got %v", err)
	}
	if f.attempts != 1 {
		t.Errorf("a non-retryable error was retried %d times", f.attempts)
	}
}

func TestDialAgentTimeoutShowsConsole(t *testing.T) {
	t.Parallel()
	f, m, log := newFake(t)
	f.failures = 1 << 30
	os.WriteFile(log, []byte("[    0.000000] Booting Linux\r\n[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := m.DialAgent(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "Kernel panic - not syncing") {
		t.Fatalf("got %v", err)
	}
}

func TestDialAgentGivesUpWhenVMStops(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	f.failures = 1 << 30
	go func() { time.Sleep(50 * time.Millisecond); f.states <- stateError }()
	_, err := m.DialAgent(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stopped before its agent answered") {
		t.Fatalf("got %v", err)
	}
}

func TestStatesToDoneAndErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		last    []vmState
		close   bool
		wantErr string
	}{
		{"clean power-off", []vmState{stateStopping, stateStopped}, false, ""},
		{"internal error", []vmState{stateError}, false, "stopped with an error"},
		{"notifications end", nil, true, "ended unexpectedly"},
		{"pause is not a stop", []vmState{statePausing, statePaused, stateResuming, stateRunning, stateStopped}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, m, _ := newFake(t)
			for _, s := range tc.last {
				f.states <- s
			}
			if tc.close {
				close(f.states)
			}
			waitDone(t, m)
			err := m.Err()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Err() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestStillRunningIsNotDone(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	f.states <- statePaused
	select {
	case <-m.Done():
		t.Fatal("Done closed for a running VM")
	case <-time.After(50 * time.Millisecond):
	}
	if got := m.State(); got != "paused" {
		t.Errorf("State() = %q", got)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	if err := m.Resume(); err == nil || !strings.Contains(err.Error(), "cannot be resumed") {
		t.Fatalf("resume of a running VM: %v", err)
	}
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(); err == nil || !strings.Contains(err.Error(), "cannot be paused") {
		t.Fatalf("second pause: %v", err)
	}
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	f.states <- stateStopped
	<-m.Done()
	if err := m.Pause(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("pause after stop: %v", err)
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if m.Err() != nil || f.stops != 1 {
		t.Fatalf("err %v, stops %d", m.Err(), f.stops)
	}
	if err := m.Kill(); err != nil || f.stops != 1 {
		t.Fatalf("Kill after stop: %v, stops %d", err, f.stops)
	}
}

func TestKillWithoutHardStopAsksGuest(t *testing.T) {
	t.Parallel()
	f, m, _ := newFake(t)
	f.canHardStop = false
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if f.requests != 1 || f.stops != 0 {
		t.Fatalf("requests %d stops %d", f.requests, f.stops)
	}
}

func TestShutdownGracefulThenHard(t *testing.T) {
	t.Parallel()
	// A guest that honours the power button.
	f, m, _ := newFake(t)
	f.onRequest = func() { f.states <- stateStopped }
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.stops != 0 {
		t.Error("hard stop used although the guest powered off")
	}
	// A guest that ignores it: hard stop when ctx ends.
	f2, m2, _ := newFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m2)
	if f2.requests != 1 || f2.stops != 1 {
		t.Errorf("requests %d stops %d", f2.requests, f2.stops)
	}
}

// The VM and the files handed to vz must stay reachable while the VM runs,
// even when the caller keeps nothing but the Done channel.
func TestKeepsVMObjectsReachableWhileRunning(t *testing.T) {
	var finalized atomic.Bool
	states := make(chan vmState, 4)
	done := func() <-chan struct{} {
		obj := new([64]byte) // stands in for *vz.VirtualMachine / *os.File
		runtime.SetFinalizer(obj, func(*[64]byte) { finalized.Store(true) })
		f := &fakeHV{canHardStop: true, states: states}
		return newMachine(f, states, "", obj).Done()
	}()
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if finalized.Load() {
		t.Fatal("a kept object was collected while the VM runs")
	}
	states <- stateStopped
	<-done
}

func TestAgentBackoff(t *testing.T) {
	prev := time.Duration(0)
	for i := 0; i < 20; i++ {
		d := agentBackoff(i)
		if d < prev || d > 250*time.Millisecond || d <= 0 {
			t.Fatalf("backoff(%d) = %v after %v", i, d, prev)
		}
		prev = d
	}
	if agentBackoff(0) != 10*time.Millisecond || agentBackoff(100) != 250*time.Millisecond {
		t.Errorf("backoff ends: %v .. %v", agentBackoff(0), agentBackoff(100))
	}
}

func TestTailNote(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte(strings.Repeat("early\n", 20)+"panic: no init\n\n"), 0o644)
	if got := tailNote(p); !strings.HasSuffix(got, "\n  early\n  panic: no init") || strings.Count(got, "\n  ") != 8 {
		t.Fatalf("note %q", got)
	}
	if tailNote(filepath.Join(t.TempDir(), "missing")) != "" || tailNote("") != "" {
		t.Error("missing log should give nothing")
	}
}
