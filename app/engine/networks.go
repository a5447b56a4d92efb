package engine

import (
	"net/netip"
	"os"
	"runtime"

	"github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/network"
)

// networkStore adapts runtime/network's store to the container manager's
// seam (the manager needs only the subnet facts, addresses and switch ports).
type networkStore struct{ s *network.Store }

func (n networkStore) Lookup(ref string) (container.NetworkInfo, error) {
	nw, err := n.s.Get(ref)
	if err != nil {
		return container.NetworkInfo{}, err
	}
	return container.NetworkInfo{ID: nw.ID, Name: nw.Name, Subnet: nw.Subnet, Gateway: nw.Gateway, Internal: nw.Internal}, nil
}

func (n networkStore) Allocate(netID, ctr string, want netip.Addr) (netip.Addr, error) {
	return n.s.Allocate(netID, ctr, want)
}

func (n networkStore) Release(netID, ctr string) error { return n.s.Release(netID, ctr) }

func (n networkStore) Attach(netID, port string) (*os.File, error) { return n.s.Attach(netID, port) }

func (n networkStore) Detach(netID, port string) { n.s.Detach(netID, port) }

// DefaultSubnet is the subnet of every VM's own NAT eth0, which docker
// network inspect bridge shows: QEMU user networking's on Linux,
// Virtualization.framework's NAT on a Mac.
func (e *Engine) DefaultSubnet() netip.Prefix {
	if runtime.GOOS == "darwin" {
		return netip.MustParsePrefix("192.168.64.0/24")
	}
	return netip.MustParsePrefix("10.0.2.0/24")
}
