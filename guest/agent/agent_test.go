//go:build linux

package agent_test

// These tests run the real agent binary as an ordinary root process in its
// own mount namespace, serving gRPC on a unix socket, and drive it with the
// host client (runtime/agent): the same process machinery as in a VM.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
	"github.com/berth-dev/berth/internal/syncbuf"
	"github.com/berth-dev/berth/internal/testenv"
	ragent "github.com/berth-dev/berth/runtime/agent"
)

type testAgent struct {
	c      *ragent.Client
	sock   string
	rootfs string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncbuf.Buffer
	// stateDir is the agent's -state directory (its /etc files live in
	// etc/ there).
	stateDir string
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (mount namespaces, chroot): run them as root, as CI does")
	}
}

// startAgent runs the agent with a busybox container root set up; extra
// are more command-line flags.
func startAgent(t *testing.T, extra ...string) *testAgent {
	t.Helper()
	requireRoot(t)
	bin := filepath.Join(testenv.GuestDir(t, runtime.GOARCH), "berth-agent")
	dir := t.TempDir()
	ta := &testAgent{sock: filepath.Join(dir, "agent.sock"), rootfs: testenv.BusyboxRootfs(t, runtime.GOARCH), exited: make(chan struct{}), log: &syncbuf.Buffer{}}
	ta.stateDir = filepath.Join(dir, "state")
	ta.cmd = exec.Command(bin, append([]string{"-listen", "unix:" + ta.sock, "-state", ta.stateDir}, extra...)...)
	ta.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	ta.cmd.Stdout, ta.cmd.Stderr = ta.log, ta.log
	if err := ta.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ta.cmd.Wait(); close(ta.exited) }()
	t.Cleanup(func() {
		if ta.c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ta.c.API().Shutdown(ctx, &api.ShutdownRequest{GraceMs: 2000, NoPowerOff: true})
			cancel()
			ta.c.Close()
		}
		select {
		case <-ta.exited:
		case <-time.After(10 * time.Second):
			ta.cmd.Process.Kill()
			<-ta.exited
			t.Errorf("agent did not exit after Shutdown; log:\n%s", ta.log.String())
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", ta.log.String())
		}
	})
	ta.c = ta.connect(t)
	ctx := context.Background()
	if err := ta.c.CreateContainer(ctx, &ragent.ContainerConfig{Path: ta.rootfs}); err != nil {
		t.Fatal(err)
	}
	return ta
}

func (ta *testAgent) connect(t *testing.T) *ragent.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ragent.Connect(ctx, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ta.sock)
	})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, ta.log.String())
	}
	return c
}

