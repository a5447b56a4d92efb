package container

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/logs"
	"github.com/berth-dev/berth/runtime/state"
	"github.com/berth-dev/berth/runtime/vmm"
)

// Config wires a Manager to the rest of the runtime (see app/engine).
type Config struct {
	DB      *state.DB
	Root    dataroot.Root
	Images  Images
	Rootfs  Rootfs
	Kernels Kernels
	Backend vmm.Backend
	Dial    GuestDialer
	// Volumes is the named-volume store (nil: volume mounts are refused).
	Volumes Volumes
	// Networks is the user-network store (nil: --network NAME is refused).
	Networks Networks
	// Arch is the default guest architecture (GOARCH spelling).
	Arch string
	// Defaults for containers that do not set --cpus / --memory.
	DefaultCPUs      int
	DefaultMemoryMiB int
	// KillStale kills a VM process left over by a crashed engine, given
	// the PID and the VM's state directory (the backend's stale-pid helper).
	KillStale func(pid int, stateDir string) error
	// BootTimeout bounds the wait for the agent (DefaultBootTimeout if 0).
	BootTimeout time.Duration
	Log         *slog.Logger
}

// Manager owns every container of one engine.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	events *Events

	mu    sync.Mutex
	byID  map[string]*ctr
	names map[string]string // name (without "/") -> id
	execs map[string]*execProc
	// creating counts the volumes of creates whose record is not written
	// yet, so a concurrent `volume rm` cannot take them away in between.
	creating map[string]int
	closed   bool
	bg       sync.WaitGroup // restarts started by Restore
	// hostsMu serializes network joins and leaves, so every member's
	// /etc/hosts ends up listing every other (see networks.go).
	hostsMu sync.Mutex
}

// New opens the container bucket and loads every record. Call Restore next.
func New(cfg Config) (*Manager, error) { return newManager(cfg) }

// Restore reconciles after a previous engine (VMs gone → exited, stale VM
// processes killed, temp files removed) and restarts containers per their
// restart policy, Docker's way.
func (m *Manager) Restore(ctx context.Context) error { return m.restore(ctx) }

// Shutdown stops every running container gracefully (engine exit). Containers
// stopped this way keep their restart policy for the next Restore.
func (m *Manager) Shutdown(ctx context.Context) error { return m.shutdown(ctx) }

// Events is the event bus (moby events.Message) for subscribers.
func (m *Manager) Events() *Events { return m.events }

// Lookup resolves a full ID, a unique ID prefix or a name ("/name" too).
func (m *Manager) Lookup(ref string) (string, error) { return m.lookup(ref) }

// Create is POST /containers/create.
func (m *Manager) Create(ctx context.Context, opts CreateOptions) (container.CreateResponse, error) {
	return m.create(ctx, opts)
}

// Start is POST /containers/{id}/start: boots the VM and starts the main process.
func (m *Manager) Start(ctx context.Context, ref string) error { return m.start(ctx, ref) }

// Stop is POST /containers/{id}/stop.
func (m *Manager) Stop(ctx context.Context, ref string, opts StopOptions) error {
	return m.stop(ctx, ref, opts)
}

// Restart is POST /containers/{id}/restart.
func (m *Manager) Restart(ctx context.Context, ref string, opts StopOptions) error {
	return m.restart(ctx, ref, opts)
}

// Kill is POST /containers/{id}/kill ("" = SIGKILL; names or numbers).
func (m *Manager) Kill(ctx context.Context, ref, signal string) error {
	return m.kill(ctx, ref, signal)
}

// Pause is POST /containers/{id}/pause: freezes the container's VM.
func (m *Manager) Pause(ctx context.Context, ref string) error { return m.pause(ctx, ref) }

// Unpause is POST /containers/{id}/unpause.
func (m *Manager) Unpause(ctx context.Context, ref string) error { return m.unpause(ctx, ref) }

// Remove is DELETE /containers/{id}.
func (m *Manager) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	return m.remove(ctx, ref, opts)
}

// Wait is POST /containers/{id}/wait. The wait is registered before Wait
// returns (so `run` can Wait, then Start); the channel yields one response.
func (m *Manager) Wait(ctx context.Context, ref string, cond container.WaitCondition) (<-chan container.WaitResponse, error) {
	return m.wait(ctx, ref, cond)
}

