package agent

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/berth-dev/berth/guest/api"
)

// PortForward opens a TCP connection to port on the VM's loopback (where
// the container listens) and returns it as a net.Conn over the agent
// channel. CloseWrite half-closes. Deadlines are accepted but only Close
// interrupts a blocked Read or Write.
func (c *Client) PortForward(ctx context.Context, port int) (net.Conn, error) {
	return c.PortForwardAddr(ctx, "", port)
}

// PortForwardAddr is PortForward to another address inside the VM.
func (c *Client) PortForwardAddr(ctx context.Context, addr string, port int) (net.Conn, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := c.api.PortForward(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := stream.Send(&api.PortForwardFrame{Port: uint32(port), Address: addr}); err != nil {
		cancel()
		return nil, err
	}
	// The agent answers a failed dial by ending the stream at once; wait
	// for either data or that verdict so the caller gets the error here.
	first := make(chan error, 1)
	fc := &forwardConn{stream: stream, cancel: cancel, port: port}
	go func() {
		f, err := stream.Recv()
		if err != nil {
			fc.rerr = err
		} else {
			fc.buf = f.Data
		}
		first <- err
	}()
	select {
	case err := <-first:
		if err != nil && err != io.EOF {
			cancel()
			return nil, err
		}
		fc.eof = err == io.EOF
	case <-time.After(150 * time.Millisecond):
		// Connected and quiet (most servers wait for the client): hand
		// the first Recv over to Read.
		fc.firstc = first
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
	return fc, nil
}

type forwardConn struct {
	stream api.Agent_PortForwardClient
	cancel context.CancelFunc
	port   int

	rmu    sync.Mutex
	firstc chan error
	buf    []byte
	rerr   error
	eof    bool

	wmu       sync.Mutex
	closeOnce sync.Once
}

func (c *forwardConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.firstc != nil {
		if err := <-c.firstc; err == io.EOF {
			c.eof = true
		}
		c.firstc = nil
	}
	for len(c.buf) == 0 {
		if c.eof {
			return 0, io.EOF
		}
		if c.rerr != nil {
			err := c.rerr
			c.rerr = nil
			if err != io.EOF {
				return 0, err
			}
			c.eof = true
			continue
		}
		f, err := c.stream.Recv()
		if err != nil {
			if err == io.EOF {
				c.eof = true
				continue
			}
			return 0, err
		}
		c.buf = f.Data
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *forwardConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		n := min(len(p), 32<<10)
		if err := c.stream.Send(&api.PortForwardFrame{Data: append([]byte(nil), p[:n]...)}); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// CloseWrite half-closes: the service in the VM reads EOF.
func (c *forwardConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.stream.CloseSend()
}

func (c *forwardConn) Close() error {
	c.closeOnce.Do(c.cancel)
	return nil
}

type forwardAddr int

func (a forwardAddr) Network() string { return "berth-agent" }
func (a forwardAddr) String() string  { return "vm:" + itoa(int(a)) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func (c *forwardConn) LocalAddr() net.Addr                { return forwardAddr(0) }
func (c *forwardConn) RemoteAddr() net.Addr               { return forwardAddr(c.port) }
func (c *forwardConn) SetDeadline(t time.Time) error      { return nil }
func (c *forwardConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *forwardConn) SetWriteDeadline(t time.Time) error { return nil }
