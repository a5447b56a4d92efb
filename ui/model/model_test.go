package model

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/berth-dev/berth/ui/console"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestContainerRowsWithStats(t *testing.T) {
	cs := allStates()
	web := cs[0]
	stats := map[string]container.StatsResponse{web.ID: {
		CPUStats:    container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 3_000_000}, SystemUsage: 20_000_000, OnlineCPUs: 2},
		PreCPUStats: container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: 1_000_000}, SystemUsage: 10_000_000},
		MemoryStats: container.MemoryStats{Usage: 60_000_000, Limit: 512 << 20, Stats: map[string]uint64{"inactive_file": 10_000_000}},
	}}
	rows := ContainerRows(cs, stats, now)
	if len(rows) != len(cs) {
		t.Fatalf("%d rows", len(rows))
	}
	var r ContainerRow
	for _, x := range rows {
		if x.Name == "web" {
			r = x
		}
	}
	// (3M-1M)/(20M-10M) * 2 CPUs * 100 = 40%
	if r.CPU != "40.0%" || r.Memory != "50 MB / 537 MB" || r.IP != "192.168.64.2" || !r.Running {
		t.Errorf("web row: %+v", r)
	}
	if r.Cell("ports") != "127.0.0.1:8080->80/tcp, 127.0.0.1:8081->80/tcp" || r.Cell("state") != "Running — running" {
		t.Errorf("cells: %q %q", r.Cell("ports"), r.Cell("state"))
	}
	if len(r.Actions) == 0 || find(t, r.Actions, "Stop").Enabled != true {
		t.Error("row actions must follow the menu's rules")
	}
	for _, x := range rows {
		if x.Name == "old" && (x.CPU != "-" || x.Memory != "-" || x.IP != "-") {
			t.Errorf("stopped row shows live data: %+v", x)
		}
	}
	if CPUPercent(container.StatsResponse{}) != 0 {
		t.Error("no samples must give 0%")
	}
}

