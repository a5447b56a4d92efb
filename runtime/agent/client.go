// Package agent is the host side of the guest agent protocol
// (guest/api, berth.agent.v1): a gRPC client over the channel a VM backend
// hands out (vmm.Machine.DialAgent: vsock, or a virtio-serial port), with
// typed helpers and stdio plumbing to io.Reader/io.Writer.
//
// Errors are gRPC status errors from the agent (status.Code(err) tells
// NotFound, InvalidArgument, FailedPrecondition, ... apart); their messages
// are one line and name the problem.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

// Protocol types, re-exported so callers need not import guest/api.
type (
	ProcessSpec     = api.ProcessSpec
	Rlimit          = api.Rlimit
	HostEntry       = api.HostEntry
	SystemConfig    = api.SetupSystemRequest
	NetworkConfig   = api.ConfigureNetworkRequest
	NetworkInfo     = api.ConfigureNetworkResponse
	ContainerConfig = api.CreateContainerRequest
	MountConfig     = api.MountRequest
	BinfmtConfig    = api.RegisterBinfmtRequest
	Health          = api.HealthResponse
	Stats           = api.StatsResponse
	ProcessInfo     = api.ProcessInfo
)

// DialFunc opens a new agent channel; vmm.Machine.DialAgent is one.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Client talks to one VM's agent. It is safe for concurrent use.
type Client struct {
	cc  *grpc.ClientConn
	api api.AgentClient
}

// Connect dials the agent and waits until it answers Health, retrying until
// ctx ends (give ctx a deadline: a VM that never boots fails there). When
// the channel breaks later, the client dials again on the next call (a
// virtio-serial channel reconnects if the backend supports it).
func Connect(ctx context.Context, dial DialFunc) (*Client, error) {
	c, err := New(dial)
	if err != nil {
		return nil, err
	}
	var last error
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.api.Health(hctx, &api.HealthRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("guest agent did not answer: %v (last error: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ConnectConn uses one already open channel (for tests and callers that
// dial themselves); once it breaks, calls fail with Unavailable.
func ConnectConn(ctx context.Context, conn net.Conn) (*Client, error) {
	var once sync.Once
	return Connect(ctx, func(context.Context) (net.Conn, error) {
		var c net.Conn
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("the agent channel was closed")
		}
		return c, nil
	})
}

// New makes a client without waiting for the agent.
func New(dial DialFunc) (*Client, error) {
	cc, err := grpc.NewClient("passthrough:///berth-agent",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) }),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)),
		// Fixed, generous windows: the channel's latency is high under TCG
		// and the default 64 KiB window would cap stdout at window/RTT.
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
		// One channel, one VM: no name resolution, no balancing.
		grpc.WithDisableServiceConfig(),
	)
	if err != nil {
		return nil, err
	}
	return &Client{cc: cc, api: api.NewAgentClient(cc)}, nil
}

// Close drops the connection; processes in the VM keep running.
func (c *Client) Close() error { return c.cc.Close() }

// API is the raw generated client, for calls without a helper.
func (c *Client) API() api.AgentClient { return c.api }

// Health is a cheap liveness call with the agent's boot facts.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	return c.api.Health(ctx, &api.HealthRequest{})
}

// HealthAccounting is Health plus the agent's goroutines, fds, zombies and
// RSS (it walks /proc in the guest: for tests and diagnostics).
func (c *Client) HealthAccounting(ctx context.Context) (*Health, error) {
	return c.api.Health(ctx, &api.HealthRequest{Accounting: true})
}

func (c *Client) SetupSystem(ctx context.Context, cfg *SystemConfig) error {
	_, err := c.api.SetupSystem(ctx, cfg)
	return err
}

// SetTime sets the guest clock to t (call after the host wakes from sleep).
func (c *Client) SetTime(ctx context.Context, t time.Time) error {
	_, err := c.api.SetTime(ctx, &api.SetTimeRequest{UnixNanos: t.UnixNano()})
	return err
}

