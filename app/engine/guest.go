package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/runtime/agent"
	"github.com/berth-dev/berth/runtime/container"
)

// dialGuest adapts runtime/agent's client to the container manager's seam.
func dialGuest(ctx context.Context, conn net.Conn) (container.Guest, error) {
	c, err := agent.ConnectConn(ctx, conn)
	if err != nil {
		return nil, err
	}
	return &guest{c: c}, nil
}

type guest struct {
	c *agent.Client
	n atomic.Int64
}

// guestErr turns a gRPC status into a plain message of the matching kind.
func guestErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = container.ErrNotFound
	case codes.InvalidArgument, codes.OutOfRange:
		kind = container.ErrInvalid
	case codes.FailedPrecondition, codes.AlreadyExists:
		kind = container.ErrConflict
	case codes.Unimplemented:
		kind = container.ErrNotImplemented
	default:
		return fmt.Errorf("guest agent: %s", st.Message())
	}
	return kindErr{kind, st.Message()}
}

type kindErr struct {
	kind error
	msg  string
}

func (e kindErr) Error() string { return e.msg }
func (e kindErr) Unwrap() error { return e.kind }

// hostEntries turns "name:ip" lines (Docker's --add-host form, also used
// for network members) into hosts entries, one per address with its names
// in order.
func hostEntries(lines []string) ([]*agent.HostEntry, error) {
	hosts := []*agent.HostEntry{}
	byIP := map[string]*agent.HostEntry{}
	for _, h := range lines {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			return nil, kindErr{container.ErrInvalid, fmt.Sprintf("--add-host %q: use name:ip", h)}
		}
		if e := byIP[ip]; e != nil {
			e.Names = append(e.Names, name)
			continue
		}
		e := &agent.HostEntry{Ip: ip, Names: []string{name}}
		byIP[ip] = e
		hosts = append(hosts, e)
	}
	return hosts, nil
}

func (g *guest) Setup(ctx context.Context, s container.GuestSetup) (container.GuestInfo, error) {
	hosts, err := hostEntries(s.Hosts)
	if err != nil {
		return container.GuestInfo{}, err
	}
	if err := g.c.SetupSystem(ctx, &agent.SystemConfig{Hostname: s.Hostname, DnsServers: s.DNS, Hosts: hosts, EmbeddedDns: s.EmbeddedDNS}); err != nil {
		return container.GuestInfo{}, guestErr(err)
	}
	if err := g.c.CreateContainer(ctx, &agent.ContainerConfig{Device: s.RootDevice, Fstype: "ext4"}); err != nil {
		return container.GuestInfo{}, fmt.Errorf("mount the container's root disk: %w", guestErr(err))
	}
	if err := g.mount(ctx, s.Mounts); err != nil {
		return container.GuestInfo{}, err
	}
	var info container.GuestInfo
	if s.NoNAT {
		// Loopback only: bring lo up and leave eth0 down (no address, no
		// route): nothing leaves the VM but user networks.
		if _, err := g.c.ConfigureNetwork(ctx, &agent.NetworkConfig{Interface: "lo", Address: "127.0.0.1/8"}); err != nil {
			return info, fmt.Errorf("loopback: %w", guestErr(err))
		}
		return info, nil
	}
	t0 := time.Now()
	ni, err := g.c.DHCP(ctx)
	if err != nil {
		return info, fmt.Errorf("container network (DHCP, %s): %w", time.Since(t0).Round(time.Millisecond), guestErr(err))
	}
	if p, err := netip.ParsePrefix(ni.Address); err == nil {
		info.IP, info.PrefixLen = p.Addr().String(), p.Bits()
	}
	info.Gateway = ni.Gateway
	return info, nil
}

// sharesDir is where the VM mounts its virtiofs shares; the container sees
// only what is bind-mounted from there.
const sharesDir = "/run/berth/shares/"

// mount makes the container's mounts, in order: each virtiofs share once in
// the VM (read-only when every mount of it is, so a :ro-only share is
// read-only down to the VM), then a bind (or tmpfs) into the container.
func (g *guest) mount(ctx context.Context, ms []container.GuestMount) error {
	rw := map[string]bool{}
	var tags []string
	for _, m := range ms {
		if m.Fstype != "" {
			continue
		}
		if _, seen := rw[m.Tag]; !seen {
			tags = append(tags, m.Tag)
		}
		rw[m.Tag] = rw[m.Tag] || !m.ReadOnly
	}
	for _, tag := range tags {
		mc := &agent.MountConfig{Source: tag, Target: sharesDir + tag, Fstype: "virtiofs"}
		if !rw[tag] {
			mc.Options = []string{"ro"}
		}
		if err := g.c.Mount(ctx, mc); err != nil {
			return fmt.Errorf("mount the VM's shared directory %s: %w", tag, guestErr(err))
		}
	}
	for _, m := range ms {
		mc := &agent.MountConfig{Target: m.Target, InContainer: true}
		switch m.Fstype {
		case "tmpfs":
			mc.Source, mc.Fstype, mc.Options = "tmpfs", "tmpfs", append([]string(nil), m.Options...)
		case "":
			mc.Source = sharesDir + m.Tag
			if m.Sub != "" {
				mc.Source += "/" + m.Sub
			}
			mc.Options = []string{"bind"}
		default:
			return fmt.Errorf("mount %s at %s: unknown filesystem type %q", m.Source, m.Target, m.Fstype)
		}
		if m.ReadOnly {
			mc.Options = append(mc.Options, "ro")
		}
		if err := g.c.Mount(ctx, mc); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.Source, m.Target, guestErr(err))
		}
	}
	return nil
}

