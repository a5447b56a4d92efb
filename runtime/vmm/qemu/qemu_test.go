//go:build linux

package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/runtime/vmm"
)

// The guest answers each line on the agent port with what it sees (the
// line, the first disk's first bytes, the second disk's read-only flag)
// and powers off on "bye". When the host side goes away (a read returns
// EOF) it reopens the port, as the agent does.
const echoInit = initPrelude + `
port=
for f in /sys/class/virtio-ports/*/name; do
  [ "$(cat $f)" = berth.agent ] && port=/dev/$(basename $(dirname $f))
done
echo "agent port: $port"
while :; do
  exec 3<>$port
  while read -r line <&3; do
    case "$line" in
    bye) sync; poweroff -f ;;
    *) echo "pong $line $(head -c 9 /dev/vda) ro=$(cat /sys/block/vdb/ro)" >&3 ;;
    esac
  done
  exec 3<&-
  sleep 0.2
done
`

func TestBootChannelDisksPowerOff(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, arch, busyboxInitrd(t, arch, echoInit))
			// A state dir far longer than a unix socket path may be: the
			// backend must still bind its sockets there.
			cfg.StateDir = filepath.Join(cfg.StateDir, strings.Repeat("long-state-directory-", 6))
			if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			disk := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(disk, append([]byte("DISKMAGIC"), make([]byte, 1<<20)...), 0o644); err != nil {
				t.Fatal(err)
			}
			ro := filepath.Join(t.TempDir(), "ro,with,commas.img")
			if err := os.WriteFile(ro, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg.Disks = []vmm.Disk{{Path: disk}, {Path: ro, ReadOnly: true}}

			start := time.Now()
			m := startVM(t, cfg)
			if pid := readPid(t, cfg.StateDir); pid != m.PID() {
				t.Fatalf("pid file says %d, QEMU is %d", pid, m.PID())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			// Two rounds: the second DialAgent gets the connection QEMU
			// makes after the host closed the first (what gRPC's redial
			// relies on).
			var conn net.Conn
			for round := 1; round <= 2; round++ {
				c, err := m.DialAgent(ctx)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if round == 1 {
					t.Logf("%s (%s): agent port open %v after start", arch, m.Accel(), time.Since(start).Round(10*time.Millisecond))
				}
				c.SetDeadline(time.Now().Add(60 * time.Second))
				ping := fmt.Sprintf("ping-%d", round)
				if _, err := c.Write([]byte(ping + "\n")); err != nil {
					t.Fatal(err)
				}
				got, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if want := "pong " + ping + " DISKMAGIC ro=1\n"; got != want {
					t.Fatalf("guest said %q, want %q", got, want)
				}
				if round == 1 {
					c.Close()
				} else {
					conn = c
				}
			}
			defer conn.Close()
			conn.Write([]byte("bye\n"))
			waitDone(t, m, 60*time.Second)
			if err := m.Err(); err != nil {
				t.Fatalf("clean power-off reported %v", err)
			}
			console, _ := os.ReadFile(cfg.ConsoleLog)
			if !strings.Contains(string(console), "BERTH-TEST-INIT-UP") {
				t.Fatalf("console log lacks the init's output:\n%s", console)
			}
			if _, err := os.Stat(filepath.Join(cfg.StateDir, pidFile)); !os.IsNotExist(err) {
				t.Fatal("pid file left behind after the VM stopped")
			}
			if !processGone(m.PID()) {
				t.Fatal("QEMU still running after Done")
			}
		})
	}
}

func readPid(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	return pid
}

const stuckInit = initPrelude + `
echo STUCK-GUEST-MARKER
exec sleep 3600
`

