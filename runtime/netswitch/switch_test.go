package netswitch

import (
	"bytes"
	"net"
	"testing"
	"time"
)

func frame(dst, src byte, payload string) []byte {
	f := make([]byte, 14, 14+len(payload))
	for i := 0; i < 6; i++ {
		f[i], f[6+i] = dst, src
	}
	if dst == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	f[12], f[13] = 0x08, 0x00
	return append(f, payload...)
}

// Test MACs: every byte the same; an even first byte is unicast.
const (
	macA = 0x0a
	macB = 0x0c
)

type vmEnd struct {
	t *testing.T
	c net.Conn
}

func attach(t *testing.T, s *Switch, name string) *vmEnd {
	t.Helper()
	f, err := s.Attach(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &vmEnd{t, c}
}

func (v *vmEnd) send(b []byte) {
	v.t.Helper()
	if _, err := v.c.Write(b); err != nil {
		v.t.Fatal(err)
	}
}

// recv returns the next frame, or nil if none arrives in a short while.
func (v *vmEnd) recv() []byte {
	v.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := v.c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestLearningAndFlooding(t *testing.T) {
	s := New()
	defer s.Close()
	a, b, c := attach(t, s, "a"), attach(t, s, "b"), attach(t, s, "c")
	A, B := byte(macA), byte(macB)

	// Unknown destination: flooded to everyone but the sender.
	f := frame(B, A, "hello b")
	a.send(f)
	if got := b.recv(); !bytes.Equal(got, f) {
		t.Fatalf("b got %q", got)
	}
	if got := c.recv(); !bytes.Equal(got, f) {
		t.Fatalf("c got %q (unknown destinations are flooded)", got)
	}
	if got := a.recv(); got != nil {
		t.Fatalf("the sender got its own frame back: %q", got)
	}
	// b answers: a's MAC was learned, so only a sees it.
	r := frame(A, B, "hello a")
	b.send(r)
	if got := a.recv(); !bytes.Equal(got, r) {
		t.Fatalf("a got %q", got)
	}
	if got := c.recv(); got != nil {
		t.Fatalf("c got a frame for a learned MAC: %q", got)
	}
	// Now both are learned: a→b is unicast.
	a.send(f)
	if got := b.recv(); !bytes.Equal(got, f) {
		t.Fatalf("b got %q", got)
	}
	if got := c.recv(); got != nil {
		t.Fatalf("c got unicast for b: %q", got)
	}
	// Broadcast reaches everyone else.
	bc := frame(0xff, A, "arp who-has")
	a.send(bc)
	if b.recv() == nil || c.recv() == nil {
		t.Fatal("broadcast not delivered to every other port")
	}
	// Runts are dropped.
	a.send([]byte{1, 2, 3})
	if got := b.recv(); got != nil {
		t.Fatalf("runt forwarded: %q", got)
	}
}

func TestDetachAndClose(t *testing.T) {
	s := New()
	a, b := attach(t, s, "a"), attach(t, s, "b")
	if _, err := s.Attach("a"); err == nil {
		t.Fatal("the same port name attached twice")
	}
	A, B := byte(macA), byte(macB)
	b.send(frame(A, B, "learn b"))
	a.recv()
	s.Detach("b")
	if got := s.Ports(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("ports after detach: %v", got)
	}
	// b's MAC is forgotten: a frame for it is flooded (to nobody) and b's
	// old end sees nothing.
	a.send(frame(B, A, "to b"))
	if got := b.recv(); got != nil {
		t.Fatalf("a detached port still receives: %q", got)
	}
	// A VM that goes away (its end closed) loses its port at the next
	// frame sent to it.
	c := attach(t, s, "c")
	c.c.Close()
	a.send(frame(0xff, A, "anyone?"))
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Ports()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("port of a closed VM end still attached: %v", s.Ports())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	if _, err := s.Attach("d"); err == nil {
		t.Fatal("attach after close")
	}
	if len(s.Ports()) != 0 {
		t.Fatalf("ports after close: %v", s.Ports())
	}
}

// A VM that stops reading (paused, wedged) must not stall the others.
func TestSlowPortDoesNotBlock(t *testing.T) {
	s := New()
	defer s.Close()
	a, b := attach(t, s, "a"), attach(t, s, "b")
	_ = attach(t, s, "stuck") // never reads
	A, B := byte(macA), byte(macB)
	big := frame(0xff, A, string(make([]byte, 1400)))
	done := make(chan struct{})
	go func() {
		for i := 0; i < 5000; i++ { // far more than the stuck port's buffer
			a.c.Write(big)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the switch stalled behind a port that does not read")
	}
	// Traffic still flows between the live ports.
	for b.recv() != nil { // drain the flood
	}
	f := frame(A, B, "still here")
	b.send(f)
	for {
		got := a.recv()
		if got == nil {
			t.Fatal("a never got b's frame")
		}
		if bytes.Equal(got, f) {
			break
		}
	}
}
