package container

// The small interfaces the lifecycle consumes. Each is implemented by another
// package (image store, rootfs snapshots, kernel resolver, guest agent client)
// and wired together in app/engine, so this package can be read and tested on
// its own terms.

import (
	"context"
	"io"
	"net"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Images resolves an image reference to a local image (runtime/image.Store).
type Images interface {
	// Resolve returns the image for ref on platform and its manifest digest
	// ("sha256:…"). A missing image is an error that says so.
	Resolve(ctx context.Context, ref string, platform v1.Platform) (v1.Image, string, error)
}

// Rootfs turns an image into a per-container root disk (runtime/rootfs).
type Rootfs interface {
	// Snapshot returns the flattened ext4 of img, building it once per key.
	Snapshot(ctx context.Context, img v1.Image, key string) (path string, err error)
	// Clone makes dst a private, copy-on-write copy of snapshot.
	Clone(snapshot, dst string) error
}

// BootFiles is what a VM boots: the kernel, the initramfs with the agent as
// /init (plus the kernel's modules) and a base kernel command line.
type BootFiles struct {
	Kernel  string
	Initrd  string
	Cmdline string
}

// Kernels picks the boot files for a guest arch; override is a user-chosen
// kernel (--kernel) or "" for the default (runtime/kernel + guest/initramfs).
type Kernels interface {
	Boot(ctx context.Context, arch, override string) (BootFiles, error)
}

// GuestDialer opens the agent client over the channel returned by
// vmm.Machine.DialAgent (runtime/agent).
type GuestDialer func(ctx context.Context, conn net.Conn) (Guest, error)

// GuestSetup is what the agent prepares before the container's process runs.
type GuestSetup struct {
	Hostname string
	// RootDevice is the guest block device holding the container's ext4
	// ("/dev/vda").
	RootDevice string
	Hosts      []string // extra /etc/hosts lines
	DNS        []string
	// Mounts are bind mounts and volumes, served from the VM's virtiofs
	// shares (vmm.Config.Shares), in the order to mount them.
	Mounts []GuestMount
	// NoNAT leaves eth0 unconfigured (loopback only until user networks
	// are configured): --network none, or only --internal networks.
	NoNAT bool
	// EmbeddedDNS: the agent answers DNS on 127.0.0.11 from the hosts
	// entries (peers on user networks) and forwards the rest, as Docker
	// does for containers on user-defined networks.
	EmbeddedDNS bool
}

// GuestMount puts (part of) a virtiofs share at Target in the container,
// or, with Fstype "tmpfs", a fresh tmpfs.
type GuestMount struct {
	Tag      string // the share (vmm.Share.Tag); "" for tmpfs
	Sub      string // path inside the share ("" = all of it); may name a file
	Target   string // absolute path in the container
	ReadOnly bool
	// Fstype is "" for a bind from a share, "tmpfs" for a tmpfs mount.
	Fstype string `json:",omitempty"`
	// Options are the tmpfs mount's options ("size=65536k", "noexec").
	Options []string `json:",omitempty"`
	// Source is what the user named (host path, volume name or "tmpfs"),
	// for error messages.
	Source string `json:",omitempty"`
}

// GuestInfo is what the agent reports after setup.
type GuestInfo struct {
	IP        string // the container's own address (eth0), "" without network
	Gateway   string
	PrefixLen int
}

// ProcessSpec is one process to run in the container.
type ProcessSpec struct {
	Args []string
	Env  []string
	Cwd  string
	User string // "uid[:gid]" or a name resolved by the agent in the container's /etc/passwd
	Tty  bool
	// Initial terminal size when Tty.
	Rows, Cols uint
	// Stdio. Stdin nil means no stdin (the process reads EOF). With Tty,
	// output arrives on Stdout only.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is a process running in the guest.
type Process interface {
	// Wait blocks until the process exits and its output has been copied
	// out, and returns its exit status (128+signal when killed).
	Wait(ctx context.Context) (int, error)
	Signal(ctx context.Context, sig int) error
	Resize(ctx context.Context, rows, cols uint) error
	CloseStdin(ctx context.Context) error
	// Pid is the process's id inside the guest (0 if unknown).
	Pid() int
}

// GuestStats is one sample of the container's resource use.
type GuestStats struct {
	CPUUsageNanos   uint64 // total CPU time of the container's processes
	SystemCPUNanos  uint64 // total CPU time of the guest (all CPUs)
	OnlineCPUs      uint32
	MemoryUsage     uint64
	MemoryLimit     uint64
	Pids            uint64
	NetRxBytes      uint64
	NetTxBytes      uint64
	NetRxPackets    uint64
	NetTxPackets    uint64
	BlockReadBytes  uint64
	BlockWriteBytes uint64
	VMMemoryTotal   uint64 // the VM's RAM, the limit when the cgroup has none
}

// Guest is the agent of one booted VM, as the lifecycle uses it.
type Guest interface {
	Setup(ctx context.Context, s GuestSetup) (GuestInfo, error)
	// Start runs the container's main process (exec=false) or an extra
	// process in the same namespaces (exec=true).
	Start(ctx context.Context, spec ProcessSpec, exec bool) (Process, error)
	// PortForward opens a TCP connection to port inside the guest.
	PortForward(ctx context.Context, port int) (net.Conn, error)
	Stats(ctx context.Context) (GuestStats, error)
	// CopyIn extracts a tar stream into dir of the container's root.
	CopyIn(ctx context.Context, dir string, tar io.Reader) error
	// CopyOut writes path of the container's root as a tar stream.
	CopyOut(ctx context.Context, path string, w io.Writer) error
	// ConfigureInterface gives a user network's NIC (eth1, …) its static
	// address (CIDR).
	ConfigureInterface(ctx context.Context, iface, cidr string) error
	// SetHosts replaces the guest's extra /etc/hosts entries ("name:ip"
	// lines); the running container sees the new file at once.
	SetHosts(ctx context.Context, hosts []string) error
	// SetTime sets the guest's clock (after a pause it lags behind).
	SetTime(ctx context.Context, t time.Time) error
	// Sync flushes the guest's dirty pages to its disks (sync(2)), so the
	// host reads what the container wrote (docker diff, docker commit).
	Sync(ctx context.Context) error
	// Shutdown kills remaining processes, syncs and powers the VM off.
	Shutdown(ctx context.Context) error
	Close() error
}
