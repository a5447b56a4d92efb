package notify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newPolicy() (*Policy, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	return New(Options{Now: c.now}), c
}

func ev(action events.Action, id, name string, attrs ...string) events.Message {
	a := map[string]string{"name": name, "image": "busybox"}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: a}}
}

func die(id, name string, code string) events.Message {
	return ev(events.ActionDie, id, name, "exitCode", code)
}

func TestCrashIsReportedUserStopIsNot(t *testing.T) {
	p, _ := newPolicy()
	// A crash: die on its own with a non-zero code.
	got := p.Observe(die("c1", "web", "2"))
	if len(got) != 1 {
		t.Fatalf("crash: %d notifications", len(got))
	}
	n := got[0]
	if n.Title != "web stopped unexpectedly" || n.Body != "web exited with code 2." || n.ExitCode != 2 || n.ContainerID != "c1" {
		t.Fatalf("notification %+v", n)
	}
	if strings.Join(n.Actions, ",") != "show-logs,restart" || n.ID != "berth.exit.c1" {
		t.Fatalf("actions/id %+v", n)
	}
	// docker stop: kill(15) → die(143) → stop: the user's doing.
	for _, m := range []events.Message{ev(events.ActionKill, "c2", "db", "signal", "15"), die("c2", "db", "143"), ev(events.ActionStop, "c2", "db")} {
		if got := p.Observe(m); len(got) != 0 {
			t.Fatalf("docker stop notified: %+v", got)
		}
	}
	// docker stop that needs SIGKILL after the timeout.
	for _, m := range []events.Message{ev(events.ActionKill, "c3", "q", "signal", "15"), ev(events.ActionKill, "c3", "q", "signal", "9"), die("c3", "q", "137")} {
		if got := p.Observe(m); len(got) != 0 {
			t.Fatalf("docker stop with kill notified: %+v", got)
		}
	}
	// A clean exit is not a crash.
	if got := p.Observe(die("c4", "job", "0")); len(got) != 0 {
		t.Fatalf("exit 0 notified: %+v", got)
	}
}

func TestKillWithNonTerminatingSignalDoesNotExcuse(t *testing.T) {
	p, clk := newPolicy()
	p.Observe(ev(events.ActionKill, "c1", "nginx", "signal", "1")) // SIGHUP: reload
	clk.add(10 * time.Second)
	got := p.Observe(die("c1", "nginx", "139"))
	if len(got) != 1 || !strings.Contains(got[0].Body, "segmentation fault") {
		t.Fatalf("%+v", got)
	}
}

func TestStaleUserStopExpires(t *testing.T) {
	p, clk := newPolicy()
	p.Observe(ev(events.ActionKill, "c1", "app", "signal", "SIGTERM"))
	clk.add(5 * time.Minute) // the process ignored it and died much later on its own
	if got := p.Observe(die("c1", "app", "1")); len(got) != 1 {
		t.Fatalf("stale stop request hid a crash: %+v", got)
	}
}

func TestOOMAndKilled(t *testing.T) {
	p, _ := newPolicy()
	p.Observe(ev(events.ActionOOM, "c1", "java"))
	got := p.Observe(die("c1", "java", "137"))
	if len(got) != 1 || !strings.Contains(got[0].Body, "ran out of memory") {
		t.Fatalf("%+v", got)
	}
	got = p.Observe(die("c2", "x", "137"))
	if len(got) != 1 || got[0].Body != "x was killed (exit code 137, SIGKILL)." {
		t.Fatalf("%+v", got)
	}
}

