//go:build linux

package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/runtime/agent"
	"github.com/berth-dev/berth/runtime/vmm"
)

// requireVirtiofsd fails (not skips) a test on a machine without virtiofsd.
func requireVirtiofsd(t *testing.T) {
	t.Helper()
	if _, err := VirtiofsdBinary(); err != nil {
		t.Fatal(err)
	}
}

// virtiofsdPids are the live virtiofsd processes serving dir (the daemon
// and, in its namespace sandbox, its child).
func virtiofsdPids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) != "virtiofsd" || !alive(pid) {
			continue
		}
		for _, a := range args {
			if a == "source="+dir {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func waitNoVirtiofsd(t *testing.T, dir string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if len(virtiofsdPids(dir)) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("virtiofsd for %s still running after %v: pids %v", dir, timeout, virtiofsdPids(dir))
}

// Two shares (one read-write, one read-only) served by real virtiofsd to a
// real guest agent: mounted in the VM over virtiofs, bound into the
// container (a directory and a single file), read, written through to the
// host, refused on the read-only one. After Kill no virtiofsd is left.
func TestSharesInAContainer(t *testing.T) {
	for arch, mib := range map[string]int{"amd64": 256, "arm64": 256} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			requireVirtiofsd(t)
			testenv.RequireQEMU(t, arch)
			rw, ro := t.TempDir(), t.TempDir()
			os.WriteFile(filepath.Join(rw, "hello.txt"), []byte("rw from host\n"), 0o644)
			os.WriteFile(filepath.Join(ro, "ro.txt"), []byte("ro from host\n"), 0o644)
			os.WriteFile(filepath.Join(ro, "app.conf"), []byte("conf=1\n"), 0o644)

			cfg := testConfig(t, arch, testenv.Initrd(t, arch))
			cfg.MemoryMiB = mib
			cfg.Disks = []vmm.Disk{{Path: testenv.BusyboxExt4(t, arch, 64)}}
			cfg.Shares = []vmm.Share{{Tag: "rw", Path: rw}, {Tag: "ro-share", Path: ro, ReadOnly: true}}
			start := time.Now()
			m := startVM(t, cfg)
			if n := len(virtiofsdPids(rw)) + len(virtiofsdPids(ro)); n == 0 {
				t.Fatal("no virtiofsd runs for the shares")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			c, err := agent.Connect(ctx, m.DialAgent)
			if err != nil {
				t.Fatalf("%v\nconsole: %v", err, m.ConsoleTail(30))
			}
			defer c.Close()
			t.Logf("%s: agent ready %v after Start", arch, time.Since(start).Round(10*time.Millisecond))
			if err := c.SetupSystem(ctx, &agent.SystemConfig{Hostname: "shares"}); err != nil {
				t.Fatalf("SetupSystem: %v", err)
			}
			for _, sh := range cfg.Shares {
				mc := &agent.MountConfig{Source: sh.Tag, Target: "/run/berth/shares/" + sh.Tag, Fstype: "virtiofs"}
				if sh.ReadOnly {
					mc.Options = []string{"ro"}
				}
				if err := c.Mount(ctx, mc); err != nil {
					t.Fatalf("mount share %s in the VM: %v\nconsole: %v", sh.Tag, err, m.ConsoleTail(30))
				}
			}
			if err := c.CreateContainer(ctx, &agent.ContainerConfig{Device: "/dev/vda"}); err != nil {
				t.Fatalf("CreateContainer: %v", err)
			}
			for _, b := range []*agent.MountConfig{
				{Source: "/run/berth/shares/rw", Target: "/data", Options: []string{"bind"}},
				{Source: "/run/berth/shares/ro-share", Target: "/ro", Options: []string{"bind", "ro"}},
				{Source: "/run/berth/shares/ro-share/app.conf", Target: "/etc/app.conf", Options: []string{"bind", "ro"}},
			} {
				b.InContainer = true
				if err := c.Mount(ctx, b); err != nil {
					t.Fatalf("bind %s into the container: %v", b.Target, err)
				}
			}

			run := func(script string) (string, int) {
				t.Helper()
				var out, errb bytes.Buffer
				st, err := c.Run(ctx, "main", &agent.ProcessSpec{Args: []string{"/bin/sh", "-c", script}}, false, agent.Stdio{Stdout: &out, Stderr: &errb})
				if err != nil {
					t.Fatalf("Run %q: %v (stderr %q)", script, err, errb.String())
				}
				return out.String() + errb.String(), st.Code
			}
			out, code := run(`cat /data/hello.txt /ro/ro.txt /etc/app.conf && echo written in guest > /data/out.txt && mkdir /data/sub && echo deep > /data/sub/f`)
			if want := "rw from host\nro from host\nconf=1\n"; out != want || code != 0 {
				t.Fatalf("container read %q (exit %d), want %q", out, code, want)
			}
			if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "written in guest\n" {
				t.Fatalf("host sees out.txt = %q, %v", b, err)
			}
			if b, err := os.ReadFile(filepath.Join(rw, "sub", "f")); err != nil || string(b) != "deep\n" {
				t.Fatalf("host sees sub/f = %q, %v", b, err)
			}
			for _, target := range []string{"/ro/new", "/ro/ro.txt", "/etc/app.conf"} {
				out, code := run("echo x > " + target)
				if code == 0 || !strings.Contains(out, "Read-only file system") {
					t.Errorf("writing %s on the read-only share: exit %d, %q; want a read-only file system error", target, code, out)
				}
			}
			if _, err := os.Stat(filepath.Join(ro, "new")); !os.IsNotExist(err) {
				t.Fatalf("the read-only share got a new file: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(ro, "ro.txt")); string(b) != "ro from host\n" {
				t.Fatalf("the read-only share's file changed: %q", b)
			}
			// Throughput, logged for the docs (timings never fail a test).
			t0 := time.Now()
			if out, code := run("dd if=/dev/zero of=/data/big bs=1M count=32 2>&1 && sync"); code != 0 {
				t.Fatalf("dd: %s", out)
			}
			w := time.Since(t0)
			t0 = time.Now()
			if out, code := run("echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; cat /data/big > /dev/null"); code != 0 {
				t.Fatalf("read back: %s", out)
			}
			if fi, err := os.Stat(filepath.Join(rw, "big")); err != nil || fi.Size() != 32<<20 {
				t.Fatalf("host sees big: %v %v", fi, err)
			}
			t.Logf("%s: 32 MiB through virtiofs: write+sync %v, read %v (each includes a process start)", arch, w.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
			// A file the host creates after the mount shows up (cache=auto
			// revalidates lookups within a second).
			os.WriteFile(filepath.Join(rw, "later.txt"), []byte("later\n"), 0o644)
			deadline := time.Now().Add(10 * time.Second)
			for {
				out, code := run("cat /data/later.txt")
				if code == 0 && out == "later\n" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("host file created after the mount not visible in the container: %q", out)
				}
				time.Sleep(500 * time.Millisecond)
			}

			if err := m.Kill(); err != nil {
				t.Fatal(err)
			}
			waitDone(t, m, 30*time.Second)
			// Done means the daemons are reaped, not merely signalled.
			if p := append(virtiofsdPids(rw), virtiofsdPids(ro)...); len(p) != 0 {
				t.Fatalf("virtiofsd still running after Kill: %v", p)
			}
			for i := range cfg.Shares {
				if _, err := os.Stat(filepath.Join(cfg.StateDir, shareSock(i))); !os.IsNotExist(err) {
					t.Errorf("socket %s left behind", shareSock(i))
				}
			}
		})
	}
}

// A virtiofsd that dies under a running VM stops the VM (its share would
// hang every access), and Err names the share.
func TestVirtiofsdDeathStopsTheVM(t *testing.T) {
	t.Parallel()
	requireVirtiofsd(t)
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	dir := t.TempDir()
	cfg.Shares = []vmm.Share{{Tag: "vol1", Path: dir}}
	m := startVM(t, cfg)
	waitConsole(t, m, "STUCK-GUEST-MARKER", 60*time.Second)
	if len(m.vfs) != 1 || m.vfs[0].pid == 0 {
		t.Fatal("no virtiofsd recorded")
	}
	if err := syscallKill(m.vfs[0].pid); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m, 20*time.Second)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), `virtiofsd for share "vol1"`) {
		t.Fatalf("Err = %v, want it to name the share's virtiofsd", err)
	}
	waitNoVirtiofsd(t, dir, 5*time.Second)
}

