package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/runtime/logs"
	"github.com/berth-dev/berth/runtime/portfwd"
	"github.com/berth-dev/berth/runtime/vmm"
)

// DefaultBootTimeout bounds the wait for the guest agent after the VM starts.
const DefaultBootTimeout = 2 * time.Minute

// restart backoff, as Docker's: 100 ms doubling to 1 min, reset after 10 s up.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = time.Minute
	backoffReset = 10 * time.Second
)

// ctr is one container in memory. rec is guarded by Manager.mu; op
// serializes lifecycle operations (start, stop, remove) on this container.
type ctr struct {
	op  sync.Mutex
	rec record
	dir string
	log *logs.Log

	run       *run          // non-nil while the VM is up (Manager.mu)
	exited    chan struct{} // closed at the end of the current run (Manager.mu)
	removed   chan struct{} // closed when the container is gone
	restartC  chan struct{} // closed to cancel a pending policy restart
	backoff   time.Duration
	timings   StartTimings
	stdin     *stdinHub
	attached  *fanout
	prevStats *container.StatsResponse
	booting   chan struct{} // non-nil while boot runs; closed when it ends (Manager.mu)
	// netGuest is the agent while the container is up on its user
	// networks (joinNetworks .. leaveNetworks), for /etc/hosts pushes
	// (Manager.mu; changed under Manager.hostsMu).
	netGuest Guest
	// gateway is the VM's NAT gateway (eth0), which is the host: what
	// host.docker.internal and --add-host NAME:host-gateway point at
	// (Manager.mu; set at each boot).
	gateway string
}

// run is one boot of a container's VM.
type run struct {
	machine  vmm.Machine
	guest    Guest
	proc     Process
	ports    *portfwd.Set
	stdinW   *io.PipeWriter
	stopping bool // a user stop/kill is in progress: no policy restart
	killed   bool // we killed the VM ourselves
	paused   bool // docker pause: the VM's vCPUs are stopped
	done     chan struct{}
}

// StartTimings splits the last start of a container into phases.
type StartTimings struct {
	Prepare time.Duration // image resolve + rootfs clone (at create) + boot files + VM config
	Boot    time.Duration // VM start to agent ready (setup done)
	Started time.Time     // when the main process started
}

