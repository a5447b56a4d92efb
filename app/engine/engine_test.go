package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	bolt "go.etcd.io/bbolt"

	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/logs"
)

// One VM: exit status, stdout and stderr kept apart, the image's config
// merged (env, workdir, user), the upper layer's file and whiteout visible,
// and every lifecycle event published.
func TestRunExitCodeAndOutput(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	evctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := m.Subscribe(evctx, time.Time{})
	r := run(t, m, container.Config{
		Cmd:        []string{"sh", "-c", `echo "out $GREETING $(pwd) $(id -u)"; cat /hello.txt; test -e /etc/motd || echo motd-gone; echo oops >&2; exit 3`},
		Env:        []string{"GREETING=hi"},
		WorkingDir: "/tmp", User: "app",
	}, nil)
	if r.Code != 3 {
		t.Fatalf("exit code %d, want 3 (stdout %q stderr %q)", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "out hi /tmp 1000\n") || !strings.Contains(r.Stdout, "motd-gone") || r.Stderr != "oops\n" {
		t.Fatalf("stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	// The log has the same lines with their streams, in Docker json-file format.
	lt := logText(t, m, r.ID)
	if !strings.Contains(lt, "stdout: out hi /tmp 1000\n") || !strings.Contains(lt, "stderr: oops\n") {
		t.Fatalf("log %q", lt)
	}
	ins, err := m.Inspect(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ins.State.Status != container.StateExited || ins.State.ExitCode != 3 || ins.State.Running {
		t.Fatalf("state %+v", ins.State)
	}
	raw, err := os.ReadFile(ins.LogPath)
	if err != nil || !bytes.Contains(raw, []byte(`{"log":"oops\n","stream":"stderr","time":"`)) {
		t.Fatalf("json-file log %s: %v\n%s", ins.LogPath, err, raw)
	}
	var seen []string
	timeout := time.After(5 * time.Second)
	for len(seen) < 3 {
		select {
		case e := <-evs:
			if e.Actor.ID == r.ID {
				seen = append(seen, string(e.Action))
				if e.Action == events.ActionDie && e.Actor.Attributes["exitCode"] != "3" {
					t.Fatalf("die event %+v", e)
				}
			}
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if strings.Join(seen, ",") != "create,start,die" {
		t.Fatalf("events %v", seen)
	}
}

// A detached web server: logs -f, exec, a published port reaching busybox
// httpd, stats, top, copy in/out, inspect's IP, and stop within the grace
// period when the process handles SIGTERM.
func TestDetachedServer(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	ctx := context.Background()
	port, _ := network.PortFrom(80, network.TCP)
	id := startDetached(t, m, ctrs.CreateOptions{Name: "web",
		Config: &container.Config{Cmd: []string{"sh", "-c",
			`echo '<h1>hello from berth</h1>' > /var/www/index.html; httpd -p 80 -h /var/www; trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done`}},
		HostConfig: &container.HostConfig{PortBindings: network.PortMap{port: {{HostPort: "0"}}}},
	})

	// logs -f sees ticks as they come.
	fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
	got := make(chan string, 100)
	go m.Logs(fctx, id, ctrs.LogsOptions{Follow: true, Tail: -1}, func(e logs.Entry) error {
		got <- string(e.Line)
		return nil
	})
	for want := 0; want < 2; want++ {
		select {
		case l := <-got:
			if l != fmt.Sprintf("tick %d\n", want) {
				t.Fatalf("followed %q, want tick %d", l, want)
			}
		case <-fctx.Done():
			t.Fatal("logs -f saw nothing")
		}
	}

	// The published port reaches httpd inside the VM.
	ins, err := m.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	bs := ins.NetworkSettings.Ports[port]
	if len(bs) != 1 || bs[0].HostIP.String() != "127.0.0.1" || bs[0].HostPort == "0" {
		t.Fatalf("ports %+v", ins.NetworkSettings.Ports)
	}
	if ip := ins.NetworkSettings.Networks["bridge"].IPAddress; !ip.IsValid() {
		t.Fatalf("no container IP in inspect: %+v", ins.NetworkSettings.Networks["bridge"])
	}
	var body []byte
	waitFor(t, "httpd via the published port", 30*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + bs[0].HostPort + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200
	})
	if !strings.Contains(string(body), "hello from berth") {
		t.Fatalf("body %q", body)
	}

	// exec: output, exit status, the container's filesystem and hostname.
	out, code := execOut(t, m, id, "sh", "-c", "cat /var/www/index.html; hostname; exit 7")
	if code != 7 || !strings.Contains(out, "hello from berth") || !strings.Contains(out, id[:12]) {
		t.Fatalf("exec: %q code %d", out, code)
	}

	// copy in, then out.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "copied.txt", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg})
	tw.Write([]byte("copied"))
	tw.Close()
	if err := m.CopyTo(ctx, id, "/tmp", &tb, ctrs.CopyToOptions{}); err != nil {
		t.Fatal(err)
	}
	var evil bytes.Buffer
	tw = tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../../etc/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	if err := m.CopyTo(ctx, id, "/tmp", &evil, ctrs.CopyToOptions{}); !errors.Is(err, ctrs.ErrInvalid) {
		t.Fatalf("path traversal not refused: %v", err)
	}
	var cb bytes.Buffer
	if err := m.CopyFrom(ctx, id, "/tmp/copied.txt", &cb); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&cb)
	h, err := tr.Next()
	if err != nil || h.Name != "copied.txt" {
		t.Fatalf("copy out: %v %+v", err, h)
	}
	if data, _ := io.ReadAll(tr); string(data) != "copied" {
		t.Fatalf("copied back %q", data)
	}

	// stats and top.
	st, err := m.Stats(ctx, id)
	if err != nil || st.MemoryStats.Usage == 0 || st.PidsStats.Current == 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	top, err := m.Top(ctx, id, "")
	if err != nil || len(top.Processes) < 2 || !strings.Contains(fmt.Sprint(top.Processes), "httpd") {
		t.Fatalf("top %+v %v", top, err)
	}

	// stop: the trap answers SIGTERM well within the grace period.
	t0 := time.Now()
	grace := 20
	if err := m.Stop(ctx, id, ctrs.StopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 15*time.Second {
		t.Fatalf("stop took %s: the SIGTERM handler was not reached", took)
	}
	ins, _ = m.Inspect(ctx, id)
	if ins.State.Running || ins.State.ExitCode != 0 {
		t.Fatalf("after stop: %+v", ins.State)
	}
	if !strings.Contains(logText(t, m, id), "stdout: bye\n") {
		t.Fatal("the container did not see SIGTERM")
	}
	fcancel()
	// The VM is gone: the published port no longer answers.
	if _, err := http.Get("http://127.0.0.1:" + bs[0].HostPort + "/"); err == nil {
		t.Fatal("port still published after stop")
	}
}

// --restart on-failure:2 restarts exactly twice, then gives up.
func TestRestartOnFailureTwice(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	ctx := context.Background()
	evctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := m.Subscribe(evctx, time.Time{})
	id := startDetached(t, m, ctrs.CreateOptions{
		Config:     &container.Config{Cmd: []string{"sh", "-c", "echo run; exit 1"}},
		HostConfig: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}},
	})
	starts, dies := 0, 0
	deadline := time.After(3 * time.Minute)
	for dies < 3 {
		select {
		case e := <-evs:
			if e.Actor.ID != id {
				continue
			}
			switch e.Action {
			case events.ActionStart:
				starts++
			case events.ActionDie:
				dies++
			}
		case <-deadline:
			t.Fatalf("only %d starts, %d dies", starts, dies)
		}
	}
	time.Sleep(3 * time.Second) // a fourth start would come within the backoff
	ins, err := m.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ins.RestartCount != 2 || ins.State.Status != container.StateExited || ins.State.ExitCode != 1 {
		t.Fatalf("restart count %d, state %+v", ins.RestartCount, ins.State)
	}
	if n := strings.Count(logText(t, m, id), "stdout: run\n"); n != 3 {
		t.Fatalf("%d runs logged, want 3", n)
	}
}

// Two containers from one image run at once, each with its own filesystem.
func TestTwoContainersSeparateFilesystems(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	cmd := `echo $NAME > /mine; sleep 2; ls / | grep -c mine; cat /mine`
	ids := []string{}
	for _, n := range []string{"a", "b"} {
		ids = append(ids, startDetached(t, m, ctrs.CreateOptions{Name: "fs-" + n,
			Config: &container.Config{Cmd: []string{"sh", "-c", cmd}, Env: []string{"NAME=" + n}}}))
	}
	for i, id := range ids {
		w, _ := m.Wait(context.Background(), id, container.WaitConditionNotRunning)
		if r := <-w; r.StatusCode != 0 {
			t.Fatalf("%s exited %d: %s", id, r.StatusCode, logText(t, m, id))
		}
		want := fmt.Sprintf("stdout: 1\nstdout: %s\n", []string{"a", "b"}[i])
		if got := logText(t, m, id); got != want {
			t.Fatalf("container %d saw %q, want %q", i, got, want)
		}
	}
}

// --rm leaves no files, no bbolt record and no VM process behind.
func TestAutoRemoveLeavesNothing(t *testing.T) {
	t.Parallel()
	eng := openEngine(t)
	m := eng.Containers
	var vmPID int
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := m.Subscribe(ctx, time.Time{})
	r := run(t, m, container.Config{Cmd: []string{"true"}}, &container.HostConfig{AutoRemove: true})
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	for e := range evs {
		if e.Action == events.ActionDestroy {
			break
		}
	}
	_ = vmPID
	if _, err := m.Inspect(context.Background(), r.ID); !errors.Is(err, ctrs.ErrNotFound) {
		t.Fatalf("still inspectable: %v", err)
	}
	if _, err := os.Stat(eng.Root.Container(r.ID)); !os.IsNotExist(err) {
		t.Fatalf("container directory left: %v", err)
	}
	eng.DB.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("containers")); b != nil && b.Get([]byte(r.ID)) != nil {
			t.Fatal("bbolt record left")
		}
		return nil
	})
	if procs := qemuProcsFor(r.ID); len(procs) > 0 {
		t.Fatalf("VM processes left: %v", procs)
	}
}

// qemuProcsFor lists live QEMU processes whose command line names the container.
func qemuProcsFor(id string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("qemu-system")) || !bytes.Contains(data, []byte(id)) {
			continue
		}
		var pid int
		fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
		if pidAlive(pid) {
			out = append(out, p)
		}
	}
	return out
}
