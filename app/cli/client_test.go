package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	imgstore "github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/state"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// openImageStore opens the image store of the data root dir, as the engine
// does; close syncs it and closes state.db (one process at a time holds it).
func openImageStore(t *testing.T, dir string) (s *imgstore.Store, close func()) {
	t.Helper()
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	s, err = imgstore.New(db, root)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return s, func() {
		s.Sync()
		db.Close()
	}
}

func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "berth-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestDockerEnvEvalsToTheSocket(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "data root") // a space, as on macOS
	out, _, err := runCLI(t, "docker-env", "--data-root", dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command("sh", "-c", out+"\nprintf %s \"$DOCKER_HOST\"").Output()
	if err != nil {
		t.Fatalf("sh could not eval docker-env output: %v\n%s", err, out)
	}
	if want := "unix://" + filepath.Join(dir, "berth.sock"); string(got) != want {
		t.Fatalf("DOCKER_HOST = %q, want %q", got, want)
	}
	if _, _, err := runCLI(t, "docker-env", "--shell", "tcsh", "--data-root", dir); err == nil {
		t.Fatal("unknown shell accepted")
	}
}

func TestClientTalksToTheEngineSocket(t *testing.T) {
	dir := shortTempDir(t)
	g := &Globals{DataRoot: dir}
	if _, err := g.Client(); !errors.Is(err, ErrNoEngine) {
		t.Fatalf("Client without an engine: %v, want ErrNoEngine", err)
	}
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := api.ListenUnix(root.Socket())
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Version: "test"})
	go srv.Serve(l)
	defer srv.Close()

	c, err := g.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != api.MaxVersion || p.OSType != "linux" {
		t.Fatalf("ping: %+v", p)
	}
	if v := c.ClientVersion(); v != api.MaxVersion {
		t.Fatalf("negotiated version %q", v)
	}

	// berth context: a docker context pointing at the socket.
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal("the docker CLI is not installed: install the Debian package docker-cli")
	}
	cfg := shortTempDir(t)
	t.Setenv("DOCKER_CONFIG", cfg)
	if _, _, err := runCLI(t, "context", "--data-root", dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(docker, "context", "inspect", "berth", "--format", "{{.Endpoints.docker.Host}}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "unix://"+root.Socket() {
		t.Fatalf("docker context inspect: %v %q", err, out)
	}
	// Running it again updates rather than failing; --use switches to it,
	// and the docker CLI then reaches the engine without DOCKER_HOST.
	if _, _, err := runCLI(t, "context", "--use", "--data-root", dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(docker, "version", "--format", "{{.Server.APIVersion}}")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=")
	out, err = cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != api.MaxVersion {
		t.Fatalf("docker version through the context: %v %q", err, out)
	}
}

// With an engine serving the data root, the image commands go through its
// API (the engine holds state.db, so opening the store would fail).
func TestImageCommandsViaEngine(t *testing.T) {
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "cli/busybox:1")

	dir := shortTempDir(t)
	st, closeStore := openImageStore(t, dir)
	defer closeStore()
	sock, err := (&Globals{DataRoot: dir}).EngineSocket()
	if err != nil {
		t.Fatal(err)
	}
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Version: "test", Backend: api.Backend{Images: &api.ImageStore{Store: st}}})
	go srv.Serve(l)
	defer srv.Close()

	berth := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, append(args, "--data-root", dir)...)
		if err != nil {
			t.Fatalf("berth %v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	if out := berth("pull", ref); !strings.Contains(out, "Pull complete") {
		t.Fatalf("berth pull via the engine:\n%s", out)
	}
	if out := berth("images"); !strings.Contains(out, reg.Addr+"/cli/busybox") {
		t.Fatalf("berth images:\n%s", out)
	}
	berth("tag", ref, "cli/copy:2")
	tarPath := filepath.Join(shortTempDir(t), "img.tar")
	berth("save", "-o", tarPath, "cli/copy:2")
	if fi, err := os.Stat(tarPath); err != nil || fi.Size() < 100000 {
		t.Fatalf("berth save: %v", err)
	}
	if out := berth("rmi", "cli/copy:2"); !strings.Contains(out, "Untagged: cli/copy:2") {
		t.Fatalf("berth rmi: %q", out)
	}
	if out := berth("load", "-i", tarPath); !strings.Contains(out, "Loaded image: cli/copy:2") {
		t.Fatalf("berth load: %q", out)
	}
	if out := berth("image", "inspect", "cli/copy:2"); !strings.Contains(out, `"Architecture": "`+runtime.GOARCH) {
		t.Fatalf("berth image inspect:\n%s", out)
	}
	if out := berth("image", "prune", "-a"); !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("berth image prune: %q", out)
	}
	if out := berth("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images after prune -a: %q", out)
	}
	if _, _, err := runCLI(t, "rmi", "nosuch", "--data-root", dir); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("berth rmi nosuch: %v", err)
	}
}
