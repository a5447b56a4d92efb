package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/app/engine"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/ui/model"
)

// realEngine is the in-process engine the app runs (app/engine + app/api on
// the data root's socket), here with the QEMU backend.
type realEngine struct {
	root  dataroot.Root
	guest string
	eng   *engine.Engine
	srv   *api.Server
}

func (e *realEngine) Start(ctx context.Context) error {
	eng, err := engine.Open(ctx, engine.Options{Root: e.root, GuestDir: e.guest,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	srv := api.New(api.Options{Version: "test", Backend: api.Backend{
		Images: &api.ImageStore{Store: eng.Images, Publish: eng.Events.Publish}, Containers: eng.Containers,
		Events: eng.Events, DataRoot: e.root.Dir}})
	ln, err := api.ListenUnix(e.root.Socket())
	if err != nil {
		eng.Close(ctx)
		return err
	}
	go srv.Serve(ln)
	e.eng, e.srv = eng, srv
	return nil
}

func (e *realEngine) Socket() string { return e.root.Socket() }

func (e *realEngine) Shutdown(ctx context.Context) error {
	if e.srv != nil {
		e.srv.Shutdown(ctx)
	}
	if e.eng == nil {
		return nil
	}
	err := e.eng.Close(ctx)
	e.eng = nil
	return err
}

type recordingView struct {
	changes atomic.Int64
	mu      sync.Mutex
	alerts  []model.Alert
}

func (v *recordingView) Changed() { v.changes.Add(1) }
func (v *recordingView) Alert(a model.Alert) {
	v.mu.Lock()
	v.alerts = append(v.alerts, a)
	v.mu.Unlock()
}

// waitMenu polls the controller's menu (built from events, not from the
// test) until cond holds.
func waitMenu(t *testing.T, c *Controller, what string, cond func(model.Menu) bool) model.Menu {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := c.Menu(time.Now(), true)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; menu: %q", what, menuTitles(m.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func menuTitles(items []model.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Title)
	}
	return out
}

func containerItem(m model.Menu, name string) (model.Item, bool) {
	for _, it := range m.Items {
		if it.Submenu != nil && it.Title == name {
			return it, true
		}
	}
	return model.Item{}, false
}

func action(it model.Item, title string) model.Item {
	for _, s := range it.Submenu {
		if s.Title == title {
			return s
		}
	}
	return model.Item{}
}

// The app's whole path on a real engine: start it in-process, run a
// container from the Run dialog's form (pulling the image from a real
// registry), see it in the menu via events, follow its logs, stop it from
// its submenu, then Quit, which stops what still runs and shuts down.
func TestControllerAgainstRealEngine(t *testing.T) {
	arch := runtime.GOARCH
	testenv.RequireQEMU(t, arch)
	guest := t.TempDir()
	if err := os.Symlink(testenv.GuestDir(t, arch), filepath.Join(guest, arch)); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "berth-ui-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(arch)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "test/busybox:latest")

	eng := &realEngine{root: root, guest: guest}
	view := &recordingView{}
	c := New(eng, view)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Cleanup(func() { eng.Shutdown(context.Background()) })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(); st != model.EngineReady {
		t.Fatalf("state %v", st)
	}
	if m := c.Menu(time.Now(), true); m.Items[0].Title != "No containers" {
		t.Fatalf("fresh engine menu: %q", menuTitles(m.Items))
	}

	evs, stopEvents := c.SubscribeEvents()
	defer stopEvents()

	// Run dialog → create (image missing → pull with progress) → start.
	req, err := model.RunForm{Image: ref, Name: "web", Command: `sh -c "echo hello from berth; exec sleep 300"`}.Validate(model.RunLimits{})
	if err != nil {
		t.Fatal(err)
	}
	var pulls atomic.Int32
	if _, err := c.Run(ctx, req, func(model.PullProgress) { pulls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if pulls.Load() == 0 {
		t.Error("no pull progress reported")
	}
	m := waitMenu(t, c, "web running", func(m model.Menu) bool {
		it, ok := containerItem(m, "web")
		return ok && it.State == container.StateRunning
	})
	if !m.Icon.Active || m.Running != 1 {
		t.Errorf("icon while running: %+v", m.Icon)
	}
	web, _ := containerItem(m, "web")
	if !action(web, "Stop").Enabled || action(web, "Start").Enabled {
		t.Errorf("running container's actions: %+v", web.Submenu)
	}
	if len(c.Snap.Images()) == 0 {
		t.Error("pulled image not listed")
	}

	// Containers window: stats streams fill the CPU/memory columns.
	wctx, wcancel := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { c.WatchStats(wctx); close(watchDone) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, ok := c.Snap.Stats()[web.Target]; ok && s.MemoryStats.Usage > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no stats sample with memory usage arrived")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range model.ContainerRows(c.Snap.Containers(), c.Snap.Stats(), time.Now()) {
		if r.Name == "web" && (r.Memory == "-" || r.CPU == "-") {
			t.Errorf("web row without live stats: %+v", r)
		}
	}
	wcancel()
	<-watchDone

	// Logs window: follow into the bounded buffer.
	buf := model.NewLogBuffer(100, 1<<16)
	lctx, lcancel := context.WithCancel(ctx)
	logDone := make(chan error, 1)
	go func() { logDone <- c.FollowLogs(lctx, web.Target, false, buf) }()
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.Text(false), "hello from berth") {
		if time.Now().After(deadline) {
			t.Fatalf("log line never arrived; buffer: %q", buf.Text(true))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ls := buf.Lines(); ls[0].Time.IsZero() || time.Since(ls[0].Time) > time.Minute {
		t.Errorf("log line without the engine's timestamp: %+v", ls[0])
	}
	lcancel()
	<-logDone

	// Details pane.
	ins, err := c.Inspect(ctx, web.Target)
	if err != nil || !ins.State.Running {
		t.Fatalf("inspect: %v %+v", err, ins.State)
	}

	// Pause and Resume from the submenu: the item flips with the state.
	if err := c.Do(ctx, action(web, "Pause")); err != nil {
		t.Fatal(err)
	}
	m = waitMenu(t, c, "web paused", func(m model.Menu) bool {
		it, ok := containerItem(m, "web")
		return ok && it.State == container.StatePaused
	})
	paused, _ := containerItem(m, "web")
	if err := c.Do(ctx, action(paused, "Resume")); err != nil {
		t.Fatal(err)
	}
	waitMenu(t, c, "web resumed", func(m model.Menu) bool {
		it, ok := containerItem(m, "web")
		return ok && it.State == container.StateRunning
	})

	// Stop from the submenu; the menu follows the engine's events.
	if err := c.Do(ctx, action(web, "Stop")); err != nil {
		t.Fatal(err)
	}
	waitMenu(t, c, "web exited", func(m model.Menu) bool {
		it, ok := containerItem(m, "web")
		return ok && it.State == container.StateExited && !m.Icon.Active
	})
	// Subscribers (exit notifications) saw the container's life.
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for !seen["die"] {
		select {
		case ev := <-evs:
			if ev.Actor.ID == web.Target {
				seen[string(ev.Action)] = true
			}
		case <-timeout:
			t.Fatalf("no die event for web within 30s (saw %v)", seen)
		}
	}
	for _, a := range []string{"create", "start", "die"} {
		if !seen[a] {
			t.Errorf("event subscriber missed %q (saw %v)", a, seen)
		}
	}
	if err := c.Do(ctx, model.Item{Action: model.ActCopyIP}); err == nil {
		t.Error("a UI-only action reached the engine")
	}

	// Start it again, then Quit: it is stopped gracefully with progress.
	if err := c.Do(ctx, action(web, "Start")); err != nil {
		t.Fatal(err)
	}
	waitMenu(t, c, "web running again", func(m model.Menu) bool { return m.Running == 1 })
	var mu sync.Mutex
	var steps []string
	if err := c.Quit(ctx, func(done, total int) {
		mu.Lock()
		steps = append(steps, fmt.Sprintf("%d/%d", done, total))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, ",") != "0/1,1/1" {
		t.Errorf("quit progress: %q", steps)
	}
	if st, _ := c.State(); st != model.EngineStopping {
		t.Errorf("state after quit: %v", st)
	}
	if _, err := os.Stat(root.Socket()); !errors.Is(err, os.ErrNotExist) && err != nil {
		t.Logf("socket after shutdown: %v", err)
	}
	if view.changes.Load() == 0 {
		t.Error("the view was never told about changes")
	}
}

func TestControllerEngineFailure(t *testing.T) {
	view := &recordingView{}
	c := New(failingEngine{}, view)
	if err := c.Start(context.Background()); err == nil {
		t.Fatal("want the engine's error")
	}
	st, err := c.State()
	m := c.Menu(time.Now(), true)
	if st != model.EngineFailed || err == nil || m.Items[1].Title != "no kernel for arm64" {
		t.Fatalf("state %v %v menu %q", st, err, menuTitles(m.Items))
	}
	if err := c.Do(context.Background(), model.Item{Action: model.ActStart, Target: "x"}); err == nil {
		t.Fatal("action without an engine")
	}
}

type failingEngine struct{}

func (failingEngine) Start(context.Context) error    { return errors.New("no kernel for arm64") }
func (failingEngine) Socket() string                 { return "/nonexistent.sock" }
func (failingEngine) Shutdown(context.Context) error { return nil }
