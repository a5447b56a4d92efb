// Package netswitch is the Ethernet switch behind a user-defined network
// (docker network create): every container VM on the network gets a NIC
// whose frames travel as datagrams over a socketpair to this switch, which
// forwards them like a learning bridge. It is the same for both backends:
// QEMU takes the VM's end as `-netdev socket,fd=N`, Virtualization.framework
// as a VZFileHandleNetworkDeviceAttachment. No root, no host interfaces: the
// network exists only between the VMs attached to it.
package netswitch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// maxFrame is the largest frame a port reads: a 1500-byte MTU frame plus
// its Ethernet header and a VLAN tag, rounded up; virtio-net may hand over
// up to 64 KiB with offloads, which neither backend enables for these NICs.
const maxFrame = 65536

// Switch forwards frames between its ports.
type Switch struct {
	mu     sync.Mutex
	ports  map[string]*port
	fdb    map[[6]byte]*port // learned: source MAC -> port it came from
	closed bool
	wg     sync.WaitGroup
}

type port struct {
	name string
	conn *net.UnixConn   // the switch's end
	raw  syscall.RawConn // for sends that never wait
}

// New returns an empty switch.
func New() *Switch {
	return &Switch{ports: map[string]*port{}, fdb: map[[6]byte]*port{}}
}

// Attach adds a port named name (unique on this switch, e.g. the container
// ID) and returns the VM's end: a datagram socket carrying one Ethernet
// frame per datagram. The caller hands it to the VM and closes its copy
// once the VM has it.
func (s *Switch) Attach(name string) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("netswitch: switch closed")
	}
	if _, ok := s.ports[name]; ok {
		return nil, fmt.Errorf("netswitch: port %q is already attached", name)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return nil, fmt.Errorf("netswitch: socketpair: %w", err)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	// Bigger buffers absorb bursts (a TCP window's worth of frames) while
	// the forwarding goroutine catches up.
	for _, fd := range fds {
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 1<<20)
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20)
	}
	mine := os.NewFile(uintptr(fds[0]), "netswitch-"+name)
	c, err := net.FileConn(mine)
	mine.Close() // FileConn dup'ed it
	if err != nil {
		syscall.Close(fds[1])
		return nil, fmt.Errorf("netswitch: %w", err)
	}
	uc := c.(*net.UnixConn)
	raw, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		syscall.Close(fds[1])
		return nil, fmt.Errorf("netswitch: %w", err)
	}
	p := &port{name: name, conn: uc, raw: raw}
	s.ports[name] = p
	s.wg.Add(1)
	go s.serve(p)
	return os.NewFile(uintptr(fds[1]), "netswitch-vm-"+name), nil
}

// Detach removes a port; frames for its MACs are flooded again until
// relearned elsewhere.
func (s *Switch) Detach(name string) {
	s.mu.Lock()
	p, ok := s.ports[name]
	if ok {
		s.drop(p)
	}
	s.mu.Unlock()
	if ok {
		p.conn.Close()
	}
}

// drop forgets p; s.mu held.
func (s *Switch) drop(p *port) {
	delete(s.ports, p.name)
	for mac, q := range s.fdb {
		if q == p {
			delete(s.fdb, mac)
		}
	}
}

// Ports lists the attached ports' names.
func (s *Switch) Ports() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.ports {
		names = append(names, n)
	}
	return names
}

// Close detaches every port and waits for the forwarding goroutines.
func (s *Switch) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*port
	for _, p := range s.ports {
		all = append(all, p)
	}
	for _, p := range all {
		s.drop(p)
	}
	s.mu.Unlock()
	for _, p := range all {
		p.conn.Close()
	}
	s.wg.Wait()
}

// serve reads p's frames and forwards them until p is detached (or its
// VM's end is found closed when a frame is sent to it).
func (s *Switch) serve(p *port) {
	defer s.wg.Done()
	buf := make([]byte, maxFrame)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			s.mu.Lock()
			if s.ports[p.name] == p {
				s.drop(p)
			}
			s.mu.Unlock()
			p.conn.Close()
			return
		}
		if n < 14 {
			continue // not an Ethernet frame
		}
		s.forward(p, buf[:n])
	}
}

// forward learns the source MAC and sends the frame to the port that owns
// the destination, or to every other port for broadcast, multicast and
// unknown destinations.
func (s *Switch) forward(from *port, frame []byte) {
	var dst, src [6]byte
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	s.mu.Lock()
	if src[0]&1 == 0 { // never learn a multicast source
		s.fdb[src] = from
	}
	var out []*port
	if to, ok := s.fdb[dst]; ok && dst[0]&1 == 0 {
		if to != from {
			out = []*port{to}
		}
	} else {
		for _, p := range s.ports {
			if p != from {
				out = append(out, p)
			}
		}
	}
	s.mu.Unlock()
	for _, p := range out {
		if p.send(frame) == syscall.ECONNREFUSED {
			// The VM's end is closed (datagram sockets do not tell
			// a reader that its peer went away; a send does).
			s.Detach(p.name)
		}
	}
}

// send queues frame on p without waiting: a VM that does not keep up (or is
// paused) loses the frame, as on a real switch, instead of stalling every
// other port's traffic. TCP retransmits.
func (p *port) send(frame []byte) error {
	var err error
	p.raw.Write(func(fd uintptr) bool {
		err = syscall.Sendto(int(fd), frame, syscall.MSG_DONTWAIT, nil)
		return true
	})
	return err
}
