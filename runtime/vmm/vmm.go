// Package vmm is the seam between the container runtime and a hypervisor.
//
// A Backend boots one Linux VM per container from a kernel, an initramfs whose
// /init is Berth's guest agent, and the container's ext4 root disk. The
// runtime never talks to the hypervisor otherwise: the agent channel returned
// by DialAgent (vsock port 1024 on Virtualization.framework, a virtio-serial
// port under QEMU) carries everything else.
//
// Implementations: runtime/vmm/qemu (Linux, what every test boots) and
// runtime/vmm/vz (macOS, Virtualization.framework).
package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// AgentPort is the vsock port the guest agent listens on.
const AgentPort = 1024

// AgentSerialName is the name of the virtio-serial port that carries the
// agent channel when vsock is not available.
const AgentSerialName = "berth.agent"

// Disk is one virtio-blk device, in guest order (vda, vdb, …).
type Disk struct {
	Path     string // raw image file
	ReadOnly bool
}

// Share is one host directory the guest mounts over virtiofs by Tag
// (vz: VirtioFileSystemDevice; QEMU: vhost-user-fs with virtiofsd).
type Share struct {
	Tag      string // the virtiofs tag the guest mounts (at most 36 bytes)
	Path     string // host directory, absolute
	ReadOnly bool
}

// NetworkAttachment is one more NIC (eth1, eth2, … in order) on a
// user-defined network: the VM's end of a datagram socket whose peer is the
// network's switch (runtime/netswitch), one Ethernet frame per datagram.
// QEMU takes it as `-netdev socket,fd=N`, vz as a
// VZFileHandleNetworkDeviceAttachment. The backend dups what it needs;
// the caller closes File after Start returns.
type NetworkAttachment struct {
	File *os.File
	MAC  string // "02:…", stable per container and network
}

// MaxShareTag is the longest virtiofs tag (the virtio-fs config field).
const MaxShareTag = 36

// Config describes one VM. Paths are absolute.
type Config struct {
	ID        string // the container ID; names the VM and seeds its stable MAC
	Arch      string // guest architecture, GOARCH spelling ("amd64", "arm64")
	Kernel    string // kernel image (uncompressed arm64 Image for vz)
	Initrd    string // initramfs with the agent as /init
	Cmdline   string // kernel command line (the backend appends its console= setting)
	CPUs      int
	MemoryMiB int
	Disks     []Disk
	// StateDir is a per-VM directory the backend may use for sockets, pid
	// files and the like. It exists before Start is called.
	StateDir string
	// ConsoleLog receives the guest's serial console (kernel messages).
	ConsoleLog string
	// MAC is the NIC's stable address ("02:…"); see StableMAC.
	MAC string
	// Rosetta shares Apple's Rosetta translator for linux/amd64 images on
	// Apple silicon (vz only; other backends refuse it).
	Rosetta bool
	// Shares are host directories exposed over virtiofs (bind mounts and
	// named volumes); the agent mounts them where the container wants.
	Shares []Share
	// Networks are NICs after the default one (eth0, NAT to the host and
	// the internet), in order: eth1, eth2, …
	Networks []NetworkAttachment
}

// Validate reports a Config that no backend could boot.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("vm config: empty ID")
	case c.Kernel == "":
		return errors.New("vm config: no kernel")
	case c.Initrd == "":
		return errors.New("vm config: no initramfs")
	case c.CPUs < 1:
		return errors.New("vm config: at least 1 CPU is needed")
	case c.MemoryMiB < 64:
		return errors.New("vm config: at least 64 MiB of memory is needed to boot a VM")
	case c.StateDir == "":
		return errors.New("vm config: no state directory")
	}
	tags := map[string]bool{}
	for _, sh := range c.Shares {
		switch {
		case sh.Tag == "" || len(sh.Tag) > MaxShareTag:
			return fmt.Errorf("vm config: share tag %q: 1 to %d bytes", sh.Tag, MaxShareTag)
		case tags[sh.Tag]:
			return fmt.Errorf("vm config: share tag %q used twice", sh.Tag)
		case !filepath.IsAbs(sh.Path):
			return fmt.Errorf("vm config: share %q: path %q is not absolute", sh.Tag, sh.Path)
		}
		tags[sh.Tag] = true
	}
	return nil
}

// Backend starts VMs.
type Backend interface {
	// Name is a short identifier ("qemu", "vz").
	Name() string
	// Start boots the VM and returns once the hypervisor runs it (not once
	// the guest is ready: use Machine.DialAgent for that).
	Start(ctx context.Context, cfg Config) (Machine, error)
}

// Machine is one running VM.
type Machine interface {
	// DialAgent returns the agent channel, retrying until the guest listens
	// or ctx ends. Under virtio-serial there is exactly one channel per VM
	// boot; callers multiplex over it (gRPC does).
	DialAgent(ctx context.Context) (net.Conn, error)
	// Done is closed when the VM has stopped, for any reason.
	Done() <-chan struct{}
	// Err is why the VM stopped (nil for a clean guest power-off); valid
	// after Done is closed.
	Err() error
	// Kill stops the VM at once (the guest gets no say). Graceful stops go
	// through the agent's Shutdown call, after which the VM powers off.
	Kill() error
	// PID is the host process running the VM when there is one (QEMU), for
	// reconciling after an engine crash; 0 otherwise.
	PID() int
	// Pause freezes the VM: its vCPUs stop, its memory and devices stay
	// (docker pause). Resume lets it run again. The guest's clock falls
	// behind by the paused time; callers set it again after Resume.
	Pause() error
	Resume() error
}
