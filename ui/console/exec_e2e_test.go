package console

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/app/engine"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/ui/notify"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestExecSessionInContainerVM opens a console session the way the app
// does: exec -it over the engine socket into a container running in its
// own QEMU VM, then checks output, resize, persistence, End and exit. With
// the same engine it checks the notification policy on the engine's real
// event stream: a crash is reported, a user stop is not.
func TestExecSessionInContainerVM(t *testing.T) {
	arch := runtime.GOARCH
	testenv.RequireQEMU(t, arch)
	gd := testenv.GuestDir(t, arch)
	guest := t.TempDir()
	if err := os.Symlink(gd, filepath.Join(guest, arch)); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "berth-console-") // short path: unix socket limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(context.Background(), engine.Options{Root: root, GuestDir: guest,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		eng.Close(ctx)
	})
	sock := filepath.Join(dir, "berth.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Backend: api.Backend{
		Images:     &api.ImageStore{Store: eng.Images, Publish: eng.Events.Publish},
		Containers: eng.Containers, Events: eng.Events, DataRoot: root.Dir,
	}, Version: "test", Logf: t.Logf})
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(arch)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "test/busybox:latest")

	cli, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Engine events feed the notification policy from the start.
	policy := notify.New(notify.Options{})
	posted := make(chan notify.Notification, 16)
	evs := cli.Events(ctx, client.EventsListOptions{})
	go notify.Watch(ctx, policy, evs.Messages, func(n notify.Notification) { posted <- n })
	pull, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "consoletest",
		Config: &container.Config{Image: ref, Cmd: []string{"sleep", "600"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})

	registry := NewRegistry(EngineDialer(cli, ExecOptions{}), SessionOptions{Cols: 80, Rows: 24})
	s, err := registry.Open(ctx, "consoletest")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	// busybox has no bash: the default shell falls back to sh.
	s.Send([]byte("echo in-vm-$((6*7)); cat /hello.txt; [ -x /bin/bash ] || echo no-bash\r"))
	waitScreen(t, s, "in-vm-42")
	waitScreen(t, s, "no-bash")
	if err := s.Resize(100, 30); err != nil {
		t.Fatalf("resize: %v", err)
	}
	s.Send([]byte("stty size\r"))
	waitScreen(t, s, "30 100")
	// The window closing does not end the shell.
	detach := s.Attach(func() {})
	detach()
	s.Send([]byte("echo still-here\r"))
	waitScreen(t, s, "still-here")
	// End Session ends a second, idle shell.
	other, err := registry.Open(ctx, "consoletest")
	if err != nil {
		t.Fatal(err)
	}
	waitScreen(t, other, "#")
	ended := make(chan struct{})
	go func() { other.End(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("End did not end the exec session")
	}
	if !other.Ended() {
		t.Fatal("session not marked ended")
	}
	s.Send([]byte("exit 5\r"))
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("session did not end after exit")
	}
	if code, err := s.ExitCode(); code != 5 {
		t.Fatalf("exit code %d (%v), want 5", code, err)
	}
	notifyCheck(t, ctx, cli, ref, created.ID, posted)
}

// notifyCheck runs at the end of the VM test: a container that exits 3 on its own is reported by name and
// code; stopping the long-running one is not reported.
func notifyCheck(t *testing.T, ctx context.Context, cli *client.Client, image, sleeper string, posted chan notify.Notification) {
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "crasher",
		Config: &container.Config{Image: image, Cmd: []string{"sh", "-c", "exit 3"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-posted:
		if n.Name != "crasher" || n.ExitCode != 3 || n.Body != "crasher exited with code 3." {
			t.Fatalf("notification %+v", n)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("no notification for a container that exited 3")
	}
	if _, err := cli.ContainerStop(ctx, sleeper, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-posted:
		t.Fatalf("user stop notified: %+v", n)
	case <-time.After(3 * time.Second):
	}
}
