package api

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerCLI is the real docker client the acceptance tests drive: $BERTH_DOCKER_CLI, else docker on PATH.
var dockerCLI string

func requireDocker(t testing.TB) {
	t.Helper()
	if dockerCLI != "" {
		return
	}
	p := os.Getenv("BERTH_DOCKER_CLI")
	if p == "" {
		var err error
		if p, err = exec.LookPath("docker"); err != nil {
			t.Fatalf("the docker CLI is not installed: install the Debian package docker-cli (or a static docker CLI on PATH; BERTH_DOCKER_CLI overrides)")
		}
	}
	dockerCLI = p
}

// serve starts a Server over b on a fresh socket and returns the socket.
func serve(t testing.TB, b Backend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-api-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return serveAt(t, b, filepath.Join(dir, "berth.sock"))
}

// serveAt starts a Server over b on the socket path.
func serveAt(t testing.TB, b Backend, sock string) string {
	t.Helper()
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Backend: b, Version: "test", Logf: t.Logf})
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		l.Close()
		<-done
	})
	return sock
}

type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// docker runs the docker CLI against sock with an empty client config (no
// contexts, no credential helpers from the machine).
func docker(t testing.TB, sock string, stdin []byte, args ...string) cliResult {
	t.Helper()
	return dockerIn(t, dockerEnv(t, sock), stdin, args...)
}

// dockerIn is docker with the environment given (see dockerEnvWith).
func dockerIn(t testing.TB, env []string, stdin []byte, args ...string) cliResult {
	t.Helper()
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	res := cliResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// dockerConfig is an empty docker client config dir for the whole test
// binary (TestMain removes it).
var dockerConfig string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-api-docker-config-")
	if err != nil {
		panic(err)
	}
	dockerConfig = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func dockerEnv(t testing.TB, sock string) []string { return dockerEnvWith(t, sock, dockerConfig) }

// dockerEnvWith uses the client config directory cfg (tests that log in
// keep their credentials to themselves).
func dockerEnvWith(t testing.TB, sock, cfg string) []string {
	return []string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + cfg, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TERM=dumb"}
}

// mustDocker runs docker and fails the test unless it exits 0.
func mustDocker(t testing.TB, sock string, args ...string) string {
	t.Helper()
	r := docker(t, sock, nil, args...)
	if r.Code != 0 {
		t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}