func TestImageRows(t *testing.T) {
	imgs := []image.Summary{
		{ID: "sha256:aaaaaaaaaaaaaaaaaaaa", RepoTags: []string{"busybox:latest", "busybox:1.36"}, Size: 4_300_000, Created: now.Add(-2 * time.Hour).Unix(), Containers: 1,
			Descriptor: &ocispec.Descriptor{Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		{ID: "sha256:bbbbbbbbbbbbbbbbbbbb", RepoTags: []string{"localhost:5000/app:dev"}, Size: 123_000_000, Created: now.Add(-49 * time.Hour).Unix()},
		{ID: "sha256:cccccccccccccccccccc", RepoDigests: []string{"nginx@sha256:dddd"}, Size: 1000},
	}
	rows := ImageRows(imgs, now)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v|%s", r.Repository, r.Tag, r.Digest, r.Size, r.Platform, r.Created, r.InUse, r.Ref))
	}
	want := []string{
		"busybox|1.36|aaaaaaaaaaaa|4.3 MB|linux/arm64/v8|2 hours ago|true|busybox:1.36",
		"busybox|latest|aaaaaaaaaaaa|4.3 MB|linux/arm64/v8|2 hours ago|true|busybox:latest",
		"localhost:5000/app|dev|bbbbbbbbbbbb|123 MB|-|2 days ago|false|localhost:5000/app:dev",
		"nginx|<none>|cccccccccccc|1 kB|-|" + FormatAgo(time.Unix(0, 0), now) + "|false|nginx@sha256:dddd",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r, tag := splitRepoTag("registry:5000/x"); r != "registry:5000/x" || tag != "latest" {
		t.Errorf("splitRepoTag: %q %q", r, tag)
	}
}

func TestContainerDetails(t *testing.T) {
	p := network.MustParsePort("80/tcp")
	in := container.InspectResponse{
		ID: "abc", Name: "/web", Created: now.Add(-time.Hour).Format(time.RFC3339Nano), RestartCount: 2,
		State:  &container.State{Status: container.StateRunning, Running: true, StartedAt: now.Add(-90 * time.Second).Format(time.RFC3339Nano)},
		Config: &container.Config{Image: "nginx:latest", Cmd: []string{"nginx", "-g", "daemon off;"}, Env: []string{"A=1"}},
		HostConfig: &container.HostConfig{Resources: container.Resources{NanoCPUs: 1_500_000_000, Memory: 512 << 20},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}},
		NetworkSettings: &container.NetworkSettings{Ports: network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8080"}}},
			Networks: map[string]*network.EndpointSettings{"bridge": {IPAddress: netip.MustParseAddr("192.168.64.5")}}},
	}
	got := map[string]string{}
	for _, d := range ContainerDetails(in, now) {
		got[d.Label] = d.Value
	}
	for k, v := range map[string]string{"Name": "web", "Image": "nginx:latest", "Command": "nginx -g daemon off;", "State": "Running, up 1m",
		"IP address": "192.168.64.5", "Ports": "127.0.0.1:8080->80/tcp", "CPUs": "1.5", "Memory": "512 MiB",
		"Restart policy": "on-failure:3 (restarted 2 times)", "Created": "1 hour ago", "Environment": "A=1"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	in.State = &container.State{Status: container.StateExited, ExitCode: 137, FinishedAt: now.Add(-5 * time.Minute).Format(time.RFC3339Nano), OOMKilled: true}
	got = map[string]string{}
	for _, d := range ContainerDetails(in, now) {
		got[d.Label] = d.Value
	}
	if got["State"] != "Exited (exit code 137), 5 minutes ago" || got["Out of memory"] == "" {
		t.Errorf("exited state: %q / %q", got["State"], got["Out of memory"])
	}
}

func TestLogBufferBoundsAndLines(t *testing.T) {
	b := NewLogBuffer(100, 1<<20)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		b.Write("stdout", []byte(fmt.Sprintf("line %d\n", i)), t0)
	}
	if b.Len() > 100 || b.Len() < 80 {
		t.Fatalf("holds %d lines, bound 100", b.Len())
	}
	ls := b.Lines()
	if ls[len(ls)-1].Text != "line 999" || b.Trimmed() != 1000-b.Len() {
		t.Errorf("last %q trimmed %d len %d", ls[len(ls)-1].Text, b.Trimmed(), b.Len())
	}
	if !strings.HasPrefix(b.Text(false), "… earlier lines trimmed …\n") {
		t.Error("no trim note")
	}

	// Bytes bound, a huge line, split writes, CRLF, timestamps from docker.
	b = NewLogBuffer(1000, 4000)
	b.Write("stdout", []byte("2026-01-02T03:04:05.123456789Z hel"), t0)
	b.Write("stdout", []byte("lo\r\npartial"), t0)
	b.Write("stderr", []byte("oops\n"), t0.Add(time.Second))
	ls = b.Lines()
	if len(ls) != 2 || ls[0].Text != "hello" || ls[0].Time.Nanosecond() != 123456789 || ls[1].Stream != "stderr" || !ls[1].Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("lines: %+v", ls)
	}
	b.Write("stdout", []byte(strings.Repeat("x", 5000)+"\n"), t0)
	if b.Bytes() > 4000 {
		t.Errorf("holds %d bytes, bound 4000", b.Bytes())
	}
	last := b.Lines()[b.Len()-1]
	if !strings.HasSuffix(last.Text, "(line truncated)") {
		t.Errorf("huge line not truncated: %d bytes", len(last.Text))
	}
	// An endless line without newline is flushed rather than held forever.
	b.Write("stdout", []byte(strings.Repeat("y", 1500)), t0)
	if b.Len() == 0 || b.Bytes() > 4000 {
		t.Errorf("endless line: len %d bytes %d", b.Len(), b.Bytes())
	}
}

func TestLogBufferTextSearchFilter(t *testing.T) {
	b := NewLogBuffer(0, 0)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.Local)
	b.Append(LogLine{Time: t0, Stream: "stdout", Text: "GET /index.html 200"})
	b.Append(LogLine{Time: t0, Stream: "stderr", Text: "error: get failed; GET again"})
	if got := b.Text(false); got != "GET /index.html 200\nerror: get failed; GET again\n" {
		t.Errorf("Text(false) = %q", got)
	}
	if got := b.Text(true); !strings.HasPrefix(got, "2026-01-02 03:04:05.006 GET") {
		t.Errorf("Text(true) = %q", got)
	}
	ms := b.Search("get", 0)
	if len(ms) != 3 || ms[1] != (Match{Line: 1, Start: 7, End: 10}) || ms[2].Start != 19 {
		t.Errorf("Search = %+v", ms)
	}
	if len(b.Search("get", 2)) != 2 || b.Search("", 0) != nil || len(b.Search("nothing", 0)) != 0 {
		t.Error("search limit/empty/miss")
	}
	if got := b.Filter("ERROR", false); got != "error: get failed; GET again\n" {
		t.Errorf("Filter = %q", got)
	}
	g := b.Generation()
	b.Clear()
	if b.Len() != 0 || b.Generation() == g {
		t.Error("Clear")
	}
	if tm, text := ParseTimestamped("not a timestamp here"); !tm.IsZero() || text != "not a timestamp here" {
		t.Error("ParseTimestamped on plain text")
	}
}