// Timings returns the phases of the container's last start (benchmarks, UI).
func (m *Manager) Timings(ref string) (StartTimings, error) {
	c, err := m.get(ref)
	if err != nil {
		return StartTimings{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return c.timings, nil
}

func newManager(cfg Config) (*Manager, error) {
	if cfg.DB == nil {
		return nil, errors.New("container manager: no state database")
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.DefaultCPUs <= 0 {
		cfg.DefaultCPUs = min(2, runtime.NumCPU())
	}
	if cfg.DefaultMemoryMiB <= 0 {
		cfg.DefaultMemoryMiB = 512
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{cfg: cfg, log: cfg.Log, events: NewEvents(),
		byID: map[string]*ctr{}, names: map[string]string{}, execs: map[string]*execProc{}, creating: map[string]int{}}
	if err := os.MkdirAll(cfg.Root.Containers(), 0o700); err != nil {
		return nil, err
	}
	recs, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		c, err := m.newCtr(*r)
		if err != nil {
			return nil, err
		}
		m.byID[r.ID] = c
		m.names[r.Name] = r.ID
	}
	return m, nil
}

func (m *Manager) newCtr(r record) (*ctr, error) {
	dir := m.cfg.Root.Container(r.ID)
	lo, err := logs.ParseOptions(r.HostConfig.LogConfig.Config)
	if err != nil {
		lo = logs.Options{}
	}
	l, err := logs.Open(dir, lo)
	if err != nil {
		return nil, err
	}
	ex := make(chan struct{})
	close(ex)
	return &ctr{rec: r, dir: dir, log: l, exited: ex, removed: make(chan struct{}),
		stdin: newStdinHub(), attached: newFanout()}, nil
}

func (c *ctr) rootfs() string     { return filepath.Join(c.dir, "rootfs.ext4") }
func (c *ctr) vmDir() string      { return filepath.Join(c.dir, "vm") }
func (c *ctr) consoleLog() string { return filepath.Join(c.dir, "console.log") }

// setState updates the record under m.mu and persists it.
func (m *Manager) setState(c *ctr, f func(r *record)) error {
	m.mu.Lock()
	f(&c.rec)
	r := c.rec
	m.mu.Unlock()
	return m.put(&r)
}

func (m *Manager) lookup(ref string) (string, error) {
	c, err := m.get(ref)
	if err != nil {
		return "", err
	}
	return c.rec.ID, nil
}

// get resolves an ID, unique ID prefix or name.
func (m *Manager) get(ref string) (*ctr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.getLocked(ref)
}

func (m *Manager) getLocked(ref string) (*ctr, error) {
	if ref == "" {
		return nil, errf(ErrNotFound, "no such container: empty name or ID")
	}
	if c, ok := m.byID[ref]; ok {
		return c, nil
	}
	name := strings.TrimPrefix(ref, "/")
	if id, ok := m.names[name]; ok {
		return m.byID[id], nil
	}
	var found *ctr
	for id, c := range m.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errf(ErrInvalid, "multiple containers match ID prefix %q: use more characters", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, errf(ErrNotFound, "no such container: %s", ref)
	}
	return found, nil
}

func (m *Manager) create(ctx context.Context, opts CreateOptions) (container.CreateResponse, error) {
	t0 := time.Now()
	if opts.Config == nil || opts.Config.Image == "" {
		return container.CreateResponse{}, errf(ErrInvalid, "no image given")
	}
	hc := container.HostConfig{}
	if opts.HostConfig != nil {
		hc = *opts.HostConfig
	}
	if err := checkHostConfig(&hc); err != nil {
		return container.CreateResponse{}, err
	}
	mounts, err := parseMounts(&hc, opts.Config.Volumes)
	if err != nil {
		return container.CreateResponse{}, err
	}
	netReqs, err := planNetworks(&hc, opts.Networking)
	if err != nil {
		return container.CreateResponse{}, err
	}
	cpus, mib, err := resources(&hc, m.cfg.DefaultCPUs, m.cfg.DefaultMemoryMiB)
	if err != nil {
		return container.CreateResponse{}, err
	}
	if _, err := logs.ParseOptions(hc.LogConfig.Config); err != nil {
		return container.CreateResponse{}, errf(ErrInvalid, "%v", err)
	}
	arch := m.cfg.Arch
	if p := opts.Platform; p != nil {
		if p.OS != "" && p.OS != "linux" {
			return container.CreateResponse{}, errf(ErrInvalid, "platform %s: only linux containers run in Berth", p.OS)
		}
		if p.Architecture != "" {
			arch = p.Architecture
		}
	}
	kernel := opts.Kernel
	if kernel == "" {
		kernel = hc.Annotations["io.berth.kernel"]
	}

	// Reserve the name and ID first so concurrent creates cannot clash.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return container.CreateResponse{}, errors.New("the engine is shutting down")
	}
	name := opts.Name
	if name == "" {
		name = m.randomName()
	} else if name, err = checkName(name); err != nil {
		m.mu.Unlock()
		return container.CreateResponse{}, err
	}
	if other, taken := m.names[name]; taken {
		m.mu.Unlock()
		return container.CreateResponse{}, errf(ErrConflict, "the container name \"/%s\" is already in use by container %q: remove or rename that container to reuse the name", name, other)
	}
	id := newID()
	m.names[name] = id // placeholder: byID has no entry until the record exists
	m.mu.Unlock()
	release := func() {
		m.mu.Lock()
		if m.names[name] == id {
			delete(m.names, name)
		}
		m.mu.Unlock()
	}

	plat := platformOf(arch)
	img, digest, err := m.cfg.Images.Resolve(ctx, opts.Config.Image, plat)
	if err != nil {
		release()
		return container.CreateResponse{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		release()
		return container.CreateResponse{}, fmt.Errorf("image %s: read config: %w", opts.Config.Image, err)
	}
	configID, err := img.ConfigName() // the image ID Docker shows
	if err != nil {
		release()
		return container.CreateResponse{}, fmt.Errorf("image %s: config digest: %w", opts.Config.Image, err)
	}
	merged, err := mergeConfig(*opts.Config, cf.Config)
	if err != nil {
		release()
		return container.CreateResponse{}, err
	}
	if merged.Hostname == "" {
		merged.Hostname = id[:12]
	}
	ports, err := portBindings(&hc, merged.ExposedPorts)
	if err != nil {
		release()
		return container.CreateResponse{}, err
	}

	// The rootfs clone happens before the record exists: a crash in
	// between leaves a directory without a record, which Restore deletes.
	dir := m.cfg.Root.Container(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		release()
		return container.CreateResponse{}, err
	}
	var nets []netAttachment
	fail := func(err error) (container.CreateResponse, error) {
		m.releaseNetworks(id, nets)
		os.RemoveAll(dir)
		m.removeAnonymousVolumes(mounts)
		release()
		return container.CreateResponse{}, err
	}
	snap, err := m.cfg.Rootfs.Snapshot(ctx, img, digest)
	if err != nil {
		return fail(fmt.Errorf("build root filesystem of %s: %w", opts.Config.Image, err))
	}
	if err := m.cfg.Rootfs.Clone(snap, filepath.Join(dir, "rootfs.ext4")); err != nil {
		return fail(fmt.Errorf("clone root filesystem: %w", err))
	}
	// Bind sources and volumes exist before the record names them.
	defer m.holdVolumes(mounts)()
	if err := prepareMounts(mounts, m.cfg.Volumes); err != nil {
		return fail(err)
	}
	if err := copyUpVolumes(mounts, m.cfg.Volumes, filepath.Join(dir, "rootfs.ext4")); err != nil {
		return fail(err)
	}
	shares, guestMounts, err := vmMounts(mounts, m.cfg.Volumes)
	if err != nil {
		return fail(err)
	}
	// Addresses are held before the record names them; a crash in between
	// leaves addresses of no container, which the store's reconcile frees.
	if nets, err = m.allocateNetworks(id, netReqs, nil); err != nil {
		return fail(err)
	}
	args := append(append([]string(nil), merged.Entrypoint...), merged.Cmd...)
	r := record{
		ID: id, Name: name, Created: time.Now().UTC(),
		Config: merged, HostConfig: hc, ImageID: digest, ImageConfigID: configID.String(), Arch: arch, Kernel: kernel,
		Path: args[0], Args: args[1:], CPUs: cpus, MemoryMiB: mib, Ports: ports,
		Mounts: mounts, Shares: shares, GuestMounts: guestMounts, Networks: nets,
		State: container.StateCreated,
	}
	c, err := m.newCtr(r)
	if err != nil {
		return fail(err)
	}
	if err := m.put(&r); err != nil {
		return fail(fmt.Errorf("save container: %w", err))
	}
	c.timings.Prepare = time.Since(t0)
	m.mu.Lock()
	m.byID[id] = c
	m.mu.Unlock()
	m.emit(events.ActionCreate, c, nil)
	for _, a := range nets {
		m.emitNetwork(events.ActionConnect, a, id)
	}
	return container.CreateResponse{ID: id, Warnings: []string{}}, nil
}

func (m *Manager) start(ctx context.Context, ref string) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	st := c.rec.State
	m.mu.Unlock()
	switch st {
	case container.StateRunning:
		return nil // Docker answers 304: already started
	case container.StateRemoving, container.StateDead:
		return errf(ErrConflict, "container %s is being removed", ref)
	case container.StateRestarting:
		m.cancelRestart(c)
	}
	if err := m.setState(c, func(r *record) { r.ManuallyStopped = false; r.RestartCount = 0 }); err != nil {
		return err
	}
	m.mu.Lock()
	c.backoff = 0
	m.mu.Unlock()
	// A client that hangs up mid-start does not abort the boot half-way:
	// the container either starts or records why it did not.
	err = m.boot(context.WithoutCancel(ctx), c)
	m.mu.Lock()
	failed := err != nil && c.run == nil
	autoRemove := c.rec.HostConfig.AutoRemove
	m.mu.Unlock()
	if failed && autoRemove {
		// Like dockerd: a --rm container that failed to start is removed
		// (destroy event), which `docker run --rm` waits for before it
		// exits with the start error.
		if derr := m.destroy(c); derr != nil {
			m.log.Error("remove --rm container after failed start", "id", c.rec.ID, "err", derr)
		} else {
			m.removeAnonymousVolumes(c.rec.Mounts)
		}
	}
	return err
}

func (m *Manager) cancelRestart(c *ctr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.restartC != nil {
		close(c.restartC)
		c.restartC = nil
	}
}

// boot starts the VM and the main process; c.op held.
func (m *Manager) boot(ctx context.Context, c *ctr) (err error) {
	t0 := time.Now()
	booting := make(chan struct{})
	m.mu.Lock()
	c.booting = booting
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		c.booting = nil
		m.mu.Unlock()
		close(booting)
	}()
	m.mu.Lock()
	rec := c.rec
	prepared := c.timings.Prepare
	if rec.HasBeenStarted {
		prepared = 0 // only the first start includes create's work
	}
	m.mu.Unlock()

	bootFiles, err := m.cfg.Kernels.Boot(ctx, rec.Arch, rec.Kernel)
	if err != nil {
		return m.startFailed(c, fmt.Errorf("kernel: %w", err))
	}
	if err := os.RemoveAll(c.vmDir()); err != nil {
		return m.startFailed(c, err)
	}
	if err := os.MkdirAll(c.vmDir(), 0o700); err != nil {
		return m.startFailed(c, err)
	}
	os.Remove(c.consoleLog())
	vcfg := vmm.Config{
		ID: rec.ID, Arch: rec.Arch, Kernel: bootFiles.Kernel, Initrd: bootFiles.Initrd,
		Cmdline: bootFiles.Cmdline, CPUs: rec.CPUs, MemoryMiB: rec.MemoryMiB,
		Disks:    []vmm.Disk{{Path: c.rootfs()}},
		StateDir: c.vmDir(), ConsoleLog: c.consoleLog(), MAC: vmm.StableMAC(rec.ID),
		Shares: rec.Shares,
	}
	if err := m.ensureMountSources(rec.Mounts); err != nil {
		return m.startFailed(c, err)
	}
	nics, err := m.openNICs(&rec)
	if err != nil {
		return m.startFailed(c, err)
	}
	vcfg.Networks = nics
	unplug := func() { closeNICs(nics); m.detachNICs(&rec) }
	if err := vcfg.Validate(); err != nil {
		unplug()
		return m.startFailed(c, err)
	}
	// Written before acting: a crash from here on leaves "running", which
	// Restore turns into "exited" (and kills the VM process it finds).
	now := time.Now().UTC()
	if err := m.setState(c, func(r *record) {
		r.State = container.StateRunning
		r.StartedAt, r.FinishedAt = now, time.Time{}
		r.ExitCode, r.Error, r.VMPID, r.GuestPID, r.IP = 0, "", 0, 0, ""
		r.HasBeenStarted = true
	}); err != nil {
		unplug()
		return err
	}
	tPrep := time.Since(t0) + prepared

	tBoot := time.Now()
	machine, err := m.cfg.Backend.Start(ctx, vcfg)
	closeNICs(nics) // the VM holds its own copies now
	if err != nil {
		m.detachNICs(&rec)
		return m.startFailed(c, fmt.Errorf("start VM: %w", err))
	}
	rn := &run{machine: machine, done: make(chan struct{})}
	abort := func(err error) error {
		machine.Kill()
		<-machine.Done()
		m.leaveNetworks(c)
		if rn.guest != nil {
			rn.guest.Close()
		}
		if rn.ports != nil {
			rn.ports.Close()
		}
		return m.startFailed(c, err)
	}
	if pid := machine.PID(); pid != 0 {
		if err := m.setState(c, func(r *record) { r.VMPID = pid }); err != nil {
			return abort(err)
		}
	}
	bctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
	defer cancel()
	go func() { // a VM that dies while booting ends the wait at once
		select {
		case <-machine.Done():
			cancel()
		case <-bctx.Done():
		}
	}()
	conn, err := machine.DialAgent(bctx)
	if err != nil {
		return abort(m.bootError(c, machine, bctx, err))
	}
	guest, err := m.cfg.Dial(bctx, conn)
	if err != nil {
		conn.Close()
		return abort(m.bootError(c, machine, bctx, err))
	}
	rn.guest = guest
	info, err := guest.Setup(bctx, GuestSetup{
		Hostname: rec.Config.Hostname, RootDevice: "/dev/vda",
		Hosts: literalHosts(rec.HostConfig.ExtraHosts), DNS: addrStrings(rec.HostConfig.DNS),
		Mounts: rec.GuestMounts, NoNAT: withoutNAT(&rec), EmbeddedDNS: len(rec.Networks) > 0,
	})
	if err != nil {
		return abort(m.bootError(c, machine, bctx, err))
	}
	m.mu.Lock()
	c.gateway = info.Gateway
	hosts := m.hostsLocked(c)
	m.mu.Unlock()
	if len(rec.Networks) == 0 {
		// The gateway is known only now (DHCP): add host.docker.internal
		// and resolve host-gateway. (joinNetworks writes the same list
		// plus the network's members.)
		if err := guest.SetHosts(bctx, hosts); err != nil {
			return abort(fmt.Errorf("write /etc/hosts: %w", err))
		}
	}
	if len(rec.Networks) > 0 {
		if err := configureNICs(bctx, guest, rec.Networks); err != nil {
			return abort(err)
		}
		if err := m.joinNetworks(bctx, c, guest); err != nil {
			return abort(err)
		}
	}
	bootDur := time.Since(tBoot)

	// Stdio: output goes to the log and to attached clients; stdin comes
	// from whichever client attaches with stdin.
	c.log.Begin()
	outW, errW := c.log.Writer("stdout"), c.log.Writer("stderr")
	spec := ProcessSpec{
		Args: append([]string{rec.Path}, rec.Args...), Env: rec.Config.Env, Cwd: rec.Config.WorkingDir,
		User: rec.Config.User, Tty: rec.Config.Tty,
		Stdout: io.MultiWriter(outW, c.attached.writer("stdout")),
		Stderr: io.MultiWriter(errW, c.attached.writer("stderr")),
	}
	if sz := rec.HostConfig.ConsoleSize; sz[0] > 0 && sz[1] > 0 {
		spec.Rows, spec.Cols = sz[0], sz[1]
	}
	if rec.Config.OpenStdin {
		pr, pw := io.Pipe()
		spec.Stdin = pr
		rn.stdinW = pw
	}
	proc, err := guest.Start(bctx, spec, false)
	if err != nil {
		outW.Close()
		errW.Close()
		c.log.End()
		return abort(errf(ErrInvalid, "start %s: %v", rec.Path, err))
	}
	rn.proc = proc
	if len(rec.Ports) > 0 {
		set, err := portfwd.Publish(rec.Ports, func(ctx context.Context, port int) (net.Conn, error) {
			return guest.PortForward(ctx, port)
		})
		if err != nil {
			proc.Signal(context.Background(), sigKILL)
			return abort(errf(ErrConflict, "%v", err))
		}
		rn.ports = set
	}
	if rn.stdinW != nil {
		c.stdin.set(rn.stdinW)
	}
	m.mu.Lock()
	c.run = rn
	c.exited = make(chan struct{})
	exited := c.exited
	c.timings = StartTimings{Prepare: tPrep, Boot: bootDur, Started: time.Now()}
	m.mu.Unlock()
	if err := m.setState(c, func(r *record) {
		r.IP, r.Gateway, r.PrefixLen, r.GuestPID = info.IP, info.Gateway, info.PrefixLen, proc.Pid()
		if rn.ports != nil {
			r.Ports = rn.ports.Bindings
		}
	}); err != nil {
		m.log.Error("save container state", "id", rec.ID, "err", err)
	}
	m.emit(events.ActionStart, c, nil)
	go m.monitor(c, rn, exited, outW, errW)
	return nil
}

func addrStrings[T fmt.Stringer](in []T) []string {
	var out []string
	for _, a := range in {
		out = append(out, a.String())
	}
	return out
}

// bootError explains a VM that did not come up, with the console's last lines.
func (m *Manager) bootError(c *ctr, machine vmm.Machine, ctx context.Context, err error) error {
	why := err.Error()
	select {
	case <-machine.Done():
		why = "the VM stopped while booting"
		if e := machine.Err(); e != nil {
			why += ": " + e.Error()
		}
	default:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("the guest did not get ready within %s (%v)", m.cfg.BootTimeout, err)
		}
	}
	if strings.Contains(why, "console") {
		return fmt.Errorf("boot failed: %s", why) // the backend already quoted the console
	}
	return fmt.Errorf("boot failed: %s; is the kernel bootable? last console lines:\n%s", why, tail(c.consoleLog(), 10))
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no console output)"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startFailed records a failed start (c.op held) and returns err.
func (m *Manager) startFailed(c *ctr, err error) error {
	m.setState(c, func(r *record) {
		if r.HasBeenStarted {
			r.State = container.StateExited
		} else {
			r.State = container.StateCreated
		}
		r.Error = err.Error()
		r.ExitCode = startFailureCode(err)
		r.VMPID, r.GuestPID, r.IP = 0, 0, ""
		r.FinishedAt = time.Now().UTC()
	})
	return err
}

