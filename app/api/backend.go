package api

import (
	"context"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"

	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/logs"
)

// Backend is the engine as the API sees it. A nil part makes its endpoints
// answer 501 (so the server can run, e.g. in tests, over only an image store).
type Backend struct {
	Images     Images
	Containers Containers
	Events     Events
	// Volumes serves /volumes (nil: an empty list, and 501 for the rest).
	Volumes Volumes
	// Networks serves /networks (nil: an empty list, and 501 for the rest).
	Networks Networks
	// DataRoot is shown by `docker info` as the root directory.
	DataRoot string
}

// Images is the image store in the API's terms (adapter: engine.go).
// Errors use containerd errdefs classes (not found, conflict, invalid).
type Images interface {
	List(ctx context.Context, all bool, filters map[string][]string) ([]image.Summary, error)
	Inspect(ctx context.Context, ref string) (image.InspectResponse, error)
	History(ctx context.Context, ref string) ([]image.HistoryResponseItem, error)
	// Pull fetches ref (platform "os/arch[/variant]" or "" for the
	// engine's default) and reports progress in the JSON stream format the
	// CLI renders.
	Pull(ctx context.Context, ref, platform string, progress func(jsonstream.Message)) error
	Tag(ctx context.Context, source, target string) error
	Remove(ctx context.Context, ref string, force, noPrune bool) ([]image.DeleteResponse, error)
	// Load imports a docker-archive or OCI tarball (auto-detected).
	Load(ctx context.Context, r io.Reader, progress func(jsonstream.Message)) error
	// Save writes a docker-archive tarball of refs (names or ids).
	Save(ctx context.Context, refs []string, w io.Writer) error
	Prune(ctx context.Context, danglingOnly bool, filters map[string][]string) (image.PruneReport, error)
}

// RootfsImporter is the optional part of Images behind `docker import`
// (POST /images/create?fromSrc=-): a root filesystem tar (plain, gzip or
// zstd) becomes a one-layer image named ref.
type RootfsImporter interface {
	Import(ctx context.Context, r io.Reader, ref string, progress func(jsonstream.Message)) error
}

// Events publishes engine events in moby's message shape
// (runtime/container.Events: one bus for container, image and daemon events).
type Events interface {
	// Subscribe delivers past events at or after since (zero: none), then
	// live ones until ctx ends; the channel is then closed.
	Subscribe(ctx context.Context, since time.Time) <-chan events.Message
}

// Containers is the container lifecycle; *runtime/container.Manager
// implements it (its methods map one to one onto the endpoints).
type Containers interface {
	Create(ctx context.Context, opts ctrs.CreateOptions) (container.CreateResponse, error)
	Start(ctx context.Context, ref string) error
	Stop(ctx context.Context, ref string, opts ctrs.StopOptions) error
	Restart(ctx context.Context, ref string, opts ctrs.StopOptions) error
	Kill(ctx context.Context, ref, signal string) error
	Pause(ctx context.Context, ref string) error
	Unpause(ctx context.Context, ref string) error
	Remove(ctx context.Context, ref string, opts ctrs.RemoveOptions) error
	Wait(ctx context.Context, ref string, cond container.WaitCondition) (<-chan container.WaitResponse, error)
	List(ctx context.Context, opts ctrs.ListOptions) ([]container.Summary, error)
	Inspect(ctx context.Context, ref string) (container.InspectResponse, error)
	Logs(ctx context.Context, ref string, opts ctrs.LogsOptions, fn func(logs.Entry) error) error
	Attach(ctx context.Context, ref string, opts ctrs.AttachOptions) (*ctrs.Attachment, error)
	Resize(ctx context.Context, ref string, height, width uint) error
	Stats(ctx context.Context, ref string) (container.StatsResponse, error)
	Top(ctx context.Context, ref, psArgs string) (container.TopResponse, error)
	Rename(ctx context.Context, ref, newName string) error
	Prune(ctx context.Context, filters map[string][]string) (container.PruneReport, error)
	StatPath(ctx context.Context, ref, path string) (container.PathStat, error)
	CopyFrom(ctx context.Context, ref, path string, w io.Writer) error
	CopyTo(ctx context.Context, ref, dir string, tar io.Reader, opts ctrs.CopyToOptions) error
	Export(ctx context.Context, ref string, w io.Writer) error
	ExecCreate(ctx context.Context, ref string, req container.ExecCreateRequest) (string, error)
	ExecStart(ctx context.Context, execID string, opts ctrs.ExecStartOptions) error
	ExecResize(ctx context.Context, execID string, height, width uint) error
	ExecInspect(ctx context.Context, execID string) (container.ExecInspectResponse, error)
}
