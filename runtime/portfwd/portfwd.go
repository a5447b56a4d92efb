// Package portfwd publishes container ports on the host: it parses Docker's
// -p specs and relays each accepted host connection through the guest
// agent's port-forward stream (no route to the VM's own address needed, and
// on macOS no Local Network permission prompt).
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// DefaultHostIP is where published ports listen unless the spec names an
// address: loopback, so a container is not exposed to the network by accident.
const DefaultHostIP = "127.0.0.1"

// Binding is one published port: host address and port → container port.
type Binding struct {
	HostIP        string `json:"hostIp"`   // "127.0.0.1" by default
	HostPort      int    `json:"hostPort"` // 0 = pick a free port at start
	ContainerPort int    `json:"containerPort"`
	Proto         string `json:"proto"` // "tcp"
}

func (b Binding) String() string {
	return fmt.Sprintf("%s -> %d/%s", net.JoinHostPort(b.HostIP, strconv.Itoa(b.HostPort)), b.ContainerPort, b.Proto)
}

// Parse reads one -p spec: [hostip:][hostport:]containerport[/tcp], where
// ports may be equal-length ranges ("8000-8001:80-81").
func Parse(spec string) ([]Binding, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid port spec %q: %s (want [hostip:]hostport:containerport[/tcp])", spec, why)
	}
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, bad("empty")
	}
	proto := "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		proto = strings.ToLower(s[i+1:])
		s = s[:i]
		switch proto {
		case "tcp":
		case "udp", "sctp":
			return nil, fmt.Errorf("port spec %q: %s ports are not supported by Berth yet (only tcp)", spec, proto)
		default:
			return nil, bad("unknown protocol " + strconv.Quote(proto))
		}
	}
	hostIP := ""
	if strings.HasPrefix(s, "[") { // [v6]:hostport:containerport
		end := strings.Index(s, "]:")
		if end < 0 {
			return nil, bad("unterminated [IPv6 address]")
		}
		hostIP, s = s[1:end], s[end+2:]
		if _, err := netip.ParseAddr(hostIP); err != nil {
			return nil, bad("host address " + strconv.Quote(hostIP) + " is not an IP address")
		}
	}
	parts := strings.Split(s, ":")
	var hostPart, ctrPart string
	switch len(parts) {
	case 1:
		ctrPart = parts[0]
	case 2:
		hostPart, ctrPart = parts[0], parts[1]
	case 3:
		if hostIP != "" {
			return nil, bad("too many colons")
		}
		hostIP, hostPart, ctrPart = parts[0], parts[1], parts[2]
		if hostIP != "" {
			if _, err := netip.ParseAddr(hostIP); err != nil {
				return nil, bad("host address " + strconv.Quote(hostIP) + " is not an IP address")
			}
		}
	default:
		return nil, bad("too many colons (put IPv6 addresses in brackets)")
	}
	if hostIP == "" {
		hostIP = DefaultHostIP
	}
	clo, chi, err := portRange(ctrPart, false)
	if err != nil {
		return nil, bad("container port: " + err.Error())
	}
	hlo, hhi := 0, 0
	if hostPart != "" {
		if hlo, hhi, err = portRange(hostPart, true); err != nil {
			return nil, bad("host port: " + err.Error())
		}
		if hhi-hlo != chi-clo {
			return nil, bad("host and container port ranges differ in length")
		}
	}
	var out []Binding
	for p := clo; p <= chi; p++ {
		hp := 0
		if hostPart != "" {
			hp = hlo + (p - clo)
		}
		out = append(out, Binding{HostIP: hostIP, HostPort: hp, ContainerPort: p, Proto: proto})
	}
	return out, nil
}

func portRange(s string, zeroOK bool) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := port(lo, zeroOK)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return a, a, nil
	}
	b, err := port(hi, zeroOK)
	if err != nil {
		return 0, 0, err
	}
	if b < a {
		return 0, 0, fmt.Errorf("range %q ends before it starts", s)
	}
	if b-a > 1000 {
		return 0, 0, fmt.Errorf("range %q is too large (max 1000 ports)", s)
	}
	return a, b, nil
}

func port(s string, zeroOK bool) (int, error) {
	if s == "" {
		return 0, errors.New("missing port number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// Dialer opens a stream to a TCP port inside the container.
type Dialer func(ctx context.Context, port int) (net.Conn, error)

// Set is a group of running host listeners for one container.
type Set struct {
	Bindings []Binding // with the host ports actually bound

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
}

// Publish listens on every binding and relays accepted connections through
// dial. If any listener cannot be opened, none stays open.
func Publish(bindings []Binding, dial Dialer) (*Set, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Set{ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	for _, b := range bindings {
		addr := net.JoinHostPort(b.HostIP, strconv.Itoa(b.HostPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("publish %s: %w (is another program using host port %d?)", b, err, b.HostPort)
		}
		b.HostPort = ln.Addr().(*net.TCPAddr).Port
		s.Bindings = append(s.Bindings, b)
		s.lns = append(s.lns, ln)
		s.wg.Add(1)
		go s.serve(ln, b, dial)
	}
	return s, nil
}

func (s *Set) serve(ln net.Listener, b Binding, dial Dialer) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.relay(c, b, dial)
		}()
	}
}

func (s *Set) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		if s.ctx.Err() != nil {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Set) relay(c net.Conn, b Binding, dial Dialer) {
	defer c.Close()
	if !s.track(c, true) {
		return
	}
	defer s.track(c, false)
	g, err := dial(s.ctx, b.ContainerPort)
	if err != nil {
		return // the client sees a closed connection, as with a refused port
	}
	defer g.Close()
	if !s.track(g, true) {
		return
	}
	defer s.track(g, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(g, c)
	go pipe(c, g)
	<-done
	<-done
}

// Close stops listening and drops every relayed connection.
func (s *Set) Close() error {
	s.cancel()
	s.mu.Lock()
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
