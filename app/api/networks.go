package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	ctrs "github.com/berth-dev/berth/runtime/container"
	netstore "github.com/berth-dev/berth/runtime/network"
)

// Networks is the user-network store plus the container side of connect
// and disconnect, in the API's terms (adapter: NetworkStore).
type Networks interface {
	Create(ctx context.Context, req NetworkCreateRequest) (network.CreateResponse, error)
	List(ctx context.Context, filters map[string][]string) ([]network.Summary, error)
	Inspect(ctx context.Context, ref string) (network.Inspect, error)
	Remove(ctx context.Context, ref string) error
	Prune(ctx context.Context, filters map[string][]string) (network.PruneReport, error)
	Connect(ctx context.Context, netRef, container string, ep *network.EndpointSettings) error
	Disconnect(ctx context.Context, netRef, container string, force bool) error
}

// NetworkCreateRequest is the body of POST /networks/create (moby's API
// types leave it to the client package). Every documented field is here,
// so strict decoding refuses only fields no Docker API has.
type NetworkCreateRequest struct {
	Name           string
	CheckDuplicate *bool `json:",omitempty"` // before API 1.44; always on now
	Driver         string
	Scope          string
	EnableIPv4     *bool `json:",omitempty"`
	EnableIPv6     *bool `json:",omitempty"`
	IPAM           *network.IPAM
	Internal       bool
	Attachable     bool
	Ingress        bool
	ConfigOnly     bool
	ConfigFrom     *network.ConfigReference
	Options        map[string]string
	Labels         map[string]string
}

func (s *Server) networkRoutes() {
	for _, rt := range []struct {
		pattern string
		h       func(ns Networks, w http.ResponseWriter, r *http.Request) error
	}{
		{"GET /networks", s.networkList},
		{"POST /networks/create", s.networkCreate},
		{"POST /networks/prune", s.networkPrune},
		{"GET /networks/{id}", s.networkInspect},
		{"DELETE /networks/{id}", s.networkRemove},
		{"POST /networks/{id}/connect", s.networkConnect},
		{"POST /networks/{id}/disconnect", s.networkDisconnect},
	} {
		s.handle(rt.pattern, s.withNetworks(rt.h))
	}
}

// withNetworks: an engine without a network store lists nothing and
// prunes nothing (so `docker system prune` works) and answers 501 otherwise.
func (s *Server) withNetworks(f func(ns Networks, w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.b.Networks == nil {
			switch r.URL.Path {
			case "/networks":
				return writeJSON(w, http.StatusOK, []network.Summary{})
			case "/networks/prune":
				return writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: []string{}})
			}
			return notImplemented("this engine has no network store")
		}
		return f(s.b.Networks, w, r)
	}
}

func (s *Server) networkList(ns Networks, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "name", "id", "label", "driver", "type", "scope", "dangling"); err != nil {
		return err
	}
	l, err := ns.List(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) networkCreate(ns Networks, w http.ResponseWriter, r *http.Request) error {
	var req NetworkCreateRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	resp, err := ns.Create(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) networkInspect(ns Networks, w http.ResponseWriter, r *http.Request) error {
	for _, p := range []string{"verbose", "scope"} {
		if v := r.URL.Query().Get(p); v != "" && v != "false" && v != "0" && v != "local" {
			return notImplemented("network inspect %s=%s is a swarm feature, which Berth does not have", p, v)
		}
	}
	n, err := ns.Inspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (s *Server) networkRemove(ns Networks, w http.ResponseWriter, r *http.Request) error {
	return respond(w, http.StatusNoContent, ns.Remove(r.Context(), r.PathValue("id")))
}

func (s *Server) networkPrune(ns Networks, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "label", "label!", "until"); err != nil {
		return err
	}
	rep, err := ns.Prune(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) networkConnect(ns Networks, w http.ResponseWriter, r *http.Request) error {
	var req network.ConnectRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return badRequest("no container given: name the container to connect")
	}
	return respond(w, http.StatusOK, ns.Connect(r.Context(), r.PathValue("id"), req.Container, req.EndpointConfig))
}

func (s *Server) networkDisconnect(ns Networks, w http.ResponseWriter, r *http.Request) error {
	var req network.DisconnectRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return badRequest("no container given: name the container to disconnect")
	}
	return respond(w, http.StatusOK, ns.Disconnect(r.Context(), r.PathValue("id"), req.Container, req.Force))
}

// NetworkStore serves the Networks endpoints from runtime/network.Store and
// the container manager (which owns each container's side of an endpoint).
type NetworkStore struct {
	Store      *netstore.Store
	Containers *ctrs.Manager
	// DefaultSubnet is what the default network shows (each VM's NAT
	// eth0, e.g. QEMU user networking's 10.0.2.0/24); may be invalid.
	DefaultSubnet netip.Prefix
	// Publish, when set, receives network events (create, destroy).
	Publish func(events.Message)
}

