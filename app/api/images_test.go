package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	imgstore "github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/state"
)

// imageServer serves a real image store (its own data root and bbolt).
func imageServer(t *testing.T) (sock string, st *imgstore.Store) {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err = imgstore.New(db, root)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, Backend{Images: &ImageStore{Store: st}, DataRoot: root.Dir}), st
}

// TestDockerCLIImages drives the image endpoints with the real docker CLI
// over the real store, pulling from a real registry on loopback.
func TestDockerCLIImages(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "test/busybox:1")
	sock, _ := imageServer(t)

	out := mustDocker(t, sock, "pull", ref)
	if !strings.Contains(out, "Pull complete") || !strings.Contains(out, "Digest: sha256:") || !strings.Contains(out, ref) {
		t.Fatalf("docker pull output:\n%s", out)
	}
	out = mustDocker(t, sock, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}")
	if !strings.Contains(out, ref+" ") {
		t.Fatalf("docker images does not list %s:\n%s", ref, out)
	}
	id := mustDocker(t, sock, "inspect", "--format", "{{.Id}} {{.Os}} {{index .Config.Cmd 0}}", ref)
	if !strings.HasPrefix(id, "sha256:") || !strings.Contains(id, "linux sh") {
		t.Fatalf("docker inspect: %q", id)
	}
	if out := mustDocker(t, sock, "history", ref); !strings.Contains(out, "IMAGE") {
		t.Fatalf("docker history:\n%s", out)
	}

	mustDocker(t, sock, "tag", ref, "berth-test/copy:2")
	out = mustDocker(t, sock, "images", "--format", "{{.Repository}}:{{.Tag}}")
	if !strings.Contains(out, "berth-test/copy:2") {
		t.Fatalf("tag not listed:\n%s", out)
	}
	if out := mustDocker(t, sock, "images", "--filter", "reference=berth-test/*", "--format", "{{.Repository}}"); strings.TrimSpace(out) != "berth-test/copy" {
		t.Fatalf("reference filter: %q", out)
	}

	// save | load through the API, into a second engine.
	tarball := mustDocker(t, sock, "save", "berth-test/copy:2")
	if len(tarball) < 100000 {
		t.Fatalf("docker save wrote only %d bytes", len(tarball))
	}
	sock2, _ := imageServer(t)
	r := docker(t, sock2, []byte(tarball), "load")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Loaded image: berth-test/copy:2") {
		t.Fatalf("docker load: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	id2 := mustDocker(t, sock2, "inspect", "--format", "{{.Id}} {{.Os}} {{index .Config.Cmd 0}}", "berth-test/copy:2")
	if id2 != id {
		t.Fatalf("loaded image differs: %q vs %q", id2, id)
	}

	out = mustDocker(t, sock, "rmi", "berth-test/copy:2")
	if !strings.Contains(out, "Untagged: berth-test/copy:2") {
		t.Fatalf("docker rmi: %q", out)
	}
	if out := mustDocker(t, sock, "system", "df"); !strings.Contains(out, "Images") {
		t.Fatalf("docker system df:\n%s", out)
	}
	mustDocker(t, sock, "image", "prune", "-a", "-f")
	if out := mustDocker(t, sock, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images left after prune -a: %q", out)
	}

	// Errors: the CLI shows the server's words and exits non-zero.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rmi", "nosuch:image"}, "No such image"},
		{[]string{"inspect", "--type", "image", "nosuch:image"}, "No such image"},
		{[]string{"pull", reg.Ref("test/absent:1")}, "not found"},
		{[]string{"tag", "nosuch", "x:y"}, "No such image"},
		{[]string{"pull", "UPPER/case"}, "invalid reference format"},
	} {
		r := docker(t, sock, nil, tc.args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("docker %v: exit %d, stderr %q, want %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
	r = docker(t, sock, []byte("this is not a tarball"), "load")
	if r.Code == 0 || !strings.Contains(r.Stderr+r.Stdout, "rror") {
		t.Errorf("docker load of garbage: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	// The engine still serves.
	mustDocker(t, sock, "version")
}

// A client that hangs up mid-pull leaves nothing half-stored and the server
// keeps serving; the pull can then be done again.
func TestPullClientDisconnect(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "test/busybox:cut")
	sock, st := imageServer(t)
	c := httpOver(sock)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://berth/v1.50/images/create?fromImage="+ref, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Read the first progress line, then hang up.
	buf := make([]byte, 64)
	resp.Body.Read(buf)
	cancel()
	resp.Body.Close()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, _ := call(t, c, "GET", "/_ping", ""); code == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Whatever the store kept is whole: either no image, or a usable one.
	if _, _, err := st.Resolve(context.Background(), ref, nil); err == nil {
		if _, err := st.Inspect(ref); err != nil {
			t.Fatalf("half-stored image after disconnect: %v", err)
		}
	}
	mustDocker(t, sock, "pull", ref)
	mustDocker(t, sock, "image", "inspect", ref)
}

// Raw API checks of image endpoints that the CLI does not reach easily.
func TestImageEndpointsBadInput(t *testing.T) {
	t.Parallel()
	sock, _ := imageServer(t)
	c := httpOver(sock)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/images/create", 400},
		{"POST", "/images/create?fromSrc=-", 400}, // docker import needs a name
		{"POST", "/images/create?fromSrc=http%3A%2F%2Fexample.com%2Fr.tar&repo=x", 501},
		{"GET", "/images/get", 400},
		{"GET", "/images/get?names=nosuch", 404},
		{"POST", "/images/x/tag", 400},
		{"POST", "/images/prune?filters=%7B%22until%22%3A%7B%2210m%22%3Atrue%7D%7D", 501},
		{"GET", "/images/json?filters=%7B%22nope%22%3A%7B%22x%22%3Atrue%7D%7D", 400},
		{"GET", "/images/nosuch/json", 404},
		{"GET", "/images/nosuch/bogus", 404},
		{"DELETE", "/images/..%2F..%2Fetc", 404},
	} {
		code, _, body := call(t, c, tc.method, tc.path, "")
		if code != tc.code {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			continue
		}
		errorMessage(t, body)
	}
	// images/json answers [] (not null) on an empty store.
	code, _, body := call(t, c, "GET", "/images/json", "")
	var list []any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || list == nil {
		t.Fatalf("GET /images/json = %d %q", code, body)
	}
}

var _ = bytes.NewReader
var _ = io.EOF
var _ = net.Dial
var _ = os.Getenv
var _ = exec.Command
