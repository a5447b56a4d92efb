package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/agent"
	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/rootfs"
	"github.com/berth-dev/berth/runtime/vmm"
)

func benchGate(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("boots VMs: set BERTH_BENCH=1 (make bench)")
	}
}

// runRm is `berth run --rm busybox true` against the manager; it returns the
// wall time and the container's phase timings.
func runRm(b testing.TB, m *ctrs.Manager) (time.Duration, ctrs.StartTimings) {
	t0 := time.Now()
	ctx := context.Background()
	res, err := m.Create(ctx, ctrs.CreateOptions{Config: &container.Config{Image: testImage, Cmd: []string{"true"}},
		HostConfig: &container.HostConfig{AutoRemove: true}})
	if err != nil {
		b.Fatal(err)
	}
	w, err := m.Wait(ctx, res.ID, container.WaitConditionRemoved)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(ctx, res.ID); err != nil {
		b.Fatal(err)
	}
	tm, _ := m.Timings(res.ID)
	if r := <-w; r.StatusCode != 0 {
		b.Fatalf("exit %d", r.StatusCode)
	}
	return time.Since(t0), tm
}

// BenchmarkRunRm splits `run --rm busybox true` into host preparation
// (image resolve + rootfs clone + VM config, image cached), boot to agent
// ready, and the process run, and compares the whole with the floor: the
// same VM booted by the backend alone until its agent answers.
func BenchmarkRunRm(b *testing.B) {
	benchGate(b)
	eng := openEngine(b, func(o *Options) { o.BootTimeout = 10 * time.Minute })
	m := eng.Containers
	runRm(b, m) // builds the image's snapshot: later runs use the cached image
	var wall, prep, boot, rest time.Duration
	n := 3
	for i := 0; i < n; i++ {
		w, tm := runRm(b, m)
		wall += w
		prep += tm.Prepare
		boot += tm.Boot
		rest += w - tm.Prepare - tm.Boot
	}
	raw := rawBoot(b, eng)
	ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
	b.ReportMetric(ms(wall), "total-ms")
	b.ReportMetric(ms(prep), "host-prep-ms")
	b.ReportMetric(ms(boot), "boot-to-agent-ms")
	b.ReportMetric(ms(rest), "run+teardown-ms")
	b.ReportMetric(float64(raw)/1e6, "raw-vm-boot-ms")
	b.ReportMetric(float64(wall)/float64(n)/float64(raw), "run/raw-boot")
	if p := ms(prep); p >= 50 {
		b.Logf("host preparation %.1f ms is over the 50 ms budget", p)
	}
}

// rawBoot is the reference: the backend boots the same kernel, initramfs
// and disk and the agent answers Health, with no container machinery.
func rawBoot(b testing.TB, eng *Engine) time.Duration {
	ctx := context.Background()
	f, err := eng.Boot.Boot(ctx, arch, "")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	disk := filepath.Join(dir, "disk.ext4")
	snaps, _ := os.ReadDir(eng.Root.Snapshots())
	for _, s := range snaps {
		if strings.HasSuffix(s.Name(), ".ext4") {
			copyFile(b, filepath.Join(eng.Root.Snapshots(), s.Name()), disk)
		}
	}
	os.MkdirAll(filepath.Join(dir, "vm"), 0o700)
	t0 := time.Now()
	mach, err := platformBackend().Start(ctx, vmm.Config{ID: "rawboot", Arch: arch, Kernel: f.Kernel, Initrd: f.Initrd,
		CPUs: 1, MemoryMiB: 256, Disks: []vmm.Disk{{Path: disk}}, StateDir: filepath.Join(dir, "vm"),
		ConsoleLog: filepath.Join(dir, "console.log"), MAC: vmm.StableMAC("rawboot")})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { mach.Kill(); <-mach.Done() }()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := mach.DialAgent(cctx)
	if err != nil {
		b.Fatal(err)
	}
	c, err := agent.ConnectConn(cctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return time.Since(t0)
}

func copyFile(b testing.TB, src, dst string) {
	if err := rootfs.Clone(src, dst); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConcurrentTen starts ten `run --rm true` at once and compares the
// wall time with one run (ratio; 1.0 would be perfect parallelism).
func BenchmarkConcurrentTen(b *testing.B) {
	benchGate(b)
	eng := openEngine(b, func(o *Options) { o.BootTimeout = 10 * time.Minute })
	m := eng.Containers
	runRm(b, m)
	one, _ := runRm(b, m)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); runRm(b, m) }()
	}
	wg.Wait()
	ten := time.Since(t0)
	b.ReportMetric(float64(one)/1e6, "one-ms")
	b.ReportMetric(float64(ten)/1e6, "ten-concurrent-ms")
	b.ReportMetric(float64(ten)/float64(one), "ten/one")
}

// BenchmarkEngineMemory measures `berth daemon`'s resident memory idle with
// no containers (target < 40 MB), and its growth per running container
// (host overhead outside the VM: QEMU's own memory is not counted).
func BenchmarkEngineMemory(b *testing.B) {
	benchGate(b)
	bin := filepath.Join(b.TempDir(), "berth")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/app").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	root, _ := dataroot.Open(dir)
	// Load the image with the store before the daemon owns state.db.
	{
		eng, err := Open(context.Background(), Options{Root: root, GuestDir: guestDir(b)})
		if err != nil {
			b.Fatal(err)
		}
		loadBusybox(b, eng.Images)
		eng.Close(context.Background())
	}
	d := exec.Command(bin, "--data-root", dir, "daemon", "--guest-dir", guestDir(b), "--default-memory", "256", "--default-cpus", "1", "--log-level", "error")
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { d.Process.Signal(os.Interrupt); d.Wait() }()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(root.Socket()); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	idle := rssKB(b, d.Process.Pid)
	const n = 3
	for i := 0; i < n; i++ {
		out, err := exec.Command(bin, "--data-root", dir, "run", "-d", testImage, "sleep", "1000").CombinedOutput()
		if err != nil {
			b.Fatalf("run -d: %v %s", err, out)
		}
	}
	time.Sleep(2 * time.Second)
	busy := rssKB(b, d.Process.Pid)
	b.ReportMetric(float64(idle)/1024, "idle-rss-MB")
	b.ReportMetric(float64(idle)/1024/40, "idle-rss/40MB-target")
	b.ReportMetric(float64(busy-idle)/1024/n, "per-container-host-MB")
	b.Logf("daemon RSS: idle %d KiB, with %d containers %d KiB", idle, n, busy)
}

func rssKB(b testing.TB, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