// startFailureCode is the exit status Docker records for a failed start:
// 127 command not found, 126 not executable, 128 anything else.
func startFailureCode(err error) int {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "executable file not found"), strings.Contains(msg, "not found in $path"):
		return 127
	case strings.Contains(msg, "permission denied"):
		return 126
	}
	return 128
}

// monitor waits for the main process (or the VM) to end, powers the VM off,
// records the exit and applies the restart policy.
func (m *Manager) monitor(c *ctr, rn *run, exited chan struct{}, outW, errW io.Closer) {
	type result struct {
		code int
		err  error
	}
	waitC := make(chan result, 1)
	go func() {
		code, err := rn.proc.Wait(context.Background())
		waitC <- result{code, err}
	}()
	var code int
	var why string
	select {
	case r := <-waitC:
		code = r.code
		if r.err != nil {
			code, why = 255, "lost the guest agent: "+r.err.Error()
		}
	case <-rn.machine.Done():
		select {
		case r := <-waitC: // the process may have ended with the VM
			code = r.code
			if r.err != nil {
				code = 137
			}
		case <-time.After(2 * time.Second):
			code = 137
		}
		m.mu.Lock()
		killed := rn.killed
		m.mu.Unlock()
		if !killed {
			why = "the VM stopped unexpectedly"
			if e := rn.machine.Err(); e != nil {
				why += ": " + e.Error()
			}
		}
	}
	outW.Close()
	errW.Close()
	c.stdin.clear()
	if rn.stdinW != nil {
		rn.stdinW.CloseWithError(io.EOF)
	}
	if rn.ports != nil {
		rn.ports.Close()
	}
	m.leaveNetworks(c) // before the VM goes: peers stop resolving its name
	m.powerOff(rn)
	c.log.End()
	c.attached.endRun()

	m.mu.Lock()
	stopping := rn.stopping
	c.run = nil
	policy := c.rec.HostConfig.RestartPolicy
	autoRemove := c.rec.HostConfig.AutoRemove
	manually := c.rec.ManuallyStopped
	ranFor := time.Since(c.rec.StartedAt)
	m.mu.Unlock()
	m.setState(c, func(r *record) {
		r.State = container.StateExited
		r.ExitCode, r.Error = code, why
		r.FinishedAt = time.Now().UTC()
		r.VMPID, r.GuestPID, r.IP = 0, 0, ""
	})
	m.emit(events.ActionDie, c, map[string]string{"exitCode": fmt.Sprint(code)})
	close(exited)
	close(rn.done)

	if autoRemove {
		go func() {
			// --rm also removes the container's anonymous volumes, as in Docker.
			if err := m.remove(context.Background(), c.rec.ID, RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errors.Is(err, ErrNotFound) {
				m.log.Error("auto-remove", "id", c.rec.ID, "err", err)
			}
		}()
		return
	}
	if stopping || m.isClosed() {
		return
	}
	m.mu.Lock()
	restart := shouldRestart(policy, code, manually, c.rec.RestartCount)
	if restart {
		if ranFor >= backoffReset || c.backoff == 0 {
			c.backoff = backoffMin
		} else {
			c.backoff = min(c.backoff*2, backoffMax)
		}
	}
	delay := c.backoff
	m.mu.Unlock()
	if restart {
		m.scheduleRestart(c, delay)
	}
}

// shouldRestart is Docker's restart-manager rule.
func shouldRestart(p container.RestartPolicy, exitCode int, manuallyStopped bool, count int) bool {
	switch p.Name {
	case container.RestartPolicyAlways:
		return true
	case container.RestartPolicyUnlessStopped:
		return !manuallyStopped
	case container.RestartPolicyOnFailure:
		if p.MaximumRetryCount == 0 || count < p.MaximumRetryCount {
			return exitCode != 0
		}
	}
	return false
}

func (m *Manager) scheduleRestart(c *ctr, delay time.Duration) {
	cancel := make(chan struct{})
	m.mu.Lock()
	c.restartC = cancel
	m.mu.Unlock()
	m.setState(c, func(r *record) { r.State = container.StateRestarting; r.RestartCount++ })
	go func() {
		select {
		case <-time.After(delay):
		case <-cancel:
			return
		}
		c.op.Lock()
		defer c.op.Unlock()
		m.mu.Lock()
		still := c.restartC == cancel && !m.closed
		if still {
			c.restartC = nil
		}
		m.mu.Unlock()
		if !still {
			return
		}
		m.emit(events.ActionRestart, c, nil)
		if err := m.boot(context.Background(), c); err != nil {
			m.log.Error("restart", "id", c.rec.ID, "err", err)
		}
	}()
}

// powerOff asks the agent to shut down, then kills the VM if it lingers.
func (m *Manager) powerOff(rn *run) {
	select {
	case <-rn.machine.Done():
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := rn.guest.Shutdown(ctx)
		cancel()
		if err == nil {
			select {
			case <-rn.machine.Done():
			case <-time.After(5 * time.Second):
			}
		}
		select {
		case <-rn.machine.Done():
		default:
			m.mu.Lock()
			rn.killed = true
			m.mu.Unlock()
			rn.machine.Kill()
			<-rn.machine.Done()
		}
	}
	rn.guest.Close()
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Manager) stop(ctx context.Context, ref string, o StopOptions) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	return m.stopLocked(ctx, c, o, true)
}

