package vz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/berth-dev/berth/runtime/vmm"
)

// Limits are what Virtualization.framework allows on this host
// (VZVirtualMachineConfiguration's minimum/maximum CPU count and memory size).
type Limits struct {
	MinCPUs, MaxCPUs           uint
	MinMemoryMiB, MaxMemoryMiB uint64
}

// plan is a vmm.Config checked and translated into what the vz calls take.
type plan struct {
	Kernel, Initrd, Cmdline string
	CPUs                    uint
	MemoryBytes             uint64 // a whole number of MiB, as VZ requires
	Disks                   []vmm.Disk
	ConsoleLog              string
	MAC                     net.HardwareAddr
	Rosetta                 bool
	// Shares are the virtiofs devices, in device order: the config's
	// shares, then Rosetta's when asked for (see shareDevices).
	Shares []shareDevice
	// Networks are the user-network NICs after the NAT one (eth1, …).
	Networks []userNIC
	Clamped  []string // human-readable notes about CPU/memory adjustments
}

// makePlan validates cfg for a host of architecture hostArch (GOARCH spelling)
// and clamps CPUs and memory into lim. It reads the kernel's header to refuse
// a compressed arm64 kernel up front, with an error that says what to do,
// instead of a guest that never prints a line.
func makePlan(cfg vmm.Config, lim Limits, hostArch string) (plan, error) {
	if err := cfg.Validate(); err != nil {
		return plan{}, err
	}
	if cfg.Arch != "" && cfg.Arch != hostArch {
		return plan{}, fmt.Errorf("vz: cannot run a linux/%s VM on a %s Mac (Virtualization.framework runs the host's architecture; use Rosetta for linux/amd64 programs in an arm64 VM)", cfg.Arch, hostArch)
	}
	if cfg.Rosetta && hostArch != "arm64" {
		return plan{}, errors.New("vz: Rosetta is only available on Apple silicon")
	}
	if cfg.ConsoleLog == "" {
		return plan{}, errors.New("vm config: no console log path")
	}
	for _, f := range []struct{ what, path string }{{"kernel", cfg.Kernel}, {"initramfs", cfg.Initrd}} {
		if _, err := os.Stat(f.path); err != nil {
			return plan{}, fmt.Errorf("vz: %s %s: %w", f.what, f.path, err)
		}
	}
	if hostArch == "arm64" {
		if err := checkArm64Image(cfg.Kernel); err != nil {
			return plan{}, err
		}
	}
	for i, d := range cfg.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return plan{}, fmt.Errorf("vz: disk %d: %w", i, err)
		}
	}
	shares, err := shareDevices(cfg.Shares, cfg.Rosetta)
	if err != nil {
		return plan{}, err
	}
	macStr := cfg.MAC
	if macStr == "" {
		macStr = vmm.StableMAC(cfg.ID)
	}
	mac, err := net.ParseMAC(macStr)
	if err != nil || len(mac) != 6 {
		return plan{}, fmt.Errorf("vm config: bad MAC address %q: want six colon-separated hex bytes", macStr)
	}
	if mac[0]&0x01 != 0 {
		return plan{}, fmt.Errorf("vm config: MAC address %s is a multicast address; use a unicast one (see vmm.StableMAC)", macStr)
	}
	nets, err := userNICs(cfg.Networks, mac)
	if err != nil {
		return plan{}, err
	}

	p := plan{
		Kernel:     cfg.Kernel,
		Initrd:     cfg.Initrd,
		Cmdline:    cmdline(cfg.Cmdline),
		Disks:      cfg.Disks,
		ConsoleLog: cfg.ConsoleLog,
		MAC:        mac,
		Rosetta:    cfg.Rosetta,
		Shares:     shares,
		Networks:   nets,
	}
	p.CPUs, p.MemoryBytes, p.Clamped = clamp(uint(cfg.CPUs), uint64(cfg.MemoryMiB), lim)
	return p, nil
}

