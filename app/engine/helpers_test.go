package engine

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/syncbuf"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/logs"
)

const testImage = "busybox:test"

var arch = runtime.GOARCH

// guestDir lays out testenv's agent build the way the engine looks for it
// (<dir>/<arch>/initramfs.cpio.gz).
func guestDir(t testing.TB) string {
	t.Helper()
	testenv.RequireQEMU(t, arch)
	if d := os.Getenv("BERTH_TEST_GUEST_DIR"); d != "" {
		return d // a prebuilt guest (<dir>/<arch>/initramfs.cpio.gz)
	}
	gd := testenv.GuestDir(t, arch)
	dir := t.TempDir()
	if err := os.Symlink(gd, filepath.Join(dir, arch)); err != nil {
		t.Fatal(err)
	}
	return dir
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// openEngine opens a real engine (QEMU VMs, the real agent) on a fresh data
// root with the busybox test image loaded as busybox:test.
func openEngine(t testing.TB, mod ...func(*Options)) *Engine {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Root: root, GuestDir: guestDir(t), DefaultCPUs: 1, DefaultMemoryMiB: 256, BootTimeout: 3 * time.Minute,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, f := range mod {
		f(&o)
	}
	eng, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		eng.Close(ctx)
	})
	loadBusybox(t, eng.Images)
	return eng
}

func loadBusybox(t testing.TB, s *image.Store) {
	t.Helper()
	img, err := testimage.BusyboxImage(arch)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(name.MustParseReference(testImage), img, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background(), &buf, image.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// runResult is what `berth run` (attached) sees.
type runResult struct {
	ID             string
	Code           int
	Stdout, Stderr string
}

// run creates a container, attaches, starts it and waits for its exit.
func run(t testing.TB, m *ctrs.Manager, cfg container.Config, hc *container.HostConfig) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if cfg.Image == "" {
		cfg.Image = testImage
	}
	res, err := m.Create(ctx, ctrs.CreateOptions{Config: &cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var out, errb syncbuf.Buffer
	att, err := m.Attach(ctx, res.ID, ctrs.AttachOptions{Stdout: &out, Stderr: &errb, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	cond := container.WaitConditionNextExit
	if hc != nil && hc.AutoRemove {
		cond = container.WaitConditionRemoved
	}
	wait, err := m.Wait(ctx, res.ID, cond)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, res.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	att.Wait()
	w, ok := <-wait
	if !ok {
		t.Fatal("wait ended without a result")
	}
	return runResult{ID: res.ID, Code: int(w.StatusCode), Stdout: out.String(), Stderr: errb.String()}
}

// startDetached creates and starts a container (docker run -d).
func startDetached(t testing.TB, m *ctrs.Manager, opts ctrs.CreateOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if opts.Config.Image == "" {
		opts.Config.Image = testImage
	}
	res, err := m.Create(ctx, opts)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := m.Start(ctx, res.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	return res.ID
}

func logText(t testing.TB, m *ctrs.Manager, id string) string {
	t.Helper()
	var b strings.Builder
	err := m.Logs(context.Background(), id, ctrs.LogsOptions{Tail: -1}, func(e logs.Entry) error {
		b.WriteString(e.Stream + ": " + string(e.Line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func execOut(t testing.TB, m *ctrs.Manager, id string, args ...string) (string, int) {
	t.Helper()
	ctx := context.Background()
	eid, err := m.ExecCreate(ctx, id, container.ExecCreateRequest{Cmd: args, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	if err := m.ExecStart(ctx, eid, ctrs.ExecStartOptions{Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("exec %v: %v", args, err)
	}
	ins, err := m.ExecInspect(ctx, eid)
	if err != nil || ins.ExitCode == nil {
		t.Fatalf("exec inspect: %+v %v", ins, err)
	}
	return out.String(), *ins.ExitCode
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// a zombie is as good as dead
	f := strings.Fields(string(data))
	return len(f) > 2 && f[2] != "Z"
}