// stopLocked stops c gracefully; c.op held. manual marks a user stop.
func (m *Manager) stopLocked(ctx context.Context, c *ctr, o StopOptions, manual bool) error {
	if manual {
		m.setState(c, func(r *record) { r.ManuallyStopped = true })
	}
	m.mu.Lock()
	rn := c.run
	st := c.rec.State
	m.mu.Unlock()
	if st == container.StateRestarting {
		m.cancelRestart(c)
		m.setState(c, func(r *record) { r.State = container.StateExited })
		return nil
	}
	if rn == nil {
		return nil // Docker answers 304: already stopped
	}
	if err := m.resumeToStop(ctx, c, rn); err != nil {
		return err
	}
	sigName := o.Signal
	if sigName == "" {
		sigName = c.rec.Config.StopSignal
	}
	sig := sigTERM
	if sigName != "" {
		var err error
		if sig, err = ParseSignal(sigName); err != nil {
			return err
		}
	}
	grace := 10 * time.Second
	if o.Timeout != nil {
		grace = time.Duration(*o.Timeout) * time.Second
	} else if c.rec.Config.StopTimeout != nil {
		grace = time.Duration(*c.rec.Config.StopTimeout) * time.Second
	}
	m.mu.Lock()
	rn.stopping = true
	m.mu.Unlock()
	if err := m.resumeToStop(ctx, c, rn); err != nil {
		return err
	}
	m.emit(events.ActionKill, c, map[string]string{"signal": fmt.Sprint(sig)})
	if err := rn.proc.Signal(ctx, sig); err != nil {
		m.log.Warn("stop signal", "id", c.rec.ID, "err", err)
	}
	var timeout <-chan time.Time
	if grace >= 0 {
		timeout = time.After(grace)
	}
	select {
	case <-rn.done:
	case <-timeout:
		m.emit(events.ActionKill, c, map[string]string{"signal": "9"})
		rn.proc.Signal(context.Background(), sigKILL)
		select {
		case <-rn.done:
		case <-time.After(5 * time.Second):
			m.mu.Lock()
			rn.killed = true
			m.mu.Unlock()
			rn.machine.Kill()
			<-rn.done
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	m.emit(events.ActionStop, c, nil)
	return nil
}

func (m *Manager) restart(ctx context.Context, ref string, o StopOptions) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := m.stopLocked(ctx, c, o, false); err != nil {
		return err
	}
	if err := m.setState(c, func(r *record) { r.ManuallyStopped = false }); err != nil {
		return err
	}
	if err := m.boot(ctx, c); err != nil {
		return err
	}
	m.emit(events.ActionRestart, c, nil)
	return nil
}

func (m *Manager) kill(ctx context.Context, ref, signal string) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	sig := sigKILL
	if signal != "" {
		if sig, err = ParseSignal(signal); err != nil {
			return err
		}
	}
	m.mu.Lock()
	rn := c.run
	if rn != nil && sig == sigKILL {
		rn.stopping = true // a killed container is not restarted by its policy
	}
	m.mu.Unlock()
	if rn == nil {
		return errf(ErrConflict, "cannot kill container %s: it is not running", ref)
	}
	if sig == sigKILL {
		// Like a stop: unless-stopped stays down at the next engine start.
		m.setState(c, func(r *record) { r.ManuallyStopped = true })
	}
	if err := m.resumeToStop(ctx, c, rn); err != nil {
		return err
	}
	m.emit(events.ActionKill, c, map[string]string{"signal": fmt.Sprint(sig)})
	if err := rn.proc.Signal(ctx, sig); err != nil {
		return fmt.Errorf("kill %s: %w", ref, err)
	}
	return nil
}

