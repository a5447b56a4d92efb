package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	ctrs "github.com/berth-dev/berth/runtime/container"
)

// Bad input that needs no VM: each is a clear error and nothing is left.
func TestBadInputNoVM(t *testing.T) {
	eng := openEngine(t)
	m := eng.Containers
	ctx := context.Background()
	create := func(name string, cfg container.Config, hc *container.HostConfig) error {
		if cfg.Image == "" {
			cfg.Image = testImage
		}
		_, err := m.Create(ctx, ctrs.CreateOptions{Name: name, Config: &cfg, HostConfig: hc})
		return err
	}
	udp, _ := network.PortFrom(53, network.UDP)
	cases := []struct {
		what string
		err  error
		kind error
		msg  string
	}{
		{"missing image", create("", container.Config{Image: "nosuch:image", Cmd: []string{"true"}}, nil), ctrs.ErrNotFound, "no such image: nosuch:image"},
		{"memory too small", create("", container.Config{Cmd: []string{"true"}}, &container.HostConfig{Resources: container.Resources{Memory: 16 << 20}}), ctrs.ErrInvalid, "too small to boot"},
		{"absurd cpus", create("", container.Config{Cmd: []string{"true"}}, &container.HostConfig{Resources: container.Resources{NanoCPUs: 1e6 * 1e9}}), ctrs.ErrInvalid, "CPUs of this machine"},
		{"udp port", create("", container.Config{Cmd: []string{"true"}}, &container.HostConfig{PortBindings: network.PortMap{udp: {{HostPort: "53"}}}}), ctrs.ErrNotImplemented, "only tcp"},
		{"bad name", create("no/slash", container.Config{Cmd: []string{"true"}}, nil), ctrs.ErrInvalid, "invalid container name"},
		{"privileged", create("", container.Config{Cmd: []string{"true"}}, &container.HostConfig{Privileged: true}), ctrs.ErrNotImplemented, "--privileged"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.kind) || !strings.Contains(c.err.Error(), c.msg) || strings.Contains(c.err.Error(), "\n") {
			t.Errorf("%s: got %v, want a one-line %v mentioning %q", c.what, c.err, c.kind, c.msg)
		}
	}
	// Name clash: the second create fails and the first is untouched.
	if err := create("dup", container.Config{Cmd: []string{"true"}}, nil); err != nil {
		t.Fatal(err)
	}
	err := create("dup", container.Config{Cmd: []string{"true"}}, nil)
	if !errors.Is(err, ctrs.ErrConflict) || !strings.Contains(err.Error(), `"/dup" is already in use`) {
		t.Fatalf("name clash: %v", err)
	}
	list, _ := m.List(ctx, ctrs.ListOptions{All: true})
	if len(list) != 1 || list[0].Names[0] != "/dup" {
		t.Fatalf("after the failures: %+v", list)
	}
	dirs, _ := os.ReadDir(eng.Root.Containers())
	if len(dirs) != 1 {
		t.Fatalf("%d container directories, want 1", len(dirs))
	}
	// Removing a running container needs force; a stopped one goes.
	if err := m.Remove(ctx, "dup", ctrs.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(ctx, "dup", ""); !errors.Is(err, ctrs.ErrNotFound) {
		t.Fatalf("kill of a removed container: %v", err)
	}
}

// A command that does not exist fails the start with Docker's wording (the
// docker CLI turns "no such file or directory" into exit status 127).
func TestBadCommand(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	ctx := context.Background()
	res, err := m.Create(ctx, ctrs.CreateOptions{Config: &container.Config{Image: testImage, Cmd: []string{"/no/such/binary"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(ctx, res.ID)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("start: %v", err)
	}
	ins, _ := m.Inspect(ctx, res.ID)
	if ins.State.Running || ins.State.ExitCode != 127 || ins.State.Error == "" {
		t.Fatalf("state after a failed start: %+v", ins.State)
	}
	if procs := qemuProcsFor(res.ID); len(procs) > 0 {
		t.Fatalf("VM left running: %v", procs)
	}
}

// A kernel that does not exist, and one that does not boot: clear errors
// (the latter with the console's last lines), no VM left running.
func TestBadKernels(t *testing.T) {
	t.Parallel()
	eng := openEngine(t, func(o *Options) { o.BootTimeout = 40 * time.Second })
	m := eng.Containers
	ctx := context.Background()
	start := func(kernel string) (string, error) {
		res, err := m.Create(ctx, ctrs.CreateOptions{Kernel: kernel, Config: &container.Config{Image: testImage, Cmd: []string{"true"}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID, m.Start(ctx, res.ID)
	}
	if _, err := start("/no/such/vmlinuz"); err == nil || !strings.Contains(err.Error(), "/no/such/vmlinuz") {
		t.Fatalf("missing kernel: %v", err)
	}
	// Half a real bzImage passes the magic check but cannot boot.
	k, err := eng.Boot.Boot(ctx, arch, "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(k.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "vmlinuz-broken")
	os.WriteFile(broken, data[:len(data)/3], 0o644)
	t0 := time.Now()
	id, err := start(broken)
	if err == nil || !strings.Contains(err.Error(), "boot failed") {
		t.Fatalf("broken kernel: %v", err)
	}
	t.Logf("broken kernel reported after %s: %v", time.Since(t0), err)
	if procs := qemuProcsFor(id); len(procs) > 0 {
		t.Fatalf("VM left running: %v", procs)
	}
}

// Without QEMU on PATH, starting says which package to install.
func TestQEMUMissing(t *testing.T) {
	eng := openEngine(t)
	t.Setenv("PATH", t.TempDir())
	m := eng.Containers
	ctx := context.Background()
	res, err := m.Create(ctx, ctrs.CreateOptions{Config: &container.Config{Image: testImage, Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(ctx, res.ID)
	if err == nil || !strings.Contains(err.Error(), "install the Debian package qemu-system-") {
		t.Fatalf("start without qemu: %v", err)
	}
}
