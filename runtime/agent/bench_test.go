//go:build linux

package agent_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/berth-dev/berth/guest/initramfs"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testimage"
	ragent "github.com/berth-dev/berth/runtime/agent"
	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/vmm/qemu"
)

// BenchmarkAgent (BERTH_BENCH=1) measures, under the same QEMU:
//   - init: kernel start to the agent accepting RPCs (Health.InitSeconds,
//     from the guest's /proc/uptime), against a busybox /init that only
//     prints its uptime and powers off (ratio = agent / busybox);
//   - rpc: a no-op call's round trip (Health) over virtio-serial;
//   - exec: create + start + wait + delete of `true` in the container;
//   - stdout: MB/s of a process's stdout delivered to the host.
func BenchmarkAgent(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("boots VMs: run with BERTH_BENCH=1 (make bench)")
	}
	arch := runtime.GOARCH
	ctx := context.Background()
	// Boot times on a shared TCG machine swing with its load: boot the
	// two side by side (same conditions) and keep each one's best of two.
	busybox, agentInit := 1e9, 1e9
	initrd := busyboxInitrd(b, arch)
	for i := 0; i < 2; i++ {
		type res struct {
			up  float64
			err error
		}
		bbc := make(chan res, 1)
		go func() {
			up, err := busyboxInitSeconds(arch, initrd, b.TempDir())
			bbc <- res{up, err}
		}()
		v := bootVM(b, arch, 1)
		r := <-bbc
		if r.err != nil {
			b.Fatal(r.err)
		}
		busybox = min(busybox, r.up)
		h, err := v.c.Health(ctx)
		if err != nil {
			b.Fatal(err)
		}
		agentInit = min(agentInit, h.InitSeconds)
		v.c.Close()
		v.m.Kill()
		<-v.m.Done()
	}
	v := bootVM(b, arch, 1)
	h, err := v.c.HealthAccounting(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := v.c.CreateContainer(ctx, &ragent.ContainerConfig{Device: "/dev/vda"}); err != nil {
		b.Fatal(err)
	}
	if err := v.c.CreateProcess(ctx, "init", &ragent.ProcessSpec{Args: []string{"sleep", "100000"}}, false); err != nil {
		b.Fatal(err)
	}
	if _, err := v.c.Start(ctx, "init"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	const rpcs, execs = 200, 20
	var rpc, exe time.Duration
	var mbps float64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for j := 0; j < rpcs; j++ {
			if _, err := v.c.Health(ctx); err != nil {
				b.Fatal(err)
			}
		}
		rpc = time.Since(start) / rpcs
		start = time.Now()
		for j := 0; j < execs; j++ {
			st, err := v.c.Exec(ctx, fmt.Sprintf("b%d-%d", i, j), &ragent.ProcessSpec{Args: []string{"true"}}, ragent.Stdio{})
			if err != nil || st.Code != 0 {
				b.Fatal(st, err)
			}
		}
		exe = time.Since(start) / execs
		const size = 20 << 20
		if _, err := v.c.Exec(ctx, fmt.Sprintf("mk%d", i), &ragent.ProcessSpec{Args: []string{"dd", "if=/dev/zero", "of=/tmp/out", "bs=1M", fmt.Sprintf("count=%d", size>>20)}}, ragent.Stdio{}); err != nil {
			b.Fatal(err)
		}
		var n countWriter
		start = time.Now()
		if _, err := v.c.Exec(ctx, fmt.Sprintf("out%d", i), &ragent.ProcessSpec{Args: []string{"cat", "/tmp/out"}}, ragent.Stdio{Stdout: &n}); err != nil || n.n != size {
			b.Fatal(n.n, err)
		}
		mbps = float64(size) / 1e6 / time.Since(start).Seconds()
	}
	b.ReportMetric(agentInit, "agent-init-s")
	b.ReportMetric(busybox, "busybox-init-s")
	b.ReportMetric(agentInit/busybox, "init-ratio")
	b.ReportMetric(float64(rpc.Microseconds()), "rpc-us")
	b.ReportMetric(float64(exe.Microseconds())/1000, "exec-ms")
	b.ReportMetric(mbps, "stdout-MB/s")
	b.ReportMetric(float64(h.RssBytes)/(1<<20), "agent-idle-rss-MiB")
	if st, err := os.Stat(filepath.Join(testenv.GuestDir(b, arch), "berth-agent")); err == nil {
		b.ReportMetric(float64(st.Size())/(1<<20), "agent-binary-MiB")
	}
}

var busyboxUp = regexp.MustCompile(`BUSYBOX-INIT ([0-9.]+)`)

// busyboxInitrd is a busybox /init that prints /proc/uptime and powers
// off, followed by the same modules archive the agent gets.
func busyboxInitrd(b *testing.B, arch string) string {
	bb, err := testimage.BusyboxBinary(arch)
	if err != nil {
		b.Fatal(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := initramfs.NewWriter(zw)
	script := "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\nread up idle < /proc/uptime\necho BUSYBOX-INIT $up\n/bin/busybox poweroff -f\n"
	w.Dir("proc", 0o755)
	w.CharDev("dev/console", 0o600, 5, 1)
	w.File("bin/busybox", 0o755, int64(len(bin)), bytes.NewReader(bin))
	w.File("init", 0o755, int64(len(script)), bytes.NewReader([]byte(script)))
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	zw.Close()
	_, modules := testenv.Kernel(b, arch)
	if err := initramfs.WriteModules(&buf, modules, initramfs.DefaultModules); err != nil {
		b.Fatal(err)
	}
	initrd := filepath.Join(b.TempDir(), "busybox.cpio.gz")
	if err := os.WriteFile(initrd, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return initrd
}

// busyboxInitSeconds boots initrd (busyboxInitrd) and returns the uptime
// its /init printed.
func busyboxInitSeconds(arch, initrd, dir string) (float64, error) {
	kernel, _, err := testenv.FindKernel(arch)
	if err != nil {
		return 0, err
	}
	m, err := qemu.New().Start(context.Background(), vmm.Config{ID: fmt.Sprintf("bb-%d", os.Getpid()), Arch: arch, Kernel: kernel,
		Initrd: initrd, CPUs: 1, MemoryMiB: 512, StateDir: dir})
	if err != nil {
		return 0, err
	}
	select {
	case <-m.Done():
	case <-time.After(120 * time.Second):
		m.Kill()
		return 0, fmt.Errorf("busybox VM did not power off")
	}
	console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	match := busyboxUp.FindSubmatch(console)
	if match == nil {
		return 0, fmt.Errorf("busybox /init printed no uptime:\n%s", console)
	}
	return strconv.ParseFloat(string(match[1]), 64)
}