func (m *Manager) remove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	_, still := m.byID[c.rec.ID]
	rn := c.run
	st := c.rec.State
	m.mu.Unlock()
	if !still {
		return errf(ErrNotFound, "no such container: %s", ref)
	}
	if rn != nil || st == container.StateRestarting {
		if !o.Force {
			return errf(ErrConflict, "cannot remove container %s: it is running; stop it first or use force (rm -f)", ref)
		}
		m.cancelRestart(c)
		if rn != nil {
			m.mu.Lock()
			rn.stopping = true
			m.mu.Unlock()
			m.emit(events.ActionKill, c, map[string]string{"signal": "9"})
			rn.proc.Signal(ctx, sigKILL)
			select {
			case <-rn.done:
			case <-time.After(5 * time.Second):
				m.mu.Lock()
				rn.killed = true
				m.mu.Unlock()
				rn.machine.Kill()
				<-rn.done
			}
		}
	}
	if err := m.destroy(c); err != nil {
		return err
	}
	if o.RemoveVolumes {
		m.removeAnonymousVolumes(c.rec.Mounts)
	}
	return nil
}

// destroy deletes a stopped container (c.op held): state first, then files.
func (m *Manager) destroy(c *ctr) error {
	if err := m.setState(c, func(r *record) { r.State = container.StateRemoving }); err != nil {
		return err
	}
	c.log.Remove()
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove container files: %w", err)
	}
	if err := m.del(c.rec.ID); err != nil {
		return err
	}
	m.releaseNetworks(c.rec.ID, c.rec.Networks)
	for _, a := range c.rec.Networks {
		m.emitNetwork(events.ActionDisconnect, a, c.rec.ID)
	}
	m.mu.Lock()
	delete(m.byID, c.rec.ID)
	if m.names[c.rec.Name] == c.rec.ID {
		delete(m.names, c.rec.Name)
	}
	for id, e := range m.execs {
		if e.ctrID == c.rec.ID {
			delete(m.execs, id)
		}
	}
	m.mu.Unlock()
	m.emit(events.ActionDestroy, c, nil)
	close(c.removed)
	return nil
}

