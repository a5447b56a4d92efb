//go:build linux

package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

type ctxT = context.Context

// Version is the agent's version, reported by Health (set with -ldflags).
var Version = "dev"

// Config says where the agent keeps its state and how much of the machine
// it owns.
type Config struct {
	// PID1: the agent is the VM's init. It then owns the machine: Shutdown
	// powers off. Otherwise it is a test agent in its own mount namespace
	// and Shutdown ends Serve.
	PID1 bool
	// StateDir holds the container root mount and the /etc files
	// (default /run/berth).
	StateDir string
	// CgroupDir is the cgroup2 directory container processes go into
	// ("" = none; Stats is then Unavailable).
	CgroupDir string
	// SelfExe is the agent binary re-executed as the process helper
	// (default /proc/self/exe).
	SelfExe string
	// Logf logs agent events (default: log.Printf).
	Logf func(format string, args ...any)
	// DNSAddr is where the embedded DNS server listens once SetupSystem
	// asks for it (default DefaultDNSAddr; tests use a loopback port).
	DNSAddr string
}

// Agent implements the berth.agent.v1 service.
type Agent struct {
	api.UnimplementedAgentServer
	cfg    Config
	reaper *reaper
	start  time.Time

	mu        sync.Mutex
	procs     map[string]*process
	initProc  *process
	container *container
	creating  bool
	sys       systemState
	warnings  []string
	modules   []string
	initSecs  float64
	cgroupFD  int
	shutdown  bool
	stopLease map[string]func() // per interface: ends its DHCP lease keeper
	dnsState

	srvMu     sync.Mutex
	servers   []*grpc.Server
	stopServe chan struct{}
	stopOnce  sync.Once
}

// New prepares an agent; Boot (PID 1 only) and Serve run it.
func New(cfg Config) (*Agent, error) {
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/berth"
	}
	if cfg.SelfExe == "" {
		cfg.SelfExe = "/proc/self/exe"
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "etc"), 0o755); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, start: time.Now(), procs: map[string]*process{}, cgroupFD: -1, stopServe: make(chan struct{})}
	a.sys.hostname, _ = os.Hostname()
	if !cfg.PID1 {
		// Orphans of our processes come back to us, not to the host's init.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	a.reaper = newReaper()
	if cfg.CgroupDir != "" {
		if err := os.MkdirAll(cfg.CgroupDir, 0o755); err != nil {
			a.warn("cgroup %s: %v", cfg.CgroupDir, err)
		} else if fd, err := unix.Open(cfg.CgroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			a.warn("cgroup %s: %v", cfg.CgroupDir, err)
		} else {
			a.cgroupFD = fd
		}
	}
	if err := a.writeEtc(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	a.warnings = append(a.warnings, msg)
	a.mu.Unlock()
	a.cfg.Logf("berth-agent: warning: %s", msg)
}

// NewServer returns a gRPC server for the agent. Keepalive pings notice a
// host that went away without closing the connection.
func (a *Agent) NewServer() *grpc.Server {
	s := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(8<<20),
		// Windows for what the host sends (stdin, copy-in, port-forward):
		// limits, not allocations.
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(4<<20),
	)
	api.RegisterAgentServer(s, a)
	a.srvMu.Lock()
	a.servers = append(a.servers, s)
	a.srvMu.Unlock()
	return s
}

// Serve serves on every listener until a Shutdown (test agents) or forever
// (PID 1 powers off from Shutdown instead).
func (a *Agent) Serve(ls ...net.Listener) error {
	if a.cfg.PID1 && a.initSecs == 0 {
		a.initSecs = uptime()
	}
	errc := make(chan error, len(ls))
	var mine []*grpc.Server
	for _, l := range ls {
		s := a.NewServer()
		mine = append(mine, s)
		go func(l net.Listener) { errc <- s.Serve(l) }(l)
	}
	select {
	case <-a.stopServe:
		a.srvMu.Lock()
		for _, s := range a.servers {
			s.Stop()
		}
		a.srvMu.Unlock()
		return nil
	case err := <-errc:
		// One listener failed: stop the others too, so the caller can
		// start over with fresh listeners.
		for _, s := range mine {
			s.Stop()
		}
		a.srvMu.Lock()
		a.servers = slices.DeleteFunc(a.servers, func(s *grpc.Server) bool { return slices.Contains(mine, s) })
		a.srvMu.Unlock()
		return err
	}
}

// Uptime is the time since the kernel started, from /proc/uptime.
func Uptime() float64 { return uptime() }

func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return up
}

