package api

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/berth-dev/berth/internal/syncbuf"
	"github.com/berth-dev/berth/internal/testimage"
)

// TestDockerCLIEndToEnd is the acceptance run: the real docker CLI against
// Berth's socket, with real VMs behind it. VM boots are the expensive part
// (QEMU TCG here), so one long-lived "web" container carries most checks.
func TestDockerCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs; skipped in -short mode")
	}
	e := startEngine(t)
	sock, img := e.Sock, e.Image
	d := func(args ...string) string { t.Helper(); return mustDocker(t, sock, args...) }

	out := d("pull", img)
	if !strings.Contains(out, "Downloaded newer image") {
		t.Fatalf("docker pull:\n%s", out)
	}

	t.Run("run --rm: output and exit code", func(t *testing.T) {
		r := docker(t, sock, nil, "run", "--rm", "--name", "once", img, "sh", "-c", "echo hi; echo oops >&2; exit 3")
		if r.Code != 3 || r.Stdout != "hi\n" || !strings.Contains(r.Stderr, "oops") {
			t.Fatalf("docker run --rm: exit %d stdout %q stderr %q (want 3, hi, oops)", r.Code, r.Stdout, r.Stderr)
		}
		if out := d("ps", "-a", "--filter", "name=once", "-q"); strings.TrimSpace(out) != "" {
			t.Fatalf("--rm container still listed: %q", out)
		}
	})

	t.Run("run --rm with a bad command: 127, removed, prompt", func(t *testing.T) {
		done := make(chan cliResult, 1)
		go func() { done <- docker(t, sock, nil, "run", "--rm", "--name", "badcmd", img, "/no/such/binary") }()
		var r cliResult
		select {
		case r = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("docker run --rm with a bad command hangs")
		}
		if r.Code != 127 || !strings.Contains(r.Stderr, "no such file") {
			t.Fatalf("exit %d stderr %q; want 127 and the start error", r.Code, r.Stderr)
		}
		if out := d("ps", "-a", "--filter", "name=badcmd", "-q"); strings.TrimSpace(out) != "" {
			t.Fatalf("--rm container left after a failed start: %q", out)
		}
	})

	port := freePort(t)
	t.Run("web", func(t *testing.T) {
		// events, started before anything happens to web, read at the end.
		evCtx, evStop := context.WithCancel(context.Background())
		defer evStop()
		events := startBackground(t, evCtx, sock, "events", "--filter", "container=web", "--format", "{{.Action}}")

		id := strings.TrimSpace(d("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), img,
			"sh", "-c", "echo web-started; exec httpd -f -v -p 80 -h /"))
		if len(id) != 64 {
			t.Fatalf("docker run -d printed %q, want a container ID", id)
		}
		body := httpGet(t, port, "/hello.txt")
		if body != testimage.HelloText {
			t.Fatalf("GET /hello.txt = %q", body)
		}
		if out := d("ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}"); !strings.Contains(out, "web Up") ||
			!strings.Contains(out, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
			t.Fatalf("docker ps:\n%s", out)
		}
		if out := d("logs", "web"); !strings.Contains(out, "web-started") {
			t.Fatalf("docker logs web: %q", out)
		}

		// logs -f sees output produced after it started.
		lctx, lstop := context.WithCancel(context.Background())
		follow := startBackground(t, lctx, sock, "logs", "-f", "--tail", "0", "web")
		time.Sleep(time.Second) // following
		httpGet(t, port, "/hello.txt")
		// httpd -v logs each response on stderr.
		waitFor(t, "logs -f shows the new request", 30*time.Second, func() bool {
			return strings.Contains(follow.String(), "response:200")
		})
		lstop()

		hostname := strings.TrimSpace(d("inspect", "--format", "{{.Config.Hostname}}", "web"))
		if out := strings.TrimSpace(d("exec", "web", "cat", "/etc/hostname")); out != hostname {
			t.Errorf("exec web cat /etc/hostname = %q, want the container's hostname %q", out, hostname)
		}
		if r := docker(t, sock, nil, "exec", "web", "sh", "-c", "exit 7"); r.Code != 7 {
			t.Errorf("docker exec exit code %d, want 7", r.Code)
		}

		t.Run("exec -it", func(t *testing.T) {
			p := startPTY(t, sock, 24, 80, "exec", "-it", "web", "sh")
			p.send("echo $((6*7))-ok\r")
			p.expect("42-ok")
			p.send("stty size\r")
			p.expect("24 80")
			p.send("exit 4\r")
			if code := p.wait(); code != 4 {
				t.Fatalf("docker exec -it exit code %d, want 4", code)
			}
			// Detaching (ctrl-p ctrl-q) leaves the shell running, as in Docker.
			q := startPTY(t, sock, 24, 80, "exec", "-it", "web", "sh")
			// Expect what only the shell prints (not the terminal's echo of
			// the typing): then docker has the terminal in raw mode and
			// ctrl-p ctrl-q reach it.
			q.send("echo detach-$((1+1))\r")
			q.expect("detach-2")
			q.send("\x10\x11")
			q.wait()
			time.Sleep(time.Second)
			if out := d("top", "web"); !strings.Contains(out, "sh") {
				t.Fatalf("after detaching from exec -it, no shell runs:\n%s", out)
			}
		})

		t.Run("client hangs up mid-attach", func(t *testing.T) {
			for _, q := range []string{"stream=1&stdout=1&stderr=1", "stream=1&stdin=1&stdout=1&stderr=1"} {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "POST /v1.50/containers/web/attach?%s HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", q)
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || !strings.Contains(line, "101") {
					t.Fatalf("attach upgrade: %q %v", line, err)
				}
				c.Close()
			}
			if st := strings.TrimSpace(d("inspect", "--format", "{{.State.Status}}", "web")); st != "running" {
				t.Fatalf("web is %s after an attached client hung up", st)
			}
			httpGet(t, port, "/hello.txt")
		})

		ins := d("inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.NetworkSettings.IPAddress}} {{.Name}}", "web")
		if !strings.HasPrefix(ins, "true ") || !strings.Contains(ins, "/web") {
			t.Errorf("docker inspect web: %q", ins)
		}
		if out := d("top", "web"); !strings.Contains(out, "httpd") {
			t.Errorf("docker top web:\n%s", out)
		}
		if out := d("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "web"); !strings.HasPrefix(out, "web ") {
			t.Errorf("docker stats --no-stream: %q", out)
		}

		var etcRunning []string // /etc as docker cp sees it while web runs
		t.Run("cp", func(t *testing.T) {
			etcRunning = tarListing(t, d("cp", "web:/etc", "-"))
			if len(etcRunning) < 3 || etcRunning[0] != "etc/ 5 755 0:0 0" {
				t.Fatalf("docker cp web:/etc - lists %q", etcRunning)
			}
			dir := t.TempDir()
			src := filepath.Join(dir, "in.txt")
			os.WriteFile(src, []byte("copied in\n"), 0o644)
			d("cp", src, "web:/tmp/in.txt")
			if out := d("exec", "web", "cat", "/tmp/in.txt"); out != "copied in\n" {
				t.Fatalf("after docker cp in: %q", out)
			}
			d("cp", "web:/hello.txt", filepath.Join(dir, "out.txt"))
			if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != testimage.HelloText {
				t.Fatalf("docker cp out: %q", b)
			}
			// ".." cannot climb out of the container's root: this is the
			// container's /etc/passwd, not the host's.
			d("cp", "web:/../../../../etc/passwd", filepath.Join(dir, "passwd"))
			if b, _ := os.ReadFile(filepath.Join(dir, "passwd")); !strings.Contains(string(b), "app:x:1000") {
				t.Fatalf("docker cp of /../../etc/passwd read %q", b)
			}
			// A tarball whose entries climb out is refused, and nothing
			// lands outside.
			evil := testimage.Tar([]testimage.File{{Path: "../../../../../../tmp/berth-escape-" + strconv.Itoa(port), Mode: 0o644, Data: []byte("x")}})
			code, _, _ := rawPut(t, sock, "/containers/web/archive?path=/tmp", evil)
			if code < 400 {
				if _, err := os.Stat("/tmp/berth-escape-" + strconv.Itoa(port)); err == nil {
					os.Remove("/tmp/berth-escape-" + strconv.Itoa(port))
					t.Fatal("a tar entry with ../ was written outside the container")
				}
			}
			if r := docker(t, sock, nil, "cp", "web:/no/such/file", dir); r.Code == 0 || !strings.Contains(r.Stderr, "No such") && !strings.Contains(r.Stderr, "no such") {
				t.Errorf("docker cp of a missing path: exit %d %q", r.Code, r.Stderr)
			}
		})

		t.Run("stop start restart", func(t *testing.T) {
			d("stop", "-t", "2", "web")
			if st := strings.TrimSpace(d("inspect", "--format", "{{.State.Status}}", "web")); st != "exited" {
				t.Fatalf("after stop: %s", st)
			}
			// docker cp out of the stopped container reads its disk: what
			// was copied in, and /etc as the running container showed it.
			dir := t.TempDir()
			d("cp", "web:/tmp/in.txt", filepath.Join(dir, "in.txt"))
			if b, _ := os.ReadFile(filepath.Join(dir, "in.txt")); string(b) != "copied in\n" {
				t.Fatalf("docker cp out of a stopped container: %q", b)
			}
			if etcRunning != nil {
				if got := tarListing(t, d("cp", "web:/etc", "-")); strings.Join(got, "\n") != strings.Join(etcRunning, "\n") {
					t.Errorf("docker cp web:/etc of the stopped container:\n%s\nwhile running:\n%s", strings.Join(got, "\n"), strings.Join(etcRunning, "\n"))
				}
			}
			if r := docker(t, sock, nil, "cp", "web:/../../no/such", dir); r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "no such") {
				t.Errorf("docker cp of a missing path from a stopped container: exit %d %q", r.Code, r.Stderr)
			}
			src := filepath.Join(dir, "in.txt")
			if r := docker(t, sock, nil, "cp", src, "web:/tmp/"); r.Code == 0 || !strings.Contains(r.Stderr, "start it first") {
				t.Errorf("docker cp into a stopped container: exit %d %q", r.Code, r.Stderr)
			}
			d("start", "web")
			httpGet(t, port, "/hello.txt")
			d("restart", "-t", "2", "web")
			if body := httpGet(t, port, "/hello.txt"); body != testimage.HelloText {
				t.Fatalf("after restart: %q", body)
			}
		})

		t.Run("kill -s and wait", func(t *testing.T) {
			wctx, wstop := context.WithCancel(context.Background())
			defer wstop()
			waiter := startBackground(t, wctx, sock, "wait", "web")
			time.Sleep(500 * time.Millisecond) // the wait is registered
			d("kill", "-s", "KILL", "web")
			waitFor(t, "docker wait returns", 60*time.Second, func() bool { return strings.TrimSpace(waiter.String()) != "" })
			if got := strings.TrimSpace(waiter.String()); got != "137" {
				t.Fatalf("docker wait printed %q, want 137", got)
			}
			if r := docker(t, sock, nil, "kill", "web"); r.Code == 0 || !strings.Contains(r.Stderr, "not running") {
				t.Fatalf("kill of a stopped container: exit %d %q", r.Code, r.Stderr)
			}
		})

		d("start", "web")
		d("rm", "-f", "web")
		if r := docker(t, sock, nil, "inspect", "web"); r.Code == 0 {
			t.Fatal("web still inspectable after rm -f")
		}
		waitFor(t, "events show start and die", 30*time.Second, func() bool {
			s := events.String()
			return strings.Contains(s, "start") && strings.Contains(s, "die") && strings.Contains(s, "destroy")
		})
	})

	t.Run("run -it with resize", func(t *testing.T) {
		p := startPTY(t, sock, 24, 80, "run", "-it", "--rm", "--name", "itx", img, "sh")
		p.send("stty size\r")
		p.expect("24 80")
		p.resize(30, 100)
		time.Sleep(500 * time.Millisecond)
		p.send("stty size\r")
		p.expect("30 100")
		// Detach with the default keys: the CLI leaves, the shell runs on.
		p.send("\x10\x11")
		p.wait()
		if st := strings.TrimSpace(d("inspect", "--format", "{{.State.Status}}", "itx")); st != "running" {
			t.Fatalf("after detaching, itx is %s", st)
		}
		// docker attach brings the session back; its exit code is the shell's.
		a := startPTY(t, sock, 24, 80, "attach", "itx")
		time.Sleep(time.Second)
		a.send("echo back-$((40+2))\r")
		a.expect("back-42")
		a.send("exit 5\r")
		if code := a.wait(); code != 5 {
			t.Fatalf("docker attach exit code %d, want 5 (the shell's)", code)
		}
	})

	t.Run("container prune and system df", func(t *testing.T) {
		d("create", "--name", "idle", img, "true")
		if out := d("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"); !strings.Contains(out, "Images 1 1") ||
			!strings.Contains(out, "Containers 1 0") {
			t.Fatalf("system df with one created container:\n%s", out)
		}
		out := d("container", "prune", "-f")
		if !strings.Contains(out, "Deleted Containers") {
			t.Fatalf("container prune: %q", out)
		}
		if r := docker(t, sock, nil, "inspect", "idle"); r.Code == 0 {
			t.Fatal("pruned container still exists")
		}
		if out := d("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"); !strings.Contains(out, "Images 1 0") {
			t.Fatalf("system df after prune:\n%s", out)
		}
	})
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(t *testing.T, port int, path string) string {
	t.Helper()
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("GET 127.0.0.1:%d%s: %v", port, path, last)
	return ""
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startBackground runs a long-lived docker command (events, logs -f, wait)
// until ctx ends or the test does.
func startBackground(t *testing.T, ctx context.Context, sock string, args ...string) *syncbuf.Buffer {
	t.Helper()
	requireDocker(t)
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, dockerCLI, args...)
	cmd.Env = dockerEnv(t, sock)
	buf := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return buf
}

