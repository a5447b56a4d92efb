//go:build linux

package agent

import (
	"context"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
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
	var addr *net.IPNet
	var gw net.IP
	if req.Dhcp {
		timeout := time.Duration(req.DhcpTimeoutMs) * time.Millisecond
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		lease, err := dhcp(dctx, ifname, link.Attrs().HardwareAddr)
		cancel()
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "network: DHCP on %s: %v", ifname, err)
		}
		addr, gw = lease.addr, lease.router
		resp.LeaseSeconds = lease.leaseSecs
		for _, d := range lease.dns {
			resp.DnsServers = append(resp.DnsServers, d.String())
		}
		a.mu.Lock()
		if !a.sys.dnsFromAPI {
			a.sys.dns = resp.DnsServers
		}
		a.mu.Unlock()
		if err := a.writeEtc(); err != nil {
			a.warn("resolv.conf: %v", err)
		}
	} else {
		ip, n, err := net.ParseCIDR(req.Address)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "network: address %q is not CIDR (10.0.2.15/24)", req.Address)
		}
		addr = &net.IPNet{IP: ip, Mask: n.Mask}
		if req.Gateway != "" {
			if gw = net.ParseIP(req.Gateway); gw == nil {
				return nil, status.Errorf(codes.InvalidArgument, "network: gateway %q is not an IP address", req.Gateway)
			}
		}
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: addr}); err != nil {
		return nil, status.Errorf(codes.Internal, "network: address %s on %s: %v", addr, ifname, err)
	}
	resp.Address = addr.String()
	if gw != nil {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}
		if err := netlink.RouteReplace(route); err != nil {
			return nil, status.Errorf(codes.Internal, "network: default route via %s: %v", gw, err)
		}
		resp.Gateway = gw.String()
	}
	return resp, nil
}
