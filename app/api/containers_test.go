package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestContainersBadInputAndConcurrency exercises the container endpoints
// that need no VM boot (create, inspect, list, rename, remove, prune) over
// the real engine, with the real docker CLI and raw API calls.
func TestContainersBadInputAndConcurrency(t *testing.T) {
	e := startEngine(t)
	sock, img := e.Sock, e.Image
	d := func(args ...string) string { t.Helper(); return mustDocker(t, sock, args...) }
	d("pull", "-q", img)

	id := strings.TrimSpace(d("create", "--name", "first", "--label", "k=v", img, "echo", "x"))
	if len(id) != 64 {
		t.Fatalf("docker create printed %q", id)
	}
	if out := d("ps", "-a", "--format", "{{.Names}} {{.State}}"); !strings.Contains(out, "first created") {
		t.Fatalf("docker ps -a:\n%s", out)
	}
	if out := d("ps", "-q"); strings.Contains(out, id[:12]) {
		t.Fatalf("created container listed as running: %q", out)
	}
	if out := d("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"); !strings.Contains(out, "Images 1 1") ||
		!strings.Contains(out, "Containers 1 0") {
		t.Fatalf("system df with one created container:\n%s", out)
	}
	// The container's image is the image ID (config digest), as in Docker:
	// inspect, ps and the ancestor filter agree with `docker images`.
	imgID := strings.TrimSpace(d("image", "inspect", "-f", "{{.Id}}", img))
	if got := strings.TrimSpace(d("inspect", "-f", "{{.Image}}", "first")); got != imgID {
		t.Fatalf("container Image %q, image ID %q", got, imgID)
	}
	if ids := d("images", "--no-trunc", "-q"); !strings.Contains(ids, imgID) {
		t.Fatalf("docker images --no-trunc -q = %q lacks %s", ids, imgID)
	}
	short := strings.TrimPrefix(imgID, "sha256:")[:12]
	for _, anc := range []string{imgID, short, img} {
		if out := d("ps", "-aq", "--no-trunc", "--filter", "ancestor="+anc); !strings.Contains(out, id) {
			t.Errorf("ps --filter ancestor=%s misses the container: %q", anc, out)
		}
	}
	d("tag", img, "berth-other:tag") // another name of the same image
	if out := d("ps", "-aq", "--no-trunc", "--filter", "ancestor=berth-other:tag"); !strings.Contains(out, id) {
		t.Errorf("ps --filter ancestor=<another tag of the image> misses the container: %q", out)
	}
	d("rmi", "berth-other:tag")
	if out := d("ps", "-aq", "--filter", "ancestor=0000000000ff"); strings.TrimSpace(out) != "" {
		t.Errorf("ps --filter ancestor=<other ID> lists %q", out)
	}
	d("rename", "first", "second")
	if out := d("inspect", "--format", "{{.Name}} {{index .Config.Labels \"k\"}} {{index .Config.Cmd 0}}", id[:12]); strings.TrimSpace(out) != "/second v echo" {
		t.Fatalf("inspect after rename: %q", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "--name", "second", img}, 1, "already in use"},
		{[]string{"run", "--privileged", img, "true"}, 125, "--privileged"},
		{[]string{"run", "--network", "host", img, "true"}, 125, "--network host is not supported"},
		{[]string{"run", "--network", "nosuchnet", img, "true"}, 125, "network nosuchnet not found"},
		{[]string{"run", "--network", "container:second", img, "true"}, 125, "cannot share a network stack"},
		{[]string{"run", "--volumes-from", "second", img, "true"}, 125, "--volumes-from"},
		{[]string{"run", "--mount", "type=bind,src=/no/such/dir,dst=/d", img, "true"}, 125, "bind source path does not exist: /no/such/dir"},
		{[]string{"run", "-v", "/tmp:/", img, "true"}, 125, `cannot be "/"`},
		{[]string{"run", "-v", "x/y:/d", img, "true"}, 125, "invalid volume specification"},
		{[]string{"run", "--cap-add", "NET_ADMIN", img, "true"}, 125, "--cap-add"},
		{[]string{"run", "--cpus", "1000000", img, "true"}, 125, "CPUs"},
		{[]string{"run", "--log-driver", "syslog", img, "true"}, 125, "syslog"},
		{[]string{"run", "-p", "53:53/udp", img, "true"}, 125, "udp"},
		{[]string{"run", "nosuch/image:1", "true"}, 125, ""},
		{[]string{"rm", "nosuch"}, 1, "No such container"},
		{[]string{"start", "nosuch"}, 1, "No such container"},
		{[]string{"pause", "second"}, 1, "not running"},
		{[]string{"kill", "second"}, 1, "not running"},
		{[]string{"rmi", img}, 1, "in use"},
	} {
		r := docker(t, sock, nil, tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("docker %s: exit %d stderr %q; want exit %d mentioning %q", strings.Join(tc.args, " "), r.Code, r.Stderr, tc.code, tc.want)
		}
	}

	c := httpOver(sock)
	body := strings.Replace(dockerRunBody(t), `"Image":"busybox"`, `"Image":"`+img+`"`, 1)
	for _, tc := range []struct {
		name, body string
		code       int
	}{
		{"malformed", `{"Image": `, 400},
		{"unknown field", `{"Image":"` + img + `","Frobnicate":true}`, 400},
		{"negative memory", strings.Replace(body, `"Memory":0`, `"Memory":-1048576`, 1), 400},
		{"million cpus", strings.Replace(body, `"NanoCpus":0`, `"NanoCpus":1000000000000000`, 1), 400},
		{"not an object", `[1,2,3]`, 400},
		{"huge name", body, 400},
	} {
		path := "/v1.50/containers/create"
		if tc.name == "huge name" {
			path += "?name=" + strings.Repeat("x", 10) + "%2F..%2F.."
		}
		code, _, resp := call(t, c, "POST", path, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, resp, tc.code)
			continue
		}
		errorMessage(t, resp)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/containers/nosuch/json", 404},
		{"POST", "/containers/second/wait?condition=sometime", 400},
		{"GET", "/containers/second/logs", 400},
		{"POST", "/containers/second/resize?h=-1&w=10", 400},
		{"GET", "/containers/second/archive", 400},
		{"GET", "/containers/json?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D", 400},
		{"POST", "/containers/second/stop?t=soon", 400},
		{"POST", "/exec/nosuch/start", 400},
		{"GET", "/exec/nosuch/json", 404},
	} {
		code, _, resp := call(t, c, tc.method, tc.path, "")
		if code != tc.code {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, resp, tc.code)
		}
	}

	// 100 concurrent calls: 20 creates racing 80 lists and inspects.
	concurrently(t, c, 100, func(i int) (*http.Request, int) {
		switch {
		case i%5 == 0:
			b := strings.Replace(body, `"Cmd":["httpd","-f","-p","80"]`, `"Cmd":["true"]`, 1)
			b = strings.Replace(b, `"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}`, `"PortBindings":{}`, 1)
			req, _ := http.NewRequest("POST", fmt.Sprintf("http://berth/v1.50/containers/create?name=conc%d", i), strings.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			return req, 201
		case i%2 == 0:
			req, _ := http.NewRequest("GET", "http://berth/v1.50/containers/json?all=1", nil)
			return req, 200
		default:
			req, _ := http.NewRequest("GET", "http://berth/v1.50/containers/second/json", nil)
			return req, 200
		}
	})
	out := d("ps", "-a", "--filter", "name=conc", "--format", "{{.Names}}")
	if n := len(strings.Fields(out)); n != 20 {
		t.Fatalf("after 20 concurrent creates, ps -a lists %d:\n%s", n, out)
	}
	out = d("container", "prune", "-f")
	if !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("container prune: %q", out)
	}
	if out := d("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left after prune: %q", out)
	}
	if out := d("system", "prune", "-a", "-f"); !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("docker system prune: %q", out)
	}
	if out := d("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images left after system prune -a: %q", out)
	}
	if out := d("volume", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("docker volume ls: %q", out)
	}
	if out := d("network", "ls", "--format", "{{.Name}} {{.Driver}}"); out != "bridge bridge\nhost host\nnone null\n" {
		t.Fatalf("docker network ls with no user networks: %q", out)
	}
	d("version")
}
