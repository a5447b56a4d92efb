package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/runtime/dataroot"
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
