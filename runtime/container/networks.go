package container

// User-defined networks (docker network create; --network NAME; compose).
//
// Every VM keeps its eth0 (NAT to the host and the internet, -p ports).
// Each user network the container is on adds one more NIC (eth1, eth2, …
// in the record's order), plugged into that network's switch
// (runtime/netswitch via the Networks seam) and given the container's
// address on the network by the agent, statically: the network store is
// the DHCP server's equivalent, and its allocations persist so a container
// keeps its address across restarts.
//
// Names resolve through /etc/hosts, not a DNS server: when a container's
// networks come up, its hosts file gets every running member of its
// networks (container name, aliases, short ID), and every running member
// gets the newcomer; when it stops, the others drop it. hostsMu serializes
// those updates so two containers booting at once both end up in each
// other's files.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/runtime/vmm"
)

// NetworkInfo is one user network as the container manager needs it.
type NetworkInfo struct {
	ID, Name string
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Internal bool // docker network create --internal: no way out
}

// Networks is the user-network store (runtime/network, adapted in
// app/engine).
type Networks interface {
	// Lookup resolves a network name, ID or unique ID prefix.
	Lookup(ref string) (NetworkInfo, error)
	// Allocate gives container ctr an address on the network (want if
	// valid); a container that has one keeps it.
	Allocate(netID, ctr string, want netip.Addr) (netip.Addr, error)
	// Release returns ctr's address (idempotent).
	Release(netID, ctr string) error
	// Attach plugs a VM into the network's switch as port; the caller
	// passes the file to the VM and closes it after the VM started.
	Attach(netID, port string) (*os.File, error)
	Detach(netID, port string)
}

// netAttachment is one user network of a container, in NIC order.
type netAttachment struct {
	NetworkID string     `json:"networkId"`
	Name      string     `json:"name"`
	Aliases   []string   `json:"aliases,omitempty"`
	IP        netip.Addr `json:"ip"`
	PrefixLen int        `json:"prefixLen"`
	Gateway   netip.Addr `json:"gateway"`
	// IPAMAddress is the address asked for (--ip), kept to show it back.
	IPAMAddress netip.Addr `json:"ipamAddress,omitzero"`
	// Internal: the network was created --internal (see withoutNAT).
	Internal bool `json:"internal,omitempty"`
}

// withoutNAT reports whether r's VM must stay off the NAT network (eth0
// unconfigured, so no way to the host or the internet): --network none, or
// user networks that are all --internal, as Docker isolates them.
func withoutNAT(r *record) bool {
	if r.HostConfig.NetworkMode == "none" {
		return true
	}
	if len(r.Networks) == 0 {
		return false
	}
	for _, a := range r.Networks {
		if !a.Internal {
			return false
		}
	}
	return true
}

// mac is the NIC's address on this network: stable per container and
// network, so a restarted container's peers keep their ARP entries valid.
func (a netAttachment) mac(ctrID string) string { return vmm.StableMAC(ctrID + "/" + a.NetworkID) }

// netRequest is one network a create or connect asks for.
type netRequest struct {
	ref     string
	aliases []string
	ip      netip.Addr
}

// isDefaultNetwork: the names of each VM's own NAT eth0.
func isDefaultNetwork(name string) bool {
	return name == "" || name == "default" || name == "bridge"
}

// checkNetworkMode refuses the modes a VM cannot have.
func checkNetworkMode(mode string) error {
	switch {
	case mode == "host":
		return errf(ErrNotImplemented, "--network host is not supported by Berth: each container is its own VM with its own network stack; publish ports with -p instead")
	case strings.HasPrefix(mode, "container:"):
		return errf(ErrNotImplemented, "--network %s is not supported by Berth: containers are separate VMs and cannot share a network stack; put both on a user network (docker network create) instead", mode)
	}
	return nil
}