// ptySession drives the docker CLI through a pseudo-terminal, as a user's
// terminal would.
type ptySession struct {
	t    *testing.T
	f    *os.File
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	seen int
}

func startPTY(t *testing.T, sock string, rows, cols uint16, args ...string) *ptySession {
	t.Helper()
	requireDocker(t)
	cmd := exec.Command(dockerCLI, args...)
	cmd.Env = dockerEnv(t, sock)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	p := &ptySession{t: t, f: f, cmd: cmd, out: &syncbuf.Buffer{}}
	go io.Copy(p.out, bufio.NewReader(f))
	t.Cleanup(func() {
		f.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

func (p *ptySession) send(s string) {
	if _, err := p.f.WriteString(s); err != nil {
		p.t.Fatalf("pty write: %v", err)
	}
}

// expect waits for want in the output after what earlier expects consumed.
func (p *ptySession) expect(want string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := p.out.String()
		if i := strings.Index(s[p.seen:], want); i >= 0 {
			p.seen += i + len(want)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pty: %q never appeared; output:\n%s", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *ptySession) resize(rows, cols uint16) {
	if err := pty.Setsize(p.f, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *ptySession) wait() int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("docker did not exit; output:\n%s", p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func rawPut(t *testing.T, sock, path string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://berth"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := httpOver(sock).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// tarListing lists a tar stream's entries (name, type, mode, owner, size;
// the mtime of regular files) except the files the guest agent rewrites
// at every boot.
func tarListing(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(strings.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("docker cp wrote an invalid tar: %v", err)
		}
		switch path.Base(h.Name) {
		case "hosts", "hostname", "resolv.conf":
			continue
		}
		line := fmt.Sprintf("%s %c %o %d:%d %d", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size)
		if h.Typeflag == tar.TypeReg {
			line += " " + h.ModTime.UTC().Format(time.RFC3339)
		}
		out = append(out, line)
	}
}
