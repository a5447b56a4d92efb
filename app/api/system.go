package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"golang.org/x/sys/unix"

	ctrs "github.com/berth-dev/berth/runtime/container"
)

func (s *Server) routes() {
	s.handle("GET /_ping", s.ping)
	s.handle("HEAD /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)
	s.handle("GET /events", s.events)
	s.handle("GET /system/df", s.diskUsage)
	s.imageRoutes()
	s.containerRoutes()
	s.volumeRoutes()
	s.networkRoutes()
	// Berth has no build cache: its prune truthfully removes nothing (so
	// `docker system prune` works).
	s.handle("POST /build/prune", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, build.CachePruneReport{CachesDeleted: []string{}})
	})
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	// "1" = the classic builder: Berth has no BuildKit, so the CLI must not
	// try to open a BuildKit session.
	h.Set("Builder-Version", "1")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "Berth (a VM per container)"},
		Version:       s.opts.Version,
		APIVersion:    MaxVersion,
		MinAPIVersion: MinVersion,
		Os:            "linux", // the containers' OS, which is what clients care about
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		KernelVersion: kernelVersion(),
		Components: []system.ComponentVersion{{
			Name:    "Engine",
			Version: s.opts.Version,
			Details: map[string]string{
				"ApiVersion":    MaxVersion,
				"MinAPIVersion": MinVersion,
				"Os":            "linux",
				"Arch":          runtime.GOARCH,
				"GoVersion":     runtime.Version(),
				"KernelVersion": kernelVersion(),
				"HostOs":        runtime.GOOS,
			},
		}},
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	host, _ := os.Hostname()
	info := system.Info{
		ID:                 "berth",
		Driver:             "berth-ext4",
		DriverStatus:       [][2]string{{"Backing", "one ext4 root disk per container, cloned from a per-image snapshot"}},
		LoggingDriver:      "json-file",
		CgroupDriver:       "none",
		CgroupVersion:      "2",
		KernelVersion:      kernelVersion(),
		OperatingSystem:    "Berth (each container in its own VM)",
		OSType:             "linux",
		Architecture:       runtime.GOARCH,
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig:     &registry.ServiceConfig{IndexConfigs: map[string]*registry.IndexInfo{}},
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		DockerRootDir:      s.b.DataRoot,
		Name:               host,
		ServerVersion:      s.opts.Version,
		Runtimes:           map[string]system.RuntimeWithStatus{"berth-vm": {Runtime: system.Runtime{Path: "berth"}}},
		DefaultRuntime:     "berth-vm",
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		Isolation:          "",
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		MemoryLimit:        true,
		CPUCfsQuota:        true,
		Plugins: system.PluginsInfo{
			Network: []string{"bridge"},
			Log:     []string{"json-file"},
		},
	}
	ctx := r.Context()
	if s.b.Containers != nil {
		cs, err := s.b.Containers.List(ctx, ctrs.ListOptions{All: true})
		if err != nil {
			return err
		}
		info.Containers = len(cs)
		for _, c := range cs {
			switch c.State {
			case container.StateRunning, container.StateRestarting:
				info.ContainersRunning++
			case container.StatePaused:
				info.ContainersPaused++
			default:
				info.ContainersStopped++
			}
		}
	}
	if s.b.Images != nil {
		is, err := s.b.Images.List(ctx, false, nil)
		if err != nil {
			return err
		}
		info.Images = len(is)
	}
	return writeJSON(w, http.StatusOK, info)
}

