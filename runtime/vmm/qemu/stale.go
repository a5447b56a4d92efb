//go:build linux

package qemu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// writePidFile records QEMU's pid in the state directory (temp + rename) so
// that an engine restarting after a crash can find and kill a VM it lost.
func writePidFile(stateDir string, pid int) error {
	p := filepath.Join(stateDir, pidFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// KillStale kills a QEMU left running from stateDir by an earlier engine
// (recorded in its pid file) and removes the pid file and sockets. It only
// kills a process that is a qemu-system-* whose working directory is
// stateDir — which is how Start runs QEMU — so a recycled pid never takes
// an unrelated process down. It reports whether it killed something.
func KillStale(stateDir string) (bool, error) {
	p := filepath.Join(stateDir, pidFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() {
		os.Remove(p)
		os.Remove(filepath.Join(stateDir, qmpSock))
		os.Remove(filepath.Join(stateDir, agentSock))
	}()
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return false, nil // garbage: nothing to kill
	}
	if !isOurQEMU(pid, stateDir) {
		return false, nil
	}
	// Start put QEMU in its own process group (pgid == pid).
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return false, fmt.Errorf("kill stale qemu %d: %w", pid, err)
	}
	// Wait for it to be gone (or a zombie, when our own process is its
	// parent and has not reaped it), so its disks are free when we return.
	for i := 0; i < 100; i++ {
		if !alive(pid) {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true, fmt.Errorf("stale qemu %d did not exit after SIGKILL", pid)
}

// runningPid is the pid of a live QEMU recorded in stateDir's pid file, or 0.
func runningPid(stateDir string) int {
	b, err := os.ReadFile(filepath.Join(stateDir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || !isOurQEMU(pid, stateDir) || !alive(pid) {
		return 0
	}
	return pid
}

func isOurQEMU(pid int, stateDir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if !strings.HasPrefix(filepath.Base(argv0), "qemu-system-") {
		return false
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(stateDir)
	if err != nil {
		want = stateDir
	}
	abs, _ := filepath.Abs(want)
	return cwd == abs
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