// The engine dies (SIGKILL, no cleanup): its virtiofsd daemons die with it,
// as QEMU does.
func TestVirtiofsdDiesWithTheEngine(t *testing.T) {
	t.Parallel()
	requireVirtiofsd(t)
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	dir := t.TempDir()
	helper, qpid := startHelper(t, cfg, helperShareEnv+"="+dir)
	if len(virtiofsdPids(dir)) == 0 {
		t.Fatal("the helper's VM has no virtiofsd")
	}
	helper.Process.Kill()
	helper.Wait()
	waitGone(t, qpid, 10*time.Second)
	waitNoVirtiofsd(t, dir, 10*time.Second)
}

// Bad shares are refused before anything starts, in one line.
func TestBadShares(t *testing.T) {
	t.Parallel()
	requireVirtiofsd(t)
	kernel, _ := testenv.Kernel(t, "amd64")
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	comma := filepath.Join(t.TempDir(), "a,b")
	os.Mkdir(comma, 0o755)
	for _, c := range []struct {
		share vmm.Share
		want  string
	}{
		{vmm.Share{Tag: "x", Path: "/nonexistent/dir"}, `share "x": /nonexistent/dir: no such file`},
		{vmm.Share{Tag: "x", Path: file}, `is not a directory (virtiofs shares directories; share the file's directory)`},
		{vmm.Share{Tag: "x", Path: comma}, `contains a comma`},
		{vmm.Share{Tag: strings.Repeat("t", 37), Path: "/tmp"}, `1 to 36 bytes`},
	} {
		dir := t.TempDir()
		cfg := vmm.Config{ID: "x", Arch: "amd64", Kernel: kernel, Initrd: kernel, CPUs: 1, MemoryMiB: 256, StateDir: dir,
			Shares: []vmm.Share{c.share}}
		_, err := New().Start(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: got %v, want one line with %q", c.share, err, c.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%+v: left %v in the state dir", c.share, ents)
		}
	}
}

func TestMissingVirtiofsdNamesThePackage(t *testing.T) {
	old := virtiofsdPaths
	virtiofsdPaths = []string{"/nonexistent/virtiofsd"}
	t.Cleanup(func() { virtiofsdPaths = old })
	t.Setenv("PATH", t.TempDir())
	_, err := VirtiofsdBinary()
	want := "virtiofsd not found (needed for shared directories): install the Debian package qemu-system-common (packaging/setup-linux.sh)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// KillStale (a QEMU whose engine still lives but lost track of it) also
// ends its virtiofsd: the daemon exits when QEMU's vhost-user side closes.
func TestKillStaleEndsVirtiofsd(t *testing.T) {
	t.Parallel()
	requireVirtiofsd(t)
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	dir := t.TempDir()
	_, qpid := startHelper(t, cfg, helperShareEnv+"="+dir)
	if len(virtiofsdPids(dir)) == 0 {
		t.Fatal("the helper's VM has no virtiofsd")
	}
	if killed, err := KillStale(cfg.StateDir); !killed || err != nil {
		t.Fatalf("KillStale = %v, %v", killed, err)
	}
	waitGone(t, qpid, 5*time.Second)
	waitNoVirtiofsd(t, dir, 10*time.Second)
}