// endpointRequest checks one endpoint's settings and turns it into a request.
func endpointRequest(name string, ep *network.EndpointSettings) (netRequest, error) {
	req := netRequest{ref: name}
	if ep == nil {
		return req, nil
	}
	switch {
	case len(ep.Links) > 0:
		return req, errf(ErrNotImplemented, "--link is not supported by Berth: containers on the same user network reach each other by name")
	case len(ep.DriverOpts) > 0:
		return req, errf(ErrNotImplemented, "network driver options (--network %s,driver-opt=…) are not supported by Berth", name)
	case len(ep.MacAddress) > 0:
		return req, errf(ErrNotImplemented, "--mac-address is not supported by Berth: each NIC's address is derived from the container and network")
	case ep.IPAMConfig != nil && (ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0):
		return req, errf(ErrNotImplemented, "--ip6 and --link-local-ip are not supported by Berth: user networks are IPv4")
	}
	for _, a := range ep.Aliases {
		if a == "" || strings.ContainsAny(a, " \t\n#/:") {
			return req, errf(ErrInvalid, "invalid network alias %q: use a host name (letters, digits, dots, dashes, underscores)", a)
		}
	}
	req.aliases = slices.Clone(ep.Aliases)
	if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		req.ip = ep.IPAMConfig.IPv4Address
	} else if ep.IPAddress.IsValid() {
		req.ip = ep.IPAddress
	}
	if isDefaultNetwork(name) && (len(req.aliases) > 0 || req.ip.IsValid()) {
		return req, errf(ErrInvalid, "network-scoped aliases and --ip are only supported on user-defined networks (docker network create), not on the default network")
	}
	return req, nil
}

// planNetworks lists the user networks a create asks for: --network
// (HostConfig.NetworkMode) first, then the other endpoints, sorted by name
// (the API sends a map; a stable order keeps eth1, eth2, … stable).
func planNetworks(hc *container.HostConfig, nc *network.NetworkingConfig) ([]netRequest, error) {
	mode := string(hc.NetworkMode)
	if err := checkNetworkMode(mode); err != nil {
		return nil, err
	}
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	if mode == "none" {
		for name := range eps {
			if name != "none" {
				return nil, errf(ErrInvalid, "a container on --network none cannot also join network %s", name)
			}
		}
		return nil, nil // loopback only (withoutNAT)
	}
	var out []netRequest
	if !isDefaultNetwork(mode) {
		req, err := endpointRequest(mode, eps[mode])
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	names := make([]string, 0, len(eps))
	for name := range eps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == mode {
			continue
		}
		if name == "none" {
			return nil, errf(ErrInvalid, "--network none cannot be combined with other networks")
		}
		if err := checkNetworkMode(name); err != nil {
			return nil, err
		}
		req, err := endpointRequest(name, eps[name])
		if err != nil {
			return nil, err
		}
		if isDefaultNetwork(name) {
			continue // eth0: every container has it
		}
		out = append(out, req)
	}
	return out, nil
}

// allocateNetworks resolves and allocates addresses for reqs (create,
// connect). On error nothing stays allocated.
func (m *Manager) allocateNetworks(id string, reqs []netRequest, have []netAttachment) ([]netAttachment, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if m.cfg.Networks == nil {
		return nil, errf(ErrNotImplemented, "user networks are not available in this engine")
	}
	var out []netAttachment
	undo := func() {
		for _, a := range out {
			m.cfg.Networks.Release(a.NetworkID, id)
		}
	}
	for _, rq := range reqs {
		info, err := m.cfg.Networks.Lookup(rq.ref)
		if err != nil {
			undo()
			return nil, err
		}
		for _, h := range append(slices.Clone(have), out...) {
			if h.NetworkID == info.ID {
				undo()
				return nil, errf(ErrConflict, "container is already connected to network %s", info.Name)
			}
		}
		ip, err := m.cfg.Networks.Allocate(info.ID, id, rq.ip)
		if err != nil {
			undo()
			return nil, err
		}
		out = append(out, netAttachment{NetworkID: info.ID, Name: info.Name, Aliases: rq.aliases,
			IP: ip, PrefixLen: info.Subnet.Bits(), Gateway: info.Gateway, IPAMAddress: rq.ip, Internal: info.Internal})
	}
	return out, nil
}

func (m *Manager) releaseNetworks(id string, atts []netAttachment) {
	if m.cfg.Networks == nil {
		return
	}
	for _, a := range atts {
		if err := m.cfg.Networks.Release(a.NetworkID, id); err != nil {
			m.log.Warn("release network address", "id", id, "network", a.Name, "err", err)
		}
	}
}

// OnNetwork reports whether container id's record names network netID
// (the network store's reconcile asks, to free addresses nobody holds).
func (m *Manager) OnNetwork(id, netID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.byID[id]
	if !ok {
		return false
	}
	for _, a := range c.rec.Networks {
		if a.NetworkID == netID {
			return true
		}
	}
	return false
}

// ContainerName is the container's name for messages ("" if unknown).
func (m *Manager) ContainerName(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.byID[id]; ok {
		return c.rec.Name
	}
	return ""
}

// NetworkMember is a container attached to a user network, for docker
// network inspect.
type NetworkMember struct {
	ID, Name   string
	IP         netip.Addr
	PrefixLen  int
	MAC        string
	Running    bool
	EndpointID string
}