func (a *Agent) Health(_ context.Context, req *api.HealthRequest) (*api.HealthResponse, error) {
	var uts unix.Utsname
	unix.Uname(&uts)
	a.mu.Lock()
	r := &api.HealthResponse{
		Version: Version, Arch: runtime.GOARCH, Kernel: unix.ByteSliceToString(uts.Release[:]),
		UptimeSeconds: uptime(), InitSeconds: a.initSecs, Pid1: a.cfg.PID1,
		Warnings: append([]string(nil), a.warnings...), Modules: append([]string(nil), a.modules...),
	}
	a.mu.Unlock()
	if req.Accounting {
		fds, _ := os.ReadDir("/proc/self/fd")
		r.Goroutines, r.OpenFds, r.Zombies, r.RssBytes = int32(runtime.NumGoroutine()), int32(len(fds)-1), int32(countZombies()), rss()
	}
	return r, nil
}

// countZombies counts our children that have exited but were not reaped.
func countZombies() int {
	me := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state byte
		var ppid int
		fmt.Sscanf(s[i+1:], " %c %d", &state, &ppid)
		if state == 'Z' && ppid == me {
			n++
		}
	}
	return n
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

func (a *Agent) lookup(id string) (*process, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.procs[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no process %q in this VM", id)
	}
	return p, nil
}

func (a *Agent) CreateProcess(_ context.Context, req *api.CreateProcessRequest) (*api.Empty, error) {
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "create process: empty id")
	}
	if err := validateSpec(req.Spec); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shutdown {
		return nil, status.Error(codes.FailedPrecondition, "the VM is shutting down")
	}
	if _, ok := a.procs[req.Id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "process %q already exists", req.Id)
	}
	if a.container == nil {
		return nil, status.Error(codes.FailedPrecondition, "no container in this VM yet: call CreateContainer first")
	}
	if !req.Exec && a.initProc != nil {
		select {
		case <-a.initProc.exited:
			// A restart in the same VM: the new init mounts a fresh /proc;
			// drop the dead one's.
			unix.Unmount(filepath.Join(a.container.root, "proc"), unix.MNT_DETACH)
		default:
			return nil, status.Errorf(codes.AlreadyExists, "the container already has its init process %q running; use exec for more", a.initProc.id)
		}
	}
	p, err := newProcess(req.Id, req.Spec, req.Exec)
	if err != nil {
		return nil, err
	}
	a.procs[req.Id] = p
	if !req.Exec {
		a.initProc = p
	}
	return &api.Empty{}, nil
}

func (a *Agent) StartProcess(_ context.Context, req *api.ProcessRequest) (*api.StartProcessResponse, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.state != stateCreated {
		st := p.state
		p.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "process %q was already started (it is %s)", req.Id, st)
	}
	p.state = "starting"
	p.mu.Unlock()

	a.mu.Lock()
	c, init := a.container, a.initProc
	a.mu.Unlock()
	initPid := 0
	if p.exec {
		init.mu.Lock()
		initPid = init.pid
		running := init.state == stateRunning
		init.mu.Unlock()
		if !running {
			p.mu.Lock()
			p.state = stateCreated
			p.mu.Unlock()
			return nil, status.Errorf(codes.FailedPrecondition, "exec %q: the container is not running", req.Id)
		}
	}
	pid, ch, err := a.spawn(p, c, initPid)
	p.closeChildFiles()
	p.startPumps()
	if err != nil {
		code := 126
		if status.Code(err) == codes.NotFound {
			code = 127
		}
		if ch != nil {
			go func() { <-ch }()
		}
		p.mu.Lock()
		p.pid = pid
		p.mu.Unlock()
		p.markExited(code, 0)
		if p.stdin != nil && p.ptmx == nil {
			p.closeStdin()
		}
		return nil, err
	}
	p.mu.Lock()
	p.pid, p.state = pid, stateRunning
	p.mu.Unlock()
	go func() {
		ws := <-ch
		code, sig := exitCode(ws)
		p.markExited(code, sig)
	}()
	return &api.StartProcessResponse{Pid: int32(pid)}, nil
}

func (a *Agent) SignalProcess(_ context.Context, req *api.SignalProcessRequest) (*api.Empty, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	if req.Signal <= 0 || req.Signal > 64 {
		return nil, status.Errorf(codes.InvalidArgument, "signal %d is not a signal number (1-64)", req.Signal)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q is not running (it is %s)", req.Id, p.state)
	}
	if err := unix.Kill(p.pid, syscall.Signal(req.Signal)); err != nil {
		return nil, status.Errorf(codes.Internal, "signal process %q: %v", req.Id, err)
	}
	return &api.Empty{}, nil
}

func (a *Agent) WaitProcess(ctx context.Context, req *api.ProcessRequest) (*api.WaitProcessResponse, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &api.WaitProcessResponse{ExitCode: int32(p.exitCode), Signal: int32(p.signal), ExitedUnixNanos: p.exitedAt.UnixNano()}, nil
}

