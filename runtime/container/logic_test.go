package container

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func TestMergeConfigDockerRules(t *testing.T) {
	img := v1.Config{
		Env: []string{"PATH=/bin", "A=img", "B=img"}, Entrypoint: []string{"/entry"}, Cmd: []string{"default"},
		WorkingDir: "/srv", User: "app", Labels: map[string]string{"l1": "img", "l2": "img"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGQUIT",
	}
	// Only cmd given: image entrypoint kept, cmd replaced.
	c, err := mergeConfig(container.Config{Image: "x", Cmd: []string{"mine"}, Env: []string{"B=req", "C=req"}, Labels: map[string]string{"l2": "req"}}, img)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Entrypoint, " ") != "/entry" || strings.Join(c.Cmd, " ") != "mine" {
		t.Fatalf("entrypoint/cmd: %v %v", c.Entrypoint, c.Cmd)
	}
	if strings.Join(c.Env, ",") != "PATH=/bin,A=img,B=req,C=req" {
		t.Fatalf("env: %v", c.Env)
	}
	if c.WorkingDir != "/srv" || c.User != "app" || c.StopSignal != "SIGQUIT" || c.Labels["l1"] != "img" || c.Labels["l2"] != "req" {
		t.Fatalf("defaults: %+v", c)
	}
	if _, ok := c.ExposedPorts[network.MustParsePort("80/tcp")]; !ok {
		t.Fatalf("exposed: %v", c.ExposedPorts)
	}
	// Entrypoint given: the image's cmd is dropped.
	c, _ = mergeConfig(container.Config{Entrypoint: []string{"sh"}}, img)
	if strings.Join(c.Entrypoint, " ") != "sh" || len(c.Cmd) != 0 {
		t.Fatalf("entrypoint override: %v %v", c.Entrypoint, c.Cmd)
	}
	// --entrypoint "" clears the image's entrypoint.
	c, _ = mergeConfig(container.Config{Entrypoint: []string{""}, Cmd: []string{"ls"}}, img)
	if len(c.Entrypoint) != 0 || strings.Join(c.Cmd, " ") != "ls" {
		t.Fatalf("entrypoint clear: %v %v", c.Entrypoint, c.Cmd)
	}
	// Nothing to run is a clear error.
	if _, err := mergeConfig(container.Config{}, v1.Config{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no command") {
		t.Fatalf("no command: %v", err)
	}
	// No PATH anywhere: Docker's default is added.
	c, _ = mergeConfig(container.Config{Cmd: []string{"x"}}, v1.Config{})
	if !strings.HasPrefix(c.Env[len(c.Env)-1], "PATH=") || c.WorkingDir != "/" {
		t.Fatalf("defaults: %v %q", c.Env, c.WorkingDir)
	}
}

func TestShouldRestart(t *testing.T) {
	p := func(n container.RestartPolicyMode, max int) container.RestartPolicy {
		return container.RestartPolicy{Name: n, MaximumRetryCount: max}
	}
	cases := []struct {
		p      container.RestartPolicy
		code   int
		manual bool
		count  int
		want   bool
	}{
		{p("no", 0), 1, false, 0, false},
		{p("", 0), 1, false, 0, false},
		{p("always", 0), 0, false, 5, true},
		{p("always", 0), 0, true, 5, true},
		{p("unless-stopped", 0), 0, false, 0, true},
		{p("unless-stopped", 0), 0, true, 0, false},
		{p("on-failure", 0), 0, false, 0, false},
		{p("on-failure", 0), 1, false, 100, true},
		{p("on-failure", 2), 1, false, 0, true},
		{p("on-failure", 2), 1, false, 1, true},
		{p("on-failure", 2), 1, false, 2, false},
	}
	for i, c := range cases {
		if got := shouldRestart(c.p, c.code, c.manual, c.count); got != c.want {
			t.Errorf("case %d %+v: got %v", i, c, got)
		}
	}
}

func TestHostConfigAndResources(t *testing.T) {
	for _, hc := range []container.HostConfig{
		{Privileged: true}, {VolumesFrom: []string{"other"}}, {NetworkMode: "host"},
	} {
		if err := checkHostConfig(&hc); !errors.Is(err, ErrNotImplemented) {
			t.Errorf("%+v accepted: %v", hc, err)
		}
	}
	bad := container.HostConfig{RestartPolicy: container.RestartPolicy{Name: "sometimes"}}
	if err := checkHostConfig(&bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad policy: %v", err)
	}
	rmAlways := container.HostConfig{AutoRemove: true, RestartPolicy: container.RestartPolicy{Name: "always"}}
	if err := checkHostConfig(&rmAlways); !errors.Is(err, ErrConflict) {
		t.Errorf("--rm + always: %v", err)
	}
	_, _, err := resources(&container.HostConfig{Resources: container.Resources{Memory: 32 << 20}}, 1, 256)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("small memory: %v", err)
	}
	_, _, err = resources(&container.HostConfig{Resources: container.Resources{NanoCPUs: 1e6 * 1e9}}, 1, 256)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("huge cpus: %v", err)
	}
	cpus, mib, err := resources(&container.HostConfig{Resources: container.Resources{NanoCPUs: 5e8, Memory: 300 << 20}}, 1, 256)
	if err != nil || cpus != 1 || mib != 300 {
		t.Fatalf("%d %d %v", cpus, mib, err)
	}
}