func (m *Manager) wait(ctx context.Context, ref string, cond container.WaitCondition) (<-chan container.WaitResponse, error) {
	c, err := m.get(ref)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	exited := c.exited
	running := c.run != nil || c.rec.State == container.StateRestarting
	m.mu.Unlock()
	var until <-chan struct{}
	switch cond {
	case "", container.WaitConditionNotRunning:
		until = exited
		if !running {
			closed := make(chan struct{})
			close(closed)
			until = closed
		}
	case container.WaitConditionNextExit:
		if !running {
			// the next run's exit: wait for a start, then its exit
			until = m.nextExit(c, exited)
		} else {
			until = exited
		}
	case container.WaitConditionRemoved:
		until = c.removed
	default:
		return nil, errf(ErrInvalid, "invalid wait condition %q (not-running, next-exit, removed)", cond)
	}
	out := make(chan container.WaitResponse, 1)
	go func() {
		defer close(out)
		select {
		case <-until:
		case <-ctx.Done():
			return
		}
		m.mu.Lock()
		resp := container.WaitResponse{StatusCode: int64(c.rec.ExitCode)}
		if c.rec.Error != "" {
			resp.Error = &container.WaitExitError{Message: c.rec.Error}
		}
		m.mu.Unlock()
		out <- resp
	}()
	return out, nil
}

