//go:build linux

package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

// systemState is what SetupSystem and DHCP configured; the /etc files are
// rendered from it.
type systemState struct {
	hostname   string
	dns        []string
	dnsSearch  []string
	dnsOptions []string
	dnsFromAPI bool
	hosts      []*api.HostEntry
	// embeddedDNS: resolv.conf names the agent's own server (dns.go),
	// which forwards to dns.
	embeddedDNS bool
}

var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$`)

func (a *Agent) hostname() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sys.hostname
}

func (a *Agent) SetupSystem(_ context.Context, req *api.SetupSystemRequest) (*api.Empty, error) {
	if req.Hostname != "" && !hostnameRE.MatchString(req.Hostname) {
		return nil, status.Errorf(codes.InvalidArgument, "hostname %q: use letters, digits, dots and dashes (max 63)", req.Hostname)
	}
	for _, s := range req.DnsServers {
		if net.ParseIP(s) == nil {
			return nil, status.Errorf(codes.InvalidArgument, "DNS server %q is not an IP address", s)
		}
	}
	for _, h := range req.Hosts {
		if net.ParseIP(h.Ip) == nil || len(h.Names) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "hosts entry %q %v: need an IP address and at least one name", h.Ip, h.Names)
		}
		for _, n := range h.Names {
			if strings.ContainsAny(n, " \t\n#") {
				return nil, status.Errorf(codes.InvalidArgument, "hosts entry name %q contains whitespace or #", n)
			}
		}
	}
	for k, v := range req.Sysctls {
		if err := setSysctl(k, v); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	if len(req.Entropy) > 0 {
		if err := addEntropy(req.Entropy); err != nil {
			a.warn("seeding entropy: %v", err)
		}
	}
	a.mu.Lock()
	if req.Hostname != "" {
		a.sys.hostname = req.Hostname
		if a.cfg.PID1 {
			unix.Sethostname([]byte(req.Hostname))
		}
	}
	if len(req.DnsServers) > 0 || len(req.DnsSearch) > 0 || len(req.DnsOptions) > 0 {
		a.sys.dns, a.sys.dnsSearch, a.sys.dnsOptions, a.sys.dnsFromAPI = req.DnsServers, req.DnsSearch, req.DnsOptions, true
	}
	if req.Hosts != nil {
		a.sys.hosts = req.Hosts
	}
	a.mu.Unlock()
	if req.EmbeddedDns {
		if err := a.startDNS(); err != nil {
			return nil, status.Errorf(codes.Unavailable, "embedded DNS server on %s: %v", a.cfg.DNSAddr, err)
		}
		a.mu.Lock()
		a.sys.embeddedDNS = true
		a.mu.Unlock()
	}
	if err := a.writeEtc(); err != nil {
		return nil, status.Errorf(codes.Internal, "writing /etc files: %v", err)
	}
	return &api.Empty{}, nil
}

func setSysctl(k, v string) error {
	if k == "" || strings.Contains(k, "..") || strings.ContainsAny(k, " \x00") {
		return fmt.Errorf("sysctl %q: not a sysctl name", k)
	}
	p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		return fmt.Errorf("sysctl %s=%s: %v", k, v, err)
	}
	return nil
}

// addEntropy mixes b into the kernel pool and credits it (RNDADDENTROPY),
// so getrandom() stops blocking early in boot.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 8+len(b))
	*(*int32)(unsafe.Pointer(&buf[0])) = int32(len(b) * 8)
	*(*int32)(unsafe.Pointer(&buf[4])) = int32(len(b))
	copy(buf[8:], b)
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// writeEtc renders hosts, hostname and resolv.conf into the state dir,
// rewriting in place (they are bind-mounted: a rename would detach them).
func (a *Agent) writeEtc() error {
	a.mu.Lock()
	s := a.sys
	a.mu.Unlock()
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if s.hostname != "" {
		fmt.Fprintf(&hosts, "127.0.1.1\t%s\n", s.hostname)
	}
	for _, h := range s.hosts {
		fmt.Fprintf(&hosts, "%s\t%s\n", h.Ip, strings.Join(h.Names, " "))
	}
	var resolv strings.Builder
	options := s.dnsOptions
	if s.embeddedDNS {
		// Only the agent's server: it answers peers and forwards the rest
		// to s.dns. ndots:0 as Docker writes it: a bare name is asked as
		// is first, not through every search domain.
		host, _, _ := net.SplitHostPort(a.dnsListenAddr())
		fmt.Fprintf(&resolv, "nameserver %s\n", host)
		options = append([]string{"ndots:0"}, options...)
	} else {
		for _, d := range s.dns {
			fmt.Fprintf(&resolv, "nameserver %s\n", d)
		}
	}
	if len(s.dnsSearch) > 0 {
		fmt.Fprintf(&resolv, "search %s\n", strings.Join(s.dnsSearch, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&resolv, "options %s\n", strings.Join(options, " "))
	}
	dir := filepath.Join(a.cfg.StateDir, "etc")
	for name, content := range map[string]string{"hosts": hosts.String(), "hostname": s.hostname + "\n", "resolv.conf": resolv.String()} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) SetTime(_ context.Context, req *api.SetTimeRequest) (*api.Empty, error) {
	if req.UnixNanos <= 0 {
		return nil, status.Error(codes.InvalidArgument, "set time: unix_nanos must be positive")
	}
	if !a.cfg.PID1 {
		return nil, status.Error(codes.FailedPrecondition, "set time: only the VM's init may set the clock")
	}
	ts := unix.NsecToTimespec(req.UnixNanos)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, status.Errorf(codes.Internal, "set time: %v", err)
	}
	return &api.Empty{}, nil
}

var mountFlagNames = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME,
	"relatime": unix.MS_RELATIME, "bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC,
	"rw": 0, "defaults": 0,
}

func (a *Agent) Mount(_ context.Context, req *api.MountRequest) (*api.Empty, error) {
	if req.Target == "" || !strings.HasPrefix(req.Target, "/") {
		return nil, status.Errorf(codes.InvalidArgument, "mount target %q: must be an absolute path", req.Target)
	}
	var flags uintptr
	var data []string
	for _, o := range req.Options {
		if f, ok := mountFlagNames[o]; ok {
			flags |= f
		} else {
			data = append(data, o)
		}
	}
	bind := flags&unix.MS_BIND != 0
	// A bind of a single file (docker -v /host/app.conf:/etc/app.conf)
	// needs a file to mount on, not a directory.
	fileBind := false
	if bind {
		st, err := os.Stat(req.Source)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "mount: bind source %s: %v", req.Source, err)
		}
		fileBind = !st.IsDir()
	}
	var target *os.File
	var err error
	var reopen func() (*os.File, error) // the target again, now with the mount on it
	if req.InContainer {
		a.mu.Lock()
		c := a.container
		a.mu.Unlock()
		if c == nil {
			return nil, status.Error(codes.FailedPrecondition, "mount in container: no container yet (CreateContainer first)")
		}
		if fileBind {
			target, err = fileInRoot(c.root, req.Target)
			reopen = func() (*os.File, error) { return fileInRoot(c.root, req.Target) }
		} else {
			target, err = mkdirAllInRoot(c.root, req.Target, 0o755)
			reopen = func() (*os.File, error) { return mkdirAllInRoot(c.root, req.Target, 0o755) }
		}
	} else {
		if !a.cfg.PID1 {
			return nil, status.Error(codes.FailedPrecondition, "mount: a test agent only mounts inside its container")
		}
		if err = os.MkdirAll(req.Target, 0o755); err == nil {
			target, err = os.OpenFile(req.Target, unix.O_PATH|unix.O_DIRECTORY, 0)
		}
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "mount target %s: %v", req.Target, err)
	}
	defer target.Close()
	if err := unix.Mount(req.Source, fdPath(target), req.Fstype, flags, strings.Join(data, ",")); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "mount %s on %s (%s): %v", req.Source, req.Target, req.Fstype, err)
	}
	// A bind mount ignores MS_RDONLY and friends until it is remounted.
	if extra := flags &^ (unix.MS_BIND | unix.MS_REC); bind && extra != 0 {
		t := target
		if reopen != nil {
			if t, err = reopen(); err != nil {
				return nil, status.Errorf(codes.Internal, "mount %s: reopening the target: %v", req.Target, err)
			}
			defer t.Close()
		} else if t, err = os.OpenFile(req.Target, unix.O_PATH, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "mount %s: reopening the target: %v", req.Target, err)
		} else {
			defer t.Close()
		}
		if err := unix.Mount("", fdPath(t), "", unix.MS_REMOUNT|unix.MS_BIND|extra, ""); err != nil {
			unix.Unmount(fdPath(t), unix.MNT_DETACH)
			return nil, status.Errorf(codes.FailedPrecondition, "mount %s read-only/with options: %v", req.Target, err)
		}
	}
	return &api.Empty{}, nil
}

func (a *Agent) RegisterBinfmt(_ context.Context, req *api.RegisterBinfmtRequest) (*api.Empty, error) {
	if req.Name == "" || strings.ContainsAny(req.Name, ":/") || (req.Type != "M" && req.Type != "E") || req.Interpreter == "" {
		return nil, status.Error(codes.InvalidArgument, "binfmt: need a name (no ':' or '/'), type M or E, and an interpreter")
	}
	if !a.cfg.PID1 {
		return nil, status.Error(codes.FailedPrecondition, "binfmt: only the VM's init registers handlers")
	}
	const dir = "/proc/sys/fs/binfmt_misc"
	if _, err := os.Stat(dir + "/register"); err != nil {
		if err := unix.Mount("binfmt_misc", dir, "binfmt_misc", 0, ""); err != nil {
			return nil, status.Errorf(codes.Unavailable, "binfmt_misc is not available in this kernel: %v", err)
		}
	}
	esc := func(b []byte) string {
		var s strings.Builder
		for _, c := range b {
			fmt.Fprintf(&s, `\x%02x`, c)
		}
		return s.String()
	}
	magic := string(req.Magic)
	mask := string(req.Mask)
	if req.Type == "M" {
		magic, mask = esc(req.Magic), esc(req.Mask)
	}
	line := fmt.Sprintf(":%s:%s:%s:%s:%s:%s:%s", req.Name, req.Type, strconv.Itoa(int(req.Offset)), magic, mask, req.Interpreter, req.Flags)
	if err := os.WriteFile(dir+"/register", []byte(line), 0); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "binfmt register %s: %v", req.Name, err)
	}
	return &api.Empty{}, nil
}

func (a *Agent) Sync(context.Context, *api.Empty) (*api.Empty, error) {
	unix.Sync()
	return &api.Empty{}, nil
}

func (a *Agent) Shutdown(_ context.Context, req *api.ShutdownRequest) (*api.Empty, error) {
	a.mu.Lock()
	already := a.shutdown
	a.shutdown = true
	for ifname, stop := range a.stopLease {
		stop() // no renewals while the VM goes down
		delete(a.stopLease, ifname)
	}
	a.mu.Unlock()
	if already {
		return &api.Empty{}, nil
	}
	grace := time.Duration(req.GraceMs) * time.Millisecond
	if req.GraceMs == 0 {
		grace = 5 * time.Second
	}
	a.stopAll(grace)
	powerOff := a.cfg.PID1 && !req.NoPowerOff
	go func() {
		// Let the reply reach the host first.
		time.Sleep(100 * time.Millisecond)
		if powerOff {
			a.cfg.Logf("berth-agent: powering off")
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
		a.stopOnce.Do(func() { close(a.stopServe) })
	}()
	return &api.Empty{}, nil
}

// stopAll: SIGTERM every running process, wait up to grace, SIGKILL the
// rest, then sync and unmount the container.
func (a *Agent) stopAll(grace time.Duration) {
	a.mu.Lock()
	var running []*process
	for _, p := range a.procs {
		p.mu.Lock()
		if p.state == stateRunning {
			running = append(running, p)
			unix.Kill(p.pid, unix.SIGTERM)
		}
		p.mu.Unlock()
	}
	c := a.container
	a.mu.Unlock()
	deadline := time.After(grace)
	for _, p := range running {
		select {
		case <-p.exited:
		case <-deadline:
		}
	}
	for _, p := range running {
		p.mu.Lock()
		if p.state == stateRunning {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		p.mu.Unlock()
	}
	for _, p := range running {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			a.warn("process %s did not die after SIGKILL", p.id)
		}
	}
	unix.Sync()
	if c != nil {
		// Read-only first: the superblock is then clean even if another
		// namespace still holds a reference to the mount.
		// Only for a device we mounted: on a bind mount (test agents) this
		// would make the host's filesystem read-only.
		if c.device != "" {
			unix.Mount("", c.root, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		if err := unmountTree(c.root); err != nil {
			a.warn("unmounting the container: %v", err)
		}
		a.mu.Lock()
		a.container = nil
		a.mu.Unlock()
	}
	unix.Sync()
}
