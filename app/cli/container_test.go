package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
)

var (
	berthOnce sync.Once
	berthBin  string
	berthErr  error
)

// berthBinary builds the berth command once per test binary.
func berthBinary(t *testing.T) string {
	t.Helper()
	berthOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			berthErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		out, err := exec.Command("go", "build", "-o", berthBin, "github.com/berth-dev/berth/app").CombinedOutput()
		if err != nil {
			berthErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if berthErr != nil {
		t.Fatal(berthErr)
	}
	return berthBin
}

// testGuestDir lays the agent build out as the engine expects it.
func testGuestDir(t *testing.T) string {
	t.Helper()
	arch := runtime.GOARCH
	testenv.RequireQEMU(t, arch)
	if d := os.Getenv("BERTH_TEST_GUEST_DIR"); d != "" {
		return d
	}
	gd := testenv.GuestDir(t, arch)
	dir := t.TempDir()
	if err := os.Symlink(gd, filepath.Join(dir, arch)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// daemon is a `berth daemon` child process on a data root.
type daemon struct {
	t    *testing.T
	bin  string
	root string
	gd   string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

func startDaemon(t *testing.T, root, gd string) *daemon {
	t.Helper()
	d := &daemon{t: t, bin: berthBinary(t), root: root, gd: gd, out: &bytes.Buffer{}}
	d.cmd = exec.Command(d.bin, "daemon", "--data-root", root, "--guest-dir", gd, "--default-memory", "256", "--default-cpus", "1", "--log-level", "warn")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Signal(syscall.SIGTERM)
			d.cmd.Wait()
		}
	})
	g := &Globals{DataRoot: root}
	deadline := time.Now().Add(30 * time.Second)
	for !g.EngineRunning() {
		if time.Now().After(deadline) || d.cmd.ProcessState != nil {
			t.Fatalf("daemon did not come up:\n%s", d.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// berth runs the CLI binary against the daemon's data root.
func (d *daemon) berth(args ...string) (string, int) {
	d.t.Helper()
	cmd := exec.Command(d.bin, append([]string{"--data-root", d.root}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return string(out), code
}

func (d *daemon) loadBusybox() {
	d.t.Helper()
	img, err := testimage.BusyboxImage(runtime.GOARCH)
	if err != nil {
		d.t.Fatal(err)
	}
	f := filepath.Join(d.t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(f, name.MustParseReference("busybox:test"), img); err != nil {
		d.t.Fatal(err)
	}
	if out, code := d.berth("load", "-i", f); code != 0 {
		d.t.Fatalf("load: %s", out)
	}
}

func qemuPIDs(id string) []int {
	var out []int
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("qemu-system")) || !bytes.Contains(data, []byte(id)) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The CLI end to end through a real `berth daemon`: run with output and exit
// status, bad specs, -d with -p and exec -it through a pty with a resize,
// then kill -9 of the daemon: its VMs die with it, and the next daemon
// marks the container exited and restarts the one with --restart always.
func TestCLIAndDaemonCrash(t *testing.T) {
	root := shortTempDir(t)
	gd := testGuestDir(t)
	d := startDaemon(t, root, gd)
	d.loadBusybox()

	out, code := d.berth("run", "--rm", "busybox:test", "sh", "-c", "echo hi from the vm; exit 5")
	if code != 5 || out != "hi from the vm\n" {
		t.Fatalf("run: code %d output %q", code, out)
	}
	// -i: piped stdin reaches the process, its EOF ends it.
	cmd := exec.Command(d.bin, "--data-root", d.root, "run", "-i", "--rm", "busybox:test", "sh", "-c", "tr a-z A-Z; echo done")
	cmd.Stdin = strings.NewReader("piped through the vm\n")
	piped, err := cmd.CombinedOutput()
	if err != nil || string(piped) != "PIPED THROUGH THE VM\ndone\n" {
		t.Fatalf("run -i: %v %q", err, piped)
	}
	for spec, want := range map[string]string{"80:abc": "invalid port spec", "53:53/udp": "not supported"} {
		out, code = d.berth("run", "-p", spec, "busybox:test", "true")
		if code == 0 || !strings.Contains(out, want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Fatalf("-p %s: code %d %q", spec, code, out)
		}
	}
	out, code = d.berth("run", "--memory", "32m", "busybox:test", "true")
	if code == 0 || !strings.Contains(out, "too small to boot") {
		t.Fatalf("--memory 32m: %d %q", code, out)
	}
	out, code = d.berth("run", "nosuch:image", "true")
	if code == 0 || !strings.Contains(out, "nosuch") {
		t.Fatalf("missing image: %d %q", code, out)
	}

	out, code = d.berth("run", "-d", "--name", "keep", "--restart", "always", "-p", "127.0.0.1::80", "busybox:test",
		"sh", "-c", "echo up > /var/www/index.html; httpd -p 80 -h /var/www; exec sleep 100000")
	if code != 0 {
		t.Fatalf("run -d: %s", out)
	}
	keepID := strings.TrimSpace(out)
	out, code = d.berth("run", "-d", "--name", "once", "busybox:test", "sleep", "100000")
	if code != 0 {
		t.Fatalf("run -d: %s", out)
	}
	onceID := strings.TrimSpace(out)
	out, _ = d.berth("port", "keep")
	hostPort := out[strings.LastIndex(out, ":")+1:]
	hostPort = strings.TrimSpace(hostPort)
	waitUntil(t, "httpd through -p", 30*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + hostPort + "/")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body) == "up\n"
	})
	out, _ = d.berth("ps")
	if !strings.Contains(out, "keep") || !strings.Contains(out, "once") || !strings.Contains(out, "->80/tcp") {
		t.Fatalf("ps:\n%s", out)
	}

	// exec -it through a pty: a shell, arithmetic, and a resize it sees.
	ptyExec(t, d, "keep")

	// kill -9 the daemon: QEMU has a parent-death signal, the VMs go too.
	pids := append(qemuPIDs(keepID), qemuPIDs(onceID)...)
	if len(pids) != 2 {
		t.Fatalf("qemu processes %v", pids)
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	waitUntil(t, "VMs to die with the daemon", 20*time.Second, func() bool {
		return len(qemuPIDs(keepID))+len(qemuPIDs(onceID)) == 0
	})

	d2 := startDaemon(t, root, gd)
	waitUntil(t, "keep to be restarted by its policy", 90*time.Second, func() bool {
		out, _ := d2.berth("ps", "--filter", "name=keep", "-q")
		return strings.TrimSpace(out) != ""
	})
	out, _ = d2.berth("ps", "-a")
	if !strings.Contains(out, "Exited (255)") {
		t.Fatalf("once was not marked exited after the crash:\n%s", out)
	}
	out, _ = d2.berth("inspect", "once")
	if !strings.Contains(out, "the engine stopped while the container was running") {
		t.Fatalf("inspect once:\n%s", out)
	}
	// The restarted container runs its command again (which rewrites the file).
	waitUntil(t, "exec in the restarted container", 30*time.Second, func() bool {
		out, code := d2.berth("exec", "keep", "cat", "/var/www/index.html")
		return code == 0 && out == "up\n"
	})

	out, code = d2.berth("stats", "--no-stream", "keep")
	if code != 0 || !strings.Contains(out, "keep") || !strings.Contains(out, "MEM USAGE") {
		t.Fatalf("stats: %d %q", code, out)
	}
	// kill -9 is a manual stop: no policy restart; wait reports 137.
	if out, code := d2.berth("kill", "keep"); code != 0 {
		t.Fatalf("kill: %q", out)
	}
	if out, _ := d2.berth("wait", "keep"); strings.TrimSpace(out) != "137" {
		t.Fatalf("wait after kill: %q", out)
	}
	time.Sleep(2 * time.Second)
	if out, _ := d2.berth("ps", "-q", "--filter", "name=keep"); strings.TrimSpace(out) != "" {
		t.Fatalf("killed container was restarted: %q", out)
	}

	// A graceful daemon stop stops the containers and leaves no VM.
	d2.cmd.Process.Signal(syscall.SIGTERM)
	if err := d2.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d2.out)
	}
	if left := append(qemuPIDs(keepID), qemuPIDs(onceID)...); len(left) > 0 {
		t.Fatalf("VMs left after daemon stop: %v", left)
	}
}

func ptyExec(t *testing.T, d *daemon, ctr string) {
	t.Helper()
	cmd := exec.Command(d.bin, "--data-root", d.root, "exec", "-it", ctr, "sh")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var seen bytes.Buffer
	go func() {
		r := bufio.NewReader(f)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	expect := func(s string) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%q on the terminal", s), 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(seen.String(), s)
		})
	}
	f.Write([]byte("echo $((6*7))\r"))
	expect("42")
	f.Write([]byte("stty size\r"))
	expect("30 100")
	pty.Setsize(f, &pty.Winsize{Rows: 40, Cols: 120})
	time.Sleep(500 * time.Millisecond)
	f.Write([]byte("stty size\r"))
	expect("40 120")
	f.Write([]byte("exit 3\r"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("exec -it exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("exec -it did not end; terminal:\n%s", seen.String())
	}
	_ = context.Background
}