func TestNamesAndIDs(t *testing.T) {
	m := &Manager{names: map[string]string{}}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		n := m.randomName()
		if _, err := checkName(n); err != nil || seen[n] {
			t.Fatalf("bad or repeated name %q: %v", n, err)
		}
		seen[n] = true
		m.names[n] = "x"
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", strings.Repeat("a", 200)} {
		if _, err := checkName(bad); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	id := newID()
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q", id)
	}
}

func TestSignals(t *testing.T) {
	for s, want := range map[string]int{"SIGTERM": 15, "term": 15, "9": 9, "KILL": 9, "SIGRTMIN+3": 37, "usr1": 10} {
		if got, err := ParseSignal(s); err != nil || got != want {
			t.Errorf("%s: %d %v", s, got, err)
		}
	}
	for _, s := range []string{"", "SIGFOO", "0", "65", "RTMIN+99"} {
		if _, err := ParseSignal(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestDetachKeys(t *testing.T) {
	keys, err := ParseDetachKeys("")
	if err != nil || !bytes.Equal(keys, []byte{16, 17}) {
		t.Fatalf("%v %v", keys, err)
	}
	if _, err := ParseDetachKeys("ctrl-1"); err == nil {
		t.Fatal("ctrl-1 accepted")
	}
	// A partial sequence is passed through; the full one detaches.
	r := &detachReader{r: strings.NewReader("ab\x10c\x10\x11rest"), keys: keys}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrDetached) || string(got) != "ab\x10c" {
		t.Fatalf("got %q %v", got, err)
	}
}

func TestSafeEntry(t *testing.T) {
	for name, bad := range map[string]bool{"a/b": false, "/etc/x": false, "../x": true, "a/../../x": true, "./a/../b": false} {
		err := safeEntry(&tar.Header{Name: name, Typeflag: tar.TypeReg})
		if (err != nil) != bad {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := safeEntry(&tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}); err == nil {
		t.Error("escaping hard link accepted")
	}
}

func TestFilters(t *testing.T) {
	r := &record{ID: "abc123", Name: "web", State: container.StateExited, ExitCode: 3,
		Config: container.Config{Image: "busybox", Labels: map[string]string{"tier": "front"}}}
	yes := []map[string][]string{{"id": {"abc"}}, {"name": {"we"}}, {"label": {"tier"}}, {"label": {"tier=front"}},
		{"status": {"exited"}}, {"exited": {"3"}}, {"ancestor": {"busybox"}}}
	for _, f := range yes {
		if ok, err := matchFilters(r, f); !ok || err != nil {
			t.Errorf("%v: %v %v", f, ok, err)
		}
	}
	if ok, _ := matchFilters(r, map[string][]string{"label": {"tier=back"}}); ok {
		t.Error("label value mismatch matched")
	}
	if _, err := matchFilters(r, map[string][]string{"volume": {"x"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown filter: %v", err)
	}
}
