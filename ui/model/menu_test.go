package model

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ctr(name string, st container.ContainerState, ip string, ports ...container.PortSummary) container.Summary {
	c := container.Summary{ID: fmt.Sprintf("%064x", len(name)*7919+int(name[0])) + name, Names: []string{"/" + name},
		Image: "busybox:latest", State: st, Status: string(st), Ports: ports}
	if ip != "" {
		c.NetworkSettings = &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
			"bridge": {IPAddress: netip.MustParseAddr(ip)}}}
	}
	return c
}

func web(port uint16) container.PortSummary {
	return container.PortSummary{IP: netip.MustParseAddr("127.0.0.1"), PrivatePort: 80, PublicPort: port, Type: "tcp"}
}

// find returns the item with this title (or title prefix) in items.
func find(t *testing.T, items []Item, title string) Item {
	t.Helper()
	for _, it := range items {
		if it.Title == title || (strings.HasSuffix(title, "*") && strings.HasPrefix(it.Title, strings.TrimSuffix(title, "*"))) {
			return it
		}
	}
	t.Fatalf("no item %q in %v", title, titles(items))
	return Item{}
}

func titles(items []Item) []string {
	var out []string
	for _, it := range items {
		if it.Separator {
			out = append(out, "---")
		} else {
			out = append(out, it.Title)
		}
	}
	return out
}

func allStates() []container.Summary {
	return []container.Summary{
		ctr("web", container.StateRunning, "192.168.64.2", web(8080), web(8081)),
		ctr("db", container.StateRunning, "192.168.64.3"),
		ctr("idle", container.StatePaused, "192.168.64.4"),
		ctr("crashy", container.StateRestarting, ""),
		ctr("old", container.StateExited, ""),
		ctr("new", container.StateCreated, ""),
		ctr("gone", container.StateRemoving, ""),
		ctr("zombie", container.StateDead, ""),
	}
}

func TestMenuHeaderIconAndOrder(t *testing.T) {
	m := BuildMenu(MenuInput{Engine: EngineReady, Containers: allStates(), Now: now, CLIInstalled: true})
	got := titles(m.Items)
	want := []string{"3 running · 1 paused · 2 stopped · 1 created · 1 removing", "---",
		"crashy", "db", "web", "idle", "old", "zombie", "new", "gone",
		"---", "Run Image…", "Import Image…", "---", "Containers…", "Images…", "Settings…", "---", "Quit Berth (stops 4 containers)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("menu:\n got %q\nwant %q", got, want)
	}
	if m.Running != 4 || m.Total != 8 || !m.Icon.Active || m.Icon.Symbol != "shippingbox.fill" {
		t.Errorf("icon/counts: %+v running %d total %d", m.Icon, m.Running, m.Total)
	}
	empty := BuildMenu(MenuInput{Engine: EngineReady, Now: now})
	if empty.Items[0].Title != "No containers" || empty.Icon.Active || empty.Icon.Symbol != "shippingbox" {
		t.Errorf("empty menu: %q %+v", titles(empty.Items), empty.Icon)
	}
	find(t, empty.Items, "Install Command-Line Tool…")
	if q := find(t, empty.Items, "Quit Berth"); !q.Enabled || q.Key != "q" {
		t.Errorf("quit: %+v", q)
	}
}

// enabled returns the titles of the enabled actions in a container submenu.
func enabled(it Item) string {
	var out []string
	for _, s := range it.Submenu {
		if s.Action != ActNone && s.Enabled {
			out = append(out, s.Title)
		}
	}
	return strings.Join(out, ",")
}