// nextExit returns a channel closed when the run after `old` ends (or the
// container is removed).
func (m *Manager) nextExit(c *ctr, old chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m.mu.Lock()
			cur := c.exited
			m.mu.Unlock()
			if cur != old {
				select {
				case <-cur:
				case <-c.removed:
				}
				return
			}
			select {
			case <-c.removed:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return done
}

func (m *Manager) restore(ctx context.Context) error {
	// Directories without a record are leftovers of an interrupted create.
	entries, _ := os.ReadDir(m.cfg.Root.Containers())
	m.mu.Lock()
	for _, e := range entries {
		if _, ok := m.byID[e.Name()]; !ok {
			os.RemoveAll(filepath.Join(m.cfg.Root.Containers(), e.Name()))
		}
	}
	all := make([]*ctr, 0, len(m.byID))
	for _, c := range m.byID {
		all = append(all, c)
	}
	m.mu.Unlock()
	m.migrateImageConfigIDs(ctx, all)
	var toStart []*ctr
	for _, c := range all {
		r := c.rec
		switch r.State {
		case container.StateRemoving, container.StateDead:
			if err := m.destroy(c); err != nil {
				m.log.Error("finish removal", "id", r.ID, "err", err)
			}
			continue
		case container.StateRunning, container.StateRestarting:
			if m.cfg.KillStale != nil { // also catches a VM whose pid was never recorded
				if err := m.cfg.KillStale(r.VMPID, c.vmDir()); err != nil {
					m.log.Warn("kill stale VM", "id", r.ID, "pid", r.VMPID, "err", err)
				}
			}
			code := 255
			if r.State == container.StateRestarting {
				code = r.ExitCode
			}
			m.setState(c, func(r *record) {
				r.State = container.StateExited
				r.ExitCode = code
				if code == 255 {
					r.Error = "the engine stopped while the container was running"
				}
				r.FinishedAt = time.Now().UTC()
				r.VMPID, r.GuestPID, r.IP = 0, 0, ""
			})
		}
		os.RemoveAll(c.vmDir())
		if c.rec.HostConfig.AutoRemove && c.rec.State == container.StateExited {
			if m.destroy(c) == nil {
				m.removeAnonymousVolumes(c.rec.Mounts)
			}
			continue
		}
		if c.rec.HasBeenStarted && shouldRestart(c.rec.HostConfig.RestartPolicy, c.rec.ExitCode, c.rec.ManuallyStopped, c.rec.RestartCount) {
			toStart = append(toStart, c)
		}
	}
	for _, c := range toStart {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			c.op.Lock()
			defer c.op.Unlock()
			if m.isClosed() {
				return
			}
			if err := m.boot(context.Background(), c); err != nil {
				m.log.Error("restart at engine start", "id", c.rec.ID, "err", err)
			}
		}()
	}
	return nil
}

