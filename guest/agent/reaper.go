//go:build linux

package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaper is the only code in the agent that waits for children: PID 1
// inherits every orphan in the VM, and a second waiter (exec.Cmd.Wait) would
// race it for exit statuses. Starting a child and registering its pid
// happen under the same lock the reaper holds while it waits, so no exit can
// be reaped before someone is listening for it.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
	sigc    chan os.Signal
}

func newReaper() *reaper {
	r := &reaper{waiting: map[int]chan unix.WaitStatus{}, sigc: make(chan os.Signal, 16)}
	signal.Notify(r.sigc, syscall.SIGCHLD)
	go r.loop()
	return r
}

// start runs fn (which forks) with reaping paused and registers the pid it
// returns; the channel receives the child's wait status once.
func (r *reaper) start(fn func() (int, error)) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fn()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiting[pid] = ch
	return pid, ch, nil
}

func (r *reaper) loop() {
	for range r.sigc {
		r.reap()
	}
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			ch <- ws
			delete(r.waiting, pid)
		}
		// Otherwise an orphan re-parented to us: reaped, nothing to report.
	}
}

// exitCode follows Docker: the exit status, or 128+signal.
func exitCode(ws unix.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}
