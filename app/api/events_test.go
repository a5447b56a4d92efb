package api

import (
	"testing"

	"github.com/moby/moby/api/types/events"
)

func TestEventFilters(t *testing.T) {
	die := events.Message{Type: events.ContainerEventType, Action: events.ActionDie,
		Actor: events.Actor{ID: "abcdef123456", Attributes: map[string]string{"name": "web", "image": "busybox", "tier": "front"}}}
	health := events.Message{Type: events.ContainerEventType, Action: "health_status: healthy",
		Actor: events.Actor{ID: "abcdef123456", Attributes: map[string]string{"name": "web"}}}
	pull := events.Message{Type: events.ImageEventType, Action: events.ActionPull, Actor: events.Actor{ID: "busybox:latest"}}
	cases := []struct {
		m    events.Message
		f    map[string][]string
		want bool
	}{
		{die, nil, true},
		{die, map[string][]string{"container": {"web"}}, true},
		{die, map[string][]string{"container": {"abc"}}, true},
		{die, map[string][]string{"container": {"ab"}}, false}, // too short a prefix
		{die, map[string][]string{"container": {"db"}}, false},
		{die, map[string][]string{"event": {"start", "die"}}, true},
		{die, map[string][]string{"event": {"start"}}, false},
		{health, map[string][]string{"event": {"health_status"}}, true},
		{die, map[string][]string{"label": {"tier=front"}}, true},
		{die, map[string][]string{"label": {"tier=back"}}, false},
		{die, map[string][]string{"label": {"tier"}}, true},
		{die, map[string][]string{"type": {"image"}}, false},
		{die, map[string][]string{"image": {"busybox"}}, true},
		{pull, map[string][]string{"image": {"busybox:latest"}}, true},
		{pull, map[string][]string{"container": {"web"}}, false},
		{die, map[string][]string{"scope": {"local"}}, true},
		{die, map[string][]string{"scope": {"swarm"}}, false},
		{die, map[string][]string{"type": {"container"}, "event": {"start"}}, false}, // every term must match
	}
	for i, c := range cases {
		if got := eventMatches(c.m, c.f); got != c.want {
			t.Errorf("case %d: %v with %v = %v, want %v", i, c.m.Action, c.f, got, c.want)
		}
	}
}
