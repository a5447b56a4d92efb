//go:build linux

package qemu

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/runtime/vmm"
)

// The command line for both agent channels and both architectures; the
// vhost-vsock variant cannot boot here (no /dev/vhost-vsock), so its shape
// is checked instead.
func TestArgs(t *testing.T) {
	cfg := vmm.Config{ID: "c1", Arch: "arm64", Kernel: "/k", Initrd: "/i", Cmdline: "berth.x=1", CPUs: 2, MemoryMiB: 512,
		StateDir: "/s", ConsoleLog: "/logs/a,b.log", MAC: "02:00:00:00:00:01",
		Disks: []vmm.Disk{{Path: "/d/root,fs.img"}, {Path: "/d/ro.img", ReadOnly: true}}}
	m := &Machine{cfg: cfg, accel: "tcg", cid: 1234}
	line := strings.Join(m.args(true), " ")
	for _, want := range []string{
		"-M virt -accel tcg -cpu max,pauth=off -smp 2 -m 512",
		"-append berth.x=1 console=ttyAMA0 panic=-1 quiet",
		"path=/logs/a,,b.log",
		"file=/d/root,,fs.img,format=raw,if=none,id=disk0,cache=writeback,aio=threads,discard=unmap -device virtio-blk-pci,drive=disk0",
		"id=disk1,cache=writeback,aio=threads,discard=unmap,readonly=on",
		"virtio-net-pci,netdev=net0,romfile=,mac=02:00:00:00:00:01",
		"-device vhost-vsock-pci,guest-cid=1234",
		"-no-reboot", "-nodefaults", "-S",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "virtserialport") {
		t.Error("vsock VM also got a virtio-serial port")
	}

	cfg.Arch, cfg.Cmdline = "amd64", "loglevel=7"
	m = &Machine{cfg: cfg, accel: "kvm"}
	line = strings.Join(m.args(false), " ")
	for _, want := range []string{
		"-M q35 -accel kvm -cpu host",
		"-append loglevel=7 console=ttyS0 panic=-1 -chardev",
		"socket,id=agent0,reconnect=1,path=agent.sock -device virtserialport,chardev=agent0,id=agent0,name=berth.agent",
		"socket,id=qmp0,path=qmp.sock -mon chardev=qmp0,mode=control",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	if m := (&Machine{cfg: vmm.Config{Arch: "arm64"}, accel: "kvm"}); !strings.Contains(strings.Join(m.args(false), " "), "-M virt,gic-version=max") {
		t.Error("arm64 under KVM needs gic-version=max")
	}
}