type process struct {
	g      *guest
	id     string
	pid    int
	att    *agent.Attachment
	cancel context.CancelFunc
	once   sync.Once
	st     agent.ExitStatus
	err    error
}

func (g *guest) Start(ctx context.Context, spec container.ProcessSpec, exec bool) (container.Process, error) {
	id := fmt.Sprintf("p%d", g.n.Add(1))
	if !exec {
		id = "init"
	}
	ps := &agent.ProcessSpec{
		Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd, User: spec.User, Tty: spec.Tty,
		Rows: uint32(spec.Rows), Cols: uint32(spec.Cols), Stdin: spec.Stdin != nil,
	}
	if err := g.c.CreateProcess(ctx, id, ps, exec); err != nil {
		return nil, guestErr(err)
	}
	actx, cancel := context.WithCancel(context.Background())
	att, err := g.c.Attach(actx, id, spec.Stdin, spec.Stdout, spec.Stderr)
	if err != nil {
		cancel()
		g.c.Delete(context.Background(), id)
		return nil, guestErr(err)
	}
	pid, err := g.c.Start(ctx, id)
	if err != nil {
		cancel()
		att.Wait()
		g.c.Delete(context.Background(), id)
		return nil, guestErr(err)
	}
	return &process{g: g, id: id, pid: pid, att: att, cancel: cancel}, nil
}

func (p *process) Wait(ctx context.Context) (int, error) {
	p.once.Do(func() {
		p.st, p.err = p.g.c.Wait(ctx, p.id)
		if p.err == nil {
			// The output streams end after the exit; give them a moment.
			select {
			case <-p.att.Done():
			case <-time.After(5 * time.Second):
			}
		}
		p.cancel()
		p.g.c.Delete(context.Background(), p.id)
	})
	return p.st.Code, guestErr(p.err)
}

func (p *process) Signal(ctx context.Context, sig int) error {
	return guestErr(p.g.c.Signal(ctx, p.id, sig))
}

func (p *process) Resize(ctx context.Context, rows, cols uint) error {
	return guestErr(p.g.c.Resize(ctx, p.id, int(rows), int(cols)))
}

func (p *process) CloseStdin(ctx context.Context) error {
	return guestErr(p.g.c.CloseStdin(ctx, p.id))
}

func (p *process) Pid() int { return p.pid }

func (g *guest) PortForward(ctx context.Context, port int) (net.Conn, error) {
	c, err := g.c.PortForward(ctx, port)
	return c, guestErr(err)
}

func (g *guest) Stats(ctx context.Context) (container.GuestStats, error) {
	s, err := g.c.Stats(ctx)
	if err != nil {
		return container.GuestStats{}, guestErr(err)
	}
	return container.GuestStats{
		CPUUsageNanos: s.CpuUsageUsec * 1000, MemoryUsage: s.MemoryBytes, MemoryLimit: s.MemoryLimitBytes,
		Pids: s.Pids, BlockReadBytes: s.IoReadBytes, BlockWriteBytes: s.IoWriteBytes,
		VMMemoryTotal: s.VmMemoryTotalBytes,
	}, nil
}

func (g *guest) CopyIn(ctx context.Context, dir string, tar io.Reader) error {
	return guestErr(g.c.CopyIn(ctx, dir, tar))
}

func (g *guest) CopyOut(ctx context.Context, path string, w io.Writer) error {
	rc, err := g.c.CopyOut(ctx, path)
	if err != nil {
		return guestErr(err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return guestErr(err)
}

func (g *guest) ConfigureInterface(ctx context.Context, iface, cidr string) error {
	_, err := g.c.ConfigureNetwork(ctx, &agent.NetworkConfig{Interface: iface, Address: cidr})
	return guestErr(err)
}

// SetHosts replaces the hosts list (the agent rewrites /etc/hosts in
// place, so the running container sees it). An empty list is sent as one
// harmless entry, since the agent reads "no hosts" as "unchanged".
func (g *guest) SetHosts(ctx context.Context, lines []string) error {
	hosts, err := hostEntries(lines)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		hosts = []*agent.HostEntry{{Ip: "127.0.0.1", Names: []string{"localhost"}}}
	}
	return guestErr(g.c.SetupSystem(ctx, &agent.SystemConfig{Hosts: hosts}))
}

func (g *guest) SetTime(ctx context.Context, t time.Time) error {
	return guestErr(g.c.SetTime(ctx, t))
}

func (g *guest) Sync(ctx context.Context) error { return guestErr(g.c.Sync(ctx)) }

func (g *guest) Shutdown(ctx context.Context) error {
	return guestErr(g.c.Shutdown(ctx, 2*time.Second))
}

func (g *guest) Close() error { return g.c.Close() }
