package container

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

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
