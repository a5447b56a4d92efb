package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/volume"

	volstore "github.com/berth-dev/berth/runtime/volume"
)

// Volumes is the named-volume store in the API's terms (adapter:
// VolumeStore). Errors use containerd errdefs classes.
type Volumes interface {
	Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error)
	List(ctx context.Context, filters map[string][]string) ([]volume.Volume, error)
	Inspect(ctx context.Context, name string) (volume.Volume, error)
	Remove(ctx context.Context, name string, force bool) error
	Prune(ctx context.Context, filters map[string][]string) (volume.PruneReport, error)
	// Usage lists every volume with its size and reference count
	// (docker system df).
	Usage(ctx context.Context) ([]volume.Volume, error)
}

func (s *Server) volumeRoutes() {
	for _, rt := range []struct {
		pattern string
		h       func(vs Volumes, w http.ResponseWriter, r *http.Request) error
	}{
		{"GET /volumes", s.volumeList},
		{"POST /volumes/create", s.volumeCreate},
		{"POST /volumes/prune", s.volumePrune},
		{"GET /volumes/{name}", s.volumeInspect},
		{"DELETE /volumes/{name}", s.volumeRemove},
	} {
		s.handle(rt.pattern, s.withVolumes(rt.h))
	}
	s.handle("PUT /volumes/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return notImplemented("updating a volume is for swarm cluster volumes, which Berth does not have")
	})
}

// withVolumes adapts a handler that needs the volume store; an engine
// without one answers 501 (and lists nothing, so `docker volume ls` and
// `docker system prune` still work against it).
func (s *Server) withVolumes(f func(vs Volumes, w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.b.Volumes == nil {
			switch r.URL.Path {
			case "/volumes":
				return writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}})
			case "/volumes/prune":
				return writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: []string{}})
			}
			return notImplemented("this engine has no volume store")
		}
		return f(s.b.Volumes, w, r)
	}
}

func (s *Server) volumeList(vs Volumes, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "name", "label", "dangling", "driver"); err != nil {
		return err
	}
	vols, err := vs.List(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: vols, Warnings: []string{}})
}

func (s *Server) volumeCreate(vs Volumes, w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	if req.ClusterVolumeSpec != nil {
		return notImplemented("cluster volumes are a swarm feature, which Berth does not have")
	}
	v, err := vs.Create(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) volumeInspect(vs Volumes, w http.ResponseWriter, r *http.Request) error {
	v, err := vs.Inspect(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) volumeRemove(vs Volumes, w http.ResponseWriter, r *http.Request) error {
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	return respond(w, http.StatusNoContent, vs.Remove(r.Context(), r.PathValue("name"), force))
}

func (s *Server) volumePrune(vs Volumes, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "all", "label", "label!"); err != nil {
		return err
	}
	rep, err := vs.Prune(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// VolumeStore serves the Volumes endpoints from runtime/volume.Store.
type VolumeStore struct {
	Store *volstore.Store
	// Publish, when set, receives volume events (create, destroy, prune).
	Publish func(events.Message)
}

var _ Volumes = (*VolumeStore)(nil)

func (s *VolumeStore) publish(action events.Action, name string, attrs map[string]string) {
	if s.Publish != nil {
		s.Publish(events.Message{Type: events.VolumeEventType, Action: action,
			Actor: events.Actor{ID: name, Attributes: attrs}})
	}
}

func (s *VolumeStore) render(v volstore.Volume) volume.Volume {
	labels := v.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return volume.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: s.Store.Path(v.Name),
		CreatedAt: v.CreatedAt.Format(time.RFC3339), Labels: labels, Options: v.Options, Scope: "local",
	}
}

// Create makes the volume (idempotent, as in Docker). Without a name it
// gets a random one and is anonymous, like dockerd's.
func (s *VolumeStore) Create(ctx context.Context, req volume.CreateRequest) (volume.Volume, error) {
	name, labels := req.Name, req.Labels
	if name == "" {
		name = randomHex32()
		labels = map[string]string{volstore.AnonymousLabel: ""}
		for k, v := range req.Labels {
			labels[k] = v
		}
	}
	v, created, err := s.Store.Create(name, volstore.CreateOptions{Driver: req.Driver, Labels: labels, Options: req.DriverOpts})
	if err != nil {
		return volume.Volume{}, err
	}
	if created {
		s.publish(events.ActionCreate, v.Name, map[string]string{"driver": v.Driver})
	}
	return s.render(v), nil
}

func (s *VolumeStore) List(ctx context.Context, f map[string][]string) ([]volume.Volume, error) {
	vols, err := s.Store.List(volstore.Filters(f))
	if err != nil {
		return nil, err
	}
	out := make([]volume.Volume, 0, len(vols))
	for _, v := range vols {
		out = append(out, s.render(v))
	}
	return out, nil
}

func (s *VolumeStore) Inspect(ctx context.Context, name string) (volume.Volume, error) {
	v, err := s.Store.Get(name)
	if err != nil {
		return volume.Volume{}, err
	}
	return s.render(v), nil
}

func (s *VolumeStore) Remove(ctx context.Context, name string, force bool) error {
	_, err := s.Store.Get(name)
	existed := err == nil
	if err := s.Store.Remove(name, force); err != nil {
		return err
	}
	if existed {
		s.publish(events.ActionDestroy, name, map[string]string{"driver": volstore.Driver})
	}
	return nil
}

func (s *VolumeStore) Prune(ctx context.Context, f map[string][]string) (volume.PruneReport, error) {
	removed, reclaimed, err := s.Store.Prune(volstore.Filters(f))
	for _, name := range removed {
		s.publish(events.ActionDestroy, name, map[string]string{"driver": volstore.Driver})
	}
	if err != nil {
		return volume.PruneReport{}, err
	}
	s.publish(events.ActionPrune, "", map[string]string{"reclaimed": itoa(reclaimed)})
	return volume.PruneReport{VolumesDeleted: removed, SpaceReclaimed: reclaimed}, nil
}

func (s *VolumeStore) Usage(ctx context.Context) ([]volume.Volume, error) {
	vols, err := s.Store.List(nil)
	if err != nil {
		return nil, err
	}
	out := make([]volume.Volume, 0, len(vols))
	for _, v := range vols {
		rv := s.render(v)
		rv.UsageData = &volume.UsageData{Size: s.Store.Size(v.Name), RefCount: int64(s.Store.RefCount(v.Name))}
		out = append(out, rv)
	}
	return out, nil
}

// randomHex32 is a fresh 64-hex-digit name, dockerd's shape for an
// unnamed volume.
func randomHex32() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
