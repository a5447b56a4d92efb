package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// Restore after a crash, without VMs: records left "running" become exited
// (255, with the reason) and their stale VM is reaped, "removing" finishes,
// exited --rm containers go, directories without a record go, and the
// records survive a reopen of the database.
func TestRestoreReconciles(t *testing.T) {
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reaped []string
	cfg := Config{DB: db, Root: root, KillStale: func(pid int, dir string) error {
		reaped = append(reaped, filepath.Base(filepath.Dir(dir)))
		return nil
	}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, st container.ContainerState, hc container.HostConfig) string {
		id := newID()
		os.MkdirAll(root.Container(id), 0o700)
		os.MkdirAll(filepath.Join(root.Container(id), "vm"), 0o700)
		r := &record{ID: id, Name: name, Created: time.Now(), State: st, HostConfig: hc, HasBeenStarted: st != container.StateCreated, VMPID: 4242}
		if err := m.put(r); err != nil {
			t.Fatal(err)
		}
		return id
	}
	running := mk("was-running", container.StateRunning, container.HostConfig{})
	removing := mk("was-removing", container.StateRemoving, container.HostConfig{})
	rmExited := mk("rm-exited", container.StateExited, container.HostConfig{AutoRemove: true})
	created := mk("created", container.StateCreated, container.HostConfig{})
	orphan := filepath.Join(root.Containers(), newID())
	os.MkdirAll(orphan, 0o700)

	m, err = New(cfg) // a new engine on the same database
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ins, err := m.Inspect(ctx, "was-running")
	if err != nil {
		t.Fatal(err)
	}
	if ins.State.Status != container.StateExited || ins.State.ExitCode != 255 || ins.State.Error == "" || ins.State.Pid != 0 {
		t.Fatalf("was-running: %+v", ins.State)
	}
	if len(reaped) != 1 || reaped[0] != running {
		t.Fatalf("stale VMs reaped for %v, want [%s]", reaped, running)
	}
	for _, gone := range []string{removing, rmExited} {
		if _, err := m.Inspect(ctx, gone); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s still there: %v", gone, err)
		}
		if _, err := os.Stat(root.Container(gone)); !os.IsNotExist(err) {
			t.Errorf("%s directory left", gone)
		}
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Error("orphan directory left")
	}
	if _, err := m.Inspect(ctx, created); err != nil {
		t.Errorf("created container lost: %v", err)
	}
	// Name lookups and ID prefixes work on restored records.
	if id, err := m.Lookup(running[:8]); err != nil || id != running {
		t.Errorf("prefix lookup: %v %v", id, err)
	}
	list, _ := m.List(ctx, ListOptions{All: true})
	if len(list) != 2 {
		t.Errorf("%d containers listed, want 2", len(list))
	}
	if err := m.Rename(ctx, "created", "renamed"); err != nil {
		t.Fatal(err)
	}
	m2, _ := New(cfg)
	if _, err := m2.Inspect(ctx, "renamed"); err != nil {
		t.Errorf("rename not persisted: %v", err)
	}
}