var _ Networks = (*NetworkStore)(nil)

func (s *NetworkStore) publish(action events.Action, id, name string) {
	if s.Publish != nil {
		s.Publish(events.Message{Type: events.NetworkEventType, Action: action,
			Actor: events.Actor{ID: id, Attributes: map[string]string{"name": name, "type": netstore.Driver}}})
	}
}

func predefinedID(name string) string {
	if name == netstore.DefaultName {
		return ctrs.DefaultNetworkID
	}
	h := sha256.Sum256([]byte("berth-network:" + name))
	return hex.EncodeToString(h[:])
}

// predefined are Docker's three built-in networks as Berth has them:
// "bridge" is each VM's own NAT eth0 (the default); "host" and "none"
// are listed so scripts that look for them find them, but no container
// can join them.
func (s *NetworkStore) predefined() []network.Inspect {
	epoch := time.Unix(0, 0).UTC()
	mk := func(name, driver string) network.Inspect {
		n := network.Inspect{Network: network.Network{Name: name, ID: predefinedID(name), Created: epoch, Scope: "local",
			Driver: driver, EnableIPv4: true, IPAM: network.IPAM{Driver: "default", Config: []network.IPAMConfig{}},
			Options: map[string]string{}, Labels: map[string]string{}}, Containers: map[string]network.EndpointResource{}}
		return n
	}
	br := mk(netstore.DefaultName, netstore.Driver)
	br.Options["io.berth.network"] = "each container VM's own NAT interface (eth0); containers on it do not reach each other"
	if s.DefaultSubnet.IsValid() {
		br.IPAM.Config = []network.IPAMConfig{{Subnet: s.DefaultSubnet}}
	}
	return []network.Inspect{br, mk(netstore.HostName, "host"), mk(netstore.NoneName, "null")}
}

func (s *NetworkStore) render(n netstore.Network) network.Inspect {
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := network.Inspect{
		Network: network.Network{Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: true, Internal: n.Internal, Labels: labels, Options: map[string]string{},
			IPAM: network.IPAM{Driver: "default", Options: map[string]string{},
				Config: []network.IPAMConfig{{Subnet: n.Subnet, Gateway: n.Gateway}}}},
		Containers: map[string]network.EndpointResource{},
	}
	if s.Containers != nil {
		for _, m := range s.Containers.NetworkMembers(n.ID) {
			out.Containers[m.ID] = network.EndpointResource{Name: m.Name, EndpointID: m.EndpointID,
				MacAddress: hwAddr(m.MAC), IPv4Address: netip.PrefixFrom(m.IP, m.PrefixLen)}
		}
	}
	return out
}

func (s *NetworkStore) all() ([]network.Inspect, error) {
	l, err := s.Store.List()
	if err != nil {
		return nil, err
	}
	out := s.predefined()
	for _, n := range l {
		out = append(out, s.render(n))
	}
	return out, nil
}

func (s *NetworkStore) Create(ctx context.Context, req NetworkCreateRequest) (network.CreateResponse, error) {
	switch {
	case req.Scope != "" && req.Scope != "local":
		return network.CreateResponse{}, notImplemented("network scope %q is not supported by Berth: networks are local to this engine", req.Scope)
	case req.Ingress || req.ConfigOnly || req.ConfigFrom != nil:
		return network.CreateResponse{}, notImplemented("--ingress, --config-only and --config-from are swarm features, which Berth does not have")
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return network.CreateResponse{}, notImplemented("--ipv6 is not supported by Berth: user networks are IPv4")
	case req.EnableIPv4 != nil && !*req.EnableIPv4:
		return network.CreateResponse{}, notImplemented("--ipv4=false is not supported by Berth: user networks are IPv4")
	}
	o := netstore.CreateOptions{Driver: req.Driver, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if ipam := req.IPAM; ipam != nil {
		if ipam.Driver != "" && ipam.Driver != "default" {
			return network.CreateResponse{}, notImplemented("IPAM driver %q is not supported by Berth: only the default", ipam.Driver)
		}
		if len(ipam.Options) > 0 {
			return network.CreateResponse{}, notImplemented("IPAM options (--ipam-opt) are not supported by Berth")
		}
		switch len(ipam.Config) {
		case 0:
		case 1:
			c := ipam.Config[0]
			if c.IPRange.IsValid() || len(c.AuxAddress) > 0 {
				return network.CreateResponse{}, notImplemented("--ip-range and --aux-address are not supported by Berth: give --subnet (and --gateway)")
			}
			if c.Subnet.IsValid() {
				o.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				o.Gateway = c.Gateway.String()
			}
		default:
			return network.CreateResponse{}, notImplemented("more than one --subnet per network is not supported by Berth")
		}
	}
	if req.Name == "host" || req.Name == "none" || req.Name == "bridge" {
		return network.CreateResponse{}, errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("%s is a pre-defined network and cannot be created", req.Name))
	}
	n, err := s.Store.Create(req.Name, o)
	if err != nil {
		return network.CreateResponse{}, err
	}
	s.publish(events.ActionCreate, n.ID, n.Name)
	return network.CreateResponse{ID: n.ID}, nil
}