// migrateImageConfigIDs fills ImageConfigID of records written before it
// existed, from the image they were created from (looked up by manifest
// digest). A record whose image is gone keeps showing the manifest digest.
func (m *Manager) migrateImageConfigIDs(ctx context.Context, all []*ctr) {
	if m.cfg.Images == nil {
		return
	}
	for _, c := range all {
		m.mu.Lock()
		r := c.rec
		m.mu.Unlock()
		if r.ImageConfigID != "" || r.ImageID == "" {
			continue
		}
		img, _, err := m.cfg.Images.Resolve(ctx, r.ImageID, platformOf(r.Arch))
		if err != nil {
			continue
		}
		id, err := img.ConfigName()
		if err != nil {
			continue
		}
		if err := m.setState(c, func(r *record) { r.ImageConfigID = id.String() }); err != nil {
			m.log.Warn("record image ID", "id", r.ID, "err", err)
		}
	}
}

func (m *Manager) shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	all := make([]*ctr, 0, len(m.byID))
	for _, c := range m.byID {
		if c.restartC != nil {
			close(c.restartC)
			c.restartC = nil
		}
		all = append(all, c)
	}
	m.mu.Unlock()
	m.bg.Wait() // restarts begun by Restore finish (or see closed) first
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.op.Lock() // waits for a boot in progress
			defer c.op.Unlock()
			m.mu.Lock()
			running := c.run != nil
			m.mu.Unlock()
			if !running {
				return
			}
			// Not a manual stop: the restart policy still applies next time.
			if err := m.stopLocked(ctx, c, StopOptions{}, false); err != nil {
				m.log.Error("stop at shutdown", "id", c.rec.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}
