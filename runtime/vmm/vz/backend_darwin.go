//go:build darwin

package vz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"

	vzf "github.com/Code-Hex/vz/v3"

	"github.com/berth-dev/berth/runtime/vmm"
)

// The portable state mirror must match vz's numbering (compile-time check:
// the index is out of range unless the two constants are equal).
var (
	_ = [1]struct{}{}[vzf.VirtualMachineStateStopped-vzf.VirtualMachineState(stateStopped)]
	_ = [1]struct{}{}[vzf.VirtualMachineStateError-vzf.VirtualMachineState(stateError)]
	_ = [1]struct{}{}[vzf.VirtualMachineStateRestoring-vzf.VirtualMachineState(stateRestoring)]
)

// Backend boots VMs with Virtualization.framework. The process must be signed
// with the com.apple.security.virtualization entitlement.
type Backend struct{}

// New returns the vz backend.
func New() *Backend { return &Backend{} }

func (*Backend) Name() string { return "vz" }

// Start builds the VM the way vz's own tests and examples do (boot loader,
// configuration, devices, Validate, NewVirtualMachine, Start) and returns once
// the framework runs it.
func (*Backend) Start(ctx context.Context, cfg vmm.Config) (vmm.Machine, error) {
	lim := limitsFromBytes(vzf.VirtualMachineConfigurationMinimumAllowedCPUCount(), vzf.VirtualMachineConfigurationMaximumAllowedCPUCount(),
		vzf.VirtualMachineConfigurationMinimumAllowedMemorySize(), vzf.VirtualMachineConfigurationMaximumAllowedMemorySize())
	p, err := makePlan(cfg, lim, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	boot, err := vzf.NewLinuxBootLoader(p.Kernel, vzf.WithCommandLine(p.Cmdline), vzf.WithInitrd(p.Initrd))
	if err != nil {
		return nil, fmt.Errorf("vz: boot loader: %w", err)
	}
	config, err := vzf.NewVirtualMachineConfiguration(boot, p.CPUs, p.MemoryBytes)
	if err != nil {
		return nil, fmt.Errorf("vz: configuration: %w", err)
	}
	keep := []any{boot, config}

	// Console: the kernel writes to hvc0, the framework appends it to the log.
	if err := ensureFile(p.ConsoleLog); err != nil {
		return nil, err
	}
	serial, err := vzf.NewFileSerialPortAttachment(p.ConsoleLog, true)
	if err != nil {
		return nil, fmt.Errorf("vz: console log %s: %w", p.ConsoleLog, err)
	}
	console, err := vzf.NewVirtioConsoleDeviceSerialPortConfiguration(serial)
	if err != nil {
		return nil, fmt.Errorf("vz: console: %w", err)
	}
	config.SetSerialPortsVirtualMachineConfiguration([]*vzf.VirtioConsoleDeviceSerialPortConfiguration{console})
	keep = append(keep, serial, console)

	// Disks, in guest order (vda, vdb, …): cached + fsync, as lima, vfkit and
	// Apple's containerization do (uncached images have corrupted ext4 on arm64).
	var disks []vzf.StorageDeviceConfiguration
	for i, d := range p.Disks {
		att, err := vzf.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(d.Path, d.ReadOnly,
			vzf.DiskImageCachingModeCached, vzf.DiskImageSynchronizationModeFsync)
		if err != nil {
			return nil, fmt.Errorf("vz: disk %d (%s): %w", i, d.Path, err)
		}
		blk, err := vzf.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, fmt.Errorf("vz: disk %d: %w", i, err)
		}
		disks = append(disks, blk)
		keep = append(keep, att, blk)
	}
	config.SetStorageDevicesVirtualMachineConfiguration(disks)

	// Network: NAT on the shared vmnet bridge with a stable MAC, so the
	// container keeps its DHCP lease (and IP) across restarts.
	nat, err := vzf.NewNATNetworkDeviceAttachment()
	if err != nil {
		return nil, fmt.Errorf("vz: NAT: %w", err)
	}
	nic, err := vzf.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return nil, fmt.Errorf("vz: network device: %w", err)
	}
	mac, err := vzf.NewMACAddress(p.MAC)
	if err != nil {
		return nil, fmt.Errorf("vz: MAC %s: %w", p.MAC, err)
	}
	nic.SetMACAddress(mac)
	keep = append(keep, nat, nic, mac)
	// User networks after it, in order: the NAT NIC comes first so the
	// guest names it eth0, and Networks[i] is eth<i+1>.
	user, objs, err := userNetworks(p.Networks)
	if err != nil {
		return nil, err
	}
	config.SetNetworkDevicesVirtualMachineConfiguration(append([]*vzf.VirtioNetworkDeviceConfiguration{nic}, user...))
	keep = append(keep, objs...)

	entropy, err := vzf.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return nil, fmt.Errorf("vz: entropy device: %w", err)
	}
	config.SetEntropyDevicesVirtualMachineConfiguration([]*vzf.VirtioEntropyDeviceConfiguration{entropy})

	balloon, err := vzf.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
	if err != nil {
		return nil, fmt.Errorf("vz: memory balloon: %w", err)
	}
	config.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vzf.MemoryBalloonDeviceConfiguration{balloon})

	// The agent channel. At most one socket device per VM.
	vsock, err := vzf.NewVirtioSocketDeviceConfiguration()
	if err != nil {
		return nil, fmt.Errorf("vz: vsock device: %w", err)
	}
	config.SetSocketDevicesVirtualMachineConfiguration([]vzf.SocketDeviceConfiguration{vsock})
	keep = append(keep, entropy, balloon, vsock)

	// Shared directories (bind mounts, volumes) and Rosetta: virtiofs
	// devices, fixed for the VM's life (vz has no runtime share API).
	if len(p.Shares) > 0 {
		shares, objs, err := directoryShares(p.Shares)
		if err != nil {
			return nil, err
		}
		config.SetDirectorySharingDevicesVirtualMachineConfiguration(shares)
		keep = append(keep, objs...)
	}

	if ok, err := config.Validate(); !ok || err != nil {
		return nil, fmt.Errorf("vz: invalid VM configuration (is the binary signed with the com.apple.security.virtualization entitlement?): %v", err)
	}
	vm, err := vzf.NewVirtualMachine(config)
	if err != nil {
		return nil, fmt.Errorf("vz: %w", err)
	}
	keep = append(keep, vm)
	if !vm.CanStart() {
		return nil, errors.New("vz: the new VM cannot be started (state " + vm.State().String() + ")")
	}
	// Subscribe before Start so no transition is missed (the channel is
	// unbounded, so nothing blocks while we are busy).
	raw := vm.StateChangedNotify()
	if err := vm.Start(); err != nil {
		return nil, fmt.Errorf("vz: start: %w%s", err, tailNote(p.ConsoleLog))
	}
	states := make(chan vmState)
	go func() {
		defer close(states)
		for s := range raw {
			states <- vmState(s)
			if s == vzf.VirtualMachineStateStopped || s == vzf.VirtualMachineStateError {
				return
			}
		}
	}()
	hv := &vzHypervisor{vm: vm}
	return newMachine(hv, states, p.ConsoleLog, keep...), nil
}

