//go:build linux

package agent

import (
	"net"
	"strings"
	"testing"
)

func TestResolveUserIn(t *testing.T) {
	passwd := parseColonFile(strings.NewReader("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:app:/home/app:/bin/sh\nshort:x\n"))
	groups := parseColonFile(strings.NewReader("root:x:0:\nusers:x:100:app,other\napp:x:1000:\n"))
	for _, tc := range []struct {
		user      string
		extra     []string
		uid, gid  uint32
		groups    []int
		home, err string
	}{
		{user: "", uid: 0, gid: 0, groups: []int{0}, home: "/root"},
		{user: "app", uid: 1000, gid: 1000, groups: []int{1000, 100}, home: "/home/app"},
		{user: "app:users", uid: 1000, gid: 100, groups: []int{100, 100}, home: "/home/app"},
		{user: "1000", uid: 1000, gid: 1000, groups: []int{1000, 100}, home: "/home/app"},
		{user: "77:88", uid: 77, gid: 88, groups: []int{88}, home: "/"},
		{user: "root", extra: []string{"users", "5"}, uid: 0, gid: 0, groups: []int{0, 100, 5}, home: "/root"},
		{user: "nobody", err: "unable to find user nobody"},
		{user: "app:nogroup", err: "unable to find group nogroup"},
		{user: "root", extra: []string{"nogroup"}, err: "unable to find group nogroup"},
	} {
		c, home, err := resolveUserIn(tc.user, tc.extra, passwd, groups)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.user, err, tc.err)
			}
			continue
		}
		if err != nil || c.uid != tc.uid || c.gid != tc.gid || home != tc.home || len(c.groups) != len(tc.groups) {
			t.Errorf("%q: %+v %q %v", tc.user, c, home, err)
			continue
		}
		for i := range c.groups {
			if c.groups[i] != tc.groups[i] {
				t.Errorf("%q: groups %v want %v", tc.user, c.groups, tc.groups)
			}
		}
	}
}

func TestDHCPRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	p := dhcpPacket(42, mac, dhcpDiscover, net.IPv4(10, 0, 2, 15), net.IPv4(10, 0, 2, 2))
	// Turn the request into a server reply the parser must accept.
	p[0] = 2
	copy(p[16:20], net.IPv4(10, 0, 2, 15).To4())
	opts := []byte{53, 1, dhcpAck, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 8, 10, 0, 2, 3, 8, 8, 8, 8, 51, 4, 0, 1, 81, 128, 255}
	p = append(p[:240], opts...)
	r, ok := parseDHCP(p, 42)
	if !ok || r.msgType != dhcpAck || r.yiaddr.String() != "10.0.2.15" || r.router.String() != "10.0.2.2" ||
		len(r.dns) != 2 || r.dns[1].String() != "8.8.8.8" || net.IP(r.mask).String() != "255.255.255.0" || r.leaseSecs != 86400 {
		t.Fatalf("%+v %v", r, ok)
	}
	if _, ok := parseDHCP(p, 43); ok {
		t.Fatal("wrong xid accepted")
	}
}

func FuzzParseDHCP(f *testing.F) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	seed := dhcpPacket(7, mac, dhcpRequest, net.IPv4(10, 0, 2, 15), net.IPv4(10, 0, 2, 2))
	seed[0] = 2
	f.Add(seed)
	f.Add(append(append([]byte(nil), seed[:240]...), 53, 1, 2, 6, 3, 1, 2, 3, 255))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseDHCP(b, 7)
		if ok && (r.msgType == 0 || len(r.yiaddr) != 4) {
			t.Fatalf("accepted a reply without a type or address: %+v", r)
		}
	})
}

func FuzzCleanInRoot(f *testing.F) {
	for _, s := range []string{"/", "", ".", "a/b", "/a/../b", "../x", "a//b/./c", "..", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := cleanInRoot(p)
		if err != nil {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "/../") || strings.HasSuffix(c, "/..") {
			t.Fatalf("cleanInRoot(%q) = %q escapes", p, c)
		}
	})
}

func FuzzResolveUser(f *testing.F) {
	f.Add("app:users", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", "users:x:100:app\n")
	f.Add("1000:1000", "", "")
	f.Add("::", ":::::\n", ":::\n")
	f.Fuzz(func(t *testing.T, user, passwd, group string) {
		resolveUserIn(user, []string{"0"}, parseColonFile(strings.NewReader(passwd)), parseColonFile(strings.NewReader(group)))
	})
}