func TestMenuEnablingRulesPerState(t *testing.T) {
	m := BuildMenu(MenuInput{Engine: EngineReady, Containers: allStates(), Now: now})
	for name, want := range map[string]string{
		"web":    "Stop,Restart,Pause,Open Terminal,Show Logs,Copy IP,Open localhost:8080 in Browser,Open localhost:8081 in Browser,Details…,Remove…",
		"db":     "Stop,Restart,Pause,Open Terminal,Show Logs,Copy IP,Details…,Remove…",
		"idle":   "Stop,Resume,Show Logs,Details…,Remove…",
		"crashy": "Stop,Show Logs,Details…,Remove…",
		"old":    "Start,Show Logs,Details…,Remove…",
		"zombie": "Start,Show Logs,Details…,Remove…",
		"new":    "Start,Details…,Remove…",
		"gone":   "Details…",
	} {
		it := find(t, m.Items, name)
		if got := enabled(it); got != want {
			t.Errorf("%s (%s): enabled\n got %s\nwant %s", name, it.State, got, want)
		}
	}
	w := find(t, m.Items, "web")
	if info := titles(w.Submenu[:4]); strings.Join(info, "|") != "Running — running|Image: busybox:latest|IP: 192.168.64.2|Ports: 127.0.0.1:8080->80/tcp, 127.0.0.1:8081->80/tcp" {
		t.Errorf("web info lines: %q", info)
	}
	if c := find(t, w.Submenu, "Copy IP"); c.Arg != "192.168.64.2" || c.Target != w.Target {
		t.Errorf("copy IP item: %+v", c)
	}
	if o := find(t, w.Submenu, "Open localhost:8080 in Browser"); o.Arg != "http://localhost:8080" {
		t.Errorf("open item: %+v", o)
	}
	if r := find(t, w.Submenu, "Remove…"); !strings.HasPrefix(r.Confirm, "Stop and remove container web?") {
		t.Errorf("remove confirm for a running container: %q", r.Confirm)
	}
	if r := find(t, find(t, m.Items, "old").Submenu, "Remove…"); !strings.HasPrefix(r.Confirm, "Remove container old?") {
		t.Errorf("remove confirm for a stopped container: %q", r.Confirm)
	}
}

func TestMenuEngineStates(t *testing.T) {
	cs := allStates()
	starting := BuildMenu(MenuInput{Engine: EngineStarting, Containers: cs, Now: now})
	if starting.Items[0].Title != "Berth is starting…" {
		t.Errorf("starting header %q", starting.Items[0].Title)
	}
	for _, it := range starting.Items {
		if it.Submenu != nil {
			t.Errorf("container %q shown before the engine is ready", it.Title)
		}
	}
	if find(t, starting.Items, "Run Image…").Enabled || !find(t, starting.Items, "Settings…").Enabled {
		t.Error("while starting: Run must be disabled, Settings enabled")
	}
	failed := BuildMenu(MenuInput{Engine: EngineFailed, EngineError: "vz: invalid VM configuration", Now: now})
	if r := find(t, failed.Items, "Retry"); !r.Enabled || r.Action != ActRetryEngine {
		t.Errorf("retry: %+v", r)
	}
	find(t, failed.Items, "vz: invalid VM configuration")
	if failed.Icon.Symbol != "exclamationmark.triangle" {
		t.Errorf("failed icon %q", failed.Icon.Symbol)
	}
	stopping := BuildMenu(MenuInput{Engine: EngineStopping, Containers: cs, Now: now})
	if find(t, stopping.Items, "Quit Berth*").Enabled {
		t.Error("Quit enabled while already stopping")
	}
}

func TestMenuCapsContainerCount(t *testing.T) {
	var cs []container.Summary
	for i := 0; i < 60; i++ {
		cs = append(cs, ctr(fmt.Sprintf("c%02d", i), container.StateRunning, ""))
	}
	m := BuildMenu(MenuInput{Engine: EngineReady, Containers: cs, Now: now})
	n := 0
	for _, it := range m.Items {
		if it.Submenu != nil {
			n++
		}
	}
	if n != MaxMenuContainers {
		t.Errorf("%d container submenus, want %d", n, MaxMenuContainers)
	}
	if more := find(t, m.Items, "35 more…"); more.Action != ActContainers {
		t.Errorf("more item: %+v", more)
	}
}

func manyContainers(n int) []container.Summary {
	states := []container.ContainerState{container.StateRunning, container.StateExited, container.StateCreated, container.StatePaused}
	cs := make([]container.Summary, n)
	for i := range cs {
		cs[i] = ctr(fmt.Sprintf("svc-%03d", i), states[i%len(states)], fmt.Sprintf("192.168.64.%d", i%250+2), web(uint16(8000+i)))
	}
	return cs
}

// BenchmarkBuildMenu50: the status menu for 50 containers, rebuilt on every
// open and event; the budget is 1 ms. Reports the fraction of the budget
// used by wall time (budget-ratio < 1 means within budget) and the process
// CPU time per build (cpu-us/op), which a loaded machine does not inflate.
func BenchmarkBuildMenu50(b *testing.B) {
	cs := manyContainers(50)
	in := MenuInput{Engine: EngineReady, Containers: cs, Now: now}
	b.ReportAllocs()
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		BuildMenu(in)
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(time.Millisecond), "budget-ratio")
	b.ReportMetric(float64((cpuTime()-cpu0)/time.Duration(b.N))/float64(time.Microsecond), "cpu-us/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkContainerRows50(b *testing.B) {
	cs := manyContainers(50)
	for i := 0; i < b.N; i++ {
		ContainerRows(cs, nil, now)
	}
}
