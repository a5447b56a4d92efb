package model

import (
	"strconv"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
)

// Snapshot is the app's copy of the engine state, refreshed by listing and
// kept current between lists by events (no polling). Safe for concurrent use.
type Snapshot struct {
	mu         sync.Mutex
	containers map[string]container.Summary
	images     []image.Summary
	stats      map[string]container.StatsResponse
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{containers: map[string]container.Summary{}, stats: map[string]container.StatsResponse{}}
}

// SetContainers replaces the container list (after a full list call).
func (s *Snapshot) SetContainers(cs []container.Summary) {
	m := make(map[string]container.Summary, len(cs))
	for _, c := range cs {
		m[c.ID] = c
	}
	s.mu.Lock()
	s.containers = m
	for id := range s.stats {
		if _, ok := m[id]; !ok {
			delete(s.stats, id)
		}
	}
	s.mu.Unlock()
}

// SetImages replaces the image list.
func (s *Snapshot) SetImages(imgs []image.Summary) {
	s.mu.Lock()
	s.images = append([]image.Summary(nil), imgs...)
	s.mu.Unlock()
}

// SetStats records the latest stats sample of a container.
func (s *Snapshot) SetStats(id string, st container.StatsResponse) {
	s.mu.Lock()
	s.stats[id] = st
	s.mu.Unlock()
}

// Containers returns a copy of the container list.
func (s *Snapshot) Containers() []container.Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]container.Summary, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	return out
}

// Images returns a copy of the image list.
func (s *Snapshot) Images() []image.Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]image.Summary(nil), s.images...)
}

// Stats returns a copy of the stats samples.
func (s *Snapshot) Stats() map[string]container.StatsResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]container.StatsResponse, len(s.stats))
	for k, v := range s.stats {
		out[k] = v
	}
	return out
}

// Refresh says which lists an event makes stale.
type Refresh struct {
	Containers bool
	Images     bool
}

// Apply updates the snapshot from one engine event, at once for the
// transitions it can derive (so the menu reflects a stop immediately), and
// says which lists to re-fetch for the rest (a new container's details,
// ports and IP only come from a list).
func (s *Snapshot) Apply(ev events.Message) Refresh {
	switch ev.Type {
	case events.ImageEventType:
		return Refresh{Images: true}
	case events.ContainerEventType:
	default:
		return Refresh{}
	}
	id := ev.Actor.ID
	s.mu.Lock()
	defer s.mu.Unlock()
	c, known := s.containers[id]
	switch ev.Action {
	case events.ActionDestroy, events.ActionRemove:
		delete(s.containers, id)
		delete(s.stats, id)
		return Refresh{Images: true} // image "in use" counts change
	case events.ActionStart, events.ActionRestart, events.ActionUnPause:
		if known {
			c.State, c.Status = container.StateRunning, "Up less than a second"
			s.containers[id] = c
		}
		return Refresh{Containers: true}
	case events.ActionDie:
		if known {
			c.State = container.StateExited
			c.Status = "Exited"
			if code, err := strconv.Atoi(ev.Actor.Attributes["exitCode"]); err == nil {
				c.Status = "Exited (" + strconv.Itoa(code) + ")"
			}
			s.containers[id] = c
			delete(s.stats, id)
		}
		return Refresh{Containers: true}
	case events.ActionPause:
		if known {
			c.State = container.StatePaused
			s.containers[id] = c
		}
		return Refresh{Containers: true}
	case events.ActionCreate, events.ActionRename, events.ActionUpdate, events.ActionStop, events.ActionKill, events.ActionOOM:
		return Refresh{Containers: true}
	}
	return Refresh{}
}