func TestRunFormValid(t *testing.T) {
	f := RunForm{Image: "nginx:1.27", Name: "web", Command: `sh -c "echo 'hi there'; sleep 1" x\ y`,
		Env: "A=1\n# comment\nB=two words\n", Ports: "8080:80, 127.0.0.1:8443:443/tcp [::1]:5353:53/udp",
		CPUs: "1.5", Memory: "512m", Restart: "on-failure:3"}
	req, err := f.Validate(RunLimits{MaxCPUs: 8, MaxMemoryMiB: 8192})
	if err != nil {
		t.Fatal(err)
	}
	c, h := req.Create.Config, req.Create.HostConfig
	if req.Name != "web" || c.Image != "nginx:1.27" {
		t.Errorf("name/image %q %q", req.Name, c.Image)
	}
	if strings.Join(c.Cmd, "|") != "sh|-c|echo 'hi there'; sleep 1|x y" {
		t.Errorf("cmd %q", c.Cmd)
	}
	if strings.Join(c.Env, "|") != "A=1|B=two words" {
		t.Errorf("env %q", c.Env)
	}
	if h.NanoCPUs != 1_500_000_000 || h.Memory != 512<<20 || h.RestartPolicy != (container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}) {
		t.Errorf("host config %+v", h)
	}
	p80 := network.MustParsePort("80/tcp")
	if b := h.PortBindings[p80]; len(b) != 1 || b[0].HostPort != "8080" || b[0].HostIP.String() != "127.0.0.1" {
		t.Errorf("8080:80 binding %+v", b)
	}
	if b := h.PortBindings[network.MustParsePort("53/udp")]; len(b) != 1 || b[0].HostIP.String() != "::1" {
		t.Errorf("v6 udp binding %+v", b)
	}
	if len(c.ExposedPorts) != 3 {
		t.Errorf("exposed %v", c.ExposedPorts)
	}
	// Minimal form.
	req, err = RunForm{Image: "busybox"}.Validate(RunLimits{})
	if err != nil || req.Create.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled || req.Create.Config.Cmd != nil {
		t.Errorf("minimal: %v %+v", err, req)
	}
}

func TestRunFormErrors(t *testing.T) {
	lim := RunLimits{MaxCPUs: 4, MaxMemoryMiB: 4096}
	for _, tc := range []struct {
		form  RunForm
		field string
		want  string
	}{
		{RunForm{}, "image", "enter an image"},
		{RunForm{Image: "BusyBox"}, "image", "not a valid image reference"},
		{RunForm{Image: "busybox:bad tag"}, "image", "not a valid image reference"},
		{RunForm{Image: "busybox", Name: "-bad"}, "name", "names use letters"},
		{RunForm{Image: "busybox", Command: `echo "unclosed`}, "command", `unclosed " quote`},
		{RunForm{Image: "busybox", Env: "NOEQUALS"}, "env", "KEY=VALUE"},
		{RunForm{Image: "busybox", Env: "1A=x"}, "env", "not a valid variable name"},
		{RunForm{Image: "busybox", Ports: "80"}, "ports", "a host port is needed"},
		{RunForm{Image: "busybox", Ports: "8080:99999"}, "ports", "not a port number"},
		{RunForm{Image: "busybox", Ports: "8080:80/sctp"}, "ports", "tcp or udp"},
		{RunForm{Image: "busybox", Ports: "1.2.3:8080:80"}, "ports", "not an IP address"},
		{RunForm{Image: "busybox", Ports: "8080:80,8080:81"}, "ports", "both use host port 8080/tcp"},
		{RunForm{Image: "busybox", CPUs: "0"}, "cpus", "not a positive number"},
		{RunForm{Image: "busybox", CPUs: "16"}, "cpus", "at most 4 CPUs"},
		{RunForm{Image: "busybox", Memory: "32m"}, "memory", "at least 64 MiB"},
		{RunForm{Image: "busybox", Memory: "lots"}, "memory", "not a memory size"},
		{RunForm{Image: "busybox", Memory: "8g"}, "memory", "at most 4 GiB"},
		{RunForm{Image: "busybox", Restart: "sometimes"}, "restart", "not a restart policy"},
		{RunForm{Image: "busybox", Restart: "always:3"}, "restart", "only on-failure takes a retry count"},
		{RunForm{Image: "busybox", Restart: "always", Remove: true}, "restart", "--rm"},
	} {
		_, err := tc.form.Validate(lim)
		var fe FormErrors
		if !errors.As(err, &fe) || !strings.Contains(fe[tc.field], tc.want) {
			t.Errorf("%+v: want %s error %q, got %v", tc.form, tc.field, tc.want, err)
		}
	}
	// Several problems are all reported.
	_, err := RunForm{Name: "x", CPUs: "-1"}.Validate(lim)
	if fe, _ := err.(FormErrors); len(fe) != 3 || !strings.Contains(err.Error(), "cpus: ") {
		t.Errorf("multi: %v", err)
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"1073741824": 1 << 30, "512m": 512 << 20, "2g": 2 << 30, "1GiB": 1 << 30, "1.5G": 3 << 29, "256MB": 256 << 20, "64k": 64 << 10} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "g", "-1m", "1x", "999999999t"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) accepted", in)
		}
	}
}