// NetworkMembers lists the containers on network netID (any state).
func (m *Manager) NetworkMembers(netID string) []NetworkMember {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []NetworkMember
	for _, c := range m.byID {
		for _, a := range c.rec.Networks {
			if a.NetworkID == netID {
				out = append(out, NetworkMember{ID: c.rec.ID, Name: c.rec.Name, IP: a.IP, PrefixLen: a.PrefixLen,
					MAC: a.mac(c.rec.ID), Running: c.run != nil, EndpointID: endpointID(c.rec.ID, netID)})
			}
		}
	}
	slices.SortFunc(out, func(a, b NetworkMember) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// endpointID is Docker's 64-hex endpoint ID, derived (not stored) since
// an endpoint here is just the pair.
func endpointID(ctrID, netID string) string {
	h := sha256.Sum256([]byte("berth-endpoint:" + ctrID + "/" + netID))
	return hex.EncodeToString(h[:])
}

func hwAddr(s string) network.HardwareAddr {
	hw, _ := net.ParseMAC(s)
	return network.HardwareAddr(hw)
}

// Connect is POST /networks/{id}/connect. The container must not be
// running: a VM's NICs are fixed when it boots.
func (m *Manager) Connect(ctx context.Context, netRef, ref string, ep *network.EndpointSettings) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := m.stoppedForNetworkChange(c, "connect it to"); err != nil {
		return err
	}
	if c.rec.HostConfig.NetworkMode == "none" || netRef == "none" {
		return errf(ErrConflict, "container %s: --network none cannot be combined with other networks (create it with the networks it needs)", ref)
	}
	if isDefaultNetwork(netRef) {
		return nil // already there: every container has eth0
	}
	if err := checkNetworkMode(netRef); err != nil {
		return err
	}
	req, err := endpointRequest(netRef, ep)
	if err != nil {
		return err
	}
	m.mu.Lock()
	have := slices.Clone(c.rec.Networks)
	m.mu.Unlock()
	atts, err := m.allocateNetworks(c.rec.ID, []netRequest{req}, have)
	if err != nil {
		return err
	}
	if err := m.setState(c, func(r *record) { r.Networks = append(r.Networks, atts...) }); err != nil {
		m.releaseNetworks(c.rec.ID, atts)
		return err
	}
	m.emitNetwork(events.ActionConnect, atts[0], c.rec.ID)
	return nil
}

// Disconnect is POST /networks/{id}/disconnect (stopped containers only).
func (m *Manager) Disconnect(ctx context.Context, netRef, ref string, force bool) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := m.stoppedForNetworkChange(c, "disconnect it from"); err != nil {
		return err
	}
	if isDefaultNetwork(netRef) {
		return errf(ErrNotImplemented, "disconnecting from the default network is not supported by Berth: eth0 is the VM's NAT link to the host")
	}
	m.mu.Lock()
	atts := slices.Clone(c.rec.Networks)
	m.mu.Unlock()
	idx := -1
	for i, a := range atts {
		if a.NetworkID == netRef || a.Name == netRef || (len(netRef) >= 3 && strings.HasPrefix(a.NetworkID, netRef)) {
			idx = i
			break
		}
	}
	if idx < 0 {
		if info, err := m.cfg.Networks.Lookup(netRef); err != nil {
			if force {
				return nil
			}
			return err
		} else {
			return errf(ErrConflict, "container %s is not connected to network %s", c.rec.Name, info.Name)
		}
	}
	gone := atts[idx]
	// The record first: a crash before the release leaves an address
	// nobody's record names, which the store's reconcile frees.
	if err := m.setState(c, func(r *record) { r.Networks = slices.Delete(slices.Clone(r.Networks), idx, idx+1) }); err != nil {
		return err
	}
	m.releaseNetworks(c.rec.ID, []netAttachment{gone})
	m.emitNetwork(events.ActionDisconnect, gone, c.rec.ID)
	return nil
}

func (m *Manager) stoppedForNetworkChange(c *ctr, what string) error {
	m.mu.Lock()
	running := c.run != nil || c.booting != nil
	st := c.rec.State
	name := c.rec.Name
	m.mu.Unlock()
	switch {
	case running || st == container.StateRunning:
		return errf(ErrConflict, "container %s is running: stop it first (docker stop %s), then %s the network; Berth cannot add or remove a NIC of a running VM", name, name, what)
	case st == container.StateRestarting:
		return errf(ErrConflict, "container %s is restarting: stop it first (docker stop %s)", name, name)
	case st == container.StateRemoving || st == container.StateDead:
		return errf(ErrConflict, "container %s is being removed", name)
	}
	return nil
}

