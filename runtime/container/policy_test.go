package container

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// noKernel fails every boot, so a test sees which containers Restore tried
// to start (their record then carries the boot error) without a VM.
type noKernel struct{}

func (noKernel) Boot(ctx context.Context, arch, override string) (BootFiles, error) {
	return BootFiles{}, errors.New("no kernel in this test")
}

// Docker's rules for restarting at engine start.
func TestRestoreAppliesRestartPolicies(t *testing.T) {
	root, _ := dataroot.Open(t.TempDir())
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := Config{DB: db, Root: root, Kernels: noKernel{}}
	m, _ := New(cfg)
	pol := func(n container.RestartPolicyMode, max int) container.RestartPolicy {
		return container.RestartPolicy{Name: n, MaximumRetryCount: max}
	}
	cases := []struct {
		name    string
		state   container.ContainerState
		policy  container.RestartPolicy
		manual  bool
		exit    int
		count   int
		started bool
	}{
		{"always-stopped-by-user", container.StateExited, pol("always", 0), true, 0, 0, true},
		{"unless-stopped-by-user", container.StateExited, pol("unless-stopped", 0), true, 0, 0, false},
		{"unless-stopped-crashed", container.StateRunning, pol("unless-stopped", 0), false, 0, 0, true},
		{"on-failure-crashed", container.StateRunning, pol("on-failure", 2), false, 0, 0, true},
		{"on-failure-used-up", container.StateRunning, pol("on-failure", 2), false, 0, 2, false},
		{"on-failure-clean-exit", container.StateExited, pol("on-failure", 0), false, 0, 0, false},
		{"no-policy-crashed", container.StateRunning, pol("no", 0), false, 0, 0, false},
	}
	for _, c := range cases {
		r := &record{ID: newID(), Name: c.name, Created: time.Now(), State: c.state, ExitCode: c.exit,
			HostConfig: container.HostConfig{RestartPolicy: c.policy}, HasBeenStarted: true,
			ManuallyStopped: c.manual, RestartCount: c.count, Arch: "amd64", CPUs: 1, MemoryMiB: 128}
		if err := m.put(r); err != nil {
			t.Fatal(err)
		}
	}
	m, _ = New(cfg)
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.bg.Wait() // the restarts Restore began in the background
	for _, c := range cases {
		ins, err := m.Inspect(context.Background(), c.name)
		if err != nil {
			t.Fatal(err)
		}
		tried := strings.Contains(ins.State.Error, "no kernel in this test")
		if tried != c.started {
			t.Errorf("%s: restart attempted %v, want %v (state %+v)", c.name, tried, c.started, ins.State)
		}
	}
}

// A --rm container whose start fails is removed by the manager (destroy
// event, "removed" waiters released), so `docker run --rm` ends promptly
// with the start error; one without --rm stays, with the error recorded.
func TestAutoRemoveAfterFailedStart(t *testing.T) {
	root, _ := dataroot.Open(t.TempDir())
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := Config{DB: db, Root: root, Kernels: noKernel{}}
	m, _ := New(cfg)
	for name, rm := range map[string]bool{"rm": true, "keep": false} {
		r := &record{ID: newID(), Name: name, Created: time.Now(), State: container.StateCreated,
			HostConfig: container.HostConfig{AutoRemove: rm}, Arch: "amd64", CPUs: 1, MemoryMiB: 128}
		os.MkdirAll(root.Container(r.ID), 0o700)
		if err := m.put(r); err != nil {
			t.Fatal(err)
		}
	}
	m, _ = New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := m.Lookup("rm")
	evs := m.Subscribe(ctx, time.Time{})
	removed, err := m.Wait(ctx, "rm", container.WaitConditionRemoved)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, "rm"); err == nil || !strings.Contains(err.Error(), "no kernel in this test") {
		t.Fatalf("start: %v, want the boot error", err)
	}
	select {
	case <-removed:
	case <-ctx.Done():
		t.Fatal("wait condition=removed never returned")
	}
	if _, err := m.Inspect(ctx, "rm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("--rm container still there: %v", err)
	}
	if _, err := os.Stat(root.Container(id)); !os.IsNotExist(err) {
		t.Errorf("its directory is left: %v", err)
	}
	for ev := range evs {
		if ev.Actor.ID == id && ev.Action == events.ActionDestroy {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("no destroy event")
	}
	if err := m.Start(ctx, "keep"); err == nil {
		t.Fatal("start without a kernel succeeded")
	}
	ins, err := m.Inspect(ctx, "keep")
	if err != nil || !strings.Contains(ins.State.Error, "no kernel") {
		t.Fatalf("container without --rm: %+v %v", ins.State, err)
	}
	m2, _ := New(cfg)
	if _, err := m2.Inspect(ctx, "rm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("--rm record survived a reopen: %v", err)
	}
}
