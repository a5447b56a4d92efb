//go:build linux

package qemu

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AccelEnv forces the accelerator ("kvm" or "tcg") for every VM.
const AccelEnv = "BERTH_QEMU_ACCEL"

// probeTimeout bounds the KVM probe: a working KVM boots the probe in well
// under a second, a broken one (a PVM host, say) hangs.
const probeTimeout = 8 * time.Second

var accelCache struct {
	sync.Mutex
	m map[string]string
}

// accel picks the accelerator for a VM. KVM counts only if a probe VM
// really boots under it on this host: /dev/kvm can exist, open and create
// VMs and still not run an ordinary kernel (PVM hosts). The answer is
// cached in memory and, per host boot, on disk.
func (b *Backend) accel(ctx context.Context, bin, arch, kernel string) string {
	if a := os.Getenv(AccelEnv); a == "kvm" || a == "tcg" {
		return a
	}
	if b.Accel == "kvm" || b.Accel == "tcg" {
		return b.Accel
	}
	if arch != runtime.GOARCH {
		return "tcg"
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		return "tcg"
	} else {
		f.Close()
	}
	key := bin + "\x00" + kernel
	accelCache.Lock()
	defer accelCache.Unlock() // one probe at a time; the rest wait for its answer
	if a, ok := accelCache.m[key]; ok {
		return a
	}
	if accelCache.m == nil {
		accelCache.m = map[string]string{}
	}
	diskPath := b.probeCachePath(arch)
	bootID := hostBootID()
	if a, ok := readProbeCache(diskPath, bootID, key); ok {
		accelCache.m[key] = a
		return a
	}
	a := "tcg"
	if probeBoot(ctx, bin, arch, kernel, "kvm", probeTimeout) {
		a = "kvm"
	}
	accelCache.m[key] = a
	writeProbeCache(diskPath, bootID, key, a)
	return a
}

func (b *Backend) probeCachePath(arch string) string {
	dir := b.CacheDir
	if dir == "-" {
		return ""
	}
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(c, "berth")
	}
	return filepath.Join(dir, "qemu-accel-"+arch+".json")
}

type probeRecord struct {
	BootID string `json:"boot_id"`
	Key    string `json:"key"`
	Accel  string `json:"accel"`
}

func hostBootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

func readProbeCache(path, bootID, key string) (string, bool) {
	if path == "" || bootID == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var r probeRecord
	if json.Unmarshal(b, &r) != nil || r.BootID != bootID || r.Key != key || (r.Accel != "kvm" && r.Accel != "tcg") {
		return "", false
	}
	return r.Accel, true
}

func writeProbeCache(path, bootID, key, accel string) {
	if path == "" || bootID == "" {
		return
	}
	b, _ := json.Marshal(probeRecord{bootID, key, accel})
	if os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".accel-*")
	if err != nil {
		return
	}
	tmp.Write(b)
	tmp.Close()
	if os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}

// probeBoot boots kernel with a tiny initramfs whose /init prints a marker
// and powers off, under the given accelerator, and reports whether the
// marker appeared and the VM powered off in time.
func probeBoot(ctx context.Context, bin, arch, kernel, accel string, timeout time.Duration) bool {
	dir, err := os.MkdirTemp("", "berth-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	initrd, err := probeInitramfs(arch)
	if err != nil || os.WriteFile(filepath.Join(dir, "initrd"), initrd, 0o644) != nil {
		return false
	}
	ai := arches[arch]
	cpu := ai.tcgCPU
	if accel == "kvm" {
		cpu = "host"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"-M", ai.machineFor(accel), "-accel", accel, "-cpu", cpu, "-m", "128",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", filepath.Join(dir, "initrd"),
		"-append", "console="+ai.console+" panic=-1 quiet",
		"-serial", "file:"+filepath.Join(dir, "console"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if cmd.Run() != nil {
		return false
	}
	out, _ := os.ReadFile(filepath.Join(dir, "console"))
	// The tty turns the marker's "\n" into "\r\n".
	return strings.Contains(string(out), strings.TrimSpace(probeMarker))
}