func (m *Manager) emitNetwork(action events.Action, a netAttachment, ctrID string) {
	m.events.Publish(events.Message{Type: events.NetworkEventType, Action: action,
		Actor: events.Actor{ID: a.NetworkID, Attributes: map[string]string{"container": ctrID, "name": a.Name, "type": "bridge"}}})
}

// openNICs attaches the container's VM to each of its networks' switches
// (boot, before the VM starts). The addresses are asserted again first: a
// network removed since, or an address lost to a crash, fails the start
// with the network named.
func (m *Manager) openNICs(rec *record) ([]vmm.NetworkAttachment, error) {
	if len(rec.Networks) == 0 {
		return nil, nil
	}
	if m.cfg.Networks == nil {
		return nil, errf(ErrNotImplemented, "user networks are not available in this engine")
	}
	var out []vmm.NetworkAttachment
	for _, a := range rec.Networks {
		if _, err := m.cfg.Networks.Allocate(a.NetworkID, rec.ID, a.IP); err != nil {
			closeNICs(out)
			m.detachNICs(rec)
			if errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "not found") {
				return nil, errf(ErrConflict, "network %s of container %s no longer exists: disconnect it (docker network disconnect %s %s) or create it again", a.Name, rec.Name, a.Name, rec.Name)
			}
			return nil, fmt.Errorf("network %s: %w", a.Name, err)
		}
		f, err := m.cfg.Networks.Attach(a.NetworkID, rec.ID)
		if err != nil {
			closeNICs(out)
			m.detachNICs(rec)
			return nil, fmt.Errorf("network %s: %w", a.Name, err)
		}
		out = append(out, vmm.NetworkAttachment{File: f, MAC: a.mac(rec.ID)})
	}
	return out, nil
}

func closeNICs(nics []vmm.NetworkAttachment) {
	for _, n := range nics {
		n.File.Close()
	}
}

func (m *Manager) detachNICs(rec *record) {
	if m.cfg.Networks == nil {
		return
	}
	for _, a := range rec.Networks {
		m.cfg.Networks.Detach(a.NetworkID, rec.ID)
	}
}

// configureNICs gives eth1, eth2, … their addresses (boot, after Setup).
func configureNICs(ctx context.Context, g Guest, atts []netAttachment) error {
	for i, a := range atts {
		iface := fmt.Sprintf("eth%d", i+1)
		if err := g.ConfigureInterface(ctx, iface, netip.PrefixFrom(a.IP, a.PrefixLen).String()); err != nil {
			return fmt.Errorf("network %s (%s): %w", a.Name, iface, err)
		}
	}
	return nil
}

// joinNetworks makes c visible by name on its networks: c's hosts file
// gets the running members, theirs get c. g is c's agent.
func (m *Manager) joinNetworks(ctx context.Context, c *ctr, g Guest) error {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	m.mu.Lock()
	c.netGuest = g
	hosts := m.hostsLocked(c)
	m.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := g.SetHosts(hctx, hosts)
	cancel()
	if err != nil {
		m.mu.Lock()
		c.netGuest = nil
		m.mu.Unlock()
		return fmt.Errorf("write /etc/hosts: %w", err)
	}
	m.pushHostsLocked(ctx, c)
	return nil
}

// leaveNetworks takes c off its networks: the others forget its name
// (best effort) and its switch ports go.
func (m *Manager) leaveNetworks(c *ctr) {
	m.hostsMu.Lock()
	m.mu.Lock()
	was := c.netGuest != nil
	c.netGuest = nil
	rec := c.rec
	m.mu.Unlock()
	if was {
		m.pushHostsLocked(context.Background(), c)
	}
	m.hostsMu.Unlock()
	m.detachNICs(&rec)
}

// pushHostsLocked sends the full hosts list to every live member sharing a
// network with c (not c itself). hostsMu held. A paused member is skipped:
// it would not answer.
func (m *Manager) pushHostsLocked(ctx context.Context, c *ctr) {
	type job struct {
		id    string
		g     Guest
		hosts []string
	}
	var jobs []job
	m.mu.Lock()
	for _, d := range m.byID {
		if d == c || d.netGuest == nil || (d.run != nil && d.run.paused) || !sharesNetwork(&c.rec, &d.rec) {
			continue
		}
		jobs = append(jobs, job{d.rec.ID, d.netGuest, m.hostsLocked(d)})
	}
	m.mu.Unlock()
	for _, j := range jobs {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := j.g.SetHosts(hctx, j.hosts); err != nil {
			m.log.Warn("update a network member's /etc/hosts", "id", j.id, "err", err)
		}
		cancel()
	}
}

