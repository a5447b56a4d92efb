// Package network keeps Berth's user-defined networks (docker network
// create): one record per network in the state database (name, ID, subnet,
// gateway, labels, and which container holds which address), address
// management inside each subnet, and, while the engine runs, one Ethernet
// switch (runtime/netswitch) per network that the members' VMs plug a
// second (third, …) NIC into.
//
// The default network "bridge" is not kept here: it is every VM's own eth0
// (NAT to the host), which needs no switch and no addresses from us.
//
// An address is written into the network's record before the container that
// gets it is written, so a crash leaves at worst an address held for a
// container that does not exist; Reconcile releases those at engine start.
package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/runtime/netswitch"
	"github.com/berth-dev/berth/runtime/state"
)

// Driver is the only driver: a switch between the members' VMs.
const Driver = "bridge"

// Names Docker gives its predefined networks. "bridge" is Berth's default
// network (each VM's NAT eth0); "host" and "none" are listed like Docker's
// but containers cannot join them.
const (
	DefaultName = "bridge"
	HostName    = "host"
	NoneName    = "none"
)

var bucket = []byte("networks")

const recordVersion = 1

// Error classes, for errors.Is (the API maps them to 404, 409, 400, 501).
var (
	ErrNotFound       = errdefs.ErrNotFound
	ErrConflict       = errdefs.ErrConflict
	ErrInvalid        = errdefs.ErrInvalidArgument
	ErrNotImplemented = errdefs.ErrNotImplemented
)

// validName is Docker's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CheckName reports whether name can be a user network's name.
func CheckName(name string) error {
	if name == "" {
		return ErrInvalid.WithMessage("network name is empty: give one (docker network create NAME)")
	}
	if !validName.MatchString(name) || len(name) > 255 {
		return ErrInvalid.WithMessage(fmt.Sprintf("invalid network name %q: use characters from [a-zA-Z0-9_.-], starting with a letter or digit", name))
	}
	switch name {
	case DefaultName, HostName, NoneName, "default":
		return ErrConflict.WithMessage(fmt.Sprintf("network name %q is predefined: choose another name", name))
	}
	return nil
}

// Network is one network's record.
type Network struct {
	Version  int               `json:"version"`
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Subnet   netip.Prefix      `json:"subnet"`
	Gateway  netip.Addr        `json:"gateway"` // reserved, never given to a container
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	// Addrs: container ID -> its address on this network (the IPAM state,
	// and the list of attached containers).
	Addrs map[string]netip.Addr `json:"addrs,omitempty"`
}

// Members returns the IDs of the containers attached, sorted.
func (n Network) Members() []string {
	ids := make([]string, 0, len(n.Addrs))
	for id := range n.Addrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// CreateOptions are docker network create's settings.
type CreateOptions struct {
	Driver   string // "" or "bridge"
	Subnet   string // CIDR; "" picks a free one from the default pools
	Gateway  string // "" = the subnet's first address
	Internal bool
	Labels   map[string]string
	Options  map[string]string // driver options: refused (none has a meaning here)
}

// reserved are the subnets of every VM's eth0 (QEMU user networking,
// Virtualization.framework NAT): a user network there would shadow the
// route to the host and the internet.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("10.0.2.0/24"),
	netip.MustParsePrefix("192.168.64.0/24"),
}

// defaultPools are where subnets come from when none is given: Docker's
// own order (172.17 is Docker's default bridge, left alone so a Mac with
// Docker Desktop too does not see the same addresses twice), /16 each, then
// /20s of 192.168.
func defaultPools() []netip.Prefix {
	var out []netip.Prefix
	for b := 18; b <= 31; b++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16))
	}
	for c := 0; c < 256; c += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(c), 0}), 20))
	}
	return out
}

// Store is the network store of one engine.
type Store struct {
	db *state.DB

	// ContainerName names a container for messages (the container manager);
	// nil shows short IDs.
	ContainerName func(id string) string

	mu       sync.Mutex
	switches map[string]*netswitch.Switch // network ID -> its switch, made on first attach
}

