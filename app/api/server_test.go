package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/common"
)

// httpOver returns a client that talks HTTP over the unix socket.
func httpOver(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// concurrently sends n requests over c at once, the i-th built by mk with
// the status it must get, and reports every call that failed or got another.
func concurrently(t *testing.T, c *http.Client, n int, mk func(i int) (*http.Request, int)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, want := mk(i)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				errs <- fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func call(t *testing.T, c *http.Client, method, path, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://berth"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errorMessage(t *testing.T, body string) string {
	t.Helper()
	var e common.ErrorResponse
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" {
		t.Fatalf("error body is not {\"message\": ...}: %q", body)
	}
	return e.Message
}

func TestListenUnixModeStaleAndLive(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "berth.sock")

	// A stale socket (nobody listening) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v, want socket 0600", fi.Mode())
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary socket names left behind: %v", leftovers)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	// A live engine is never displaced.
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second engine on a live socket: err = %v, want 'already serving'", err)
	}
	l.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket not removed on close: %v", err)
	}

	// A regular file is never deleted.
	if err := os.WriteFile(sock, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file at socket path: err = %v", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "mine" {
		t.Fatal("regular file at the socket path was modified")
	}
}

func TestPingVersionHeadersAndErrors(t *testing.T) {
	t.Parallel()
	sock := serve(t, Backend{})
	c := httpOver(sock)

	for _, path := range []string{"/_ping", "/v1.44/_ping", "/v1.56/_ping"} {
		code, h, body := call(t, c, "GET", path, "")
		if code != 200 || body != "OK" {
			t.Fatalf("GET %s = %d %q", path, code, body)
		}
		for _, k := range []string{"Api-Version", "Ostype", "Docker-Experimental", "Builder-Version"} {
			if h.Get(k) == "" {
				t.Errorf("GET %s: header %s missing", path, k)
			}
		}
		if h.Get("Api-Version") != MaxVersion || h.Get("Ostype") != "linux" {
			t.Errorf("GET %s: Api-Version=%q Ostype=%q", path, h.Get("Api-Version"), h.Get("Ostype"))
		}
	}
	if code, _, body := call(t, c, "HEAD", "/_ping", ""); code != 200 || body != "" {
		t.Fatalf("HEAD /_ping = %d %q", code, body)
	}

	cases := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", "/v1.99/version", "", 400, "too new"},
		{"GET", "/v1.12/version", "", 400, "too old"},
		{"GET", "/nope", "", 404, "page not found"},
		{"GET", "/v1.50/containers/json", "", 501, "runs no containers"},
		{"POST", "/containers/create", "{", 501, ""},
		{"GET", "/images/json", "", 501, "no image store"},
		{"POST", "/build", "", 501, "build"},
		{"GET", "/events?filters=notjson", "", 400, "invalid filters"},
		{"GET", "/events?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D", "", 400, "invalid filter 'bogus'"},
		{"GET", "/events?since=yesterday", "", 400, "since"},
	}
	for _, tc := range cases {
		code, h, body := call(t, c, tc.method, tc.path, tc.body)
		if code != tc.code {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			continue
		}
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", tc.method, tc.path, h.Get("Content-Type"))
		}
		if msg := errorMessage(t, body); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s: message %q does not mention %q", tc.method, tc.path, msg, tc.msg)
		}
	}
}

func TestDockerCLIVersionAndInfo(t *testing.T) {
	t.Parallel()
	sock := serve(t, Backend{DataRoot: "/tmp/berth-test-root"})
	out := mustDocker(t, sock, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}} {{.Client.APIVersion}}")
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != MaxVersion || f[1] != "linux" {
		t.Fatalf("docker version: %q", out)
	}
	out = mustDocker(t, sock, "info", "--format", "{{.OperatingSystem}}|{{.DockerRootDir}}|{{.OSType}}")
	if !strings.Contains(out, "Berth") || !strings.Contains(out, "/tmp/berth-test-root") {
		t.Fatalf("docker info: %q", out)
	}
	// Plain `docker info` renders every section without errors.
	r := docker(t, sock, nil, "info")
	if r.Code != 0 || strings.Contains(r.Stderr, "ERROR") {
		t.Fatalf("docker info: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// An unsupported command gets the server's message.
	r = docker(t, sock, nil, "pause", "x")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not supported by Berth") && !strings.Contains(r.Stderr, "runs no containers") {
		t.Fatalf("docker pause: exit %d %q", r.Code, r.Stderr)
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	sock := serve(t, Backend{})
	c := httpOver(sock)
	concurrently(t, c, 100, func(i int) (*http.Request, int) {
		path := []string{"/_ping", "/version", "/info", "/v1.50/nope"}[i%4]
		req, _ := http.NewRequest("GET", "http://berth"+path, nil)
		if strings.HasSuffix(path, "nope") {
			return req, 404
		}
		return req, 200
	})
	if code, _, _ := call(t, c, "GET", "/_ping", ""); code != 200 {
		t.Fatal("server stopped answering after 100 concurrent calls")
	}
}

func TestListenHosts(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "berth.sock")
	var warned []string
	ls, err := ListenHosts(sock, nil, func(s string) { warned = append(warned, s) })
	if err != nil || len(ls) != 1 || len(warned) != 0 {
		t.Fatalf("default: %v %v %v", ls, err, warned)
	}
	if a := ls[0].Addr().String(); a != sock {
		t.Fatalf("listener address %q, want the published socket %q", a, sock)
	}
	ls[0].Close()
	ls, err = ListenHosts(sock, []string{"unix://" + sock, "tcp://127.0.0.1:0"}, func(s string) { warned = append(warned, s) })
	if err != nil || len(ls) != 2 || len(warned) != 1 || !strings.Contains(warned[0], "WARNING") {
		t.Fatalf("tcp: %v %v %v", ls, err, warned)
	}
	srv := New(Options{Version: "test"})
	go srv.Serve(ls[1])
	defer srv.Close()
	resp, err := http.Get("http://" + ls[1].Addr().String() + "/_ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("tcp ping: %v %v", resp, err)
	}
	resp.Body.Close()
	ls[0].Close()
	for _, bad := range []string{"udp://x:1", "unix://relative.sock", "tcp://"} {
		if _, err := ListenHosts(sock, []string{bad}, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
