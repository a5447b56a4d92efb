package container

import (
	"context"
	"io"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/logs"
)

type ctr struct{ rec record }
type execProc struct{}

func newManager(cfg Config) (*Manager, error) {
	return &Manager{cfg: cfg, events: NewEvents(), byID: map[string]*ctr{}, names: map[string]string{}, execs: map[string]*execProc{}}, nil
}
func (m *Manager) restore(ctx context.Context) error  { return nil }
func (m *Manager) shutdown(ctx context.Context) error { return nil }
func (m *Manager) lookup(ref string) (string, error) { return "", errNYI }
func (m *Manager) create(ctx context.Context, opts CreateOptions) (container.CreateResponse, error) {
	return container.CreateResponse{}, errNYI
}
func (m *Manager) start(ctx context.Context, ref string) error                     { return errNYI }
func (m *Manager) stop(ctx context.Context, ref string, o StopOptions) error       { return errNYI }
func (m *Manager) restart(ctx context.Context, ref string, o StopOptions) error    { return errNYI }
func (m *Manager) kill(ctx context.Context, ref, sig string) error                 { return errNYI }
func (m *Manager) remove(ctx context.Context, ref string, o RemoveOptions) error   { return errNYI }
func (m *Manager) wait(ctx context.Context, ref string, c container.WaitCondition) (<-chan container.WaitResponse, error) {
	return nil, errNYI
}
func (m *Manager) list(ctx context.Context, o ListOptions) ([]container.Summary, error) {
	return nil, errNYI
}
func (m *Manager) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	return container.InspectResponse{}, errNYI
}
func (m *Manager) logs(ctx context.Context, ref string, o LogsOptions, fn func(logs.Entry) error) error {
	return errNYI
}
func (m *Manager) attach(ctx context.Context, ref string, o AttachOptions) (*Attachment, error) {
	return nil, errNYI
}
func (m *Manager) resize(ctx context.Context, ref string, h, w uint) error { return errNYI }
func (m *Manager) stats(ctx context.Context, ref string) (container.StatsResponse, error) {
	return container.StatsResponse{}, errNYI
}
func (m *Manager) top(ctx context.Context, ref, ps string) (container.TopResponse, error) {
	return container.TopResponse{}, errNYI
}
func (m *Manager) rename(ctx context.Context, ref, n string) error { return errNYI }
func (m *Manager) prune(ctx context.Context, f map[string][]string) (container.PruneReport, error) {
	return container.PruneReport{}, errNYI
}
func (m *Manager) statPath(ctx context.Context, ref, p string) (container.PathStat, error) {
	return container.PathStat{}, errNYI
}
func (m *Manager) copyFrom(ctx context.Context, ref, p string, w io.Writer) error { return errNYI }
func (m *Manager) copyTo(ctx context.Context, ref, d string, t io.Reader, o CopyToOptions) error {
	return errNYI
}
func (m *Manager) export(ctx context.Context, ref string, w io.Writer) error { return errNYI }
func (m *Manager) execCreate(ctx context.Context, ref string, r container.ExecCreateRequest) (string, error) {
	return "", errNYI
}
func (m *Manager) execStart(ctx context.Context, id string, o ExecStartOptions) error { return errNYI }
func (m *Manager) execResize(ctx context.Context, id string, h, w uint) error       { return errNYI }
func (m *Manager) execInspect(ctx context.Context, id string) (container.ExecInspectResponse, error) {
	return container.ExecInspectResponse{}, errNYI
}