// vzHypervisor adapts *vz.VirtualMachine to the portable machine logic.
type vzHypervisor struct{ vm *vzf.VirtualMachine }

func (h *vzHypervisor) connect(port uint32) (net.Conn, error) {
	devs := h.vm.SocketDevices()
	if len(devs) == 0 {
		return nil, errors.New("the VM has no vsock device")
	}
	conn, err := devs[0].Connect(port)
	if err != nil {
		return nil, err // not a nil *VirtioSocketConnection inside a non-nil net.Conn
	}
	return conn, nil
}

// retryable: the framework reports ECONNRESET (as an NSError in the POSIX
// domain) while no guest process listens on the port yet — the case vz's own
// tests retry with backoff. ECONNREFUSED is treated the same way.
func (h *vzHypervisor) retryable(err error) bool {
	var nserr *vzf.NSError
	if !errors.As(err, &nserr) {
		return false
	}
	return nserr.Code == int(syscall.ECONNRESET) || nserr.Code == int(syscall.ECONNREFUSED)
}

func (h *vzHypervisor) canStop() bool              { return h.vm.CanStop() }
func (h *vzHypervisor) stop() error                { return h.vm.Stop() }
func (h *vzHypervisor) requestStop() (bool, error) { return h.vm.RequestStop() }
func (h *vzHypervisor) canPause() bool             { return h.vm.CanPause() }
func (h *vzHypervisor) pause() error               { return h.vm.Pause() }
func (h *vzHypervisor) canResume() bool            { return h.vm.CanResume() }
func (h *vzHypervisor) resume() error              { return h.vm.Resume() }

var _ vmm.Backend = (*Backend)(nil)
var _ vmm.Machine = (*machine)(nil)