// A guest that never opens the agent port: DialAgent times out with the
// console's last lines; Kill then stops it with ErrKilled.
func TestAgentTimeoutShowsConsoleThenKill(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	m := startVM(t, cfg)
	waitConsole(t, m, "STUCK-GUEST-MARKER", 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := m.DialAgent(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not come up") || !strings.Contains(err.Error(), "STUCK-GUEST-MARKER") {
		t.Fatalf("DialAgent error should name the timeout and show the console tail, got: %v", err)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m, 10*time.Second)
	if !errors.Is(m.Err(), ErrKilled) {
		t.Fatalf("Err after Kill = %v", m.Err())
	}
	waitGone(t, m.PID(), 5*time.Second)
}

// An initramfs without /init: the kernel panics, panic=-1 + -no-reboot end
// QEMU, and Err says so with the panic on the console.
func TestNoInitPanicsWithConsoleTail(t *testing.T) {
	t.Parallel()
	initrd := filepath.Join(t.TempDir(), "empty.cpio")
	c := &cpioWriter{w: mustCreate(t, initrd)}
	c.Dir("dev")
	c.CharDev("dev/console", 5, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "amd64", initrd)
	m := startVM(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := m.DialAgent(ctx)
	if err == nil || !strings.Contains(err.Error(), "VM stopped before the guest agent came up") {
		t.Fatalf("DialAgent: %v", err)
	}
	waitDone(t, m, 10*time.Second)
	e := m.Err()
	if e == nil || !strings.Contains(e.Error(), "guest-reset") || !strings.Contains(e.Error(), "Kernel panic") {
		t.Fatalf("Err should report the reboot and the panic line, got: %v", e)
	}
}

func mustCreate(t *testing.T, p string) *os.File {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A blob that is no kernel: qemu-system-aarch64 loads it as a raw Image
// and the guest never prints anything, so DialAgent's timeout is the
// signal, and the error says the console stayed empty.
func TestGarbageKernelTimesOut(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "arm64", "")
	cfg.Kernel = filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(cfg.Kernel, make([]byte, 64<<10), 0o644)
	cfg.Initrd = cfg.Kernel
	m := startVM(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := m.DialAgent(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not come up") || !strings.Contains(err.Error(), "the kernel printed nothing") ||
		!strings.Contains(err.Error(), "may not be a bootable arm64 kernel") {
		t.Fatalf("DialAgent: %v", err)
	}
}

// qemu-system-x86_64 refuses a kernel it cannot parse: Start fails with
// QEMU's own words.
func TestUnloadableKernelFailsStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "amd64", "")
	cfg.Kernel = filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(cfg.Kernel, []byte(strings.Repeat("not a kernel ", 1000)), 0o644)
	cfg.Initrd = cfg.Kernel
	_, err := New().start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "qemu failed: qemu") || !strings.Contains(err.Error(), "kernel") {
		t.Fatalf("Start: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(cfg.StateDir, pidFile)); !os.IsNotExist(serr) {
		t.Fatal("pid file left behind by a failed start")
	}
}

func TestBadConfig(t *testing.T) {
	kernel, _ := testenv.Kernel(t, "amd64")
	base := vmm.Config{ID: "x", Arch: "amd64", Kernel: kernel, Initrd: kernel, CPUs: 1, MemoryMiB: 256, StateDir: t.TempDir()}
	for _, tc := range []struct {
		name string
		edit func(*vmm.Config)
		want string
	}{
		{"missing kernel", func(c *vmm.Config) { c.Kernel = "/nonexistent/vmlinuz" }, "kernel /nonexistent/vmlinuz: no such file"},
		{"missing initrd", func(c *vmm.Config) { c.Initrd = "/nonexistent/initrd" }, "initramfs /nonexistent/initrd: no such file"},
		{"missing disk", func(c *vmm.Config) { c.Disks = []vmm.Disk{{Path: "/nonexistent/disk"}} }, "disk /nonexistent/disk: no such file"},
		{"too little memory", func(c *vmm.Config) { c.MemoryMiB = 32 }, "at least 64 MiB"},
		{"no state dir", func(c *vmm.Config) { c.StateDir = "/nonexistent/state" }, "state directory /nonexistent/state does not exist"},
		{"bad arch", func(c *vmm.Config) { c.Arch = "riscv64" }, `unsupported guest architecture "riscv64"`},
		{"rosetta", func(c *vmm.Config) { c.Rosetta = true }, "Rosetta"},
	} {
		cfg := base
		tc.edit(&cfg)
		_, err := New().Start(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestMissingQEMUNamesThePackage(t *testing.T) {
	kernel, _ := testenv.Kernel(t, "amd64")
	t.Setenv("PATH", t.TempDir())
	for arch, want := range map[string]string{
		"amd64": "qemu-system-x86_64 not found: install the Debian package qemu-system-x86 (packaging/setup-linux.sh)",
		"arm64": "qemu-system-aarch64 not found: install the Debian package qemu-system-arm (packaging/setup-linux.sh)",
	} {
		cfg := vmm.Config{ID: "x", Arch: arch, Kernel: kernel, Initrd: kernel, CPUs: 1, MemoryMiB: 256, StateDir: t.TempDir()}
		_, err := New().Start(context.Background(), cfg)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", arch, err, want)
		}
	}
}

// The engine dies (SIGKILL, no cleanup): its QEMU must die with it.
func TestQEMUDiesWithTheEngine(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	helper, qpid := startHelper(t, cfg)
	if processGone(qpid) {
		t.Fatal("QEMU not running")
	}
	helper.Process.Kill()
	helper.Wait()
	waitGone(t, qpid, 10*time.Second)
}

// A QEMU left over by a dead engine (here: one whose parent-death signal
// could not fire because its parent lives) is found through the pid file
// and killed; unrelated processes named in a pid file are left alone.
func TestKillStale(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "amd64", busyboxInitrd(t, "amd64", stuckInit))
	_, qpid := startHelper(t, cfg)
	if _, err := New().Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "a VM is already running in") {
		t.Fatalf("second VM on a busy state dir: %v", err)
	}
	killed, err := KillStale(cfg.StateDir)
	if err != nil || !killed {
		t.Fatalf("KillStale = %v, %v", killed, err)
	}
	waitGone(t, qpid, 5*time.Second)
	if _, err := os.Stat(filepath.Join(cfg.StateDir, pidFile)); !os.IsNotExist(err) {
		t.Fatal("pid file not removed")
	}
	if killed, err := KillStale(cfg.StateDir); killed || err != nil {
		t.Fatalf("second KillStale = %v, %v", killed, err)
	}

	// A pid file naming a process that is not our QEMU.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	dir := t.TempDir()
	if err := writePidFile(dir, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if killed, err := KillStale(dir); killed || err != nil {
		t.Fatalf("KillStale on an unrelated pid = %v, %v", killed, err)
	}
	if processGone(sleep.Process.Pid) {
		t.Fatal("KillStale killed an unrelated process")
	}
	// Garbage in the pid file is not an error.
	os.WriteFile(filepath.Join(dir, pidFile), []byte("nonsense"), 0o644)
	if killed, err := KillStale(dir); killed || err != nil {
		t.Fatalf("KillStale on garbage = %v, %v", killed, err)
	}
}

// The probe's hand-assembled /init runs on both architectures (under TCG,
// which works everywhere), and the accelerator choice is made once.
func TestAccelProbe(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			testenv.RequireQEMU(t, arch)
			bin, err := Binary(arch)
			if err != nil {
				t.Fatal(err)
			}
			kernel, _ := testenv.Kernel(t, arch)
			if !probeBoot(context.Background(), bin, arch, kernel, "tcg", 2*time.Minute) {
				t.Fatalf("the %s probe init did not print its marker and power off under TCG", arch)
			}
		})
	}
	t.Run("cache", func(t *testing.T) {
		kernel, _ := testenv.Kernel(t, "amd64")
		bin, err := Binary("amd64")
		if err != nil {
			t.Fatal(err)
		}
		b := &Backend{CacheDir: t.TempDir()}
		a := b.accel(context.Background(), bin, "amd64", kernel)
		if a != "kvm" && a != "tcg" {
			t.Fatalf("accel = %q", a)
		}
		t.Logf("this host: %s", a)
		// A second backend (another process, say) reads the disk cache.
		accelCache.Lock()
		accelCache.m = nil
		accelCache.Unlock()
		start := time.Now()
		if again := b.accel(context.Background(), bin, "amd64", kernel); again != a || time.Since(start) > time.Second {
			t.Fatalf("second answer %q after %v (want %q from the cache)", again, time.Since(start), a)
		}
		if b.accel(context.Background(), bin, "arm64", kernel) != "tcg" && runtimeArch() != "arm64" {
			t.Fatal("a foreign guest architecture must use TCG")
		}
	})
}

// Too little memory for kernel + initramfs: the kernel runs out while
// unpacking, panics, and Err names the memory size and shows the panic.
func TestTooLittleMemoryPanics(t *testing.T) {
	t.Parallel()
	initrd := busyboxInitrd(t, "amd64", stuckInit)
	pad := make([]byte, 24<<20)
	for i := range pad {
		pad[i] = byte(i*7919 + i>>11) // incompressible enough, and the archive is not compressed anyway
	}
	var b strings.Builder
	c := &cpioWriter{w: &b}
	c.File("padding", 0o644, pad)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(initrd, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(b.String())
	f.Close()
	cfg := testConfig(t, "amd64", initrd)
	cfg.MemoryMiB = 80
	m := startVM(t, cfg)
	waitDone(t, m, 2*time.Minute)
	e := m.Err()
	if e == nil || !strings.Contains(e.Error(), "memory (80 MiB) is too small") || !strings.Contains(e.Error(), "Kernel panic") {
		t.Fatalf("Err = %v", e)
	}
	t.Log(e)
}
