package network

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

func openDB(t testing.TB) (*state.DB, string) {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	return db, root.StateDB()
}

func open(t *testing.T) *Store {
	t.Helper()
	db, _ := openDB(t)
	t.Cleanup(func() { db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func wantErr(t *testing.T, err, kind error, words ...string) {
	t.Helper()
	if err == nil || !errors.Is(err, kind) {
		t.Fatalf("got %v, want a %v error", err, kind)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestNames(t *testing.T) {
	s := open(t)
	for _, bad := range []string{"", "-x", "a b", "../x", "x/y", strings.Repeat("a", 256)} {
		_, err := s.Create(bad, CreateOptions{})
		wantErr(t, err, ErrInvalid)
	}
	for _, pre := range []string{"bridge", "host", "none", "default"} {
		_, err := s.Create(pre, CreateOptions{})
		wantErr(t, err, ErrConflict, "predefined")
	}
	if _, err := s.Create("app_net-1.x", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create("app_net-1.x", CreateOptions{})
	wantErr(t, err, ErrConflict, "already exists", "docker network rm")
	_, err = s.Create("x", CreateOptions{Driver: "overlay"})
	wantErr(t, err, ErrNotImplemented, "overlay")
	_, err = s.Create("x", CreateOptions{Options: map[string]string{"com.docker.network.driver.mtu": "9000"}})
	wantErr(t, err, ErrNotImplemented, "mtu")
	if l, _ := s.List(); len(l) != 1 {
		t.Fatalf("failed creates left records: %v", l)
	}
}

func TestSubnets(t *testing.T) {
	s := open(t)
	a, err := s.Create("a", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create("b", CreateOptions{Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet.String() != "172.18.0.0/16" || a.Gateway.String() != "172.18.0.1" || b.Subnet.String() != "172.19.0.0/16" {
		t.Fatalf("default subnets: %v gw %v, %v", a.Subnet, a.Gateway, b.Subnet)
	}
	for _, c := range []struct {
		subnet, gw string
		kind       error
		word       string
	}{
		{"172.18.5.0/24", "", ErrConflict, "network a"},
		{"172.16.0.0/12", "", ErrConflict, "overlaps"},
		{"10.0.2.0/25", "", ErrConflict, "NAT"},
		{"10.1.0.1/24", "", ErrInvalid, "10.1.0.0/24"},
		{"10.1.0.0/30", "", ErrInvalid, "too small"},
		{"fd00::/64", "", ErrInvalid, "IPv4"},
		{"nonsense", "", ErrInvalid, "CIDR"},
		{"10.1.0.0/24", "10.2.0.1", ErrInvalid, "gateway"},
		{"10.1.0.0/24", "10.1.0.255", ErrInvalid, "gateway"},
		{"", "10.1.0.1", ErrInvalid, "--subnet"},
	} {
		_, err := s.Create("c", CreateOptions{Subnet: c.subnet, Gateway: c.gw})
		wantErr(t, err, c.kind, c.word)
	}
	c, err := s.Create("c", CreateOptions{Subnet: "10.1.0.0/24", Gateway: "10.1.0.254"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.String() != "10.1.0.254" {
		t.Fatal(c.Gateway)
	}
	// Lookups: name, ID, prefix.
	for _, ref := range []string{"b", b.ID, b.ID[:5]} {
		if n, err := s.Get(ref); err != nil || n.ID != b.ID || n.Labels["k"] != "v" {
			t.Fatalf("Get(%q) = %v, %v", ref, n.Name, err)
		}
	}
	_, err = s.Get("nope")
	wantErr(t, err, ErrNotFound, "nope")
}

func TestAllocate(t *testing.T) {
	s := open(t)
	n, err := s.Create("small", CreateOptions{Subnet: "10.5.0.0/29"}) // hosts .1-.6, .1 the gateway
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 5; i++ {
		a, err := s.Allocate(n.ID, "c"+string(rune('0'+i)), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.5.0.2 10.5.0.3 10.5.0.4 10.5.0.5 10.5.0.6" {
		t.Fatal(got)
	}
	_, err = s.Allocate(n.ID, "c9", netip.Addr{})
	wantErr(t, err, ErrConflict, "no free address", "small", "--subnet")
	// The same container keeps its address.
	if a, _ := s.Allocate(n.ID, "c2", netip.Addr{}); a.String() != "10.5.0.4" {
		t.Fatal(a)
	}
	if err := s.Release(n.ID, "c2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(n.ID, "c2"); err != nil { // idempotent
		t.Fatal(err)
	}
	if a, err := s.Allocate(n.ID, "c9", netip.Addr{}); err != nil || a.String() != "10.5.0.4" {
		t.Fatalf("reuse: %v %v", a, err)
	}
	// --ip
	s.Release(n.ID, "c0")
	_, err = s.Allocate(n.ID, "x", netip.MustParseAddr("10.5.0.3"))
	wantErr(t, err, ErrConflict, "in use", "c1")
	_, err = s.Allocate(n.ID, "x", netip.MustParseAddr("10.5.0.1"))
	wantErr(t, err, ErrConflict, "gateway")
	_, err = s.Allocate(n.ID, "x", netip.MustParseAddr("10.6.0.3"))
	wantErr(t, err, ErrInvalid, "10.5.0.0/29")
	_, err = s.Allocate(n.ID, "x", netip.MustParseAddr("10.5.0.7"))
	wantErr(t, err, ErrInvalid)
	if a, err := s.Allocate(n.ID, "x", netip.MustParseAddr("10.5.0.2")); err != nil || a.String() != "10.5.0.2" {
		t.Fatal(a, err)
	}
	// In use: remove refused, naming the containers.
	s.ContainerName = func(id string) string { return "name-" + id }
	_, err = s.Remove("small")
	wantErr(t, err, ErrConflict, "in use", "name-c1", "disconnect")
	// Reconcile drops addresses of containers that do not exist.
	if err := s.Reconcile(func(id, netID string) bool { return id == "x" && netID == n.ID }); err != nil {
		t.Fatal(err)
	}
	n, _ = s.Get("small")
	if len(n.Addrs) != 1 || n.Addrs["x"].String() != "10.5.0.2" {
		t.Fatal(n.Addrs)
	}
	s.Release(n.ID, "x")
	if _, err := s.Remove("small"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Allocate(n.ID, "y", netip.Addr{})
	wantErr(t, err, ErrNotFound)
	if err := s.Release(n.ID, "y"); err != nil {
		t.Fatal("release on a removed network:", err)
	}
}

// Addresses and networks survive a reopen of the database (engine restart).
func TestPersisted(t *testing.T) {
	db, path := openDB(t)
	s, _ := Open(db)
	n, err := s.Create("p", CreateOptions{Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Allocate(n.ID, "ctr", netip.Addr{})
	s.Close()
	db.Close()
	db, err = state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ = Open(db)
	m, err := s.Get("p")
	if err != nil || m.ID != n.ID || !m.Internal || m.Addrs["ctr"] != a || m.Subnet != n.Subnet {
		t.Fatalf("after reopen: %+v %v", m, err)
	}
}

func TestPrune(t *testing.T) {
	s := open(t)
	s.Create("keep", CreateOptions{Labels: map[string]string{"proj": "a"}})
	s.Create("old", CreateOptions{Labels: map[string]string{"proj": "b"}})
	used, _ := s.Create("used", CreateOptions{Labels: map[string]string{"proj": "b"}})
	s.Allocate(used.ID, "c", netip.Addr{})
	out, err := s.Prune([]string{"proj=b"}, nil, time.Time{})
	if err != nil || len(out) != 1 || out[0].Name != "old" {
		t.Fatalf("prune: %v %v", out, err)
	}
	out, _ = s.Prune(nil, []string{"proj=a"}, time.Time{})
	if len(out) != 0 {
		t.Fatal(out)
	}
	out, _ = s.Prune(nil, nil, time.Now().Add(-time.Hour))
	if len(out) != 0 {
		t.Fatal("until: pruned a new network", out)
	}
}

// Two ports on a network's switch exchange frames; a port on another
// network hears nothing.
func TestAttach(t *testing.T) {
	s := open(t)
	a, _ := s.Create("a", CreateOptions{})
	b, _ := s.Create("b", CreateOptions{})
	f1, err := s.Attach(a.ID, "one")
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := s.Attach(a.ID, "two")
	f3, _ := s.Attach(b.ID, "three")
	c1, _ := net.FileConn(f1)
	c2, _ := net.FileConn(f2)
	c3, _ := net.FileConn(f3)
	f1.Close()
	f2.Close()
	f3.Close()
	defer c1.Close()
	defer c2.Close()
	defer c3.Close()
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	if _, err := c1.Write(frame); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c2.Read(buf); err != nil || n != 60 {
		t.Fatalf("broadcast on the same network: %d %v", n, err)
	}
	c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c3.Read(buf); err == nil {
		t.Fatal("a frame crossed to another network")
	}
	// Re-attaching the same port (a VM that died without a detach) works.
	f, err := s.Attach(a.ID, "one")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.Detach(a.ID, "one")
	s.Detach(a.ID, "nope")
	if _, err := s.Attach("missing", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// Names, subnets and gateways come straight from API requests.
func FuzzCreate(f *testing.F) {
	f.Add("app", "10.1.0.0/24", "10.1.0.9")
	f.Add("x", "172.18.0.0/16", "")
	f.Add("a.b-c_d", "", "")
	f.Add("bad/name", "10.0.2.0/23", "10.0.2.1")
	f.Add("n", "192.168.1.0/29", "192.168.1.7")
	f.Add("n", "0.0.0.0/0", "")
	db, _ := openDB(f)
	f.Cleanup(func() { db.Close() })
	s, _ := Open(db)
	f.Fuzz(func(t *testing.T, name, subnet, gw string) {
		n, err := s.Create(name, CreateOptions{Subnet: subnet, Gateway: gw})
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.ContainsAny(name+subnet+gw, "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		defer s.Remove(n.ID)
		if !n.Subnet.Contains(n.Gateway) || n.Gateway == n.Subnet.Addr() || n.Gateway == broadcast(n.Subnet) || n.Subnet.Masked() != n.Subnet {
			t.Fatalf("bad network %+v", n)
		}
		for _, r := range reserved {
			if r.Overlaps(n.Subnet) {
				t.Fatalf("subnet %s overlaps %s", n.Subnet, r)
			}
		}
		a, err := s.Allocate(n.ID, "c", netip.Addr{})
		if err != nil || !n.Subnet.Contains(a) || a == n.Gateway {
			t.Fatalf("allocate on %+v: %v %v", n, a, err)
		}
		s.Release(n.ID, "c")
	})
}
