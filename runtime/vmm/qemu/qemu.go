//go:build linux

package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/berth-dev/berth/runtime/vmm"
)

// ErrKilled is a Machine's Err after Kill.
var ErrKilled = errors.New("VM killed")

// Backend starts QEMU VMs. The zero value is ready to use.
type Backend struct {
	// Accel forces "kvm" or "tcg"; empty means: KVM if a probe VM boots
	// with it on this host, else TCG. $BERTH_QEMU_ACCEL overrides both.
	Accel string
	// NoVsock uses the virtio-serial agent channel even where
	// /dev/vhost-vsock exists.
	NoVsock bool
	// CacheDir keeps the acceleration probe's answer across processes
	// (default: the user cache dir's "berth"; "-" disables the disk cache).
	CacheDir string
}

// New returns a Backend with default settings.
func New() *Backend { return &Backend{} }

// Name implements vmm.Backend.
func (b *Backend) Name() string { return "qemu" }

// archInfo is what differs between the guest architectures.
type archInfo struct {
	binary, debPackage, machine, tcgCPU, console string
}

var arches = map[string]archInfo{
	// q35 and pc boot the Debian cloud kernel equally fast under TCG;
	// microvm is ~0.5 s faster but has no PCI, so the guest would need
	// virtio-mmio instead of the virtio_pci modules every other path uses.
	// -cpu max: images built for x86-64-v2 and newer need more than qemu64.
	"amd64": {"qemu-system-x86_64", "qemu-system-x86", "q35", "max", "ttyS0"},
	// Under TCG, pointer authentication emulation makes "-cpu max" about
	// four times slower to boot; everything else of "max" is cheap.
	"arm64": {"qemu-system-aarch64", "qemu-system-arm", "virt", "max,pauth=off", "ttyAMA0"},
}

// machineFor is the -M value: on an arm64 KVM host the GIC must be one the
// host's can back (GICv3-only hosts cannot run virt's default GICv2).
func (ai archInfo) machineFor(accel string) string {
	if accel == "kvm" && ai.machine == "virt" {
		return "virt,gic-version=max"
	}
	return ai.machine
}

// Binary returns the QEMU executable for a guest architecture, or an error
// naming the Debian package to install.
func Binary(arch string) (string, error) {
	ai, ok := arches[arch]
	if !ok {
		return "", fmt.Errorf("qemu backend: unsupported guest architecture %q (amd64 or arm64)", arch)
	}
	p, err := exec.LookPath(ai.binary)
	if err != nil {
		return "", fmt.Errorf("%s not found: install the Debian package %s (packaging/setup-linux.sh)", ai.binary, ai.debPackage)
	}
	return p, nil
}

const (
	agentSock   = "agent.sock"
	qmpSock     = "qmp.sock"
	pidFile     = "qemu.pid"
	agentPortID = "agent0"
)

// Start implements vmm.Backend. It returns once the guest CPU runs.
func (b *Backend) Start(ctx context.Context, cfg vmm.Config) (vmm.Machine, error) {
	return b.start(ctx, cfg)
}