// Open opens the store.
func Open(db *state.DB) (*Store, error) {
	s := &Store{db: db, switches: map[string]*netswitch.Switch{}}
	if _, err := s.all(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close drops every switch (the engine is stopping; its VMs are gone).
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sw := range s.switches {
		sw.Close()
		delete(s.switches, id)
	}
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create makes a network. A name in use is a conflict (Docker's
// CheckDuplicate, always on since API 1.44).
func (s *Store) Create(name string, o CreateOptions) (Network, error) {
	if err := CheckName(name); err != nil {
		return Network{}, err
	}
	if o.Driver != "" && o.Driver != Driver {
		return Network{}, ErrNotImplemented.WithMessage(fmt.Sprintf("network driver %q is not supported by Berth: only %q (a switch between the containers' VMs)", o.Driver, Driver))
	}
	if len(o.Options) > 0 {
		keys := make([]string, 0, len(o.Options))
		for k := range o.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return Network{}, ErrNotImplemented.WithMessage(fmt.Sprintf("network driver options are not supported by Berth (%s): leave out -o/--opt", strings.Join(keys, ", ")))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.all()
	if err != nil {
		return Network{}, err
	}
	for _, n := range all {
		if n.Name == name {
			return Network{}, ErrConflict.WithMessage(fmt.Sprintf("network with name %s already exists: remove it first (docker network rm %s) or choose another name", name, name))
		}
	}
	var subnet netip.Prefix
	if o.Subnet != "" {
		p, err := netip.ParsePrefix(o.Subnet)
		if err != nil || !p.Addr().Is4() {
			return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("invalid subnet %q: use IPv4 CIDR notation such as 172.30.0.0/16", o.Subnet))
		}
		if p.Masked() != p {
			return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("invalid subnet %s: host bits are set; did you mean %s?", p, p.Masked()))
		}
		if p.Bits() > 29 {
			return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("subnet %s is too small: use a /29 or larger (the gateway and at least one container need addresses)", p))
		}
		if p.Bits() < 8 {
			return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("subnet %s is too large: use a /8 or smaller", p))
		}
		if why := overlap(p, all); why != "" {
			return Network{}, ErrConflict.WithMessage(fmt.Sprintf("subnet %s overlaps %s: choose another --subnet", p, why))
		}
		subnet = p
	} else {
		if o.Gateway != "" {
			return Network{}, ErrInvalid.WithMessage("--gateway needs --subnet")
		}
		for _, p := range defaultPools() {
			if overlap(p, all) == "" {
				subnet = p
				break
			}
		}
		if !subnet.IsValid() {
			return Network{}, ErrConflict.WithMessage("all predefined address pools are in use: remove unused networks (docker network prune) or give --subnet")
		}
	}
	gw := subnet.Addr().Next()
	if o.Gateway != "" {
		g, err := netip.ParseAddr(o.Gateway)
		if err != nil || !subnet.Contains(g) || g == subnet.Addr() || g == broadcast(subnet) {
			return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("invalid gateway %q: use a host address inside %s", o.Gateway, subnet))
		}
		gw = g
	}
	n := Network{Version: recordVersion, ID: newID(), Name: name, Driver: Driver, Subnet: subnet, Gateway: gw,
		Internal: o.Internal, Labels: o.Labels, Created: time.Now().UTC()}
	if err := s.put(n); err != nil {
		return Network{}, err
	}
	return n, nil
}

