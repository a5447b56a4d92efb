//go:build linux

package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

// Process states.
const (
	stateCreated = "created"
	stateRunning = "running"
	stateExited  = "exited"
)

// Output plumbing sizes.
const (
	pipeSize  = 1 << 20
	readChunk = 256 << 10
	minRead   = 4 << 10 // when FIONREAD cannot say (EOF, a blocking pty)
)

// maxSpecBytes bounds args+env: the kernel refuses more at exec (E2BIG)
// with a far less helpful message.
const maxSpecBytes = 1 << 20

// process is one container process and its stdio plumbing. Stdio is
// created with the process so the host can attach before it starts.
type process struct {
	id   string
	spec *api.ProcessSpec
	exec bool

	mu       sync.Mutex
	state    string
	pid      int
	exitCode int
	signal   int
	exitedAt time.Time
	exited   chan struct{}

	// Agent ends of stdio: stdin (pipe or the pty master), output pipes.
	stdin     *os.File
	stdinOnce sync.Once
	ptmx      *os.File
	stdoutR   *os.File
	stderrR   *os.File
	// Child ends, closed once the child has them.
	childFiles []*os.File

	out          chan *api.StdioFrame // closed when all output reached EOF
	gone         chan struct{}        // closed by DeleteProcess
	pending      []*api.StdioFrame    // frames a failed attach did not deliver
	outKick      chan struct{}        // closed to detach the current output attach
	prevReleased chan struct{}        // closed when the latest attach has let go
}

func validateSpec(spec *api.ProcessSpec) error {
	if spec == nil || len(spec.Args) == 0 {
		return status.Error(codes.InvalidArgument, "process spec has no args: give at least the program to run")
	}
	if spec.Args[0] == "" {
		return status.Error(codes.InvalidArgument, "process spec: args[0] (the program) is empty")
	}
	total := 0
	for _, a := range spec.Args {
		if strings.ContainsRune(a, 0) {
			return status.Error(codes.InvalidArgument, "process spec: an argument contains a NUL byte")
		}
		total += len(a) + 1
	}
	for _, e := range spec.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return status.Errorf(codes.InvalidArgument, "process spec: env entry %.40q is not KEY=VALUE", e)
		}
		if strings.ContainsRune(e, 0) {
			return status.Error(codes.InvalidArgument, "process spec: an env entry contains a NUL byte")
		}
		total += len(e) + 1
	}
	if total > maxSpecBytes {
		return status.Errorf(codes.InvalidArgument, "process spec: args and env total %d bytes, over the %d-byte limit", total, maxSpecBytes)
	}
	for _, rl := range spec.Rlimits {
		if _, ok := rlimitNames[strings.ToLower(strings.TrimPrefix(strings.ToUpper(rl.Type), "RLIMIT_"))]; !ok {
			return status.Errorf(codes.InvalidArgument, "process spec: unknown rlimit %q (use nofile, nproc, core, ...)", rl.Type)
		}
		if rl.Soft > rl.Hard {
			return status.Errorf(codes.InvalidArgument, "process spec: rlimit %s soft %d above hard %d", rl.Type, rl.Soft, rl.Hard)
		}
	}
	return nil
}

var rlimitNames = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

func newProcess(id string, spec *api.ProcessSpec, exec bool) (*process, error) {
	p := &process{id: id, spec: spec, exec: exec, state: stateCreated, exited: make(chan struct{}),
		out: make(chan *api.StdioFrame), gone: make(chan struct{})}
	fail := func(err error) (*process, error) {
		p.closeAll()
		return nil, status.Errorf(codes.Internal, "process %s: stdio: %v", id, err)
	}
	if spec.Tty {
		ptmx, tty, err := pty.Open()
		if err != nil {
			return fail(err)
		}
		p.ptmx, p.stdin = ptmx, ptmx
		p.childFiles = []*os.File{tty, tty, tty}
		if spec.Rows > 0 && spec.Cols > 0 {
			pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(spec.Rows), Cols: uint16(spec.Cols)})
		}
		return p, nil
	}
	var in *os.File
	if spec.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		in, p.stdin = r, w
	} else {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		in = f
	}
	p.childFiles = append(p.childFiles, in)
	for _, dst := range []**os.File{&p.stdoutR, &p.stderrR} {
		r, w, err := os.Pipe()
		if err != nil {
			p.childFiles = append(p.childFiles, nil)
			return fail(err)
		}
		*dst = r
		p.childFiles = append(p.childFiles, w)
		// A bigger pipe lets one read (one gRPC message) carry more: fewer
		// messages per MB is most of the stdout throughput.
		// (Through SyscallConn: Fd() would switch the pipe to blocking
		// mode and tie up a thread per idle reader.)
		if rc, err := r.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
		}
	}
	return p, nil
}

// closeAll releases every fd the process holds (create failure, delete).
func (p *process) closeAll() {
	for _, f := range p.childFiles {
		if f != nil {
			f.Close()
		}
	}
	p.childFiles = nil
	for _, f := range []*os.File{p.stdin, p.ptmx, p.stdoutR, p.stderrR} {
		if f != nil {
			f.Close()
		}
	}
}

