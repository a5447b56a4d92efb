//go:build linux

package qemu

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/runtime/agent"
	"github.com/berth-dev/berth/runtime/vmm"
)

// The real guest agent and initramfs, booted by this backend with the
// Debian cloud kernel for each architecture (arm64: what Berth.app ships,
// under qemu-system-aarch64 -M virt), run a process in a container end to
// end and power off cleanly.
func TestRealAgentRunsAProcess(t *testing.T) {
	for arch, uname := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			testenv.RequireQEMU(t, arch)
			cfg := testConfig(t, arch, testenv.Initrd(t, arch))
			rootfs := testenv.BusyboxExt4(t, arch, 64)
			cfg.Disks = []vmm.Disk{{Path: rootfs}}
			start := time.Now()
			m := startVM(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			c, err := agent.Connect(ctx, m.DialAgent)
			if err != nil {
				t.Fatalf("%v\nconsole: %v", err, m.ConsoleTail(30))
			}
			defer c.Close()
			t.Logf("%s: agent ready %v after Start", arch, time.Since(start).Round(10*time.Millisecond))
			// docker pause: a paused VM answers nothing; resumed, it does.
			if err := m.Pause(); err != nil {
				t.Fatal(err)
			}
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.Health(pctx)
			pcancel()
			if err == nil {
				t.Fatal("a paused VM's agent answered")
			}
			if err := m.Resume(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Health(ctx); err != nil {
				t.Fatalf("after resume: %v", err)
			}
			if err := c.SetupSystem(ctx, &agent.SystemConfig{Hostname: "berth-" + arch}); err != nil {
				t.Fatalf("SetupSystem: %v\nconsole: %v", err, m.ConsoleTail(30))
			}
			if err := c.CreateContainer(ctx, &agent.ContainerConfig{Device: "/dev/vda"}); err != nil {
				t.Fatalf("CreateContainer: %v\nconsole: %v", err, m.ConsoleTail(30))
			}
			var stdout, errb bytes.Buffer
			st, err := c.Run(ctx, "main", &agent.ProcessSpec{Args: []string{"/bin/sh", "-c", "echo hello from $(uname -m); echo kept > /persisted; exit 7"}}, false,
				agent.Stdio{Stdout: &stdout, Stderr: &errb})
			if err != nil {
				t.Fatalf("Run: %v (stderr %q)\nconsole: %v", err, errb.String(), m.ConsoleTail(30))
			}
			if got := strings.TrimSpace(stdout.String()); got != "hello from "+uname || st.Code != 7 {
				t.Fatalf("process said %q and exited %+v; want %q and 7", got, st, "hello from "+uname)
			}
			if err := c.Shutdown(ctx, time.Second); err != nil {
				t.Logf("Shutdown returned %v (the VM may power off before answering)", err)
			}
			waitDone(t, m, time.Minute)
			if err := m.Err(); err != nil {
				t.Fatalf("after Shutdown: %v", err)
			}
			// The guest's write reached the image (cache=writeback honours
			// the flushes of a clean shutdown) and the filesystem is clean.
			testenv.E2fsck(t, rootfs)
			out, err := exec.Command("debugfs", "-R", "cat /persisted", rootfs).Output()
			if err != nil || strings.TrimSpace(string(out)) != "kept" {
				t.Fatalf("debugfs cat /persisted: %q %v", out, err)
			}
		})
	}
}