func (b *Backend) start(ctx context.Context, cfg vmm.Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.Rosetta {
		return nil, errors.New("qemu backend: Rosetta is only available with Virtualization.framework on Apple silicon")
	}
	bin, err := Binary(cfg.Arch)
	if err != nil {
		return nil, err
	}
	for what, p := range map[string]string{"kernel": cfg.Kernel, "initramfs": cfg.Initrd} {
		if fi, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, p, errNotExist(err))
		} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
			return nil, fmt.Errorf("%s %s: not a non-empty regular file", what, p)
		}
	}
	for _, d := range cfg.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Path, errNotExist(err))
		}
	}
	if st, err := os.Stat(cfg.StateDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("VM state directory %s does not exist", cfg.StateDir)
	}
	var virtiofsdBin string
	if len(cfg.Shares) > 0 {
		if err := checkShares(cfg.Shares); err != nil {
			return nil, err
		}
		if virtiofsdBin, err = VirtiofsdBinary(); err != nil {
			return nil, err
		}
	}
	if pid := runningPid(cfg.StateDir); pid != 0 {
		// Two VMs on one state dir would share sockets and disks.
		return nil, fmt.Errorf("a VM is already running in %s (qemu pid %d): stop it, or reap one left by a crashed engine with KillStale", cfg.StateDir, pid)
	}
	if cfg.ConsoleLog == "" {
		cfg.ConsoleLog = filepath.Join(cfg.StateDir, "console.log")
	}
	if cfg.MAC == "" {
		cfg.MAC = vmm.StableMAC(cfg.ID)
	}
	if err := checkNetworks(cfg); err != nil {
		return nil, err
	}
	accel := b.accel(ctx, bin, cfg.Arch, cfg.Kernel)
	useVsock := !b.NoVsock && vsockAvailable()

	m := &Machine{cfg: cfg, accel: accel, done: make(chan struct{}), conns: make(chan net.Conn, 1)}
	if f, err := os.OpenFile(cfg.ConsoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	} else {
		st, _ := f.Stat()
		m.consoleStart = st.Size() // tails cover this boot only
		f.Close()
	}

	// Host listens, QEMU connects: the sockets exist before QEMU starts, so
	// there is no polling for a socket file to appear.
	qmpL, err := listenUnix(cfg.StateDir, qmpSock)
	if err != nil {
		return nil, err
	}
	m.listeners = append(m.listeners, qmpL)
	if useVsock {
		m.cid = 3 + rand.Uint32N(1<<30)
	} else {
		l, err := listenUnix(cfg.StateDir, agentSock)
		if err != nil {
			m.closeListeners()
			return nil, err
		}
		m.listeners = append(m.listeners, l)
		m.agentL = l
	}
	if err := m.startVirtiofsd(virtiofsdBin); err != nil {
		m.stopVirtiofsd()
		m.closeListeners()
		return nil, err
	}

	cmd := exec.Command(bin, m.args(useVsock)...)
	// QEMU runs in the state directory and reaches its sockets by relative
	// path: unix socket paths are limited to 108 bytes, state dirs are not.
	cmd.Dir = cfg.StateDir
	cmd.Stdin = nil
	cmd.Stdout = nil
	// The user networks' sockets, as fd 3, 4, … (networkArgs names them).
	// QEMU gets its own copies; the caller may close its files once Start
	// returns.
	cmd.ExtraFiles = netFiles(cfg)
	m.stderr = &tailBuffer{max: 4096}
	cmd.Stderr = m.stderr
	// Own process group (Kill takes QEMU's helper threads/processes with
	// it) and SIGKILL when the engine dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.cmd = cmd

	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the *thread* that forked the
		// child exits, not the process: keep this goroutine on its own
		// thread for as long as QEMU lives (the thread is discarded after).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		m.finish(cmd.Wait())
	}()
	if err := <-started; err != nil {
		m.stopVirtiofsd()
		m.closeListeners()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	m.mu.Lock() // virtiofsdExited reads it from the daemons' goroutines
	m.pid = cmd.Process.Pid
	m.mu.Unlock()
	if err := writePidFile(cfg.StateDir, m.pid); err != nil {
		m.Kill()
		<-m.done
		return nil, err
	}

	fail := func(err error) (*Machine, error) {
		// QEMU that exits by itself during start-up (a kernel it cannot
		// load, a bad option) explains itself on stderr: prefer that.
		select {
		case <-m.done:
			return nil, m.Err()
		case <-time.After(2 * time.Second):
		}
		m.Kill()
		<-m.done
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	qc, err := m.acceptFromQEMU(startCtx, qmpL)
	if err != nil {
		return fail(err)
	}
	q, err := newQMP(qc)
	if err != nil {
		qc.Close()
		return fail(fmt.Errorf("qemu monitor: %w", err))
	}
	m.mu.Lock() // finish reads it from the goroutine that waits for QEMU
	m.qmp = q
	m.mu.Unlock()
	if m.agentL != nil {
		// QEMU connects the agent channel asynchronously (reconnect=1);
		// have it connected before the guest can write to the port.
		c, err := m.acceptFromQEMU(startCtx, m.agentL)
		if err != nil {
			return fail(err)
		}
		m.conns <- c
		go m.acceptLoop()
	}
	if _, err := m.qmp.execute("cont"); err != nil {
		return fail(err)
	}
	return m, nil
}

func errNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("no such file")
	}
	return err
}

