package api

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berth-dev/berth/app/engine"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
)

// engineEnv is a real engine (QEMU VMs, the real agent) behind the API on
// its own data root, plus a loopback registry holding the busybox image.
type engineEnv struct {
	Sock  string
	Image string // pullable ref of the busybox test image
	Root  dataroot.Root
	Eng   *engine.Engine
}

// vmTest starts an engine for a test that boots VMs (skipped under -short,
// which CI does not use), pulls the test image into it, and returns the
// engine and a docker runner that fails the test on a non-zero exit.
func vmTest(t *testing.T) (*engineEnv, func(args ...string) string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs; skipped in -short mode")
	}
	e := startEngine(t)
	d := func(args ...string) string { t.Helper(); return mustDocker(t, e.Sock, args...) }
	d("pull", e.Image)
	return e, d
}

// startEngine boots nothing yet: VMs start with containers.
func startEngine(t testing.TB) *engineEnv { return startEngineWith(t, nil) }

// startEngineWith lets the caller wrap the container backend the API
// serves (benchmarks time the engine's share of a request this way).
func startEngineWith(t testing.TB, wrap func(Containers) Containers) *engineEnv {
	t.Helper()
	arch := runtime.GOARCH
	testenv.RequireQEMU(t, arch)
	gd := testenv.GuestDir(t, arch)
	guest := t.TempDir()
	if err := os.Symlink(gd, filepath.Join(guest, arch)); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.Open(context.Background(), engine.Options{Root: root, GuestDir: guest, Log: log, DefaultCPUs: 1, DefaultMemoryMiB: 256,
		// TCG on a shared 2-core machine: boots can take minutes under load.
		BootTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := eng.Close(ctx); err != nil {
			t.Logf("engine close: %v", err)
		}
	})
	var cs Containers = eng.Containers
	if wrap != nil {
		cs = wrap(cs)
	}
	sock := serveAt(t, Backend{
		Images:     &ImageStore{Store: eng.Images, Publish: eng.Events.Publish},
		Containers: cs,
		Events:     eng.Events,
		Volumes:    &VolumeStore{Store: eng.Volumes, Publish: eng.Events.Publish},
		Networks:   &NetworkStore{Store: eng.Networks, Containers: eng.Containers, DefaultSubnet: eng.DefaultSubnet(), Publish: eng.Events.Publish},
		DataRoot:   root.Dir,
	}, root.Socket())
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(arch)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "test/busybox:latest")
	return &engineEnv{Sock: sock, Image: ref, Root: root, Eng: eng}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
