package container

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/runtime/dataroot"
	netstore "github.com/berth-dev/berth/runtime/network"
	"github.com/berth-dev/berth/runtime/state"
)

func TestPlanNetworks(t *testing.T) {
	ep := func(aliases ...string) *network.EndpointSettings { return &network.EndpointSettings{Aliases: aliases} }
	plan := func(mode string, eps map[string]*network.EndpointSettings) ([]netRequest, error) {
		return planNetworks(&container.HostConfig{NetworkMode: container.NetworkMode(mode)}, &network.NetworkingConfig{EndpointsConfig: eps})
	}
	// The default network needs nothing: eth0 is always there.
	for _, mode := range []string{"", "default", "bridge"} {
		if got, err := plan(mode, map[string]*network.EndpointSettings{"bridge": nil}); err != nil || len(got) != 0 {
			t.Errorf("mode %q: %v %v", mode, got, err)
		}
	}
	if got, err := plan("none", map[string]*network.EndpointSettings{"none": nil}); err != nil || len(got) != 0 {
		t.Fatalf("--network none: %+v %v (want loopback only: no networks)", got, err)
	}
	got, err := plan("app", map[string]*network.EndpointSettings{
		"app": ep("db", "database"), "zeta": nil, "beta": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.1.0.9")}},
	})
	if err != nil || len(got) != 3 || got[0].ref != "app" || strings.Join(got[0].aliases, ",") != "db,database" ||
		got[1].ref != "beta" || got[1].ip.String() != "10.1.0.9" || got[2].ref != "zeta" {
		t.Fatalf("plan: %+v %v", got, err)
	}
	for _, c := range []struct {
		mode string
		eps  map[string]*network.EndpointSettings
		kind error
		word string
	}{
		{"host", nil, ErrNotImplemented, "-p"},
		{"none", map[string]*network.EndpointSettings{"app": nil}, ErrInvalid, "none"},
		{"app", map[string]*network.EndpointSettings{"none": nil}, ErrInvalid, "none"},
		{"container:web", nil, ErrNotImplemented, "network stack"},
		{"", map[string]*network.EndpointSettings{"host": nil}, ErrNotImplemented, "host"},
		{"app", map[string]*network.EndpointSettings{"app": {Links: []string{"x"}}}, ErrNotImplemented, "--link"},
		{"app", map[string]*network.EndpointSettings{"app": {MacAddress: network.HardwareAddr{2, 0, 0, 0, 0, 1}}}, ErrNotImplemented, "--mac-address"},
		{"app", map[string]*network.EndpointSettings{"app": ep("bad name")}, ErrInvalid, "alias"},
		{"", map[string]*network.EndpointSettings{"bridge": ep("x")}, ErrInvalid, "user-defined"},
	} {
		_, err := plan(c.mode, c.eps)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.word) || strings.Contains(err.Error(), "\n") {
			t.Errorf("mode %q %v: %v, want %v mentioning %q", c.mode, c.eps, err, c.kind, c.word)
		}
	}
}

// storeSeam adapts the real network store to the manager's seam, as
// app/engine does.
type storeSeam struct{ s *netstore.Store }

func (n storeSeam) Lookup(ref string) (NetworkInfo, error) {
	nw, err := n.s.Get(ref)
	return NetworkInfo{ID: nw.ID, Name: nw.Name, Subnet: nw.Subnet, Gateway: nw.Gateway, Internal: nw.Internal}, err
}
func (n storeSeam) Allocate(netID, ctr string, want netip.Addr) (netip.Addr, error) {
	return n.s.Allocate(netID, ctr, want)
}
func (n storeSeam) Release(netID, ctr string) error             { return n.s.Release(netID, ctr) }
func (n storeSeam) Attach(netID, port string) (*os.File, error) { return n.s.Attach(netID, port) }
func (n storeSeam) Detach(netID, port string)                   { n.s.Detach(netID, port) }

// liveGuest marks a container as up on its networks; hostsLocked never
// calls it.
type liveGuest struct{ Guest }

func netManager(t *testing.T) (*Manager, *netstore.Store) {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ns, err := netstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{DB: db, Root: root, Networks: storeSeam{ns}})
	if err != nil {
		t.Fatal(err)
	}
	ns.ContainerName = m.ContainerName
	return m, ns
}

