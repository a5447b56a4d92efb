//go:build linux

package agent

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
	"github.com/berth-dev/berth/guest/dhcp"
)

// ConfigureNetwork brings up lo and the interface, then DHCP or a static
// address, a default route, and (with DHCP, unless SetupSystem set DNS)
// resolv.conf.
func (a *Agent) ConfigureNetwork(ctx context.Context, req *api.ConfigureNetworkRequest) (*api.ConfigureNetworkResponse, error) {
	if !a.cfg.PID1 {
		return nil, status.Error(codes.FailedPrecondition, "network: only the VM's init configures interfaces")
	}
	ifname := req.Interface
	if ifname == "" {
		ifname = "eth0"
	}
	if !req.Dhcp && req.Address == "" {
		return nil, status.Error(codes.InvalidArgument, "network: ask for dhcp or give a static address (CIDR)")
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "network: no interface %s in the VM (is virtio_net loaded?): %v", ifname, err)
	}
	if req.Mtu > 0 {
		if err := netlink.LinkSetMTU(link, int(req.Mtu)); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "network: mtu %d: %v", req.Mtu, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, status.Errorf(codes.Internal, "network: bringing %s up: %v", ifname, err)
	}
	resp := &api.ConfigureNetworkResponse{Interface: ifname, Mac: link.Attrs().HardwareAddr.String()}
	// A new configuration of this interface replaces whatever kept its
	// last lease (other interfaces keep theirs).
	a.mu.Lock()
	if stop := a.stopLease[ifname]; stop != nil {
		stop()
		delete(a.stopLease, ifname)
	}
	a.mu.Unlock()
	if req.Dhcp {
		timeout := time.Duration(req.DhcpTimeoutMs) * time.Millisecond
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		client := &dhcp.Client{Interface: ifname, MAC: link.Attrs().HardwareAddr}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		lease, err := client.Acquire(dctx)
		cancel()
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "network: DHCP on %s: %v", ifname, err)
		}
		if err := a.applyLease(link, nil, lease); err != nil {
			return nil, status.Errorf(codes.Internal, "network: %v", err)
		}
		resp.Address, resp.LeaseSeconds, resp.DnsServers = lease.Addr.String(), uint32(lease.Duration/time.Second), ipStrings(lease.DNS)
		if lease.Router != nil {
			resp.Gateway = lease.Router.String()
		}
		// Keep the lease for the VM's life: renew, rebind, and on loss
		// drop the address and acquire a new one.
		kctx, stop := context.WithCancel(context.Background())
		a.mu.Lock()
		if a.stopLease == nil {
			a.stopLease = map[string]func(){}
		}
		a.stopLease[ifname] = stop
		a.mu.Unlock()
		go client.Keep(kctx, lease, func(event string, old, new *dhcp.Lease) error {
			if (event != dhcp.Renewed && event != dhcp.Rebound) || !sameLease(old, new) {
				a.cfg.Logf("berth-agent: dhcp %s: %s %v", ifname, event, new)
			}
			return a.applyLease(link, old, new)
		}, a.cfg.Logf)
		return resp, nil
	}
	ip, n, err := net.ParseCIDR(req.Address)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "network: address %q is not CIDR (10.0.2.15/24)", req.Address)
	}
	addr := &net.IPNet{IP: ip, Mask: n.Mask}
	var gw net.IP
	if req.Gateway != "" {
		if gw = net.ParseIP(req.Gateway); gw == nil {
			return nil, status.Errorf(codes.InvalidArgument, "network: gateway %q is not an IP address", req.Gateway)
		}
	}
	if err := dhcp.SetAddress(link, addr, gw); err != nil {
		return nil, status.Errorf(codes.Internal, "network: %v", err)
	}
	resp.Address = addr.String()
	if gw != nil {
		resp.Gateway = gw.String()
	}
	return resp, nil
}

// applyLease moves the interface from lease old to new (either may be nil)
// and, unless SetupSystem set DNS, points /etc/resolv.conf at new's servers.
func (a *Agent) applyLease(link netlink.Link, old, new *dhcp.Lease) error {
	if err := dhcp.Apply(link.Attrs().Name, old, new); err != nil || new == nil {
		return err
	}
	a.mu.Lock()
	changed := !a.sys.dnsFromAPI && !slices.Equal(a.sys.dns, ipStrings(new.DNS))
	if changed {
		a.sys.dns = ipStrings(new.DNS)
	}
	a.mu.Unlock()
	if changed {
		if err := a.writeEtc(); err != nil {
			a.warn("resolv.conf: %v", err)
		}
	}
	return nil
}

// sameLease reports whether a renewal changed nothing the VM can see.
func sameLease(a, b *dhcp.Lease) bool {
	return a != nil && b != nil && a.Addr.String() == b.Addr.String() && a.Router.Equal(b.Router) &&
		slices.Equal(ipStrings(a.DNS), ipStrings(b.DNS))
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}