func (s *NetworkStore) List(ctx context.Context, f map[string][]string) ([]network.Summary, error) {
	all, err := s.all()
	if err != nil {
		return nil, err
	}
	for _, d := range f["dangling"] {
		if d != "true" && d != "false" && d != "1" && d != "0" {
			return nil, badRequest("invalid filter 'dangling=%s': use true or false", d)
		}
	}
	for _, t := range f["type"] {
		if t != "custom" && t != "builtin" {
			return nil, badRequest("invalid filter 'type=%s': use custom or builtin", t)
		}
	}
	out := []network.Summary{}
	for _, n := range all {
		if networkMatches(n, f) {
			out = append(out, network.Summary{Network: n.Network})
		}
	}
	return out, nil
}

func networkMatches(n network.Inspect, f map[string][]string) bool {
	anyOf := func(vals []string, ok func(string) bool) bool {
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	builtin := n.ID == predefinedID(n.Name)
	return anyOf(f["name"], func(v string) bool { return strings.Contains(n.Name, v) }) &&
		anyOf(f["id"], func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		anyOf(f["driver"], func(v string) bool { return v == n.Driver }) &&
		anyOf(f["scope"], func(v string) bool { return v == "local" }) &&
		anyOf(f["type"], func(v string) bool { return (v == "builtin") == builtin }) &&
		anyOf(f["dangling"], func(v string) bool {
			return (v == "true" || v == "1") == (!builtin && len(n.Containers) == 0)
		}) &&
		netstore.AllLabels(n.Labels, f["label"])
}

func (s *NetworkStore) Inspect(ctx context.Context, ref string) (network.Inspect, error) {
	for _, p := range s.predefined() {
		if ref == p.Name || ref == p.ID {
			return p, nil
		}
	}
	n, err := s.Store.Get(ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return s.render(n), nil
}

func (s *NetworkStore) Remove(ctx context.Context, ref string) error {
	for _, p := range s.predefined() {
		if ref == p.Name || ref == p.ID {
			return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("%s is a pre-defined network and cannot be removed", p.Name))
		}
	}
	n, err := s.Store.Remove(ref)
	if err != nil {
		return err
	}
	s.publish(events.ActionDestroy, n.ID, n.Name)
	return nil
}

func (s *NetworkStore) Prune(ctx context.Context, f map[string][]string) (network.PruneReport, error) {
	var until time.Time
	for _, v := range f["until"] {
		t, err := parseUntil(v)
		if err != nil {
			return network.PruneReport{}, err
		}
		until = t
	}
	removed, err := s.Store.Prune(f["label"], f["label!"], until)
	rep := network.PruneReport{NetworksDeleted: []string{}}
	for _, n := range removed {
		rep.NetworksDeleted = append(rep.NetworksDeleted, n.Name)
		s.publish(events.ActionDestroy, n.ID, n.Name)
	}
	if err != nil {
		return rep, err
	}
	s.publish(events.ActionPrune, "", "")
	return rep, nil
}

// parseUntil reads prune's until: a Unix time, an RFC 3339 time or a
// duration before now ("24h").
func parseUntil(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	var sec int64
	if _, err := fmt.Sscan(v, &sec); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, badRequest("invalid until filter %q: use a duration (24h), an RFC 3339 time or a Unix timestamp", v)
}

func (s *NetworkStore) predefinedName(ref string) (string, bool) {
	for _, p := range s.predefined() {
		if ref == p.Name || ref == p.ID {
			return p.Name, true
		}
	}
	return "", false
}

func (s *NetworkStore) Connect(ctx context.Context, netRef, container string, ep *network.EndpointSettings) error {
	if name, ok := s.predefinedName(netRef); ok {
		netRef = name // the manager knows them by name
	}
	return s.Containers.Connect(ctx, netRef, container, ep)
}

func (s *NetworkStore) Disconnect(ctx context.Context, netRef, container string, force bool) error {
	if name, ok := s.predefinedName(netRef); ok {
		netRef = name
	}
	return s.Containers.Disconnect(ctx, netRef, container, force)
}

func hwAddr(s string) network.HardwareAddr {
	var hw network.HardwareAddr
	hw.UnmarshalText([]byte(s))
	return hw
}
