//go:build linux

package qemu

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/berth-dev/berth/runtime/vmm"
)

// MaxNetworks is how many user-network NICs (eth1…) one VM takes. Each is a
// PCI device on the root bus, which it shares with the disks, the shares
// and the fixed devices; 8 leaves room for those on q35 and virt alike.
const MaxNetworks = 8

// firstNetFD is the fd QEMU sees cfg.Networks[0] as: exec's ExtraFiles
// start at 3 and nothing else is passed to QEMU (virtiofsd gets its
// listening sockets in its own process; QEMU dials those by path).
const firstNetFD = 3

// checkNetworks reports an attachment QEMU could not use, before anything
// starts: QEMU would only say "invalid fd" or reject the MAC on stderr.
func checkNetworks(cfg vmm.Config) error {
	if len(cfg.Networks) > MaxNetworks {
		return fmt.Errorf("vm config: %d networks, at most %d per container: disconnect some", len(cfg.Networks), MaxNetworks)
	}
	seen := map[string]int{}
	if mac, err := net.ParseMAC(cfg.MAC); err == nil {
		seen[mac.String()] = 0
	}
	for i, n := range cfg.Networks {
		eth := fmt.Sprintf("network %d (eth%d)", i+1, i+1)
		mac, err := net.ParseMAC(n.MAC)
		switch {
		case err != nil || len(mac) != 6:
			return fmt.Errorf("vm config: %s: bad MAC address %q: want six colon-separated hex bytes (02:…)", eth, n.MAC)
		case mac[0]&1 != 0:
			return fmt.Errorf("vm config: %s: MAC %s is a multicast address: use a unicast one (first byte even, e.g. 02:…)", eth, n.MAC)
		case isZero(mac):
			return fmt.Errorf("vm config: %s: MAC 00:00:00:00:00:00 is not an address: derive one per container and network", eth)
		}
		if j, dup := seen[mac.String()]; dup {
			return fmt.Errorf("vm config: %s: MAC %s is already eth%d's: every NIC needs its own", eth, n.MAC, j)
		}
		seen[mac.String()] = i + 1
		if n.File == nil {
			return fmt.Errorf("vm config: %s: no socket: attach the container to the network's switch first", eth)
		}
		// A stream socket or a plain file would start QEMU and then carry
		// nothing (or QEMU's own framing); say so now.
		typ, err := syscall.GetsockoptInt(int(n.File.Fd()), syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err != nil || typ != syscall.SOCK_DGRAM {
			return fmt.Errorf("vm config: %s: %s is not a datagram socket (want the VM's end from netswitch.Attach)", eth, n.File.Name())
		}
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// netFiles are the files QEMU inherits, fd firstNetFD+i for Networks[i].
func netFiles(cfg vmm.Config) []*os.File {
	var fs []*os.File
	for _, n := range cfg.Networks {
		fs = append(fs, n.File)
	}
	return fs
}

// networkArgs are the user-network NICs. They come after every other
// device on the command line, so they get later PCI slots than eth0 (the
// NAT NIC): the guest kernel names NICs in bus order, so eth0 stays the NAT
// one and Networks[i] is eth<i+1>. romfile= as for eth0: nothing boots
// from them.
func (m *Machine) networkArgs() []string {
	var a []string
	for i, n := range m.cfg.Networks {
		id := fmt.Sprintf("net%d", i+1)
		a = append(a,
			// socket with a datagram fd: QEMU sends and receives one frame
			// per datagram, which is the switch's protocol.
			"-netdev", fmt.Sprintf("socket,id=%s,fd=%d", id, firstNetFD+i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,romfile=,mac=%s", id, n.MAC),
		)
	}
	return a
}
