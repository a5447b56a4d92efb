//go:build linux

package agent

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
)

// The embedded DNS server, Docker's 127.0.0.11: containers on user networks
// look their peers up by name with tools that ask DNS directly (nslookup,
// dig, resolvers that skip /etc/hosts), and get the same answers as from
// /etc/hosts. Names it does not hold go to the upstream servers (--dns or
// DHCP's) and the reply comes back byte for byte.

// DefaultDNSAddr is where the server listens in a VM.
const DefaultDNSAddr = "127.0.0.11:53"

// dnsServer answers from the agent's hosts entries.
type dnsServer struct {
	a    *Agent
	conn net.PacketConn
}

// startDNS starts the server once; later calls do nothing. SetupSystem
// runs before the network is configured, so the VM's loopback is brought
// up first: a socket bound to 127.0.0.11 while lo is down (IP_FREEBIND)
// receives queries but its replies never arrive.
func (a *Agent) startDNS() error {
	a.dnsOnce.Do(func() {
		addr := a.cfg.DNSAddr
		if addr == "" {
			addr = DefaultDNSAddr
		}
		if a.cfg.PID1 {
			if lo, err := netlink.LinkByName("lo"); err == nil {
				netlink.LinkSetUp(lo)
			}
		}
		conn, err := net.ListenPacket("udp4", addr)
		if err != nil {
			a.dnsErr = err
			return
		}
		a.mu.Lock()
		a.dnsAddr = conn.LocalAddr().String()
		a.mu.Unlock()
		s := &dnsServer{a: a, conn: conn}
		go s.serve()
	})
	return a.dnsErr
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		go func() {
			if reply := s.answer(q); reply != nil {
				s.conn.WriteTo(reply, from)
			}
		}()
	}
}

// answer builds the reply to one query: from the hosts entries when the
// name is there, else from an upstream server; nil drops a malformed query.
func (s *dnsServer) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	ips, known := s.a.lookupHost(q.Name.String())
	if !known {
		if reply := s.forward(query); reply != nil {
			return reply
		}
		return reply(h, q, dnsmessage.RCodeServerFailure, nil)
	}
	var answers []net.IP
	for _, ip := range ips {
		if (q.Type == dnsmessage.TypeA) == (ip.To4() != nil) && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA) {
			answers = append(answers, ip)
		}
	}
	// A name we hold but without an address of the asked type: NOERROR
	// with no answers, so the resolver does not go looking elsewhere.
	return reply(h, q, dnsmessage.RCodeSuccess, answers)
}

func reply(h dnsmessage.Header, q dnsmessage.Question, rcode dnsmessage.RCode, ips []net.IP) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, ip := range ips {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 10}
		if ip4 := ip.To4(); ip4 != nil {
			b.AResource(rh, dnsmessage.AResource{A: [4]byte(ip4)})
		} else {
			b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: [16]byte(ip.To16())})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// forward asks the upstream servers in turn; nil when none answered.
func (s *dnsServer) forward(query []byte) []byte {
	for _, up := range s.a.upstreamDNS() {
		c, err := net.Dial("udp", net.JoinHostPort(up, "53"))
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(query); err == nil {
			buf := make([]byte, 4096)
			if n, err := c.Read(buf); err == nil {
				c.Close()
				return buf[:n]
			}
		}
		c.Close()
	}
	return nil
}

// lookupHost finds name (any case, with or without the final dot) in the
// hosts entries and the VM's hostname.
func (a *Agent) lookupHost(name string) ([]net.IP, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	a.mu.Lock()
	defer a.mu.Unlock()
	var ips []net.IP
	found := false
	for _, h := range a.sys.hosts {
		for _, n := range h.Names {
			if strings.ToLower(n) == name {
				found = true
				if ip := net.ParseIP(h.Ip); ip != nil {
					ips = append(ips, ip)
				}
			}
		}
	}
	if name == "localhost" {
		return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, true
	}
	return ips, found
}

// upstreamDNS is where names the server does not hold go.
func (a *Agent) upstreamDNS() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.sys.dns...)
}

// dnsListenAddr is the server's address (the configured one until started).
func (a *Agent) dnsListenAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dnsAddr != "" {
		return a.dnsAddr
	}
	if a.cfg.DNSAddr != "" {
		return a.cfg.DNSAddr
	}
	return DefaultDNSAddr
}

// dnsState is the agent's part of the embedded DNS server.
type dnsState struct {
	dnsOnce sync.Once
	dnsErr  error
	dnsAddr string // where it listens, once started (Agent.mu)
}