func (a *Agent) CloseStdin(_ context.Context, req *api.ProcessRequest) (*api.Empty, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	if p.stdin == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q has no stdin (create it with stdin or tty)", req.Id)
	}
	p.closeStdin()
	return &api.Empty{}, nil
}

func (a *Agent) ResizeTTY(_ context.Context, req *api.ResizeTTYRequest) (*api.Empty, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	if p.ptmx == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q has no tty", req.Id)
	}
	if req.Rows == 0 || req.Cols == 0 || req.Rows > 0xFFFF || req.Cols > 0xFFFF {
		return nil, status.Errorf(codes.InvalidArgument, "tty size %dx%d: rows and cols must be 1-65535", req.Rows, req.Cols)
	}
	if err := pty.Setsize(p.ptmx, &pty.Winsize{Rows: uint16(req.Rows), Cols: uint16(req.Cols)}); err != nil {
		return nil, status.Errorf(codes.Internal, "resize tty of %q: %v", req.Id, err)
	}
	return &api.Empty{}, nil
}

func (a *Agent) DeleteProcess(_ context.Context, req *api.ProcessRequest) (*api.Empty, error) {
	p, err := a.lookup(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == stateRunning || st == "starting" {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q is still running: signal it and wait first", req.Id)
	}
	a.mu.Lock()
	delete(a.procs, req.Id)
	a.mu.Unlock()
	close(p.gone)
	if st == stateCreated {
		p.closeChildFiles()
		close(p.out)
		p.markExited(0, 0)
	}
	p.closeAll()
	return &api.Empty{}, nil
}

func (a *Agent) ListProcesses(context.Context, *api.Empty) (*api.ListProcessesResponse, error) {
	a.mu.Lock()
	ps := make([]*process, 0, len(a.procs))
	for _, p := range a.procs {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	resp := &api.ListProcessesResponse{}
	for _, p := range ps {
		resp.Processes = append(resp.Processes, p.info())
	}
	sort.Slice(resp.Processes, func(i, j int) bool { return resp.Processes[i].Id < resp.Processes[j].Id })
	return resp, nil
}

// Stdio: see the .proto for the contract.
func (a *Agent) Stdio(stream api.Agent_StdioServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p, err := a.lookup(first.ProcessId)
	if err != nil {
		return err
	}
	var outKick chan struct{}
	if first.AttachStdin && p.stdin == nil {
		return status.Errorf(codes.FailedPrecondition, "process %q has no stdin (create it with stdin or tty)", p.id)
	}
	if first.AttachOutput {
		// The newest attach wins: an old one may linger until the host's
		// dead connection times out. Kick it and wait (briefly) until it
		// let go, so frames stay in order.
		p.mu.Lock()
		old := p.outKick
		kick := make(chan struct{})
		released := make(chan struct{})
		p.outKick = kick
		oldReleased := p.prevReleased
		p.prevReleased = released
		p.mu.Unlock()
		if old != nil {
			close(old)
			select {
			case <-oldReleased:
			case <-time.After(2 * time.Second):
			}
		}
		defer func() {
			p.mu.Lock()
			if p.outKick == kick {
				p.outKick = nil
			}
			p.mu.Unlock()
			close(released)
		}()
		outKick = kick
	}
	ctx := stream.Context()
	stdinDone := make(chan struct{})
	if first.AttachStdin {
		go func() {
			defer close(stdinDone)
			if len(first.Data) > 0 {
				if _, err := p.stdin.Write(first.Data); err != nil {
					return
				}
			}
			for {
				f, err := stream.Recv()
				if err == io.EOF {
					p.closeStdin()
					return
				}
				if err != nil {
					return // the host went away: keep stdin open for a re-attach
				}
				if _, err := p.stdin.Write(f.Data); err != nil {
					return
				}
			}
		}()
	} else {
		close(stdinDone)
	}
	if !first.AttachOutput {
		select {
		case <-stdinDone:
		case <-ctx.Done():
		}
		return nil
	}
	for {
		p.mu.Lock()
		var f *api.StdioFrame
		if len(p.pending) > 0 {
			f, p.pending = p.pending[0], p.pending[1:]
		}
		p.mu.Unlock()
		if f == nil {
			var ok bool
			select {
			case f, ok = <-p.out:
				if !ok {
					return nil
				}
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			case <-outKick:
				return status.Errorf(codes.Aborted, "process %q: another client attached to its output", p.id)
			}
		}
		if err := stream.Send(f); err != nil {
			p.mu.Lock()
			p.pending = append([]*api.StdioFrame{f}, p.pending...)
			p.mu.Unlock()
			return err
		}
	}
}

// SetBootInfo records what Boot did, for Health.
func (a *Agent) SetBootInfo(warnings, modules []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.warnings = append(a.warnings, warnings...)
	a.modules = modules
}
