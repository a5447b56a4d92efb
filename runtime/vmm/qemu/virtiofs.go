//go:build linux

package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/runtime/vmm"
)

// virtiofsdPaths are where Debian puts virtiofsd: qemu-system-common ships
// QEMU's own C daemon in /usr/lib/qemu (Debian 12); the Rust rewrite, its
// own package "virtiofsd" from Debian 13 on, lands in /usr/libexec.
var virtiofsdPaths = []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"}

// VirtiofsdBinary finds virtiofsd, or says which package to install.
func VirtiofsdBinary() (string, error) {
	for _, p := range virtiofsdPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", errors.New("virtiofsd not found (needed for shared directories): install the Debian package qemu-system-common (packaging/setup-linux.sh)")
}

// shareSock is share i's vhost-user socket, relative to the state dir.
func shareSock(i int) string { return fmt.Sprintf("vfs-%d.sock", i) }

// virtiofsd is the daemon serving one share to QEMU over vhost-user.
type virtiofsd struct {
	share  vmm.Share
	sock   string // file name in the state dir
	pid    int
	stderr *tailBuffer
	done   chan struct{} // closed once the daemon has exited and been reaped
}

// checkShares reports a share virtiofsd could not serve, before anything
// starts: its own messages would arrive only as a QEMU start failure.
func checkShares(shares []vmm.Share) error {
	for _, sh := range shares {
		if strings.Contains(sh.Path, ",") {
			// virtiofsd splits -o at commas; source= cannot carry one.
			return fmt.Errorf("share %q: path %s contains a comma, which virtiofsd cannot take: share a directory without one", sh.Tag, sh.Path)
		}
		fi, err := os.Stat(sh.Path)
		if err != nil {
			return fmt.Errorf("share %q: %s: %w", sh.Tag, sh.Path, errNotExist(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("share %q: %s is not a directory (virtiofs shares directories; share the file's directory)", sh.Tag, sh.Path)
		}
	}
	return nil
}

// startVirtiofsd starts one daemon per share. The host creates and listens
// on each socket and hands the listening fd over (--fd), as it does for
// QEMU's own sockets: the socket is ready before QEMU starts, with no
// polling for a file to appear and no window between virtiofsd's bind and
// listen in which QEMU's connect would be refused. Long state-dir paths
// work the same way (listenUnix). The caller stops them on any failure.
func (m *Machine) startVirtiofsd(bin string) error {
	for i, sh := range m.cfg.Shares {
		l, err := listenUnix(m.cfg.StateDir, shareSock(i))
		if err != nil {
			return err
		}
		f, err := l.File() // a dup: closing the listener leaves virtiofsd's copy
		l.Close()
		if err != nil {
			return fmt.Errorf("share %q: %w", sh.Tag, err)
		}
		d := &virtiofsd{share: sh, sock: shareSock(i), stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
		m.vfs = append(m.vfs, d)
		cmd := exec.Command(bin,
			"--fd=3",
			"-o", "source="+sh.Path,
			// auto: the guest revalidates after a timeout, so host-side
			// edits to a bind-mounted directory show up in the container.
			"-o", "cache=auto",
			// namespace (the default, spelled out): virtiofsd pivots into
			// the shared directory inside its own mount, pid and network
			// namespaces, so a guest cannot walk out of the share.
			"-o", "sandbox=namespace",
			// This virtiofsd (QEMU 7.2's C daemon) has no read-only
			// option: a read-only share relies on the guest mounting it
			// "ro" (the engine's job) and on the container seeing only a
			// read-only bind of it.
		)
		cmd.Dir = m.cfg.StateDir
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stderr = d.stderr
		// Own process group: in its namespace sandbox virtiofsd forks, and
		// one kill(-pgid) takes both. SIGKILL when the engine dies, as
		// QEMU gets (same thread rule, see start).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := cmd.Start(); err != nil {
				started <- err
				close(d.done)
				return
			}
			started <- nil
			cmd.Wait()
			close(d.done)
			m.virtiofsdExited(d)
		}()
		err = <-started
		f.Close()
		if err != nil {
			return fmt.Errorf("start %s for share %q: %w", bin, sh.Tag, err)
		}
		d.pid = cmd.Process.Pid
	}
	return nil
}

// virtiofsdExited runs when a daemon exits. While QEMU runs that is fatal
// to the VM: QEMU 7.2 cannot reconnect a vhost-user-fs device, so every
// access to the share in the guest would hang. The VM is killed and its Err
// names the share and what virtiofsd said.
func (m *Machine) virtiofsdExited(d *virtiofsd) {
	m.mu.Lock()
	expected, pid := m.stopping || m.killed, m.pid
	m.mu.Unlock()
	// Before QEMU runs, its start fails on the dead socket and reports
	// the daemon's stderr. A QEMU that has exited (a zombie or reaped)
	// closed the vhost-user connection, which ends virtiofsd normally.
	if expected || pid == 0 || !alive(pid) {
		return
	}
	m.mu.Lock()
	if m.shareErr == nil {
		m.shareErr = fmt.Errorf("virtiofsd for share %q (%s) exited, so the VM was stopped%s", d.share.Tag, d.share.Path, d.tail())
	}
	m.mu.Unlock()
	syscall.Kill(-pid, syscall.SIGKILL)
}

func (d *virtiofsd) tail() string {
	if s := d.stderr.String(); s != "" {
		return ": virtiofsd said: " + oneLine(lastLines(s, 5))
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopVirtiofsd kills every daemon and waits until they are reaped, so no
// process outlives the Machine.
func (m *Machine) stopVirtiofsd() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	for _, d := range m.vfs {
		if d.pid > 0 {
			syscall.Kill(-d.pid, syscall.SIGKILL)
		}
	}
	for _, d := range m.vfs {
		select {
		case <-d.done:
		case <-time.After(5 * time.Second): // SIGKILL to a whole group: not expected
		}
		os.Remove(filepath.Join(m.cfg.StateDir, d.sock))
	}
}

// virtiofsdTails is what the daemons said, for QEMU failure messages: a
// vhost-user-fs device fails to start with QEMU saying only that the
// backend hung up.
func (m *Machine) virtiofsdTails() string {
	var b strings.Builder
	for _, d := range m.vfs {
		if t := d.tail(); t != "" {
			fmt.Fprintf(&b, "; share %q%s", d.share.Tag, t)
		}
	}
	return b.String()
}

// shareArgs are QEMU's options for the shares. vhost-user needs the guest
// RAM in memory virtiofsd can map: a shared memfd backend (only then, so a
// VM without shares boots exactly as before).
func (m *Machine) shareArgs() []string {
	if len(m.cfg.Shares) == 0 {
		return nil
	}
	a := []string{"-object", fmt.Sprintf("memory-backend-memfd,id=%s,size=%dM,share=on", memBackendID, m.cfg.MemoryMiB)}
	for i, sh := range m.cfg.Shares {
		id := fmt.Sprintf("vfs%d", i)
		a = append(a,
			"-chardev", "socket,id="+id+",path="+shareSock(i),
			// The same PCI device on q35 and arm64 virt.
			"-device", "vhost-user-fs-pci,queue-size=1024,chardev="+id+",tag="+esc(sh.Tag),
		)
	}
	return a
}

const memBackendID = "mem"
