package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	ctrs "github.com/berth-dev/berth/runtime/container"
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

// Events carry the deprecated status, id and from for old clients
// (docker-compose v1 fails without "id"), at every API version.
func TestEventLegacyFields(t *testing.T) {
	bus := ctrs.NewEvents()
	bus.Publish(events.Message{Type: events.ContainerEventType, Action: events.ActionStart,
		Actor: events.Actor{ID: "abc", Attributes: map[string]string{"image": "busybox"}}})
	srv := httptest.NewServer(New(Options{Backend: Backend{Events: bus}}))
	defer srv.Close()
	get := func(version string) map[string]any {
		t.Helper()
		now := time.Now().Unix()
		resp, err := http.Get(fmt.Sprintf("%s/%s/events?since=%d&until=%d", srv.URL, version, now-10, now+1))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: %v", version, err)
		}
		return m
	}
	if m := get("v1.38"); m["id"] != "abc" || m["status"] != "start" || m["from"] != "busybox" || m["Type"] != "container" {
		t.Fatalf("v1.38 event: %v", m)
	}
	if m := get("v1.56"); m["id"] != "abc" || m["Action"] != "start" {
		t.Fatalf("v1.52 event: %v", m)
	}
}