// overlap names what p collides with ("" if nothing).
func overlap(p netip.Prefix, all []Network) string {
	for _, r := range reserved {
		if r.Overlaps(p) {
			return fmt.Sprintf("the containers' own NAT network %s", r)
		}
	}
	for _, n := range all {
		if n.Subnet.Overlaps(p) {
			return fmt.Sprintf("network %s (%s)", n.Name, n.Subnet)
		}
	}
	return ""
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Get resolves a full ID, a name, or a unique ID prefix (Docker's order).
func (s *Store) Get(ref string) (Network, error) {
	if ref == "" {
		return Network{}, ErrNotFound.WithMessage("no such network: empty name or ID")
	}
	all, err := s.all()
	if err != nil {
		return Network{}, err
	}
	for _, n := range all {
		if n.ID == ref {
			return n, nil
		}
	}
	for _, n := range all {
		if n.Name == ref {
			return n, nil
		}
	}
	var found []Network
	for _, n := range all {
		if strings.HasPrefix(n.ID, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Network{}, ErrNotFound.WithMessage(fmt.Sprintf("network %s not found", ref))
	}
	return Network{}, ErrInvalid.WithMessage(fmt.Sprintf("network ID prefix %q matches %d networks: use more characters", ref, len(found)))
}

// List returns every user network, sorted by name.
func (s *Store) List() ([]Network, error) {
	all, err := s.all()
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

// Remove deletes a network no container is attached to (in any state:
// a stopped member would otherwise fail at its next start).
func (s *Store) Remove(ref string) (Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.Get(ref)
	if err != nil {
		return Network{}, err
	}
	if len(n.Addrs) > 0 {
		users := s.names(n.Members())
		sort.Strings(users)
		return Network{}, ErrConflict.WithMessage(fmt.Sprintf("network %s is in use by container(s) %s: remove them or disconnect them first (docker network disconnect %s CONTAINER)", n.Name, strings.Join(users, ", "), n.Name))
	}
	if err := s.del(n.ID); err != nil {
		return Network{}, err
	}
	if sw := s.switches[n.ID]; sw != nil {
		sw.Close()
		delete(s.switches, n.ID)
	}
	return n, nil
}

func (s *Store) names(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = ""
		if s.ContainerName != nil {
			out[i] = s.ContainerName(id)
		}
		if out[i] == "" {
			out[i] = id
			if len(id) > 12 {
				out[i] = id[:12]
			}
		}
	}
	return out
}

// Allocate gives container ctr an address on the network: want if valid
// and free (docker's --ip), else the lowest free one. A container that
// already has an address keeps it (so restarts keep their IPs).
func (s *Store) Allocate(netID, ctr string, want netip.Addr) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.get(netID)
	if err != nil {
		return netip.Addr{}, err
	}
	if a, ok := n.Addrs[ctr]; ok && (!want.IsValid() || want == a) {
		return a, nil
	}
	used := map[netip.Addr]string{n.Gateway: "the gateway"}
	for id, a := range n.Addrs {
		if id != ctr {
			used[a] = id
		}
	}
	var got netip.Addr
	if want.IsValid() {
		switch {
		case !want.Is4() || !n.Subnet.Contains(want) || want == n.Subnet.Addr() || want == broadcast(n.Subnet):
			return netip.Addr{}, ErrInvalid.WithMessage(fmt.Sprintf("address %s is not a host address of network %s (%s): choose one inside the subnet", want, n.Name, n.Subnet))
		case used[want] != "":
			return netip.Addr{}, ErrConflict.WithMessage(fmt.Sprintf("address %s on network %s is already in use by %s: choose another --ip", want, n.Name, s.owner(used[want])))
		}
		got = want
	} else {
		last := broadcast(n.Subnet)
		for a := n.Subnet.Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
			if used[a] == "" {
				got = a
				break
			}
		}
		if !got.IsValid() {
			return netip.Addr{}, ErrConflict.WithMessage(fmt.Sprintf("no free address left on network %s (%s, %d containers): remove containers from it or create a network with a larger --subnet", n.Name, n.Subnet, len(n.Addrs)))
		}
	}
	if n.Addrs == nil {
		n.Addrs = map[string]netip.Addr{}
	}
	n.Addrs[ctr] = got
	return got, s.put(n)
}

func (s *Store) owner(id string) string {
	if id == "the gateway" {
		return id
	}
	return "container " + s.names([]string{id})[0]
}

// Release returns container ctr's address on the network; a network or
// address already gone is no error (removal is idempotent).
func (s *Store) Release(netID, ctr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.get(netID)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if _, ok := n.Addrs[ctr]; !ok {
		return nil
	}
	delete(n.Addrs, ctr)
	return s.put(n)
}

// Reconcile releases addresses held for containers whose records do not
// name the network (a create cut short after its address was written, a
// removal or disconnect cut short before the release).
func (s *Store) Reconcile(member func(ctr, netID string) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.all()
	if err != nil {
		return err
	}
	for _, n := range all {
		changed := false
		for id := range n.Addrs {
			if !member(id, n.ID) {
				delete(n.Addrs, id)
				changed = true
			}
		}
		if changed {
			if err := s.put(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Attach plugs a VM into the network's switch as port (the container ID)
// and returns the VM's end of the link, which the caller hands to the VM
// and then closes.
func (s *Store) Attach(netID, port string) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(netID); err != nil {
		return nil, err
	}
	sw := s.switches[netID]
	if sw == nil {
		sw = netswitch.New()
		s.switches[netID] = sw
	}
	// A port left by a VM that died without Detach (the VM's end is closed
	// by now) is replaced rather than refused.
	sw.Detach(port)
	return sw.Attach(port)
}

// Detach unplugs port from the network's switch (no error if absent).
func (s *Store) Detach(netID, port string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sw := s.switches[netID]; sw != nil {
		sw.Detach(port)
	}
}

// Prune removes every network no container is attached to whose labels
// match (label=k[=v], label!=k[=v]) and that is older than until (zero:
// any age). It returns the removed networks.
func (s *Store) Prune(labels, notLabels []string, until time.Time) ([]Network, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Network
	for _, n := range all {
		if len(n.Addrs) > 0 || !AllLabels(n.Labels, labels) {
			continue
		}
		if !until.IsZero() && !n.Created.Before(until) {
			continue
		}
		excluded := false
		for _, t := range notLabels {
			if AllLabels(n.Labels, []string{t}) {
				excluded = true
			}
		}
		if excluded {
			continue
		}
		if r, err := s.Remove(n.ID); err == nil {
			out = append(out, r)
		} else if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			return out, err
		}
	}
	return out, nil
}

// AllLabels reports whether every term (key or key=value) matches labels;
// Docker ANDs label filters.
func AllLabels(labels map[string]string, terms []string) bool {
	for _, t := range terms {
		k, want, hasVal := strings.Cut(t, "=")
		got, ok := labels[k]
		if !ok || (hasVal && got != want) {
			return false
		}
	}
	return true
}

func (s *Store) get(id string) (Network, error) {
	v, found, err := records.Get(s.db, id)
	if err != nil {
		return Network{}, err
	}
	if !found {
		return Network{}, ErrNotFound.WithMessage(fmt.Sprintf("network %s not found", id))
	}
	return v, nil
}

// records is the bucket's codec: versioned JSON, refused when newer.
var records = state.JSONBucket[Network]{Name: bucket, Kind: "network", MaxVersion: recordVersion, Version: func(v *Network) int { return v.Version }}

func (s *Store) all() ([]Network, error) { return records.All(s.db) }

func (s *Store) put(n Network) error { return records.Put(s.db, n.ID, n) }

func (s *Store) del(id string) error { return records.Delete(s.db, id) }