// args is QEMU's command line. Paths inside option strings have commas
// doubled (QEMU's escape).
func (m *Machine) args(useVsock bool) []string {
	cfg := m.cfg
	ai := arches[cfg.Arch]
	cpu := ai.tcgCPU
	if m.accel == "kvm" {
		cpu = "host"
	}
	cmdline := strings.TrimSpace(cfg.Cmdline + " console=" + ai.console + " panic=-1")
	if !strings.Contains(" "+cfg.Cmdline, " loglevel=") && !strings.Contains(" "+cfg.Cmdline+" ", " debug ") {
		// Under TCG every console byte costs; quiet still prints panics.
		cmdline += " quiet"
	}
	machine := ai.machineFor(m.accel)
	if len(cfg.Shares) > 0 {
		machine += ",memory-backend=" + memBackendID // see shareArgs
	}
	a := []string{
		"-name", "berth-" + cfg.ID,
		"-M", machine, "-accel", m.accel, "-cpu", cpu,
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-S", // paused until the monitor is set up (see Start)
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", cmdline,
		"-chardev", "file,id=con0,append=on,path=" + esc(cfg.ConsoleLog),
		"-serial", "chardev:con0",
		"-chardev", "socket,id=qmp0,path=" + qmpSock,
		"-mon", "chardev=qmp0,mode=control",
		"-netdev", "user,id=net0",
		// romfile= : no iPXE option ROM to load, nothing boots from the NIC.
		"-device", "virtio-net-pci,netdev=net0,romfile=,mac=" + cfg.MAC,
		"-device", "virtio-rng-pci",
		// Free page reporting hands pages the guest frees back to the
		// host: the kernel's boot (decompression, initramfs unpacking)
		// touches memory it then frees; measured ~28 MiB less RSS per VM.
		"-device", "virtio-balloon-pci,free-page-reporting=on",
	}
	for i, d := range cfg.Disks {
		// writeback honours the guest's flushes (fsync in the container is
		// durable); discard=unmap keeps sparse images sparse.
		opt := fmt.Sprintf("file=%s,format=raw,if=none,id=disk%d,cache=writeback,aio=threads,discard=unmap", esc(d.Path), i)
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		a = append(a, "-drive", opt, "-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d", i))
	}
	if useVsock {
		a = append(a, "-device", fmt.Sprintf("vhost-vsock-pci,guest-cid=%d", m.cid))
	} else {
		a = append(a,
			"-device", "virtio-serial-pci",
			"-chardev", "socket,id="+agentPortID+",reconnect=1,path="+agentSock,
			"-device", "virtserialport,chardev="+agentPortID+",id="+agentPortID+",name="+vmm.AgentSerialName,
		)
	}
	a = append(a, m.shareArgs()...)
	return append(a, m.networkArgs()...)
}