// HostGateway is --add-host's stand-in for the host's address as the
// container sees it (Docker's "host-gateway").
const HostGateway = "host-gateway"

// HostInternal names the host from inside every container, like Docker
// Desktop: the VM's NAT gateway, which forwards to the host (10.0.2.2 under
// QEMU, where it reaches the host's loopback; the vmnet gateway on a Mac).
const HostInternal = "host.docker.internal"

// extraHosts is --add-host with host-gateway resolved to gateway, plus
// host.docker.internal unless the user named it; seen holds the names.
// Without a gateway (before DHCP), host-gateway entries are left out.
func extraHosts(lines []string, gateway string) ([]string, map[string]bool) {
	var out []string
	seen := map[string]bool{}
	for _, l := range lines {
		name, ip, _ := strings.Cut(l, ":")
		if ip == HostGateway {
			if gateway == "" {
				continue
			}
			l = name + ":" + gateway
		}
		seen[name] = true
		out = append(out, l)
	}
	if gateway != "" && !seen[HostInternal] {
		seen[HostInternal] = true
		out = append(out, HostInternal+":"+gateway)
	}
	return out, seen
}

// literalHosts is --add-host without the host-gateway entries, for the
// first hosts file written before the gateway is known.
func literalHosts(lines []string) []string {
	out, _ := extraHosts(lines, "")
	return out
}

func sharesNetwork(a, b *record) bool {
	for _, x := range a.Networks {
		for _, y := range b.Networks {
			if x.NetworkID == y.NetworkID {
				return true
			}
		}
	}
	return false
}

// hostsLocked is c's full hosts list ("name:ip" lines, --add-host's
// form): its --add-host entries, then for each of its networks every live
// member (itself included) under its name, aliases and short ID. m.mu held.
func (m *Manager) hostsLocked(c *ctr) []string {
	out, seen := extraHosts(c.rec.HostConfig.ExtraHosts, c.gateway)
	add := func(name string, ip netip.Addr) {
		if name == "" || seen[name] {
			return // the first network listed wins a name, like a resolver's first answer
		}
		seen[name] = true
		out = append(out, name+":"+ip.String())
	}
	ids := make([]string, 0, len(m.byID))
	for id := range m.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, a := range c.rec.Networks {
		for _, id := range ids {
			d := m.byID[id]
			if d != c && d.netGuest == nil {
				continue
			}
			for _, b := range d.rec.Networks {
				if b.NetworkID != a.NetworkID {
					continue
				}
				add(d.rec.Name, b.IP)
				for _, al := range b.Aliases {
					add(al, b.IP)
				}
				add(d.rec.ID[:12], b.IP)
				if h := d.rec.Config.Hostname; h != d.rec.ID[:12] {
					add(h, b.IP)
				}
			}
		}
	}
	return out
}

// endpoints is what inspect and ps show under NetworkSettings.Networks:
// the default network (eth0) as "bridge", then each user network.
func (m *Manager) endpoints(r *record) map[string]*network.EndpointSettings {
	if r.HostConfig.NetworkMode == "none" {
		return map[string]*network.EndpointSettings{"none": {}}
	}
	out := map[string]*network.EndpointSettings{}
	if !withoutNAT(r) {
		out["bridge"] = m.endpoint(r)
	}
	for _, a := range r.Networks {
		ep := &network.EndpointSettings{
			NetworkID: a.NetworkID, EndpointID: endpointID(r.ID, a.NetworkID), MacAddress: hwAddr(a.mac(r.ID)),
			Aliases:  append(slices.Clone(a.Aliases), r.ID[:12]),
			DNSNames: append(append([]string{r.Name}, a.Aliases...), r.ID[:12]),
		}
		if a.IPAMAddress.IsValid() {
			ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a.IPAMAddress}
		}
		// Docker shows the address only while the container runs; Berth's
		// addresses are held from create to rm, so inspect always shows it.
		ep.IPAddress, ep.IPPrefixLen, ep.Gateway = a.IP, a.PrefixLen, a.Gateway
		out[a.Name] = ep
	}
	return out
}

// DefaultNetworkID is the ID the default network ("bridge": each VM's own
// NAT eth0) shows in docker network ls and inspect; fixed, as there is only
// ever one.
var DefaultNetworkID = func() string {
	h := sha256.Sum256([]byte("berth-network:bridge"))
	return hex.EncodeToString(h[:])
}()