func TestRestartLoopIsSummarised(t *testing.T) {
	p, clk := newPolicy()
	posted := 0
	for i := 0; i < 20; i++ {
		posted += len(p.Observe(die("c1", "api", "1")))
		p.Observe(ev(events.ActionRestart, "c1", "api"))
		p.Observe(ev(events.ActionStart, "c1", "api"))
		clk.add(15 * time.Second)
		posted += len(p.Tick())
	}
	if posted != 1 {
		t.Fatalf("crash loop posted %d notifications in 5 min, want 1", posted)
	}
	clk.add(6 * time.Minute) // the window (10 min) ends
	got := p.Tick()
	if len(got) != 1 {
		t.Fatalf("summary: %+v", got)
	}
	s := got[0]
	if s.Title != "api keeps crashing" || s.Count != 19 || !strings.Contains(s.Body, "crashed 19 more times") ||
		!strings.Contains(s.Body, "restart policy") || s.ID != "berth.exit.c1" {
		t.Fatalf("summary %+v", s)
	}
	if got := p.Tick(); len(got) != 0 {
		t.Fatalf("summary repeated: %+v", got)
	}
	// Quiet for a whole window, then a new crash is news again.
	clk.add(11 * time.Minute)
	if got := p.Observe(die("c1", "api", "3")); len(got) != 1 || got[0].Title != "api stopped unexpectedly" {
		t.Fatalf("%+v", got)
	}
}

func TestBurstLimitCoalesces(t *testing.T) {
	p, clk := newPolicy()
	posted := 0
	for i := 0; i < 10; i++ {
		id := string(rune('a' + i))
		posted += len(p.Observe(die(id, "svc-"+id, "1")))
	}
	if posted != 4 {
		t.Fatalf("posted %d immediately, want the burst of 4", posted)
	}
	clk.add(time.Minute)
	got := p.Tick()
	if len(got) != 1 || got[0].Title != "6 more containers stopped unexpectedly" || !strings.Contains(got[0].Body, "svc-e, svc-f") ||
		!strings.Contains(got[0].Body, "and 1 more") {
		t.Fatalf("%+v", got)
	}
}

func TestSettingOff(t *testing.T) {
	p, clk := newPolicy()
	p.Observe(die("c1", "a", "1"))
	p.Observe(die("c1", "a", "1"))
	p.SetEnabled(false)
	if got := p.Observe(die("c2", "b", "1")); len(got) != 0 {
		t.Fatal("notified while off")
	}
	clk.add(time.Hour)
	if got := p.Tick(); len(got) != 0 {
		t.Fatalf("pending summary survived turning off: %+v", got)
	}
	p.SetEnabled(true)
	if got := p.Observe(die("c2", "b", "1")); len(got) != 1 {
		t.Fatal("not notified after turning back on")
	}
}

func TestIgnoresOtherEvents(t *testing.T) {
	p, _ := newPolicy()
	m := die("c1", "a", "1")
	m.Type = events.ImageEventType
	if len(p.Observe(m)) != 0 {
		t.Fatal("image event notified")
	}
	if got := p.Observe(ev(events.ActionExecDie, "c1", "a", "exitCode", "1")); len(got) != 0 {
		t.Fatal("exec exit notified")
	}
	// Missing exit code still reports, without inventing one.
	if got := p.Observe(ev(events.ActionDie, "c9", "", "image", "x")); len(got) != 1 || !strings.Contains(got[0].Body, "c9 exited (exit code unknown)") {
		t.Fatalf("%+v", got)
	}
}

func TestWatch(t *testing.T) {
	p, _ := newPolicy()
	ch := make(chan events.Message, 4)
	ch <- ev(events.ActionKill, "c1", "a", "signal", "15")
	ch <- die("c1", "a", "143")
	ch <- die("c2", "b", "42")
	close(ch)
	var got []Notification
	Watch(context.Background(), p, ch, func(n Notification) { got = append(got, n) })
	if len(got) != 1 || got[0].Name != "b" || got[0].ExitCode != 42 {
		t.Fatalf("%+v", got)
	}
}

func TestImportResult(t *testing.T) {
	n := ImportResult("/Users/a/Downloads/app.tar", []string{"app:1.0", "app:latest"}, nil)
	if n.Title != "Imported 2 images from app.tar" || n.Body != "app:1.0, app:latest" || len(n.Actions) != 0 {
		t.Fatalf("%+v", n)
	}
	n = ImportResult("x.tar.gz", []string{"a", "b", "c", "d", "e", "f"}, nil)
	if n.Body != "a, b, c, d, and 2 more" {
		t.Fatalf("%q", n.Body)
	}
	n = ImportResult("notes.txt", nil, fmt.Errorf("notes.txt is not an image archive: no manifest.json or index.json"))
	if n.Title != "Could not import notes.txt" || !strings.Contains(n.Body, "manifest.json") {
		t.Fatalf("%+v", n)
	}
}
