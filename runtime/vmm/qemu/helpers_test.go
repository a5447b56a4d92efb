//go:build linux

package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/guest/initramfs"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/vmm"
)

// initPrelude mounts what a busybox /init needs and loads the kernel's
// virtio modules (packed by initramfs.WriteModules), then says so.
const initPrelude = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/berth/order); do insmod /lib/modules/berth/$m 2>/dev/null; done
echo BERTH-TEST-INIT-UP
`

// busyboxInitrd builds an initramfs for arch: busybox, /init = script, and
// the test kernel's virtio modules appended as a second archive.
func busyboxInitrd(t *testing.T, arch, script string) string {
	t.Helper()
	bb, err := testimage.BusyboxBinary(arch)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	c := &cpioWriter{w: &b}
	c.Dir("bin")
	c.Dir("dev")
	c.CharDev("dev/console", 5, 1)
	c.File("bin/busybox", 0o755, bin)
	c.File("init", 0o755, []byte(script))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, modules := testenv.Kernel(t, arch)
	if err := initramfs.WriteModules(&b, modules, initramfs.DefaultModules); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initrd")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testConfig is a VM config for arch with its state under a fresh dir.
func testConfig(t *testing.T, arch, initrd string) vmm.Config {
	t.Helper()
	testenv.RequireQEMU(t, arch)
	kernel, _ := testenv.Kernel(t, arch)
	dir := t.TempDir()
	return vmm.Config{
		ID: "t" + strconv.Itoa(os.Getpid()), Arch: arch, Kernel: kernel, Initrd: initrd,
		CPUs: 1, MemoryMiB: 256, StateDir: dir, ConsoleLog: filepath.Join(dir, "console.log"),
	}
}

func startVM(t *testing.T, cfg vmm.Config) *Machine {
	t.Helper()
	m, err := New().start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); <-m.Done() })
	return m
}

// waitConsole waits until the console log holds want.
func waitConsole(t *testing.T, m *Machine, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(m.cfg.ConsoleLog)
		if strings.Contains(string(b), want) {
			return
		}
		select {
		case <-m.Done():
			t.Fatalf("VM stopped before %q appeared: %v", want, m.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(m.cfg.ConsoleLog)
	t.Fatalf("%q not on the console after %v; console:\n%s", want, timeout, b)
}

func waitDone(t *testing.T, m *Machine, timeout time.Duration) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(timeout):
		t.Fatalf("VM still running after %v", timeout)
	}
}

func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH || !alive(pid)
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if processGone(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d still alive after %v", pid, timeout)
}

// helperEnv makes the test binary act as a stand-in engine (see TestMain).
const helperEnv = "BERTH_QEMU_TEST_HELPER"

// helperShareEnv gives the helper's VM a share of that directory.
const helperShareEnv = "BERTH_QEMU_TEST_HELPER_SHARE"

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelper(cfg))
	}
	os.Exit(m.Run())
}

// runHelper starts a VM from "kernel:initrd:statedir", prints QEMU's pid
// and waits to be killed.
func runHelper(spec string) int {
	parts := strings.SplitN(spec, ":", 3)
	cfg := vmm.Config{ID: "helper", Arch: "amd64", Kernel: parts[0], Initrd: parts[1], CPUs: 1, MemoryMiB: 128, StateDir: parts[2]}
	if dir := os.Getenv(helperShareEnv); dir != "" {
		cfg.Shares = []vmm.Share{{Tag: "helper", Path: dir}}
	}
	m, err := New().start(context.Background(), cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(m.PID())
	select {}
}

func startHelper(t *testing.T, cfg vmm.Config, env ...string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+cfg.Kernel+":"+cfg.Initrd+":"+cfg.StateDir, AccelEnv+"=tcg")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := out.Read(buf)
		if n == 0 || err != nil || buf[0] == '\n' {
			break
		}
		line = append(line, buf[0])
	}
	pid, err := strconv.Atoi(string(line))
	if err != nil {
		t.Fatalf("helper: %q", line)
	}
	return cmd, pid
}
