//go:build linux

package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// A minimal DHCPv4 client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK. It asks
// servers to broadcast replies, so a UDP socket bound to the interface
// receives them before the interface has an address. Renewal is not needed:
// a container VM lives far shorter than QEMU's (1 day) or vmnet's leases.

type lease struct {
	addr      *net.IPNet
	router    net.IP
	dns       []net.IP
	leaseSecs uint32
}

const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6
)

var dhcpCookie = []byte{99, 130, 83, 99}

func dhcp(ctx context.Context, ifname string, mac net.HardwareAddr) (*lease, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("interface has no Ethernet address")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	if err := unix.BindToDevice(fd, ifname); err != nil {
		return nil, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 68}); err != nil {
		return nil, fmt.Errorf("bind port 68: %w", err)
	}
	var xidb [4]byte
	rand.Read(xidb[:])
	xid := binary.BigEndian.Uint32(xidb[:])
	bcast := &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}

	exchange := func(msg []byte, want byte) (*dhcpReply, error) {
		backoff := 500 * time.Millisecond
		for {
			if err := unix.Sendto(fd, msg, 0, bcast); err != nil {
				return nil, fmt.Errorf("send: %w", err)
			}
			deadline := time.Now().Add(backoff)
			for {
				if err := ctx.Err(); err != nil {
					return nil, errors.New("no answer from a DHCP server before the timeout")
				}
				wait := time.Until(deadline)
				if wait <= 0 {
					break
				}
				tv := unix.NsecToTimeval(wait.Nanoseconds())
				unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
				buf := make([]byte, 1500)
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					continue // timeout or EINTR: look at the clock again
				}
				r, ok := parseDHCP(buf[:n], xid)
				if !ok {
					continue
				}
				if r.msgType == dhcpNak {
					return nil, errors.New("the DHCP server refused the request (NAK)")
				}
				if r.msgType == want {
					return r, nil
				}
			}
			if backoff < 4*time.Second {
				backoff *= 2
			}
		}
	}
	offer, err := exchange(dhcpPacket(xid, mac, dhcpDiscover, nil, nil), dhcpOffer)
	if err != nil {
		return nil, err
	}
	ack, err := exchange(dhcpPacket(xid, mac, dhcpRequest, offer.yiaddr, offer.serverID), dhcpAck)
	if err != nil {
		return nil, err
	}
	mask := ack.mask
	if mask == nil {
		mask = ack.yiaddr.DefaultMask()
	}
	return &lease{addr: &net.IPNet{IP: ack.yiaddr, Mask: mask}, router: ack.router, dns: ack.dns, leaseSecs: ack.leaseSecs}, nil
}

func dhcpPacket(xid uint32, mac net.HardwareAddr, msgType byte, reqIP, serverID net.IP) []byte {
	p := make([]byte, 240, 300)
	p[0], p[1], p[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, hlen
	binary.BigEndian.PutUint32(p[4:], xid)
	binary.BigEndian.PutUint16(p[10:], 0x8000) // broadcast replies
	copy(p[28:], mac)
	copy(p[236:], dhcpCookie)
	p = append(p, 53, 1, msgType)
	p = append(p, 61, 7, 1)
	p = append(p, mac...)
	if reqIP != nil {
		p = append(p, 50, 4)
		p = append(p, reqIP.To4()...)
	}
	if serverID != nil {
		p = append(p, 54, 4)
		p = append(p, serverID.To4()...)
	}
	p = append(p, 55, 4, 1, 3, 6, 51) // mask, router, dns, lease
	p = append(p, 255)
	return p
}

type dhcpReply struct {
	msgType   byte
	yiaddr    net.IP
	serverID  net.IP
	mask      net.IPMask
	router    net.IP
	dns       []net.IP
	leaseSecs uint32
}

func parseDHCP(b []byte, xid uint32) (*dhcpReply, bool) {
	if len(b) < 240 || b[0] != 2 || binary.BigEndian.Uint32(b[4:]) != xid || string(b[236:240]) != string(dhcpCookie) {
		return nil, false
	}
	r := &dhcpReply{yiaddr: net.IP(append([]byte(nil), b[16:20]...))}
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
		switch code {
		case 53:
			if len(v) == 1 {
				r.msgType = v[0]
			}
		case 54:
			if len(v) == 4 {
				r.serverID = net.IP(append([]byte(nil), v...))
			}
		case 1:
			if len(v) == 4 {
				r.mask = net.IPMask(append([]byte(nil), v...))
			}
		case 3:
			if len(v) >= 4 {
				r.router = net.IP(append([]byte(nil), v[:4]...))
			}
		case 6:
			for i := 0; i+4 <= len(v); i += 4 {
				r.dns = append(r.dns, net.IP(append([]byte(nil), v[i:i+4]...)))
			}
		case 51:
			if len(v) == 4 {
				r.leaseSecs = binary.BigEndian.Uint32(v)
			}
		}
		opts = opts[2+int(opts[1]):]
	}
	return r, r.msgType != 0
}