func (c *Client) Mount(ctx context.Context, m *MountConfig) error {
	_, err := c.api.Mount(ctx, m)
	return err
}

func (c *Client) RegisterBinfmt(ctx context.Context, b *BinfmtConfig) error {
	_, err := c.api.RegisterBinfmt(ctx, b)
	return err
}

// DHCP configures eth0 by DHCP and returns what the VM got.
func (c *Client) DHCP(ctx context.Context) (*NetworkInfo, error) {
	return c.api.ConfigureNetwork(ctx, &api.ConfigureNetworkRequest{Interface: "eth0", Dhcp: true})
}

func (c *Client) ConfigureNetwork(ctx context.Context, cfg *NetworkConfig) (*NetworkInfo, error) {
	return c.api.ConfigureNetwork(ctx, cfg)
}

// CreateContainer mounts the container root (device "/dev/vda", fstype
// default ext4) and prepares it.
func (c *Client) CreateContainer(ctx context.Context, cfg *ContainerConfig) error {
	_, err := c.api.CreateContainer(ctx, cfg)
	return err
}

// CreateProcess registers a process; exec joins the running container.
func (c *Client) CreateProcess(ctx context.Context, id string, spec *ProcessSpec, exec bool) error {
	_, err := c.api.CreateProcess(ctx, &api.CreateProcessRequest{Id: id, Spec: spec, Exec: exec})
	return err
}

// Start starts a created process and returns its pid in the VM.
func (c *Client) Start(ctx context.Context, id string) (int, error) {
	r, err := c.api.StartProcess(ctx, &api.ProcessRequest{Id: id})
	if err != nil {
		return 0, err
	}
	return int(r.Pid), nil
}

func (c *Client) Signal(ctx context.Context, id string, sig int) error {
	_, err := c.api.SignalProcess(ctx, &api.SignalProcessRequest{Id: id, Signal: int32(sig)})
	return err
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int // exit status, or 128+signal (Docker's convention)
	Signal   int // 0 unless killed by a signal
	ExitedAt time.Time
}

// Wait blocks until the process exits (or ctx ends).
func (c *Client) Wait(ctx context.Context, id string) (ExitStatus, error) {
	r, err := c.api.WaitProcess(ctx, &api.ProcessRequest{Id: id})
	if err != nil {
		return ExitStatus{}, err
	}
	return ExitStatus{Code: int(r.ExitCode), Signal: int(r.Signal), ExitedAt: time.Unix(0, r.ExitedUnixNanos)}, nil
}

func (c *Client) CloseStdin(ctx context.Context, id string) error {
	_, err := c.api.CloseStdin(ctx, &api.ProcessRequest{Id: id})
	return err
}

func (c *Client) Resize(ctx context.Context, id string, rows, cols int) error {
	_, err := c.api.ResizeTTY(ctx, &api.ResizeTTYRequest{Id: id, Rows: uint32(rows), Cols: uint32(cols)})
	return err
}

func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.api.DeleteProcess(ctx, &api.ProcessRequest{Id: id})
	return err
}

func (c *Client) List(ctx context.Context) ([]*ProcessInfo, error) {
	r, err := c.api.ListProcesses(ctx, &api.Empty{})
	if err != nil {
		return nil, err
	}
	return r.Processes, nil
}

func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	return c.api.Stats(ctx, &api.Empty{})
}

func (c *Client) Sync(ctx context.Context) error {
	_, err := c.api.Sync(ctx, &api.Empty{})
	return err
}

// Shutdown stops every process (SIGTERM, then SIGKILL after grace), syncs,
// unmounts and powers the VM off; wait for the VM to stop (Machine.Done).
func (c *Client) Shutdown(ctx context.Context, grace time.Duration) error {
	ms := uint32(grace / time.Millisecond)
	if ms == 0 {
		ms = 1
	}
	_, err := c.api.Shutdown(ctx, &api.ShutdownRequest{GraceMs: ms})
	return err
}

// IsCode reports whether err is a gRPC status with the given code.
func IsCode(err error, code codes.Code) bool { return status.Code(err) == code }
