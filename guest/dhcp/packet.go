//go:build linux

package dhcp

import (
	"encoding/binary"
	"net"
	"time"
)

// Message types (option 53).
const (
	msgDiscover = 1
	msgOffer    = 2
	msgRequest  = 3
	msgAck      = 5
	msgNak      = 6
)

var cookie = []byte{99, 130, 83, 99}

// packet builds a BOOTREQUEST. ciaddr is set when renewing or rebinding
// (the client owns the address and can take unicast replies); reqIP and
// serverID only when selecting an offer.
func (c *Client) packet(xid uint32, msgType byte, ciaddr, reqIP, serverID net.IP) []byte {
	p := make([]byte, 240, 300)
	p[0], p[1], p[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, hlen
	binary.BigEndian.PutUint32(p[4:], xid)
	if ciaddr == nil {
		binary.BigEndian.PutUint16(p[10:], 0x8000) // no address yet: broadcast replies
	} else {
		copy(p[12:16], ciaddr.To4())
	}
	copy(p[28:], c.MAC)
	copy(p[236:], cookie)
	p = append(p, 53, 1, msgType)
	p = append(p, 61, 7, 1)
	p = append(p, c.MAC...)
	if reqIP != nil {
		p = append(p, 50, 4)
		p = append(p, reqIP.To4()...)
	}
	if serverID != nil {
		p = append(p, 54, 4)
		p = append(p, serverID.To4()...)
	}
	p = append(p, 55, 6, 1, 3, 6, 51, 58, 59) // mask, router, dns, lease, T1, T2
	p = append(p, 255)
	return p
}

type reply struct {
	msgType        byte
	yiaddr         net.IP
	serverID       net.IP
	mask           net.IPMask
	router         net.IP
	dns            []net.IP
	leaseSecs      uint32
	t1Secs, t2Secs uint32
}

// parse accepts a BOOTREPLY to xid with a message type and an IPv4 yiaddr.
func parse(b []byte, xid uint32) (*reply, bool) {
	if len(b) < 240 || b[0] != 2 || binary.BigEndian.Uint32(b[4:]) != xid || string(b[236:240]) != string(cookie) {
		return nil, false
	}
	r := &reply{yiaddr: net.IP(append([]byte(nil), b[16:20]...))}
	ip4 := func(v []byte) net.IP { return net.IP(append([]byte(nil), v[:4]...)) }
	opts := b[240:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 0 {
			opts = opts[1:]
			continue
		}
		if code == 255 || len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			break
		}
		v := opts[2 : 2+int(opts[1])]
		switch {
		case code == 53 && len(v) == 1:
			r.msgType = v[0]
		case code == 54 && len(v) == 4:
			r.serverID = ip4(v)
		case code == 1 && len(v) == 4:
			r.mask = net.IPMask(ip4(v))
		case code == 3 && len(v) >= 4:
			r.router = ip4(v)
		case code == 6:
			for i := 0; i+4 <= len(v); i += 4 {
				r.dns = append(r.dns, ip4(v[i:]))
			}
		case code == 51 && len(v) == 4:
			r.leaseSecs = binary.BigEndian.Uint32(v)
		case code == 58 && len(v) == 4:
			r.t1Secs = binary.BigEndian.Uint32(v)
		case code == 59 && len(v) == 4:
			r.t2Secs = binary.BigEndian.Uint32(v)
		}
		opts = opts[2+int(opts[1]):]
	}
	return r, r.msgType != 0
}

// infinite is option 51's "forever" (RFC 2132 9.2).
const infinite = 0xffffffff

// lease turns an ACK into a Lease counted from start (when the request
// went out, as RFC 2131 4.4.1 asks). server is the one that granted it, for
// ACKs that omit their identifier.
func (r *reply) lease(start time.Time, server net.IP) *Lease {
	mask := r.mask
	if mask == nil {
		mask = r.yiaddr.DefaultMask()
	}
	if r.serverID != nil {
		server = r.serverID
	}
	l := &Lease{Addr: &net.IPNet{IP: r.yiaddr, Mask: mask}, Router: r.router, DNS: r.dns, Server: server, Acquired: start}
	secs := r.leaseSecs
	l.Duration = time.Duration(secs) * time.Second
	if secs == 0 || secs == infinite {
		// Forever, or no time given (nothing to renew against):
		// a century, so the renewal timers never fire.
		l.Duration = 100 * 365 * 24 * time.Hour
	}
	l.T1, l.T2 = l.Duration/2, l.Duration*7/8
	if r.t1Secs > 0 && r.t1Secs < secs {
		l.T1 = time.Duration(r.t1Secs) * time.Second
	}
	if r.t2Secs > 0 && r.t2Secs < secs && time.Duration(r.t2Secs)*time.Second > l.T1 {
		l.T2 = time.Duration(r.t2Secs) * time.Second
	}
	if l.T2 <= l.T1 {
		l.T2 = l.T1 + (l.Duration-l.T1)*3/4
	}
	return l
}