func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func vsockAvailable() bool {
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Machine is one running QEMU VM.
type Machine struct {
	cfg          vmm.Config
	accel        string
	cmd          *exec.Cmd
	pid          int
	cid          uint32 // vsock guest CID, 0 under virtio-serial
	stderr       *tailBuffer
	consoleStart int64
	qmp          *qmp
	listeners    []*net.UnixListener
	agentL       *net.UnixListener
	conns        chan net.Conn
	vfs          []*virtiofsd // one per cfg.Shares entry

	killed   bool
	stopping bool  // the virtiofsd daemons are being stopped on purpose
	shareErr error // a virtiofsd died under a running VM
	mu       sync.Mutex
	err      error
	done     chan struct{}
	doneOnce sync.Once
}

// Accel is the accelerator this VM runs under ("kvm" or "tcg").
func (m *Machine) Accel() string { return m.accel }

// PID implements vmm.Machine.
func (m *Machine) PID() int { return m.pid }

// Pause stops the vCPUs (QMP "stop"); Resume continues them ("cont").
func (m *Machine) Pause() error { return m.monitor("stop", "pause") }

// Resume continues a paused VM.
func (m *Machine) Resume() error { return m.monitor("cont", "resume") }

func (m *Machine) monitor(cmd, what string) error {
	select {
	case <-m.done:
		return fmt.Errorf("%s: the VM has stopped", what)
	default:
	}
	if m.qmp == nil {
		return fmt.Errorf("%s: no QEMU monitor", what)
	}
	if _, err := m.qmp.execute(cmd); err != nil {
		return fmt.Errorf("%s VM: %w", what, err)
	}
	return nil
}

// Done implements vmm.Machine.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err implements vmm.Machine.
func (m *Machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Kill implements vmm.Machine: SIGKILL to QEMU's process group.
func (m *Machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	m.mu.Lock()
	m.killed = true
	m.mu.Unlock()
	if err := syscall.Kill(-m.pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill qemu %d: %w", m.pid, err)
	}
	// The daemons go when QEMU has gone (finish), before Done closes.
	return nil
}

// finish runs once QEMU has exited.
func (m *Machine) finish(waitErr error) {
	m.closeListeners()
	m.stopVirtiofsd()
	m.mu.Lock()
	q := m.qmp
	m.mu.Unlock()
	if q != nil {
		// QEMU is gone, so the monitor reaches EOF once the SHUTDOWN event
		// (if any) has been read; closing first could drop that event.
		select {
		case <-q.done:
		case <-time.After(2 * time.Second):
			q.conn.Close()
			<-q.done
		}
	}
	os.Remove(filepath.Join(m.cfg.StateDir, pidFile))
	m.mu.Lock()
	m.err = m.exitErrorLocked(waitErr)
	m.mu.Unlock()
drain:
	for {
		select {
		case c := <-m.conns:
			c.Close()
		default:
			break drain
		}
	}
	close(m.done)
}

func (m *Machine) exitError(fallback error) error {
	select {
	case <-m.done:
		return m.Err()
	case <-time.After(2 * time.Second):
		return fallback
	}
}

func (m *Machine) exitErrorLocked(waitErr error) error {
	if m.killed {
		return ErrKilled
	}
	if m.shareErr != nil {
		return m.shareErr
	}
	reason := ""
	if m.qmp != nil {
		reason = m.qmp.shutdownReason()
	}
	if waitErr != nil {
		msg := strings.TrimSpace(m.stderr.String())
		if msg == "" {
			msg = waitErr.Error()
		}
		return fmt.Errorf("qemu failed: %s%s%s", oneLine(msg), m.virtiofsdTails(), m.consoleTailText())
	}
	switch reason {
	case "guest-shutdown":
		return nil
	case "guest-reset", "guest-panic":
		// With panic=-1 and -no-reboot, a kernel panic or an exiting PID 1
		// ends here.
		return fmt.Errorf("guest stopped by a reboot or kernel panic (%s) — its init exited, the kernel could not boot, or memory (%d MiB) is too small%s",
			reason, m.cfg.MemoryMiB, m.consoleTailText())
	default:
		if reason == "" {
			reason = "unknown reason"
		}
		return fmt.Errorf("qemu stopped (%s)%s", reason, m.consoleTailText())
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// ConsoleTail returns the last n lines this boot wrote to the console log.
func (m *Machine) ConsoleTail(n int) []string {
	return vmm.ConsoleTail(m.cfg.ConsoleLog, m.consoleStart, n)
}

func (m *Machine) consoleTailText() string {
	all := m.ConsoleTail(2000)
	if len(all) == 0 {
		return " (the console log " + m.cfg.ConsoleLog + " is empty)"
	}
	lines := all
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
		// A panic's stack trace pushes the line that explains it out of
		// the tail: put that line first.
		for _, l := range all[:len(all)-20] {
			if strings.Contains(l, "Kernel panic") {
				lines = append([]string{l, "..."}, lines...)
				break
			}
		}
	}
	return "; last console lines:\n  " + strings.Join(lines, "\n  ")
}

// DialAgent implements vmm.Machine. Under virtio-serial it returns once the
// guest has opened its end of the port (QEMU reports that on the monitor),
// so a guest that never gets that far is an error here, naming the console
// log's last lines, not a hang in the first RPC. Closing the returned
// connection makes QEMU reconnect within a second, and the next DialAgent
// returns that new connection.
func (m *Machine) DialAgent(ctx context.Context) (net.Conn, error) {
	if m.cid != 0 {
		return m.dialVsock(ctx)
	}
	for {
		open, changed := m.qmp.port(agentPortID)
		if open {
			break
		}
		select {
		case <-changed:
		case <-m.done:
			return nil, fmt.Errorf("VM stopped before the guest agent came up: %w", m.Err())
		case <-ctx.Done():
			return nil, m.agentTimeout(ctx)
		}
	}
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, fmt.Errorf("VM stopped before the guest agent came up: %w", m.Err())
	case <-ctx.Done():
		return nil, m.agentTimeout(ctx)
	}
}

func (m *Machine) agentTimeout(ctx context.Context) error {
	if len(m.ConsoleTail(1)) == 0 {
		// Nothing at all on the console: the kernel never got as far as
		// its serial driver. A blob that is no kernel for this machine, and
		// too little memory to unpack kernel + initramfs (64 MiB with
		// Berth's initramfs, measured), both end like this.
		return fmt.Errorf("the guest agent did not come up (%v) and the kernel printed nothing: %s may not be a bootable %s kernel, or %d MiB of memory is too small to unpack it and the initramfs (the console log %s is empty)",
			ctx.Err(), m.cfg.Kernel, m.cfg.Arch, m.cfg.MemoryMiB, m.cfg.ConsoleLog)
	}
	return fmt.Errorf("the guest agent did not come up (%v): the kernel may not boot or lacks its drivers%s", ctx.Err(), m.consoleTailText())
}

func (m *Machine) dialVsock(ctx context.Context) (net.Conn, error) {
	for {
		c, err := vsock.Dial(m.cid, vmm.AgentPort, nil)
		if err == nil {
			return c, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("VM stopped before the guest agent came up: %w", m.Err())
		case <-ctx.Done():
			return nil, m.agentTimeout(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// acceptFromQEMU accepts one connection whose peer is this VM's QEMU
// process (SO_PEERCRED), so nothing else on the host can pose as it.
func (m *Machine) acceptFromQEMU(ctx context.Context, l *net.UnixListener) (net.Conn, error) {
	for {
		dl, _ := ctx.Deadline()
		l.SetDeadline(dl)
		c, err := l.AcceptUnix()
		if err != nil {
			select {
			case <-m.done:
				return nil, m.Err()
			default:
			}
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, m.exitError(fmt.Errorf("qemu did not connect to %s in time", l.Addr()))
			}
			return nil, err
		}
		if peerPID(c) == m.pid {
			l.SetDeadline(time.Time{})
			return c, nil
		}
		c.Close()
	}
}

// acceptLoop hands QEMU's reconnections of the agent channel to DialAgent.
func (m *Machine) acceptLoop() {
	for {
		c, err := m.agentL.AcceptUnix()
		if err != nil {
			return
		}
		if peerPID(c) != m.pid {
			c.Close()
			continue
		}
		select {
		case old := <-m.conns: // never taken: superseded
			old.Close()
		default:
		}
		m.conns <- c
	}
}

func peerPID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	pid := -1
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

func (m *Machine) closeListeners() {
	for _, l := range m.listeners {
		l.Close()
	}
	os.Remove(filepath.Join(m.cfg.StateDir, qmpSock))
	os.Remove(filepath.Join(m.cfg.StateDir, agentSock))
}

// listenUnix listens on dir/name. When that path is longer than a unix
// socket address allows, it binds through /proc/self/fd/N/name instead: the
// kernel resolves the short magic link to the directory.
func listenUnix(dir, name string) (*net.UnixListener, error) {
	full := filepath.Join(dir, name)
	os.Remove(full)
	addr := full
	if len(full) >= 100 {
		d, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), name)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", full, err)
	}
	l.SetUnlinkOnClose(false) // the bound name may be the /proc path; closeListeners removes the file
	return l, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