func (p *process) closeChildFiles() {
	seen := map[*os.File]bool{}
	for _, f := range p.childFiles {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
	p.childFiles = nil
}

// startPumps copies output to p.out until EOF on every output.
func (p *process) startPumps() {
	var wg sync.WaitGroup
	pump := func(f *os.File, stream api.StdioFrame_Stream) {
		defer wg.Done()
		for {
			data, err := readAvailable(f)
			if len(data) > 0 {
				select {
				case p.out <- &api.StdioFrame{Stream: stream, Data: data}:
				case <-p.gone:
					return // deleted with output nobody read
				}
			}
			if err != nil {
				return // EOF, or EIO from a pty whose last slave fd closed
			}
		}
	}
	if p.ptmx != nil {
		wg.Add(1)
		go pump(p.ptmx, api.StdioFrame_STDOUT)
	} else {
		wg.Add(2)
		go pump(p.stdoutR, api.StdioFrame_STDOUT)
		go pump(p.stderrR, api.StdioFrame_STDERR)
	}
	go func() {
		wg.Wait()
		close(p.out)
	}()
}

// readAvailable waits for output on f and returns what is buffered there (at
// most readChunk; TIOCINQ = FIONREAD), in a buffer of just that size. Waiting holds no buffer: a
// container's idle processes would otherwise pin 256 KiB per stream in the
// agent's heap for as long as they live. At EOF it returns io.EOF.
func readAvailable(f *os.File) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var data []byte
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		size := minRead
		if n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
			size = min(max(n, minRead), readChunk)
		}
		buf := make([]byte, size)
		n, err := unix.Read(int(fd), buf)
		if err == unix.EAGAIN {
			return false // nothing yet: wait in the poller, bufferless
		}
		switch {
		case err != nil:
			rerr = err
		case n == 0:
			rerr = io.EOF
		default:
			data = buf[:n]
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return data, rerr
}

// closeStdin delivers EOF to the process: closes the pipe, or sends the
// terminal's EOF character on a tty.
func (p *process) closeStdin() {
	p.stdinOnce.Do(func() {
		if p.ptmx != nil {
			p.ptmx.Write([]byte{4})
			return
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
	})
}

func (p *process) info() *api.ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &api.ProcessInfo{Id: p.id, Pid: int32(p.pid), State: p.state, ExitCode: int32(p.exitCode), Exec: p.exec}
}

func (p *process) markExited(code, sig int) {
	p.mu.Lock()
	p.state, p.exitCode, p.signal, p.exitedAt = stateExited, code, sig, time.Now()
	p.mu.Unlock()
	close(p.exited)
}

// spawn starts the helper for p. For exec processes it first moves the
// calling OS thread into the container's namespaces, so the child is born
// there; that thread is then discarded (never unlocked).
func (a *Agent) spawn(p *process, c *container, initPid int) (int, <-chan unix.WaitStatus, error) {
	rls := []rlimit{}
	for _, rl := range p.spec.Rlimits {
		res := rlimitNames[strings.ToLower(strings.TrimPrefix(strings.ToUpper(rl.Type), "RLIMIT_"))]
		rls = append(rls, rlimit{Resource: res, Soft: rl.Soft, Hard: rl.Hard})
	}
	hs := helperSpec{
		Root: c.root, Args: p.spec.Args, Env: p.spec.Env, Cwd: p.spec.Cwd, User: p.spec.User,
		Groups: p.spec.AdditionalGroups, Rlimits: rls, Hostname: a.hostname(), MountProc: !p.exec,
		NoNewPriv: p.spec.NoNewPrivileges,
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer specR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		specW.Close()
		return 0, nil, err
	}
	defer errR.Close()

	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: 0}
	if p.spec.Tty {
		sys.Setctty, sys.Ctty = true, 0
	}
	if !p.exec {
		sys.Cloneflags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	}
	if a.cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, a.cgroupFD
	}
	files := []uintptr{p.childFiles[0].Fd(), p.childFiles[1].Fd(), p.childFiles[2].Fd(), specR.Fd(), errW.Fd()}
	attr := &syscall.ProcAttr{Env: []string{}, Files: files, Sys: sys}

	type result struct {
		pid int
		ch  <-chan unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		if p.exec {
			runtime.LockOSThread() // deliberately never unlocked: the thread's namespaces change
			if err := joinNamespaces(initPid); err != nil {
				done <- result{err: status.Errorf(codes.FailedPrecondition, "exec %s: joining the container: %v", p.id, err)}
				return
			}
		}
		pid, ch, err := a.reaper.start(func() (int, error) {
			return syscall.ForkExec(a.cfg.SelfExe, []string{HelperName}, attr)
		})
		done <- result{pid, ch, err}
	}()
	r := <-done
	errW.Close()
	if r.err != nil {
		specW.Close()
		if _, ok := status.FromError(r.err); ok {
			return 0, nil, r.err
		}
		return 0, nil, status.Errorf(codes.Internal, "starting process %s: %v", p.id, r.err)
	}
	go func() {
		json.NewEncoder(specW).Encode(&hs)
		specW.Close()
	}()
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		class, text, _ := strings.Cut(string(msg), ":")
		code := codes.Internal
		switch class {
		case errClassNotFound:
			code = codes.NotFound
		case errClassInvalid:
			code = codes.InvalidArgument
		}
		return r.pid, r.ch, status.Errorf(code, "process %s: %s", p.id, text)
	}
	return r.pid, r.ch, nil
}

// joinNamespaces moves the calling thread into the uts, ipc and pid (for
// children) namespaces of pid. The mount namespace cannot be joined by a
// multi-threaded process; exec'd processes share the agent's, where the
// container's mounts live (see container.go).
func joinNamespaces(pid int) error {
	for _, ns := range []struct {
		name string
		typ  int
	}{{"uts", unix.CLONE_NEWUTS}, {"ipc", unix.CLONE_NEWIPC}, {"pid", unix.CLONE_NEWPID}} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			return err
		}
		err = unix.Setns(int(f.Fd()), ns.typ)
		f.Close()
		if err != nil {
			return fmt.Errorf("setns %s: %w", ns.name, err)
		}
	}
	return nil
}