func addCtr(t *testing.T, m *Manager, id, name string, st container.ContainerState, nets []netAttachment) *ctr {
	t.Helper()
	r := record{ID: id, Name: name, State: st, Networks: nets, Config: container.Config{Hostname: id[:12]}}
	c, err := m.newCtr(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.put(&r); err != nil {
		t.Fatal(err)
	}
	m.byID[id], m.names[name] = c, id
	return c
}

func TestConnectDisconnect(t *testing.T) {
	m, ns := netManager(t)
	ctx := context.Background()
	app, _ := ns.Create("app", netstore.CreateOptions{Subnet: "10.9.0.0/24"})
	id := strings.Repeat("a", 64)
	c := addCtr(t, m, id, "web", container.StateExited, nil)

	if err := m.Connect(ctx, "app", "web", &network.EndpointSettings{Aliases: []string{"www"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Connect(ctx, "app", "web", nil); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already connected") {
		t.Fatalf("second connect: %v", err)
	}
	if err := m.Connect(ctx, "nope", "web", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown network: %v", err)
	}
	if len(c.rec.Networks) != 1 || c.rec.Networks[0].IP.String() != "10.9.0.2" || c.rec.Networks[0].Aliases[0] != "www" {
		t.Fatalf("record: %+v", c.rec.Networks)
	}
	if !m.OnNetwork(id, app.ID) || m.OnNetwork(id, "other") {
		t.Fatal("OnNetwork")
	}
	// The inspect view: bridge (eth0) and app, with Docker's fields.
	eps := m.endpoints(&c.rec)
	if eps["bridge"] == nil || eps["bridge"].NetworkID != DefaultNetworkID || eps["app"].IPAddress.String() != "10.9.0.2" ||
		eps["app"].Gateway.String() != "10.9.0.1" || eps["app"].IPPrefixLen != 24 || len(eps["app"].MacAddress) != 6 ||
		strings.Join(eps["app"].Aliases, ",") != "www,"+id[:12] {
		t.Fatalf("endpoints: %+v %+v", eps["bridge"], eps["app"])
	}
	if mem := m.NetworkMembers(app.ID); len(mem) != 1 || mem[0].Name != "web" {
		t.Fatalf("members: %+v", mem)
	}
	if _, err := ns.Remove("app"); !errors.Is(err, netstore.ErrConflict) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("remove in use: %v", err)
	}

	// A running container's NICs are fixed.
	m.mu.Lock()
	c.run = &run{}
	m.mu.Unlock()
	if err := m.Disconnect(ctx, "app", "web", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("disconnect running: %v", err)
	}
	m.mu.Lock()
	c.run = nil
	m.mu.Unlock()

	if err := m.Disconnect(ctx, "app", "web", false); err != nil {
		t.Fatal(err)
	}
	if err := m.Disconnect(ctx, "app", "web", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("second disconnect: %v", err)
	}
	if n, _ := ns.Get("app"); len(n.Addrs) != 0 || len(c.rec.Networks) != 0 {
		t.Fatalf("after disconnect: %v %v", n.Addrs, c.rec.Networks)
	}
	// The record survived on disk as changed.
	recs, _ := m.loadAll()
	if len(recs) != 1 || len(recs[0].Networks) != 0 {
		t.Fatalf("persisted: %+v", recs)
	}
	if err := m.Disconnect(ctx, "bridge", "web", false); !errors.Is(err, ErrNotImplemented) {
		t.Fatalf("disconnect bridge: %v", err)
	}
	if err := m.Connect(ctx, "host", "web", nil); !errors.Is(err, ErrNotImplemented) {
		t.Fatalf("connect host: %v", err)
	}
}

// Each live member's hosts file lists every live member of its networks
// under name, aliases and short ID; stopped members and members of other
// networks are left out.
func TestHostsLists(t *testing.T) {
	m, _ := netManager(t)
	ip := netip.MustParseAddr
	a := netAttachment{NetworkID: "n1", Name: "app", PrefixLen: 24}
	b := netAttachment{NetworkID: "n2", Name: "other", PrefixLen: 24}
	with := func(n netAttachment, addr string, aliases ...string) netAttachment {
		n.IP, n.Aliases = ip(addr), aliases
		return n
	}
	web := addCtr(t, m, strings.Repeat("1", 64), "web", container.StateRunning, []netAttachment{with(a, "10.0.9.2", "www")})
	db := addCtr(t, m, strings.Repeat("2", 64), "db", container.StateRunning, []netAttachment{with(a, "10.0.9.3"), with(b, "10.0.8.2", "database")})
	addCtr(t, m, strings.Repeat("3", 64), "stopped", container.StateExited, []netAttachment{with(a, "10.0.9.4")})
	lone := addCtr(t, m, strings.Repeat("4", 64), "lone", container.StateRunning, []netAttachment{with(b, "10.0.8.3")})
	web.rec.HostConfig.ExtraHosts = []string{"extra:1.2.3.4"}
	for _, c := range []*ctr{web, db, lone} {
		c.netGuest = liveGuest{}
	}
	got := strings.Join(m.hostsLocked(web), " ")
	want := "extra:1.2.3.4 web:10.0.9.2 www:10.0.9.2 111111111111:10.0.9.2 db:10.0.9.3 222222222222:10.0.9.3"
	if got != want {
		t.Fatalf("web's hosts:\n got %s\nwant %s", got, want)
	}
	// db is on both networks; its first network wins its own name.
	if got := strings.Join(m.hostsLocked(db), " "); !strings.Contains(got, "lone:10.0.8.3") || !strings.Contains(got, "db:10.0.9.3") ||
		strings.Contains(got, "db:10.0.8.2") || !strings.Contains(got, "database:10.0.8.2") || strings.Contains(got, "stopped") {
		t.Fatalf("db's hosts: %s", got)
	}
	if got := strings.Join(m.hostsLocked(lone), " "); strings.Contains(got, "web") || !strings.Contains(got, "db:10.0.8.2") {
		t.Fatalf("lone's hosts: %s", got)
	}
	if !sharesNetwork(&web.rec, &db.rec) || sharesNetwork(&web.rec, &lone.rec) {
		t.Fatal("sharesNetwork")
	}
}

// NetworkingConfig comes straight from API requests.
func FuzzPlanNetworks(f *testing.F) {
	f.Add("app", []byte(`{"EndpointsConfig":{"app":{"Aliases":["db"]},"bridge":{}}}`))
	f.Add("", []byte(`{"EndpointsConfig":{"x":{"IPAMConfig":{"IPv4Address":"10.0.0.5"}}}}`))
	f.Add("container:x", []byte(`{}`))
	f.Add("bridge", []byte(`{"EndpointsConfig":{"bridge":{"Aliases":["a"]}}}`))
	f.Fuzz(func(t *testing.T, mode string, body []byte) {
		var nc network.NetworkingConfig
		if json.Unmarshal(body, &nc) != nil {
			return
		}
		reqs, err := planNetworks(&container.HostConfig{NetworkMode: container.NetworkMode(mode)}, &nc)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(mode, "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range reqs {
			if isDefaultNetwork(r.ref) || seen[r.ref] || r.ref == "host" || r.ref == "none" {
				t.Fatalf("bad plan %+v", reqs)
			}
			seen[r.ref] = true
			for _, a := range r.aliases {
				if a == "" || strings.ContainsAny(a, " \t\n#") {
					t.Fatalf("bad alias %q accepted", a)
				}
			}
		}
	})
}

// Docker ANDs label filters; compose lists a service's containers with
// project AND service labels, and numbers new ones from the answer.
func TestLabelFiltersAreANDed(t *testing.T) {
	r := &record{Config: container.Config{Labels: map[string]string{"p": "x", "s": "web"}}}
	for _, c := range []struct {
		terms []string
		want  bool
	}{
		{[]string{"p=x", "s=web"}, true},
		{[]string{"p=x", "s=client"}, false},
		{[]string{"p", "s"}, true},
		{[]string{"p=x", "other"}, false},
	} {
		if got, err := matchFilters(r, map[string][]string{"label": c.terms}); err != nil || got != c.want {
			t.Errorf("label %v: %v %v, want %v", c.terms, got, err, c.want)
		}
	}
	r.Networks = []netAttachment{{NetworkID: strings.Repeat("e", 64), Name: "app"}}
	for v, want := range map[string]bool{"app": true, "eee": true, "other": false, "bridge": true} {
		if got, _ := matchFilters(r, map[string][]string{"network": {v}}); got != want {
			t.Errorf("network=%s: %v", v, got)
		}
	}
}

func TestExtraHostsGateway(t *testing.T) {
	for _, tc := range []struct {
		lines   []string
		gateway string
		want    []string
	}{
		{nil, "", nil},
		{nil, "10.0.2.2", []string{"host.docker.internal:10.0.2.2"}},
		{[]string{"mine:host-gateway", "db:192.0.2.7"}, "10.0.2.2", []string{"mine:10.0.2.2", "db:192.0.2.7", "host.docker.internal:10.0.2.2"}},
		{[]string{"mine:host-gateway", "db:192.0.2.7"}, "", []string{"db:192.0.2.7"}},                        // before DHCP
		{[]string{"host.docker.internal:192.0.2.9"}, "10.0.2.2", []string{"host.docker.internal:192.0.2.9"}}, // the user's wins
		{[]string{"v6:::1"}, "10.0.2.2", []string{"v6:::1", "host.docker.internal:10.0.2.2"}},
	} {
		got, _ := extraHosts(tc.lines, tc.gateway)
		if !slices.Equal(got, tc.want) {
			t.Errorf("extraHosts(%q, %q) = %q, want %q", tc.lines, tc.gateway, got, tc.want)
		}
	}
}

func TestWithoutNAT(t *testing.T) {
	for _, tc := range []struct {
		mode string
		nets []netAttachment
		want bool
	}{
		{"", nil, false},
		{"none", nil, true},
		{"app", []netAttachment{{Name: "app"}}, false},
		{"app", []netAttachment{{Name: "app", Internal: true}}, true},
		{"app", []netAttachment{{Name: "app", Internal: true}, {Name: "web"}}, false}, // the other network leads out
	} {
		r := &record{Networks: tc.nets}
		r.HostConfig.NetworkMode = container.NetworkMode(tc.mode)
		if got := withoutNAT(r); got != tc.want {
			t.Errorf("withoutNAT(%q, %+v) = %v, want %v", tc.mode, tc.nets, got, tc.want)
		}
	}
}