// List is GET /containers/json.
func (m *Manager) List(ctx context.Context, opts ListOptions) ([]container.Summary, error) {
	return m.list(ctx, opts)
}

// Inspect is GET /containers/{id}/json.
func (m *Manager) Inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	return m.inspect(ctx, ref)
}

// Logs is GET /containers/{id}/logs: fn gets each selected entry in order.
// With Follow it returns when ctx ends or the container stops.
func (m *Manager) Logs(ctx context.Context, ref string, opts LogsOptions, fn func(logs.Entry) error) error {
	return m.logs(ctx, ref, opts, fn)
}

// Attach registers streams on the container's main process.
func (m *Manager) Attach(ctx context.Context, ref string, opts AttachOptions) (*Attachment, error) {
	return m.attach(ctx, ref, opts)
}

// Resize is POST /containers/{id}/resize (tty containers).
func (m *Manager) Resize(ctx context.Context, ref string, height, width uint) error {
	return m.resize(ctx, ref, height, width)
}

// Stats is one GET /containers/{id}/stats sample; PreCPUStats holds the
// previous sample taken by an earlier call, so callers that stream simply
// call it once a second.
func (m *Manager) Stats(ctx context.Context, ref string) (container.StatsResponse, error) {
	return m.stats(ctx, ref)
}

// Top is GET /containers/{id}/top (ps inside the guest).
func (m *Manager) Top(ctx context.Context, ref, psArgs string) (container.TopResponse, error) {
	return m.top(ctx, ref, psArgs)
}

// Rename is POST /containers/{id}/rename.
func (m *Manager) Rename(ctx context.Context, ref, newName string) error {
	return m.rename(ctx, ref, newName)
}

// Prune is POST /containers/prune (stopped containers; filters label, until).
func (m *Manager) Prune(ctx context.Context, filters map[string][]string) (container.PruneReport, error) {
	return m.prune(ctx, filters)
}

// StatPath is HEAD /containers/{id}/archive.
func (m *Manager) StatPath(ctx context.Context, ref, path string) (container.PathStat, error) {
	return m.statPath(ctx, ref, path)
}

// CopyFrom is GET /containers/{id}/archive: a tar of path written to w.
func (m *Manager) CopyFrom(ctx context.Context, ref, path string, w io.Writer) error {
	return m.copyFrom(ctx, ref, path, w)
}

// CopyTo is PUT /containers/{id}/archive: extracts tar into dir. Entries
// that would land outside the container's root are refused.
func (m *Manager) CopyTo(ctx context.Context, ref, dir string, tar io.Reader, opts CopyToOptions) error {
	return m.copyTo(ctx, ref, dir, tar, opts)
}

// Export is GET /containers/{id}/export: the root filesystem as a tar.
func (m *Manager) Export(ctx context.Context, ref string, w io.Writer) error {
	return m.export(ctx, ref, w)
}

// ExecCreate is POST /containers/{id}/exec; it returns the exec ID.
func (m *Manager) ExecCreate(ctx context.Context, ref string, req container.ExecCreateRequest) (string, error) {
	return m.execCreate(ctx, ref, req)
}

// ExecStart is POST /exec/{id}/start. It blocks until the process exits
// (or returns at once with Detach).
func (m *Manager) ExecStart(ctx context.Context, execID string, opts ExecStartOptions) error {
	return m.execStart(ctx, execID, opts)
}

// ExecResize is POST /exec/{id}/resize.
func (m *Manager) ExecResize(ctx context.Context, execID string, height, width uint) error {
	return m.execResize(ctx, execID, height, width)
}

// ExecInspect is GET /exec/{id}/json.
func (m *Manager) ExecInspect(ctx context.Context, execID string) (container.ExecInspectResponse, error) {
	return m.execInspect(ctx, execID)
}

// Subscribe is GET /events for containers: past events since `since` (the
// bus keeps a bounded history), then live ones until ctx ends.
func (m *Manager) Subscribe(ctx context.Context, since time.Time) <-chan events.Message {
	return m.events.Subscribe(ctx, since)
}