// clamp fits the requested shape into the host's limits. Asking for more CPUs
// than the Mac has is common (a default copied from another machine) and not
// worth refusing; it is noted so the caller can log it.
func clamp(cpus uint, memMiB uint64, lim Limits) (uint, uint64, []string) {
	var notes []string
	if lim.MinCPUs > 0 && cpus < lim.MinCPUs {
		notes = append(notes, fmt.Sprintf("CPUs raised from %d to the minimum %d", cpus, lim.MinCPUs))
		cpus = lim.MinCPUs
	}
	if lim.MaxCPUs > 0 && cpus > lim.MaxCPUs {
		notes = append(notes, fmt.Sprintf("CPUs lowered from %d to the maximum %d", cpus, lim.MaxCPUs))
		cpus = lim.MaxCPUs
	}
	if lim.MinMemoryMiB > 0 && memMiB < lim.MinMemoryMiB {
		notes = append(notes, fmt.Sprintf("memory raised from %d MiB to the minimum %d MiB", memMiB, lim.MinMemoryMiB))
		memMiB = lim.MinMemoryMiB
	}
	if lim.MaxMemoryMiB > 0 && memMiB > lim.MaxMemoryMiB {
		notes = append(notes, fmt.Sprintf("memory lowered from %d MiB to the maximum %d MiB", memMiB, lim.MaxMemoryMiB))
		memMiB = lim.MaxMemoryMiB
	}
	return cpus, memMiB << 20, notes
}

// limitsFromBytes converts the framework's byte limits to whole MiB (rounding
// the minimum up and the maximum down, so the clamped size stays allowed).
func limitsFromBytes(minCPU, maxCPU uint, minMem, maxMem uint64) Limits {
	const mib = 1 << 20
	return Limits{MinCPUs: minCPU, MaxCPUs: maxCPU, MinMemoryMiB: (minMem + mib - 1) / mib, MaxMemoryMiB: maxMem / mib}
}

// cmdline appends the console the backend's virtio console needs (hvc0),
// unless it is there already. It goes last because Linux makes the last
// console= the one /dev/console refers to (kernel messages go to all), so a
// QEMU-style console=ttyAMA0 left in the command line cannot hide the log.
func cmdline(s string) string {
	s = strings.TrimSpace(s)
	for _, f := range strings.Fields(s) {
		if f == "console=hvc0" {
			return s
		}
	}
	if s == "" {
		return "console=hvc0"
	}
	return s + " console=hvc0"
}

// checkArm64Image refuses kernels VZLinuxBootLoader cannot boot on Apple
// silicon: it takes only an uncompressed arm64 Image, whose header carries the
// magic "ARM\x64" at offset 0x38 (Documentation/arch/arm64/booting.rst).
func checkArm64Image(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("vz: kernel: %w", err)
	}
	defer f.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("vz: kernel %s: %w", path, err)
	}
	return classifyArm64Image(path, head[:n])
}

func classifyArm64Image(path string, head []byte) error {
	switch {
	case len(head) >= 64 && bytes.Equal(head[0x38:0x3c], []byte("ARM\x64")):
		return nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return fmt.Errorf("vz: kernel %s is gzip-compressed; Virtualization.framework needs an uncompressed arm64 Image (gunzip it, or use the default kernel)", path)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return fmt.Errorf("vz: kernel %s is zstd-compressed; Virtualization.framework needs an uncompressed arm64 Image (unzstd it, or use the default kernel)", path)
	case len(head) >= 8 && bytes.Equal(head[:2], []byte("MZ")) && bytes.Equal(head[4:8], []byte("zimg")):
		return fmt.Errorf("vz: kernel %s is an EFI zboot (compressed) image; Virtualization.framework needs an uncompressed arm64 Image", path)
	default:
		return fmt.Errorf("vz: kernel %s is not an arm64 Linux Image (no ARM\\x64 magic at offset 0x38)", path)
	}
}

// RosettaTag is the virtiofs tag under which the VM sees Apple's Rosetta
// translator when vmm.Config.Rosetta is set; the guest mounts it and
// registers it with binfmt_misc for x86-64 ELF binaries.
const RosettaTag = "rosetta"

