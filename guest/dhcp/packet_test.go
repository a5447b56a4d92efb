//go:build linux

package dhcp

import (
	"net"
	"testing"
	"time"
)

var testMAC, _ = net.ParseMAC("02:00:00:00:00:01")

// ack turns a request into a server reply carrying opts.
func ack(req []byte, yiaddr net.IP, opts ...byte) []byte {
	p := append([]byte(nil), req[:240]...)
	p[0] = 2
	copy(p[16:20], yiaddr.To4())
	return append(p, append(opts, 255)...)
}

func TestParseAndLease(t *testing.T) {
	c := &Client{Interface: "eth0", MAC: testMAC}
	req := c.packet(42, msgDiscover, nil, net.IPv4(10, 0, 2, 15), net.IPv4(10, 0, 2, 2))
	p := ack(req, net.IPv4(10, 0, 2, 15), 53, 1, msgAck, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 8, 10, 0, 2, 3, 8, 8, 8, 8, 51, 4, 0, 1, 81, 128, 54, 4, 10, 0, 2, 2)
	r, ok := parse(p, 42)
	if !ok || r.msgType != msgAck || r.yiaddr.String() != "10.0.2.15" || r.router.String() != "10.0.2.2" ||
		len(r.dns) != 2 || r.dns[1].String() != "8.8.8.8" || net.IP(r.mask).String() != "255.255.255.0" || r.leaseSecs != 86400 {
		t.Fatalf("%+v %v", r, ok)
	}
	if _, ok := parse(p, 43); ok {
		t.Fatal("wrong xid accepted")
	}
	start := time.Unix(1000, 0)
	l := r.lease(start, nil)
	if l.Addr.String() != "10.0.2.15/24" || l.Server.String() != "10.0.2.2" || l.Duration != 24*time.Hour || l.T1 != 12*time.Hour || l.T2 != 21*time.Hour || !l.Acquired.Equal(start) {
		t.Fatalf("lease %+v", l)
	}
	// The server's own T1/T2 win when they make sense.
	r.t1Secs, r.t2Secs = 600, 1200
	if l := r.lease(start, nil); l.T1 != 10*time.Minute || l.T2 != 20*time.Minute {
		t.Fatalf("T1/T2 from options: %v %v", l.T1, l.T2)
	}
	r.t1Secs, r.t2Secs = 90000, 10 // beyond the lease, before T1: ignored
	if l := r.lease(start, nil); l.T1 != 12*time.Hour || l.T2 != 21*time.Hour {
		t.Fatalf("bad T1/T2 not ignored: %v %v", l.T1, l.T2)
	}
	// Infinite and missing lease times never renew.
	for _, secs := range []uint32{0, infinite} {
		r.leaseSecs, r.t1Secs, r.t2Secs = secs, 0, 0
		if l := r.lease(start, nil); l.T1 < 10*365*24*time.Hour {
			t.Fatalf("lease %d: T1 %v", secs, l.T1)
		}
	}
	// No server identifier in the ACK: renewals go to the one we had.
	r.serverID = nil
	if l := r.lease(start, net.IPv4(192, 168, 1, 1)); l.Server.String() != "192.168.1.1" {
		t.Fatalf("server %v", l.Server)
	}
}

func TestPacketStates(t *testing.T) {
	c := &Client{Interface: "eth0", MAC: testMAC}
	// Selecting: broadcast flag, requested IP and server id, no ciaddr.
	sel := c.packet(1, msgRequest, nil, net.IPv4(10, 0, 2, 15), net.IPv4(10, 0, 2, 2))
	if sel[10] != 0x80 || !net.IP(sel[12:16]).Equal(net.IPv4zero) || !hasOption(sel, 50) || !hasOption(sel, 54) {
		t.Fatalf("selecting request: % x", sel)
	}
	// Renewing/rebinding: ciaddr, no broadcast flag, neither option.
	ren := c.packet(1, msgRequest, net.IPv4(10, 0, 2, 15), nil, nil)
	if ren[10] != 0 || !net.IP(ren[12:16]).Equal(net.IPv4(10, 0, 2, 15)) || hasOption(ren, 50) || hasOption(ren, 54) {
		t.Fatalf("renewing request: % x", ren)
	}
}

func hasOption(p []byte, code byte) bool {
	opts := p[240:]
	for len(opts) >= 2 && opts[0] != 255 {
		if opts[0] == code {
			return true
		}
		opts = opts[2+int(opts[1]):]
	}
	return false
}

func FuzzParse(f *testing.F) {
	c := &Client{Interface: "eth0", MAC: testMAC}
	seed := c.packet(7, msgRequest, nil, net.IPv4(10, 0, 2, 15), net.IPv4(10, 0, 2, 2))
	seed[0] = 2
	f.Add(seed)
	f.Add(append(append([]byte(nil), seed[:240]...), 53, 1, 2, 6, 3, 1, 2, 3, 255))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parse(b, 7)
		if !ok {
			return
		}
		if r.msgType == 0 || len(r.yiaddr) != 4 {
			t.Fatalf("accepted a reply without a type or address: %+v", r)
		}
		l := r.lease(time.Unix(0, 0), nil)
		if l.T1 <= 0 || l.T2 <= l.T1 || l.Duration < l.T2 {
			t.Fatalf("timers out of order: T1 %v T2 %v lease %v", l.T1, l.T2, l.Duration)
		}
	})
}
