//go:build linux

package qemu

import (
	"slices"
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

// Shares put guest RAM in a shared memfd (virtiofsd maps it) and add one
// vhost-user-fs device per share; without shares none of that appears.
func TestShareArgs(t *testing.T) {
	for arch, machine := range map[string]string{"amd64": "-M q35,memory-backend=mem ", "arm64": "-M virt,memory-backend=mem "} {
		cfg := vmm.Config{ID: "c1", Arch: arch, Kernel: "/k", Initrd: "/i", CPUs: 1, MemoryMiB: 384, StateDir: "/s",
			Shares: []vmm.Share{{Tag: "vol,1", Path: "/a"}, {Tag: "ro", Path: "/b", ReadOnly: true}}}
		m := &Machine{cfg: cfg, accel: "tcg"}
		line := strings.Join(m.args(false), " ")
		for _, want := range []string{
			machine,
			"-m 384 ",
			"-object memory-backend-memfd,id=mem,size=384M,share=on",
			"-chardev socket,id=vfs0,path=vfs-0.sock -device vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=vol,,1",
			"-chardev socket,id=vfs1,path=vfs-1.sock -device vhost-user-fs-pci,queue-size=1024,chardev=vfs1,tag=ro",
		} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: args lack %q:\n%s", arch, want, line)
			}
		}
		m.cfg.Shares = nil
		line = strings.Join(m.args(false), " ")
		for _, not := range []string{"memory-backend", "vhost-user-fs", "vfs0"} {
			if strings.Contains(line, not) {
				t.Errorf("%s: a VM without shares has %q:\n%s", arch, not, line)
			}
		}
	}
}

// User networks add exactly one socket netdev and one virtio-net-pci per
// attachment, after every other device (so eth0, the NAT NIC, keeps the
// lowest PCI slot and the guest's first name), with fds from 3 up; without
// networks the command line is what it was.
func TestNetworkArgs(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for _, shares := range [][]vmm.Share{nil, {{Tag: "v", Path: "/a"}}} {
			cfg := vmm.Config{ID: "c1", Arch: arch, Kernel: "/k", Initrd: "/i", CPUs: 1, MemoryMiB: 256, StateDir: "/s",
				MAC: "02:00:00:00:00:01", Shares: shares, Disks: []vmm.Disk{{Path: "/d/root.img"}}}
			old := (&Machine{cfg: cfg, accel: "tcg"}).args(false)
			cfg.Networks = []vmm.NetworkAttachment{{MAC: "02:42:ac:1e:00:02"}, {MAC: "02:42:ac:1f:00:02"}}
			got := (&Machine{cfg: cfg, accel: "tcg"}).args(false)
			want := append(slices.Clone(old),
				"-netdev", "socket,id=net1,fd=3", "-device", "virtio-net-pci,netdev=net1,romfile=,mac=02:42:ac:1e:00:02",
				"-netdev", "socket,id=net2,fd=4", "-device", "virtio-net-pci,netdev=net2,romfile=,mac=02:42:ac:1f:00:02")
			if !slices.Equal(got, want) {
				t.Errorf("%s (shares %v):\n got %q\nwant %q", arch, shares, got, want)
			}
			for _, a := range old {
				if strings.Contains(a, "net1") || strings.Contains(a, "fd=") {
					t.Errorf("%s: a VM without networks has %q", arch, a)
				}
			}
			if i := slices.Index(got, "virtio-net-pci,netdev=net0,romfile=,mac=02:00:00:00:00:01"); i < 0 {
				t.Errorf("%s: eth0 (the NAT NIC) is gone: %q", arch, got)
			}
		}
	}
}
