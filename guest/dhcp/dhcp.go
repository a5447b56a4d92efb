//go:build linux

// Package dhcp is the guest agent's DHCPv4 client (RFC 2131): it acquires a
// lease for one interface and then keeps it — renewing at T1 with the server
// that granted it, rebinding with any server at T2, and giving the address
// up when the lease runs out, then starting over. A container can run for
// weeks; the lease under vz's NAT (macOS bootpd) is a day.
//
// Every exchange uses a UDP socket bound to the interface (SO_BINDTODEVICE)
// on port 68, opened for that exchange only. Replies before the interface
// has an address are asked to come as broadcasts, which that socket receives.
package dhcp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Lease is an address granted by a server.
type Lease struct {
	Addr   *net.IPNet
	Router net.IP   // nil when the server named none
	DNS    []net.IP // may be empty
	Server net.IP   // the server identifier: where renewals go
	// Duration is the lease time; T1 and T2 are when to renew and rebind,
	// all counted from Acquired.
	Duration, T1, T2 time.Duration
	Acquired         time.Time
}

func (l *Lease) String() string {
	return fmt.Sprintf("%s from %s for %s", l.Addr, l.Server, l.Duration)
}

// ErrNAK is returned when the server refuses a request: the address is not
// ours (any more).
var ErrNAK = errors.New("the DHCP server refused the request (NAK)")

// errNoAnswer is what a silent network gets.
var errNoAnswer = errors.New("no answer from a DHCP server before the timeout")

// Client talks DHCP on one interface.
type Client struct {
	Interface string
	MAC       net.HardwareAddr
}

// Acquire runs DISCOVER, OFFER, REQUEST, ACK until ctx ends.
func (c *Client) Acquire(ctx context.Context) (*Lease, error) {
	if len(c.MAC) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", c.Interface)
	}
	xid := newXID()
	offer, err := c.exchange(ctx, c.packet(xid, msgDiscover, nil, nil, nil), broadcast, xid, msgOffer)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ack, err := c.exchange(ctx, c.packet(xid, msgRequest, nil, offer.yiaddr, offer.serverID), broadcast, xid, msgAck)
	if err != nil {
		return nil, err
	}
	return ack.lease(start, offer.serverID), nil
}

// Renew asks the server that granted l to extend it (RENEWING: unicast,
// ciaddr set).
func (c *Client) Renew(ctx context.Context, l *Lease) (*Lease, error) {
	return c.extend(ctx, l, l.Server)
}

// Rebind asks any server to extend l (REBINDING: broadcast, ciaddr set),
// for when the granting server does not answer.
func (c *Client) Rebind(ctx context.Context, l *Lease) (*Lease, error) {
	return c.extend(ctx, l, nil)
}

func (c *Client) extend(ctx context.Context, l *Lease, server net.IP) (*Lease, error) {
	xid := newXID()
	dst := broadcast
	if server != nil {
		dst = server
	}
	start := time.Now()
	ack, err := c.exchange(ctx, c.packet(xid, msgRequest, l.Addr.IP, nil, nil), dst, xid, msgAck)
	if err != nil {
		return nil, err
	}
	return ack.lease(start, l.Server), nil
}

// Events Keep reports to its caller, which owns the interface's
// configuration.
const (
	Renewed = "renewed" // extended by its server (new may differ in DNS/router)
	Rebound = "rebound" // extended by whichever server answered a broadcast
	Expired = "expired" // stop using old: new is nil
	Bound   = "bound"   // a fresh lease after an expiry or a NAK
)

// Keep maintains l until ctx ends: at T1 it renews, at T2 it rebinds,
// retrying each half-way to the next deadline (RFC 2131 4.4.5); on a NAK or
// at expiry it reports the address gone and acquires a new one, retrying
// with backoff for as long as it takes. apply is called with every change;
// an error from it is reported through logf and does not stop the loop.
func (c *Client) Keep(ctx context.Context, l *Lease, apply func(event string, old, new *Lease) error, logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	report := func(event string, old, new *Lease) {
		if err := apply(event, old, new); err != nil {
			logf("dhcp %s: applying the %s lease: %v", c.Interface, event, err)
		}
	}
	for ctx.Err() == nil {
		next, event, err := c.keepOnce(ctx, l)
		switch {
		case err == nil:
			report(event, l, next)
			l = next
			continue
		case ctx.Err() != nil:
			return
		}
		// NAK or expiry: the address is no longer ours.
		logf("dhcp %s: lease %s lost: %v", c.Interface, l, err)
		report(Expired, l, nil)
		l = c.reacquire(ctx, logf)
		if l == nil {
			return
		}
		report(Bound, nil, l)
	}
}