// run runs args as the container init (first call) or an exec.
func run(t *testing.T, c *ragent.Client, id string, spec *ragent.ProcessSpec, exec bool, stdin io.Reader) (string, string, ragent.ExitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	st, err := c.Run(ctx, id, spec, exec, ragent.Stdio{Stdin: stdin, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("run %v: %v", spec.Args, err)
	}
	return out.String(), errb.String(), st
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("want %v error, got %v", code, err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, substr) || strings.Contains(msg, "\n") {
		t.Fatalf("error message %q: want one line containing %q", msg, substr)
	}
}

// initSleep makes a long-running init so execs have a container to join.
func initSleep(t *testing.T, c *ragent.Client) {
	t.Helper()
	ctx := context.Background()
	if err := c.CreateProcess(ctx, "init", &ragent.ProcessSpec{Args: []string{"sleep", "1000"}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "init"); err != nil {
		t.Fatal(err)
	}
}

func exec1(t *testing.T, c *ragent.Client, id string, args ...string) (string, string, ragent.ExitStatus) {
	return run(t, c, id, &ragent.ProcessSpec{Args: args}, true, nil)
}

func TestProcessBasics(t *testing.T) {
	ta := startAgent(t)
	c := ta.c
	out, _, st := run(t, c, "init", &ragent.ProcessSpec{Args: []string{"sh", "-c", "echo pid=$$ host=$(hostname); echo err >&2; exit 7"}}, false, nil)
	if st.Code != 7 || !strings.HasPrefix(out, "pid=1 ") {
		t.Fatalf("init: code %d out %q (want 7, pid 1 in its own PID namespace)", st.Code, out)
	}
	// A second init while one runs is refused; after it exited, a new one
	// (a restart) gets a fresh PID namespace.
	ctx := context.Background()
	if err := c.CreateProcess(ctx, "init-b", &ragent.ProcessSpec{Args: []string{"sleep", "100"}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "init-b"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.CreateProcess(ctx, "init2", &ragent.ProcessSpec{Args: []string{"true"}}, false), codes.AlreadyExists, "init")
	out, _, _ = run(t, c, "in-b", &ragent.ProcessSpec{Args: []string{"sh", "-c", "cat /proc/1/cmdline; ls /proc | grep -c '^[0-9]'"}}, true, nil)
	if out != "sleep\x00100\x004\n" { // sleep + sh, ls, grep
		t.Fatalf("exec after restart sees %q, want the new init and the pipeline only", out)
	}
}

func TestExecAndErrors(t *testing.T) {
	ta := startAgent(t)
	c := ta.c
	ctx := context.Background()
	initSleep(t, c)

	t.Run("echo", func(t *testing.T) {
		out, errOut, st := run(t, c, "e1", &ragent.ProcessSpec{Args: []string{"sh", "-c", "echo hello; echo oops >&2"}}, true, nil)
		if out != "hello\n" || errOut != "oops\n" || st.Code != 0 {
			t.Fatalf("out %q err %q code %d", out, errOut, st.Code)
		}
	})
	t.Run("exit7", func(t *testing.T) {
		if _, _, st := exec1(t, c, "e2", "sh", "-c", "exit 7"); st.Code != 7 {
			t.Fatalf("code %d", st.Code)
		}
	})
	t.Run("kill9", func(t *testing.T) {
		if err := c.CreateProcess(ctx, "k", &ragent.ProcessSpec{Args: []string{"sleep", "100"}}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Start(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := c.Signal(ctx, "k", 9); err != nil {
			t.Fatal(err)
		}
		st, err := c.Wait(ctx, "k")
		if err != nil || st.Code != 137 || st.Signal != 9 {
			t.Fatalf("wait: %+v %v", st, err)
		}
		wantCode(t, c.Signal(ctx, "k", 15), codes.FailedPrecondition, "not running")
		if err := c.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sees-init", func(t *testing.T) {
		out, _, _ := exec1(t, c, "e3", "cat", "/proc/1/cmdline")
		if out != "sleep\x001000\x00" {
			t.Fatalf("exec sees PID 1 as %q, want the container's init", out)
		}
	})
	t.Run("user", func(t *testing.T) {
		out, _, _ := run(t, c, "u1", &ragent.ProcessSpec{Args: []string{"sh", "-c", "id -u; id -g; id -G; echo $HOME; pwd"}, User: "app", Cwd: "/tmp"}, true, nil)
		if out != "1000\n1000\n1000 100\n/home/app\n/tmp\n" {
			t.Fatalf("user app: %q", out)
		}
		out, _, _ = run(t, c, "u2", &ragent.ProcessSpec{Args: []string{"id", "-u"}, User: "4242:100"}, true, nil)
		if out != "4242\n" {
			t.Fatalf("numeric user: %q", out)
		}
	})
	t.Run("spec", func(t *testing.T) {
		out, _, _ := run(t, c, "spec", &ragent.ProcessSpec{
			Args:            []string{"sh", "-c", "ulimit -n; grep NoNewPrivs /proc/self/status; echo $FOO; echo $PATH; hostname"},
			Env:             []string{"FOO=bar baz"},
			Rlimits:         []*ragent.Rlimit{{Type: "nofile", Soft: 1000, Hard: 2000}},
			NoNewPrivileges: true,
		}, true, nil)
		want := "1000\nNoNewPrivs:\t1\nbar baz\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
		if !strings.HasPrefix(out, want) {
			t.Fatalf("got %q, want prefix %q", out, want)
		}
		wantCode(t, c.CreateProcess(ctx, "rl", &ragent.ProcessSpec{Args: []string{"true"}, Rlimits: []*ragent.Rlimit{{Type: "bogus"}}}, true), codes.InvalidArgument, "bogus")
		wantCode(t, c.CreateProcess(ctx, "rl", &ragent.ProcessSpec{Args: []string{"true"}, Rlimits: []*ragent.Rlimit{{Type: "nofile", Soft: 9, Hard: 1}}}, true), codes.InvalidArgument, "soft")
	})
	t.Run("close-stdin-rpc", func(t *testing.T) {
		if err := c.CreateProcess(ctx, "cs", &ragent.ProcessSpec{Args: []string{"sh", "-c", "cat; echo closed"}, Stdin: true}, true); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		att, err := c.Attach(ctx, "cs", nil, &out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Start(ctx, "cs"); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseStdin(ctx, "cs"); err != nil {
			t.Fatal(err)
		}
		if st, err := c.Wait(ctx, "cs"); err != nil || st.Code != 0 {
			t.Fatalf("%+v %v", st, err)
		}
		att.Wait()
		if out.String() != "closed\n" {
			t.Fatalf("%q", out.String())
		}
		c.Delete(ctx, "cs")
	})
	t.Run("stdin-eof", func(t *testing.T) {
		out, _, st := run(t, c, "cat", &ragent.ProcessSpec{Args: []string{"sh", "-c", "cat; echo done"}}, true, strings.NewReader("abc"))
		if out != "abcdone\n" || st.Code != 0 {
			t.Fatalf("out %q code %d", out, st.Code)
		}
	})
	t.Run("tty", func(t *testing.T) {
		out, _, _ := run(t, c, "tty", &ragent.ProcessSpec{Args: []string{"sh", "-c", "stty size; tty; echo err >&2"}, Tty: true, Rows: 30, Cols: 100}, true, nil)
		if !strings.Contains(out, "30 100") || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "err") {
			t.Fatalf("tty output %q", out)
		}
	})
	t.Run("bad-input", func(t *testing.T) {
		wantCode(t, c.CreateProcess(ctx, "x", &ragent.ProcessSpec{}, true), codes.InvalidArgument, "no args")
		wantCode(t, c.CreateProcess(ctx, "x", &ragent.ProcessSpec{Args: []string{""}}, true), codes.InvalidArgument, "empty")
		huge := []string{"BIG=" + strings.Repeat("x", 2<<20)}
		wantCode(t, c.CreateProcess(ctx, "x", &ragent.ProcessSpec{Args: []string{"true"}, Env: huge}, true), codes.InvalidArgument, "limit")
		wantCode(t, c.CreateProcess(ctx, "x", &ragent.ProcessSpec{Args: []string{"true"}, Env: []string{"NOEQUALS"}}, true), codes.InvalidArgument, "KEY=VALUE")
		wantCode(t, c.CreateProcess(ctx, "", &ragent.ProcessSpec{Args: []string{"true"}}, true), codes.InvalidArgument, "empty id")

		if err := c.CreateProcess(ctx, "nobin", &ragent.ProcessSpec{Args: []string{"no-such-binary"}}, true); err != nil {
			t.Fatal(err)
		}
		_, err := c.Start(ctx, "nobin")
		wantCode(t, err, codes.NotFound, "no-such-binary")
		if st, err := c.Wait(ctx, "nobin"); err != nil || st.Code != 127 {
			t.Fatalf("wait after failed start: %+v %v", st, err)
		}
		_, err = c.Start(ctx, "nobin")
		wantCode(t, err, codes.FailedPrecondition, "already started")
		wantCode(t, c.CreateProcess(ctx, "nobin", &ragent.ProcessSpec{Args: []string{"true"}}, true), codes.AlreadyExists, "nobin")
		c.Delete(ctx, "nobin")

		for id, spec := range map[string]*ragent.ProcessSpec{
			"nocwd":  {Args: []string{"true"}, Cwd: "/does/not/exist"},
			"nouser": {Args: []string{"true"}, User: "nosuchuser"},
			"nogrp":  {Args: []string{"true"}, User: "app:nosuchgroup"},
		} {
			if err := c.CreateProcess(ctx, id, spec, true); err != nil {
				t.Fatal(err)
			}
			_, err := c.Start(ctx, id)
			wantCode(t, err, codes.InvalidArgument, map[string]string{"nocwd": "/does/not/exist", "nouser": "nosuchuser", "nogrp": "nosuchgroup"}[id])
			c.Delete(ctx, id)
		}
		_, err = c.Start(ctx, "never-created")
		wantCode(t, err, codes.NotFound, "never-created")
		wantCode(t, c.Resize(ctx, "init", 10, 10), codes.FailedPrecondition, "no tty")
		wantCode(t, c.Delete(ctx, "init"), codes.FailedPrecondition, "still running")
	})
}

func TestStreamsAndReconnect(t *testing.T) {
	ta := startAgent(t)
	c := ta.c
	ctx := context.Background()
	initSleep(t, c)
	before, err := c.HealthAccounting(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// An output attach cancelled mid-way loses nothing: a second attach
	// continues where the first stopped.
	if err := c.CreateProcess(ctx, "seq", &ragent.ProcessSpec{Args: []string{"seq", "1", "2000000"}}, true); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	att, err := c.Attach(actx, "seq", nil, pw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "seq"); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := io.CopyN(&got, pr, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	pw.CloseWithError(io.EOF)
	att.Wait()
	// A second output attach while... the first is gone now: allowed.
	var rest bytes.Buffer
	att2, err := c.Attach(ctx, "seq", nil, &rest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := att2.Wait(); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for i := 1; i <= 2000000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	// What was in flight when the first attach went away (up to the
	// client's flow-control window plus a chunk) is lost; the rest must
	// continue exactly where delivery stopped: a prefix, then a suffix.
	all := got.String() + rest.String()
	if !strings.HasPrefix(want.String(), got.String()) || !strings.HasSuffix(want.String(), rest.String()) || len(all) > want.Len() {
		t.Fatalf("output across re-attach is not contiguous: %d+%d bytes of %d", got.Len(), rest.Len(), want.Len())
	}
	if lost := want.Len() - len(all); lost > 1<<20+512<<10 {
		t.Fatalf("%d bytes lost across re-attach", lost)
	}

	// A second output attach takes over from a live first one (a host
	// that reconnects before its old stream timed out).
	if err := c.CreateProcess(ctx, "two", &ragent.ProcessSpec{Args: []string{"sh", "-c", "read x; echo after-$x"}, Stdin: true}, true); err != nil {
		t.Fatal(err)
	}
	var first, second bytes.Buffer
	attA, err := c.Attach(ctx, "two", nil, &first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the first attach register
	attB, err := c.Attach(ctx, "two", strings.NewReader("go\n"), &second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := attA.Wait(); status.Code(err) != codes.Aborted {
		t.Fatalf("first attach: %v, want Aborted (taken over)", err)
	}
	if err := attB.Wait(); err != nil || second.String() != "after-go\n" || first.Len() != 0 {
		t.Fatalf("second attach: %v %q (first got %q)", err, second.String(), first.String())
	}
	c.Wait(ctx, "two") // output EOF can come before the exit is reaped
	if err := c.Delete(ctx, "two"); err != nil {
		t.Fatal(err)
	}

	// The host disconnects and reconnects: processes live on.
	c.Close()
	c2 := ta.connect(t)
	ta.c = c2
	ps, err := c2.List(ctx)
	if err != nil || len(ps) < 2 {
		t.Fatalf("after reconnect: %v %v", ps, err)
	}
	for i := 0; i < 20; i++ {
		exec1(t, c2, fmt.Sprintf("leak%d", i), "sh", "-c", "echo x; sleep 0.01 &")
	}
	// A cancelled Wait and attach must not leak either.
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("cancel%d", i)
		c2.CreateProcess(ctx, id, &ragent.ProcessSpec{Args: []string{"sleep", "0.2"}}, true)
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Millisecond)
		c2.Attach(wctx, id, nil, nil, nil)
		c2.Start(ctx, id)
		c2.Wait(wctx, id)
		wcancel()
		c2.Wait(ctx, id)
		c2.Delete(ctx, id)
	}
	c2.Delete(ctx, "seq")
	// Output nobody reads: the process blocks on its pipe, is killed and
	// deleted; the agent's pump must not wait for a reader forever.
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("unread%d", i)
		c2.CreateProcess(ctx, id, &ragent.ProcessSpec{Args: []string{"sh", "-c", "seq 1 1000000; echo x >&2"}}, true)
		c2.Start(ctx, id)
		time.Sleep(100 * time.Millisecond)
		c2.Signal(ctx, id, 9)
		c2.Wait(ctx, id)
		if err := c2.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var after *ragent.Health
	for i := 0; i < 50; i++ {
		after, err = c2.HealthAccounting(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.Zombies == 0 && after.Goroutines <= before.Goroutines+2 && after.OpenFds <= before.OpenFds+1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.Zombies != 0 || after.Goroutines > before.Goroutines+2 || after.OpenFds > before.OpenFds+1 {
		t.Fatalf("leak: before goroutines %d fds %d; after goroutines %d fds %d zombies %d",
			before.Goroutines, before.OpenFds, after.Goroutines, after.OpenFds, after.Zombies)
	}
	t.Logf("agent RSS %d KiB, goroutines %d, fds %d", after.RssBytes/1024, after.Goroutines, after.OpenFds)
}

func TestPortForwardAndCopy(t *testing.T) {
	ta := startAgent(t)
	c := ta.c
	ctx := context.Background()
	initSleep(t, c)
	// Test agents share the host's network: pick a free port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := c.CreateProcess(ctx, "httpd", &ragent.ProcessSpec{Args: []string{"httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", "/var/www"}}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "httpd"); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	for i := 0; i < 50; i++ {
		if conn, err = c.PortForward(ctx, port); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /index.html HTTP/1.0\r\n\r\n")
	resp, _ := io.ReadAll(bufio.NewReader(conn))
	conn.Close()
	if !strings.Contains(string(resp), "200 OK") || !strings.Contains(string(resp), "hello from berth") {
		t.Fatalf("http through port forward: %q", resp)
	}
	_, err = c.PortForward(ctx, 1)
	wantCode(t, err, codes.Unavailable, "127.0.0.1:1")

	// Forwards dropped mid-way (request half sent, nothing read) leak
	// nothing in the agent.
	before, err := c.HealthAccounting(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		conn, err := c.PortForward(ctx, port)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /index.html HTT")
		conn.Close()
	}
	var after *ragent.Health
	for i := 0; i < 50; i++ {
		if after, err = c.HealthAccounting(ctx); err != nil {
			t.Fatal(err)
		}
		if after.Goroutines <= before.Goroutines && after.OpenFds <= before.OpenFds {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.Goroutines > before.Goroutines || after.OpenFds > before.OpenFds {
		t.Fatalf("port forwards leaked: goroutines %d -> %d, fds %d -> %d", before.Goroutines, after.Goroutines, before.OpenFds, after.OpenFds)
	}
	// Attaching to what does not exist, or stdin a process lacks.
	att, err := c.Attach(ctx, "ghost", nil, nil, nil)
	if err == nil {
		err = att.Wait()
	}
	wantCode(t, err, codes.NotFound, "ghost")
	att, err = c.Attach(ctx, "httpd", strings.NewReader("x"), nil, nil)
	if err == nil {
		err = att.Wait()
	}
	wantCode(t, err, codes.FailedPrecondition, "no stdin")

	// Copy in a tar, read it back with copy out.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "d/f.txt", Typeflag: tar.TypeReg, Mode: 0o640, Size: 5, Uid: 1000})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.Close()
	if err := c.CopyIn(ctx, "/tmp", &tb); err != nil {
		t.Fatal(err)
	}
	out, _, _ := exec1(t, c, "chk", "sh", "-c", "cat /tmp/d/f.txt; stat -c ' %u %a' /tmp/d/f.txt")
	if out != "hello 1000 640\n" {
		t.Fatalf("copied file: %q", out)
	}
	rc, err := c.CopyOut(ctx, "/tmp/d")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	names := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names[h.Name] = string(b) + h.Linkname
	}
	rc.Close()
	if names["d/f.txt"] != "hello" || names["d/link"] != "/etc/passwd" || len(names) != 3 {
		t.Fatalf("copy out: %v", names)
	}
	_, err = c.CopyOut(ctx, "/nope")
	wantCode(t, err, codes.NotFound, "/nope")

	// Traversal: refused, and nothing lands outside the root.
	outside := filepath.Join(filepath.Dir(ta.rootfs), "evil")
	for _, name := range []string{"../evil", "../../evil", "a/../../evil"} {
		var eb bytes.Buffer
		tw := tar.NewWriter(&eb)
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		err := c.CopyIn(ctx, "/", &eb)
		wantCode(t, err, codes.InvalidArgument, "..")
	}
	wantCode(t, c.CopyIn(ctx, "../..", bytes.NewReader(nil)), codes.InvalidArgument, "..")
	// A symlink in the container pointing outside is followed inside the root.
	var sb bytes.Buffer
	tw = tar.NewWriter(&sb)
	tw.WriteHeader(&tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/../../../../"})
	tw.WriteHeader(&tar.Header{Name: "esc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	c.CopyIn(ctx, "/", &sb)
	if _, err := os.Stat(outside); err == nil {
		t.Fatalf("copy in wrote %s outside the container root", outside)
	}
	if _, err := os.Stat("/evil"); err == nil {
		t.Fatal("copy in wrote /evil on the host")
	}
	if _, err := os.Stat(filepath.Join(ta.rootfs, "evil")); err != nil {
		t.Fatalf("the symlinked entry should land inside the root: %v", err)
	}
}

// Bind mounts (what the engine does with a virtiofs share for -v): a
// directory read-write and read-only, a single file, and bad sources.
func TestBindMounts(t *testing.T) {
	ta := startAgent(t)
	c := ta.c
	ctx := context.Background()
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("from the host\n"), 0o644)
	conf := filepath.Join(t.TempDir(), "app.conf")
	os.WriteFile(conf, []byte("key=value\n"), 0o644)
	for _, m := range []*ragent.MountConfig{
		{Source: host, Target: "/data", Options: []string{"bind"}, InContainer: true},
		{Source: host, Target: "/ro/data", Options: []string{"bind", "ro"}, InContainer: true},
		{Source: conf, Target: "/etc/app/app.conf", Options: []string{"bind", "ro"}, InContainer: true},
	} {
		if err := c.Mount(ctx, m); err != nil {
			t.Fatalf("mount %s: %v", m.Target, err)
		}
	}
	initSleep(t, c)
	out, _, st := exec1(t, c, "rw", "sh", "-c", "cat /data/in.txt && echo written > /data/out.txt")
	if st.Code != 0 || out != "from the host\n" {
		t.Fatalf("rw bind: %d %q", st.Code, out)
	}
	if b, err := os.ReadFile(filepath.Join(host, "out.txt")); err != nil || string(b) != "written\n" {
		t.Fatalf("the host does not see the container's write: %q %v", b, err)
	}
	out, _, st = exec1(t, c, "ro", "sh", "-c", "cat /ro/data/in.txt; echo x > /ro/data/y 2>&1")
	if st.Code == 0 || !strings.HasPrefix(out, "from the host\n") {
		t.Fatalf("ro bind: exit %d %q (want the read to work and the write to fail)", st.Code, out)
	}
	if _, err := os.Stat(filepath.Join(host, "y")); err == nil {
		t.Fatal("a write through a read-only bind reached the host")
	}
	out, _, st = exec1(t, c, "file", "cat", "/etc/app/app.conf")
	if st.Code != 0 || out != "key=value\n" {
		t.Fatalf("file bind: %d %q", st.Code, out)
	}
	wantCode(t, c.Mount(ctx, &ragent.MountConfig{Source: filepath.Join(host, "missing"), Target: "/m", Options: []string{"bind"}, InContainer: true}), codes.NotFound, "bind source")
	if err := c.Mount(ctx, &ragent.MountConfig{Source: host, Target: "/../../escape", Options: []string{"bind"}, InContainer: true}); err == nil {
		t.Fatal("a target climbing out of the container was accepted")
	}
}