func TestSettingsPersistence(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSettings(dir)
	if err != nil || s != DefaultSettings() {
		t.Fatalf("missing file: %+v %v", s, err)
	}
	s.DefaultCPUs, s.DefaultMemoryMiB, s.StartAtLogin, s.KernelSource, s.KernelPath = 4, 2048, true, KernelCustom, "/k/Image"
	if err := SaveSettings(dir, s); err != nil {
		t.Fatal(err)
	}
	back, err := LoadSettings(dir)
	if err != nil || back != s {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	// An older file without some fields keeps their defaults.
	os.WriteFile(filepath.Join(dir, SettingsFile), []byte(`{"version":1,"startAtLogin":true}`), 0o600)
	back, _ = LoadSettings(dir)
	if !back.StartAtLogin || back.DefaultCPUs != 2 || back.KernelSource != KernelDefault || back.Terminal != TerminalEmbedded {
		t.Errorf("partial file: %+v", back)
	}
	// A corrupt file is an error naming it, and stays as it was.
	corrupt := []byte(`{"defaultCPUs": 4,`)
	os.WriteFile(filepath.Join(dir, SettingsFile), corrupt, 0o600)
	_, err = LoadSettings(dir)
	if err == nil || !strings.Contains(err.Error(), SettingsFile) || !strings.Contains(err.Error(), "fix or delete it") {
		t.Errorf("corrupt: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, SettingsFile)); string(b) != string(corrupt) {
		t.Error("corrupt file was modified")
	}
	os.WriteFile(filepath.Join(dir, SettingsFile), []byte(`{"version":99}`), 0o600)
	if _, err := LoadSettings(dir); err == nil || !strings.Contains(err.Error(), "newer Berth") {
		t.Errorf("newer version: %v", err)
	}
}

func TestSettingsValidate(t *testing.T) {
	lim := RunLimits{MaxCPUs: 8, MaxMemoryMiB: 16384}
	if err := DefaultSettings().Validate(lim); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Settings)
		want string
	}{
		{func(s *Settings) { s.DefaultCPUs = 0 }, "at least 1"},
		{func(s *Settings) { s.DefaultCPUs = 9 }, "at most 8"},
		{func(s *Settings) { s.DefaultMemoryMiB = 10 }, "at least 64 MiB"},
		{func(s *Settings) { s.DefaultMemoryMiB = 1 << 20 }, "at most 16 GiB"},
		{func(s *Settings) { s.KernelSource = "x" }, "choose"},
		{func(s *Settings) { s.KernelSource = KernelCustom }, "choose the kernel image"},
		{func(s *Settings) { s.KernelSource, s.KernelPath = KernelCustom, "rel/Image" }, "absolute"},
		{func(s *Settings) { s.DataRoot = "rel" }, "data location"},
		{func(s *Settings) { s.Terminal = "xterm" }, `terminal "xterm": choose one of berth, terminal`},
		{func(s *Settings) { s.Terminal = "custom" }, "enter the custom command"},
	} {
		s := DefaultSettings()
		tc.edit(&s)
		if err := s.Validate(lim); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}

func TestErrorAlerts(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{refused, "engine is not running"},
		{fmt.Errorf("wrap: %w", cerrdefs.ErrNotFound.WithMessage("No such image: nope:latest")), "image was not found"},
		{cerrdefs.ErrConflict.WithMessage(`the container name "/web" is already in use`), "name is taken"},
		{errors.New("listen tcp 127.0.0.1:8080: bind: address already in use"), "host port"},
		{errors.New(`VZErrorDomain Code=2 "The process doesn't have the “com.apple.security.virtualization” entitlement."`), "entitlement"},
		{errors.New("write /x: no space left on device"), "disk holding Berth's data is full"},
		{errors.New("something else"), "something else"},
	} {
		a := ErrorAlert("start web", tc.err)
		if a.Title != "Could not start web" || !strings.Contains(a.Detail, tc.want) {
			t.Errorf("%v: got %+v, want detail with %q", tc.err, a, tc.want)
		}
	}
}