// legacyDiskUsage is the /system/df body for API < 1.52 (docker 28 and
// older), built from moby's item types.
type legacyDiskUsage struct {
	LayersSize int64               `json:"LayersSize"`
	Images     []image.Summary     `json:"Images"`
	Containers []container.Summary `json:"Containers"`
	Volumes    []volume.Volume     `json:"Volumes"`
	BuildCache []build.CacheRecord `json:"BuildCache"`
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	images := []image.Summary{}
	containers := []container.Summary{}
	if s.b.Images != nil {
		is, err := s.b.Images.List(ctx, false, nil)
		if err != nil {
			return err
		}
		images = is
	}
	if s.b.Containers != nil {
		cs, err := s.b.Containers.List(ctx, ctrs.ListOptions{All: true})
		if err != nil {
			return err
		}
		containers = cs
	}
	// An image is in use when a container was created from it; both carry
	// the image ID (the config digest).
	used := map[string]int64{}
	for _, c := range containers {
		used[c.ImageID]++
	}
	var layers, reclaimImages int64
	activeImages := int64(0)
	for i := range images {
		images[i].Containers = used[images[i].ID]
		layers += images[i].Size
		if images[i].Containers > 0 {
			activeImages++
		} else {
			reclaimImages += images[i].Size
		}
	}
	vols := []volume.Volume{}
	if s.b.Volumes != nil {
		vs, err := s.b.Volumes.Usage(ctx)
		if err != nil {
			return err
		}
		vols = vs
	}
	if compareVersions(requestVersion(r), "1.52") < 0 {
		return writeJSON(w, http.StatusOK, legacyDiskUsage{
			LayersSize: layers, Images: images, Containers: containers,
			Volumes: vols, BuildCache: []build.CacheRecord{},
		})
	}
	vu := &volume.DiskUsage{TotalCount: int64(len(vols))}
	for _, v := range vols {
		vu.TotalSize += v.UsageData.Size
		if v.UsageData.RefCount > 0 {
			vu.ActiveCount++
		} else {
			vu.Reclaimable += v.UsageData.Size
		}
	}
	var csize, creclaim, cactive int64
	for _, c := range containers {
		csize += c.SizeRw
		if c.State == container.StateRunning {
			cactive++
		} else {
			creclaim += c.SizeRw
		}
	}
	du := system.DiskUsage{
		ImageUsage: &image.DiskUsage{ActiveCount: activeImages, TotalCount: int64(len(images)),
			TotalSize: layers, Reclaimable: reclaimImages},
		ContainerUsage: &container.DiskUsage{ActiveCount: cactive, TotalCount: int64(len(containers)),
			TotalSize: csize, Reclaimable: creclaim},
		VolumeUsage:     vu,
		BuildCacheUsage: &build.DiskUsage{},
	}
	if v, _ := boolParam(r, "verbose"); v {
		du.ImageUsage.Items = images
		du.ContainerUsage.Items = containers
		du.VolumeUsage.Items = vols
	}
	return writeJSON(w, http.StatusOK, du)
}

// events streams engine events as JSON lines: the recent past selected by
// since (from the server's ring buffer), then live events until until or
// the client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "type", "event", "container", "image", "label", "scope"); err != nil {
		return err
	}
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return err
	}
	if !until.IsZero() && !since.IsZero() && until.Before(since) {
		return badRequest("until (%s) is before since (%s)", until, since)
	}
	if s.b.Events == nil {
		return notImplemented("this engine publishes no events")
	}
	ctx := r.Context()
	if !until.IsZero() {
		var cancel context.CancelFunc
		// A past until still replays history: give the replay a moment.
		ctx, cancel = context.WithDeadline(ctx, later(until, time.Now().Add(200*time.Millisecond)))
		defer cancel()
	}
	// The bus replays its history from since, then goes live.
	stream := s.b.Events.Subscribe(ctx, since)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-stream:
			if !ok {
				return nil
			}
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				return nil
			}
			if !eventMatches(m, f) {
				continue
			}
			if enc.Encode(legacyEvent(m)) != nil || rc.Flush() != nil {
				return nil // client gone
			}
		}
	}
}

// legacyMessage is an event with its deprecated fields (status, id, from)
// filled in, as dockerd did for years. Old clients still read them:
// docker-compose v1's log printer fails on a container event without "id",
// and docker-py negotiates the newest API version, so the fields go to every
// version (newer clients ignore them).
type legacyMessage struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func legacyEvent(m events.Message) any {
	switch m.Type {
	case events.ContainerEventType:
		return legacyMessage{Status: string(m.Action), ID: m.Actor.ID, From: m.Actor.Attributes["image"], Message: m}
	case events.ImageEventType:
		return legacyMessage{Status: string(m.Action), ID: m.Actor.ID, Message: m}
	}
	return m
}

// eventMatches applies docker's event filters: every term must match, any
// value of a term may.
func eventMatches(m events.Message, f map[string][]string) bool {
	for term, vals := range f {
		var ok bool
		switch term {
		case "type":
			ok = slices.Contains(vals, string(m.Type))
		case "event":
			for _, v := range vals {
				// "health_status" matches "health_status: healthy", as in dockerd.
				if string(m.Action) == v || strings.HasPrefix(string(m.Action), v+":") {
					ok = true
				}
			}
		case "container":
			ok = m.Type == events.ContainerEventType &&
				(slices.Contains(vals, m.Actor.ID) || slices.Contains(vals, m.Actor.Attributes["name"]) || prefixOfAny(m.Actor.ID, vals))
		case "image":
			img := m.Actor.Attributes["image"]
			if m.Type == events.ImageEventType {
				img = m.Actor.ID
			}
			ok = slices.Contains(vals, img) || (m.Type == events.ImageEventType && slices.Contains(vals, m.Actor.Attributes["name"]))
		case "label":
			for _, v := range vals {
				k, want, hasVal := strings.Cut(v, "=")
				got, present := m.Actor.Attributes[k]
				if present && (!hasVal || got == want) {
					ok = true
				}
			}
		case "scope":
			scope := m.Scope
			if scope == "" {
				scope = "local"
			}
			ok = slices.Contains(vals, scope)
		}
		if !ok {
			return false
		}
	}
	return true
}

func prefixOfAny(id string, vals []string) bool {
	for _, v := range vals {
		if len(v) >= 3 && strings.HasPrefix(id, v) {
			return true
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