// keepOnce waits for T1 and extends l, renewing then rebinding, until it
// succeeds (Renewed or Rebound), is refused, or l expires.
func (c *Client) keepOnce(ctx context.Context, l *Lease) (*Lease, string, error) {
	t1, t2, end := l.Acquired.Add(l.T1), l.Acquired.Add(l.T2), l.Acquired.Add(l.Duration)
	if err := sleepUntil(ctx, t1); err != nil {
		return nil, "", err
	}
	for {
		now := time.Now()
		if !now.Before(end) {
			return nil, "", errors.New("it expired without an answer from any server")
		}
		event, extend, deadline := Renewed, c.Renew, t2
		if !now.Before(t2) {
			event, extend, deadline = Rebound, c.Rebind, end
		}
		// Wait half the time left to the next deadline for an answer (at
		// least a second, at most a minute), never past the deadline.
		left := deadline.Sub(now)
		wait := min(max(left/2, time.Second), left, time.Minute)
		ectx, cancel := context.WithTimeout(ctx, wait)
		next, err := extend(ectx, l)
		cancel()
		switch {
		case err == nil:
			return next, event, nil
		case errors.Is(err, ErrNAK), ctx.Err() != nil:
			return nil, "", err
		}
	}
}

// reacquire runs Acquire until it succeeds or ctx ends (nil).
func (c *Client) reacquire(ctx context.Context, logf func(string, ...any)) *Lease {
	backoff := 2 * time.Second
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		l, err := c.Acquire(actx)
		cancel()
		if err == nil {
			return l
		}
		if ctx.Err() != nil {
			return nil
		}
		logf("dhcp %s: no new lease yet: %v", c.Interface, err)
		if sleepUntil(ctx, time.Now().Add(backoff)) != nil {
			return nil
		}
		backoff = min(backoff*2, time.Minute)
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

var broadcast = net.IPv4bcast

// exchange sends msg to dst:67 and waits for a reply of type want to xid,
// resending with exponential backoff (0.5 s to 4 s) until ctx ends.
func (c *Client) exchange(ctx context.Context, msg []byte, dst net.IP, xid uint32, want byte) (*reply, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	if err := unix.BindToDevice(fd, c.Interface); err != nil {
		return nil, fmt.Errorf("bind to %s: %w", c.Interface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 68}); err != nil {
		return nil, fmt.Errorf("bind port 68: %w", err)
	}
	to := &unix.SockaddrInet4{Port: 67}
	copy(to.Addr[:], dst.To4())
	buf := make([]byte, 1500)
	backoff := 500 * time.Millisecond
	for {
		if err := unix.Sendto(fd, msg, 0, to); err != nil {
			return nil, fmt.Errorf("send to %s: %w", dst, err)
		}
		deadline := time.Now().Add(backoff)
		for {
			if ctx.Err() != nil {
				return nil, errNoAnswer
			}
			wait := time.Until(deadline)
			if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
				wait = time.Until(d)
			}
			if wait <= 0 {
				break
			}
			tv := unix.NsecToTimeval(max(wait, time.Millisecond).Nanoseconds())
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // timeout or EINTR: look at the clock again
			}
			r, ok := parse(buf[:n], xid)
			if !ok {
				continue
			}
			if r.msgType == msgNak {
				return nil, ErrNAK
			}
			if r.msgType == want {
				return r, nil
			}
		}
		backoff = min(backoff*2, 4*time.Second)
	}
}

func newXID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// Apply moves interface ifname from lease old to new (either may be nil):
// an address that is no longer ours is removed (its routes go with it), and
// new's address and default route are set.
func Apply(ifname string, old, new *Lease) error {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	if old != nil && (new == nil || !old.Addr.IP.Equal(new.Addr.IP)) {
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: old.Addr}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s from %s: %w", old.Addr, ifname, err)
		}
	}
	if new == nil {
		return nil
	}
	return SetAddress(link, new.Addr, new.Router)
}

// SetAddress puts addr on link and, with a gateway, the default route.
func SetAddress(link netlink.Link, addr *net.IPNet, gw net.IP) error {
	name := link.Attrs().Name
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, name, err)
	}
	if gw != nil {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return nil
}