func TestSnapshotEvents(t *testing.T) {
	s := NewSnapshot()
	cs := allStates()
	s.SetContainers(cs)
	web := cs[0]
	s.SetStats(web.ID, container.StatsResponse{})
	ev := func(a events.Action, id string, attrs map[string]string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: a, Actor: events.Actor{ID: id, Attributes: attrs}}
	}
	if r := s.Apply(ev(events.ActionDie, web.ID, map[string]string{"exitCode": "137"})); !r.Containers {
		t.Error("die must refresh containers")
	}
	get := func(id string) (container.Summary, bool) {
		for _, c := range s.Containers() {
			if c.ID == id {
				return c, true
			}
		}
		return container.Summary{}, false
	}
	if c, _ := get(web.ID); c.State != container.StateExited || c.Status != "Exited (137)" {
		t.Errorf("after die: %s %q", c.State, c.Status)
	}
	if _, ok := s.Stats()[web.ID]; ok {
		t.Error("stats of a dead container kept")
	}
	s.Apply(ev(events.ActionStart, web.ID, nil))
	if c, _ := get(web.ID); c.State != container.StateRunning {
		t.Errorf("after start: %s", c.State)
	}
	if r := s.Apply(ev(events.ActionDestroy, web.ID, nil)); !r.Images {
		t.Error("destroy must refresh images (in-use counts)")
	}
	if _, ok := get(web.ID); ok {
		t.Error("destroyed container still listed")
	}
	if r := s.Apply(ev(events.ActionCreate, "new-id", nil)); !r.Containers {
		t.Error("create must refresh containers")
	}
	if r := s.Apply(events.Message{Type: events.ImageEventType, Action: events.ActionPull}); !r.Images || r.Containers {
		t.Errorf("image event: %+v", r)
	}
	if r := s.Apply(events.Message{Type: events.NetworkEventType}); r.Images || r.Containers {
		t.Errorf("network event: %+v", r)
	}
	s.SetImages([]image.Summary{{ID: "x"}})
	if len(s.Images()) != 1 {
		t.Error("images")
	}
}

func TestPullProgress(t *testing.T) {
	p := PullProgress{Ref: "busybox"}
	if p.Text() != "Pulling busybox…" || p.Fraction() != 0 {
		t.Errorf("empty: %q %v", p.Text(), p.Fraction())
	}
	p.Update("a", "Downloading", LayerBytes{Current: 500_000, Total: 1_000_000})
	p.Update("b", "Already exists", LayerBytes{})
	p.Update("c", "Downloading", LayerBytes{Current: 0, Total: 3_000_000})
	if got := p.Text(); got != "1 of 3 layers · 500 kB / 4 MB" {
		t.Errorf("Text = %q", got)
	}
	if f := p.Fraction(); f != 0.125 {
		t.Errorf("Fraction = %v", f)
	}
	p.Update("a", "Pull complete", LayerBytes{})
	p.Update("c", "Pull complete", LayerBytes{})
	p.Update("", "Status: Downloaded newer image for busybox:latest", LayerBytes{})
	if p.Fraction() != 1 || p.Text() != "3 of 3 layers · 4 MB / 4 MB" || p.Status == "" {
		t.Errorf("done: %v %q %q", p.Fraction(), p.Text(), p.Status)
	}
}

func TestLogBufferOnChange(t *testing.T) {
	b := NewLogBuffer(0, 0)
	n := 0
	b.OnChange(func() { n++; _ = b.Len() }) // may call back into the buffer
	b.Write("stdout", []byte("partial"), now)
	if n != 0 {
		t.Error("notified without a complete line")
	}
	b.Write("stdout", []byte(" line\nnext\n"), now)
	b.Append(LogLine{Text: "x"})
	b.Clear()
	if n != 3 {
		t.Errorf("notified %d times, want 3", n)
	}
}

// The Terminal choices must be exactly Berth's window plus ui/console's
// hand-off apps, so the Settings popup and the hand-off agree.
func TestTerminalChoicesMatchConsole(t *testing.T) {
	want := []string{TerminalEmbedded}
	for _, a := range console.Apps {
		want = append(want, string(a))
	}
	if strings.Join(TerminalChoices, ",") != strings.Join(want, ",") {
		t.Errorf("TerminalChoices %v, ui/console offers %v", TerminalChoices, want)
	}
}