// shareDevice is one VZVirtioFileSystemDeviceConfiguration: a host
// directory, or (Rosetta) Apple's translator share.
type shareDevice struct {
	Tag      string
	Path     string // empty for Rosetta
	ReadOnly bool
	Rosetta  bool
}

// shareDevices checks the config's shares and lists the devices to create.
// The framework itself would refuse a missing directory only as an opaque
// NSError from Validate, or accept a file and fail in the guest's mount; both
// are caught here with the share's tag. RosettaTag is reserved whether or not
// this VM asks for Rosetta, so a tag means the same thing in every VM.
func shareDevices(shares []vmm.Share, rosetta bool) ([]shareDevice, error) {
	var devs []shareDevice
	for _, sh := range shares {
		if sh.Tag == RosettaTag {
			return nil, fmt.Errorf("vz: share tag %q is reserved for Rosetta: choose another tag", sh.Tag)
		}
		fi, err := os.Stat(sh.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("vz: share %q: %s does not exist: create it or fix the path", sh.Tag, sh.Path)
		} else if err != nil {
			return nil, fmt.Errorf("vz: share %q: %w", sh.Tag, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("vz: share %q: %s is not a directory (virtiofs shares directories; share the file's directory)", sh.Tag, sh.Path)
		}
		devs = append(devs, shareDevice{Tag: sh.Tag, Path: sh.Path, ReadOnly: sh.ReadOnly})
	}
	if rosetta {
		devs = append(devs, shareDevice{Tag: RosettaTag, Rosetta: true})
	}
	return devs, nil
}

// ensureFile creates path (empty) if it does not exist, so the framework's
// file serial attachment can append to it.
func ensureFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("vz: console log: %w", err)
	}
	return f.Close()
}

// MaxNetworks is how many user-network NICs (eth1…) one VM takes, the same
// limit as the QEMU backend's, so a container that runs on one runs on the
// other.
const MaxNetworks = 8

// userNIC is one VZFileHandleNetworkDeviceAttachment on a virtio-net device.
type userNIC struct {
	File *os.File // the caller's; the darwin code dups it (see userNetworks)
	MAC  net.HardwareAddr
}

// userNICs checks the user networks. The framework would take a bad MAC only
// as an opaque NSError (or a duplicate one silently, leaving two NICs
// answering for one address), so each is checked here with the NIC it
// belongs to. Whether File is a datagram socket vz checks itself.
func userNICs(nets []vmm.NetworkAttachment, eth0 net.HardwareAddr) ([]userNIC, error) {
	if len(nets) > MaxNetworks {
		return nil, fmt.Errorf("vm config: %d networks, at most %d per container: disconnect some", len(nets), MaxNetworks)
	}
	seen := map[string]int{eth0.String(): 0}
	var out []userNIC
	for i, n := range nets {
		eth := fmt.Sprintf("network %d (eth%d)", i+1, i+1)
		mac, err := net.ParseMAC(n.MAC)
		switch {
		case err != nil || len(mac) != 6:
			return nil, fmt.Errorf("vm config: %s: bad MAC address %q: want six colon-separated hex bytes (02:…)", eth, n.MAC)
		case mac[0]&1 != 0:
			return nil, fmt.Errorf("vm config: %s: MAC %s is a multicast address: use a unicast one (first byte even, e.g. 02:…)", eth, n.MAC)
		case bytes.Equal(mac, make([]byte, 6)):
			return nil, fmt.Errorf("vm config: %s: MAC 00:00:00:00:00:00 is not an address: derive one per container and network", eth)
		}
		if j, dup := seen[mac.String()]; dup {
			return nil, fmt.Errorf("vm config: %s: MAC %s is already eth%d's: every NIC needs its own", eth, n.MAC, j)
		}
		seen[mac.String()] = i + 1
		if n.File == nil {
			return nil, fmt.Errorf("vm config: %s: no socket: attach the container to the network's switch first", eth)
		}
		out = append(out, userNIC{File: n.File, MAC: mac})
	}
	return out, nil
}
